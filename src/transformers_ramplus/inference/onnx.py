# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""ONNX export of the RAM++ tagger.

The exported graph takes `pixel_values` `(batch, 3, H, W)` (H and W fixed to the model's image size), `label_embeds`
`(num_tags, descriptions_per_tag, text_embed_dim)` and `description_mask` `(num_tags, descriptions_per_tag)` (bool),
and returns `logits` `(batch, num_tags)`. Batch, number of tags and descriptions per tag are dynamic, so the same file
tags with the built-in vocabulary (see [`builtin_label_inputs`]) or with any open-set vocabulary.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from torch import nn

from ..io.atomic import atomic_file
from ..models.ram_plus.modeling_ram_plus import RamPlusModel


logger = logging.getLogger(__name__)

INPUT_NAMES = ["pixel_values", "label_embeds", "description_mask"]
OUTPUT_NAMES = ["logits"]


class RamPlusTaggerForExport(nn.Module):
    """`(pixel_values, label_embeds, description_mask) -> logits`, the tagging graph without Python-side checks."""

    def __init__(self, model: RamPlusModel):
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor, label_embeds: torch.Tensor, description_mask: torch.Tensor):
        model = self.model
        image_embeds = model.get_image_embeds(pixel_values)
        queries = model.compute_label_queries(image_embeds, label_embeds.to(image_embeds.dtype), description_mask)
        return model.tag_logits(queries, image_embeds)


def builtin_label_inputs(model: RamPlusModel) -> tuple[torch.Tensor, torch.Tensor]:
    """The built-in vocabulary as the export's `label_embeds` `(C, D, T)` and `description_mask` `(C, D)` inputs."""
    config = model.config
    label_embeds = model.label_embeds.view(config.num_tags, config.descriptions_per_tag, config.text_embed_dim)
    mask = model.builtin_description_mask()
    if mask is None:
        mask = torch.ones(label_embeds.shape[:2], dtype=torch.bool, device=label_embeds.device)
    return label_embeds.detach().float(), mask


def export_onnx(model: RamPlusModel, output: str | os.PathLike, opset_version: int = 18, dynamo: bool = True) -> Path:
    """Export the tagger of `model` to `output` (written to a temporary file first, then moved into place).

    Returns the path of the written file. The graph is the reference computation in eval mode, fp32, with the
    model's attention implementation (an optimized model exports its reference computation: the exporters trace
    it); the text tower is not part of the graph (encode new tags beforehand).
    """
    if not isinstance(model, RamPlusModel):
        raise TypeError(f"`model` must be a RamPlusModel, got {type(model).__name__}")
    output = Path(output)
    if output.suffix != ".onnx":
        raise ValueError(f"the output file must end in .onnx, got {str(output)!r}")
    output.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval().float()
    wrapper = RamPlusTaggerForExport(model).eval()
    vision = model.config.vision_config
    size = vision.image_size if isinstance(vision.image_size, int) else vision.image_size[0]
    label_embeds, mask = builtin_label_inputs(model)
    # example inputs with sizes that differ from each other so that no dynamic dimension gets specialized
    num_tags = max(3, min(label_embeds.shape[0], 7))
    per_tag = max(2, min(label_embeds.shape[1], 5))
    example = (
        torch.zeros(2, vision.num_channels, size, size),
        torch.nn.functional.normalize(torch.randn(num_tags, per_tag, label_embeds.shape[-1]), dim=-1),
        torch.ones(num_tags, per_tag, dtype=torch.bool),
    )
    batch, tags, descriptions = (torch.export.Dim(name, min=1) for name in ("batch", "num_tags", "descriptions"))
    with atomic_file(output, "path") as partial:
        partial = os.fspath(partial)
        with torch.no_grad():
            if dynamo:
                program = torch.onnx.export(
                    wrapper,
                    example,
                    input_names=INPUT_NAMES,
                    output_names=OUTPUT_NAMES,
                    dynamic_shapes=({0: batch}, {0: tags, 1: descriptions}, {0: tags, 1: descriptions}),
                    opset_version=opset_version,
                    dynamo=True,
                    external_data=False,
                    verbose=False,  # no "[torch.onnx] ... ✅" step lines
                )
                program.save(partial)
            else:
                torch.onnx.export(
                    wrapper,
                    example,
                    partial,
                    input_names=INPUT_NAMES,
                    output_names=OUTPUT_NAMES,
                    dynamic_axes={
                        "pixel_values": {0: "batch"},
                        "label_embeds": {0: "num_tags", 1: "descriptions"},
                        "description_mask": {0: "num_tags", 1: "descriptions"},
                        "logits": {0: "batch", 1: "num_tags"},
                    },
                    opset_version=opset_version,
                    dynamo=False,
                )
    return output


def quantize_onnx_int8(source: str | os.PathLike, output: str | os.PathLike) -> Path:
    """onnxruntime's dynamic int8 quantization of an exported tagger: int8 weights (per output channel) and inputs
    quantized per call for the graph's matrix products (`MatMul`/`Gemm`); written to a temporary file, then moved
    into place. Needs `onnxruntime` (the `export` extra)."""
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as error:
        raise ImportError("int8 ONNX quantization needs onnxruntime: pip install 'transformers-ramplus[export]'") from error
    source, output = Path(source), Path(output)
    if output.suffix != ".onnx":
        raise ValueError(f"the output file must end in .onnx, got {str(output)!r}")
    if not source.is_file():
        raise ValueError(f"no ONNX file at {str(source)!r}")
    output.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))  # the quantizer advises "pre-processing" on the root logger every call
    try:
        with atomic_file(output, "path") as partial:
            quantize_dynamic(
                os.fspath(source),
                os.fspath(partial),
                op_types_to_quantize=["MatMul", "Gemm"],
                per_channel=True,
                weight_type=QuantType.QInt8,
            )
    finally:
        root.setLevel(level)
    return output


__all__ = [
    "RamPlusTaggerForExport",
    "builtin_label_inputs",
    "export_onnx",
    "quantize_onnx_int8",
    "INPUT_NAMES",
    "OUTPUT_NAMES",
]
