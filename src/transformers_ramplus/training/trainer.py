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
- Custom tag sets: `add_tags` (replace or extend the vocabulary with a `TagSet`, names or descriptions encoded
  through the text tower; threshold 0.5 for new tags).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.utils import logging

from ..models.ram_plus.modeling_ram_plus import RamPlusModel
from ..tags.tag_set import TagSet
from .adapters import check_vocabulary_travels, save_adapter_vocabulary
from .metrics import compute_metrics
from .wrappers import unwrap_model


logger = logging.get_logger(__name__)

# text_generation_loss: RAM's caption loss (a RAM model converted with its text side, captions from the collator)
LOSS_COMPONENTS = ("tag_loss", "alignment_loss", "distillation_loss", "text_generation_loss")


@dataclass
class RamPlusTrainingArguments(TrainingArguments):
    """`TrainingArguments` with RAM++ defaults: AdamW weight decay 0.05 (as the paper), raw dataset columns kept
    for the collator, `labels` as the label column."""

    weight_decay: float = field(default=0.05, metadata={"help": "AdamW weight decay (the paper uses 0.05)"})
    remove_unused_columns: bool = field(default=False, metadata={"help": "keep image paths and captions"})
    label_names: list[str] | None = field(default_factory=lambda: ["labels"], metadata={"help": "label columns"})
    report_to: None | str | list[str] = field(default="none", metadata={"help": "logging integrations"})


