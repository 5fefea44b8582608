#!/usr/bin/env python
# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""Which int8 (and bf16) routes pay on THIS CPU: short, bounded, in one process, against fp32.

On CPUs without bf16/int8 matrix instructions (AVX2 only, e.g. an AMD EPYC Zen 3) our bf16 and oneDNN int8 paths are
emulated. This script measures, at batch 1 with the threads torch uses (2 on the development machine):

1. **products** of the full-size model's shapes (Swin-L stage 1 and 3 MLP inputs, a decoder block), per route:
   fp32 (default BLAS), fp32 on oneDNN (our fp32 path), bf16, our int8 (`Int8DynamicLinear`) on oneDNN (bf16 in/out)
   and on fbgemm (fp32 in/out, the route `precision="int8"` takes on such CPUs),
   fbgemm dynamic int8 (`torch.ao.quantization.quantize_dynamic`: int8 weights, fp32 in/out, the AVX2 route of
   PyTorch's quantized engine) and, with onnxruntime installed, onnxruntime's dynamic int8 `MatMulInteger` route
   (a one-product graph quantized by `onnxruntime.quantization.quantize_dynamic`);
   and the **input quantization** alone (`quantize_activation`, bf16 inputs of those shapes, uint8 and int8 codes)
   against the earlier rounding in the input's dtype (`quantize_in_input_dtype` below, kept as the baseline);
2. **the full-size model** (random weights, batch 1), each route interleaved with fp32 in rounds: ours fp32
   (`enable_fast_inference`), the plain model fp32, and the plain model with fbgemm dynamic int8 linears. Our bf16
   and oneDNN int8 full-model rows run only with `--emulated` where the CPU emulates them (minutes per image).

Every slow route is bounded by `--budget` seconds per measurement (a route that cannot finish one run within it
is reported as slower than that). Results name the CPU, PyTorch's capability and the relevant flags.

    python benchmarks/bench_int8_cpu.py --quick                    # seconds: small shapes, small model
    python benchmarks/bench_int8_cpu.py --output benchmarks/results/bench_int8_cpu.json   # ~10 min, 2 cores
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn


BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
try:
    import transformers_ramplus  # noqa: F401
except ImportError:
    sys.path.insert(0, str(BENCH_DIR.parent / "src"))

from ramplus_bench.scenes import FULL, QUICK, build_random_model  # noqa: E402
from ramplus_bench.timing import environment  # noqa: E402
from transformers.utils import logging as transformers_logging  # noqa: E402

from transformers_ramplus import enable_fast_inference  # noqa: E402
from transformers_ramplus.inference.fast_paths import (  # noqa: E402
    Int8DynamicLinear,
    OneDnnLinearMode,
    int8_available,
    onednn_int8_available,
    precision_dtype,
    quantize_activation,
)
from transformers_ramplus.inference.precision import cpu_precision_support  # noqa: E402
from transformers_ramplus.io.atomic import atomic_write_json  # noqa: E402


# (rows, in, out) of the full-size model's big products at batch 1
FULL_SHAPES = {
    "swin_stage1_fc1 (9216x192 -> 768)": (9216, 192, 768),
    "swin_stage3_fc1 (576x768 -> 3072)": (576, 768, 3072),
    "decoder_fc1 (2293x768 -> 3072)": (2293, 768, 3072),
    "swin_stage3_fc2 (576x3072 -> 768)": (576, 3072, 768),
    "decoder_fc2 (2293x3072 -> 768)": (2293, 3072, 768),
}
QUICK_SHAPES = {"small (256x128 -> 512)": (256, 128, 512)}


def log(message: str) -> None:
    sys.stderr.write(f"[int8 {time.strftime('%H:%M:%S')}] {message}\n")


def bounded_median(fn, repeats: int, budget: float) -> dict:
    """Median of up to `repeats` timed runs after one warm-up, stopping once `budget` seconds are spent; a warm-up
    longer than the budget ends the measurement (reported as `over_budget`)."""
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    if first > budget:
        return {"median_s": first, "runs": 1, "over_budget": True}
    samples, spent = [], first
    while len(samples) < repeats and spent < budget:
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
        spent += samples[-1]
    samples = samples or [first]
    return {"median_s": statistics.median(samples), "runs": len(samples), "over_budget": False}


def fbgemm_int8(module: nn.Module) -> nn.Module:
    """`module` (a copy) with its linears as fbgemm dynamic int8 linears (int8 weights, inputs quantized per call)."""
    torch.backends.quantized.engine = "fbgemm" if "fbgemm" in torch.backends.quantized.supported_engines else "x86"
    return torch.ao.quantization.quantize_dynamic(copy.deepcopy(module), {nn.Linear}, dtype=torch.qint8)


def onnxruntime_product(linear: nn.Linear, rows: int, tmp: Path):
    """fp32 and dynamically quantized int8 onnxruntime sessions of one linear, as callables; None without ORT."""
    try:
        import onnxruntime as ort
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError:
        return None
    path = tmp / f"linear_{linear.in_features}_{linear.out_features}.onnx"
    inputs = torch.randn(rows, linear.in_features)
    torch.onnx.export(linear, (inputs,), str(path), input_names=["x"], output_names=["y"], dynamo=False)
    path8 = path.with_name(path.stem + "_int8.onnx")
    quantize_dynamic(str(path), str(path8), weight_type=QuantType.QInt8)
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    feeds = {"x": inputs.numpy()}
    sessions = {}
    for label, file in (("onnxruntime_fp32", path), ("onnxruntime_int8", path8)):
        session = ort.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])
        sessions[label] = lambda session=session: session.run(["y"], feeds)
    return sessions


