# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""Processor for RAM++: image processor, optional CLIP tokenizer, and tag post-processing."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from transformers.processing_utils import ProcessorMixin


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
    thresholds) is stored on the processor (`processor_config.json`); build it from a model config with
    [`~RamPlusProcessor.from_model_config`] or pass `config=model.config` when post-processing.
    """

    get_attributes = _OptionalTokenizerAttributes()

    def __init__(
        self,
        image_processor=None,
        tokenizer=None,
        tag_names: Sequence[str] | None = None,
        tag_names_chinese: Sequence[str] | None = None,
        tag_thresholds: Sequence[float] | None = None,
        default_threshold: float = 0.68,
        **kwargs,
    ):
        if image_processor is None:
            from .image_processing_ram_plus import RamPlusImageProcessor

            image_processor = RamPlusImageProcessor()
        self.tag_names = list(tag_names) if tag_names is not None else None
        self.tag_names_chinese = list(tag_names_chinese) if tag_names_chinese is not None else None
        self.tag_thresholds = [float(t) for t in tag_thresholds] if tag_thresholds is not None else None
        self.default_threshold = float(default_threshold)
        self.__dict__["tokenizer"] = tokenizer
        if tokenizer is None:
            super().__init__(image_processor, **kwargs)
        else:
            super().__init__(image_processor, tokenizer, **kwargs)

    @classmethod
    def _load_tokenizer_from_pretrained(cls, sub_processor_type, pretrained_model_name_or_path, **kwargs):
        """Load the CLIP tokenizer when the checkpoint has one; a model without a text tower has none."""
        import os

        from huggingface_hub import file_exists

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
        """A processor carrying the tag vocabulary of a [`RamPlusConfig`]."""
        return cls(
            image_processor=image_processor,
            tokenizer=tokenizer,
            tag_names=config.tag_names,
            tag_names_chinese=config.tag_names_chinese,
            tag_thresholds=config.thresholds(),
            default_threshold=config.default_threshold,
        )

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
                text, padding=True, truncation=True, max_length=77, return_tensors=return_tensors
            )
            data["input_ids"] = encoded["input_ids"]
            data["attention_mask"] = encoded["attention_mask"]
        from transformers import BatchFeature

        return BatchFeature(data=data, tensor_type=return_tensors)

    # ------------------------------------------------------------------ post-processing
    def _vocabulary(self, config, tag_names, thresholds, language):
        if config is not None:
            names = config.tag_names_chinese if language == "zh" else config.tag_names
            default_thresholds = config.thresholds()
        else:
            names = self.tag_names_chinese if language == "zh" else self.tag_names
            default_thresholds = self.tag_thresholds
        if tag_names is not None:
            names = list(tag_names)
        if names is None:
            if language == "zh":
                raise ValueError("no Chinese tag names are known: the model was converted without them")
            names = None
        return names, (list(thresholds) if thresholds is not None else default_thresholds)

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
            threshold: `None` uses the per-tag thresholds (a tag is kept when `score > threshold`, strictly, as the
                original); a float applies one threshold to all tags; a sequence gives one per tag.
            top_k: keep at most this many tags per image (after thresholding).
            language: `"en"` or `"zh"` (Chinese names of the built-in tags).
            exclude: tags to drop, by index or by English name (the original's `delete_tag_index`).
            tag_names: names for the columns of the logits (open-set tags); defaults to the vocabulary.
            config: a [`RamPlusConfig`] to take names and thresholds from instead of this processor.
            sort_by: `"score"` (highest first, the default) or `"index"` (vocabulary order, as the original's strings).
        """
        logits = getattr(outputs_or_logits, "logits", outputs_or_logits)
        if not isinstance(logits, torch.Tensor):
            logits = torch.as_tensor(logits)
        if logits.dim() == 1:
            logits = logits.unsqueeze(0)
        if logits.dim() != 2:
            raise ValueError(f"logits must be (batch, num_tags), got shape {tuple(logits.shape)}")
        if language not in ("en", "zh"):
            raise ValueError(f"`language` must be 'en' or 'zh', got {language!r}")
        if sort_by not in ("score", "index"):
            raise ValueError(f"`sort_by` must be 'score' or 'index', got {sort_by!r}")
        if top_k is not None and (not isinstance(top_k, int) or top_k <= 0):
            raise ValueError(f"`top_k` must be a positive integer, got {top_k!r}")
        num_tags = logits.shape[1]
        threshold_list = threshold if isinstance(threshold, (list, tuple, torch.Tensor)) else None
        names, per_tag = self._vocabulary(config, tag_names, threshold_list, language)
        if names is None:
            names = [f"tag_{i}" for i in range(num_tags)]
        if len(names) != num_tags:
            raise ValueError(f"logits have {num_tags} tags but {len(names)} tag names are known")
        if threshold is None or threshold_list is not None:
            if per_tag is None:
                per_tag = [self.default_threshold] * num_tags
            if len(per_tag) != num_tags:
                raise ValueError(f"logits have {num_tags} tags but {len(per_tag)} thresholds are known")
            cutoff = torch.as_tensor(per_tag, dtype=torch.float32)
        else:
            if not 0.0 <= float(threshold) <= 1.0:
                raise ValueError(f"`threshold` must be in [0, 1], got {threshold!r}")
            cutoff = torch.full((num_tags,), float(threshold))
        keep = torch.ones(num_tags, dtype=torch.bool)
        if exclude is not None:
            english = self.tag_names if config is None else config.tag_names
            if tag_names is not None:
                english = list(tag_names)
            lookup = {name: index for index, name in enumerate(english or [])}
            for item in exclude:
                if isinstance(item, str):
                    if item not in lookup:
                        raise ValueError(f"`exclude` names an unknown tag: {item!r}")
                    item = lookup[item]
                if not 0 <= int(item) < num_tags:
                    raise ValueError(f"`exclude` index {item} is outside [0, {num_tags})")
                keep[int(item)] = False
        scores = torch.sigmoid(logits.detach().float().cpu())
        selected = (scores > cutoff) & keep
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

    @staticmethod
    def format_tags(tags: list[dict], separator: str = " | ") -> str:
        """Join the labels of one image's tags with `separator` (the original prints `" | "`-joined strings)."""
        return separator.join(tag["label"] for tag in tags)


__all__ = ["RamPlusProcessor"]
