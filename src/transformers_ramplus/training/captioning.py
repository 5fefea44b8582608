# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""Fine-tuning Tag2Text's captions with LoRA on an image + text dataset (e.g. a 🤗 `datasets.Dataset` with an
`image` and a `text` column), through `transformers.Trainer`.

- `CaptionCollator`: rows -> `pixel_values`, the caption tokens (`input_ids`, `attention_mask`, `caption_labels`:
  `[DEC]`, the prompt prepended, prompt and padding masked) and, when rows carry tags, the tag text; without tags
  the caption is conditioned on the model's own predicted tags (as at inference). A row whose image cannot be read
  is skipped and counted (`num_skipped_images`), the others train.
- `caption_lora_config`: LoRA on the caption decoder's self- and cross-attention (query, value) and, optionally, on
  the tag encoder's; the image encoder and the tagging head stay as released.
- `CaptionTrainer`: `Trainer` whose loss is the model's (`caption_loss`, plus `tag_loss` when the batch has
  `labels`), with `caption_labels` as the label column for evaluation.
"""

from __future__ import annotations

import torch
from transformers import Trainer

from ..models.ram_plus.image_processing_ram_plus import load_image


DECODER_ATTENTION = (
    r"text_model\.text_decoder\.bert\.encoder\.layer\.\d+\.(attention|crossattention)\.self\.(query|value)"
)
TAG_ENCODER_ATTENTION = r"text_model\.tag_encoder\.encoder\.layer\.\d+\.attention\.self\.(query|value)"


def caption_lora_config(
    r: int = 8, lora_alpha: int = 16, lora_dropout: float = 0.05, tag_encoder: bool = False, **kwargs
):
    """A `peft.LoraConfig` for caption fine-tuning of a `Tag2TextForConditionalGeneration`."""
    from peft import LoraConfig

    patterns = [DECODER_ATTENTION] + ([TAG_ENCODER_ATTENTION] if tag_encoder else [])
    return LoraConfig(
        r=r,
        lora_alpha=lora_alpha,
        lora_dropout=lora_dropout,
        target_modules=r"^(" + "|".join(patterns) + r")$",
        bias="none",
        **kwargs,
    )


class CaptionCollator:
    """Batches of `{image_column: image, text_column: caption[, tags_column: tags]}` rows for Tag2Text."""

    def __init__(
        self, processor, image_column: str = "image", text_column: str = "text", tags_column: str | None = None
    ):
        if getattr(processor, "tokenizer", None) is None:
            raise ValueError("the processor needs its BERT tokenizer to tokenize captions")
        self.processor = processor
        self.image_column, self.text_column, self.tags_column = image_column, text_column, tags_column

    def __call__(self, rows) -> dict:
        images, captions, tags, skipped = [], [], [], 0
        for index, row in enumerate(rows):
            for column in (self.image_column, self.text_column):
                if column not in row:
                    raise KeyError(f"the dataset has no {column!r} column (its columns: {sorted(row)})")
            caption = row[self.text_column]
            if isinstance(caption, (list, tuple)):  # several captions per image: the first
                caption = caption[0] if caption else ""
            if not isinstance(caption, str) or not caption.strip():
                skipped += 1
                continue
            try:
                image = load_image(row[self.image_column], index=index)
            except (OSError, ValueError, TypeError):
                skipped += 1
                continue
            images.append(image)
            captions.append(caption.strip().lower())
            if self.tags_column is not None:
                tags.append(row.get(self.tags_column) or "")
        if not images:
            raise ValueError(f"none of the {len(rows)} rows of the batch has a readable image and a caption")
        batch = dict(self.processor(images=images, captions=captions, tags=tags if self.tags_column else None))
        batch["num_skipped_images"] = torch.tensor([skipped])
        return batch


class CaptionTrainer(Trainer):
    """`Trainer` for Tag2Text caption fine-tuning: the model's loss, skipped images counted (`num_skipped_images`)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.args.remove_unused_columns = False
        self.args.label_names = ["caption_labels"]
        self.num_skipped_images = 0

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        skipped = inputs.pop("num_skipped_images", None)
        if skipped is not None:
            self.num_skipped_images += int(skipped.sum())
        outputs = model(**inputs)
        if outputs.loss is None:
            raise ValueError("the batch gives no loss: it needs captions (`input_ids`) or `labels`")
        return (outputs.loss, outputs) if return_outputs else outputs.loss


def caption_loss_on(model, collator, rows, batch_size: int = 8) -> float:
    """Mean caption loss of `model` over `rows` (held-out evaluation), in eval mode and without gradients."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            batch = collator([rows[i] for i in range(start, min(start + batch_size, len(rows)))])
            batch.pop("num_skipped_images", None)
            n = batch["input_ids"].shape[0]
            total += float(model(**batch).caption_loss) * n
            count += n
    model.train(was_training)
    return total / max(count, 1)


__all__ = ["CaptionCollator", "CaptionTrainer", "caption_lora_config", "caption_loss_on"]
