#!/usr/bin/env python
# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""A RAM++ that learns, on CPU, in minutes.

1. Generates a multi-label dataset of coloured shapes (1-3 shapes of 4 colours x 3 kinds on a noisy background,
   low resolution) with captions ("a red circle and a blue square"), written as PNG files with the authors' JSON
   format for training and an image folder with `metadata.jsonl` for fine-tuning.
2. Trains a small RAM++ from scratch with the full objective (tag ASL + image-caption alignment ASL + L1
   distillation) through `RamPlusTrainer`, and reports held-out mAP of the 7 tags (4 colours, 3 shapes) against
   chance.
3. Adds 18 new tags given only by descriptions: 12 colour-shape conjunctions ("red circle", described as "a red
   circle", "a round red shape", ...) and 6 colour pairs ("red and blue": both colours in the scene), reports their
   held-out mAP zero-shot (open set, before), LoRA-fine-tunes on a small labelled image folder, and reports their
   mAP after (and the old tags' mAP, to show they are kept).

No real CLIP is available offline, so the text side is a **deterministic synthetic text embedding**: every word
has a fixed random unit vector (seeded by a hash of the word) and a text is the normalized mean of its words'
vectors (a bag of words). It is used for the tag descriptions (label embeddings), for the captions (alignment loss,
passed as `caption_embeds`) and, standing in for CLIP's image tower whose embeddings are aligned with text, the
distillation target of an image is the embedding of its full caption (precomputed `teacher_image_embeds`). So the
zero-shot step tests what RAM++'s design promises: new tags described with known words become usable queries.

    PYTHONPATH=src python scripts/learning_run.py --output /tmp/ramplus-learning-run

Prints one JSON object with the numbers; `--quick` runs a smaller version (a smoke test).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw


COLORS = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (50, 80, 230), "yellow": (235, 215, 40)}
SHAPES = ["circle", "square", "triangle"]
BASE_TAGS = list(COLORS) + SHAPES
SHAPE_WORDS = {"circle": ["round", "disc"], "square": ["boxy", "block"], "triangle": ["pointed", "wedge"]}
TEXT_DIM = 64
IMAGE_SIZE = 32


# ------------------------------------------------------------------------------------------ synthetic text tower
def word_vector(word: str) -> torch.Tensor:
    generator = torch.Generator().manual_seed(zlib.crc32(word.encode("utf-8")))
    return torch.nn.functional.normalize(torch.randn(TEXT_DIM, generator=generator), dim=0)


def embed_texts(texts) -> torch.Tensor:
    """Bag-of-words embedding: normalized mean of fixed random word vectors, `(len(texts), TEXT_DIM)`."""
    rows = []
    for text in texts:
        words = [w for w in str(text).lower().replace(".", " ").split() if w] or ["<empty>"]
        rows.append(torch.stack([word_vector(w) for w in words]).mean(0))
    return torch.nn.functional.normalize(torch.stack(rows), dim=-1)


def base_descriptions(tag: str) -> list[str]:
    if tag in COLORS:
        return [f"a photo of a {tag} object", f"something {tag}", f"a {tag} coloured shape"]
    return [f"a photo of a {tag}", f"a {tag} shape", f"a {SHAPE_WORDS[tag][0]} {tag}"]


def new_tag_descriptions(color: str, shape: str) -> list[str]:
    return [f"a {color} {shape}", f"a {SHAPE_WORDS[shape][0]} {color} shape", f"{color} {SHAPE_WORDS[shape][1]}"]


def pair_descriptions(first: str, second: str) -> list[str]:
    return [f"{first} and {second}", f"a {first} shape and a {second} shape", f"{first} together with {second}"]


COLOR_PAIRS = [(a, b) for i, a in enumerate(COLORS) for b in list(COLORS)[i + 1 :]]
CONJUNCTION_TAGS = {f"{c} {s}": new_tag_descriptions(c, s) for c in COLORS for s in SHAPES}
PAIR_TAGS = {f"{a} and {b}": pair_descriptions(a, b) for a, b in COLOR_PAIRS}
NEW_TAGS = {**CONJUNCTION_TAGS, **PAIR_TAGS}


# ------------------------------------------------------------------------------------------------ data generator
def draw_scene(rng: np.random.Generator):
    array = rng.integers(100, 140, (IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    image = Image.fromarray(array)
    draw = ImageDraw.Draw(image)
    objects = []
    for _ in range(int(rng.integers(1, 4))):
        color = str(rng.choice(list(COLORS)))
        shape = str(rng.choice(SHAPES))
        size = int(rng.integers(11, 17))
        x0, y0 = (int(v) for v in rng.integers(0, IMAGE_SIZE - size, 2))
        box = (x0, y0, x0 + size, y0 + size)
        fill = tuple(int(np.clip(c + rng.integers(-25, 26), 0, 255)) for c in COLORS[color])
        if shape == "circle":
            draw.ellipse(box, fill=fill)
        elif shape == "square":
            draw.rectangle(box, fill=fill)
        else:
            draw.polygon([(x0 + size / 2, y0), (x0, y0 + size), (x0 + size, y0 + size)], fill=fill)
        objects.append((color, shape))
    caption = " and ".join(f"a {c} {s}" for c, s in objects)
    short = "shapes: " + ", ".join(sorted({c for c, _ in objects} | {s for _, s in objects}))
    return image, objects, [caption, short]


def generate(folder: Path, count: int, seed: int, tag_names: list[str]):
    """Write `count` scenes; returns records with `objects`, `captions` and tag names."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    records = []
    for index in range(count):
        image, objects, captions = draw_scene(rng)
        name = f"{index:05d}.png"
        image.save(folder / name)
        colors = {c for c, _ in objects}
        names = colors | {s for _, s in objects} | {f"{c} {s}" for c, s in objects}
        names |= {f"{a} and {b}" for a, b in COLOR_PAIRS if a in colors and b in colors}
        records.append({"file_name": name, "objects": objects, "captions": captions, "tags": [t for t in tag_names if t in names]})
    return records


# ----------------------------------------------------------------------------------------------------- helpers
def build_model(seed: int):
    from transformers_ramplus import RamPlusConfig, RamPlusModel

    config = RamPlusConfig(
        vision_config={
            "image_size": IMAGE_SIZE, "patch_size": 4, "embed_dim": 32, "depths": [2, 2], "num_heads": [2, 4],
            "window_size": 4, "drop_path_rate": 0.0,
        },
        hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, text_embed_dim=TEXT_DIM,
        descriptions_per_tag=3, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        id2label=dict(enumerate(BASE_TAGS)),
    )
    torch.manual_seed(seed)
    model = RamPlusModel(config)
    embeds = torch.stack([embed_texts(base_descriptions(tag)) for tag in BASE_TAGS])
    model.set_vocabulary(BASE_TAGS, embeds)
    return model


def predict_scores(model, paths, batch_size=256):
    from transformers_ramplus.training.data import ImageProcessorTransform

    transform = ImageProcessorTransform(size=IMAGE_SIZE)  # the inference preprocessing
    model.eval()
    chunks = []
    with torch.no_grad():
        for start in range(0, len(paths), batch_size):
            pixels = torch.stack([transform(Image.open(p).convert("RGB")) for p in paths[start : start + batch_size]])
            chunks.append(torch.sigmoid(model(pixel_values=pixels).logits).numpy())
    return np.concatenate(chunks)


def targets_for(records, tag_names):
    return np.array([[int(t in r["tags"]) for t in tag_names] for r in records])


def chance_map(targets, repeats=20, seed=0):
    """mAP of random scores (the chance level), averaged over `repeats` draws."""
    from transformers_ramplus.training.metrics import mean_average_precision

    rng = np.random.default_rng(seed)
    return float(np.mean([mean_average_precision(rng.random(targets.shape), targets)[0] for _ in range(repeats)]))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--output", default="/tmp/ramplus-learning-run", help="working folder (images, models)")
    parser.add_argument("--train-images", type=int, default=2500)
    parser.add_argument("--test-images", type=int, default=600)
    parser.add_argument("--finetune-images", type=int, default=600)
    parser.add_argument("--epochs", type=float, default=7.0)
    parser.add_argument("--finetune-epochs", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="a much smaller run (smoke test)")
    args = parser.parse_args(argv)
    if args.quick:
        args.train_images, args.test_images, args.finetune_images = 300, 100, 100
        args.epochs, args.finetune_epochs = 1.0, 1.0
    torch.set_num_threads(args.threads)

    import transformers

    from transformers_ramplus.training.data import RamPlusDataCollator, TrainTransform, load_imagefolder_dataset, load_json_dataset
    from transformers_ramplus.training.metrics import mean_average_precision
    from transformers_ramplus.training.adapters import apply_lora, default_lora_config, merge_adapter
    from transformers_ramplus import TagSet
    from transformers_ramplus.training.trainer import RamPlusTrainer, RamPlusTrainingArguments, add_tags

    transformers.logging.set_verbosity_error()
    started = time.time()
    root = Path(args.output)
    all_tags = BASE_TAGS + list(NEW_TAGS)
    train = generate(root / "train", args.train_images, args.seed + 1, all_tags)
    test = generate(root / "test", args.test_images, args.seed + 2, all_tags)
    tune = generate(root / "finetune", args.finetune_images, args.seed + 3, all_tags)

    # stage 1: the authors' JSON format, base tags only, captions, teacher embeddings of the full caption
    authors = [
        {
            "image_path": f"train/{r['file_name']}",
            "caption": r["captions"],
            "union_label_id": [BASE_TAGS.index(t) for t in r["tags"] if t in BASE_TAGS],
        }
        for r in train
    ]
    (root / "train.json").write_text(json.dumps(authors))
    dataset = load_json_dataset(root / "train.json", num_tags=len(BASE_TAGS))
    teacher = embed_texts([r["captions"][0] for r in train]).tolist()
    dataset = dataset.add_column("teacher_image_embeds", teacher)

    model = build_model(args.seed)
    transform = TrainTransform(IMAGE_SIZE, scale=(0.85, 1.0), jitter=0.1)
    collator = RamPlusDataCollator(len(BASE_TAGS), transform=transform, caption_encoder=embed_texts, seed=args.seed)
    batch_size = 32
    training_args = RamPlusTrainingArguments(
        output_dir=str(root / "stage1"), per_device_train_batch_size=batch_size, num_train_epochs=args.epochs,
        learning_rate=1.5e-3, warmup_steps=30, lr_scheduler_type="cosine", logging_steps=5 if args.quick else 25, save_strategy="no",
        use_cpu=True, seed=args.seed, disable_tqdm=True, dataloader_pin_memory=False,
    )
    trainer = RamPlusTrainer(model=model, args=training_args, train_dataset=dataset, data_collator=collator)
    trainer.train()
    stage1_time = time.time() - started
    model.save_pretrained(root / "stage1_model")
    logs = [e for e in trainer.state.log_history if "loss" in e]

    test_paths = [str(root / "test" / r["file_name"]) for r in test]
    base_targets = targets_for(test, BASE_TAGS)
    base_map, base_per_tag = mean_average_precision(predict_scores(model, test_paths), base_targets)

    # stage 2: 12 new tags from descriptions only (zero-shot), then LoRA on a small labelled folder
    new_names = list(NEW_TAGS)
    new_embeds = torch.stack([embed_texts(NEW_TAGS[name]) for name in new_names])
    add_tags(model, TagSet(new_names, label_embeds=new_embeds), keep_existing=True)
    new_targets = targets_for(test, new_names)
    scores = predict_scores(model, test_paths)
    new_before, new_before_per_tag = mean_average_precision(scores[:, len(BASE_TAGS):], new_targets)
    (root / "finetune" / "metadata.jsonl").write_text(
        "\n".join(json.dumps({"file_name": r["file_name"], "tags": r["tags"], "captions": r["captions"]}) for r in tune)
    )
    tune_dataset = load_imagefolder_dataset(root / "finetune", model.config.label2id)
    lora_model = apply_lora(model, default_lora_config(r=16, lora_alpha=32, lora_dropout=0.0, save_vocabulary=model.vocabulary_changed))
    trainable = sum(p.numel() for p in lora_model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in lora_model.parameters())
    collator2 = RamPlusDataCollator(model.config.num_tags, transform=transform, caption_encoder=embed_texts, seed=args.seed)
    lora_args = RamPlusTrainingArguments(
        output_dir=str(root / "stage2"), per_device_train_batch_size=batch_size, num_train_epochs=args.finetune_epochs,
        learning_rate=1e-2, warmup_steps=10, lr_scheduler_type="cosine", logging_steps=5 if args.quick else 25, save_strategy="no",
        use_cpu=True, seed=args.seed, disable_tqdm=True, dataloader_pin_memory=False,
    )
    RamPlusTrainer(model=lora_model, args=lora_args, train_dataset=tune_dataset, data_collator=collator2).train()
    merged = merge_adapter(lora_model)
    scores = predict_scores(merged, test_paths)
    new_after, new_after_per_tag = mean_average_precision(scores[:, len(BASE_TAGS):], new_targets)
    conj = [new_names.index(n) for n in CONJUNCTION_TAGS]
    pairs = [new_names.index(n) for n in PAIR_TAGS]
    base_after, _ = mean_average_precision(scores[:, : len(BASE_TAGS)], base_targets)

    report = {
        "train_images": len(train), "test_images": len(test), "finetune_images": len(tune),
        "stage1_steps": trainer.state.global_step,
        "stage1_first_log": {k: logs[0].get(k) for k in ("loss", "tag_loss", "alignment_loss", "distillation_loss")},
        "stage1_last_log": {k: logs[-1].get(k) for k in ("loss", "tag_loss", "alignment_loss", "distillation_loss")},
        "base_tags_mAP": round(100 * base_map, 2),
        "base_tags_chance_mAP": round(100 * chance_map(base_targets), 2),
        "base_tags_AP": {t: round(100 * float(a), 1) for t, a in zip(BASE_TAGS, base_per_tag)},
        "new_tags_chance_mAP": round(100 * chance_map(new_targets), 2),
        "new_tags_mAP_before_lora": round(100 * new_before, 2),
        "new_tags_mAP_after_lora": round(100 * new_after, 2),
        "colour_shape_tags_chance_mAP": round(100 * chance_map(new_targets[:, conj]), 2),
        "colour_shape_tags_mAP_before_after": [round(100 * float(new_before_per_tag[conj].mean()), 2),
                                               round(100 * float(new_after_per_tag[conj].mean()), 2)],
        "colour_pair_tags_chance_mAP": round(100 * chance_map(new_targets[:, pairs]), 2),
        "colour_pair_tags_mAP_before_after": [round(100 * float(new_before_per_tag[pairs].mean()), 2),
                                              round(100 * float(new_after_per_tag[pairs].mean()), 2)],
        "base_tags_mAP_after_lora": round(100 * base_after, 2),
        "lora_trainable_parameters": trainable, "total_parameters": total,
        "stage1_seconds": round(stage1_time, 1), "total_seconds": round(time.time() - started, 1),
    }
    sys.stdout.write(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
