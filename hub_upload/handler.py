"""Inference Endpoints handler of a RAM++ model repository (staged by hub_upload/prepare_and_push.py as handler.py).

`EndpointHandler(path)(data)` answers the Hub's task format: `{"inputs": <image>, "parameters": {...}}` where the
image is base64 (or a data URL, raw bytes, or a PIL image as the endpoint toolkit may pass it) and the parameters are
those of the `zero-shot-image-tagging` pipeline. With `candidate_labels` it answers as zero-shot-image-classification
does: every candidate label with its score (an independent sigmoid), sorted by score. Without, the image's tags
(built-in tags over their tuned thresholds). Errors are `ValueError`s naming the problem.

It uses the transformers-ramplus package when it is installed (new tag names, descriptions), else the repository's own
remote code (built-in tags, by name).
"""

import base64
import binascii
import io

from PIL import Image
from transformers import pipeline


try:  # the package: open-set tags; without it, the repository's remote code
    import transformers_ramplus
except ImportError:
    transformers_ramplus = None

PARAMETERS = ("candidate_labels", "hypothesis_template", "threshold", "top_k", "language")


def _image(item):
    if isinstance(item, Image.Image):
        return item
    if isinstance(item, str):
        text = item.partition(",")[2] if item.startswith("data:") else item
        try:
            item = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("`inputs` must be a base64-encoded image") from None
    if isinstance(item, (bytes, bytearray)):
        if not item:
            raise ValueError("`inputs` is empty")
        try:
            image = Image.open(io.BytesIO(item))
            image.load()
        except (OSError, Image.DecompressionBombError, ValueError) as error:
            raise ValueError(f"`inputs` is not a readable image: {error}") from None
        return image
    raise ValueError(f"`inputs` must be an image (base64, bytes or PIL), got {type(item).__name__}")


class EndpointHandler:
    def __init__(self, path=""):
        self.tagger = pipeline("zero-shot-image-tagging", model=path or ".", trust_remote_code=True, device=-1)

    def __call__(self, data):
        if not isinstance(data, dict) or "inputs" not in data:
            raise ValueError('the request must be {"inputs": <image>, "parameters": {...}}')
        parameters = data.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise ValueError("`parameters` must be an object")  # noqa: TRY004 (a 400 for the endpoint)
        unknown = sorted(set(parameters) - set(PARAMETERS))
        if unknown:
            raise ValueError(f"unknown parameters {unknown}; known: {', '.join(PARAMETERS)}")
        options = {name: value for name, value in parameters.items() if value is not None}
        if options.get("candidate_labels") is not None:
            options["all_labels"] = True  # the classification format: every candidate label, sorted
        inputs = data["inputs"]
        if isinstance(inputs, list):
            return self.tagger([_image(item) for item in inputs], **options)
        return self.tagger(_image(inputs), **options)
