#!/usr/bin/env python
# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""RAM++ on a GPU at its limit (issue 25, item 1): images per second for the model alone and for tagging a folder of
JPEGs end to end, per precision and batch size, with peak memory and tag decisions against fp32.

Rows (random weights of the full-size architecture, or `--tiny`):

- `model_{precision}_b{N}`: the model alone on pixel values already on the device; fp32 and bf16 through
  `enable_fast_inference` (on a GPU: the fast Swin blocks and the reference decoder batched over the images), fp16
  as the reference model cast to float16; attention through SDPA (`attn_implementation="sdpa"`). `--variants` adds
  rows `model_bf16_{variant}_b{N}` (fp32 runs the first variant only): `folded` (the CPU's per-image folded decoder on the GPU
  too), `refswin` (the reference Swin blocks, fast decoder settings otherwise), `reference` (the reference model
  cast, no fast paths). `--compile-modes default,reduce-overhead` adds `torch.compile(model, mode=...)` rows
  (`..._compiled_{mode}`; `reduce-overhead` replays CUDA graphs), timed after their compilation (reported).
- `e2e_loader_{precision}_b{N}`: JPEG files -> a `torch.utils.data.DataLoader` whose `--workers` processes decode
  and resize (the image processor) -> pinned memory -> the model -> the tags (the pipeline's post-processing).
- `e2e_tag_{precision}_b{N}[_t{threads}|_p{processes}]`: what `ramplus tag` runs after loading (`tag_into`: `tag_batches` with
  its reading threads, uint8 batches normalized on the device, the next batch started before the current one's
  records are written) into a jsonl file; `--read-threads` varies the threads (default: the package's),
  `--read-processes` adds rows read by processes (`ramplus tag --read-processes N`; their start-up is timed).
  `--e2e-feeds uint8,pipeline` adds `..._pipeline` rows: the same loop with every batch through the pipeline's call
  (the processor's numpy normalization on the CPU, as before the uint8 feed); `fastdecode` adds `..._fastdecode`
  rows: `ramplus tag --fast-decode` (JPEGs decoded at a reduced DCT scale; other pixels, compared with fp32's full
  decode); `fastresize` adds `..._fastresize` rows (`--fast-resize`: torch's uint8 resize instead of PIL's) and
  `fastboth` rows with both. `--e2e-top-k K` tags every image with its top K tags (threshold 0), so that the decisions compared are
  not all "no tag" (random weights pass no per-tag threshold).

Every row reports images/s, peak device memory (CUDA: `max_memory_allocated`; CPU: peak RSS) and, for bf16/fp16,
the share of identical tag decisions against fp32 at the per-tag thresholds (model rows: on random pixels; e2e
rows: every image's tags against the fp32 e2e row of the same batch size). Results are written after every row, so
a run stopped by its time limit keeps what it measured; `--budget-s` skips the rows left once that many seconds
have passed. On a machine without a GPU, `--device cpu --tiny` runs every path in seconds (a smoke test, run by the
test suite); its numbers mean nothing.

    python benchmarks/bench_gpu.py --output benchmarks/results/bench_gpu.json          # CUDA, full size
    python benchmarks/bench_gpu.py --device cpu --tiny --batch-sizes 1,4 --num-images 8  # smoke
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
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
from transformers_ramplus.inference import fast_paths, tagging  # noqa: E402
from transformers_ramplus.inference.tag_files import TagFilesOptions, load_file_tagger, prepare, tag_into  # noqa: E402
from transformers_ramplus.io.atomic import atomic_write_json  # noqa: E402
from transformers_ramplus.io.records import open_writer  # noqa: E402
from transformers_ramplus.models.ram_plus.image_processing_ram_plus import RamPlusImageProcessor  # noqa: E402
from transformers_ramplus.models.ram_plus.processing_ram_plus import post_process_image_tagging  # noqa: E402


DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
FEEDS = ("uint8", "pipeline", "fastdecode", "fastresize", "fastboth")  # --e2e-feeds


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


VARIANTS = ("fast", "folded", "refswin", "reference")


def load_model(folder: Path, precision: str, device: torch.device, variant: str = "fast", compile_mode: str | None = None):
    """The model in `precision` on `device`: fp32/bf16 with the fast paths (`variant`), fp16 as the reference
    model; SDPA."""
    try:
        model = RamPlusModel.from_pretrained(folder, attn_implementation="sdpa")
    except (ValueError, ImportError):  # an attention implementation this build lacks: the default
        model = RamPlusModel.from_pretrained(folder)
    model = model.to(device).eval()
    if precision == "fp16" or variant == "reference":
        model = model.to(DTYPES[precision])
    else:
        model = enable_fast_inference(model, precision=precision)
    if compile_mode is not None:
        model = torch.compile(model, mode=compile_mode)
    return model


@contextlib.contextmanager
def fast_path_variant(variant: str):
    """The accelerator settings of `fast_paths` for `variant` (restored afterwards)."""
    saved = fast_paths.ACCELERATOR_FAST_SWIN, fast_paths.ACCELERATOR_FOLDED_DECODER
    fast_paths.ACCELERATOR_FAST_SWIN = variant != "refswin"
    fast_paths.ACCELERATOR_FOLDED_DECODER = variant == "folded"
    try:
        yield
    finally:
        fast_paths.ACCELERATOR_FAST_SWIN, fast_paths.ACCELERATOR_FOLDED_DECODER = saved


@contextlib.contextmanager
def read_setup(threads: int | None, feed: str):
    """`tag_batches` with `threads` reading threads (None: the package's default) and `feed` ("uint8": the
    package's; "pipeline": every batch through the pipeline's call)."""
    saved = tagging.default_read_threads, tagging._uint8_feed_size
    if threads is not None:
        tagging.default_read_threads = lambda tagger: threads
    if feed == "pipeline":
        tagging._uint8_feed_size = lambda tagger: None
    try:
        yield
    finally:
        tagging.default_read_threads, tagging._uint8_feed_size = saved


def torchvision_read(path: Path) -> torch.Tensor:
    return torch.frombuffer(bytearray(path.read_bytes()), dtype=torch.uint8)


def top_sets(logits: torch.Tensor, k: int = 10) -> list[set]:
    """Each image's top `k` tags (random weights pass no per-tag threshold: these are the decisions compared)."""
    return [set(row) for row in logits.float().topk(min(k, logits.shape[-1]), dim=-1).indices.cpu().tolist()]


def decisions(logits: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(logits.float().cpu()) > thresholds


def tag_agreement(path: Path, reference: Path, num_tags: int) -> tuple[float, float] | None:
    """Share of (image, tag) decisions of the jsonl `path` equal to those of `reference`, and share of images whose
    tags are all the same."""
    if not reference.exists():
        return None
    def tags(file):
        return {r["path"]: {t["label"] for t in r.get("tags", [])} for r in map(json.loads, file.read_text().splitlines())}
    mine, theirs = tags(path), tags(reference)
    shared = mine.keys() & theirs.keys()
    if not shared:
        return None
    differing = sum(len(mine[key] ^ theirs[key]) for key in shared)
    return 1 - differing / (len(shared) * num_tags), sum(mine[key] == theirs[key] for key in shared) / len(shared)


class Rows:
    """The results, written to `output` after every row."""

    def __init__(self, results: dict, output: Path | None, budget_s: float | None):
        self.results, self.output, self.budget_s = results, output, budget_s
        self.started = time.perf_counter()

    def out_of_time(self) -> bool:
        return self.budget_s is not None and time.perf_counter() - self.started > self.budget_s

    def add(self, label: str, row: dict) -> None:
        self.results["rows"][label] = row
        log(f"{label}: {row}")
        self.write()

    def write(self) -> None:
        if self.output is None:
            return
        atomic_write_json(self.output, self.results, indent=2)


def time_model(model, inputs, repeats: int, device) -> tuple[torch.Tensor, float, float, float | None]:
    """(logits, seconds per call, seconds of the first call, peak MiB)."""
    with torch.inference_mode(), DeviceMemory(device) as memory:
        start = time.perf_counter()
        logits = model(pixel_values=inputs).logits.clone()  # warm-up (and compilation); CUDA graphs reuse outputs
        synchronize(device)
        first = time.perf_counter() - start
        if first > 5:  # compiled: a second warm-up call (CUDA graphs record on it)
            model(pixel_values=inputs)
        start = time.perf_counter()
        for _ in range(repeats):
            model(pixel_values=inputs)
        synchronize(device)
        elapsed = (time.perf_counter() - start) / repeats
    return logits, elapsed, first, memory.peak_mib


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="small random model (a smoke run of every path)")
    parser.add_argument("--precisions", default="fp32,bf16,fp16")
    parser.add_argument("--variants", default="fast", help=f"model rows of fp32/bf16: any of {', '.join(VARIANTS)}")
    parser.add_argument("--batch-sizes", default="1,8,32,64,128,256")
    parser.add_argument("--e2e-batch-sizes", help="batch sizes of the end-to-end rows (default: --batch-sizes)")
    parser.add_argument("--loader-batch-sizes", help="batch sizes of the DataLoader rows (default: --e2e-batch-sizes)")
    parser.add_argument("--num-images", type=int, default=512, help="JPEGs tagged end to end (and model images)")
    parser.add_argument("--width", type=int, default=1600)
    parser.add_argument("--height", type=int, default=1200)
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1), help="DataLoader decode workers")
    parser.add_argument("--read-threads", default="", help="comma-separated reading threads of the e2e rows")
    parser.add_argument("--read-processes", default="", help="comma-separated reading processes of further e2e rows (`_p{N}`)")
    parser.add_argument(
        "--e2e-feeds", default="uint8",
        help="uint8, pipeline, fastdecode, fastresize and/or fastboth (see the module docstring)",
    )
    parser.add_argument("--e2e-top-k", type=int, help="e2e rows keep each image's top K tags (threshold 0): decisions to compare "
                        "where random weights pass no per-tag threshold")
    parser.add_argument("--compile", action="store_true", help="same as --compile-modes default")
    parser.add_argument("--compile-modes", default="", help="torch.compile modes timed for bf16 (e.g. default,reduce-overhead)")
    parser.add_argument("--compile-batch-sizes", default="64", help="batch sizes of the compiled rows (each compiles)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-e2e", action="store_true", help="the model alone only")
    parser.add_argument("--e2e-first", action="store_true", help="the end-to-end rows before the model rows")
    parser.add_argument("--budget-s", type=float, help="skip the rows left after this many seconds")
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
    variants = [v for v in args.variants.split(",") if v]
    if [v for v in variants if v not in VARIANTS]:
        parser.error(f"--variants: choose from {list(VARIANTS)}")
    feeds = [f for f in args.e2e_feeds.split(",") if f]
    if [f for f in feeds if f not in FEEDS]:
        parser.error(f"--e2e-feeds: {', '.join(FEEDS)}")
    compile_modes = [m for m in args.compile_modes.split(",") if m] or (["default"] if args.compile else [])
    batch_sizes = sorted({int(b) for b in args.batch_sizes.split(",") if b})
    e2e_sizes = sorted({int(b) for b in (args.e2e_batch_sizes or args.batch_sizes).split(",") if b})
    loader_sizes = sorted({int(b) for b in (args.loader_batch_sizes or ",".join(map(str, e2e_sizes))).split(",") if b})
    readers = [("t", int(t)) for t in args.read_threads.split(",") if t] or [("t", None)]
    readers += [("p", int(p)) for p in args.read_processes.split(",") if p]
    compile_sizes = sorted({int(b) for b in args.compile_batch_sizes.split(",") if b})
    sizes = QUICK if args.tiny else FULL
    env = environment()
    env["cpu_count"] = os.cpu_count()
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
        env["cuda"] = torch.version.cuda
    results = {"environment": env, "device": str(device), "tiny": args.tiny, "argv": list(argv or sys.argv[1:]), "rows": {}}
    rows = Rows(results, args.output, args.budget_s)
    with tempfile.TemporaryDirectory(prefix="ramplus-gpu-") as tmp:
        tmp = Path(tmp)
        log("building the random model")
        model = build_random_model(sizes, seed=0)
        model.save_pretrained(tmp / "model")
        thresholds = torch.tensor(model.config.thresholds())
        num_tags = len(model.config.id2label)
        del model
        size = sizes["image_size"]
        count = max(args.num_images, max(batch_sizes))
        pixel_values = torch.randn(count, 3, size, size, generator=torch.Generator().manual_seed(0))

        reference_decisions = None

        def model_rows(compiled: bool):
            nonlocal reference_decisions
            plans = []
            if not compiled:
                for precision in precisions:
                    # fp16: the reference model cast; fp32: the first variant only (the decisions' reference)
                    chosen = ["reference"] if precision == "fp16" else variants if precision == "bf16" else variants[:1]
                    for variant in chosen:
                        plans.append((precision, variant, None))
            else:  # last: compiling takes minutes
                plans += [("bf16", "fast", mode) for mode in compile_modes if "bf16" in precisions]
            for precision, variant, mode in plans:
                if rows.out_of_time():
                    log(f"time budget spent: model rows from {precision} {variant} {mode or ''} skipped")
                    return
                with fast_path_variant(variant):
                    model = load_model(tmp / "model", precision, device, variant, mode)
                    dtype = DTYPES[precision]
                    for batch in (compile_sizes if mode else batch_sizes):
                        suffix = "" if variant == "fast" or precision == "fp16" else f"_{variant}"
                        label = f"model_{precision}{suffix}_b{batch}" + (f"_compiled_{mode}" if mode else "")
                        inputs = pixel_values[:batch].to(device, dtype)
                        try:
                            logits, elapsed, first, peak = time_model(model, inputs, args.repeats, device)
                        except torch.OutOfMemoryError:
                            rows.add(label, {"error": "out of memory"})
                            break
                        row = {"images_per_s": batch / elapsed, "peak_memory_mib": peak}
                        if mode:
                            row["first_call_s"] = first
                        decided = decisions(logits, thresholds), top_sets(logits)
                        first = batch == (compile_sizes if mode else batch_sizes)[0]
                        if precision == "fp32" and variant == variants[0] and batch == batch_sizes[0] and not mode:
                            reference_decisions = decided
                        elif reference_decisions is not None and first:
                            shared = min(len(decided[1]), len(reference_decisions[1]))
                            row["identical_decisions_vs_fp32"] = (
                                (decided[0][:shared] == reference_decisions[0][:shared]).float().mean().item()
                            )
                            row["images_with_identical_top10_vs_fp32"] = sum(
                                a == b for a, b in zip(decided[1][:shared], reference_decisions[1][:shared])
                            ) / shared
                        rows.add(label, row)
                    del model
                    if device.type == "cuda":
                        torch.cuda.empty_cache()

        def e2e_rows():
            log(f"writing {args.num_images} JPEGs of {args.width}x{args.height}")
            paths = make_jpegs(tmp / "photos", args.num_images, args.width, args.height, workers=os.cpu_count() or 1)
            processor = RamPlusImageProcessor(size={"height": size, "width": size})
            for precision in [p for p in precisions if p != "fp16"]:  # the pipeline runs fp32/bf16 fast paths
                if rows.out_of_time():
                    return
                if args.workers > 0 and loader_sizes:
                    model = load_model(tmp / "model", precision, device)
                    labels = list(model.config.id2label.values())
                    for batch in loader_sizes:
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
                        rows.add(label, {"images_per_s": tagged / elapsed, "peak_memory_mib": memory.peak_mib})
                    del model
                options = TagFilesOptions(
                    paths=[str(tmp / "photos")], model=str(tmp / "model"), output=str(tmp / "warmup.jsonl"),
                    batch_size=e2e_sizes[0], precision=precision, device=str(device), progress=False,
                    threshold=None if args.e2e_top_k is None else 0.0, top_k=args.e2e_top_k,
                )
                fmt = prepare(options)
                tagger = load_file_tagger(options, fmt, labels=None)  # loaded once, used by every row
                todo = list(enumerate(str(path) for path in paths))
                warm = open_writer(options.output, fmt, True)
                tag_into(options, todo[: max(e2e_sizes)], tagger, warm, progress=False)  # warm-up
                warm.close()
                for batch in e2e_sizes:
                    # fp32 (the decisions' reference when bf16 is measured too): the package's reading only
                    reference_only = precision == "fp32" and "bf16" in precisions
                    for kind, threads in ([("t", None)] if reference_only else readers):
                        for feed in (["uint8"] if reference_only else feeds):
                            if rows.out_of_time():
                                return
                            label = f"e2e_tag_{precision}_b{batch}" + ("" if threads is None else f"_{kind}{threads}")
                            label += "" if feed == "uint8" else f"_{feed}"
                            output = tmp / f"{label}.jsonl"
                            options.output, options.batch_size = str(output), batch
                            options.read_processes = threads if kind == "p" else 0
                            fast = feed in ("fastdecode", "fastresize", "fastboth")
                            tagger.read_settings.pop("draft_size", None)
                            if feed in ("fastdecode", "fastboth"):
                                tagger.read_settings["draft_size"] = tagger.pipeline.image_processor.draft_size()
                            tagger.fast_resize = feed in ("fastresize", "fastboth")
                            writer = open_writer(options.output, fmt, True)
                            thread_count = threads if kind == "t" else None
                            with read_setup(thread_count, "pipeline" if feed == "pipeline" else "uint8"), DeviceMemory(device) as memory:
                                start = time.perf_counter()
                                failures = tag_into(options, todo, tagger, writer, progress=False)
                                synchronize(device)
                                elapsed = time.perf_counter() - start
                            writer.close()
                            row = {"images_per_s": (len(todo) - failures) / elapsed, "peak_memory_mib": memory.peak_mib}
                            records = [json.loads(line) for line in output.read_text().splitlines()]
                            row["tags_per_image"] = sum(len(r.get("tags", [])) for r in records) / max(1, len(records))
                            if precision != "fp32" or fast:
                                reference = tmp / f"e2e_tag_fp32_b{batch}.jsonl"  # the same pixels at any threads
                                agreement = tag_agreement(output, reference, num_tags)
                                if agreement is not None:
                                    row["identical_decisions_vs_fp32"], row["images_with_identical_tags"] = agreement
                            if kind == "p":
                                started = process_start(threads, tagger, paths)
                                row["process_start_s"] = started
                                if elapsed > 1.2 * started:  # else the start-up is most of the row: no estimate
                                    row["images_per_s_after_start"] = (len(todo) - failures) / (elapsed - started)
                            rows.add(label, row)
                del tagger
                if device.type == "cuda":
                    torch.cuda.empty_cache()

        starts = {}

        def process_start(count: int, tagger, paths) -> float:
            """Seconds to spawn `count` reading processes and read one image in each (measured once per count)."""
            if count not in starts:
                context = multiprocessing.get_context("spawn")
                processor = tagger.pipeline.image_processor
                begin = time.perf_counter()
                with ProcessPoolExecutor(max_workers=count, mp_context=context) as pool:
                    list(pool.map(
                        tagging._read_for_model, [tagger.reader()] * count, [processor.resize_ahead] * count,
                        [processor.fixed_size()] * count, [str(p) for p in paths[:count]], range(count),
                    ))
                starts[count] = time.perf_counter() - begin
            return starts[count]

        def read_cost():
            """One thread's cost per image of reading (decode + EXIF) and resizing, in ms."""
            paths = sorted((tmp / "photos").glob("*.jpg"))[:32]
            processor = RamPlusImageProcessor(size={"height": size, "width": size})
            start = time.perf_counter()
            images = [processor.load_image(str(path)) for path in paths]
            middle = time.perf_counter()
            for image in images:
                processor.resize_ahead(image)
            end = time.perf_counter()
            env["read_ms_per_image"] = 1000 * (middle - start) / len(paths)
            env["resize_ms_per_image"] = 1000 * (end - middle) / len(paths)
            start = time.perf_counter()
            for path in paths:
                processor.resize_ahead(processor.load_image(str(path), fast_decode=True))
            env["fast_decode_read_and_resize_ms_per_image"] = 1000 * (time.perf_counter() - start) / len(paths)
            start = time.perf_counter()
            for image in images:
                processor.resize_ahead(image, fast_resize=True)
            env["fast_resize_ms_per_image"] = 1000 * (time.perf_counter() - start) / len(paths)
            log(f"one thread: read {env['read_ms_per_image']:.1f} ms, resize {env['resize_ms_per_image']:.1f} ms per image; "
                f"fast decode and resize {env['fast_decode_read_and_resize_ms_per_image']:.1f} ms; "
                f"torch's resize (--fast-resize) {env['fast_resize_ms_per_image']:.1f} ms")

        def gpu_decode_rows():
            """JPEG bytes decoded on the GPU (torchvision's nvJPEG), resized there (bilinear, antialiased), bf16:
            an exploration of GPU decoding (not the package's path: its pixels differ from PIL's)."""
            try:
                from torchvision.io import decode_jpeg
            except Exception as error:  # noqa: BLE001 - torchvision missing or broken
                log(f"GPU decoding not measured: {error!r}")
                return
            if device.type != "cuda" or "bf16" not in precisions or rows.out_of_time():
                return
            paths = sorted((tmp / "photos").glob("*.jpg"))
            processor = RamPlusImageProcessor(size={"height": size, "width": size})
            model = load_model(tmp / "model", "bf16", device)
            labels = list(model.config.id2label.values())
            for batch in loader_sizes:
                label = f"e2e_gpudecode_bf16_b{batch}"
                tags = {}
                try:
                    with torch.inference_mode(), DeviceMemory(device) as memory:
                        start = time.perf_counter()
                        for first in range(0, len(paths), batch):
                            group = paths[first : first + batch]
                            datas = [torchvision_read(path) for path in group]
                            decoded = decode_jpeg(datas, device=device)
                            resized = torch.cat([
                                torch.nn.functional.interpolate(
                                    image.unsqueeze(0).float(), size=(size, size), mode="bilinear", antialias=True,
                                    align_corners=False,
                                ).round_().clamp_(0, 255).to(torch.uint8)
                                for image in decoded
                            ])
                            pixels = processor.pixel_values_from_uint8(resized.permute(0, 2, 3, 1))
                            logits = model(pixel_values=pixels).logits
                            cutoff = thresholds.tolist() if args.e2e_top_k is None else 0.0
                            results = post_process_image_tagging(logits.float().cpu(), cutoff, labels, top_k=args.e2e_top_k)
                            for path, result in zip(group, results):
                                tags[str(path)] = {t["label"] for t in result}
                        synchronize(device)
                        elapsed = time.perf_counter() - start
                except Exception as error:  # noqa: BLE001 - an exploration: report and go on
                    rows.add(label, {"error": repr(error)[:300]})
                    continue
                row = {"images_per_s": len(paths) / elapsed, "peak_memory_mib": memory.peak_mib}
                reference = tmp / f"e2e_tag_fp32_b{batch}.jsonl"
                if reference.exists():
                    theirs = {r["path"]: {t["label"] for t in r.get("tags", [])} for r in map(json.loads, reference.read_text().splitlines())}
                    shared = tags.keys() & theirs.keys()
                    row["identical_decisions_vs_fp32"] = 1 - sum(len(tags[k] ^ theirs[k]) for k in shared) / max(1, len(shared) * num_tags)
                    row["images_with_identical_tags"] = sum(tags[k] == theirs[k] for k in shared) / max(1, len(shared))
                rows.add(label, row)
            del model

        if not args.e2e_first:
            model_rows(compiled=False)
        if not args.no_e2e:
            e2e_rows()
            read_cost()
            gpu_decode_rows()
        if args.e2e_first:
            model_rows(compiled=False)
        model_rows(compiled=True)
    results["environment"]["load_average_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    rows.write()
    lines = [f"RAM++ {'tiny' if args.tiny else 'full size'} on {device} ({env.get('gpu', env['cpu'])}); smoke run" if args.tiny
             else f"RAM++ full size on {device} ({env.get('gpu', env['cpu'])})"]
    for label, row in results["rows"].items():
        if "error" in row:
            lines.append(f"  {label:<36} {row['error']}")
            continue
        agree = row.get("identical_decisions_vs_fp32")
        memory = "n/a" if row["peak_memory_mib"] is None else f"{row['peak_memory_mib']:.0f} MiB"
        lines.append(
            f"  {label:<36} {row['images_per_s']:9.2f} img/s  peak {memory}"
            + ("" if agree is None else f"  decisions {100 * agree:.2f}% identical to fp32")
            + (f"  first call {row['first_call_s']:.1f} s" if "first_call_s" in row else "")
        )
    if args.output is not None:
        lines.append(f"results: {args.output}")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
