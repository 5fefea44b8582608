# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""`pipeline("zero-shot-image-tagging")`: RAM++ tagging with the built-in tags or any tags the caller names.

Registered with transformers' pipeline registry when `transformers_ramplus` is imported. The module imports only
transformers/torch and its sibling modules (relative imports), so `ZeroShotImageTaggingPipeline.save_pretrained`
ships it as a custom pipeline that `pipeline(model=..., trust_remote_code=True)` loads without this package.
"""

from __future__ import annotations

import copy
import os
import types
from collections import OrderedDict
from collections.abc import Mapping

import torch
from torch import nn
from transformers.dynamic_module_utils import custom_object_save
from transformers.pipelines.base import Pipeline

from ..models.ram_plus.configuration_ram_plus import validate_language, validate_threshold, validate_top_k
from ..models.ram_plus.image_processing_ram_plus import RamPlusImageProcessor
from ..models.ram_plus.processing_ram_plus import post_process_image_tagging


try:  # the package's tag sets, fast paths and folder writer; absent where a saved folder's copy of this module runs
    # as remote code without transformers_ramplus (absolute imports inside `try`: transformers' check skips them)
    from transformers_ramplus.inference.fast_paths import enable_fast_inference, supports_fast_inference
    from transformers_ramplus.inference.precision import resolve_precision
    from transformers_ramplus.models.remote_code import save_model_folder
    from transformers_ramplus.tags.encoding import tokenizer_for_model
    from transformers_ramplus.tags.tag_map import TagMap
    from transformers_ramplus.tags.tag_set import TagSet, _freeze
    from transformers_ramplus.tags.templates import NAME_TEMPLATE_SETS
except ImportError:
    enable_fast_inference = supports_fast_inference = save_model_folder = TagSet = _freeze = tokenizer_for_model = None
    resolve_precision = None
    TagMap = None
    NAME_TEMPLATE_SETS = None


_UNSET = object()
# the task of transformers' CLIP/SigLIP pipeline: a model folder declares this pipeline for it too (model-specific, in
# its `custom_pipelines`), and under that task the pipeline answers as CLIP users expect (see `postprocess`)
CLASSIFICATION_TASK = "zero-shot-image-classification"


def resolve_device(requested=None, rank: int | None = None) -> torch.device:
    """The device to tag on: `requested` (a `torch.device`, a name such as `"cuda:1"`, or an index: -1 the CPU, n the
    n-th GPU); without one, the GPU of `rank` (default: this process's `LOCAL_RANK` under `accelerate launch` or
    `torchrun`, else 0) modulo the GPUs there are, or the CPU when there is none."""
    if isinstance(requested, torch.device):
        return requested
    if isinstance(requested, str):
        return torch.device(requested)
    if requested is not None and (isinstance(requested, bool) or not isinstance(requested, int)):
        raise TypeError(f"`device` must be a torch.device, a device name or an index, got {requested!r}")
    if requested is not None and requested < 0:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        return torch.device("cpu")
    if requested is not None:
        return torch.device(f"cuda:{requested}")
    rank = int(os.environ.get("LOCAL_RANK", "0")) if rank is None else rank
    return torch.device(f"cuda:{rank % torch.cuda.device_count()}")


def check_tagging_options(threshold=None, top_k=None, language="en", names=None) -> tuple[float | None, int | None, str]:
    """The call options that decide which tags an image gets, checked: `threshold` (`None`: per tag, else one value
    in [0, 1]), `top_k` (`None` or a positive integer), `language` (`"en"` or `"zh"`). Every tagging entry point of the
    package checks them here, before it loads a model; `names` maps an option to what the caller calls it (e.g.
    `{"threshold": "--threshold"}`), for the messages."""
    names = names or {}
    return (
        None if threshold is None else validate_threshold(threshold, names.get("threshold", "threshold")),
        validate_top_k(top_k, names.get("top_k", "top_k")),
        validate_language(language),
    )


def _own_copy(model: nn.Module) -> nn.Module:
    """A copy of `model`'s module tree for a pipeline to own, without copying any weights: new modules, and new
    Parameter objects over the same tensor memory (the buffers are the same tensors). Moving or casting the copy
    replaces its Parameters' data and its buffers, and installing fast paths replaces its submodules, so none of it
    reaches `model`, which keeps its classes, dtypes, device and training flag."""
    memo = {id(param): nn.Parameter(param.detach(), requires_grad=param.requires_grad) for param in model.parameters()}
    memo.update((id(buffer), buffer) for buffer in model.buffers())
    return copy.deepcopy(model, memo)


def templates_from_hypothesis(hypothesis_template):
    """The `templates` a `hypothesis_template` stands for: the name of a template ensemble as it is, one template
    (a string containing `"{}"`) as a one-template list, a list of templates as it is."""
    if isinstance(hypothesis_template, str):
        if "{}" in hypothesis_template:
            return [hypothesis_template]
        known = sorted(NAME_TEMPLATE_SETS) if NAME_TEMPLATE_SETS is not None else ["compact", "ram_plus"]
        if hypothesis_template in known:
            return hypothesis_template
        raise ValueError(
            f"`hypothesis_template` must contain '{{}}' (where the label goes), e.g. 'This is a photo of {{}}.', or name a "
            f"template ensemble ({', '.join(map(repr, known))}); got {hypothesis_template!r:.200}"
        )
    if isinstance(hypothesis_template, (list, tuple)) and hypothesis_template:
        return list(hypothesis_template)
    raise TypeError(f"`hypothesis_template` must be a string, got {type(hypothesis_template).__name__}")


class _Indexed:
    """One input of a list with its position, so that an error names the right image."""

    __slots__ = ("index", "item")

    def __init__(self, index, item):
        self.index, self.item = index, item


class _BuiltinTags:
    """The model's own tags (all, or some by name): what the pipeline tags with where the package's `TagSet` is not
    installed (a saved folder's code run with `trust_remote_code=True`). New tag names need the package."""

    def __init__(self, config, names=None):
        if isinstance(names, str):
            names = [names]
        if names is not None and (isinstance(names, Mapping) or not all(isinstance(n, str) for n in names)):
            raise ValueError(
                "descriptions and TagSets need the transformers-ramplus package (pip install transformers-ramplus); "
                "this folder's own code tags with the model's built-in tags, or some of them by name"
            )
        all_names = config.tag_names
        if names is None:
            self.indices = None
        else:
            unknown = [n for n in names if n not in config.label2id]
            if unknown:
                raise ValueError(
                    f"{unknown[:5]} are not built-in tags of this model; new tags need the transformers-ramplus package "
                    "(pip install transformers-ramplus)"
                )
            self.indices = [config.label2id[n] for n in names]
        chosen = range(len(all_names)) if self.indices is None else self.indices
        thresholds, chinese = config.thresholds(), config.tag_names_chinese
        self.names = [all_names[i] for i in chosen]
        self.thresholds = [thresholds[i] for i in chosen]
        self.chinese_names = [chinese[i] if chinese else None for i in chosen]
        # Tag2Text's `delete_tag_index`: tags its authors never output (they disturb captions)
        deleted = getattr(config, "delete_tag_index", None) or []
        self.keep = None
        if deleted:
            self.keep = torch.tensor([i not in set(deleted) for i in chosen], dtype=torch.bool)

    def labels(self, language: str = "en") -> list[str]:
        if validate_language(language) == "en" or all(c is None for c in self.chinese_names):
            return list(self.names)
        return [c.strip() if c else n for n, c in zip(self.names, self.chinese_names)]

    def model_inputs(self, model) -> dict:
        if self.indices is None:
            return {}
        return {"tag_indices": torch.tensor(self.indices, dtype=torch.long, device=model.label_embeds.device)}


class ZeroShotImageTaggingPipeline(Pipeline):
    """
    Open-set image tagging with RAM++: for each image, the tags whose score passes their threshold, as
    `[{"label": str, "score": float}, ...]` sorted by score (highest first).

    Example:

    ```python
    >>> import transformers_ramplus  # registers the task
    >>> from transformers import pipeline

    >>> tagger = pipeline("zero-shot-image-tagging", model="/tmp/ram-plus-tiny")
    >>> tagger("photo.jpg")                                        # all built-in tags, tuned thresholds
    >>> tagger(["a.jpg", "b.jpg"], candidate_labels=["belly", "zebra"], threshold=0.5, top_k=5)
    >>> tagger("photo.jpg", candidate_labels={"zebra": ["a striped horse", "black and white stripes"]})
    ```

    Call arguments:
        images: one image or a list (paths, URLs, PIL images, numpy arrays; see [`RamPlusImageProcessor`]); a 4-D
            array or tensor is a batch (one result per image). A bad input raises a `ValueError` naming its position.
        candidate_labels: `None` (all built-in tags), a list of tag names (built-in names reuse the trained embeddings
            and thresholds; other names are embedded with the authors' 63-template ensemble), a mapping
            `tag -> descriptions`, or a [`TagSet`].
        threshold: `None` (per-tag thresholds: tuned for built-in tags, 0.5 for new ones) or one float for all.
        top_k: keep at most this many tags per image.
        language: `"en"` or `"zh"` (Chinese names of built-in tags).
        batch_size: images per forward pass.
        timeout: seconds to wait for an image URL's server (default: the image processor's `timeout`, 10 s).
        apply_exif_orientation: rotate/flip images by their EXIF orientation tag (default: the image processor's
            `apply_exif_orientation`, on); `False` reads them as stored, as the original RAM++ code does.
        templates: how new tag names are embedded: `"ram_plus"` (default, the authors' ensemble), `"compact"`, or a
            list of your own templates (see [`TagSet.from_model`]).
        hypothesis_template: as in transformers' zero-shot pipelines (CLIP, SigLIP): one template such as
            `"This is a photo of {}."` (new tag names are embedded with it alone; `"{}"`: the names as written), or the
            name of a template ensemble (`"ram_plus"`, `"compact"`). The same as `templates=[template]` or
            `templates=name`; built-in tag names keep their trained embeddings either way.
        all_labels: `True` returns every tag of the tag set (every candidate label) with its score, sorted by score,
            without thresholds (`top_k` and an explicit `threshold` still apply); the default under the
            `"zero-shot-image-classification"` task.
        raw_scores: `True` returns, per image, the score (sigmoid) of every tag of the tag set as a float32 tensor in
            the tag set's order, instead of the tags: no threshold, no `top_k` (for benchmarks and calibration).
        tag_map: rename, translate, merge, drop or keep tags after the thresholds (then `top_k`): a [`TagMap`], a
            dict of its sections, or the path of a YAML/JSON tag map file (see `transformers_ramplus.tags.tag_map`).
            Names of the map that the tag set lacks are logged once as a warning.

    Construction arguments (besides the usual `model`, `device`, `dtype`...):
        optimize (`bool`, defaults to `True`): run the model with [`enable_fast_inference`] (same outputs, faster).
            `False` keeps the reference computation.
        precision (`str`, defaults to `"auto"`): `"fp32"`, `"bf16"` or `"int8"` (CPU only: int8 linears, the rest
            in bf16 on CPUs with VNNI/AMX, in fp32 on AVX2-only CPUs) for [`enable_fast_inference`], or `"auto"`:
            the fastest precision this device runs well (see `transformers_ramplus.inference.precision`: bf16 on
            CPUs with AMX or AVX-512 BF16 and on GPUs that support it, else fp32; a model loaded with
            `dtype=torch.bfloat16` keeps bf16; one log line says what was chosen and why). An explicit bf16 or int8 on a CPU that only emulates it warns once.

    Under the task `"zero-shot-image-classification"` (`pipeline("zero-shot-image-classification", model=DIR,
    trust_remote_code=True)`: the folder declares this pipeline for that task) it answers as transformers' CLIP/SigLIP
    pipeline does: `candidate_labels` are required and every one of them is returned with its score, sorted by score
    (no threshold unless one is given). The scores are independent sigmoids, as SigLIP's (not a softmax over the
    labels as CLIP's): each says whether that tag is in the image, and they need not sum to 1.

    The pipeline never changes the model object it is given: it works on its own copy of the model's modules
    (`_own_copy`: the weights' memory is shared, not copied), which it moves to `device`, casts to `precision` (new
    tensors for the copy only) and gives the fast paths. (A model spread over several devices by a `device_map` is used
    as it is, with its reference computation.)
    """

    _load_processor = False
    _load_image_processor = None
    _load_feature_extractor = False
    _load_tokenizer = None
    _load_video_processor = False
    _pipeline_calls_generate = False
    _non_generation_params = ("top_k",)

    def __init__(self, *args, optimize: bool = True, precision: str | None = "auto", **kwargs):
        if precision not in (None, "auto") and not optimize:
            raise ValueError(f"precision={precision!r} needs optimize=True (it is applied by enable_fast_inference)")
        model = args[0] if args else kwargs.pop("model")
        # spread over several devices by accelerate, whose hooks hold the weights: used as it is
        dispatched = len(set((getattr(model, "hf_device_map", None) or {}).values())) > 1
        if not dispatched:
            model = _own_copy(model)  # before `Pipeline` moves it to the device
        super().__init__(model, *args[1:], **kwargs)
        self._place_on_requested_device(kwargs.get("device"))
        if optimize and not dispatched and enable_fast_inference is not None and supports_fast_inference(self.model):
            if resolve_precision is not None:
                precision = resolve_precision(precision, self.model.device, self.model.dtype)
            elif precision in (None, "auto"):
                dtype = self.model.dtype
                precision = {torch.float32: "fp32", torch.bfloat16: "bf16"}.get(dtype)
            if precision is not None:  # other dtypes (fp16 on a GPU) keep the reference model
                self.model = enable_fast_inference(self.model, precision=precision)
        if self.image_processor is None:
            size = self.model.config.vision_config.image_size
            size = size if isinstance(size, int) else size[0]
            self.image_processor = RamPlusImageProcessor(size={"height": size, "width": size})
        if self.tokenizer is None and self.processor is not None:
            self.tokenizer = getattr(self.processor, "tokenizer", None)
        if self.tokenizer is None and tokenizer_for_model is not None and getattr(self.model, "text_model", None) is not None:
            self.tokenizer = tokenizer_for_model(self.model)  # a model object: the factory loaded no tokenizer
        self._tag_sets: OrderedDict = OrderedDict()
        self._checked_tag_maps: set = set()

    def _place_on_requested_device(self, requested) -> None:
        """transformers' `Pipeline` ignores `device` while a torch.distributed process group exists (it keeps the
        model's own device, the CPU for a model loaded from a path): a sharded `ramplus tag` or any pipeline made
        after `init_process_group` computed on the CPU. The device asked for wins here, as it does without a group."""
        if requested is None or getattr(self.model, "hf_device_map", None) is not None:
            return
        device = resolve_device(requested)
        if device != self.device:
            self.device = device
        if self.model.device != device:
            self.model.to(device)

    # ------------------------------------------------------------------ parameters
    def _sanitize_parameters(
        self,
        candidate_labels=_UNSET,
        threshold=_UNSET,
        top_k=_UNSET,
        language=_UNSET,
        templates=_UNSET,
        timeout=_UNSET,
        raw_scores=_UNSET,
        tag_map=_UNSET,
        apply_exif_orientation=_UNSET,
        hypothesis_template=_UNSET,
        all_labels=_UNSET,
        **kwargs,
    ):
        if kwargs:
            raise TypeError(f"unexpected argument(s) for the {self.task or 'zero-shot-image-tagging'} pipeline: {sorted(kwargs)}")
        preprocess_params, forward_params, postprocess_params = {}, {}, {}
        if apply_exif_orientation is not _UNSET:
            if apply_exif_orientation is not None and not isinstance(apply_exif_orientation, bool):
                raise TypeError(f"apply_exif_orientation must be True, False or None, got {apply_exif_orientation!r}")
            preprocess_params["apply_exif_orientation"] = apply_exif_orientation
        if timeout is not _UNSET:
            if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0):
                raise ValueError(f"`timeout` must be None or a positive number of seconds, got {timeout!r}")
            preprocess_params["timeout"] = timeout
        if hypothesis_template is not _UNSET and hypothesis_template is not None:
            from_hypothesis = templates_from_hypothesis(hypothesis_template)
            if templates is not _UNSET and templates is not None and templates != from_hypothesis:
                raise ValueError("pass `hypothesis_template` or `templates`, not both")
            templates = from_hypothesis
        classification = self.task == CLASSIFICATION_TASK
        if candidate_labels is not _UNSET or templates is not _UNSET:
            tag_set = self.get_tag_set(
                None if candidate_labels is _UNSET else candidate_labels,
                templates=None if templates is _UNSET else templates,
            )
            forward_params["tag_set"] = tag_set
            postprocess_params["tag_set"] = tag_set
        given = {"threshold": threshold, "top_k": top_k, "language": language}
        given = {name: value for name, value in given.items() if value is not _UNSET}
        checked = dict(zip(("threshold", "top_k", "language"), check_tagging_options(**given)))
        postprocess_params.update({name: checked[name] for name in given})
        if raw_scores is not _UNSET:
            postprocess_params["raw_scores"] = bool(raw_scores)
        if tag_map is not _UNSET:
            postprocess_params["tag_map"] = self._tag_map(tag_map)
            if postprocess_params["tag_map"] is not None and postprocess_params.get("raw_scores"):
                raise ValueError("`tag_map` applies to tags, not to `raw_scores` (every tag's score): pass one of them")
        if all_labels is not _UNSET:
            postprocess_params["all_labels"] = bool(all_labels)
        elif classification:
            postprocess_params["all_labels"] = True
        return preprocess_params, forward_params, postprocess_params

    def _tag_map(self, tag_map):
        """`tag_map` as an object with `apply(tags, top_k)` (a `TagMap`; a dict or file needs the package)."""
        if tag_map is None or callable(getattr(tag_map, "apply", None)):
            return tag_map
        if TagMap is None:
            raise ValueError("a tag map given as a dict or file needs the transformers-ramplus package (pip install transformers-ramplus)")
        return TagMap.coerce(tag_map)

    def get_tag_set(self, candidate_labels=None, templates=None):
        """The [`TagSet`] for `candidate_labels` (cached: the same labels again cost no text work)."""
        if getattr(self.model.config, "model_type", None) == "tag2text":  # learned tag embeddings: no open set
            if isinstance(candidate_labels, _BuiltinTags) and templates is None:
                return candidate_labels  # this pipeline's own tag set, handed back (`tag_batches`)
            if candidate_labels is not None or templates is not None:
                raise ValueError(
                    "Tag2Text has no open set: it tags with its own built-in tags only (its tag embeddings are learned, "
                    "not text embeddings); call the pipeline without `candidate_labels` / `templates`, or use RAM++ "
                    "or RAM for new tags"
                )
            return _BuiltinTags(self.model.config, None)
        if TagSet is None:  # remote code without the package: built-in tags only
            if templates is not None:
                raise ValueError("`templates` need the transformers-ramplus package (pip install transformers-ramplus)")
            return _BuiltinTags(self.model.config, candidate_labels)
        if isinstance(candidate_labels, TagSet):
            return candidate_labels
        if candidate_labels is not None and not isinstance(candidate_labels, (str, list, tuple, Mapping)):
            raise TypeError(
                "`candidate_labels` must be None, a list of tag names, a mapping tag -> descriptions or a TagSet, got "
                f"{type(candidate_labels).__name__}"
            )
        key = (_freeze(candidate_labels), templates if templates is None or isinstance(templates, str) else tuple(templates))
        tag_set = self._tag_sets.get(key)
        if tag_set is None:
            tag_set = TagSet.from_model(self.model, candidate_labels, tokenizer=self.tokenizer, templates=templates)
            self._tag_sets[key] = tag_set
            while len(self._tag_sets) > 8:
                self._tag_sets.popitem(last=False)
        else:
            self._tag_sets.move_to_end(key)
        return tag_set

    def __call__(self, images=None, candidate_labels=None, **kwargs):
        """Tag `images` (one or a list). See the class docstring for the arguments."""
        if images is None and "image" in kwargs:
            images = kwargs.pop("image")  # the name transformers' zero-shot-image-classification pipeline uses
        if images is None:
            raise ValueError("pass at least one image")
        if self.task == CLASSIFICATION_TASK and candidate_labels is None:
            raise ValueError(f"the {CLASSIFICATION_TASK} task needs `candidate_labels` (the labels to score)")
        if isinstance(images, tuple):
            images = list(images)
        if getattr(images, "ndim", None) == 4 and hasattr(images, "shape"):
            images = list(images)  # a batch array/tensor: one result per image, like a list
        if isinstance(images, list):
            if not images:
                raise ValueError("no images were given (empty list)")
            images = [_Indexed(index, item) for index, item in enumerate(images)]
        elif isinstance(images, types.GeneratorType):
            images = (_Indexed(index, item) for index, item in enumerate(images))
        return super().__call__(images, candidate_labels=candidate_labels, **kwargs)

    # ------------------------------------------------------------------ steps
    def preprocess(self, image, timeout=None, apply_exif_orientation=None):
        index = 0
        if isinstance(image, _Indexed):
            index, image = image.index, image.item
        reader = getattr(self.image_processor, "load_image", None)
        if reader is None:
            return self.image_processor(image, return_tensors="pt")
        # names the input and its position when it fails; the EXIF orientation is applied here (unless turned off)
        image = reader(image, index, timeout=timeout, apply_exif_orientation=apply_exif_orientation)
        return self.image_processor(image, return_tensors="pt", apply_exif_orientation=False)

    def _forward(self, model_inputs, tag_set=None):
        logits = self.tag_logits(model_inputs["pixel_values"], tag_set)
        self.check_logits(logits, tag_set)
        return {"logits": logits}

    def tag_logits(self, pixel_values, tag_set=None):
        """The model's tag logits `(batch, tags)` for `pixel_values` (already on the model's device) and `tag_set`
        (default: the built-in tags). Nothing waits for the device here; `check_logits` checks them."""
        if tag_set is None:
            tag_set = self.get_tag_set(None)
        return self.model(pixel_values=pixel_values, **tag_set.model_inputs(self.model)).logits

    def check_logits(self, logits, tag_set=None):
        """Raise a `ValueError` naming the cause when `logits` hold NaN or infinite values."""
        if not torch.isfinite(logits).all():
            embeds = getattr(tag_set, "label_embeds", None)
            culprit = (
                "the tag set's embeddings"
                if embeds is not None and not torch.isfinite(embeds).all()
                else "the model's weights or label embeddings"
            )
            raise ValueError(f"the model produced NaN or infinite scores: {culprit} contain NaN or infinite values")

    def postprocess(
        self, model_outputs, tag_set=None, threshold=None, top_k=None, language="en", raw_scores=False, tag_map=None,
        all_labels=False,
    ):
        logits = model_outputs["logits"].reshape(1, -1)
        return self.postprocess_batch(
            logits, tag_set=tag_set, threshold=threshold, top_k=top_k, language=language, raw_scores=raw_scores,
            tag_map=tag_map, all_labels=all_labels,
        )[0]

    def postprocess_batch(
        self, logits, tag_set=None, threshold=None, top_k=None, language="en", raw_scores=False, tag_map=None,
        all_labels=False,
    ) -> list:
        """`postprocess` for a batch of logits `(batch, tags)` at once (the thresholds are checked once): one result
        per image."""
        if raw_scores:  # every tag's score, in the tag set's order
            return list(torch.sigmoid(logits.float()).cpu().unbind(0))
        if tag_set is None:
            tag_set = self.get_tag_set(None)
        if all_labels and threshold is None:  # CLIP/SigLIP-style: every candidate label, sorted by score
            names = tag_set.labels(language)
            results = []
            for scores in torch.sigmoid(logits.float()).cpu().tolist():
                ranked = sorted(zip(scores, names), key=lambda pair: -pair[0])  # stable: ties keep order
                results.append([{"label": label, "score": score} for score, label in ranked[:top_k]])
            return results
        thresholds = tag_set.thresholds if threshold is None else threshold
        labels = tag_set.labels(language)
        keep = getattr(tag_set, "keep", None)
        if tag_map is None:
            return post_process_image_tagging(logits, thresholds, labels, top_k=top_k, keep=keep)
        key = (id(tag_map), id(tag_set), language)
        if key not in self._checked_tag_maps and callable(getattr(tag_map, "warn_unknown", None)):
            tag_map.warn_unknown(labels)  # once per map, tag set and language
            self._checked_tag_maps.add(key)
        return [tag_map.apply(tags, top_k=top_k) for tags in post_process_image_tagging(logits, thresholds, labels, keep=keep)]

    # ------------------------------------------------------------------ sharing
    def save_pretrained(self, save_directory, **kwargs):
        """Save a complete model folder (model, processor, tokenizer) with the project's remote-code bundle, so that
        `pipeline("zero-shot-image-tagging", model=save_directory, trust_remote_code=True)` works without
        `transformers_ramplus` installed."""
        if save_model_folder is None:  # remote code without the package: transformers saves the model and its code
            super().save_pretrained(save_directory, **kwargs)
            custom_object_save(self, save_directory)  # this module and the modules it imports relatively
            return
        save_model_folder(
            save_directory, self.model, image_processor=self.image_processor, tokenizer=self.tokenizer, **kwargs
        )


__all__ = [
    "CLASSIFICATION_TASK",
    "ZeroShotImageTaggingPipeline",
    "check_tagging_options",
    "resolve_device",
    "templates_from_hypothesis",
]
