# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""Training RAM++ with `transformers.Trainer`: the paper's objective, frozen parts, custom tag sets.

- `RamPlusTrainingArguments`: `TrainingArguments` with the paper's AdamW weight decay (0.05) and the settings the
  RAM++ data pipeline needs (`remove_unused_columns=False`, `label_names=["labels"]`).
- `RamPlusTrainer`: total loss = `tag_weight * tag_loss + align_weight * alignment_loss + distill_weight *
  distillation_loss` (weights default to the model config's, 1/1/1); a component whose inputs are absent from a
  batch is skipped; every component is logged separately (`tag_loss`, `alignment_loss`, `distillation_loss`) with
  the number of skipped broken images. `label_embeds` (a buffer) and the CLIP text tower are frozen; an optional
  frozen CLIP vision teacher (`CLIPVisionModelWithProjection`) turns the collator's 224-px view into distillation
  targets, or the dataset carries precomputed `teacher_image_embeds`.
- Custom tag sets: `encode_descriptions`, `add_tags` (replace or extend the vocabulary; new tags from descriptions
  through the text tower or from precomputed embeddings; threshold 0.5 for new tags), `save_tag_set` /
  `load_tag_set` (one safetensors file: `label_embeds` `(C, D, T)`, `description_counts` `(C,)`, names in metadata).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.utils import logging


logger = logging.get_logger(__name__)

NEW_TAG_THRESHOLD = 0.5
LOSS_COMPONENTS = ("tag_loss", "alignment_loss", "distillation_loss")


@dataclass
class RamPlusTrainingArguments(TrainingArguments):
    """`TrainingArguments` with RAM++ defaults: AdamW weight decay 0.05 (SPEC section 3), raw dataset columns kept
    for the collator, `labels` as the label column."""

    weight_decay: float = field(default=0.05, metadata={"help": "AdamW weight decay (the paper uses 0.05)"})
    remove_unused_columns: bool = field(default=False, metadata={"help": "keep image paths and captions"})
    label_names: list[str] | None = field(default_factory=lambda: ["labels"], metadata={"help": "label columns"})
    report_to: str | list[str] | None = field(default="none", metadata={"help": "logging integrations"})


def _unwrap(model: nn.Module) -> nn.Module:
    """The `RamPlusModel` inside DDP / PEFT wrappers."""
    from .modeling_ram_plus import RamPlusModel

    seen = model
    for _ in range(8):
        if isinstance(seen, RamPlusModel):
            return seen
        if hasattr(seen, "module"):
            seen = seen.module
        elif hasattr(seen, "get_base_model"):
            seen = seen.get_base_model()
        elif hasattr(seen, "model") and isinstance(seen.model, nn.Module):
            seen = seen.model
        else:
            break
    raise TypeError(f"expected a RamPlusModel (possibly wrapped), got {type(model).__name__}")


def freeze_frozen_parts(model: nn.Module) -> None:
    """Freeze what RAM++ never trains: the CLIP text tower (`label_embeds` is a buffer and has no gradient)."""
    inner = _unwrap(model)
    if inner.text_model is not None:
        inner.text_model.requires_grad_(False)
        inner.text_model.eval()


class _CollatorEpochCallback(TrainerCallback):
    """Tell the collator the epoch, so that its per-sample augmentations depend on (seed, epoch, sample_id)."""

    def __init__(self, collator):
        self.collator = collator

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.collator.set_epoch(int(math.floor((state.epoch or 0.0) + 1e-6)))


class RamPlusTrainer(Trainer):
    """`Trainer` for RAM++ with the paper's three losses (see the module docstring).

    Args:
        teacher_model (`CLIPVisionModelWithProjection`, *optional*): frozen CLIP image tower whose `image_embeds` of
            the collator's `teacher_pixel_values` are the distillation targets. Its projection width must equal the
            model's `text_embed_dim`.
        loss_weights (`dict`, *optional*): `{"tag": w, "alignment": w, "distillation": w}`; missing entries use the
            model config's `tag_loss_weight` / `align_loss_weight` / `distill_loss_weight`.
        Everything else as `transformers.Trainer`.
    """

    def __init__(self, *args, teacher_model: nn.Module | None = None, loss_weights: Mapping[str, float] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        inner = _unwrap(self.model)
        freeze_frozen_parts(self.model)
        unknown = set(loss_weights or {}) - {"tag", "alignment", "distillation"}
        if unknown:
            raise ValueError(f"unknown `loss_weights` keys {sorted(unknown)}; use 'tag', 'alignment', 'distillation'")
        weights = dict(loss_weights or {})
        self.loss_weights = {
            "tag_loss": float(weights.get("tag", inner.config.tag_loss_weight)),
            "alignment_loss": float(weights.get("alignment", inner.config.align_loss_weight)),
            "distillation_loss": float(weights.get("distillation", inner.config.distill_loss_weight)),
        }
        self.teacher_model = teacher_model
        if teacher_model is not None:
            width = getattr(teacher_model.config, "projection_dim", None)
            if width != inner.config.text_embed_dim:
                raise ValueError(
                    f"the teacher's projection_dim ({width}) must equal the model's text_embed_dim "
                    f"({inner.config.text_embed_dim})"
                )
            teacher_model.requires_grad_(False)
            teacher_model.eval()
        collator = self.data_collator
        if hasattr(collator, "set_epoch") and getattr(collator, "seed", 0) is None:
            collator.seed = self.args.seed  # per-sample augmentations that a resumed run reproduces
        if hasattr(collator, "set_epoch"):
            self.add_callback(_CollatorEpochCallback(collator))
        self._component_sums = {name: 0.0 for name in LOSS_COMPONENTS}
        self._component_counts = {name: 0 for name in LOSS_COMPONENTS}
        self.num_skipped_images = 0

    # ------------------------------------------------------------------ loss
    def _teacher_embeds(self, teacher_pixel_values: torch.Tensor) -> torch.Tensor:
        teacher = self.teacher_model
        device = teacher_pixel_values.device
        if next(teacher.parameters()).device != device:
            teacher.to(device)
        with torch.no_grad():
            dtype = next(teacher.parameters()).dtype
            return teacher(pixel_values=teacher_pixel_values.to(dtype)).image_embeds.float()

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        skipped = inputs.pop("num_skipped_images", None)
        if skipped is not None:
            self.num_skipped_images += int(skipped.sum())
        teacher_view = inputs.pop("teacher_pixel_values", None)
        if teacher_view is not None and self.teacher_model is not None and "teacher_image_embeds" not in inputs:
            inputs["teacher_image_embeds"] = self._teacher_embeds(teacher_view)
        pixel_values = inputs.get("pixel_values")
        if pixel_values is not None and pixel_values.shape[0] == 0:
            # every image of the batch was broken: a zero loss that still reaches every trainable parameter
            loss = sum(p.sum() * 0.0 for p in model.parameters() if p.requires_grad)
            return (loss, None) if return_outputs else loss
        outputs = model(**inputs, return_dict=True)
        total = None
        for name in LOSS_COMPONENTS:
            value = getattr(outputs, name, None)
            if value is None:
                continue
            self._component_sums[name] += float(value.detach())
            self._component_counts[name] += 1
            term = self.loss_weights[name] * value
            total = term if total is None else total + term
        if total is None:
            raise ValueError(
                "the batch gives no loss: it needs `labels`, captions (`caption_input_ids` / `caption_embeds`) or "
                "teacher embeddings"
            )
        return (total, outputs) if return_outputs else total

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad():
            loss, outputs = self.compute_loss(model, inputs, return_outputs=True)
        loss = loss.detach()
        if prediction_loss_only or outputs is None:
            return loss, None, None
        labels = inputs.get("labels")
        return loss, outputs.logits.detach(), None if labels is None else labels.detach()

    # ------------------------------------------------------------------ checkpoints
    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        """Reload a full-model checkpoint through `from_pretrained`: transformers v5 saves Swin weights under their
        serialized (original) names, which the base Trainer's plain `load_state_dict` does not map back."""
        from .modeling_ram_plus import RamPlusModel

        target = model if model is not None else self.model
        target = target.module if hasattr(target, "module") else target
        weights = os.path.join(resume_from_checkpoint, "model.safetensors")
        index = os.path.join(resume_from_checkpoint, "model.safetensors.index.json")
        if not isinstance(target, RamPlusModel) or not (os.path.isfile(weights) or os.path.isfile(index)):
            return super()._load_from_checkpoint(resume_from_checkpoint, model=model)
        loaded = RamPlusModel.from_pretrained(resume_from_checkpoint, dtype=target.dtype)
        missing, unexpected = target.load_state_dict(loaded.state_dict(), strict=False)
        if missing or unexpected:
            raise ValueError(
                f"checkpoint {resume_from_checkpoint} does not fit the model: missing {missing[:5]}, "
                f"unexpected {unexpected[:5]}"
            )
        if target.config.tag_names != loaded.config.tag_names:
            raise ValueError(f"checkpoint {resume_from_checkpoint} has a different tag vocabulary than the model")
        del loaded

    def _load_best_model(self) -> None:
        from .modeling_ram_plus import RamPlusModel

        checkpoint = self.state.best_model_checkpoint
        target = self.model.module if hasattr(self.model, "module") else self.model
        if isinstance(target, RamPlusModel) and os.path.isfile(os.path.join(checkpoint, "model.safetensors")):
            self._load_from_checkpoint(checkpoint)
        else:
            super()._load_best_model()

    # ------------------------------------------------------------------ logging
    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        if "loss" in logs:  # a training log: add the components averaged since the last one
            values = []
            for name in LOSS_COMPONENTS:
                count = self._component_counts[name]
                values += [self._component_sums[name], float(count)]
            values.append(float(self.num_skipped_images))
            tensor = torch.tensor(values, dtype=torch.float64, device=self.args.device)
            if self.args.world_size > 1:
                tensor = self.accelerator.reduce(tensor, reduction="sum")
            values = tensor.tolist()
            for index, name in enumerate(LOSS_COMPONENTS):
                total, count = values[2 * index], values[2 * index + 1]
                if count > 0:
                    logs[name] = round(total / count, 6)
                self._component_sums[name] = 0.0
                self._component_counts[name] = 0
            logs["skipped_images"] = int(values[-1])
        super().log(logs, *args, **kwargs)


def compute_tagging_metrics(eval_prediction, threshold: float = 0.5) -> dict[str, float]:
    """`compute_metrics` for `Trainer`: mAP, CP, CR, CF1, OP, OR, OF1 of `sigmoid(logits)` against the labels
    (`transformers_ramplus.evaluation.compute_metrics`)."""
    import numpy as np

    from .evaluation import compute_metrics

    logits, labels = eval_prediction.predictions, eval_prediction.label_ids
    scores = 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))
    return compute_metrics(scores, np.asarray(labels).round().astype(np.int64), threshold)


