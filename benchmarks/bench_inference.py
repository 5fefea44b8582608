#!/usr/bin/env python
# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""Inference benchmark of RAM++ on the CPU, against a baseline kept in this file, in ONE process.

The baseline (`OriginalStyleRamPlus`) is a straightforward implementation of the original computation order, sharing
the weights of the model under test: a Microsoft-style Swin (fused qkv, explicit window attention with the relative
position bias and the shift mask added to eager softmax attention), the description re-weighting with a per-image
Python loop that materializes the (tags, descriptions, 512) product, and the BERT-style decoder (query/key/value
modules, `transpose_for_scores`, an extended attention mask of zeros, eager attention, dropout modules), all in fp32.

The model under test is `optimize_for_inference(RamPlusModel.from_pretrained(...))` (rows `fp32`, `bf16`,
`autocast_bf16`); the `reference_fp32` rows time the same model without `optimize_for_inference`, so the table shows
what the optimization buys. Every figure is reported next to the baseline measured in the same run, as a ratio. Run:

    PYTHONPATH=src python benchmarks/bench_inference.py            # full size (Swin-L 384, 4585 tags x 51)
    PYTHONPATH=src python benchmarks/bench_inference.py --quick    # small sizes, a smoke run (seconds)

Options: `--repeats N` timed runs per figure (median reported), `--checkpoint DIR` a converted model instead of
random weights, `--output FILE` the JSON results (default `benchmarks/results/bench_inference[_quick].json`).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


REPO_ROOT = Path(__file__).resolve().parents[1]
try:
    import transformers_ramplus  # noqa: F401
except ImportError:  # running from a checkout without installing
    sys.path.insert(0, str(REPO_ROOT / "src"))

from transformers.utils import logging as transformers_logging  # noqa: E402

from transformers_ramplus import RamPlusConfig, RamPlusModel, optimize_for_inference  # noqa: E402
from transformers_ramplus.image_processing_ram_plus import RamPlusImageProcessor  # noqa: E402


DEFAULT_IMAGES_DIR = REPO_ROOT.parent / "shared" / "reference" / "images"

# sizes: full = the released model; quick = a smoke run of the same code paths
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
    num_images=8,
)


# ------------------------------------------------------------------------------------------------ memory / timing
def _proc_status_kib(field: str) -> int | None:
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    match = re.search(rf"^{field}:\s+(\d+)\s+kB", text, re.MULTILINE)
    return int(match.group(1)) if match else None


def _reset_peak_rss() -> bool:
    """Reset the kernel's resident-set high-water mark (VmHWM) of this process (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def _release_freed_memory() -> None:
    """Give memory freed by earlier steps back to the system (glibc keeps it otherwise, hiding later peaks)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class PeakMemory:
    """Peak RSS reached inside the block, above the RSS at its start (MiB); torch's CPU allocator is malloc-based,
    so tracemalloc would not see it, but the kernel's VmHWM does."""

    def __enter__(self):
        gc.collect()
        _release_freed_memory()
        self.start = _proc_status_kib("VmRSS")
        self.resettable = _reset_peak_rss()
        return self

    def __exit__(self, *exc):
        peak = _proc_status_kib("VmHWM")
        self.peak_mib = None if peak is None else peak / 1024
        self.above_start_mib = (
            None if (peak is None or self.start is None or not self.resettable) else (peak - self.start) / 1024
        )
        return False


def timed(fn, repeats: int, warmup: int = 1) -> dict:
    """Median and min wall time of `fn()` over `repeats` runs after `warmup` runs; peak RSS over all of them."""
    with PeakMemory() as memory:
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return {
        "median_s": statistics.median(times),
        "min_s": min(times),
        "runs": len(times),
        "peak_rss_mib": memory.peak_mib,
        "peak_rss_above_start_mib": memory.above_start_mib,
    }


