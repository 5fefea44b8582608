#!/usr/bin/env python
# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""`ramplus tag` on a folder of real-size JPEGs against the model alone, in one process (issue 25, item 3).

Makes `--num-images` JPEGs of `--width`x`--height` pixels (default 64 of 3000x2000, quality 90) from the fixture
photos (resized, mirrored and cropped differently so that no two files are the same), saves a random model of the
chosen size (the converted layout: `save_pretrained` of a `RamPlusModel`), loads it once through the same loader as
`ramplus tag` (`load_file_tagger`: the pipeline, `precision="auto"`), and times, in interleaved rounds:

- `model_only`: the pipeline's model on the images' pixel values, prepared beforehand, `--batch-size` at a time
  (the floor: what tagging costs without reading a file);
- `tag_serial`: `tag_into` (what `ramplus tag` runs after loading) into a jsonl file, reading each batch in the
  model's thread (`prefetch=False`: how it ran before);
- `tag_prefetch`: the same with the reader thread (the default): decoding and resizing the next batch overlap the
  model.

It reports seconds per image and the end-to-end overhead over `model_only` (the goal: within 10%), and how long
decoding + resizing one image takes alone. Full size on 2 shared cores takes a few seconds per image per row:
`--size quick` (small model) is for a smoke run.

    python benchmarks/bench_tag_folder.py --output benchmarks/results/bench_tag_folder.json
    python benchmarks/bench_tag_folder.py --size quick --num-images 8 --width 640 --height 480
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from PIL import Image, ImageOps


BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
try:
    import transformers_ramplus  # noqa: F401
except ImportError:
    sys.path.insert(0, str(BENCH_DIR.parent / "src"))

from ramplus_bench.scenes import DEFAULT_IMAGES_DIR, FULL, QUICK, build_random_model  # noqa: E402
from ramplus_bench.timing import environment  # noqa: E402
from transformers.utils import logging as transformers_logging  # noqa: E402

from transformers_ramplus.inference.precision import applied_precision  # noqa: E402
from transformers_ramplus.inference.tag_files import TagFilesOptions, load_file_tagger, prepare, tag_into  # noqa: E402
from transformers_ramplus.io.atomic import atomic_write_json  # noqa: E402
from transformers_ramplus.io.records import open_writer  # noqa: E402


def log(message: str) -> None:
    sys.stderr.write(f"[tag-folder {time.strftime('%H:%M:%S')}] {message}\n")


