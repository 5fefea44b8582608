#!/usr/bin/env python
# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""Inference benchmark of RAM++ on the CPU: ours against the original computation, in ONE process.

Every row tags the same images with the same weights, timed in interleaved rounds and reported as a speed-up over
the original computation in fp32 at batch 1 (`baseline_fp32_b1`):

- `baseline_*`: the original computation order (`ramplus_bench/baseline.py`) in fp32 with the default BLAS, fp32 with
  oneDNN's linear kernel (the routing our fp32 path uses, given to the baseline too), bf16 weights, and the naive int8
  route (`torch.ao.quantization.quantize_dynamic` on its linears);
- `reference_fp32`: our model as `from_pretrained` gives it (no `enable_fast_inference`);
- `ours_*`: `enable_fast_inference(model, precision=...)`: fp32 without and with the oneDNN routing, bf16, int8 (as
  chosen on this CPU, and with the other choice of second layers: `fast_paths.int8_second_layers`);
- `onnx_*`: the ONNX export under onnxruntime, fp32 and dynamically quantized int8 (`ramplus export-onnx --quantize
  int8`);
- `authors_code_fp32`: the authors' own `RAM_plus` when a checkout is given with `--reference-src`.

The random "scene model" has its head shifted so that about half of the tags fire on the two real photos
(`modeling_tests/fixtures/images`) at the released per-tag thresholds: many logits sit near a threshold, so the
tag-decision check against fp32 is strict. Run:

    python benchmarks/bench_inference.py --quick                      # small sizes, seconds; prints the table
    python benchmarks/bench_inference.py --output results.json        # full size (~12 min on 2 quiet cores)

Results are written only with `--output FILE` (the committed ones are `benchmarks/results/bench_inference.json`).
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from pathlib import Path

import torch


BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))
try:
    import transformers_ramplus  # noqa: F401
except ImportError:  # running from a checkout without installing
    sys.path.insert(0, str(REPO_ROOT / "src"))

from ramplus_bench.baseline import (  # noqa: E402
    OriginalStyleRamPlus,
    baseline_int8_naive,
    check_reference_src,
    load_authors_model,
)
from ramplus_bench.report import decision_agreement, decision_lines, logit_thresholds, speedups, table  # noqa: E402
from ramplus_bench.scenes import (  # noqa: E402
    DEFAULT_IMAGES_DIR,
    FULL,
    QUICK,
    build_random_model,
    calibrate_head,
    load_benchmark_images,
)
from ramplus_bench.timing import PeakMemory, environment, interleaved_timings, timed  # noqa: E402,F401
from transformers.utils import logging as transformers_logging  # noqa: E402

from transformers_ramplus import RamPlusModel, enable_fast_inference  # noqa: E402
from transformers_ramplus.inference import fast_paths  # noqa: E402
from transformers_ramplus.inference.fast_paths import (  # noqa: E402
    OneDnnLinearMode,
    int8_kernel,
    onednn_linear_available,
    onednn_routing,
    precision_dtype,
)
from transformers_ramplus.inference.precision import cpu_precision_support  # noqa: E402
from transformers_ramplus.io.atomic import atomic_write_json  # noqa: E402
from transformers_ramplus.models.ram_plus.image_processing_ram_plus import RamPlusImageProcessor  # noqa: E402


GOALS = {"ours_int8": 5.0, "ours_bf16": 4.0, "ours_fp32": 2.0}
DECISION_GOAL = 0.99

