# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""Convert the authors' Tag2Text checkpoint (`tag2text_swin_14m.pth`) to a transformers model folder.

Geometry comes from the tensor shapes (the attention head counts, which shapes do not show, from the BERT convention
of 64-wide heads for the text side and 4 heads for the tagging decoder, or the arguments). The tagging decoder of the
original is a copy of the tag encoder's lowest layers (the original ties them): the converter checks that every
`tagging_head.*` tensor equals its `tag_encoder.*` counterpart and stores it once. Keys the model does not use are
listed and skipped; a needed key that is missing or a shape that does not fit is an error. The folder is written
atomically (a failed conversion leaves nothing behind).
"""

from __future__ import annotations

import logging
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import AutoTokenizer, GenerationConfig

from ...io.atomic import atomic_directory
from ...tags.files import read_tag_list
from ..ram_plus.convert_ram_plus import ConversionError, _check_output_dir, load_original_state_dict, map_key
from ..ram_plus.image_processing_ram_plus import RamPlusImageProcessor
from .configuration_tag2text import (
    DEFAULT_THRESHOLD,
    RELEASED_DELETE_TAG_INDEX,
    RELEASED_NUM_TAGS,
    RELEASED_THRESHOLD_OVERRIDES,
    Tag2TextConfig,
)
from .modeling_tag2text import CAPTION_GENERATION_DEFAULTS, Tag2TextForConditionalGeneration
from .processing_tag2text import Tag2TextProcessor


logger = logging.getLogger(__name__)

_BLOCK = re.compile(r"^visual_encoder\.layers\.(\d+)\.blocks\.(\d+)\.(.+)$")
_TEXT_LAYER = re.compile(r"^tag_encoder\.encoder\.layer\.(\d+)\.")
_DROPPED = re.compile(r"(relative_position_index|attn_mask|position_ids)$")
TAG2TEXT_FORMAT_KEYS = ("label_embed.weight", "fc.W", "tag_encoder.embeddings.word_embeddings.weight")


def is_tag2text_state_dict(state) -> bool:
    """Whether an original state dict is a Tag2Text one (learned tag embeddings, group-wise head, text side)."""
    return all(key in state for key in TAG2TEXT_FORMAT_KEYS)


def is_tag2text_checkpoint(path) -> bool:
    """Whether a checkpoint file holds a Tag2Text state dict (False for anything unreadable: the RAM++ converter
    then reports what is wrong)."""
    try:
        return is_tag2text_state_dict(load_original_state_dict(path))
    except (ConversionError, OSError):
        return False


@dataclass
class Tag2TextConversionReport:
    output_dir: Path
    config: Tag2TextConfig
    converted_keys: int = 0
    dropped_buffers: list[str] = field(default_factory=list)
    unknown_keys: list[str] = field(default_factory=list)
    shared_keys_checked: int = 0


def _require(state, key):
    if key not in state:
        raise ConversionError(f"the checkpoint is missing the key {key!r}")
    return state[key]


def _vision_config(state) -> dict:
    patch = _require(state, "visual_encoder.patch_embed.proj.weight")
    embed_dim, channels, patch_size = patch.shape[0], patch.shape[1], patch.shape[2]
    depths, heads = [], []
    while any(k.startswith(f"visual_encoder.layers.{len(depths)}.blocks.") for k in state):
        stage = len(depths)
        blocks = {int(m.group(2)) for k in state if (m := _BLOCK.match(k)) and int(m.group(1)) == stage}
        depths.append(max(blocks) + 1)
        heads.append(
            _require(state, f"visual_encoder.layers.{stage}.blocks.0.attn.relative_position_bias_table").shape[1]
        )
    if not depths:
        raise ConversionError("the checkpoint has no Swin blocks (`visual_encoder.layers.N.blocks.N.*`)")
    rows = state["visual_encoder.layers.0.blocks.0.attn.relative_position_bias_table"].shape[0]
    window = (math.isqrt(rows) + 1) // 2
    if (2 * window - 1) ** 2 != rows:
        raise ConversionError(f"relative_position_bias_table has {rows} rows, not (2*window-1)^2")
    image_size = 384
    for key, value in state.items():  # the shifted-window mask holds (resolution / window)^2 windows
        match = _BLOCK.match(key)
        if match and match.group(3) == "attn_mask":
            image_size = math.isqrt(value.shape[0]) * window * patch_size * 2 ** int(match.group(1))
            break
    fc1 = _require(state, "visual_encoder.layers.0.blocks.0.mlp.fc1.weight")
    return {
        "image_size": int(image_size),
        "patch_size": int(patch_size),
        "num_channels": int(channels),
        "embed_dim": int(embed_dim),
        "depths": depths,
        "num_heads": heads,
        "window_size": int(window),
        "mlp_ratio": fc1.shape[0] / embed_dim,
        "qkv_bias": "visual_encoder.layers.0.blocks.0.attn.qkv.bias" in state,
        "use_absolute_embeddings": "visual_encoder.absolute_pos_embed" in state,
        "layer_norm_eps": 1e-5,
        "drop_path_rate": 0.0,
    }


def prepare_tokenizer(tokenizer):
    """The BERT tokenizer with `[DEC]` as bos and `[ENC]` as an additional special token (added when missing, as the
    authors' code does to bert-base-uncased)."""
    if isinstance(tokenizer, (str, os.PathLike)):
        try:
            tokenizer = AutoTokenizer.from_pretrained(os.fspath(tokenizer))
        except (OSError, ValueError) as error:
            raise ConversionError(f"cannot load the tokenizer {os.fspath(tokenizer)!r}: {error}") from error
    if tokenizer.bos_token != "[DEC]":
        tokenizer.add_special_tokens({"bos_token": "[DEC]"})
    if "[ENC]" not in tokenizer.all_special_tokens:
        tokenizer.add_special_tokens({"additional_special_tokens": ["[ENC]"]})
    return tokenizer


def infer_config(
    state,
    tag_names: list[str],
    tokenizer,
    text_num_attention_heads: int | None = None,
    tagging_num_attention_heads: int = 4,
    thresholds: list[float] | None = None,
    delete_tag_index: list[int] | None = None,
) -> Tag2TextConfig:
    """A [`Tag2TextConfig`] from the shapes of an original state dict, the tag list and the tokenizer."""
    num_tags, hidden = _require(state, "label_embed.weight").shape
    if len(tag_names) != num_tags:
        raise ConversionError(f"the tag list has {len(tag_names)} tags, the checkpoint's label_embed {num_tags}")
    vocab, text_hidden = _require(state, "tag_encoder.embeddings.word_embeddings.weight").shape
    if text_hidden != hidden:
        raise ConversionError(f"label_embed is {hidden} wide but the tag encoder {text_hidden}")
    if len(tokenizer) != vocab:
        raise ConversionError(
            f"the tokenizer has {len(tokenizer)} tokens but the checkpoint's text vocabulary {vocab} (the released "
            "models use bert-base-uncased plus [DEC] and [ENC]: 30524)"
        )
    layers = sorted({int(m.group(1)) for k in state if (m := _TEXT_LAYER.match(k))})
    if not layers:
        raise ConversionError("the checkpoint has no tag encoder layers (`tag_encoder.encoder.layer.N.*`)")
    encoder_width = _require(state, "tag_encoder.encoder.layer.0.crossattention.self.key.weight").shape[1]
    tagging_layers = sorted(
        {int(m.group(1)) for k in state if (m := re.match(r"^tagging_head\.encoder\.layer\.(\d+)\.", k))}
    )
    heads = text_num_attention_heads or max(1, hidden // 64)
    unk = tokenizer.unk_token_id
    enc = tokenizer.convert_tokens_to_ids("[ENC]")
    separator = tokenizer.convert_tokens_to_ids("|")
    if separator == unk:
        raise ConversionError("the tokenizer has no token for '|', which joins the tags of the tag text")
    text_config = {
        "vocab_size": int(vocab),
        "hidden_size": int(hidden),
        "encoder_hidden_size": int(encoder_width),
        "intermediate_size": int(_require(state, "tag_encoder.encoder.layer.0.intermediate.dense.weight").shape[0]),
        "num_hidden_layers": len(layers),
        "num_attention_heads": int(heads),
        "max_position_embeddings": int(_require(state, "tag_encoder.embeddings.position_embeddings.weight").shape[0]),
        "bos_token_id": int(tokenizer.bos_token_id),
        "enc_token_id": int(enc),
        "pad_token_id": int(tokenizer.pad_token_id),
        "sep_token_id": int(tokenizer.sep_token_id),
        "eos_token_id": int(tokenizer.sep_token_id),
    }
    if thresholds is None:
        thresholds = [DEFAULT_THRESHOLD] * num_tags
        if num_tags == RELEASED_NUM_TAGS:
            for index, value in RELEASED_THRESHOLD_OVERRIDES.items():
                thresholds[index] = value
    if delete_tag_index is None:
        delete_tag_index = list(RELEASED_DELETE_TAG_INDEX) if num_tags == RELEASED_NUM_TAGS else []
    tag_token_ids = [tokenizer(name, add_special_tokens=False).input_ids for name in tag_names]
    joined = tokenizer(" | ".join(tag_names), add_special_tokens=False).input_ids
    expected = [i for n, ids in enumerate(tag_token_ids) for i in ([separator] if n else []) + ids]
    if joined != expected:
        raise ConversionError("the tokenizer does not tokenize the joined tag text tag by tag; cannot store tag ids")
    config = Tag2TextConfig(
        vision_config=_vision_config(state),
        text_config=text_config,
        tagging_num_attention_heads=int(tagging_num_attention_heads),
        tagging_num_hidden_layers=len(tagging_layers) or 2,
        tag_thresholds=thresholds,
        delete_tag_index=delete_tag_index,
        tag_token_ids=tag_token_ids,
        tag_separator_token_id=int(separator),
        prompt_token_ids=tokenizer(text_config.get("prompt", "a picture of "), add_special_tokens=False).input_ids,
        id2label=dict(enumerate(tag_names)),
    )
    config.architectures = ["Tag2TextForConditionalGeneration"]
    return config


def map_tag2text_key(key: str) -> str | list[str] | None:
    if key.startswith("visual_encoder."):
        return map_key(key)
    if key in ("label_embed.weight", "fc.W", "fc.b"):
        return key
    if key.startswith(("tag_encoder.", "text_decoder.")):
        return f"text_model.{key}"
    return None


def convert_state_dict(state, config: Tag2TextConfig) -> tuple[dict, Tag2TextConversionReport]:
    """Map an original Tag2Text state dict onto [`Tag2TextForConditionalGeneration`] keys, checking every shape and
    that the tagging head is the tag encoder's lowest layers."""
    with torch.device("meta"):
        expected = {k: v.shape for k, v in Tag2TextForConditionalGeneration(config).state_dict().items()}
    report = Tag2TextConversionReport(output_dir=Path("."), config=config)
    converted: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        if _DROPPED.search(key):
            report.dropped_buffers.append(key)
            continue
        if key.startswith("tagging_head."):
            twin = "tag_encoder." + key[len("tagging_head.") :]
            if twin not in state:
                raise ConversionError(f"{key} has no counterpart {twin} in the tag encoder")
            if state[twin].shape != tensor.shape or not torch.equal(state[twin], tensor):
                raise ConversionError(
                    f"{key} differs from {twin}: this model's tagging decoder is the tag encoder's lowest layers "
                    "(as in the released checkpoints)"
                )
            report.shared_keys_checked += 1
            continue
        target = map_tag2text_key(key)
        if target is None:
            report.unknown_keys.append(key)
            continue
        pieces, targets = ([tensor], [target]) if isinstance(target, str) else (tensor.chunk(3, dim=0), target)
        for name, piece in zip(targets, pieces):
            if name not in expected:
                report.unknown_keys.append(key)
                continue
            if tuple(piece.shape) != tuple(expected[name]):
                raise ConversionError(
                    f"shape mismatch for {key} -> {name}: checkpoint {tuple(piece.shape)}, model {tuple(expected[name])}"
                )
            converted[name] = piece.to(torch.float32).contiguous()
    # the caption decoder's output layer is tied to its word embeddings (stored once)
    tied = {
        "text_model.text_decoder.cls.predictions.decoder.weight": "text_model.text_decoder.bert.embeddings.word_embeddings.weight",
        "text_model.text_decoder.cls.predictions.decoder.bias": "text_model.text_decoder.cls.predictions.bias",
    }
    for name, source in tied.items():
        if name in converted and source in converted and not torch.equal(converted[name], converted[source]):
            raise ConversionError(f"{name} differs from {source}, which the model ties it to")
        converted.pop(name, None)
    missing = sorted(
        k for k in set(expected) - set(converted) if not k.endswith("relative_position_index") and k not in tied
    )
    if missing:
        raise ConversionError(f"the checkpoint is missing {len(missing)} needed tensors, e.g. {missing[:5]}")
    report.converted_keys = len(converted)
    return converted, report


def convert_checkpoint(
    checkpoint_path,
    output_dir,
    tag_list,
    tokenizer,
    thresholds=None,
    delete_tag_index=None,
    text_num_attention_heads: int | None = None,
    tagging_num_attention_heads: int = 4,
    overwrite: bool = False,
) -> Tag2TextConversionReport:
    """Convert an original Tag2Text checkpoint into `output_dir`: safetensors weights, `config.json` (tags,
    thresholds, `delete_tag_index`, tag word-piece ids), `generation_config.json` (the released caption defaults), the
    processor (image processor + BERT tokenizer) and the remote code.

    Args:
        tag_list: `tag2text_ori_tag_list.txt` (one tag per line, 3429 for the released model).
        tokenizer: a BERT tokenizer (folder or Hub id, or a loaded one); `[DEC]` / `[ENC]` are added when missing.
        thresholds: optional per-tag thresholds file or list (default: the released 0.68, 0.7 for person/man/woman).
        delete_tag_index: tags never output (default: the released seven for a 3429-tag model).
    """
    output_dir = Path(output_dir)
    _check_output_dir(output_dir, overwrite, [checkpoint_path, tag_list])
    try:
        tag_names = read_tag_list(tag_list)
        if isinstance(thresholds, (str, os.PathLike)):
            from ...tags.files import read_thresholds

            thresholds = read_thresholds(thresholds)
    except ValueError as error:
        raise ConversionError(str(error)) from error
    tokenizer = prepare_tokenizer(tokenizer)
    state = load_original_state_dict(checkpoint_path)
    if not is_tag2text_state_dict(state):
        raise ConversionError(
            f"{os.fspath(checkpoint_path)!r} is not a Tag2Text checkpoint (it lacks {', '.join(TAG2TEXT_FORMAT_KEYS)})"
        )
    config = infer_config(
        state, tag_names, tokenizer, text_num_attention_heads, tagging_num_attention_heads, thresholds, delete_tag_index
    )
    converted, report = convert_state_dict(state, config)
    size = config.vision_config.image_size
    processor = Tag2TextProcessor(
        image_processor=RamPlusImageProcessor(size={"height": size, "width": size}), tokenizer=tokenizer
    )
    generation = GenerationConfig(
        **CAPTION_GENERATION_DEFAULTS,
        bos_token_id=config.text_config.bos_token_id,
        eos_token_id=config.text_config.sep_token_id,
        pad_token_id=config.text_config.pad_token_id,
    )
    with atomic_directory(output_dir, overwrite=overwrite) as staging:
        save_file(converted, staging / "model.safetensors", metadata={"format": "pt"})
        del converted
        config.save_pretrained(staging)
        generation.save_pretrained(staging)
        processor.save_pretrained(staging)
        processor.image_processor.save_pretrained(staging)
        from ..remote_code import write_remote_code

        write_remote_code(staging, model_type="tag2text")
    report.output_dir = output_dir
    if report.unknown_keys:
        logger.warning(
            "skipped %d keys the converter does not know: %s%s",
            len(report.unknown_keys),
            ", ".join(report.unknown_keys[:10]),
            " ..." if len(report.unknown_keys) > 10 else "",
        )
    return report


__all__ = [
    "convert_checkpoint",
    "convert_state_dict",
    "infer_config",
    "is_tag2text_checkpoint",
    "is_tag2text_state_dict",
    "prepare_tokenizer",
]