def bench_products(shapes: dict, repeats: int, budget: float, tmp: Path, emulated: bool = False) -> dict:
    results = {}
    # our oneDNN int8 product where the CPU emulates it (no VNNI/AMX) takes minutes at these shapes: measured on
    # 64 rows of each shape instead (its per-row cost), unless `emulated`
    slow_int8 = cpu_precision_support()["bf16"] == "emulated" and not emulated  # no VNNI/AMX: oneDNN's int8 emulated
    generator = torch.Generator().manual_seed(0)
    for name, (rows, fan_in, fan_out) in shapes.items():
        linear = nn.Linear(fan_in, fan_out).eval()
        inputs = torch.randn(rows, fan_in, generator=generator)
        inputs_bf16 = inputs.to(torch.bfloat16)
        linear_bf16 = copy.deepcopy(linear).to(torch.bfloat16)
        routes = {
            "fp32_default_blas": lambda: linear(inputs),
            "fp32_onednn": lambda: _with_onednn(linear, inputs),
            "bf16": lambda: linear_bf16(inputs_bf16),
            "fbgemm_dynamic_int8": (lambda q=fbgemm_int8(nn.Sequential(linear)): q(inputs)),
        }
        if int8_available("fbgemm"):  # our fbgemm route: 7-bit weights, 8-bit inputs, fp32 in/out
            ours_fbgemm = Int8DynamicLinear.from_linear(copy.deepcopy(linear), "fbgemm")
            routes["fbgemm_int8_ours"] = lambda int8=ours_fbgemm: int8(inputs)
        if onednn_int8_available():
            int8 = Int8DynamicLinear.from_linear(copy.deepcopy(linear_bf16), "onednn")
            if slow_int8:
                few_rows, few_fp32 = inputs_bf16[:64], inputs[:64]
                routes["onednn_int8_ours_64_rows"] = lambda int8=int8, rows=few_rows: int8(rows)
                routes["fp32_onednn_64_rows"] = lambda rows=few_fp32, linear=linear: _with_onednn(linear, rows)
            else:
                routes["onednn_int8_ours"] = lambda int8=int8, rows=inputs_bf16: int8(rows)
        onnx = onnxruntime_product(linear, rows, tmp)
        if onnx:
            routes.update({key: fn for key, fn in onnx.items()})
        log(f"products: {name}")
        timings = {}
        with torch.inference_mode():
            for label, fn in routes.items():
                timings[label] = bounded_median(fn, repeats, budget)
        for label, timing in timings.items():
            base = timings["fp32_onednn_64_rows" if label.endswith("_64_rows") else "fp32_onednn"]["median_s"]
            timing["speed_vs_fp32_onednn"] = base / timing["median_s"]
        results[name] = timings
    return results