ROWS = [
    ("authors_code_fp32", "the authors' RAM_plus (--reference-src), fp32"),
    ("baseline_fp32", "original computation, fp32, default BLAS"),
    ("baseline_fp32_onednn", "original computation, fp32, linears on oneDNN"),
    ("baseline_bf16", "original computation, bf16 weights"),
    ("baseline_int8_naive", "original computation, torch.ao quantize_dynamic (fp32 rest)"),
    ("reference_fp32", "our model as loaded (no enable_fast_inference), fp32"),
    ("ours_fp32_no_onednn", "enable_fast_inference fp32, oneDNN routing off"),
    ("ours_fp32_onednn", "enable_fast_inference fp32, oneDNN routing on"),
    ("ours_fp32", "enable_fast_inference fp32 (routing by CPU: off on Intel)"),
    ("ours_bf16", "enable_fast_inference bf16"),
    ("ours_int8", "enable_fast_inference int8 (int8 linears; rest bf16 on oneDNN, fp32 on fbgemm), as chosen here"),
    ("ours_int8_second_layers", "the same with the second layers in int8 (INT8_SECOND_LAYERS = True)"),
    ("ours_int8_first_layers_only", "the same with the second layers in float (INT8_SECOND_LAYERS = False)"),
    ("onnx_fp32", "ONNX export, onnxruntime fp32"),
    ("onnx_int8", "ONNX export, onnxruntime dynamic int8 quantization"),
]


def run_batches(fn, pixel_values: torch.Tensor, batch_size: int) -> torch.Tensor:
    return torch.cat([fn(pixel_values[i : i + batch_size]) for i in range(0, len(pixel_values), batch_size)])


