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
- **Not adapted**: the CLIP text tower (frozen: the label embeddings live in its space) and the label embeddings
  (`tag_embeddings`, a buffer). The **classifier head** (`classifier`, 769 parameters) is trained fully and saved with
  the adapter (`modules_to_save`): its bias sets the base rate of every tag, which changes with a new tag
  distribution.

`vision=False` leaves the image encoder out (cheapest: vocabulary fine-tuning on a familiar image domain).

**Tags travel with the adapter.** When the vocabulary was changed before fine-tuning (`add_tags`, i.e.
`model.set_vocabulary`), the model's `tag_embeddings` module (`RamPlusTagEmbeddings`) goes into `modules_to_save`
(`default_lora_config(save_vocabulary=True)`; `apply_lora(model)` chooses it), so peft's own code saves its label
embeddings in `adapter_model.safetensors`; `save_adapter` and `RamPlusTrainer`'s `checkpoint-N` folders add the
names, thresholds, Chinese names and description counts as `tag_vocabulary.json` (plain JSON next to
`adapter_config.json`, which peft would not keep unknown keys in, and no `config.json`, which would make transformers
take the folder for a full model). `load_adapter(base, dir)`, `base.load_adapter(dir)`,
`AutoModel.from_pretrained(dir)` and `pipeline(model=dir)` install that vocabulary (`RamPlusModel.load_adapter_vocabulary`) before peft loads the
weights; with peft's own `PeftModel.from_pretrained(base, dir)`, call `base.load_adapter_vocabulary(dir)` first.
Adapters trained on the base model's own vocabulary carry neither. A `LoraConfig` without `tag_embeddings` in
`modules_to_save` is refused (`check_vocabulary_travels`) when the vocabulary was changed.
"""

from __future__ import annotations

import os
import warnings

from torch import nn

from ..io.atomic import atomic_write_json
from ..models.ram_plus.modeling_ram_plus import ADAPTER_VOCABULARY_NAME, TAG_EMBEDDINGS_MODULE, RamPlusModel
from ..tags.tag_set import TAG_SET_CONFIG_NAME, TagSet


DECODER_PATTERN = r"decoder\.layers\.\d+\.(cross_attention\.(q_proj|k_proj|v_proj|o_proj)|fc1|fc2)"
PROJECTION_PATTERN = r"query_projection|image_projection"
VISION_PATTERN = r"vision_model\.encoder\.layers\.\d+\.blocks\.\d+\.attention\.(q_proj|v_proj)"


def default_lora_config(
    r: int = 8,
    lora_alpha: int = 16,
    lora_dropout: float = 0.05,
    vision: bool = True,
    train_classifier: bool = True,
    save_vocabulary: bool = False,
    **kwargs,
):
    """The default `peft.LoraConfig` for RAM++ (see the module docstring for the choice of modules).
    `save_vocabulary=True` saves the label embeddings with the adapter: needed when the vocabulary was changed."""
    from peft import LoraConfig

    patterns = [DECODER_PATTERN, PROJECTION_PATTERN] + ([VISION_PATTERN] if vision else [])
    modules_to_save = (["classifier"] if train_classifier else []) + ([TAG_EMBEDDINGS_MODULE] if save_vocabulary else [])
    return LoraConfig(
        r=r,
        lora_alpha=lora_alpha,
        lora_dropout=lora_dropout,
        target_modules=r"^(" + "|".join(patterns) + r")$",
        modules_to_save=modules_to_save,
        bias="none",
        **kwargs,
    )


def apply_lora(model: nn.Module, config=None):
    """Wrap a `RamPlusModel` in a `peft.PeftModel` with `config` (default: `default_lora_config()`, saving the
    vocabulary when it was changed). Only the LoRA matrices and `modules_to_save` are trainable afterwards."""
    from peft import get_peft_model

    if not isinstance(model, RamPlusModel):
        raise TypeError(f"apply_lora expects a RamPlusModel, got {type(model).__name__}")
    config = config or default_lora_config(save_vocabulary=model.vocabulary_changed)
    check_vocabulary_travels(model, config)
    with warnings.catch_warnings():  # peft reads transformers' deprecated `is_gradient_checkpointing`: not the user's to act on
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return get_peft_model(model, config)


def _base_model(model: nn.Module) -> nn.Module:
    """The `RamPlusModel` of a PEFT model (or `model` itself)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _active_config(model: nn.Module):
    """The active adapter's `PeftConfig` of a `PeftModel`, or None for a plain model."""
    peft_config, active = getattr(model, "peft_config", None), getattr(model, "active_adapter", None)
    return peft_config.get(active) if peft_config and isinstance(active, str) else None


