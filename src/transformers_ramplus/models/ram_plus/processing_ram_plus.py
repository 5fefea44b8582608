# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""Processor for RAM++: image processor, optional CLIP tokenizer, and tag post-processing.

`post_process_image_tagging` (the module-level function) is the one implementation that turns tag logits into tags;
the processor's method and the `zero-shot-image-tagging` pipeline both call it. The tag vocabulary (names, Chinese
names, thresholds) is read from the model config, its one home.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import torch
from huggingface_hub import file_exists
from transformers import BatchFeature
from transformers.processing_utils import ProcessorMixin
from transformers.utils import cached_file

from .configuration_ram_plus import (
    RamPlusConfig,
    validate_language,
    validate_threshold,
    validate_thresholds,
    validate_top_k,
)
from .image_processing_ram_plus import RamPlusImageProcessor


SORT_ORDERS = ("score", "index")
MAX_TEXT_TOKENS = 77  # the CLIP text tower's context: longer texts are truncated
# keys that `processor_config.json` files of earlier versions hold; the vocabulary now lives in the model config
_LEGACY_VOCABULARY_KEYS = ("tag_names", "tag_names_chinese", "tag_thresholds", "default_threshold")


def post_process_image_tagging(
    logits,
    thresholds: float | Sequence[float],
    names: Sequence[str],
    top_k: int | None = None,
    keep: torch.Tensor | None = None,
    sort_by: str = "score",
) -> list[list[dict]]:
    """Turn tag logits `(batch, num_tags)` (or `(num_tags,)`) into tags: for each image a list of
    `{"label": str, "score": float}`, the tags whose score `sigmoid(logit)` is strictly greater than their threshold.

    Args:
        thresholds: one threshold for all tags, or one per tag (each in [0, 1]).
        names: the label of every tag (column of `logits`).
        top_k: keep at most this many tags per image (the highest scores).
        keep: optional `(num_tags,)` boolean mask of the tags that may be output.
        sort_by: `"score"` (highest first; ties keep vocabulary order) or `"index"` (vocabulary order).
    """
    logits = getattr(logits, "logits", logits)
    if not isinstance(logits, torch.Tensor):
        logits = torch.as_tensor(logits)
    if logits.dim() == 1:
        logits = logits.unsqueeze(0)
    if logits.dim() != 2:
        raise ValueError(f"logits must be (batch, num_tags), got shape {tuple(logits.shape)}")
    num_tags = logits.shape[1]
    if len(names) != num_tags:
        raise ValueError(f"logits have {num_tags} tags but {len(names)} tag names are known")
    if isinstance(thresholds, (list, tuple, torch.Tensor)):
        cutoff = torch.tensor(validate_thresholds(thresholds, num_tags=num_tags), dtype=torch.float32)
    else:
        cutoff = torch.full((num_tags,), validate_threshold(thresholds))
    validate_top_k(top_k)
    if sort_by not in SORT_ORDERS:
        raise ValueError(f"`sort_by` must be 'score' or 'index', got {sort_by!r}")
    scores = torch.sigmoid(logits.detach().float().cpu())
    selected = scores > cutoff
    if keep is not None:
        selected &= keep.cpu()
    results = []
    for image_scores, image_selected in zip(scores, selected):
        indices = image_selected.nonzero().flatten()
        order = torch.argsort(image_scores[indices], descending=True, stable=True)
        indices = indices[order]
        if top_k is not None:
            indices = indices[:top_k]
        if sort_by == "index":
            indices = indices.sort().values
        results.append([{"label": names[i], "score": float(image_scores[i])} for i in indices.tolist()])
    return results


class _OptionalTokenizerAttributes:
    """`get_attributes` that leaves out the tokenizer on instances built without one (the text tower is optional)."""

    def __get__(self, instance, owner):
        def get_attributes():
            if instance is not None and instance.__dict__.get("tokenizer") is None:
                return ["image_processor"]
            return ["image_processor", "tokenizer"]

        return get_attributes


