# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""The request formats of the tagging service and the Inference Endpoints handler, parsed and checked without a
model: what `POST /v1/tag` and the Hub's task format (`POST /`, `{"inputs": ..., "parameters": {...}}`) carry.

Everything here raises `RequestError` (an HTTP status and a message naming the field or the image) for a bad
request; nothing raises anything else for user input. Images stay bytes (or a URL) here: the worker decodes them
with the model's image processor (its pixel limit, EXIF and format checks), so that a bad image is that image's
error and not the batch's.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any


TAG_FORMAT, HUB_FORMAT = "tag", "hub"
_OPTION_FIELDS = ("candidate_labels", "threshold", "top_k", "language", "hypothesis_template")


class RequestError(ValueError):
    """A request the service refuses: `status` (400, 413, 422...) and a message naming what is wrong."""

    def __init__(self, message: str, status: int = 400, image: str | None = None):
        super().__init__(message)
        self.status, self.image = status, image

    def as_json(self) -> dict:
        body = {"error": str(self)}
        if self.image is not None:
            body["image"] = self.image
        return body


@dataclass
class ImageInput:
    """One image of a request: its name (for records and errors) and its bytes, or a URL."""

    name: str
    data: bytes | None = None
    url: str | None = None


@dataclass
class TagRequest:
    """A parsed request: its images, the tagging options, and which answer format it wants."""

    images: list[ImageInput]
    options: dict[str, Any] = field(default_factory=dict)
    format: str = TAG_FORMAT

    def to_json(self) -> dict:
        """A JSON-able form (images as base64) that `parse_json_request` reads back: what crosses to the workers."""
        images = [
            {"name": image.name, "url": image.url}
            if image.url is not None
            else {"name": image.name, "data": base64.b64encode(image.data).decode("ascii")}
            for image in self.images
        ]
        return {"images": images, **self.options, "_format": self.format}


def decode_base64(text: str, name: str) -> bytes:
    """The bytes of a base64 image (plain or a `data:image/...;base64,` URL)."""
    if not isinstance(text, str):
        raise RequestError(f"{name}: an image must be a base64 string, got {type(text).__name__}", image=name)
    if text.startswith("data:"):
        _, _, text = text.partition(",")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(f"{name}: not valid base64", image=name) from None
    if not data:
        raise RequestError(f"{name}: the image is empty", image=name)
    return data


def _image(item, index: int, allow_urls: bool) -> ImageInput:
    name = f"image {index}"
    if isinstance(item, dict):
        name = str(item.get("name") or name)
        if item.get("url") is not None:
            item = item["url"]
        elif "data" in item:
            return ImageInput(name, data=decode_base64(item["data"], name))
        else:
            raise RequestError(f"{name}: an image object needs `data` (base64) or `url`", image=name)
    if isinstance(item, str) and item.startswith(("http://", "https://")):
        if not allow_urls:
            raise RequestError(f"{name}: image URLs are not accepted by this server (start it with --allow-urls)", image=name)
        return ImageInput(name if name != f"image {index}" else item, url=item)
    return ImageInput(name, data=decode_base64(item, name))


def check_options(options: dict) -> dict:
    """The tagging options of a request, type-checked (the pipeline checks their values): unknown names refused."""
    checked = {}
    for name, value in options.items():
        if value is None:
            continue
        if name not in _OPTION_FIELDS:
            raise RequestError(f"unknown option {name!r}; known: {', '.join(_OPTION_FIELDS)}", status=422)
        if name == "candidate_labels":
            if isinstance(value, str):
                value = [part.strip() for part in value.split(",") if part.strip()]
            if not isinstance(value, (list, dict)) or not value:
                raise RequestError("`candidate_labels` must be a non-empty list of tag names or a mapping tag -> descriptions", status=422)
        elif name in ("threshold",) and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise RequestError(f"`{name}` must be a number, got {value!r:.80}", status=422)
        elif name == "top_k" and (isinstance(value, bool) or not isinstance(value, int)):
            raise RequestError(f"`top_k` must be an integer, got {value!r:.80}", status=422)
        elif name in ("language", "hypothesis_template") and not isinstance(value, str):
            raise RequestError(f"`{name}` must be a string, got {value!r:.80}", status=422)
        checked[name] = value
    return checked


def parse_json_request(body: dict, allow_urls: bool = False, default_format: str = TAG_FORMAT) -> TagRequest:
    """A request from its JSON: `{"images": [...], "candidate_labels": ..., ...}` (`/v1/tag`; an image is a base64
    string, `{"data": base64, "name": ...}` or, with `allow_urls`, a URL) or the Hub's task format
    `{"inputs": base64, "parameters": {...}}`."""
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object")
    body = dict(body)
    fmt = body.pop("_format", None) or (HUB_FORMAT if "inputs" in body else default_format)
    if fmt not in (TAG_FORMAT, HUB_FORMAT):
        raise RequestError(f"unknown answer format {fmt!r}")
    if "inputs" in body:
        items = body.pop("inputs")
        parameters = body.pop("parameters", None) or {}
        if not isinstance(parameters, dict):
            raise RequestError("`parameters` must be a JSON object")
        body.update(parameters)
    elif "images" in body:
        items = body.pop("images")
    elif "image" in body:
        items = body.pop("image")
    else:
        raise RequestError("the request has no image: send `images` (or the Hub's `inputs`)")
    if not isinstance(items, list):
        items = [items]
    if not items:
        raise RequestError("the request has no image (an empty list)")
    images = [_image(item, index, allow_urls) for index, item in enumerate(items)]
    options = check_options(body)
    if fmt == HUB_FORMAT and "candidate_labels" not in options:
        raise RequestError("the zero-shot-image-classification format needs `parameters.candidate_labels`", status=422)
    return TagRequest(images, options, fmt)


def parse_form_fields(fields: dict[str, list[str]], files: list[tuple[str, bytes]], allow_urls: bool = False) -> TagRequest:
    """A multipart request: the uploaded `files` (name, bytes), plus `images`/`urls` text fields, and option fields
    (`candidate_labels` as JSON or comma-separated, `threshold`, `top_k`, `language`, `hypothesis_template`)."""
    images = [ImageInput(name or f"image {index}", data=data) for index, (name, data) in enumerate(files)]
    for url in fields.pop("urls", []) + fields.pop("url", []):
        images.append(_image(url, len(images), allow_urls))
    if not images:
        raise RequestError("the request has no image: upload files (multipart field `images`)")
    for index, image in enumerate(images):
        if image.url is None and not image.data:
            raise RequestError(f"{image.name}: the uploaded file is empty", image=image.name)
    options: dict[str, Any] = {}
    for name, values in fields.items():
        value = values[-1]
        if name == "candidate_labels":
            if len(values) > 1:
                options[name] = values
                continue
            try:
                options[name] = json.loads(value) if value.lstrip().startswith(("[", "{")) else value
            except json.JSONDecodeError:
                raise RequestError("`candidate_labels`: not valid JSON", status=422) from None
        elif name == "threshold":
            options[name] = _number(name, value, float)
        elif name == "top_k":
            options[name] = _number(name, value, int)
        else:
            options[name] = value
    return TagRequest(images, check_options(options), TAG_FORMAT)


def _number(name, value, kind):
    try:
        return kind(value)
    except ValueError:
        raise RequestError(f"`{name}` must be a number, got {value!r:.80}", status=422) from None


__all__ = [
    "HUB_FORMAT",
    "TAG_FORMAT",
    "ImageInput",
    "RequestError",
    "TagRequest",
    "check_options",
    "decode_base64",
    "parse_form_fields",
    "parse_json_request",
]
