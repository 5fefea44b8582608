# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""Timing and memory helpers: wall time in interleaved rounds (a load change on a shared machine affects every
candidate alike), peak resident memory from the kernel's high-water mark, and the machine's description."""

from __future__ import annotations

import gc
import os
import platform
import re
import statistics
import time
from pathlib import Path

import torch


def _proc_status_kib(field: str) -> int | None:
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    match = re.search(rf"^{field}:\s+(\d+)\s+kB", text, re.MULTILINE)
    return int(match.group(1)) if match else None


def _reset_peak_rss() -> bool:
    """Reset the kernel's resident-set high-water mark (VmHWM) of this process (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def _release_freed_memory() -> None:
    """Give memory freed by earlier steps back to the system (glibc keeps it otherwise, hiding later peaks)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class PeakMemory:
    """Peak RSS reached inside the block, above the RSS at its start (MiB); torch's CPU allocator is malloc-based,
    so tracemalloc would not see it, but the kernel's VmHWM does."""

    def __enter__(self):
        gc.collect()
        _release_freed_memory()
        self.start = _proc_status_kib("VmRSS")
        self.resettable = _reset_peak_rss()
        return self

    def __exit__(self, *exc):
        peak = _proc_status_kib("VmHWM")
        self.peak_mib = None if peak is None else peak / 1024
        self.above_start_mib = (
            None if (peak is None or self.start is None or not self.resettable) else (peak - self.start) / 1024
        )
        return False


def timed(fn, repeats: int, warmup: int = 1) -> dict:
    """Median and min wall time of `fn()` over `repeats` runs after `warmup` runs; peak RSS over all of them."""
    with PeakMemory() as memory:
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return {
        "median_s": statistics.median(times),
        "min_s": min(times),
        "runs": len(times),
        "peak_rss_mib": memory.peak_mib,
        "peak_rss_above_start_mib": memory.above_start_mib,
    }


def interleaved_timings(plan, repeats: int, log) -> dict:
    """Time every `(label, fn, images, is_baseline, warmup)` of `plan` in rounds (one run of each per round), so that
    a change of machine load during the run affects all of them alike. `fn` processes `images` images; per-image
    figures divide by that count.

    The first run of each entry measures its peak RSS: `warmup` when given (not timed: a batch-1 entry warms up on
    one image, then every timed run tags the same `images` images one at a time), else a run of `fn` that counts
    as the first sample (large batches already ran while computing the logits of every image). The baseline's
    large batch is slow and is run once."""
    samples, results = {}, {}
    for label, fn, _, _, warmup in plan:
        log(f"first run (peak memory) {label}")
        with PeakMemory() as memory:
            start = time.perf_counter()
            (warmup or fn)()
            elapsed = time.perf_counter() - start
        samples[label] = [] if warmup is not None else [elapsed]
        results[label] = {"peak_rss_mib": memory.peak_mib, "peak_rss_above_start_mib": memory.above_start_mib}
    for round_index in range(repeats):
        log(f"timing round {round_index + 1}/{repeats}")
        for label, fn, _, is_baseline, _ in plan:
            if len(samples[label]) >= (1 if is_baseline else repeats):
                continue
            start = time.perf_counter()
            fn()
            samples[label].append(time.perf_counter() - start)
    for label, _, images, _, _ in plan:
        runs = samples[label]
        results[label].update(
            median_s=statistics.median(runs), min_s=min(runs), runs=len(runs), images=images,
            per_image_s=statistics.median(runs) / images,
        )
    return results


def environment() -> dict:
    """The machine a result was measured on: the CPU model, PyTorch's vector capability and the CPU flags that decide
    which precisions run natively (AMX, AVX-512 BF16/VNNI, AVX2...), cores, threads and versions."""
    from transformers_ramplus.inference.precision import cpu_description, cpu_precision_support

    described = cpu_description()
    return {
        "cpu": described["cpu_model"] or "unknown",
        "machine": described["machine"],
        "cpu_capability": described["cpu_capability"],
        "cpu_flags": described["cpu_flags"],
        "cpu_precision_support": cpu_precision_support(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "load_average_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