_TOKENIZER_FILES = ("tokenizer_config.json", "tokenizer.json", "vocab.json")


class RamPlusProcessor(ProcessorMixin):
    r"""
    Wraps a [`RamPlusImageProcessor`] (and, for open-set tagging, a CLIP tokenizer) and turns logits into tags.

    The tag vocabulary used by [`~RamPlusProcessor.post_process_image_tagging`] (English names, Chinese names, per-tag
    thresholds) is the model config's: `RamPlusProcessor.from_pretrained(model_dir)` reads it from the folder's
    `config.json`, [`~RamPlusProcessor.from_model_config`] takes a config, and `config=model.config` at
    post-processing overrides both.
    """

    get_attributes = _OptionalTokenizerAttributes()

    def __init__(self, image_processor=None, tokenizer=None, **kwargs):
        if image_processor is None:
            image_processor = RamPlusImageProcessor()
        for key in _LEGACY_VOCABULARY_KEYS:  # a `processor_config.json` of an earlier version: the config rules
            kwargs.pop(key, None)
        self.model_config: RamPlusConfig | None = None  # not serialized: `config.json` holds it
        self.__dict__["tokenizer"] = tokenizer
        if tokenizer is None:
            super().__init__(image_processor, **kwargs)
        else:
            super().__init__(image_processor, tokenizer, **kwargs)

    @classmethod
    def _load_tokenizer_from_pretrained(cls, sub_processor_type, pretrained_model_name_or_path, **kwargs):
        """Load the CLIP tokenizer when the checkpoint has one; a model without a text tower has none."""

        subfolder = kwargs.get("subfolder") or ""
        local = os.path.isdir(pretrained_model_name_or_path)
        if local:
            folder = os.path.join(pretrained_model_name_or_path, subfolder)
            has_tokenizer = any(os.path.isfile(os.path.join(folder, name)) for name in _TOKENIZER_FILES)
        else:
            name = f"{subfolder}/tokenizer_config.json" if subfolder else "tokenizer_config.json"
            try:
                has_tokenizer = file_exists(pretrained_model_name_or_path, name, revision=kwargs.get("revision"))
            except Exception:  # offline: let the regular loader decide
                has_tokenizer = True
        if not has_tokenizer:
            return None
        return super()._load_tokenizer_from_pretrained(sub_processor_type, pretrained_model_name_or_path, **kwargs)

    @classmethod
    def from_model_config(cls, config, image_processor=None, tokenizer=None) -> "RamPlusProcessor":
        """A processor that labels tags with the vocabulary of a [`RamPlusConfig`]."""
        processor = cls(image_processor=image_processor, tokenizer=tokenizer)
        processor.model_config = config
        return processor

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        """Load the image processor (and tokenizer), and the tag vocabulary from the model's `config.json` in the
        same folder or Hub repository (when there is one)."""
        processor = super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        hub_kwargs = {
            k: kwargs[k]
            for k in ("cache_dir", "force_download", "local_files_only", "token", "revision", "subfolder")
            if k in kwargs
        }
        processor.model_config = None  # a processor saved on its own: pass `config=` when post-processing
        try:
            found = cached_file(
                pretrained_model_name_or_path, "config.json", _raise_exceptions_for_missing_entries=False, **hub_kwargs
            )
        except OSError:
            found = None
        if found is not None:
            config_dict, _ = RamPlusConfig.get_config_dict(pretrained_model_name_or_path, **hub_kwargs)
            # a RAM folder (`model_type` "ram", a RamPlusConfig subclass): only its tag vocabulary is read here
            config_dict = {key: value for key, value in config_dict.items() if key != "model_type"}
            processor.model_config = RamPlusConfig.from_dict(config_dict)
        return processor

    @property
    def tag_names(self) -> list[str] | None:
        """English tag names of the model config (None without one)."""
        return None if self.model_config is None else self.model_config.tag_names

    def __call__(self, images=None, text=None, return_tensors="pt", **kwargs):
        """Prepare `images` (see [`RamPlusImageProcessor`]) and/or tokenize `text` with the CLIP tokenizer."""
        if images is None and text is None:
            raise ValueError("pass `images`, `text`, or both")
        data = {}
        if images is not None:
            data.update(self.image_processor(images, return_tensors=return_tensors, **kwargs))
        if text is not None:
            if self.tokenizer is None:
                raise ValueError("this processor has no tokenizer, so it cannot tokenize text")
            encoded = self.tokenizer(
                text, padding=True, truncation=True, max_length=MAX_TEXT_TOKENS, return_tensors=return_tensors
            )
            data["input_ids"] = encoded["input_ids"]
            data["attention_mask"] = encoded["attention_mask"]

        return BatchFeature(data=data, tensor_type=return_tensors)

    # ------------------------------------------------------------------ post-processing
    def post_process_image_tagging(
        self,
        outputs_or_logits,
        threshold: float | Sequence[float] | None = None,
        top_k: int | None = None,
        language: str = "en",
        exclude: Iterable[int | str] | None = None,
        tag_names: Sequence[str] | None = None,
        config=None,
        sort_by: str = "score",
    ) -> list[list[dict]]:
        """
        Turn tag logits into tags: for each image a list of `{"label": str, "score": float}` sorted by score.

        Args:
            outputs_or_logits: a [`RamPlusOutput`] or logits of shape `(batch, num_tags)` (or `(num_tags,)`).
            threshold: `None` uses the per-tag thresholds of the model config (a tag is kept when `score >
                threshold`, strictly, as the original); a float applies one threshold to all tags; a sequence gives
                one per tag.
            top_k: keep at most this many tags per image (after thresholding).
            language: `"en"` or `"zh"` (Chinese names of the built-in tags).
            exclude: tags to drop, by index or by English name (the original's `delete_tag_index`).
            tag_names: names for the columns of the logits (open-set tags); defaults to the vocabulary.
            config: a [`RamPlusConfig`] to take names and thresholds from instead of the processor's.
            sort_by: `"score"` (highest first, the default) or `"index"` (vocabulary order, as the original's strings).
        """
        logits = getattr(outputs_or_logits, "logits", outputs_or_logits)
        if not isinstance(logits, torch.Tensor):
            logits = torch.as_tensor(logits)
        num_tags = logits.shape[-1] if logits.dim() else 0
        language = validate_language(language)
        config = config if config is not None else self.model_config
        english = list(tag_names) if tag_names is not None else (config.tag_names if config is not None else None)
        if english is None:
            raise ValueError(
                "no tag vocabulary: load the processor from a model folder, build it with "
                "`RamPlusProcessor.from_model_config(model.config)`, or pass `config=` or `tag_names=`"
            )
        if language == "zh" and tag_names is None:
            if config.tag_names_chinese is None:
                raise ValueError("no Chinese tag names are known: the model was converted without them")
            names = list(config.tag_names_chinese)
        else:
            names = english
        if threshold is None:
            if tag_names is not None and (config is None or len(tag_names) != config.num_tags):
                raise ValueError("`tag_names` of new tags need a `threshold` (one number, or one per tag)")
            threshold = config.thresholds()
        keep = None
        if exclude is not None:
            lookup = {name: index for index, name in enumerate(english)}
            keep = torch.ones(num_tags, dtype=torch.bool)
            for item in exclude:
                if isinstance(item, str):
                    if item not in lookup:
                        raise ValueError(f"`exclude` names an unknown tag: {item!r}")
                    item = lookup[item]
                if not 0 <= int(item) < num_tags:
                    raise ValueError(f"`exclude` index {item} is outside [0, {num_tags})")
                keep[int(item)] = False
        return post_process_image_tagging(logits, threshold, names, top_k=top_k, keep=keep, sort_by=sort_by)

    @staticmethod
    def format_tags(tags: list[dict], separator: str = " | ") -> str:
        """Join the labels of one image's tags with `separator` (the original prints `" | "`-joined strings)."""
        return separator.join(tag["label"] for tag in tags)


__all__ = ["RamPlusProcessor", "post_process_image_tagging"]