def freeze_frozen_parts(model: nn.Module) -> None:
    """Freeze what RAM++ never trains: the CLIP text tower (`label_embeds` is a buffer and has no gradient)."""
    unwrap_model(model).freeze_text_model()


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
        loss_weights (`dict`, *optional*): `{"tag": w, "alignment": w, "distillation": w, "text_generation": w}`;
            missing entries use the model config's `tag_loss_weight` / `align_loss_weight` / `distill_loss_weight`
            (`text_generation`, RAM's caption loss: 1, as the authors sum RAM's three losses).
        eval_data_collator (*optional*): the collator of `eval_dataset` (evaluation and prediction). Default: the
            training collator's deterministic twin (`data_collator.for_eval()`: no augmentation, the image processor's
            inference preprocessing), or the training collator when it has none.

    Everything else as `transformers.Trainer`. With `compute_metrics=compute_tagging_metrics`, evaluation reports
    mAP, CP, CR, CF1, OP, OR, OF1 (`metric_for_best_model="mAP"` keeps the best checkpoint).
    """

    def __init__(
        self,
        *args,
        teacher_model: nn.Module | None = None,
        loss_weights: Mapping[str, float] | None = None,
        eval_data_collator=None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        inner = unwrap_model(self.model)
        freeze_frozen_parts(self.model)
        check_vocabulary_travels(self.model)  # checkpoints of an adapter must carry changed tags
        if eval_data_collator is None and hasattr(self.data_collator, "for_eval"):
            eval_data_collator = self.data_collator.for_eval()
        self.eval_data_collator = eval_data_collator
        unknown = set(loss_weights or {}) - {"tag", "alignment", "distillation", "text_generation"}
        if unknown:
            raise ValueError(
                f"unknown `loss_weights` keys {sorted(unknown)}; use 'tag', 'alignment', 'distillation', "
                "'text_generation'"
            )
        weights = dict(loss_weights or {})
        self.loss_weights = {
            "tag_loss": float(weights.get("tag", inner.config.tag_loss_weight)),
            "alignment_loss": float(weights.get("alignment", inner.config.align_loss_weight)),
            "distillation_loss": float(weights.get("distillation", inner.config.distill_loss_weight)),
            "text_generation_loss": float(weights.get("text_generation", 1.0)),
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

    # ------------------------------------------------------------------ evaluation data
    def _with_eval_collator(self, make_loader, *args, **kwargs):
        if self.eval_data_collator is None:
            return make_loader(*args, **kwargs)
        training_collator = self.data_collator
        self.data_collator = self.eval_data_collator
        try:
            return make_loader(*args, **kwargs)
        finally:
            self.data_collator = training_collator

    def get_eval_dataloader(self, eval_dataset=None):
        return self._with_eval_collator(super().get_eval_dataloader, eval_dataset)

    def get_test_dataloader(self, test_dataset):
        return self._with_eval_collator(super().get_test_dataloader, test_dataset)

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
        inputs = dict(self._prepare_inputs(inputs))
        inputs.pop("num_skipped_images", None)  # `num_skipped_images` counts training images only
        with torch.no_grad():
            loss, outputs = self.compute_loss(model, inputs, return_outputs=True)
        loss = loss.detach()
        if prediction_loss_only or outputs is None:
            return loss, None, None
        labels = inputs.get("labels")
        return loss, outputs.logits.detach(), None if labels is None else labels.detach()

    # ------------------------------------------------------------------ checkpoints
    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        """Save as `Trainer` does; an adapter that saves the label embeddings of a changed vocabulary also gets its
        names and thresholds (`tag_vocabulary.json`), so that every `checkpoint-N` loads with its tags."""
        super()._save(output_dir, state_dict=state_dict)
        save_adapter_vocabulary(self.model, output_dir if output_dir is not None else self.args.output_dir)

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        """Reload a full-model checkpoint through `from_pretrained`: transformers v5 saves Swin weights under their
        serialized (original) names, which the base Trainer's plain `load_state_dict` does not map back."""

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
    (`transformers_ramplus.training.metrics.compute_metrics`)."""
    logits, labels = eval_prediction.predictions, eval_prediction.label_ids
    scores = 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))
    return compute_metrics(scores, np.asarray(labels).round().astype(np.int64), threshold)


# ------------------------------------------------------------------------------------------------ custom tag sets
def add_tags(model: nn.Module, tags, tokenizer=None, keep_existing: bool = True) -> list[int]:
    """Replace or extend the model's vocabulary with new tags before fine-tuning.

    `tags` is a [`~transformers_ramplus.TagSet`] (e.g. `TagSet.from_pretrained(dir_or_hub_id)`), a list of names
    (built-in names keep their embeddings, new ones are embedded with the prompt-template ensemble), or a mapping
    `tag -> [descriptions]` (each description encoded by the model's frozen text tower with `tokenizer`).
    `keep_existing=True` appends them to the current tags (a name that already exists is replaced in place); `False`
    drops the old vocabulary. New tags get threshold 0.5, as the original's open-set mode. Returns their ids.
    """

    inner = unwrap_model(model)
    tag_set = tags if isinstance(tags, TagSet) else TagSet.from_model(inner, tags, tokenizer=tokenizer)
    return tag_set.apply_to(inner, keep_existing=keep_existing)


# ------------------------------------------------------------------------------------------------ resuming
def checkpoint_tag_names(checkpoint, base_names: list[str]) -> list[str]:
    """The tag names a Trainer checkpoint was trained with, in label order: a full model's `config.json`, an
    adapter's `tag_vocabulary.json`, or (an adapter trained on its base model's own vocabulary) `base_names`."""
    import json

    from ..models.ram_plus.modeling_ram_plus import ADAPTER_VOCABULARY_NAME

    def read(name):
        with open(os.path.join(checkpoint, name), encoding="utf-8") as handle:
            return json.load(handle)

    try:
        if os.path.isfile(os.path.join(checkpoint, "config.json")):
            id2label = read("config.json").get("id2label") or {}
            return [id2label[key] for key in sorted(id2label, key=int)]
        if os.path.isfile(os.path.join(checkpoint, ADAPTER_VOCABULARY_NAME)):
            return list(read(ADAPTER_VOCABULARY_NAME)["names"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as error:
        raise ValueError(f"cannot read the tags of the checkpoint {checkpoint} ({type(error).__name__}: {error})") from None
    return list(base_names)


def check_resume_vocabulary(checkpoint, names: list[str], base_names: list[str]) -> None:
    """Refuse (ValueError) to resume `checkpoint` when this run's tags (`names`, in label order) are not the ones it
    was trained with: the new labels would be trained into the old tags' slots."""
    before = checkpoint_tag_names(checkpoint, base_names)
    if before == list(names):
        return
    added = [n for n in names if n not in set(before)]
    removed = [n for n in before if n not in set(names)]
    details = []
    if added:
        details.append(f"new: {added[:10]}")
    if removed:
        details.append(f"gone: {removed[:10]}")
    if not details:
        details.append("the same tags in another order")
    raise ValueError(
        f"--resume: the data's tags differ from those the checkpoint {checkpoint} was trained with "
        f"({len(before)} tags then, {len(names)} now; {'; '.join(details)}); resuming would train the new labels into "
        "the old tags. Restore the data, or pass --overwrite without --resume to start afresh"
    )


__all__ = [
    "RamPlusTrainer",
    "RamPlusTrainingArguments",
    "add_tags",
    "check_resume_vocabulary",
    "checkpoint_tag_names",
    "compute_tagging_metrics",
    "freeze_frozen_parts",
]