def make_jpegs(
    folder: Path, count: int, width: int, height: int, images_dir: Path = DEFAULT_IMAGES_DIR, workers: int = 1
) -> list[Path]:
    """`count` distinct JPEGs of `width`x`height` made from the photos in `images_dir` (`workers` threads)."""
    photos = [Image.open(path).convert("RGB") for path in sorted(images_dir.glob("*.jpg"))]
    if not photos:
        raise SystemExit(f"no *.jpg photos in {images_dir}")
    folder.mkdir(parents=True, exist_ok=True)

    def make(index: int) -> Path:
        photo = photos[index % len(photos)]
        if (index // len(photos)) % 2:
            photo = ImageOps.mirror(photo)
        margin = (index * 7) % 23 / 100  # a different crop per file
        box = (int(photo.width * margin / 2), int(photo.height * margin / 3), photo.width, photo.height)
        image = photo.crop(box).resize((width, height), Image.BICUBIC)
        path = folder / f"photo_{index:03d}.jpg"
        image.save(path, quality=90)
        return path

    if workers <= 1:
        return [make(index) for index in range(count)]
    with ThreadPoolExecutor(max_workers=workers) as pool:  # PIL releases the GIL while it resizes and encodes
        return list(pool.map(make, range(count)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=["full", "quick"], default="full", help="model size (random weights)")
    parser.add_argument("--num-images", type=int, default=64)
    parser.add_argument("--width", type=int, default=3000)
    parser.add_argument("--height", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds (the median is reported)")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    transformers_logging.disable_progress_bar()
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = FULL if args.size == "full" else QUICK
    results = {"environment": environment(), "size": args.size, "num_images": args.num_images,
               "image_size_px": [args.width, args.height], "batch_size": args.batch_size}
    with tempfile.TemporaryDirectory(prefix="ramplus-tag-folder-") as tmp:
        tmp = Path(tmp)
        log(f"writing {args.num_images} JPEGs of {args.width}x{args.height}")
        paths = make_jpegs(tmp / "photos", args.num_images, args.width, args.height)
        results["jpeg_mib"] = sum(path.stat().st_size for path in paths) / 2**20
        log(f"building and saving the random {args.size} model")
        model = build_random_model(sizes, seed=0)
        model.save_pretrained(tmp / "model")
        del model
        options = TagFilesOptions(
            paths=[str(tmp / "photos")], model=str(tmp / "model"), output=str(tmp / "tags.jsonl"),
            batch_size=args.batch_size, precision=args.precision, progress=False,
        )
        fmt = prepare(options)
        tagger = load_file_tagger(options, fmt, labels=None)
        pipe = tagger.pipeline
        results["precision"] = applied_precision(pipe.model)
        todo = list(enumerate(str(path) for path in paths))

        # decoding + resizing alone (one image, the reader's work)
        start = time.perf_counter()
        for _, path in todo[:8]:
            pipe.image_processor.resize_ahead(tagger.read(path, 0))
        results["read_and_resize_s_per_image"] = (time.perf_counter() - start) / min(8, len(todo))
        log(f"read + resize: {results['read_and_resize_s_per_image']:.3f} s per image")

        pixel_values = torch.cat(
            [pipe.image_processor(pipe.image_processor.resize_ahead(tagger.read(p, 0)), return_tensors="pt")["pixel_values"] for _, p in todo]
        ).to(pipe.model.dtype)
        inputs = tagger.tag_set.model_inputs(pipe.model)

        def model_only():
            with torch.inference_mode():
                for start in range(0, len(pixel_values), args.batch_size):
                    pipe.model(pixel_values=pixel_values[start : start + args.batch_size], **inputs)

        def tag(prefetch: bool):
            def run():
                writer = open_writer(options.output, fmt, True)
                try:
                    failures = tag_into(options, todo, tagger, writer, progress=False, prefetch=prefetch)
                finally:
                    writer.close()
                assert failures == 0
            return run

        routes = {"model_only": model_only, "tag_serial": tag(False), "tag_prefetch": tag(True)}
        samples = {label: [] for label in routes}
        log("warm-up: one batch of the model")
        with torch.inference_mode():
            pipe.model(pixel_values=pixel_values[: args.batch_size], **inputs)
        for round_index in range(args.rounds):
            for label, fn in routes.items():
                log(f"round {round_index + 1}/{args.rounds}: {label}")
                start = time.perf_counter()
                fn()
                samples[label].append(time.perf_counter() - start)
                log(f"  {label}: {samples[label][-1] / len(todo):.3f} s per image")
        records = [json.loads(line) for line in Path(options.output).read_text().splitlines()]
        results["records"] = len(records)
    per_image = {label: statistics.median(values) / len(todo) for label, values in samples.items()}
    results["per_image_s"] = per_image
    results["samples_s"] = samples
    results["overhead_vs_model_only"] = {
        label: per_image[label] / per_image["model_only"] - 1 for label in ("tag_serial", "tag_prefetch")
    }
    results["environment"]["load_average_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    env = results["environment"]
    lines = [
        f"ramplus tag on {len(todo)} JPEGs of {args.width}x{args.height} ({results['jpeg_mib']:.0f} MiB), {args.size} "
        f"model, precision {results['precision']}, batch {args.batch_size}; {env['cpu']} ({env['cpu_capability']}), "
        f"{env['torch_threads']} threads; load {env['load_average_start']} -> {env['load_average_end']}",
        f"read + resize alone: {results['read_and_resize_s_per_image']:.3f} s per image",
    ]
    for label, value in per_image.items():
        extra = "" if label == "model_only" else f"  (+{100 * results['overhead_vs_model_only'][label]:.1f}% over the model)"
        lines.append(f"  {label:<14} {value:.3f} s per image{extra}")
    if args.output is not None:
        atomic_write_json(args.output, results, indent=2)
        lines.append(f"results: {args.output}")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0 if results["records"] == len(todo) else 1


if __name__ == "__main__":
    sys.exit(main())
