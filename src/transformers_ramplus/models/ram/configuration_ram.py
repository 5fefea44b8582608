# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""RAM (Recognize Anything, "Recognize Anything: A Strong Image Tagging Model", arXiv 2306.03514) configuration.

RAM is RAM++'s tagging graph with one CLIP text embedding per tag, used as it is (no description re-weighting), so
[`RamConfig`] is a [`RamPlusConfig`] with its own `model_type` and one description per tag by default. It imports
only RAM++'s configuration and `transformers` (it is part of the remote-code bundle of converted folders).
"""

from __future__ import annotations

from huggingface_hub.dataclasses import strict

from ..ram_plus.configuration_ram_plus import RamPlusConfig


@strict
class RamConfig(RamPlusConfig):
    r"""
    Configuration of a [`RamModel`] (RAM, "Recognize Anything: A Strong Image Tagging Model").

    Every argument of [`RamPlusConfig`] applies, with the same defaults (Swin-L/384 image encoder, the 2-layer
    cross-attention decoder of width 768, per-tag thresholds, Chinese names), except:

    Args:
        descriptions_per_tag (`int`, defaults to 1): the released RAM stores one CLIP text embedding per tag
            (`label_embed` (4585, 512)). A vocabulary with several rows per tag (new tags given by descriptions) is
            used through the mean of each tag's real rows, L2-normalized, as RAM has no re-weighting step.

    `reweight_scale_init` has no effect: a RAM model has no re-weighting scale.
    """

    model_type = "ram"

    descriptions_per_tag: int = 1


__all__ = ["RamConfig"]