# ------------------------------------------------------------------------------------------------ custom tag sets
def encode_descriptions(
    model: nn.Module,
    tokenizer,
    descriptions: Mapping[str, Sequence[str]],
    batch_size: int = 256,
) -> tuple[torch.Tensor, list[int]]:
    """Encode each tag's descriptions with the model's frozen text tower.

    Returns `(label_embeds (num_tags, D, text_embed_dim), description_counts)`: rows L2-normalized, D the largest
    number of descriptions, shorter tags padded with zero rows (masked through their count)."""
    inner = _unwrap(model)
    if tokenizer is None:
        raise ValueError("encoding descriptions needs the CLIP tokenizer of the text tower (processor.tokenizer)")
    names = list(descriptions)
    if not names:
        raise ValueError("no tag to encode")
    counts = []
    texts = []
    for name in names:
        items = [str(t) for t in descriptions[name] if str(t).strip()]
        if not items:
            raise ValueError(f"tag {name!r} has no description")
        counts.append(len(items))
        texts.extend(items)
    device = inner.query_projection.weight.device
    encoded = []
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            tokens = tokenizer(
                texts[start : start + batch_size], padding=True, truncation=True, max_length=77, return_tensors="pt"
            )
            encoded.append(
                inner.encode_text(tokens["input_ids"].to(device), tokens["attention_mask"].to(device)).float().cpu()
            )
    flat = torch.cat(encoded)
    width = flat.shape[-1]
    embeds = torch.zeros(len(names), max(counts), width)
    offset = 0
    for row, count in enumerate(counts):
        embeds[row, :count] = flat[offset : offset + count]
        offset += count
    return embeds, counts


