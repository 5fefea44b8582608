# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""Convert the authors' RAM++ checkpoint (`ram_plus_swin_large_14m.pth`) or RAM checkpoint (`ram_swin_large_14m.pth`)
to a transformers model directory.

The format is detected from the keys (`detect_format`): RAM++ stores `reweight_scale` and D description embeddings
per tag; RAM stores one embedding per tag and no `reweight_scale` (its model is [`RamModel`], RAM++'s graph with D = 1
and no re-weighting).

Geometry is read from the tensor shapes; the file is loaded with `weights_only=True` and memory-mapped. The output is
written to a temporary directory next to the destination and renamed into place at the end, so a failed or
interrupted conversion never leaves a half-written directory.
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
from transformers import AutoTokenizer, CLIPTextModelWithProjection

from ...io.atomic import atomic_directory
from ...tags.files import read_tag_list, read_thresholds
from ..ram.configuration_ram import RamConfig
from ..ram.modeling_ram import RamModel
from ..remote_code import write_remote_code
from .configuration_ram_plus import VISION_PRESETS, RamPlusConfig
from .image_processing_ram_plus import RamPlusImageProcessor
from .modeling_ram_plus import RamPlusModel
from .processing_ram_plus import RamPlusProcessor


logger = logging.getLogger(__name__)

_BLOCK = re.compile(r"^visual_encoder\.layers\.(\d+)\.blocks\.(\d+)\.(.+)$")
_DOWNSAMPLE = re.compile(r"^visual_encoder\.layers\.(\d+)\.downsample\.(.+)$")
_DECODER = re.compile(r"^(?:tagging_head|vision_multi)\.encoder\.layer\.(\d+)\.(.+)$")

_BLOCK_MAP = {
    "norm1": "layernorm_before",
    "norm2": "layernorm_after",
    "attn.proj": "attention.o_proj",
    "attn.relative_position_bias_table": "attention.relative_position_bias.relative_position_bias_table",
    "mlp.fc1": "mlp.fc1",
    "mlp.fc2": "mlp.fc2",
}
_DECODER_MAP = {
    "crossattention.self.query": "cross_attention.q_proj",
    "crossattention.self.key": "cross_attention.k_proj",
    "crossattention.self.value": "cross_attention.v_proj",
    "crossattention.output.dense": "cross_attention.o_proj",
    "crossattention.output.LayerNorm": "cross_attention_layer_norm",
    "intermediate.dense": "fc1",
    "output.dense": "fc2",
    "output.LayerNorm": "final_layer_norm",
}
_TOP_MAP = {
    "visual_encoder.patch_embed.proj": "vision_model.embeddings.patch_embeddings.projection",
    "visual_encoder.patch_embed.norm": "vision_model.embeddings.norm",
    "visual_encoder.norm": "vision_model.layernorm",
    "image_proj": "image_projection",
    "wordvec_proj": "query_projection",
    "fc": "classifier",
}
# buffers of the original Swin that transformers recomputes
_DROPPED = re.compile(r"(relative_position_index|attn_mask)$")


class ConversionError(ValueError):
    """The checkpoint cannot be converted; the message says which key or shape is wrong."""


@dataclass
class ConversionReport:
    output_dir: Path
    config: RamPlusConfig
    converted_keys: int = 0
    dropped_buffers: list[str] = field(default_factory=list)
    unknown_keys: list[str] = field(default_factory=list)
    shared_keys_checked: int = 0


