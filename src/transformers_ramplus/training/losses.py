# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""The RAM++ training losses as pure functions.

- `asymmetric_loss`: ASL with the original semantics (focusing weights carry no gradient, sum reduction).
- `tagging_loss(logits, labels)`: ASL with the tag-loss hyper-parameters (gamma_neg 7, gamma_pos 0, clip 0.05).
- `alignment_loss(alignment_logits)`: ASL (gamma_neg 4, gamma_pos 0, clip 0.05) of the `(batch, num_captions)`
  image-caption logits against identity targets (caption i belongs to image i).
- `distillation_loss(image_cls, teacher_image_embeds)`: mean L1 between the unnormalized `cls` image embedding and the
  frozen CLIP image embedding of the same image.

They are implemented in `modeling_ram_plus.py` (the model file must stay importable on its own as remote code, and
`RamPlusModel.forward` computes its loss with them) and re-exported here.
"""

from __future__ import annotations

from ..models.ram_plus.modeling_ram_plus import alignment_loss, asymmetric_loss, distillation_loss, tagging_loss


__all__ = ["alignment_loss", "asymmetric_loss", "distillation_loss", "tagging_loss"]