def _current_vocabulary(inner) -> tuple[torch.Tensor, list[int]]:
    config = inner.config
    embeds = inner.label_embeds.detach().float().cpu().view(config.num_tags, config.descriptions_per_tag, -1)
    counts = config.tag_description_counts or [config.descriptions_per_tag] * config.num_tags
    return embeds, list(counts)


def add_tags(
    model: nn.Module,
    tag_names: Sequence[str],
    label_embeds: torch.Tensor | None = None,
    description_counts: Sequence[int] | None = None,
    descriptions: Mapping[str, Sequence[str]] | None = None,
    tokenizer=None,
    keep_existing: bool = True,
    threshold: float = NEW_TAG_THRESHOLD,
) -> list[int]:
    """Replace or extend the model's vocabulary with new tags.

    The new tags come either from `label_embeds` `(len(tag_names), D, T)` (e.g. a tag-set file, rows
    L2-normalized) with optional `description_counts`, or from `descriptions` (`{tag: [text, ...]}`) encoded with the
    model's text tower and `tokenizer`. `keep_existing=True` appends them to the current tags (a name that already
    exists is replaced in place); `False` drops the old vocabulary. New tags get threshold `threshold` (0.5, as the
    original's open-set mode); kept tags keep theirs. Returns the ids of `tag_names` in the new vocabulary.
    """
    inner = _unwrap(model)
    tag_names = [str(n) for n in tag_names]
    if len(set(tag_names)) != len(tag_names):
        raise ValueError("`tag_names` contains duplicates")
    if (label_embeds is None) == (descriptions is None):
        raise ValueError("pass exactly one of `label_embeds` and `descriptions`")
    if descriptions is not None:
        missing = [n for n in tag_names if n not in descriptions]
        if missing:
            raise ValueError(f"no descriptions for tags {missing[:10]}")
        new_embeds, new_counts = encode_descriptions(inner, tokenizer, {n: descriptions[n] for n in tag_names})
    else:
        new_embeds = torch.as_tensor(label_embeds, dtype=torch.float32).detach().cpu()
        if new_embeds.dim() == 2:
            new_embeds = new_embeds.unsqueeze(1)
        if new_embeds.dim() != 3 or new_embeds.shape[0] != len(tag_names):
            raise ValueError(f"`label_embeds` {tuple(new_embeds.shape)} must be ({len(tag_names)}, D, dim)")
        new_counts = list(description_counts) if description_counts is not None else [new_embeds.shape[1]] * len(tag_names)
    if new_embeds.shape[-1] != inner.config.text_embed_dim:
        raise ValueError(f"new tag embeddings have width {new_embeds.shape[-1]}, the model {inner.config.text_embed_dim}")

    config = inner.config
    if keep_existing:
        old_embeds, old_counts = _current_vocabulary(inner)
        names = list(config.tag_names)
        thresholds = list(config.thresholds())
        chinese = list(config.tag_names_chinese) if config.tag_names_chinese is not None else None
        rows = list(old_embeds)
        counts = list(old_counts)
    else:
        names, thresholds, rows, counts, chinese = [], [], [], [], None
    for index, name in enumerate(tag_names):
        if name in names:
            position = names.index(name)
            rows[position], counts[position], thresholds[position] = new_embeds[index], new_counts[index], threshold
        else:
            names.append(name)
            rows.append(new_embeds[index])
            counts.append(new_counts[index])
            thresholds.append(threshold)
            if chinese is not None:
                chinese.append(name)
    depth = max(row.shape[0] for row in rows)
    stacked = torch.zeros(len(rows), depth, config.text_embed_dim)
    for row, value in enumerate(rows):
        stacked[row, : value.shape[0]] = value
    all_real = all(count == depth for count in counts)
    inner.set_label_embeds(
        stacked,
        names,
        thresholds=thresholds,
        description_counts=None if all_real else counts,
        chinese_names=chinese,
    )
    return [names.index(name) for name in tag_names]


