#!/usr/bin/env python
"""A short learning run of Tag2Text caption fine-tuning with LoRA: held-out caption loss before and after.

Data: a small `datasets.Dataset` with `image` and `text` columns, made here (no download): pictures of a colored
shape on a colored ground, captioned "a picture of a red circle on a green ground"-style with words the tiny model's
vocabulary holds. Model: the tiny golden Tag2Text of the test fixtures (random weights), converted on the fly, or
`--model DIR`. LoRA on the caption decoder's attention (`caption_lora_config`), `CaptionTrainer`, a few epochs;
the held-out images are never trained on. Prints and writes (`--output`) a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image, ImageDraw


ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "modeling_tests" / "fixtures" / "tag2text_tiny"
COLORS = {"red": (220, 30, 30), "blue": (30, 60, 220), "green": (30, 170, 60), "yellow": (240, 220, 40)}
SHAPES = ("circle", "square")
GROUNDS = {"white": (245, 245, 245), "black": (10, 10, 10)}


def make_rows(count: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        color, shape, ground = rng.choice(list(COLORS)), rng.choice(SHAPES), rng.choice(list(GROUNDS))
        image = Image.new("RGB", (96, 96), GROUNDS[ground])
        draw = ImageDraw.Draw(image)
        x, y, r = rng.randint(25, 70), rng.randint(25, 70), rng.randint(12, 24)
        box = (x - r, y - r, x + r, y + r)
        (draw.ellipse if shape == "circle" else draw.rectangle)(box, fill=COLORS[color])
        rows.append({"image": image, "text": f"a {color} {shape} on a {ground} ground"})
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", help="a converted Tag2Text folder (default: the tiny golden fixture, converted)")
    parser.add_argument("--train-size", type=int, default=48)
    parser.add_argument("--heldout-size", type=int, default=16)
    parser.add_argument("--epochs", type=float, default=8)
    parser.add_argument("--learning-rate", type=float, default=1e-2)
    parser.add_argument("--quick", action="store_true", help="a few steps only (a smoke run)")
    parser.add_argument("--output", help="write the JSON summary here")
    args = parser.parse_args(argv)
    if args.quick:
        args.train_size, args.heldout_size, args.epochs = 8, 4, 1

    import datasets
    from transformers import TrainingArguments

    from transformers_ramplus import Tag2TextForConditionalGeneration, Tag2TextProcessor
    from transformers_ramplus.models.tag2text.convert_tag2text import convert_checkpoint
    from transformers_ramplus.training.captioning import (
        CaptionCollator,
        CaptionTrainer,
        caption_lora_config,
        caption_loss_on,
    )

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as scratch:
        model_dir = args.model
        if model_dir is None:
            model_dir = Path(scratch) / "tag2text_tiny"
            convert_checkpoint(
                FIXTURE / "tag2text_original.pth",
                model_dir,
                FIXTURE / "tag2text_ori_tag_list.txt",
                FIXTURE / "tokenizer",
                text_num_attention_heads=4,
            )
        model = Tag2TextForConditionalGeneration.from_pretrained(model_dir)
        processor = Tag2TextProcessor.from_pretrained(model_dir)
        train = datasets.Dataset.from_list(make_rows(args.train_size, seed=1))
        heldout = make_rows(args.heldout_size, seed=2)
        collator = CaptionCollator(processor)

        from peft import get_peft_model

        model = get_peft_model(model, caption_lora_config(r=8))
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        before = caption_loss_on(model, collator, heldout)
        start = time.perf_counter()
        trainer = CaptionTrainer(
            model=model,
            args=TrainingArguments(
                output_dir=str(Path(scratch) / "run"),
                per_device_train_batch_size=8,
                num_train_epochs=args.epochs,
                learning_rate=args.learning_rate,
                weight_decay=0.05,
                logging_steps=1,
                save_strategy="no",
                report_to=[],
                use_cpu=True,
                seed=0,
                disable_tqdm=True,
            ),
            train_dataset=train,
            data_collator=collator,
        )
        trainer.train()
        after = caption_loss_on(model, collator, heldout)
        sample = processor.batch_decode(model.generate(**processor(images=[heldout[0]["image"]])))[0]
    summary = {
        "model": "tiny golden Tag2Text (random weights)" if args.model is None else str(args.model),
        "train_images": args.train_size,
        "heldout_images": args.heldout_size,
        "epochs": args.epochs,
        "trainable_parameters": trainable,
        "heldout_caption_loss_before": round(before, 4),
        "heldout_caption_loss_after": round(after, 4),
        "train_seconds": round(time.perf_counter() - start, 1),
        "heldout_example": {"reference": heldout[0]["text"], "generated": sample},
    }
    text = json.dumps(summary, indent=2)
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n")
    return 0 if after < before or args.quick else 1


if __name__ == "__main__":
    sys.exit(main())
