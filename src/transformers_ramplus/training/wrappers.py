# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""The `RamPlusModel` inside the wrappers training puts around it (DDP, PEFT, `Trainer`)."""

from __future__ import annotations

from torch import nn

from ..models.ram_plus.modeling_ram_plus import RamPlusModel


def unwrap_model(model: nn.Module) -> nn.Module:
    """The `RamPlusModel` inside DDP / PEFT wrappers."""
    seen = model
    for _ in range(8):
        if isinstance(seen, RamPlusModel):
            return seen
        if hasattr(seen, "module"):
            seen = seen.module
        elif hasattr(seen, "get_base_model"):
            seen = seen.get_base_model()
        elif hasattr(seen, "model") and isinstance(seen.model, nn.Module):
            seen = seen.model
        else:
            break
    raise TypeError(f"expected a RamPlusModel (possibly wrapped), got {type(model).__name__}")