def save_tag_set(
    path: str | os.PathLike,
    tag_names: Sequence[str],
    label_embeds: torch.Tensor,
    description_counts=None,
    thresholds: Sequence[float] | None = None,
) -> None:
    """Write a tag-set file (safetensors): `label_embeds` `(C, D, T)`, `description_counts` `(C,)`, names (and
    optional per-tag thresholds) in the metadata. Written to a temporary file and moved into place."""
    from safetensors.torch import save_file

    label_embeds = torch.as_tensor(label_embeds, dtype=torch.float32).contiguous()
    if label_embeds.dim() != 3 or label_embeds.shape[0] != len(tag_names):
        raise ValueError(f"`label_embeds` {tuple(label_embeds.shape)} must be ({len(tag_names)}, D, dim)")
    counts = description_counts if description_counts is not None else [label_embeds.shape[1]] * len(tag_names)
    tensors = {"label_embeds": label_embeds, "description_counts": torch.as_tensor(counts, dtype=torch.int64)}
    metadata = {"tag_names": json.dumps(list(tag_names), ensure_ascii=False)}
    if thresholds is not None:
        if len(thresholds) != len(tag_names):
            raise ValueError(f"{len(thresholds)} thresholds for {len(tag_names)} tags")
        metadata["thresholds"] = json.dumps([float(t) for t in thresholds])
    path = os.fspath(path)
    temporary = f"{path}.tmp-{os.getpid()}"
    save_file(tensors, temporary, metadata=metadata)
    os.replace(temporary, path)