def interleaved_timings(plan, repeats: int, log) -> dict:
    """Time every `(label, fn, images, is_baseline, warmup)` of `plan` in rounds (one run of each per round), so that
    a change of machine load during the run affects all of them alike. `fn` processes `images` images; per-image
    figures divide by that count.

    The first run of each entry measures its peak RSS: `warmup` when given (not timed: a batch-1 entry warms up on
    one image, then every timed run tags the same `images` images one at a time), else a run of `fn` that counts
    as the first sample (large batches already ran while computing the logits of every image). The baseline's
    large batch is slow and is run once."""
    samples, results = {}, {}
    for label, fn, _, _, warmup in plan:
        log(f"first run (peak memory) {label}")
        with PeakMemory() as memory:
            start = time.perf_counter()
            (warmup or fn)()
            elapsed = time.perf_counter() - start
        samples[label] = [] if warmup is not None else [elapsed]
        results[label] = {"peak_rss_mib": memory.peak_mib, "peak_rss_above_start_mib": memory.above_start_mib}
    for round_index in range(repeats):
        log(f"timing round {round_index + 1}/{repeats}")
        for label, fn, _, is_baseline, _ in plan:
            if len(samples[label]) >= (1 if is_baseline else repeats):
                continue
            start = time.perf_counter()
            fn()
            samples[label].append(time.perf_counter() - start)
    for label, _, images, _, _ in plan:
        runs = samples[label]
        results[label].update(
            median_s=statistics.median(runs), min_s=min(runs), runs=len(runs), images=images,
            per_image_s=statistics.median(runs) / images,
        )
    return results


# ------------------------------------------------------------------------------------------------------ the baseline
def _relative_position_index(window: int) -> torch.Tensor:
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    relative = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
    return relative[..., 0] * (2 * window - 1) + relative[..., 1]