def load_original_state_dict(path) -> dict[str, torch.Tensor]:
    """`torch.load(path, weights_only=True)` memory-mapped when possible; returns the flat `model` state dict."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ConversionError(f"checkpoint not found: {path!r}")
    try:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as error:
            if "mmap" not in str(error):
                raise
            obj = torch.load(path, map_location="cpu", weights_only=True)  # legacy (non-zip) format
    except Exception as error:
        raise ConversionError(f"cannot load {path!r} as a weights-only PyTorch checkpoint: {error}") from error
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ConversionError(f"{path!r} does not hold a state dict (expected a dict of tensors, or {{'model': ...}})")
    return obj


FORMATS = ("ram_plus", "ram")


def detect_format(state: dict[str, torch.Tensor]) -> str:
    """`"ram_plus"` (a `reweight_scale` key) or `"ram"` (a `label_embed` key without `reweight_scale`); raises
    [`ConversionError`] for a Tag2Text checkpoint (a learned `label_embed.weight`) or anything else."""
    if "reweight_scale" in state:
        return "ram_plus"
    if "label_embed.weight" in state or "fc.W" in state:
        raise ConversionError(
            "this is a Tag2Text checkpoint (a learned `label_embed.weight` and a group-wise head `fc.W`), not RAM or "
            "RAM++: `ramplus convert` detects and converts it (with --tag-list and --tokenizer), or use "
            "`transformers_ramplus.models.tag2text.convert_tag2text.convert_checkpoint`"
        )
    if "label_embed" in state:
        return "ram"
    raise ConversionError(
        "the checkpoint has neither `label_embed` nor `reweight_scale`: not a RAM++ or RAM checkpoint of the authors"
    )


def _require(state, key):
    if key not in state:
        raise ConversionError(f"the checkpoint is missing the key {key!r}")
    return state[key]


def infer_config(
    state: dict[str, torch.Tensor],
    tag_names: list[str] | None = None,
    variant: str = "auto",
    num_attention_heads: int = 4,
    image_size: int | None = None,
) -> RamPlusConfig:
    """Build a [`RamPlusConfig`] (a RAM++ checkpoint) or [`RamConfig`] (RAM) from the shapes of an original state
    dict."""
    checkpoint_format = detect_format(state)
    prefix = "tagging_head" if any(k.startswith("tagging_head.") for k in state) else "vision_multi"
    patch_weight = _require(state, "visual_encoder.patch_embed.proj.weight")
    embed_dim, num_channels, patch_size = patch_weight.shape[0], patch_weight.shape[1], patch_weight.shape[2]
    depths, num_heads = [], []
    stage = 0
    while any(k.startswith(f"visual_encoder.layers.{stage}.blocks.") for k in state):
        blocks = {int(m.group(2)) for k in state if (m := _BLOCK.match(k)) and int(m.group(1)) == stage}
        depths.append(max(blocks) + 1)
        table = _require(state, f"visual_encoder.layers.{stage}.blocks.0.attn.relative_position_bias_table")
        num_heads.append(table.shape[1])
        stage += 1
    if not depths:
        raise ConversionError("the checkpoint has no Swin blocks (`visual_encoder.layers.N.blocks.N.*`)")
    table_rows = _require(state, "visual_encoder.layers.0.blocks.0.attn.relative_position_bias_table").shape[0]
    window = (math.isqrt(table_rows) + 1) // 2
    if (2 * window - 1) ** 2 != table_rows:
        raise ConversionError(f"relative_position_bias_table has {table_rows} rows, not (2*window-1)^2")
    fc1 = _require(state, "visual_encoder.layers.0.blocks.0.mlp.fc1.weight")
    mlp_ratio = fc1.shape[0] / embed_dim
    if image_size is None:
        image_size = 384
        for key, value in state.items():  # the shifted-window mask holds (resolution / window)^2 windows
            match = _BLOCK.match(key)
            if match and match.group(3) == "attn_mask":
                layer = int(match.group(1))
                per_side = math.isqrt(value.shape[0])
                image_size = per_side * window * patch_size * 2**layer
                break
    vision = {
        "image_size": int(image_size),
        "patch_size": int(patch_size),
        "num_channels": int(num_channels),
        "embed_dim": int(embed_dim),
        "depths": depths,
        "num_heads": num_heads,
        "window_size": int(window),
        "mlp_ratio": float(mlp_ratio),
        "qkv_bias": "visual_encoder.layers.0.blocks.0.attn.qkv.bias" in state,
        "use_absolute_embeddings": "visual_encoder.absolute_pos_embed" in state,
        "layer_norm_eps": 1e-5,
        "drop_path_rate": 0.0,
    }
    if variant != "auto":
        if variant not in VISION_PRESETS:
            raise ConversionError(f"unknown variant {variant!r}; choose auto, {', '.join(sorted(VISION_PRESETS))}")
        preset = VISION_PRESETS[variant]
        for name in ("embed_dim", "depths", "num_heads", "window_size"):
            wanted = list(preset[name]) if isinstance(preset[name], (list, tuple)) else preset[name]
            if wanted != vision[name]:
                raise ConversionError(
                    f"--variant {variant} expects {name}={wanted} but the checkpoint has {vision[name]}"
                )
    query = _require(state, "wordvec_proj.weight")
    hidden_size, text_dim = query.shape
    layers = sorted({int(m.group(1)) for k in state if (m := _DECODER.match(k)) and k.startswith(prefix)})
    if not layers:
        raise ConversionError(f"the checkpoint has no decoder layers (`{prefix}.encoder.layer.N.*`)")
    intermediate = _require(state, f"{prefix}.encoder.layer.0.intermediate.dense.weight").shape[0]
    label_rows = _require(state, "label_embed").shape[0]
    if checkpoint_format == "ram":  # one embedding per tag
        if tag_names is None:
            tag_names = [f"tag_{i}" for i in range(label_rows)]
        if len(tag_names) != label_rows:
            raise ConversionError(
                f"this RAM checkpoint has {label_rows} tags (label_embed rows) but the tag list has {len(tag_names)}"
            )
    if tag_names is None:
        descriptions = 51
        if label_rows % descriptions:
            raise ConversionError(
                f"label_embed has {label_rows} rows, not a multiple of 51; pass the tag list to fix the tag count"
            )
        tag_names = [f"tag_{i}" for i in range(label_rows // descriptions)]
    if not tag_names or label_rows % len(tag_names):
        raise ConversionError(
            f"label_embed has {label_rows} rows, not a multiple of the {len(tag_names)} tags of the tag list"
        )
    if hidden_size % num_attention_heads:
        raise ConversionError(f"decoder width {hidden_size} is not divisible by {num_attention_heads} heads")
    config_class = RamConfig if checkpoint_format == "ram" else RamPlusConfig
    return config_class(
        vision_config=vision,
        hidden_size=int(hidden_size),
        num_hidden_layers=len(layers),
        num_attention_heads=int(num_attention_heads),
        intermediate_size=int(intermediate),
        text_embed_dim=int(text_dim),
        descriptions_per_tag=label_rows // len(tag_names),
        id2label=dict(enumerate(tag_names)),
    )


def map_key(key: str) -> list[str] | str | None:
    """The transformers key(s) of an original key; a list for the fused qkv; None when unknown."""
    if key in ("label_embed", "reweight_scale"):
        return {"label_embed": "label_embeds", "reweight_scale": "reweight_scale"}[key]
    module, _, param = key.rpartition(".")
    if module in _TOP_MAP:
        return f"{_TOP_MAP[module]}.{param}"
    if match := _BLOCK.match(key):
        stage, block, rest = match.groups()
        base = f"vision_model.encoder.layers.{stage}.blocks.{block}"
        sub, _, param = rest.rpartition(".")
        if rest == "attn.relative_position_bias_table":
            return f"{base}.{_BLOCK_MAP[rest]}"
        if sub == "attn.qkv":
            return [f"{base}.attention.{name}.{param}" for name in ("q_proj", "k_proj", "v_proj")]
        if sub in _BLOCK_MAP:
            return f"{base}.{_BLOCK_MAP[sub]}.{param}"
        return None
    if match := _DOWNSAMPLE.match(key):
        stage, rest = match.groups()
        if rest in ("reduction.weight", "norm.weight", "norm.bias"):
            return f"vision_model.encoder.layers.{stage}.downsample.{rest}"
        return None
    if match := _DECODER.match(key):
        layer, rest = match.groups()
        sub, _, param = rest.rpartition(".")
        if sub in _DECODER_MAP:
            return f"decoder.layers.{layer}.{_DECODER_MAP[sub]}.{param}"
    return None


def convert_state_dict(state: dict[str, torch.Tensor], config: RamPlusConfig) -> tuple[dict, ConversionReport]:
    """Map an original state dict onto [`RamPlusModel`] keys, checking every key and shape."""

    model_class = RamModel if isinstance(config, RamConfig) else RamPlusModel
    with torch.device("meta"):
        expected = {k: v.shape for k, v in model_class(config).state_dict().items()}
    expected = {k: v for k, v in expected.items() if not k.startswith("text_model.")}
    # folders store the label embeddings at the top level (`from_pretrained` maps the key onto `tag_embeddings.`)
    expected["label_embeds"] = expected.pop("tag_embeddings.label_embeds")
    report = ConversionReport(output_dir=Path("."), config=config)
    prefixes = {k.split(".", 1)[0] for k in state if k.startswith(("tagging_head.", "vision_multi."))}
    if len(prefixes) > 1:
        raise ConversionError("the checkpoint holds both `tagging_head.` and `vision_multi.` decoders")
    converted: dict[str, torch.Tensor] = {}
    ties = {}
    if isinstance(config, RamConfig) and config.caption_config is not None:
        with torch.device("meta"):
            ties = dict(model_class(config)._tied_weights_keys)  # caption-model name -> the name it is saved under
    for key, tensor in state.items():
        if _DROPPED.search(key):
            report.dropped_buffers.append(key)
            continue
        if ties and key.startswith(("tag_encoder.", "text_decoder.")):
            name = f"caption_model.{key}"
            if key.endswith("embeddings.position_ids"):  # a buffer transformers rebuilds
                report.dropped_buffers.append(key)
                continue
            if name in ties:  # one tensor with the tagging decoder's (or the LM head's embeddings): checked, stored once
                report.shared_keys_checked += 1
                continue
            target = name if name in expected else None
        else:
            target = map_key(key)
        if target is None:
            report.unknown_keys.append(key)
            continue
        if isinstance(target, list):
            if tensor.shape[0] % 3:
                raise ConversionError(f"{key}: fused qkv of shape {tuple(tensor.shape)} does not split in 3")
            pieces = tensor.chunk(3, dim=0)
        else:
            pieces, target = [tensor], [target]
        for name, piece in zip(target, pieces):
            if name not in expected:
                raise ConversionError(f"{key} maps to {name}, which the model does not have")
            if tuple(piece.shape) != tuple(expected[name]):
                raise ConversionError(
                    f"shape mismatch for {key} -> {name}: checkpoint {tuple(piece.shape)}, "
                    f"model {tuple(expected[name])}"
                )
            converted[name] = piece.to(torch.float32).contiguous()
    for name, source in ties.items():  # the original stores tied tensors twice: they must be equal
        original = name[len("caption_model."):]
        source_key = source[len("caption_model."):] if source.startswith("caption_model.") else None
        if source_key is None:  # a tagging-decoder tensor: compare with the tagging head's copy
            layer, _, rest = original[len("tag_encoder.encoder.layer."):].partition(".")
            prefix = "tagging_head" if any(k.startswith("tagging_head.") for k in state) else "vision_multi"
            source_key = f"{prefix}.encoder.layer.{layer}.{rest}"
        if original in state and source_key in state and not torch.equal(state[original], state[source_key]):
            raise ConversionError(
                f"{original} differs from {source_key}: RAM's tag encoder shares these weights (the released "
                "checkpoints store them twice, equal)"
            )
    missing = sorted(set(expected) - set(converted) - set(ties) - _recomputed_buffers(expected))
    if missing:
        raise ConversionError(f"the checkpoint is missing {len(missing)} needed tensors, e.g. {missing[:5]}")
    report.converted_keys = len(converted)
    return converted, report


def _caption_config(state, tokenizer, num_attention_heads=None):
    """RAM's text side (`Tag2TextTextConfig`) from the shapes of the tag encoder and the tokenizer's special ids."""
    from ..tag2text.configuration_tag2text_text import Tag2TextTextConfig

    if isinstance(tokenizer, (str, os.PathLike)):
        tokenizer = AutoTokenizer.from_pretrained(tokenizer)
    vocab, hidden = _require(state, "tag_encoder.embeddings.word_embeddings.weight").shape
    if len(tokenizer) != vocab:
        raise ConversionError(f"the tokenizer has {len(tokenizer)} tokens but the checkpoint's text vocabulary {vocab}")
    enc = tokenizer.convert_tokens_to_ids("[ENC]")
    if enc == tokenizer.unk_token_id or tokenizer.bos_token_id is None:
        raise ConversionError("the tokenizer needs [DEC] as its bos token and an [ENC] token (the authors' BERT setup)")
    layers = {int(m.group(1)) for k in state if (m := re.match(r"^tag_encoder\.encoder\.layer\.(\d+)\.", k))}
    return Tag2TextTextConfig(
        vocab_size=int(vocab),
        hidden_size=int(hidden),
        encoder_hidden_size=int(_require(state, "tag_encoder.encoder.layer.0.crossattention.self.key.weight").shape[1]),
        intermediate_size=int(_require(state, "tag_encoder.encoder.layer.0.intermediate.dense.weight").shape[0]),
        num_hidden_layers=len(layers),
        num_attention_heads=int(num_attention_heads or max(1, hidden // 64)),
        max_position_embeddings=int(_require(state, "tag_encoder.embeddings.position_embeddings.weight").shape[0]),
        bos_token_id=int(tokenizer.bos_token_id),
        enc_token_id=int(enc),
        pad_token_id=int(tokenizer.pad_token_id),
        sep_token_id=int(tokenizer.sep_token_id),
        eos_token_id=int(tokenizer.sep_token_id),
    )


def _recomputed_buffers(expected) -> set[str]:
    return {k for k in expected if k.endswith("relative_position_index")}


# names a converted model folder may hold (from an earlier conversion with other options, or saved by transformers):
# `--overwrite` replaces those, and refuses a folder holding anything else
_MODEL_FILE = re.compile(
    r"^(.*config\.json|.*\.safetensors(\.index\.json)?|pytorch_model.*\.bin|tokenizer.*|vocab\.(json|txt)|merges\.txt"
    r"|special_tokens_map\.json|added_tokens\.json|chat_template\.j(son|inja)|.*\.py|README\.md|\.gitattributes"
    r"|tag_set\.json|__pycache__)$"
)


def _check_output_dir(output_dir: Path, overwrite: bool, inputs) -> None:
    """Refuse an output that is a file, an existing folder without `overwrite`, or a folder holding an input."""
    if output_dir.exists() and not output_dir.is_dir():
        raise ConversionError(f"{os.fspath(output_dir)!r} is a file; the converted model is a folder, choose another path")
    if output_dir.exists() and not overwrite and any(output_dir.iterdir()):
        raise ConversionError(f"{os.fspath(output_dir)!r} already exists; pass overwrite=True (--overwrite)")
    target = os.path.realpath(output_dir)
    for item in inputs:
        if item is None or not isinstance(item, (str, os.PathLike)) or not os.path.exists(item):
            continue
        source = os.path.realpath(item)
        if source == target or source.startswith(target.rstrip(os.sep) + os.sep):
            raise ConversionError(
                f"the output folder {os.fspath(output_dir)!r} holds the input {os.fspath(item)!r}; writing the model there "
                "would delete it: choose another output folder"
            )


def convert_checkpoint(
    checkpoint_path,
    output_dir,
    tag_list=None,
    tag_list_chinese=None,
    thresholds=None,
    variant: str = "auto",
    num_attention_heads: int = 4,
    overwrite: bool = False,
    text_tower=None,
    tokenizer=None,
    text_num_attention_heads: int | None = None,
) -> ConversionReport:
    """
    Convert an original RAM++ or RAM checkpoint (the format detected from its keys, `detect_format`) into
    `output_dir` (safetensors weights, `config.json` with tags, Chinese
    names and thresholds, and `preprocessor_config.json`/`processor_config.json`).

    `text_tower`: optional transformers CLIP checkpoint (Hub id or directory) whose text tower and tokenizer are
    bundled, for open-set tagging with new tag names or descriptions.

    `tokenizer` (RAM only): the BERT tokenizer of the checkpoint's text side (a folder or Hub id; bert-base-uncased
    plus `[DEC]` and `[ENC]` for the released model). With it, the tag encoder and caption decoder are converted too
    (`config.caption_config`, RAM's `text_generation` loss); without it they are skipped.
    """
    output_dir = Path(output_dir)
    _check_output_dir(output_dir, overwrite, [checkpoint_path, tag_list, tag_list_chinese, thresholds, text_tower])
    try:
        tag_names = read_tag_list(tag_list) if tag_list is not None else None
        chinese = read_tag_list(tag_list_chinese, "Chinese tag list") if tag_list_chinese is not None else None
        threshold_values = read_thresholds(thresholds) if thresholds is not None else None
    except ValueError as error:
        raise ConversionError(str(error)) from error
    state = load_original_state_dict(checkpoint_path)
    config = infer_config(state, tag_names, variant=variant, num_attention_heads=num_attention_heads)
    try:
        config._set_vocabulary(config.tag_names, thresholds=threshold_values, chinese_names=chinese)
    except ValueError as error:
        raise ConversionError(str(error)) from error
    if tokenizer is not None:
        if not isinstance(config, RamConfig):
            raise ConversionError("`tokenizer` is for RAM's text side; this is a RAM++ checkpoint")
        config.caption_config = _caption_config(state, tokenizer, text_num_attention_heads)
        try:
            config.validate_caption_config()
        except (TypeError, ValueError) as error:
            raise ConversionError(str(error)) from error
    config.architectures = ["RamModel" if isinstance(config, RamConfig) else "RamPlusModel"]
    converted, report = convert_state_dict(state, config)

    tokenizer = None
    if text_tower is not None:
        text_model = CLIPTextModelWithProjection.from_pretrained(text_tower, dtype=torch.float32)
        if text_model.config.projection_dim != config.text_embed_dim:
            raise ConversionError(
                f"the text tower projects to {text_model.config.projection_dim}, the model needs {config.text_embed_dim}"
            )
        config.text_config = text_model.config
        for key, value in text_model.state_dict().items():
            converted[f"text_model.{key}"] = value.contiguous()
        tokenizer = AutoTokenizer.from_pretrained(text_tower)


    size = config.vision_config.image_size
    size = size if isinstance(size, int) else size[0]
    processor = RamPlusProcessor.from_model_config(
        config, image_processor=RamPlusImageProcessor(size={"height": size, "width": size}), tokenizer=tokenizer
    )

    with atomic_directory(output_dir, overwrite=overwrite) as staging:
        save_file(converted, staging / "model.safetensors", metadata={"format": "pt"})
        del converted
        config.save_pretrained(staging)
        processor.save_pretrained(staging)
        processor.image_processor.save_pretrained(staging)  # preprocessor_config.json for AutoImageProcessor users
        write_remote_code(staging)  # the code and auto_map for trust_remote_code users without this package
        if output_dir.is_dir():
            written = set(os.listdir(staging))
            foreign = sorted(name for name in os.listdir(output_dir) if name not in written and not _MODEL_FILE.match(name))
            if foreign:
                raise ConversionError(
                    f"{os.fspath(output_dir)!r} holds files a conversion does not write ({', '.join(foreign[:5])}"
                    f"{' ...' if len(foreign) > 5 else ''}); --overwrite replaces only a converted model folder: move "
                    "them away or choose another output folder"
                )
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
    "ConversionError",
    "ConversionReport",
    "convert_checkpoint",
    "convert_state_dict",
    "detect_format",
    "infer_config",
    "load_original_state_dict",
]