def load_tag_set(path: str | os.PathLike, with_thresholds: bool = False):
    """Read a tag-set file written by `save_tag_set`: `(tag_names, label_embeds (C, D, T), description_counts)`,
    plus the stored thresholds (or `None`) when `with_thresholds=True`."""
    from safetensors import safe_open

    with safe_open(os.fspath(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
        if "tag_names" not in metadata or "label_embeds" not in handle.keys():
            raise ValueError(f"{os.fspath(path)} is not a tag-set file (needs `label_embeds` and `tag_names` metadata)")
        names = json.loads(metadata["tag_names"])
        embeds = handle.get_tensor("label_embeds")
        counts = (
            handle.get_tensor("description_counts").tolist()
            if "description_counts" in handle.keys()
            else [embeds.shape[1]] * len(names)
        )
        thresholds = json.loads(metadata["thresholds"]) if "thresholds" in metadata else None
    if embeds.dim() != 3 or embeds.shape[0] != len(names):
        raise ValueError(f"{os.fspath(path)}: `label_embeds` {tuple(embeds.shape)} does not fit {len(names)} names")
    return (names, embeds, counts, thresholds) if with_thresholds else (names, embeds, counts)


def read_descriptions(path: str | os.PathLike) -> dict[str, list[str]]:
    """Tag descriptions from JSON: `{tag: [text, ...]}` or the authors' list of one-key objects."""
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    if isinstance(data, list):
        merged: dict[str, list[str]] = {}
        for item in data:
            if not isinstance(item, dict):
                raise ValueError(f"{os.fspath(path)}: expected objects {{tag: [descriptions]}}, got {item!r:.80}")
            merged.update(item)
        data = merged
    if not isinstance(data, dict):
        raise ValueError(f"{os.fspath(path)}: expected {{tag: [descriptions]}}")
    return {str(k): [str(t) for t in (v if isinstance(v, list) else [v])] for k, v in data.items()}


__all__ = [
    "RamPlusTrainer",
    "RamPlusTrainingArguments",
    "add_tags",
    "compute_tagging_metrics",
    "encode_descriptions",
    "freeze_frozen_parts",
    "load_tag_set",
    "read_descriptions",
    "save_tag_set",
]