def _window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    batch, height, width, channels = x.shape
    x = x.view(batch, height // window, window, width // window, window, channels)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, window, window, channels)


def _window_reverse(windows: torch.Tensor, window: int, height: int, width: int) -> torch.Tensor:
    batch = int(windows.shape[0] / (height * width / window / window))
    x = windows.view(batch, height // window, width // window, window, window, -1)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(batch, height, width, -1)


class OriginalStyleSwinBlock(nn.Module):
    """One Swin block as the original computes it: fused qkv, eager window attention, explicit shift mask."""

    def __init__(self, block, resolution: int, window: int, shift: int, num_heads: int):
        super().__init__()
        attention = block.attention
        self.num_heads = num_heads
        self.resolution = resolution
        if resolution <= window:  # the window covers the whole map: no shift
            window, shift = resolution, 0
        self.window, self.shift = window, shift
        dim = attention.q_proj.weight.shape[0]
        self.scale = (dim // num_heads) ** -0.5
        self.norm1, self.norm2 = block.layernorm_before, block.layernorm_after
        self.qkv = nn.Linear(dim, 3 * dim)
        with torch.no_grad():  # the original stores q, k, v as one matrix
            self.qkv.weight.copy_(torch.cat([attention.q_proj.weight, attention.k_proj.weight, attention.v_proj.weight]))
            self.qkv.bias.copy_(torch.cat([attention.q_proj.bias, attention.k_proj.bias, attention.v_proj.bias]))
        self.proj = attention.o_proj
        self.bias_table = attention.relative_position_bias.relative_position_bias_table
        self.register_buffer("bias_index", _relative_position_index(window), persistent=False)
        self.fc1, self.fc2 = block.mlp.fc1, block.mlp.fc2
        if shift > 0:
            region = torch.zeros(1, resolution, resolution, 1)
            bounds = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
            label = 0
            for rows in bounds:
                for cols in bounds:
                    region[:, rows, cols, :] = label
                    label += 1
            windows = _window_partition(region, window).view(-1, window * window)
            mask = windows.unsqueeze(1) - windows.unsqueeze(2)
            mask = mask.masked_fill(mask != 0, -100.0).masked_fill(mask == 0, 0.0)
            self.register_buffer("shift_mask", mask, persistent=False)
        else:
            self.shift_mask = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, channels = x.shape
        side, window = self.resolution, self.window
        shortcut = x
        x = self.norm1(x).view(batch, side, side, channels)
        if self.shift > 0:
            x = torch.roll(x, shifts=(-self.shift, -self.shift), dims=(1, 2))
        windows = _window_partition(x, window).view(-1, window * window, channels)
        num_windows_total, tokens, _ = windows.shape
        qkv = self.qkv(windows).reshape(num_windows_total, tokens, 3, self.num_heads, channels // self.num_heads)
        qkv = qkv.permute(2, 0, 3, 1, 4)
        query, key, value = qkv[0], qkv[1], qkv[2]
        attn = (query * self.scale) @ key.transpose(-2, -1)
        bias = self.bias_table[self.bias_index.view(-1)].view(tokens, tokens, -1).permute(2, 0, 1).contiguous()
        attn = attn + bias.unsqueeze(0)
        if self.shift_mask is not None:
            per_image = self.shift_mask.shape[0]
            attn = attn.view(num_windows_total // per_image, per_image, self.num_heads, tokens, tokens)
            attn = (attn + self.shift_mask.unsqueeze(1).unsqueeze(0)).view(-1, self.num_heads, tokens, tokens)
        attn = attn.softmax(dim=-1)
        out = (attn @ value).transpose(1, 2).reshape(num_windows_total, tokens, channels)
        out = self.proj(out).view(-1, window, window, channels)
        x = _window_reverse(out, window, side, side)
        if self.shift > 0:
            x = torch.roll(x, shifts=(self.shift, self.shift), dims=(1, 2))
        x = shortcut + x.view(batch, side * side, channels)
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class OriginalStylePatchMerging(nn.Module):
    def __init__(self, downsample, resolution: int):
        super().__init__()
        self.norm, self.reduction, self.resolution = downsample.norm, downsample.reduction, resolution

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, channels = x.shape
        x = x.view(batch, self.resolution, self.resolution, channels)
        x0, x1 = x[:, 0::2, 0::2, :], x[:, 1::2, 0::2, :]
        x2, x3 = x[:, 0::2, 1::2, :], x[:, 1::2, 1::2, :]
        x = torch.cat([x0, x1, x2, x3], -1).view(batch, -1, 4 * channels)
        return self.reduction(self.norm(x))


class BertStyleTaggingLayer(nn.Module):
    """The original decoder layer: BERT cross-attention modules (no self-attention) and feed-forward."""

    def __init__(self, layer, num_heads: int):
        super().__init__()
        attention = layer.cross_attention
        self.num_heads = num_heads
        self.head_size = attention.q_proj.weight.shape[0] // num_heads
        self.query, self.key, self.value = attention.q_proj, attention.k_proj, attention.v_proj
        self.attention_dropout = nn.Dropout(0.1)
        self.attention_output_dense, self.attention_output_norm = attention.o_proj, layer.cross_attention_layer_norm
        self.intermediate_dense = layer.fc1
        self.output_dense, self.output_norm = layer.fc2, layer.final_layer_norm
        self.dropout = nn.Dropout(0.1)

    def transpose_for_scores(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.size()[:-1] + (self.num_heads, self.head_size)).permute(0, 2, 1, 3)

    def forward(self, hidden: torch.Tensor, encoder_hidden: torch.Tensor, extended_mask: torch.Tensor) -> torch.Tensor:
        query = self.transpose_for_scores(self.query(hidden))
        key = self.transpose_for_scores(self.key(encoder_hidden))
        value = self.transpose_for_scores(self.value(encoder_hidden))
        scores = torch.matmul(query, key.transpose(-1, -2)) / math.sqrt(self.head_size)
        probs = self.attention_dropout(nn.functional.softmax(scores + extended_mask, dim=-1))
        context = torch.matmul(probs, value).permute(0, 2, 1, 3).contiguous()
        context = context.view(context.size()[:-2] + (self.num_heads * self.head_size,))
        attention_out = self.attention_output_norm(self.dropout(self.attention_output_dense(context)) + hidden)
        intermediate = F.gelu(self.intermediate_dense(attention_out))
        return self.output_norm(self.dropout(self.output_dense(intermediate)) + attention_out)


class OriginalStyleRamPlus(nn.Module):
    """The original computation order, fp32, sharing the weights of `model` (only the fused qkv are new tensors)."""

    def __init__(self, model: RamPlusModel):
        super().__init__()
        config, vision = model.config, model.config.vision_config
        swin = model.vision_model
        patch = vision.patch_size if isinstance(vision.patch_size, int) else vision.patch_size[0]
        self.patch_proj, self.patch_norm = swin.embeddings.patch_embeddings.projection, swin.embeddings.norm
        resolution = vision.image_size // patch
        stages = []
        for index, stage in enumerate(swin.encoder.layers):
            blocks = [
                OriginalStyleSwinBlock(
                    block, resolution, vision.window_size, 0 if j % 2 == 0 else vision.window_size // 2,
                    vision.num_heads[index],
                )
                for j, block in enumerate(stage.blocks)
            ]
            merge = OriginalStylePatchMerging(stage.downsample, resolution) if stage.downsample is not None else None
            stages.append(nn.ModuleDict({"blocks": nn.ModuleList(blocks), **({"merge": merge} if merge else {})}))
            if merge is not None:
                resolution //= 2
        self.stages = nn.ModuleList(stages)
        self.final_norm = swin.layernorm
        self.image_proj = model.image_projection
        self.label_embed = model.label_embeds  # (C*D, T), shared
        self.descriptions_per_tag = config.descriptions_per_tag
        self.description_mask = model.builtin_description_mask()
        self.reweight_scale = model.reweight_scale
        self.wordvec_proj = model.query_projection
        self.layers = nn.ModuleList(
            [BertStyleTaggingLayer(layer, config.num_attention_heads) for layer in model.decoder.layers]
        )
        self.fc = model.classifier

    def image_embeds(self, pixel_values: torch.Tensor) -> torch.Tensor:
        x = self.patch_norm(self.patch_proj(pixel_values).flatten(2).transpose(1, 2))
        for stage in self.stages:
            for block in stage["blocks"]:
                x = block(x)
            if "merge" in stage:
                x = stage["merge"](x)
        x = self.final_norm(x)
        pooled = x.transpose(1, 2).mean(dim=-1, keepdim=True).transpose(1, 2)  # average pool over the tokens
        return self.image_proj(torch.cat([pooled, x], dim=1))

    def tag_logits(self, image_embeds: torch.Tensor) -> torch.Tensor:
        batch = image_embeds.shape[0]
        width = self.label_embed.shape[-1]
        per_tag = self.descriptions_per_tag
        cls = F.normalize(image_embeds[:, 0, :], dim=-1)
        similarity = (self.reweight_scale.exp() * cls @ self.label_embed.t()).view(batch, -1, per_tag)
        if self.description_mask is not None:
            similarity = similarity.masked_fill(~self.description_mask, torch.finfo(similarity.dtype).min)
        weights = F.softmax(similarity, dim=2)
        num_tags = similarity.shape[1]
        reweighted = torch.empty(batch, num_tags, width)
        for i in range(batch):  # the original loops over the images, materializing (C, D, T) each time
            descriptions = self.label_embed.view(-1, per_tag, width)
            product = weights[i].unsqueeze(-1) * descriptions
            reweighted[i] = product.sum(dim=1)
        hidden = F.relu(self.wordvec_proj(reweighted))
        attention_mask = torch.ones(image_embeds.shape[:2], dtype=torch.long)
        extended_mask = (1.0 - attention_mask[:, None, None, :].to(hidden.dtype)) * -10000.0
        for layer in self.layers:
            hidden = layer(hidden, image_embeds, extended_mask)
        return self.fc(hidden).squeeze(-1)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.tag_logits(self.image_embeds(pixel_values))


# ----------------------------------------------------------------------------------------------------------- images
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


# ------------------------------------------------------------------------------------------------------------ model
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


def logit_thresholds(reference_logits: torch.Tensor, config_thresholds: torch.Tensor, rate: float) -> dict:
    """Decision rules compared between fp32 and bf16, as logit thresholds broadcastable to (images, tags).

    - `config`: the model's per-tag thresholds (what a trained checkpoint uses; with random weights the scores of one
      image sit close together, so these decisions are nearly all-or-nothing and say little);
    - `global_{rate}`: one threshold for all, at which `rate` of the fp32 (image, tag) pairs are positive;
    - `per_image_top_{rate}`: per image, the fp32 top `rate` of the tags are positive (the tail of each image's
      scores, where a trained tagger's positives are); the threshold sits midway between the last positive and the
      first negative fp32 logit, so the check is as strict as the fp32 scores' spacing allows.
    """
    logits = reference_logits.float()
    k = max(1, math.ceil(rate * logits.shape[1]))
    top = logits.topk(k + 1, dim=1).values
    return {
        "config": torch.logit(config_thresholds.double()).float().unsqueeze(0),
        f"global_{rate:g}": torch.quantile(logits.flatten(), 1.0 - rate).reshape(1, 1),
        f"per_image_top_{rate:g}": ((top[:, k - 1] + top[:, k]) / 2).unsqueeze(1),
    }


def decision_agreement(reference_logits: torch.Tensor, other_logits: torch.Tensor, logit_threshold: torch.Tensor) -> dict:
    ref = reference_logits.float() > logit_threshold
    other = other_logits.float() > logit_threshold
    union = (ref | other).sum(dim=1)
    # an image with no tag in either run has identical (empty) tag sets: Jaccard 1
    jaccard = torch.where(union > 0, (ref & other).sum(dim=1) / union.clamp(min=1), 1.0).mean().item()
    return {
        "identical_decisions": (ref == other).float().mean().item(),
        "positives_reference": int(ref.sum()),
        "positives_other": int(other.sum()),
        "flipped": int((ref != other).sum()),
        "mean_tagset_jaccard": jaccard,
        "images_with_identical_tags": int((ref == other).all(dim=1).sum()),
    }


def run_batches(fn, pixel_values: torch.Tensor, batch_size: int) -> torch.Tensor:
    return torch.cat([fn(pixel_values[i : i + batch_size]) for i in range(0, len(pixel_values), batch_size)])


def environment() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "load_average_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


# ------------------------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run of every measurement")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per figure (the median is reported)")
    parser.add_argument("--checkpoint", type=Path, help="a converted RAM++ directory instead of random weights")
    parser.add_argument("--images-dir", type=Path, default=DEFAULT_IMAGES_DIR, help="real photos (*.jpg) to use first")
    parser.add_argument("--num-images", type=int, help="images for the bf16 decision check (default 16, quick 8)")
    parser.add_argument("--batch-size", type=int, default=8, help="the large batch size")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, help="JSON results file")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    transformers_logging.disable_progress_bar()
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = dict(QUICK if args.quick else FULL)
    if args.num_images:
        sizes["num_images"] = args.num_images
    big = args.batch_size
    sizes["num_images"] = max(sizes["num_images"], big)
    output = args.output or REPO_ROOT / "benchmarks" / "results" / (
        "bench_inference_quick.json" if args.quick else "bench_inference.json"
    )
    repeats = args.repeats
    log = lambda message: sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {message}\n")  # noqa: E731
    results = {"mode": "quick" if args.quick else "full", "environment": environment(), "repeats": repeats}
    torch.manual_seed(args.seed)

    # ---------------------------------------------------------------- images
    images, names = load_benchmark_images(args.images_dir, sizes["num_images"], args.seed)
    image_size = sizes["image_size"]
    if args.checkpoint is not None:  # the checkpoint's own resolution, also with --quick
        image_size = RamPlusConfig.from_pretrained(args.checkpoint).vision_config.image_size
    processor = RamPlusImageProcessor(size={"height": image_size, "width": image_size})
    pixel_values = processor(images=images, return_tensors="pt")["pixel_values"]
    results["images"] = names

    # ---------------------------------------------------------------- model + from_pretrained
    with tempfile.TemporaryDirectory(prefix="ramplus-bench-") as tmp:
        if args.checkpoint is not None:
            model_dir = args.checkpoint
            results["weights"] = f"checkpoint {args.checkpoint}"
        else:
            log("building a random model")
            model = build_random_model(sizes, args.seed)
            results["weights"] = f"random (seed {args.seed}, query projection x10)"
            model_dir = Path(tmp) / "model"
            model.save_pretrained(model_dir)
            del model
            gc.collect()
        file_bytes = sum(p.stat().st_size for p in Path(model_dir).glob("*.safetensors"))
        load = {}
        for label, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
            start = time.perf_counter()
            loaded = RamPlusModel.from_pretrained(model_dir, dtype=dtype).eval()
            load[label] = time.perf_counter() - start
            if label == "fp32":
                model = optimize_for_inference(loaded, precision="fp32")
            else:
                model_bf16 = optimize_for_inference(loaded, precision="bf16")
        # the reference model, as `from_pretrained` gives it: what `optimize_for_inference` buys
        reference_model = RamPlusModel.from_pretrained(model_dir).eval()
        results["from_pretrained_s"] = load
        results["weights_file_mib"] = file_bytes / 2**20
        log(f"from_pretrained: {load}")
    config = model.config
    num_params = sum(p.numel() for p in model.parameters()) + model.label_embeds.numel()
    results["sizes"] = {
        "num_tags": config.num_tags,
        "descriptions_per_tag": config.descriptions_per_tag,
        "image_size": image_size,
        "parameters_and_label_embeds": num_params,
    }
    baseline = OriginalStyleRamPlus(model).eval()
    thresholds = torch.tensor(config.thresholds())
    generator = torch.Generator().manual_seed(args.seed)
    subset = torch.randperm(config.num_tags, generator=generator)[: min(sizes["subset"], config.num_tags)].sort().values

    ours = lambda m: (lambda pv: m(pixel_values=pv).logits)  # noqa: E731

    def autocast_call(pv):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return model(pixel_values=pv).logits

    one, batch = pixel_values[:1], pixel_values[:big]
    checked = min(2, len(pixel_values))  # the baseline is slow: compare it with the model on the first images
    times = {}
    with torch.inference_mode():
        # ------------------------------------------------------------ exactness (fp32) and decisions (bf16)
        log(f"logits: baseline and fp32 batch 1 on {checked} images; fp32, bf16, autocast on all {len(names)}")
        logits = {
            "baseline": run_batches(baseline, pixel_values[:checked], 1),
            "reference_fp32_batch1": run_batches(ours(reference_model), pixel_values[:checked], 1),
            "fp32_batch1": run_batches(ours(model), pixel_values[:checked], 1),
            "fp32": run_batches(ours(model), pixel_values, big),
            "bf16": run_batches(ours(model_bf16), pixel_values, big).float(),
            "autocast_bf16": run_batches(autocast_call, pixel_values, big).float(),
        }
        exact = {
            "max_abs_diff_vs_baseline_batch1": (logits["fp32_batch1"] - logits["baseline"]).abs().max().item(),
            "max_abs_diff_reference_vs_baseline_batch1": (
                (logits["reference_fp32_batch1"] - logits["baseline"]).abs().max().item()
            ),
            "max_abs_diff_vs_baseline_batch8": (logits["fp32"][:checked] - logits["baseline"]).abs().max().item(),
            "images_checked": checked,
        }
        exact["within_1e-4"] = max(
            exact["max_abs_diff_vs_baseline_batch1"],
            exact["max_abs_diff_vs_baseline_batch8"],
            exact["max_abs_diff_reference_vs_baseline_batch1"],
        ) <= 1e-4
        results["fp32_exactness"] = exact
        rules = logit_thresholds(logits["fp32"], thresholds, rate=0.01)
        results["bf16_decisions_vs_fp32"] = {
            label: {
                "max_abs_logit_diff": (logits["fp32"] - logits[label]).abs().max().item(),
                **{rule: decision_agreement(logits["fp32"], logits[label], cut) for rule, cut in rules.items()},
            }
            for label in ("bf16", "autocast_bf16")
        }

        # ------------------------------------------------------------ end-to-end timings
        plan = [
            ("baseline_fp32", baseline),
            ("reference_fp32", ours(reference_model)),
            ("fp32", ours(model)),
            ("bf16", ours(model_bf16)),
            ("autocast_bf16", autocast_call),
        ]
        # batch 1 and batch `big` tag the same `big` images, so their per-image times compare the same work (the
        # baseline's slow large batch is timed once)
        end_to_end = [
            (f"{label}_b1", (lambda fn=fn: run_batches(fn, batch, 1)), big, False, (lambda fn=fn: fn(one)))
            for label, fn in plan
        ] + [
            (f"{label}_b{big}", (lambda fn=fn: fn(batch)), big, label.startswith("baseline"), None)
            for label, fn in plan
        ]
        times.update(interleaved_timings(end_to_end, repeats, log))

        # ------------------------------------------------------------ decoder only (re-weighting + decoder + head)
        embeds32 = model.get_image_embeds(one)
        embeds16 = model_bf16.get_image_embeds(one.to(torch.bfloat16))
        decoder_plan = [
            ("decoder_baseline_fp32", lambda: baseline.tag_logits(embeds32)),
            ("decoder_reference_fp32", lambda: reference_model(image_embeds=embeds32).logits),
            ("decoder_fp32", lambda: model(image_embeds=embeds32).logits),
            ("decoder_fp32_subset", lambda: model(image_embeds=embeds32, tag_indices=subset).logits),
            ("decoder_bf16", lambda: model_bf16(image_embeds=embeds16).logits),
            ("decoder_bf16_subset", lambda: model_bf16(image_embeds=embeds16, tag_indices=subset).logits),
            ("swin_fp32", lambda: model.get_image_embeds(one)),
            ("swin_reference_fp32", lambda: reference_model.get_image_embeds(one)),
            ("swin_baseline_fp32", lambda: baseline.image_embeds(one)),
        ]
        times.update(interleaved_timings([(label, fn, 1, False, fn) for label, fn in decoder_plan], repeats, log))
        subset_logits = model(image_embeds=embeds32, tag_indices=subset).logits
        full_logits = model(image_embeds=embeds32).logits
        results["subset_matches_full"] = (subset_logits - full_logits[:, subset]).abs().max().item()
    results["subset_size"] = int(subset.numel())
    results["times"] = times

    base1 = times["baseline_fp32_b1"]["per_image_s"]
    ratios = {label: base1 / timing["per_image_s"] for label, timing in times.items() if not label.startswith(("decoder", "swin"))}
    ratios["decoder_fp32_vs_baseline_decoder"] = times["decoder_baseline_fp32"]["median_s"] / times["decoder_fp32"]["median_s"]
    ratios["decoder_bf16_vs_baseline_decoder"] = times["decoder_baseline_fp32"]["median_s"] / times["decoder_bf16"]["median_s"]
    ratios["subset_decoder_fraction_fp32"] = times["decoder_fp32_subset"]["median_s"] / times["decoder_fp32"]["median_s"]
    ratios["subset_decoder_fraction_bf16"] = times["decoder_bf16_subset"]["median_s"] / times["decoder_bf16"]["median_s"]
    ratios["swin_fp32_vs_baseline_swin"] = times["swin_baseline_fp32"]["median_s"] / times["swin_fp32"]["median_s"]
    ratios["optimized_vs_reference_fp32_b1"] = times["reference_fp32_b1"]["per_image_s"] / times["fp32_b1"]["per_image_s"]
    ratios["decoder_optimized_vs_reference_fp32"] = (
        times["decoder_reference_fp32"]["median_s"] / times["decoder_fp32"]["median_s"]
    )
    results["speedup_vs_baseline_fp32_b1"] = ratios
    weights_mib = {
        "fp32": sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers())) / 2**20,
        "bf16": sum(t.numel() * t.element_size() for t in list(model_bf16.parameters()) + list(model_bf16.buffers())) / 2**20,
    }
    results["weights_in_memory_mib"] = weights_mib
    results["environment"]["load_average_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None

    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".tmp")
    partial.write_text(json.dumps(results, indent=2) + "\n")
    os.replace(partial, output)

    # ---------------------------------------------------------------- table
    lines = [
        f"RAM++ inference benchmark ({results['mode']}: {config.num_tags} tags x {config.descriptions_per_tag}, "
        f"{image_size} px; {results['weights']})",
        f"cpu: {results['environment']['cpu']}, torch threads {results['environment']['torch_threads']}, "
        f"load average at start {results['environment']['load_average_start']}",
        "",
        f"| {'measurement':<24} | {'s/image':>8} | {'speed-up vs baseline b1':>23} | {'peak RSS above start (MiB)':>26} |",
        f"|{'-' * 26}|{'-' * 10}|{'-' * 25}|{'-' * 28}|",
    ]
    for label, timing in times.items():
        if label.startswith(("decoder", "swin")):
            continue
        peak = timing["peak_rss_above_start_mib"]
        lines.append(
            f"| {label:<24} | {timing['per_image_s']:>8.3f} | {ratios[label]:>22.2f}x | "
            f"{'n/a' if peak is None else f'{peak:.0f}':>26} |"
        )
    lines += [
        "",
        f"| {'component (batch 1)':<24} | {'seconds':>8} | {'note':<48} |",
        f"|{'-' * 26}|{'-' * 10}|{'-' * 50}|",
    ]
    notes = {
        "decoder_baseline_fp32": "baseline re-weighting + decoder + head",
        "decoder_reference_fp32": "the reference model, not optimized",
        "decoder_fp32": f"{ratios['decoder_fp32_vs_baseline_decoder']:.2f}x faster than the baseline decoder",
        "decoder_fp32_subset": f"{subset.numel()} tags: {100 * ratios['subset_decoder_fraction_fp32']:.1f}% of all tags",
        "decoder_bf16": f"{ratios['decoder_bf16_vs_baseline_decoder']:.2f}x faster than the baseline decoder",
        "decoder_bf16_subset": f"{subset.numel()} tags: {100 * ratios['subset_decoder_fraction_bf16']:.1f}% of all tags",
        "swin_fp32": f"{ratios['swin_fp32_vs_baseline_swin']:.2f}x vs the original-style Swin",
        "swin_reference_fp32": "the reference model's Swin, not optimized",
        "swin_baseline_fp32": "original-style Swin (fused qkv, eager)",
    }
    for label, note in notes.items():
        lines.append(f"| {label:<24} | {times[label]['median_s']:>8.3f} | {note:<48} |")
    lines += [
        "",
        f"fp32 logits vs baseline: max |diff| {max(exact['max_abs_diff_vs_baseline_batch1'], exact['max_abs_diff_vs_baseline_batch8']):.2e} "
        f"({'OK' if exact['within_1e-4'] else 'FAIL'} at 1e-4); {subset.numel()}-tag subset vs full: {results['subset_matches_full']:.2e}",
    ]
    for label, checks in results["bf16_decisions_vs_fp32"].items():
        lines.append(f"{label} vs fp32 on {len(names)} images (max |logit diff| {checks['max_abs_logit_diff']:.3f}):")
        for rule, agreement in checks.items():
            if rule == "max_abs_logit_diff":
                continue
            lines.append(
                f"    {rule:<20} {100 * agreement['identical_decisions']:.3f}% identical decisions, "
                f"{agreement['flipped']} flipped of {agreement['positives_reference']} fp32 positives, "
                f"tag-set Jaccard {agreement['mean_tagset_jaccard']:.3f}, "
                f"{agreement['images_with_identical_tags']}/{len(names)} images with identical tags"
            )
    lines.append(
        f"from_pretrained: fp32 {load['fp32']:.2f} s, bf16 {load['bf16']:.2f} s ({results['weights_file_mib']:.0f} MiB "
        f"safetensors, page cache warm); weights in memory: fp32 {weights_mib['fp32']:.0f} MiB, bf16 {weights_mib['bf16']:.0f} MiB"
    )
    lines.append(f"results: {output}")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0 if exact["within_1e-4"] else 1


if __name__ == "__main__":
    sys.exit(main())
