"""Throughput of `ramplus tag` per process: one process, and N processes under `accelerate launch` (CPU: gloo; each
process gets cores/N threads).

    python benchmarks/bench_scale.py --images 24 --processes 1 2            # a random full-size model (built once)
    python benchmarks/bench_scale.py --model /tmp/ram-plus-tiny --images 64 # any model folder

Each configuration is timed twice: tagging the images into a fresh output, and the same command again (everything
already done: start-up, model loading, the resume scan and the merge). Their difference is the tagging time, so the
rates below leave out the model loading. Results go to stdout and `--json`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def build_full_size_model(folder: Path) -> Path:
    """The released geometry (Swin-L/384, 4585 tags x 51 descriptions) with random weights, saved once."""
    if (folder / "config.json").is_file():
        return folder
    import torch

    from transformers_ramplus import RamPlusConfig, RamPlusImageProcessor, RamPlusModel

    torch.manual_seed(0)
    model = RamPlusModel(RamPlusConfig()).eval()
    model.save_pretrained(folder)
    RamPlusImageProcessor().save_pretrained(folder)
    return folder


def make_images(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for index in range(count):
        path = folder / f"{index:05d}.jpg"
        if not path.exists():
            Image.fromarray(rng.integers(0, 255, (384, 512, 3), dtype=np.uint8)).save(path, quality=90)
    return folder


def command(processes: int, tag_args: list[str]) -> list[str]:
    if processes == 1:
        return [sys.executable, "-m", "transformers_ramplus.cli.main", "tag", *tag_args]
    return [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_port", str(free_port()), "-m", "transformers_ramplus.cli.main", "tag", *tag_args,
    ]


def timed_run(processes: int, tag_args: list[str], threads: int) -> float:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    start = time.perf_counter()
    result = subprocess.run(command(processes, tag_args), env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return elapsed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model folder (default: a random full-size model built in --workdir)")
    parser.add_argument("--workdir", default="/tmp/ramplus-bench-scale")
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--cores", type=int, default=os.cpu_count(), help="cores shared by the processes")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more `ramplus tag` options")
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args(argv)
    workdir = Path(args.workdir)
    model = Path(args.model) if args.model else build_full_size_model(workdir / "ram-plus-random-full-size")
    images = make_images(workdir / f"images-{args.images}", args.images)
    rows = []
    for processes in args.processes:
        threads = max(1, args.cores // processes)
        output = workdir / f"tags-{processes}.jsonl"
        tag_args = [str(images), "--model", str(model), "--output", str(output), "--batch-size", str(args.batch_size), "--no-progress", *args.extra]
        full = timed_run(processes, [*tag_args, "--overwrite"], threads)
        startup = timed_run(processes, tag_args, threads)  # all done: start-up, loading, resume scan, merge
        tagging = max(full - startup, 1e-9)
        row = {
            "processes": processes,
            "threads_per_process": threads,
            "wall_s": round(full, 2),
            "startup_s": round(startup, 2),
            "images_per_s": round(args.images / tagging, 3),
            "images_per_s_per_process": round(args.images / tagging / processes, 3),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    report = {
        "model": str(model),
        "images": args.images,
        "batch_size": args.batch_size,
        "cores": args.cores,
        "machine": platform.processor() or platform.machine(),
        "load_average": os.getloadavg(),
        "rows": rows,
    }
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