def _onnx_sessions(model, tmp: Path, log) -> dict:
    """fp32 and int8 onnxruntime sessions of `model`'s export (empty when onnxruntime is missing)."""
    try:
        import onnxruntime as ort
    except ImportError:
        log("onnxruntime is not installed: no ONNX rows")
        return {}
    from transformers_ramplus.inference.onnx import builtin_label_inputs, export_onnx, quantize_onnx_int8

    log("exporting ONNX (TorchScript exporter) and quantizing it")
    start = time.perf_counter()
    path = export_onnx(model, tmp / "tagger.onnx", dynamo=False)
    exported = time.perf_counter() - start
    start = time.perf_counter()
    path8 = quantize_onnx_int8(path, tmp / "tagger-int8.onnx")
    quantized = time.perf_counter() - start
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = torch.get_num_threads()
    label_embeds, mask = builtin_label_inputs(model)
    sessions = {}
    for label, file in (("onnx_fp32", path), ("onnx_int8", path8)):
        session = ort.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])
        sessions[label] = lambda pv, session=session: torch.from_numpy(
            session.run(
                ["logits"],
                {"pixel_values": pv.float().numpy(), "label_embeds": label_embeds.numpy(), "description_mask": mask.numpy()},
            )[0]
        )
    sessions["_info"] = {
        "export_s": exported,
        "quantize_s": quantized,
        "fp32_file_mib": path.stat().st_size / 2**20,
        "int8_file_mib": path8.stat().st_size / 2**20,
    }
    return sessions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run of every measurement (seconds)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per figure (the median is reported)")
    parser.add_argument("--checkpoint", type=Path, help="a converted RAM++ directory instead of random weights")
    parser.add_argument("--images-dir", type=Path, default=DEFAULT_IMAGES_DIR, help="real photos (*.jpg) to use first")
    parser.add_argument("--num-images", type=int, help="images for the decision checks (default 16, quick 4)")
    parser.add_argument("--batch-size", type=int, help="the large batch size (default 8; quick 4)")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-onnx", action="store_true", help="leave out the ONNX rows (they need onnxruntime)")
    parser.add_argument("--reference-src", type=Path, help="a checkout of the authors' repository: time their code too")
    parser.add_argument("--output", type=Path, help="write the JSON results to this file (default: none)")
    parser.add_argument(
        "--include-emulated", action="store_true",
        help="also time bf16/int8 rows on a CPU that only emulates them (no AMX/AVX-512 BF16/VNNI: very slow)",
    )
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    if args.batch_size is None:
        args.batch_size = 4 if args.quick else 8
    if args.batch_size < 2:
        parser.error("--batch-size must be >= 2 (batch 1 is always measured)")
    if args.output is not None and args.output.is_dir():
        parser.error(f"--output {str(args.output)!r} is a folder; name a file")
    if args.reference_src is not None:
        try:
            check_reference_src(args.reference_src)
        except ValueError as error:
            parser.error(str(error))
    if args.checkpoint is not None and not (args.checkpoint / "config.json").is_file():
        parser.error(f"--checkpoint {str(args.checkpoint)!r} holds no config.json (a converted RAM++ folder)")
    transformers_logging.disable_progress_bar()
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = dict(QUICK if args.quick else FULL)
    if args.num_images:
        sizes["num_images"] = args.num_images
    big = args.batch_size
    sizes["num_images"] = max(sizes["num_images"], big)
    repeats = args.repeats
    log = lambda message: sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {message}\n")  # noqa: E731
    results = {"mode": "quick" if args.quick else "full", "environment": environment(), "repeats": repeats}
    torch.manual_seed(args.seed)

    # ---------------------------------------------------------------- images
    if args.checkpoint is not None:  # the checkpoint's own image size and vocabulary
        from transformers_ramplus import RamPlusConfig

        vision = RamPlusConfig.from_pretrained(args.checkpoint).vision_config
        sizes["image_size"] = vision.image_size if isinstance(vision.image_size, int) else vision.image_size[0]
    images, names = load_benchmark_images(args.images_dir, sizes["num_images"], args.seed)
    image_size = sizes["image_size"]
    if args.checkpoint is not None:  # the checkpoint's own resolution, also with --quick
        image_size = RamPlusConfig.from_pretrained(args.checkpoint).vision_config.image_size
    processor = RamPlusImageProcessor(size={"height": image_size, "width": image_size})
    pixel_values = processor(images=images, return_tensors="pt")["pixel_values"]
    real = [i for i, name in enumerate(names) if not name.startswith("synthetic")] or list(range(len(names)))
    results["images"] = names

    # ---------------------------------------------------------------- models
    tmp_dir = tempfile.TemporaryDirectory(prefix="ramplus-bench-")
    tmp = Path(tmp_dir.name)
    with torch.inference_mode():
        if args.checkpoint is not None:
            model_dir = args.checkpoint
            results["weights"] = f"checkpoint {args.checkpoint}"
        else:
            log("building the random scene model")
            model = build_random_model(sizes, args.seed)
            scene = calibrate_head(
                model, pixel_values[real], lambda pv: run_batches(lambda x: model(pixel_values=x).logits, pv, 1)
            )
            results["weights"] = f"random scene model (seed {args.seed}, query projection x10, head shifted)"
            results["scene_model"] = scene
            log(f"scene model: {scene}")
            model_dir = tmp / "model"
            model.save_pretrained(model_dir)
            del model
            gc.collect()
    file_bytes = sum(p.stat().st_size for p in Path(model_dir).glob("*.safetensors"))
    load = {}
    for label, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        start = time.perf_counter()
        loaded = RamPlusModel.from_pretrained(model_dir, dtype=dtype).eval()
        load[label] = time.perf_counter() - start
        if label == "fp32":
            model = enable_fast_inference(loaded, precision="fp32")
        else:
            model_bf16 = enable_fast_inference(loaded, precision="bf16")
    start = time.perf_counter()
    int8_dtype = precision_dtype("int8")  # bf16 around oneDNN's int8 products, fp32 around fbgemm's
    model_int8 = enable_fast_inference(RamPlusModel.from_pretrained(model_dir, dtype=int8_dtype), precision="int8")
    load["int8_quantize_and_load"] = time.perf_counter() - start
    # the int8 selection not chosen on this CPU (`int8_second_layers`), as its own row: its linears are chosen when
    # the model is made, so the setting is forced for that model only
    second_by_default = fast_paths.int8_second_layers()
    other_int8 = "ours_int8_first_layers_only" if second_by_default else "ours_int8_second_layers"
    previous, fast_paths.INT8_SECOND_LAYERS = fast_paths.INT8_SECOND_LAYERS, not second_by_default
    try:
        model_int8_other = enable_fast_inference(RamPlusModel.from_pretrained(model_dir, dtype=int8_dtype), precision="int8")
    finally:
        fast_paths.INT8_SECOND_LAYERS = previous
    results["int8_second_layers"] = second_by_default
    results["int8_kernel"] = int8_kernel()
    reference_model = RamPlusModel.from_pretrained(model_dir).eval()  # what enable_fast_inference buys
    results["from_pretrained_s"] = load
    results["weights_file_mib"] = file_bytes / 2**20
    config = model.config
    results["sizes"] = {
        "num_tags": config.num_tags,
        "descriptions_per_tag": config.descriptions_per_tag,
        "image_size": image_size,
        "parameters_and_label_embeds": sum(p.numel() for p in model.parameters()) + model.label_embeds.numel(),
    }
    baseline = OriginalStyleRamPlus(model).eval()
    baseline_bf16 = OriginalStyleRamPlus(model_bf16).to(torch.bfloat16).eval()
    baseline_int8 = baseline_int8_naive(baseline).eval()
    authors = None
    if args.reference_src is not None:
        log(f"building the authors' RAM_plus from {args.reference_src}")
        authors = load_authors_model(args.reference_src, image_size=image_size)
    onnx = {} if args.no_onnx else _onnx_sessions(reference_model, tmp, log)
    if "_info" in onnx:
        results["onnx"] = onnx.pop("_info")

    thresholds = torch.tensor(config.thresholds())
    subset = torch.randperm(config.num_tags, generator=torch.Generator().manual_seed(args.seed))
    subset = subset[: min(sizes["subset"], config.num_tags)].sort().values
    logits_of = lambda m: (lambda pv: m(pixel_values=pv).logits.float())  # noqa: E731
    bf16_input = lambda m: (lambda pv: m(pixel_values=pv.to(torch.bfloat16)).logits.float())  # noqa: E731
    int8_input = lambda m: (lambda pv: m(pixel_values=pv.to(int8_dtype)).logits.float())  # noqa: E731

    def with_onednn(fn):
        def run(pv):
            with OneDnnLinearMode():
                return fn(pv)

        return run

    def without_routing(fn):
        def run(pv):
            with onednn_routing(False):
                return fn(pv)

        return run

    def with_routing(fn):
        def run(pv):
            with onednn_routing(True):
                return fn(pv)

        return run

    candidates = {
        "baseline_fp32": baseline,
        "baseline_fp32_onednn": with_onednn(baseline),
        "baseline_bf16": lambda pv: baseline_bf16(pv.to(torch.bfloat16)).float(),
        "baseline_int8_naive": baseline_int8,
        "reference_fp32": logits_of(reference_model),
        "ours_fp32_no_onednn": without_routing(logits_of(model)),
        "ours_fp32_onednn": with_routing(logits_of(model)),
        "ours_fp32": logits_of(model),
        "ours_bf16": bf16_input(model_bf16),
        "ours_int8": int8_input(model_int8),
        other_int8: int8_input(model_int8_other),
        **onnx,
    }
    if not onednn_linear_available():
        candidates.pop("baseline_fp32_onednn")
        candidates.pop("ours_fp32_onednn")
    if authors is not None:
        candidates["authors_code_fp32"] = lambda pv: authors.generate_tag(pv)
    # precisions this CPU only emulates (no AMX / AVX-512 BF16 / VNNI: bf16 ~5x, int8 > 45x slower than fp32 on an
    # AVX2-only EPYC) are left out unless asked for: their rows would take most of an hour and say only that
    support = cpu_precision_support()
    emulated = {"baseline_bf16": "bf16", "ours_bf16": "bf16", "ours_int8": "int8", other_int8: "int8"}
    left_out = {
        label: f"{precision} is emulated on this CPU ({results['environment']['cpu']})"
        for label, precision in emulated.items()
        if support[precision] == "emulated" and not args.include_emulated and label in candidates
    }
    for label in left_out:
        candidates.pop(label)
    results["rows_left_out"] = left_out
    for label, why in left_out.items():
        log(f"left out {label}: {why} (--include-emulated times it)")

    checked = min(2, len(pixel_values))  # the baseline is slow: compare it with the model on the first images
    with torch.inference_mode():
        # ------------------------------------------------------------ exactness (fp32) and decisions
        log(f"logits: baseline and fp32 on {checked} images; every precision on all {len(names)}")
        logits = {
            "baseline": run_batches(baseline, pixel_values[:checked], 1),
            "reference_fp32_batch1": run_batches(logits_of(reference_model), pixel_values[:checked], 1),
            "fp32_batch1": run_batches(logits_of(model), pixel_values[:checked], 1),
            "fp32": run_batches(logits_of(model), pixel_values, big),
        }
        exact = {
            "max_abs_diff_vs_baseline_batch1": (logits["fp32_batch1"] - logits["baseline"]).abs().max().item(),
            "max_abs_diff_reference_vs_baseline_batch1": (
                (logits["reference_fp32_batch1"] - logits["baseline"]).abs().max().item()
            ),
            "max_abs_diff_vs_baseline_batch8": (logits["fp32"][:checked] - logits["baseline"]).abs().max().item(),
            "images_checked": checked,
        }
        exact["within_1e-4"] = max(v for k, v in exact.items() if k.startswith("max")) <= 1e-4
        results["fp32_exactness"] = exact
        rules = logit_thresholds(logits["fp32"], thresholds, rate=0.01)
        decisions = {}
        for label in ("ours_bf16", "ours_int8", other_int8, "baseline_bf16", "baseline_int8_naive", "onnx_fp32", "onnx_int8"):
            if label not in candidates:
                continue
            batch = 1 if label.startswith("baseline") else big
            other = run_batches(candidates[label], pixel_values, batch).float()
            decisions[label] = {
                "max_abs_logit_diff": (logits["fp32"] - other).abs().max().item(),
                **{rule: decision_agreement(logits["fp32"], other, cut) for rule, cut in rules.items()},
            }
        results["decisions_vs_fp32"] = decisions

        # ------------------------------------------------------------ end-to-end timings
        # batch 1 and batch `big` tag the same `big` images, so their per-image times compare the same work (the
        # baselines' slow large batches are timed once)
        one, batch = pixel_values[:1], pixel_values[:big]
        order = [label for label, _ in ROWS if label in candidates]
        plan = [
            (f"{label}_b1", (lambda fn=candidates[label]: run_batches(fn, batch, 1)), big, False,
             (lambda fn=candidates[label]: fn(one)))
            for label in order
        ] + [
            (f"{label}_b{big}", (lambda fn=candidates[label]: fn(batch)), big,
             label.startswith(("baseline", "authors")), None)
            for label in order
        ]
        times = interleaved_timings(plan, repeats, log)

        # ------------------------------------------------------------ components at batch 1 (the breakdown)
        timed_precisions = {"fp32"} | {p for p in ("bf16", "int8") if support[p] != "emulated" or args.include_emulated}
        embeds = {"fp32": model.get_image_embeds(one)}
        if "bf16" in timed_precisions:
            embeds["bf16"] = model_bf16.get_image_embeds(one.to(torch.bfloat16))
        if "int8" in timed_precisions:
            embeds["int8"] = model_int8.get_image_embeds(one.to(int8_dtype))
        component_plan = [
            ("swin_baseline_fp32", lambda: baseline.image_embeds(one)),
            ("swin_reference_fp32", lambda: reference_model.get_image_embeds(one)),
            ("swin_fp32", lambda: model.get_image_embeds(one)),
            ("swin_bf16", lambda: model_bf16.get_image_embeds(one.to(torch.bfloat16))),
            ("swin_int8", lambda: model_int8.get_image_embeds(one.to(int8_dtype))),
            ("decoder_baseline_fp32", lambda: baseline.tag_logits(embeds["fp32"])),
            ("decoder_reference_fp32", lambda: reference_model(image_embeds=embeds["fp32"]).logits),
            ("decoder_fp32", lambda: model(image_embeds=embeds["fp32"]).logits),
            ("decoder_fp32_subset", lambda: model(image_embeds=embeds["fp32"], tag_indices=subset).logits),
            ("decoder_bf16", lambda: model_bf16(image_embeds=embeds["bf16"]).logits),
            ("decoder_int8", lambda: model_int8(image_embeds=embeds["int8"]).logits),
        ]
        component_plan = [
            (label, fn) for label, fn in component_plan if not label.endswith(("_bf16", "_int8")) or label.split("_")[-1] in timed_precisions
        ]
        components = interleaved_timings([(label, fn, 1, False, fn) for label, fn in component_plan], repeats, log)
        subset_logits = model(image_embeds=embeds["fp32"], tag_indices=subset).logits
        results["subset_matches_full"] = (subset_logits - model(image_embeds=embeds["fp32"]).logits[:, subset]).abs().max().item()
    tmp_dir.cleanup()
    results["subset_size"] = int(subset.numel())
    results["times"] = times
    results["components"] = components

    ratios = speedups(times, "baseline_fp32_b1")
    results["speedup_vs_baseline_fp32_b1"] = ratios
    per_image = lambda label: times[label]["per_image_s"]  # noqa: E731
    gain = lambda slow, fast: per_image(slow) / per_image(fast) if slow in times and fast in times else None  # noqa: E731
    component = lambda slow, fast: (  # noqa: E731
        components[slow]["median_s"] / components[fast]["median_s"] if slow in components and fast in components else None
    )
    breakdown = {
        "oneDNN routing, on the baseline (b1)": gain("baseline_fp32_b1", "baseline_fp32_onednn_b1"),
        "oneDNN routing, on ours (b1)": gain("ours_fp32_no_onednn_b1", "ours_fp32_onednn_b1"),
        "port's algebra, no oneDNN on either side (b1)": gain("baseline_fp32_b1", "ours_fp32_no_onednn_b1"),
        "port's algebra, oneDNN on both sides (b1)": gain("baseline_fp32_onednn_b1", "ours_fp32_onednn_b1"),
        "enable_fast_inference over the plain model, fp32 (b1)": gain("reference_fp32_b1", "ours_fp32_b1"),
        "bf16 over fp32, ours (b1)": gain("ours_fp32_b1", "ours_bf16_b1"),
        "bf16 over fp32, baseline (b1)": gain("baseline_fp32_b1", "baseline_bf16_b1"),
        "int8 over bf16, ours (b1)": gain("ours_bf16_b1", "ours_int8_b1"),
        "int8 with the second layers over bf16, ours (b1)": gain("ours_bf16_b1", "ours_int8_second_layers_b1"),
        "int8 without the second layers over bf16, ours (b1)": gain("ours_bf16_b1", "ours_int8_first_layers_only_b1"),
        "int8 over fp32, ours (b1)": gain("ours_fp32_b1", "ours_int8_b1"),
        "int8 (ours) over the original computation in bf16 (b1)": gain("baseline_bf16_b1", "ours_int8_b1"),
        "naive int8 over fp32, baseline (b1)": gain("baseline_fp32_b1", "baseline_int8_naive_b1"),
        "Swin: ours fp32 over the baseline's": component("swin_baseline_fp32", "swin_fp32"),
        "Swin: bf16 over fp32": component("swin_fp32", "swin_bf16"),
        "Swin: int8 over bf16": component("swin_bf16", "swin_int8"),
        "Swin: int8 over fp32": component("swin_fp32", "swin_int8"),
        "decoder: ours fp32 over the baseline's": component("decoder_baseline_fp32", "decoder_fp32"),
        "decoder: bf16 over fp32": component("decoder_fp32", "decoder_bf16"),
        "decoder: int8 over bf16": component("decoder_bf16", "decoder_int8"),
        "decoder: int8 over fp32": component("decoder_fp32", "decoder_int8"),
    }
    results["breakdown"] = {key: value for key, value in breakdown.items() if value is not None}

    goals = {}
    for label, target in GOALS.items():
        goal = {"target_speedup_b1": target, "speedup_b1": ratios.get(f"{label}_b1")}
        goal["speed_met"] = goal["speedup_b1"] is not None and goal["speedup_b1"] >= target
        if label in decisions:
            worst = min(v["identical_decisions"] for k, v in decisions[label].items() if k != "max_abs_logit_diff")
            goal["worst_identical_decisions"] = worst
            goal["decisions_met"] = worst >= DECISION_GOAL
        goals[label] = goal
    goals["batch_no_slower"] = {
        label: per_image(f"{label}_b{big}") <= per_image(f"{label}_b1") * 1.02  # 2%: within run-to-run noise
        for label in order
        if not label.startswith(("baseline", "authors"))
    }
    results["goals"] = goals
    results["environment"]["load_average_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None

    if args.output is not None:
        atomic_write_json(args.output, results, indent=2)

    # ---------------------------------------------------------------- the report
    env = results["environment"]
    lines = [
        f"RAM++ inference benchmark ({results['mode']}: {config.num_tags} tags x {config.descriptions_per_tag}, "
        f"{image_size} px; {results['weights']})",
        f"cpu: {env['cpu']}, torch threads {env['torch_threads']}, load average {env['load_average_start']} -> "
        f"{env['load_average_end']}; batch 1 and batch {big} tag the same {big} images",
        "",
    ]
    rows = [(f"{label}_b1", what) for label, what in ROWS] + [(f"{label}_b{big}", what) for label, what in ROWS]
    lines += table(rows, times, ratios)
    lines += ["", "What each change buys (ratios of the medians above; components at batch 1):"]
    lines += [f"    {key:<56} {value:6.2f}x" for key, value in results["breakdown"].items()]
    lines += ["", f"| {'component (batch 1)':<24} | {'seconds':>8} |", f"|{'-' * 26}|{'-' * 10}|"]
    lines += [f"| {label:<24} | {timing['median_s']:>8.3f} |" for label, timing in components.items()]
    lines += [
        "",
        f"fp32 logits vs baseline: max |diff| {max(v for k, v in exact.items() if k.startswith('max')):.2e} "
        f"({'OK' if exact['within_1e-4'] else 'FAIL'} at 1e-4); {subset.numel()}-tag subset vs full: "
        f"{results['subset_matches_full']:.2e}",
    ]
    if "scene_model" in results:
        lines.append(
            f"scene model: tags firing per photo {results['scene_model']['fraction_of_tags_firing_per_photo']} "
            f"({results['scene_model']['thresholds']})"
        )
    lines += decision_lines(decisions, len(names))
    lines += ["", "Goals (speed-up over baseline_fp32_b1 at batch 1; >= 99% identical decisions under every rule):"]
    for label, goal in goals.items():
        if label == "batch_no_slower":
            lines.append(f"    batch {big} no slower per image than batch 1: {goal}")
            continue
        speed = goal["speedup_b1"]
        text = f"    {label}: {'n/a' if speed is None else f'{speed:.2f}x'} (goal {goal['target_speedup_b1']}x) "
        text += "met" if goal["speed_met"] else "MISSED"
        if "decisions_met" in goal:
            text += (
                f"; worst rule {100 * goal['worst_identical_decisions']:.2f}% identical "
                f"({'met' if goal['decisions_met'] else 'MISSED'})"
            )
        lines.append(text)
    lines.append(
        f"from_pretrained: fp32 {load['fp32']:.2f} s, bf16 {load['bf16']:.2f} s, int8 (load + quantize) "
        f"{load['int8_quantize_and_load']:.2f} s ({results['weights_file_mib']:.0f} MiB safetensors)"
    )
    if args.output is not None:
        lines.append(f"results: {args.output}")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0 if exact["within_1e-4"] else 1


if __name__ == "__main__":
    sys.exit(main())
