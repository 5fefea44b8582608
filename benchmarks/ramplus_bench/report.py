# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""The report: tag-decision agreement between precisions (the decision rules), and the table of timings, ratios
and peak memory."""

from __future__ import annotations

import math

import torch


def logit_thresholds(reference_logits: torch.Tensor, config_thresholds: torch.Tensor, rate: float) -> dict:
    """Decision rules compared between fp32 and bf16, as logit thresholds broadcastable to (images, tags).

    - `config`: the model's per-tag thresholds (what a checkpoint uses; the benchmark's scene model shifts its head
      so that about half of the tags pass them on the real photos, which puts many logits near a threshold);
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


def speedups(times: dict, baseline_label: str) -> dict:
    """Every end-to-end row's speed-up over `baseline_label` (per image)."""
    base = times[baseline_label]["per_image_s"]
    return {label: base / timing["per_image_s"] for label, timing in times.items() if "per_image_s" in timing}


def table(rows: list[tuple[str, str]], times: dict, ratios: dict) -> list[str]:
    """Markdown table of `(label, description)` rows: s/image, speed-up, peak RSS above the start of the row."""
    lines = [
        f"| {'row':<26} | {'what runs':<58} | {'s/image':>8} | {'vs baseline fp32 b1':>19} | {'peak RSS (MiB)':>14} |",
        f"|{'-' * 28}|{'-' * 60}|{'-' * 10}|{'-' * 21}|{'-' * 16}|",
    ]
    for label, what in rows:
        if label not in times:
            continue
        timing = times[label]
        peak = timing.get("peak_rss_above_start_mib")
        lines.append(
            f"| {label:<26} | {what:<58} | {timing['per_image_s']:>8.3f} | {ratios[label]:>18.2f}x | "
            f"{'n/a' if peak is None else f'{peak:.0f}':>14} |"
        )
    return lines


def decision_lines(decisions: dict, num_images: int) -> list[str]:
    lines = []
    for label, checks in decisions.items():
        lines.append(f"{label} vs fp32 on {num_images} images (max |logit diff| {checks['max_abs_logit_diff']:.4f}):")
        for rule, agreement in checks.items():
            if rule == "max_abs_logit_diff":
                continue
            lines.append(
                f"    {rule:<20} {100 * agreement['identical_decisions']:.3f}% identical decisions, "
                f"{agreement['flipped']} flipped of {agreement['positives_reference']} fp32 positives, "
                f"tag-set Jaccard {agreement['mean_tagset_jaccard']:.3f}"
            )
    return lines