def quantize_in_input_dtype(inputs: torch.Tensor, symmetric: bool):
    """The baseline: `quantize_activation` as it was before 2ba0563 (round, shift and clamp in the input's dtype,
    then convert), same range and codes up to bf16's intermediate rounding."""
    low, high = torch.aminmax(inputs)
    low, high = min(low.item(), 0.0), max(high.item(), 0.0)
    if symmetric:
        scale = max(-low, high) / 127.0 or 1.0
        return torch.mul(inputs, 1.0 / scale).round_().clamp_(-127, 127).to(torch.int8), scale, 0
    scale = (high - low) / 255.0 or 1.0
    zero_point = min(255, max(0, round(-low / scale)))
    return torch.mul(inputs, 1.0 / scale).round_().add_(zero_point).clamp_(0, 255).to(torch.uint8), scale, zero_point


def bench_quantization(shapes: dict, repeats: int, budget: float) -> dict:
    """Median seconds of one input quantization (bf16 inputs of each shape), ours and the baseline, per code type,
    with the largest error in steps (ours: half a step; the baseline's bf16 arithmetic rounds twice)."""
    results = {}
    generator = torch.Generator().manual_seed(0)
    for name, (rows, fan_in, _) in shapes.items():
        inputs = torch.randn(rows, fan_in, generator=generator).to(torch.bfloat16)
        entry = {}
        for codes in ("uint8", "int8"):
            symmetric = codes == "int8"
            for label, fn in (("ours", quantize_activation), ("in_input_dtype", quantize_in_input_dtype)):
                timing = bounded_median(lambda fn=fn, x=inputs, s=symmetric: fn(x, s), repeats * 4, budget)
                quantized, scale, zero_point = fn(inputs, symmetric)
                timing["max_error_steps"] = ((quantized.float() - zero_point) * scale - inputs.float()).abs().max().item() / scale
                entry[f"{label}_{codes}"] = timing
            entry[f"speedup_{codes}"] = entry[f"in_input_dtype_{codes}"]["median_s"] / entry[f"ours_{codes}"]["median_s"]
        results[name] = entry
    return results


def _with_onednn(linear, inputs):
    with OneDnnLinearMode():
        return linear(inputs)


