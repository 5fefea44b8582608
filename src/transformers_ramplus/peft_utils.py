# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""LoRA for RAM++ with `peft`: a documented default configuration, and adapters that save, load and merge.

Which modules the default `LoraConfig` adapts, and why:

- **Decoder cross-attention** (`decoder.layers.N.cross_attention.{q,k,v,o}_proj`) and **decoder feed-forward**
  (`decoder.layers.N.fc1/fc2`): the decoder decides which image regions support which tag; new tags and new domains
  change exactly that. It is small (2 layers), so adapting all of it is cheap.
- **Query projection** (`query_projection`): maps CLIP text embeddings (tags, descriptions, captions) to decoder
  queries. Adapting it lets new tags given only by descriptions become good queries while the text embeddings
  themselves stay in CLIP space.
- **Image projection** (`image_projection`) and the **Swin attention queries and values**
  (`vision_model.encoder.layers.N.blocks.N.attention.{q,v}_proj`, the choice of the LoRA paper): a new image domain
  (medical images, the design card's example) needs adapted visual features; low-rank updates keep the pretrained
  features and the alignment with the CLIP text space that open-set tagging relies on.
- **Not adapted**: the CLIP text tower (frozen: the label embeddings live in its space) and `label_embeds` (a
  buffer). The **classifier head** (`classifier`, 769 parameters) is trained fully and saved with the adapter
  (`modules_to_save`): its bias sets the base rate of every tag, which changes with a new tag distribution.

`vision=False` leaves the image encoder out (cheapest: vocabulary fine-tuning on a familiar image domain).

Adapters are saved with the tag vocabulary of the model they were trained on (a `TagSet`: `tag_set.json` +
`tag_set.safetensors`), so that `load_adapter` can restore new tags on a fresh base model.
"""

from __future__ import annotations

import json
import os

import torch
from torch import nn


DECODER_PATTERN = r"decoder\.layers\.\d+\.(cross_attention\.(q_proj|k_proj|v_proj|o_proj)|fc1|fc2)"
PROJECTION_PATTERN = r"query_projection|image_projection"
VISION_PATTERN = r"vision_model\.encoder\.layers\.\d+\.blocks\.\d+\.attention\.(q_proj|v_proj)"


def default_lora_config(
    r: int = 8,
    lora_alpha: int = 16,
    lora_dropout: float = 0.05,
    vision: bool = True,
    train_classifier: bool = True,
    **kwargs,
):
    """The default `peft.LoraConfig` for RAM++ (see the module docstring for the choice of modules)."""
    from peft import LoraConfig

    patterns = [DECODER_PATTERN, PROJECTION_PATTERN] + ([VISION_PATTERN] if vision else [])
    return LoraConfig(
        r=r,
        lora_alpha=lora_alpha,
        lora_dropout=lora_dropout,
        target_modules=r"^(" + "|".join(patterns) + r")$",
        modules_to_save=["classifier"] if train_classifier else None,
        bias="none",
        **kwargs,
    )


def apply_lora(model: nn.Module, config=None):
    """Wrap a `RamPlusModel` in a `peft.PeftModel` with `config` (default: `default_lora_config()`). Only the LoRA
    matrices and `modules_to_save` are trainable afterwards."""
    from peft import get_peft_model

    from .modeling_ram_plus import RamPlusModel

    if not isinstance(model, RamPlusModel):
        raise TypeError(f"apply_lora expects a RamPlusModel, got {type(model).__name__}")
    return get_peft_model(model, config or default_lora_config())


def save_adapter(peft_model, output_dir: str | os.PathLike) -> None:
    """Save the adapter (`adapter_model.safetensors`, `adapter_config.json`) and the model's tag vocabulary."""
    from .tag_sets import TagSet

    output_dir = os.fspath(output_dir)
    peft_model.save_pretrained(output_dir)
    TagSet.from_vocabulary(peft_model.get_base_model()).save_pretrained(output_dir)


def load_adapter(base_model: nn.Module, adapter_dir: str | os.PathLike, is_trainable: bool = False):
    """Attach a saved adapter to a base `RamPlusModel`; its tag vocabulary (when saved) replaces the base model's."""
    from peft import PeftModel

    from .tag_sets import TAG_SET_CONFIG_NAME, TagSet

    adapter_dir = os.fspath(adapter_dir)
    if os.path.isfile(os.path.join(adapter_dir, TAG_SET_CONFIG_NAME)):
        TagSet.from_pretrained(adapter_dir).apply_to(base_model, keep_existing=False)
    return PeftModel.from_pretrained(base_model, adapter_dir, is_trainable=is_trainable)


def merge_adapter(peft_model) -> nn.Module:
    """Fold the LoRA updates into the base weights and return the plain `RamPlusModel` (save it with
    `save_pretrained`)."""
    merged = peft_model.merge_and_unload()
    merged.freeze_text_model()
    return merged


def trainable_parameter_names(model: nn.Module) -> list[str]:
    return [name for name, param in model.named_parameters() if param.requires_grad]


__all__ = [
    "apply_lora",
    "default_lora_config",
    "load_adapter",
    "merge_adapter",
    "save_adapter",
    "trainable_parameter_names",
]
