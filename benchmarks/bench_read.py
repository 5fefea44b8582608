#!/usr/bin/env python
# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""What reading a photo for the model costs the CPU, per reading mode, against the reference reading (issue 25).

On a GPU, `ramplus tag` is bound by its readers (decode, EXIF, resize to the model's input), not by the model: on the
H200's host one thread read a 1600x1200 JPEG in ~19 ms and resized it in ~13 ms, so 16 cores fed at most ~500 img/s
against the model's 760. This benchmark times the package's reader (`FileTagger.read` + the processor's
`resize_ahead`, what a reading thread or process runs) on real-size JPEGs made from the fixture photos, in one
process, in interleaved rounds, for:

- `exact`: full decode, PIL's resize (the reference preprocessing; the baseline);
- `fast_resize`: full decode, torch's antialiased uint8 resize (`--fast-resize`);
- `fast_decode`: JPEG decoded at a reduced DCT scale, PIL's resize (`--fast-decode`);
- `fast_both`: both.

It reports ms per image on one thread and the speed-up over `exact`, and (`--threads N`, default: every core)
images/s with N reading threads, the way `tag_batches` reads ahead of a GPU; and how close each mode's uint8 pixels
are to the reference ones (share identical, largest difference). It needs no model.

    python benchmarks/bench_read.py --output benchmarks/results/bench_read.json
    python benchmarks/bench_read.py --num-images 4 --rounds 1 --sizes 640x480   # smoke run
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np


BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
try:
    import transformers_ramplus  # noqa: F401
except ImportError:
    sys.path.insert(0, str(BENCH_DIR.parent / "src"))

from bench_tag_folder import make_jpegs  # noqa: E402
from ramplus_bench.timing import environment  # noqa: E402

from transformers_ramplus.io.atomic import atomic_write_json  # noqa: E402
from transformers_ramplus.models.ram_plus.image_processing_ram_plus import RamPlusImageProcessor  # noqa: E402


MODES = {  # name: (fast_decode, fast_resize)
    "exact": (False, False),
    "fast_resize": (False, True),
    "fast_decode": (True, False),
    "fast_both": (True, True),
}


def log(message: str) -> None:
    sys.stderr.write(f"[read {time.strftime('%H:%M:%S')}] {message}\n")


def reader(fast_decode: bool, fast_resize: bool):
    """One image read as a reading thread of `ramplus tag` reads it: decoded (EXIF applied), resized for the model."""
    processor = RamPlusImageProcessor(fast_decode=fast_decode, fast_resize=fast_resize)

    def read(path) -> np.ndarray:
        return np.asarray(processor.resize_ahead(processor.load_image(str(path))))

    return read


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-images", type=int, default=32, help="JPEGs per size")
    parser.add_argument("--sizes", default="1600x1200,3000x2000", help="comma-separated WIDTHxHEIGHT of the JPEGs")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (the median is reported)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="reading threads of the pool rows")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    sizes = [tuple(int(v) for v in size.lower().split("x")) for size in args.sizes.split(",") if size]
    results = {"environment": environment(), "argv": sys.argv[1:] if argv is None else list(argv),
               "num_images": args.num_images, "threads": args.threads, "sizes": {}}
    readers = {name: reader(*flags) for name, flags in MODES.items()}
    with tempfile.TemporaryDirectory(prefix="ramplus-read-") as tmp:
        for width, height in sizes:
            key = f"{width}x{height}"
            log(f"writing {args.num_images} JPEGs of {key}")
            paths = make_jpegs(Path(tmp) / key, args.num_images, width, height, workers=2)
            reference = [readers["exact"](path) for path in paths]
            row = {}
            for name, read in readers.items():  # pixels against the reference reading
                pixels = [read(path) for path in paths]
                differences = [np.abs(a.astype(np.int16) - b.astype(np.int16)) for a, b in zip(pixels, reference)]
                row[name] = {
                    "identical_pixel_values": float(np.mean([(d == 0).mean() for d in differences])),
                    "max_difference": int(max(d.max() for d in differences)),
                    "mean_difference": float(np.mean([d.mean() for d in differences])),
                }
            single = {name: [] for name in readers}
            pooled = {name: [] for name in readers}
            with ThreadPoolExecutor(max_workers=args.threads) as pool:
                for round_index in range(args.rounds):
                    for name, read in readers.items():
                        start = time.perf_counter()
                        for path in paths:
                            read(path)
                        single[name].append((time.perf_counter() - start) / len(paths))
                        start = time.perf_counter()
                        list(pool.map(read, paths))
                        pooled[name].append(len(paths) / (time.perf_counter() - start))
                    log(f"{key} round {round_index + 1}/{args.rounds}: "
                        + ", ".join(f"{n} {1000 * single[n][-1]:.1f} ms" for n in readers))
            base = statistics.median(single["exact"])
            for name in readers:
                ms = statistics.median(single[name])
                row[name].update(
                    ms_per_image_one_thread=1000 * ms,
                    speedup_vs_exact=base / ms,
                    images_per_s_threads=statistics.median(pooled[name]),
                    samples_ms=[1000 * v for v in single[name]],
                )
            results["sizes"][key] = row
    results["environment"]["load_average_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    env = results["environment"]
    lines = [(f"reading for the model: {args.num_images} JPEGs per size; {env['cpu']} ({env['cpu_capability']}); "
              f"{args.threads} threads in the pool rows; load {env['load_average_start']} -> {env['load_average_end']}")]
    for key, row in results["sizes"].items():
        for name, values in row.items():
            lines.append(
                f"  {key:<10} {name:<12} {values['ms_per_image_one_thread']:7.2f} ms/img ({values['speedup_vs_exact']:.2f}x)"
                f"  {values['images_per_s_threads']:7.1f} img/s on {args.threads} threads"
                f"  pixels {100 * values['identical_pixel_values']:.2f}% identical, max diff {values['max_difference']}"
            )
    if args.output is not None:
        atomic_write_json(args.output, results, indent=2)
        lines.append(f"results: {args.output}")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
