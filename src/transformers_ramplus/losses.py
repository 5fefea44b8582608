# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""The RAM++ training losses (SPEC section 3) as pure functions.

- `asymmetric_loss`: ASL with the original semantics (focusing weights carry no gradient, sum reduction). The single
  implementation lives in `modeling_ram_plus.py` (the model file must stay importable on its own as remote code);
  it is re-exported here.
- `tagging_loss(logits, labels)`: ASL with the tag-loss hyper-parameters (gamma_neg 7, gamma_pos 0, clip 0.05).
- `alignment_loss(alignment_logits)`: ASL (gamma_neg 4, gamma_pos 0, clip 0.05) of the `(batch, num_captions)`
  image-caption logits against identity targets (caption i belongs to image i).
- `distillation_loss(image_cls, teacher_image_embeds)`: mean L1 between the unnormalized `cls` image embedding and the
  frozen CLIP image embedding of the same image.

`RamPlusModel.forward` computes the same three terms from `labels`, captions and `teacher_image_embeds`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .modeling_ram_plus import asymmetric_loss


def tagging_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    gamma_neg: float = 7.0,
    gamma_pos: float = 0.0,
    clip: float | None = 0.05,
    eps: float = 1e-8,
) -> torch.Tensor:
    """ASL of the tag logits `(batch, num_tags)` against multi-hot `labels` (sum over batch and tags)."""
    return asymmetric_loss(logits, labels, gamma_neg=gamma_neg, gamma_pos=gamma_pos, clip=clip, eps=eps)


def alignment_loss(
    alignment_logits: torch.Tensor,
    gamma_neg: float = 4.0,
    gamma_pos: float = 0.0,
    clip: float | None = 0.05,
    eps: float = 1e-8,
) -> torch.Tensor:
    """ASL of image-caption logits `(batch, num_captions)` against identity targets."""
    if alignment_logits.dim() != 2:
        raise ValueError(f"`alignment_logits` must be (batch, num_captions), got {tuple(alignment_logits.shape)}")
    targets = torch.eye(*alignment_logits.shape, device=alignment_logits.device, dtype=torch.float32)
    return asymmetric_loss(alignment_logits, targets, gamma_neg=gamma_neg, gamma_pos=gamma_pos, clip=clip, eps=eps)


def distillation_loss(image_cls: torch.Tensor, teacher_image_embeds: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between `image_cls` `(batch, dim)` and `teacher_image_embeds` `(batch, dim)`."""
    if image_cls.shape != teacher_image_embeds.shape:
        raise ValueError(
            f"`teacher_image_embeds` {tuple(teacher_image_embeds.shape)} must match the image embedding "
            f"{tuple(image_cls.shape)}"
        )
    return F.l1_loss(image_cls.float(), teacher_image_embeds.float())


__all__ = ["alignment_loss", "asymmetric_loss", "distillation_loss", "tagging_loss"]
