"""`ramplus export-onnx MODEL_DIR OUTPUT.onnx`: the tagger as an ONNX graph (dynamic batch, label embeddings as an
input so that open-set vocabularies work), checked against PyTorch with onnxruntime when it is installed."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch

from ..inference.onnx import builtin_label_inputs, export_onnx, quantize_onnx_int8
from ..models.ram_plus.modeling_ram_plus import RamPlusModel


def add_arguments(parser):
    parser.add_argument("model", help="a converted RAM++ model directory (or Hub id)")
    parser.add_argument("output", help="the .onnx file to write (replaced atomically)")
    parser.add_argument("--opset", type=int, default=18, help="ONNX opset version (default 18)")
    parser.add_argument(
        "--exporter",
        default="dynamo",
        choices=["dynamo", "torchscript"],
        help="torch.export-based exporter (default) or the legacy TorchScript one (faster to run, deprecated)",
    )
    parser.add_argument("--no-check", action="store_true", help="skip the onnxruntime comparison with PyTorch")
    parser.add_argument(
        "--quantize",
        choices=["int8"],
        help="write an onnxruntime dynamic int8 quantization of the graph (int8 weights, inputs quantized per call) "
        "instead of the fp32 graph; the check then compares tag decisions and logits loosely",
    )


def run(args) -> int:
    if not str(args.output).endswith(".onnx"):
        raise ValueError(f"the output file must end in .onnx, got {args.output!r}")
    model = RamPlusModel.from_pretrained(args.model, dtype=torch.float32).eval()
    if args.quantize:
        with tempfile.TemporaryDirectory(prefix="ramplus-onnx-") as tmp:
            fp32_path = export_onnx(model, Path(tmp) / "fp32.onnx", opset_version=args.opset, dynamo=args.exporter == "dynamo")
            path = quantize_onnx_int8(fp32_path, args.output)
    else:
        path = export_onnx(model, args.output, opset_version=args.opset, dynamo=args.exporter == "dynamo")
    sys.stderr.write(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB)\n")
    if args.no_check:
        return 0
    try:
        import onnxruntime
    except ImportError:
        sys.stderr.write("onnxruntime is not installed: skipped the comparison with PyTorch\n")
        return 0
    vision = model.config.vision_config
    size = vision.image_size if isinstance(vision.image_size, int) else vision.image_size[0]
    pixel_values = torch.randn(2, vision.num_channels, size, size, generator=torch.Generator().manual_seed(0))
    label_embeds, mask = builtin_label_inputs(model)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (onnx_logits,) = session.run(
        None,
        {"pixel_values": pixel_values.numpy(), "label_embeds": label_embeds.numpy(), "description_mask": mask.numpy()},
    )
    with torch.no_grad():
        expected = model(pixel_values=pixel_values).logits
    difference = (torch.from_numpy(onnx_logits) - expected).abs().max().item()
    sys.stderr.write(f"onnxruntime vs PyTorch: max |logit difference| {difference:.2e}\n")
    if args.quantize:
        # int8 moves logits (by more, relative to their spread, on small random models); a broken graph gives
        # non-finite or unrelated logits: check that they follow PyTorch's
        ours = torch.from_numpy(onnx_logits).flatten().double()
        correlation = torch.corrcoef(torch.stack([ours, expected.flatten().double()]))[0, 1].item()
        sys.stderr.write(f"int8 graph vs PyTorch fp32: logit correlation {correlation:.4f}\n")
        if not torch.isfinite(ours).all() or not correlation > 0.5:
            sys.stderr.write("error: the quantized graph does not reproduce the PyTorch logits\n")
            return 1
        return 0
    if difference > 1e-3:
        sys.stderr.write("error: the exported graph does not reproduce the PyTorch logits\n")
        return 1
    return 0
