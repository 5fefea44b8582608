# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""Processor for Tag2Text: the image processor (RAM++'s: 384 px bilinear, ImageNet mean/std), the BERT tokenizer
(bert-base-uncased plus `[DEC]` and `[ENC]`), tag post-processing (per-tag thresholds and `delete_tag_index`) and
caption decoding (the prompt cut off)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import BatchFeature
from transformers.processing_utils import ProcessorMixin
from transformers.utils import cached_file

from ..ram_plus.configuration_ram_plus import validate_language
from ..ram_plus.image_processing_ram_plus import RamPlusImageProcessor
from ..ram_plus.processing_ram_plus import post_process_image_tagging
from .configuration_tag2text import Tag2TextConfig


DEFAULT_PROMPT = "a picture of "
TAG_MAX_LENGTH = 40
CAPTION_MAX_LENGTH = 40


def decode_captions(tokenizer, sequences, prompt: str = DEFAULT_PROMPT) -> list[str]:
    """Captions from generated ids: the decoded text without special tokens and, as the original, with the prompt's
    characters cut off the front."""
    texts = tokenizer.batch_decode(sequences, skip_special_tokens=True)
    return [t[len(prompt) :] if t.startswith(prompt.strip()) else t for t in texts]


class Tag2TextProcessor(ProcessorMixin):
    r"""
    Wraps a [`RamPlusImageProcessor`] and a BERT tokenizer for [`Tag2TextForConditionalGeneration`].

    - `processor(images=...)`: `pixel_values`;
    - `processor(images=..., text=...)`: also the caption start (`input_ids`, `[DEC]` + the text without `[SEP]`)
      for `generate` (the `image-text-to-text` pipeline passes its `text` here; an empty text means the prompt);
    - `processor(images=..., captions=...)`: training captions (`input_ids`, `attention_mask`, `caption_labels`
      with the padding and the prompt masked), the prompt prepended to captions that lack it (`add_prompt=False`:
      the captions as given, as the original's training forward takes them);
    - `processor(tags=...)`: tag text for the tag encoder (`tag_input_ids`, `tag_attention_mask`);
    - `post_process_image_tagging(logits)`: the tags above their thresholds, `delete_tag_index` dropped;
    - `batch_decode` / `post_process_image_text_to_text`: captions, with the prompt cut off.
    """

    def __init__(self, image_processor=None, tokenizer=None, prompt: str = DEFAULT_PROMPT, **kwargs):
        if image_processor is None:
            image_processor = RamPlusImageProcessor()
        self.prompt = prompt
        self.model_config: Tag2TextConfig | None = None
        super().__init__(image_processor, tokenizer, **kwargs)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        processor = super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        hub_kwargs = {k: kwargs[k] for k in ("cache_dir", "local_files_only", "token", "revision") if k in kwargs}
        try:
            found = cached_file(
                pretrained_model_name_or_path, "config.json", _raise_exceptions_for_missing_entries=False, **hub_kwargs
            )
        except OSError:
            found = None
        if found is not None:
            processor.model_config = Tag2TextConfig.from_pretrained(pretrained_model_name_or_path, **hub_kwargs)
        return processor

    @classmethod
    def from_model_config(cls, config, image_processor=None, tokenizer=None) -> Tag2TextProcessor:
        processor = cls(image_processor=image_processor, tokenizer=tokenizer)
        processor.model_config = config
        return processor

    @property
    def tag_names(self) -> list[str] | None:
        return None if self.model_config is None else self.model_config.tag_names

    # ------------------------------------------------------------------ inputs
    def _ids(self, texts, **options) -> dict:
        return self.tokenizer(list(texts), truncation=True, return_tensors="pt", **options)

    def __call__(
        self, images=None, text=None, captions=None, tags=None, add_prompt: bool = True, return_tensors="pt", **kwargs
    ):
        if images is None and text is None and captions is None and tags is None:
            raise ValueError("pass `images`, `text`, `captions` or `tags`")
        if text is not None and captions is not None:
            raise ValueError("pass `text` (a caption start, for generation) or `captions` (training), not both")
        for name in ("padding", "truncation", "max_length"):
            kwargs.pop(name, None)  # the pipelines' tokenizer options: the lengths here are the model's
        data = {}
        if images is not None:
            data.update(self.image_processor(images, return_tensors=return_tensors, **kwargs))
        if (text is not None or captions is not None or tags is not None) and self.tokenizer is None:
            raise ValueError("this processor has no tokenizer, so it cannot tokenize text")
        if text is not None:
            texts = [text] if isinstance(text, str) else list(text)
            texts = [t if t.strip() else self.prompt for t in texts]
            encoded = self._ids(texts, padding="longest")
            if len({len(self.tokenizer(t).input_ids) for t in texts}) > 1:
                raise ValueError("caption starts of different lengths cannot be generated in one batch")
            input_ids = encoded["input_ids"][:, :-1].clone()  # the final [SEP] cut: the caption continues
            input_ids[:, 0] = self.tokenizer.bos_token_id
            data["input_ids"] = input_ids
            data["attention_mask"] = encoded["attention_mask"][:, :-1]
        if captions is not None:
            texts = [captions] if isinstance(captions, str) else list(captions)
            if add_prompt:  # as the authors' caption datasets: the prompt starts every training caption
                texts = [t if t.lower().startswith(self.prompt.strip().lower()) else self.prompt + t for t in texts]
            encoded = self._ids(texts, padding="longest", max_length=CAPTION_MAX_LENGTH)
            input_ids = encoded["input_ids"].clone()
            input_ids[:, 0] = self.tokenizer.bos_token_id
            labels = input_ids.masked_fill(encoded["attention_mask"] == 0, -100)
            labels[:, : len(self.tokenizer(self.prompt).input_ids) - 1] = -100
            data.update(input_ids=input_ids, attention_mask=encoded["attention_mask"], caption_labels=labels)
        if tags is not None:
            entries = [tags] if isinstance(tags, str) else list(tags)
            texts = []
            for entry in entries:
                if isinstance(entry, (list, tuple)):
                    entry = " | ".join(str(tag).strip() for tag in entry)
                if not isinstance(entry, str):
                    raise TypeError(f"each entry of `tags` must be a string or a list of strings, got {entry!r}")
                texts.append(entry)
            encoded = self._ids(texts, padding="max_length", max_length=TAG_MAX_LENGTH)
            tag_ids = encoded["input_ids"].clone()
            tag_ids[:, 0] = self.tokenizer.convert_tokens_to_ids("[ENC]")
            data.update(tag_input_ids=tag_ids, tag_attention_mask=encoded["attention_mask"])
        return BatchFeature(data=data, tensor_type=return_tensors)

    # ------------------------------------------------------------------ outputs
    def post_process_image_tagging(
        self,
        outputs_or_logits,
        threshold: float | Sequence[float] | None = None,
        top_k: int | None = None,
        language: str = "en",
        config=None,
        sort_by: str = "index",
        exclude_deleted: bool = True,
    ) -> list[list[dict]]:
        """Tags per image as `{"label", "score"}` dicts: score `> threshold` (default: the per-tag thresholds),
        without the `delete_tag_index` tags (unless `exclude_deleted=False`). Sorted in vocabulary order like the
        original's strings (`sort_by="score"`: highest first)."""
        if validate_language(language) != "en":
            raise ValueError("Tag2Text's tags are English only")
        config = config if config is not None else self.model_config
        if config is None:
            raise ValueError("no tag vocabulary: load the processor from a model folder or pass `config=`")
        logits = getattr(outputs_or_logits, "logits", outputs_or_logits)
        logits = logits if isinstance(logits, torch.Tensor) else torch.as_tensor(logits)
        keep = None
        if exclude_deleted and config.delete_tag_index:
            keep = torch.ones(config.num_tags, dtype=torch.bool)
            keep[config.delete_tag_index] = False
        threshold = config.thresholds() if threshold is None else threshold
        return post_process_image_tagging(logits, threshold, config.tag_names, top_k=top_k, keep=keep, sort_by=sort_by)

    @staticmethod
    def format_tags(tags: list[dict], separator: str = " | ") -> str:
        return separator.join(tag["label"] for tag in tags)

    def batch_decode(self, sequences, skip_special_tokens: bool = True, cut_prompt: bool = True, **kwargs) -> list[str]:
        """Captions: the decoded text without special tokens and, as the original, with the prompt's characters
        cut off the front."""
        if cut_prompt and skip_special_tokens and not kwargs:
            return decode_captions(self.tokenizer, sequences, self.prompt)
        return self.tokenizer.batch_decode(sequences, skip_special_tokens=skip_special_tokens, **kwargs)

    def decode(self, sequence, **kwargs) -> str:
        return self.batch_decode([sequence], **kwargs)[0]

    def post_process_image_text_to_text(self, generated_outputs, skip_special_tokens=True, **kwargs):
        """Decoding for the `image-text-to-text` pipeline: full text (the pipeline itself removes the caption start)."""
        return self.tokenizer.batch_decode(generated_outputs, skip_special_tokens=skip_special_tokens, **kwargs)


__all__ = ["Tag2TextProcessor", "decode_captions"]
