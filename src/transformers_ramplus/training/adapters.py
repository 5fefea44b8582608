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

**Tags travel with the weights.** The model's `tag_vocabulary` module (`RamPlusTagVocabulary`, no weights of its own)
is always in `modules_to_save`: when the vocabulary was changed before fine-tuning (`add_tags`), the adapter's
`adapter_model.safetensors` holds the label embeddings and the names/thresholds/descriptions counts, and every
standard way of loading it installs them: `PeftModel.from_pretrained(base, dir)`, `base.load_adapter(dir)`,
`AutoModel.from_pretrained(dir)`, `pipeline(model=dir)`, and Trainer `checkpoint-N` folders (which are adapters
too). An adapter trained on the base model's own vocabulary adds two empty tensors. A `LoraConfig` without
`tag_vocabulary` in `modules_to_save` is refused (`check_vocabulary_travels`) when the vocabulary was changed.
"""

from __future__ import annotations

import os
import warnings

from torch import nn


DECODER_PATTERN = r"decoder\.layers\.\d+\.(cross_attention\.(q_proj|k_proj|v_proj|o_proj)|fc1|fc2)"
PROJECTION_PATTERN = r"query_projection|image_projection"
VOCABULARY_MODULE = "tag_vocabulary"  # RamPlusTagVocabulary: carries changed vocabularies in adapters
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
        modules_to_save=(["classifier"] if train_classifier else []) + [VOCABULARY_MODULE],
        bias="none",
        **kwargs,
    )


def apply_lora(model: nn.Module, config=None):
    """Wrap a `RamPlusModel` in a `peft.PeftModel` with `config` (default: `default_lora_config()`). Only the LoRA
    matrices and `modules_to_save` are trainable afterwards."""
    from peft import get_peft_model

    from ..models.ram_plus.modeling_ram_plus import RamPlusModel

    if not isinstance(model, RamPlusModel):
        raise TypeError(f"apply_lora expects a RamPlusModel, got {type(model).__name__}")
    config = config or default_lora_config()
    check_vocabulary_travels(model, config)
    with warnings.catch_warnings():  # peft reads transformers' deprecated `is_gradient_checkpointing`: not the user's to act on
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return get_peft_model(model, config)


def check_vocabulary_travels(model: nn.Module, config=None) -> None:
    """Raise when `model`'s vocabulary was changed (new tags) but its LoRA config would not save it in the adapter:
    such an adapter would load later with the base model's old tags."""
    from .trainer import _unwrap

    inner = _unwrap(model)
    if config is None:
        peft_config = getattr(model, "peft_config", None)
        if not peft_config:
            return
        config = peft_config[getattr(model, "active_adapter", "default")]
    if not getattr(inner, "vocabulary_changed", False):
        return
    modules = getattr(config, "modules_to_save", None) or []
    if VOCABULARY_MODULE not in modules:
        raise ValueError(
            "the model's tag vocabulary was changed (new tags), but the LoraConfig does not save it: add "
            f"{VOCABULARY_MODULE!r} to `modules_to_save` (peft_utils.default_lora_config() does), or the adapter "
            "would load later with the base model's old tags"
        )


def save_adapter(peft_model, output_dir: str | os.PathLike, processor=None) -> None:
    """Save the adapter (`adapter_model.safetensors` with the tag vocabulary when it was changed,
    `adapter_config.json`) and, when given, the processor, so that `pipeline(model=output_dir)` finds it."""
    check_vocabulary_travels(peft_model)
    output_dir = os.fspath(output_dir)
    peft_model.save_pretrained(output_dir)
    if processor is not None:
        processor.save_pretrained(output_dir)
        image_processor = getattr(processor, "image_processor", None)
        if image_processor is not None:  # `preprocessor_config.json`, read by AutoImageProcessor and pipelines
            image_processor.save_pretrained(output_dir)


def load_adapter(base_model: nn.Module, adapter_dir: str | os.PathLike, is_trainable: bool = False):
    """Attach a saved adapter to a base `RamPlusModel` (`PeftModel.from_pretrained`, which installs the adapter's tag
    vocabulary). Adapters written by earlier versions keep their vocabulary in `tag_set.json` side files; they are
    read too."""
    from peft import PeftModel

    from ..tags.tag_set import TAG_SET_CONFIG_NAME, TagSet

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
    "check_vocabulary_travels",
    "default_lora_config",
    "load_adapter",
    "merge_adapter",
    "save_adapter",
    "trainable_parameter_names",
]