def bench_model(sizes: dict, repeats: int, budget: float, emulated: bool) -> dict:
    log("building the random full-size model" if sizes is FULL else "building the random quick model")
    model = build_random_model(sizes, seed=0)
    size = sizes["image_size"]
    pixel_values = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    reference = copy.deepcopy(model).eval()
    routes = {"reference_fp32": lambda: reference(pixel_values=pixel_values).logits}
    log("quantizing the plain model's Swin and decoder linears with fbgemm")
    fbgemm = copy.deepcopy(reference)
    fbgemm.vision_model = fbgemm_int8(fbgemm.vision_model)
    fbgemm.decoder = fbgemm_int8(fbgemm.decoder)
    fbgemm.eval()
    routes["reference_fbgemm_int8"] = lambda: fbgemm(pixel_values=pixel_values).logits
    ours = enable_fast_inference(copy.deepcopy(model), precision="fp32")
    routes["ours_fp32"] = lambda: ours(pixel_values=pixel_values).logits
    support = cpu_precision_support()
    left_out = {}
    for precision in ("bf16", "int8"):
        if support[precision] == "emulated" and not emulated:
            left_out[f"ours_{precision}"] = f"{precision} is emulated on this CPU (--emulated times it)"
            continue
        fast = enable_fast_inference(copy.deepcopy(model), precision=precision)
        dtype = precision_dtype(precision)  # int8: bf16 around oneDNN's products, fp32 around fbgemm's
        routes[f"ours_{precision}"] = lambda fast=fast, dtype=dtype: fast(pixel_values=pixel_values.to(dtype)).logits
    del model
    results, logits = {}, {}
    with torch.inference_mode():
        for label, fn in routes.items():  # the first run: logits and the warm-up
            log(f"model: first run of {label}")
            start = time.perf_counter()
            logits[label] = fn().float()
            results[label] = {"first_s": time.perf_counter() - start, "samples": []}
        for round_index in range(repeats):  # interleaved rounds: the load of the shared machine hits every route
            log(f"model: round {round_index + 1}/{repeats}")
            for label, fn in routes.items():
                if results[label]["first_s"] > budget:
                    continue
                start = time.perf_counter()
                fn()
                results[label]["samples"].append(time.perf_counter() - start)
    base = statistics.median(results["ours_fp32"]["samples"] or [results["ours_fp32"]["first_s"]])
    for label, entry in results.items():
        samples = entry.pop("samples") or [entry["first_s"]]
        entry.update(median_s=statistics.median(samples), runs=len(samples))
        entry["speed_vs_ours_fp32"] = base / entry["median_s"]
        entry["max_abs_logit_diff_vs_ours_fp32"] = (logits[label] - logits["ours_fp32"]).abs().max().item()
        decided = (logits[label] > 0) == (logits["ours_fp32"] > 0)
        entry["identical_decisions_at_logit_0"] = decided.float().mean().item()
    results["_left_out"] = left_out
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small shapes and model (seconds)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--budget", type=float, default=30.0, help="seconds at most per measurement")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--no-model", action="store_true", help="products only")
    parser.add_argument("--emulated", action="store_true", help="also run our bf16/int8 model where emulated")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    transformers_logging.disable_progress_bar()
    if args.threads:
        torch.set_num_threads(args.threads)
    results = {"mode": "quick" if args.quick else "full", "environment": environment()}
    with tempfile.TemporaryDirectory(prefix="ramplus-int8-") as tmp:
        results["products"] = bench_products(
            QUICK_SHAPES if args.quick else FULL_SHAPES, args.repeats, args.budget, Path(tmp), args.emulated
        )
    results["quantization"] = bench_quantization(QUICK_SHAPES if args.quick else FULL_SHAPES, args.repeats, args.budget)
    if not args.no_model:
        results["model_batch1"] = bench_model(QUICK if args.quick else FULL, max(1, args.repeats // 2), args.budget * 10, args.emulated)
    results["environment"]["load_average_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    env = results["environment"]
    lines = [
        f"int8/bf16 routes on {env['cpu']} ({env['cpu_capability']}; flags {', '.join(env['cpu_flags'] or [])}), "
        f"{env['torch_threads']} threads, torch {env['torch']}; load {env['load_average_start']} -> {env['load_average_end']}",
        "",
        "products (median s; speed relative to fp32 on oneDNN, our fp32 path, on the same rows):",
    ]
    for name, timings in results["products"].items():
        lines.append(f"  {name}")
        for label, timing in timings.items():
            over = " (over budget: slower than shown)" if timing.get("over_budget") else ""
            lines.append(f"    {label:<22} {timing['median_s']:9.4f} s  {timing['speed_vs_fp32_onednn']:6.2f}x{over}")
    lines += ["", "input quantization, bf16 (median ms; largest error in steps):"]
    for name, entry in results["quantization"].items():
        cells = [
            f"{codes} {entry[f'in_input_dtype_{codes}']['median_s'] * 1e3:.3f} -> {entry[f'ours_{codes}']['median_s'] * 1e3:.3f} "
            f"({entry[f'speedup_{codes}']:.2f}x; {entry[f'in_input_dtype_{codes}']['max_error_steps']:.2f} -> "
            f"{entry[f'ours_{codes}']['max_error_steps']:.2f})"
            for codes in ("uint8", "int8")
        ]
        lines.append(f"  {name}: " + "; ".join(cells))
    if "model_batch1" in results:
        lines += ["", "model at batch 1 (median s per image; speed relative to ours fp32):"]
        for label, entry in results["model_batch1"].items():
            if label.startswith("_"):
                continue
            lines.append(
                f"  {label:<22} {entry['median_s']:8.3f} s  {entry['speed_vs_ours_fp32']:5.2f}x  "
                f"max|dlogit| {entry['max_abs_logit_diff_vs_ours_fp32']:.2e}  "
                f"decisions at 0: {100 * entry['identical_decisions_at_logit_0']:.2f}% identical"
            )
        for label, why in results["model_batch1"]["_left_out"].items():
            lines.append(f"  {label:<22} left out: {why}")
    if args.output is not None:
        atomic_write_json(args.output, results, indent=2)
        lines.append(f"results: {args.output}")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