def saves_vocabulary(config) -> bool:
    """Whether adapters of this `LoraConfig` carry the label embeddings (`tag_embeddings` in `modules_to_save`)."""
    return TAG_EMBEDDINGS_MODULE in (getattr(config, "modules_to_save", None) or [])


def check_vocabulary_travels(model: nn.Module, config=None) -> None:
    """Raise when `model`'s vocabulary was changed (new tags) but its LoRA config would not save it in the adapter:
    such an adapter would load later with the base model's old tags."""
    config = config if config is not None else _active_config(model)
    if config is None or not _base_model(model).vocabulary_changed or saves_vocabulary(config):
        return
    raise ValueError(
        "the model's tag vocabulary was changed (new tags), but the LoraConfig does not save it: add "
        f"{TAG_EMBEDDINGS_MODULE!r} to `modules_to_save` (default_lora_config(save_vocabulary=True) does), or the "
        "adapter would load later with the base model's old tags"
    )


def save_adapter_vocabulary(peft_model, output_dir: str | os.PathLike) -> None:
    """Write `tag_vocabulary.json` (the names, thresholds, Chinese names and description counts of the vocabulary
    whose label embeddings the adapter saves) into a saved adapter folder; nothing when the adapter saves none."""
    if saves_vocabulary(_active_config(peft_model)):
        vocabulary = _base_model(peft_model).config.vocabulary()
        atomic_write_json(os.path.join(os.fspath(output_dir), ADAPTER_VOCABULARY_NAME), vocabulary)


def save_adapter(peft_model, output_dir: str | os.PathLike, processor=None) -> None:
    """Save the adapter (`adapter_model.safetensors`, with the label embeddings when the vocabulary was changed,
    `adapter_config.json`, and then `tag_vocabulary.json`) and, when given, the processor, so that
    `pipeline(model=output_dir)` finds it."""
    check_vocabulary_travels(peft_model)
    output_dir = os.fspath(output_dir)
    peft_model.save_pretrained(output_dir)
    save_adapter_vocabulary(peft_model, output_dir)
    if processor is not None:
        processor.save_pretrained(output_dir)
        image_processor = getattr(processor, "image_processor", None)
        if image_processor is not None:  # `preprocessor_config.json`, read by AutoImageProcessor and pipelines
            image_processor.save_pretrained(output_dir)


def load_adapter(base_model: nn.Module, adapter_dir: str | os.PathLike, is_trainable: bool = False):
    """Attach a saved adapter to a base `RamPlusModel`: install the adapter's tag vocabulary
    (`RamPlusModel.load_adapter_vocabulary`), then `PeftModel.from_pretrained`. Adapters written by earlier versions
    that keep their vocabulary in `tag_set.json` side files are read too."""
    from peft import PeftModel

    adapter_dir = os.fspath(adapter_dir)
    if os.path.isfile(os.path.join(adapter_dir, TAG_SET_CONFIG_NAME)):
        TagSet.from_pretrained(adapter_dir).apply_to(base_model, keep_existing=False)
    else:
        base_model.load_adapter_vocabulary(adapter_dir)
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
    "save_adapter_vocabulary",
    "saves_vocabulary",
    "trainable_parameter_names",
]
