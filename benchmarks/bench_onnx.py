#!/usr/bin/env python
# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""ONNX Runtime vs PyTorch on the CPU for the exported RAM++ tagger, in one process, same weights and inputs.

    PYTHONPATH=src python benchmarks/bench_onnx.py --output results.json   # full size (Swin-L 384, 4585 tags x 51)
    PYTHONPATH=src python benchmarks/bench_onnx.py --quick    # small sizes

Reports seconds per image at batch 1 and `--batch-size` for PyTorch fp32 (the default fast path) and onnxruntime
(all graph optimizations), the ratio, the export time and the largest logit difference. JSON results are written only
with `--output FILE` (the committed ones are `benchmarks/results/bench_onnx.json`).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch


sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_inference as bench  # noqa: E402  (same sizes, random model and timing helpers)

from transformers_ramplus.inference.onnx import builtin_label_inputs, export_onnx  # noqa: E402
from transformers_ramplus.io.atomic import atomic_write_json  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--exporter", default="dynamo", choices=["dynamo", "torchscript"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    import onnxruntime as ort

    bench.transformers_logging.disable_progress_bar()
    sizes = dict(bench.QUICK if args.quick else bench.FULL)
    output = args.output  # results are written only with --output (the committed ones: benchmarks/results/)
    model = bench.build_random_model(sizes, args.seed)
    size = sizes["image_size"]
    pixel_values = torch.randn(args.batch_size, 3, size, size, generator=torch.Generator().manual_seed(args.seed))
    label_embeds, mask = builtin_label_inputs(model)
    results = {"mode": "quick" if args.quick else "full", "environment": bench.environment(), "exporter": args.exporter}
    with tempfile.TemporaryDirectory(prefix="ramplus-onnx-") as tmp:
        start = time.perf_counter()
        path = export_onnx(model, Path(tmp) / "tagger.onnx", dynamo=args.exporter == "dynamo")
        results["export_s"] = time.perf_counter() - start
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = torch.get_num_threads()
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        feeds = lambda pv: {  # noqa: E731
            "pixel_values": pv.numpy(),
            "label_embeds": label_embeds.numpy(),
            "description_mask": mask.numpy(),
        }
        times, differences = {}, {}
        with torch.inference_mode():
            for batch in (1, args.batch_size):
                pv = pixel_values[:batch]
                ours = model(pixel_values=pv).logits
                theirs = torch.from_numpy(session.run(["logits"], feeds(pv))[0])
                differences[f"b{batch}"] = (ours - theirs).abs().max().item()
                times[f"pytorch_fp32_b{batch}"] = bench.timed(lambda: model(pixel_values=pv), args.repeats)
                times[f"onnxruntime_fp32_b{batch}"] = bench.timed(lambda: session.run(["logits"], feeds(pv)), args.repeats)
                for key in (f"pytorch_fp32_b{batch}", f"onnxruntime_fp32_b{batch}"):
                    times[key]["per_image_s"] = times[key]["median_s"] / batch
        del session
    results["times"] = times
    results["max_abs_logit_diff"] = differences
    results["onnxruntime_speedup_vs_pytorch"] = {
        f"b{b}": times[f"pytorch_fp32_b{b}"]["median_s"] / times[f"onnxruntime_fp32_b{b}"]["median_s"]
        for b in (1, args.batch_size)
    }
    results["environment"]["load_average_end"] = list(os.getloadavg())
    if output is not None:
        atomic_write_json(output, results, indent=2)
    lines = [f"RAM++ ONNX benchmark ({results['mode']}, {args.exporter} exporter, export {results['export_s']:.1f} s)"]
    for label, timing in times.items():
        lines.append(f"{label:<24} {timing['per_image_s']:.3f} s/image")
    for key, ratio in results["onnxruntime_speedup_vs_pytorch"].items():
        lines.append(f"onnxruntime vs PyTorch {key}: {ratio:.2f}x (max |logit diff| {differences[key]:.2e})")
    if output is not None:
        lines.append(f"results: {output}")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0 if max(differences.values()) <= 1e-3 else 1


if __name__ == "__main__":
    sys.exit(main())
