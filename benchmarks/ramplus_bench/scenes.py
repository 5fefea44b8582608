# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""The benchmark's inputs: the sizes (full = the released model; quick = a smoke run of the same code paths), the
images (the vendored real photos first, then generated outdoor scenes), and the random "scene model" whose head makes
about half of the tags fire on the real photos, so that many logits sit near a threshold and any precision's error
shows as flipped decisions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

import transformers_ramplus
from transformers_ramplus import RamPlusConfig, RamPlusModel


REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_IMAGES_DIR = REPO_ROOT / "modeling_tests" / "fixtures" / "images"
RELEASED_THRESHOLDS = Path(transformers_ramplus.__file__).parent / "tags" / "data" / "ram_tag_list_threshold.txt"

FULL = dict(
    vision=None,  # RamPlusConfig's default: Swin-L 384
    hidden_size=768,
    num_attention_heads=4,
    intermediate_size=3072,
    text_embed_dim=512,
    num_tags=4585,
    descriptions_per_tag=51,
    subset=200,
    image_size=384,
    num_images=16,
)
QUICK = dict(
    vision={
        "image_size": 96,
        "patch_size": 4,
        "embed_dim": 32,
        "depths": [2, 2, 2],
        "num_heads": [2, 4, 8],
        "window_size": 6,
        "drop_path_rate": 0.0,
    },
    hidden_size=64,
    num_attention_heads=4,
    intermediate_size=128,
    text_embed_dim=64,
    num_tags=400,
    descriptions_per_tag=8,
    subset=20,
    image_size=96,
    num_images=4,
)


def synthetic_scene(seed: int, width: int = 512, height: int = 384):
    """A natural-looking outdoor scene: sky and ground gradients, a sun, hills, trees, a house, textured noise."""
    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng(seed)
    horizon = int(height * rng.uniform(0.35, 0.65))
    ys = np.arange(height)[:, None, None].astype(np.float32)
    sky_top, sky_low = rng.uniform([20, 60, 140], [90, 140, 230]), rng.uniform([150, 180, 200], [230, 230, 255])
    ground_near, ground_far = rng.uniform([30, 70, 10], [110, 150, 60]), rng.uniform([80, 110, 40], [170, 170, 110])
    t_sky = np.clip(ys / max(horizon, 1), 0, 1)
    t_ground = np.clip((ys - horizon) / max(height - horizon, 1), 0, 1)
    sky = sky_top * (1 - t_sky) + sky_low * t_sky
    ground = ground_far * (1 - t_ground) + ground_near * t_ground
    canvas = np.where(ys < horizon, sky, ground) * np.ones((height, width, 3), np.float32)
    image = Image.fromarray(canvas.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    sun_x, sun_y, sun_r = rng.uniform(0.1, 0.9) * width, rng.uniform(0.05, 0.3) * horizon, rng.uniform(12, 30)
    draw.ellipse([sun_x - sun_r, sun_y - sun_r, sun_x + sun_r, sun_y + sun_r], fill=(255, 240, 190))
    for _ in range(rng.integers(1, 4)):  # hills
        cx, w, h = rng.uniform(0, width), rng.uniform(0.3, 0.8) * width, rng.uniform(0.1, 0.3) * height
        color = tuple(int(c) for c in rng.uniform([40, 80, 30], [100, 140, 80]))
        draw.ellipse([cx - w / 2, horizon - h, cx + w / 2, horizon + h], fill=color)
    for _ in range(rng.integers(2, 7)):  # trees
        x, size = rng.uniform(0, width), rng.uniform(15, 45)
        base = horizon + rng.uniform(0, 0.4) * (height - horizon)
        draw.rectangle([x - size * 0.12, base - size, x + size * 0.12, base], fill=(90, 60, 30))
        leaf = tuple(int(c) for c in rng.uniform([20, 70, 20], [70, 130, 60]))
        draw.ellipse([x - size * 0.6, base - size * 2.0, x + size * 0.6, base - size * 0.7], fill=leaf)
    if rng.random() < 0.6:  # a house
        x, base, size = rng.uniform(0.1, 0.8) * width, horizon + rng.uniform(0.1, 0.5) * (height - horizon), rng.uniform(40, 90)
        wall = tuple(int(c) for c in rng.uniform([150, 120, 100], [240, 220, 200]))
        draw.rectangle([x, base - size, x + size * 1.3, base], fill=wall)
        draw.polygon([(x - 8, base - size), (x + size * 0.65, base - size * 1.6), (x + size * 1.3 + 8, base - size)], fill=(150, 50, 40))
        draw.rectangle([x + size * 0.5, base - size * 0.5, x + size * 0.75, base], fill=(80, 50, 30))
    image = image.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(0.5, 1.5))))
    noisy = np.asarray(image, np.float32) + rng.normal(0, 6, (height, width, 3))
    return Image.fromarray(noisy.clip(0, 255).astype(np.uint8))


