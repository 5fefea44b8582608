#!/usr/bin/env python
# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""RAM++ on a GPU at its limit (issue 25, item 1): images per second for the model alone and for tagging a folder of
JPEGs end to end, per precision and batch size, with peak memory and tag decisions against fp32.

Rows (random weights of the full-size architecture, or `--tiny`):

- `model_{precision}_b{N}`: the model alone on pixel values already on the device; fp32 and bf16 through
  `enable_fast_inference`, fp16 as the reference model cast to float16; attention through SDPA
  (`attn_implementation="sdpa"`); with `--compile`, `torch.compile(model)` as well (`..._compiled`).
- `e2e_loader_{precision}_b{N}`: JPEG files -> a `torch.utils.data.DataLoader` whose `--workers` processes decode
  and resize (the image processor) -> pinned memory -> the model -> the tags (the pipeline's post-processing).
- `e2e_tag_{precision}_b{N}`: what `ramplus tag` runs after loading (`tag_into`, the reader thread prefetching
  the next batch) into a jsonl file.

Every row reports images/s, peak device memory (CUDA: `max_memory_allocated`; CPU: peak RSS) and, for bf16/fp16,
the share of identical tag decisions against fp32 at the per-tag thresholds. On a machine without a GPU, `--device
cpu --tiny` runs every path in seconds (a smoke test, run by the test suite); its numbers mean nothing.

    python benchmarks/bench_gpu.py --output benchmarks/results/bench_gpu.json          # CUDA, full size
    python benchmarks/bench_gpu.py --device cpu --tiny --batch-sizes 1,4 --num-images 8  # smoke
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch


BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
try:
    import transformers_ramplus  # noqa: F401
except ImportError:
    sys.path.insert(0, str(BENCH_DIR.parent / "src"))

from bench_tag_folder import make_jpegs  # noqa: E402
from ramplus_bench.scenes import FULL, QUICK, build_random_model  # noqa: E402
from ramplus_bench.timing import PeakMemory, environment  # noqa: E402
from transformers.utils import logging as transformers_logging  # noqa: E402

from transformers_ramplus import RamPlusModel, enable_fast_inference  # noqa: E402
from transformers_ramplus.inference.tag_files import TagFilesOptions, load_file_tagger, prepare, tag_into  # noqa: E402
from transformers_ramplus.io.records import open_writer  # noqa: E402
from transformers_ramplus.models.ram_plus.image_processing_ram_plus import RamPlusImageProcessor  # noqa: E402
from transformers_ramplus.models.ram_plus.processing_ram_plus import post_process_image_tagging  # noqa: E402


DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def log(message: str) -> None:
    sys.stderr.write(f"[gpu {time.strftime('%H:%M:%S')}] {message}\n")


class JpegFolder(torch.utils.data.Dataset):
    """JPEG files -> pixel values, decoded and resized in the DataLoader's worker processes."""

    def __init__(self, paths, processor):
        self.paths, self.processor = list(paths), processor

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        image = self.processor.load_image(str(self.paths[index]), index)
        return self.processor(image, return_tensors="pt")["pixel_values"][0]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class DeviceMemory:
    """Peak memory of a block: CUDA's allocator peak, or the process's peak RSS on the CPU (MiB)."""

    def __init__(self, device):
        self.device, self.peak_mib = device, None

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self._rss = PeakMemory().__enter__()
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            self.peak_mib = torch.cuda.max_memory_allocated(self.device) / 2**20
        else:
            self._rss.__exit__(*exc)
            self.peak_mib = self._rss.peak_mib
        return False


def load_model(folder: Path, precision: str, device: torch.device, compiled: bool):
    """The model in `precision` on `device`: fp32/bf16 with the fast paths, fp16 as the reference model; SDPA."""
    try:
        model = RamPlusModel.from_pretrained(folder, attn_implementation="sdpa")
    except (ValueError, ImportError):  # an attention implementation this build lacks: the default
        model = RamPlusModel.from_pretrained(folder)
    model = model.to(device).eval()
    if precision == "fp16":
        model = model.to(torch.float16)
    else:
        model = enable_fast_inference(model, precision=precision)
    if compiled:
        model = torch.compile(model)
    return model


def decisions(logits: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(logits.float().cpu()) > thresholds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="small random model (a smoke run of every path)")
    parser.add_argument("--precisions", default="fp32,bf16,fp16")
    parser.add_argument("--batch-sizes", default="1,8,32,64,128,256")
    parser.add_argument("--num-images", type=int, default=512, help="JPEGs tagged end to end (and model images)")
    parser.add_argument("--width", type=int, default=1600)
    parser.add_argument("--height", type=int, default=1200)
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1), help="DataLoader decode workers")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile(model)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-e2e", action="store_true", help="the model alone only")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    transformers_logging.disable_progress_bar()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA GPU here (use --device cpu --tiny for a smoke run)")
    precisions = [p for p in args.precisions.split(",") if p]
    bad = [p for p in precisions if p not in DTYPES]
    if bad:
        parser.error(f"--precisions: unknown {bad}; choose from {list(DTYPES)}")
    batch_sizes = sorted({int(b) for b in args.batch_sizes.split(",") if b})
    sizes = QUICK if args.tiny else FULL
    env = environment()
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
        env["cuda"] = torch.version.cuda
    results = {"environment": env, "device": str(device), "tiny": args.tiny, "rows": {}}
    rows = results["rows"]
    with tempfile.TemporaryDirectory(prefix="ramplus-gpu-") as tmp:
        tmp = Path(tmp)
        log("building the random model")
        model = build_random_model(sizes, seed=0)
        model.save_pretrained(tmp / "model")
        thresholds = torch.tensor(model.config.thresholds())
        del model
        size = sizes["image_size"]
        count = max(args.num_images, max(batch_sizes))
        pixel_values = torch.randn(count, 3, size, size, generator=torch.Generator().manual_seed(0))
        reference_decisions = None
        for precision in precisions:
            for compiled in ([False, True] if args.compile else [False]):
                model = load_model(tmp / "model", precision, device, compiled)
                dtype = DTYPES[precision]
                for batch in batch_sizes:
                    label = f"model_{precision}_b{batch}" + ("_compiled" if compiled else "")
                    inputs = pixel_values[:batch].to(device, dtype)
                    try:
                        with torch.inference_mode(), DeviceMemory(device) as memory:
                            logits = model(pixel_values=inputs).logits  # warm-up (and compilation)
                            synchronize(device)
                            start = time.perf_counter()
                            for _ in range(args.repeats):
                                model(pixel_values=inputs)
                            synchronize(device)
                            elapsed = (time.perf_counter() - start) / args.repeats
                    except torch.OutOfMemoryError:
                        rows[label] = {"error": "out of memory"}
                        log(f"{label}: out of memory")
                        break
                    row = {"images_per_s": batch / elapsed, "peak_memory_mib": memory.peak_mib}
                    decided = decisions(logits, thresholds)
                    if precision == "fp32" and not compiled and batch == batch_sizes[0]:
                        reference_decisions = decided
                    elif reference_decisions is not None and batch == batch_sizes[0]:
                        row["identical_decisions_vs_fp32"] = (decided == reference_decisions).float().mean().item()
                    rows[label] = row
                    log(f"{label}: {row}")
                del model
        if not args.no_e2e:
            log(f"writing {args.num_images} JPEGs of {args.width}x{args.height}")
            paths = make_jpegs(tmp / "photos", args.num_images, args.width, args.height)
            processor = RamPlusImageProcessor(size={"height": size, "width": size})
            for precision in [p for p in precisions if p != "fp16"]:  # the pipeline runs fp32/bf16 fast paths
                model = load_model(tmp / "model", precision, device, compiled=False)
                labels = list(model.config.id2label.values())
                for batch in batch_sizes:
                    loader = torch.utils.data.DataLoader(
                        JpegFolder(paths, processor), batch_size=batch, num_workers=args.workers,
                        pin_memory=device.type == "cuda", persistent_workers=False,
                    )
                    label = f"e2e_loader_{precision}_b{batch}"
                    with torch.inference_mode(), DeviceMemory(device) as memory:
                        start = time.perf_counter()
                        tagged = 0
                        for pixel_batch in loader:
                            logits = model(pixel_values=pixel_batch.to(device, DTYPES[precision], non_blocking=True)).logits
                            tagged += len(post_process_image_tagging(logits.float().cpu(), thresholds.tolist(), labels))
                        synchronize(device)
                        elapsed = time.perf_counter() - start
                    rows[label] = {"images_per_s": tagged / elapsed, "peak_memory_mib": memory.peak_mib}
                    log(f"{label}: {rows[label]}")
                del model
                for batch in batch_sizes:
                    options = TagFilesOptions(
                        paths=[str(tmp / "photos")], model=str(tmp / "model"), output=str(tmp / f"tags_{precision}_{batch}.jsonl"),
                        batch_size=batch, precision=precision, device=str(device), progress=False,
                    )
                    fmt = prepare(options)
                    tagger = load_file_tagger(options, fmt, labels=None)
                    todo = list(enumerate(str(path) for path in paths))
                    label = f"e2e_tag_{precision}_b{batch}"
                    writer = open_writer(options.output, fmt, True)
                    with DeviceMemory(device) as memory:
                        start = time.perf_counter()
                        failures = tag_into(options, todo, tagger, writer, progress=False)
                        synchronize(device)
                        elapsed = time.perf_counter() - start
                    writer.close()
                    rows[label] = {"images_per_s": (len(todo) - failures) / elapsed, "peak_memory_mib": memory.peak_mib}
                    log(f"{label}: {rows[label]}")
                    del tagger
    results["environment"]["load_average_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    lines = [f"RAM++ {'tiny' if args.tiny else 'full size'} on {device} ({env.get('gpu', env['cpu'])}); smoke run" if args.tiny
             else f"RAM++ full size on {device} ({env.get('gpu', env['cpu'])})"]
    for label, row in rows.items():
        if "error" in row:
            lines.append(f"  {label:<28} {row['error']}")
            continue
        agree = row.get("identical_decisions_vs_fp32")
        memory = "n/a" if row["peak_memory_mib"] is None else f"{row['peak_memory_mib']:.0f} MiB"
        lines.append(
            f"  {label:<28} {row['images_per_s']:9.2f} img/s  peak {memory}"
            + ("" if agree is None else f"  decisions {100 * agree:.2f}% identical to fp32")
        )
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        partial = args.output.with_name(args.output.name + ".tmp")
        partial.write_text(json.dumps(results, indent=2) + "\n")
        os.replace(partial, args.output)
        lines.append(f"results: {args.output}")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