def load_benchmark_images(images_dir: Path, count: int, seed: int) -> tuple[list, list[str]]:
    from PIL import Image

    images, names = [], []
    if images_dir.is_dir():
        for path in sorted(images_dir.glob("*.jpg"))[:count]:
            with Image.open(path) as opened:
                images.append(opened.convert("RGB"))
            names.append(path.name)
    index = 0
    while len(images) < count:
        images.append(synthetic_scene(seed + index))
        names.append(f"synthetic_{index}")
        index += 1
    return images, names


def build_random_model(sizes: dict, seed: int) -> RamPlusModel:
    config = RamPlusConfig(
        vision_config=sizes["vision"],
        hidden_size=sizes["hidden_size"],
        num_attention_heads=sizes["num_attention_heads"],
        intermediate_size=sizes["intermediate_size"],
        text_embed_dim=sizes["text_embed_dim"],
        descriptions_per_tag=sizes["descriptions_per_tag"],
        id2label={i: f"tag_{i}" for i in range(sizes["num_tags"])},
    )
    torch.manual_seed(seed)
    model = RamPlusModel(config).eval()
    with torch.no_grad():
        # With the default init the queries are tiny next to the attention output, so every tag of an image gets
        # nearly the same logit (spread ~0.07 over tags vs ~0.3 over images) and any decision check is dominated by
        # ties. A 10x query projection gives tags that differ as much as images do, like a trained tagger. It changes
        # no shape or cost.
        model.query_projection.weight.mul_(10.0)
    return model


def released_thresholds(num_tags: int) -> list[float] | None:
    """The released model's per-tag thresholds (package data) when the vocabulary has its 4585 tags."""
    try:
        values = [float(line) for line in RELEASED_THRESHOLDS.read_text().split()]
    except OSError:
        return None
    return values if len(values) == num_tags else None


def calibrate_head(model: RamPlusModel, pixel_values: torch.Tensor, logits_fn) -> dict:
    """Make about half of the tags fire on `pixel_values` (the real photos): per-tag thresholds (the released ones
    at full size, else the config's), and the classifier bias shifted so that the median over the photos' (image, tag)
    pairs of `logit - logit(threshold)` is 0. `logits_fn(pixel_values)` gives the fp32 logits. Changes no shape or
    cost; returns what it did."""
    config = model.config
    thresholds = released_thresholds(config.num_tags)
    if thresholds is not None:
        config.tag_thresholds = thresholds
    cut = torch.logit(torch.tensor(config.thresholds(), dtype=torch.float64)).float()
    with torch.no_grad():
        margins = logits_fn(pixel_values).float() - cut
        shift = margins.median().item()
        model.classifier.bias.sub_(shift)
        fired = (margins - shift > 0).float().mean(dim=1)
    return {
        "thresholds": "released per-tag thresholds" if thresholds is not None else "config thresholds",
        "classifier_bias_shift": shift,
        "fraction_of_tags_firing_per_photo": [round(v, 4) for v in fired.tolist()],
        # tags with a threshold of 0 or 1 (never or always firing) have infinite margins: left out of the spread
        "logit_std_over_tags": margins[:, torch.isfinite(margins).all(dim=0)].std(dim=1).mean().item(),
    }
