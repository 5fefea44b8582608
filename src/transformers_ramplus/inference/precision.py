# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""Which inference precision fits this machine: `precision="auto"` (the default of the pipeline, `ramplus tag`,
`tag_dataset` and `ramplus serve`) and the warning for an explicit precision that this CPU only emulates.

bf16 pays only where the hardware runs it: on an Intel Xeon with AMX it is ~3x faster than fp32, on an AMD EPYC
without AVX-512 (Zen 3, AVX2 only) ~5x *slower* (measured at full size, batch 1, 2 threads: fp32 3.3 s, bf16 17.1 s
per image). int8 runs on one of two kernels (`cpu_int8_kernel`): oneDNN's with a bf16 rest of the model where the
CPU has VNNI/AMX (3.5x fp32 on that Xeon); fbgemm's with an fp32 rest where it has AVX2 only (oneDNN's int8 is
emulated there: more than 150 s per image); see docs/performance.md for both. So:

- **On a CPU**, `"auto"` reads the CPU's capabilities: `torch.backends.cpu.get_cpu_capability()` (the vector ISA
  PyTorch dispatches to: `"AVX2"`, `"AVX512"`...) and the flags of `/proc/cpuinfo` (`amx_bf16`, `amx_int8`,
  `avx512_bf16`, `avx512_vnni`, `avx512f`). bf16 matrix instructions (AMX or AVX-512 BF16): `"bf16"`. A CPU whose
  flags say it has none of them and no AVX-512 at all (AVX2 only): `"fp32"`. Where that is not enough (flags not
  readable, AVX-512 without BF16, an ARM CPU), a short measured probe (bf16 against fp32 products, well under a
  second) decides, and its result is cached per machine in the Hugging Face cache folder
  (`$HF_HOME/transformers_ramplus/precision_probe.json`, keyed by the CPU model and the torch version).
- **On a GPU**: `"bf16"` where `torch.cuda.is_bf16_supported()`, else `"fp32"`.
- `"auto"` never picks `"int8"`: it changes more tag decisions than bf16 does (see docs/performance.md); ask for it.

`$RAMPLUS_PRECISION` (`fp32`, `bf16`, `int8`), when set, is what `"auto"` means (e.g. fp32 for reproducible results
on every machine). One log line (logger `transformers_ramplus.inference.precision`, level INFO) says what was chosen
and why. An
explicit `"bf16"` or `"int8"` on a CPU that emulates it runs, and warns once per process with the expected slowdown
and the better choice (`warn_if_emulated`).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import platform
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from ..models.ram_plus.modeling_ram_plus import FAST_INFERENCE_MODULE


logger = logging.getLogger(__name__)

# every precision a caller may ask for ("auto" resolves to one of the others)
PRECISION_CHOICES = ("auto", "fp32", "bf16", "int8")
# what "auto" resolves to when set (a deployment's or a test run's fixed choice)
PRECISION_ENV = "RAMPLUS_PRECISION"

# the CPU flags that matter (Linux /proc/cpuinfo names)
RELEVANT_FLAGS = ("amx_bf16", "amx_int8", "amx_tile", "avx512_bf16", "avx512_vnni", "avx_vnni", "avx512f", "avx2", "fma")

# measured slowdowns against fp32 on a CPU without bf16/int8 instructions (AMD EPYC Zen 3, AVX2 only, full size,
# batch 1, 2 threads: fp32 3.30 s, bf16 17.1 s, oneDNN's int8 more than 150 s per image; see docs/performance.md).
# int8 is emulated only where fbgemm's kernel is missing too (`cpu_precision_support`).
EMULATED_SLOWDOWN = {"bf16": "about 5x", "int8": "more than 45x (hundreds of times per product)"}

# the probe: bf16 must beat fp32 by this factor to be chosen
PROBE_MIN_SPEEDUP = 1.2
PROBE_CACHE_NAME = "precision_probe.json"


@dataclass(frozen=True)
class PrecisionChoice:
    """What `"auto"` resolved to on a device, and why (the text of the log line)."""

    precision: str
    reason: str


# ------------------------------------------------------------------------------------------------ what the CPU has
@functools.cache
def _cpuinfo() -> tuple[str, frozenset | None]:
    """(model name, flags) from /proc/cpuinfo; flags None where it cannot be read (not Linux)."""
    name, flags = "", None
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                if key in ("model name", "cpu model") and not name:
                    name = value.strip()
                elif key in ("flags", "features") and flags is None:
                    flags = frozenset(value.split())
                if name and flags is not None:
                    break
    except OSError:
        pass
    return name or platform.processor() or platform.machine(), flags


def cpu_model() -> str:
    """This CPU's model name ("AMD EPYC 7763 64-Core Processor", ...), or the platform's description."""
    return _cpuinfo()[0]


def cpu_flags() -> frozenset | None:
    """This CPU's feature flags (from /proc/cpuinfo), or None where they cannot be read."""
    return _cpuinfo()[1]


def cpu_capability() -> str:
    """The vector ISA PyTorch dispatches to on this CPU (`torch.backends.cpu.get_cpu_capability()`: "AVX2",
    "AVX512", "DEFAULT"...)."""
    try:
        return str(torch.backends.cpu.get_cpu_capability())
    except Exception:  # older builds
        return "unknown"


def cpu_description(flags: frozenset | None = None, capability: str | None = None) -> dict:
    """The CPU, as benchmark results and the log line name it: model, PyTorch's capability, the relevant flags."""
    flags = cpu_flags() if flags is None else flags
    return {
        "cpu_model": cpu_model(),
        "machine": platform.machine(),
        "cpu_capability": cpu_capability() if capability is None else capability,
        "cpu_flags": None if flags is None else sorted(flag for flag in RELEVANT_FLAGS if flag in flags),
    }


def cpu_precision_support(flags: frozenset | None = None, capability: str | None = None) -> dict[str, str]:
    """How this CPU runs each precision, from its flags and PyTorch's capability alone: per precision `"native"`
    (matrix instructions for it), `"emulated"` (none: converted to and from fp32, slower than fp32) or `"unknown"`
    (a probe must tell). fp32 is always native."""
    flags = cpu_flags() if flags is None else flags
    capability = (cpu_capability() if capability is None else capability).upper()
    if flags is None:
        if capability.startswith("AVX2") or (capability == "DEFAULT" and platform.machine().lower() in ("x86_64", "amd64")):
            # PyTorch says: no AVX-512 at all (int8: fbgemm's kernel, see `cpu_int8_kernel`)
            return {"fp32": "native", "bf16": "emulated", "int8": "native" if fbgemm_int8_available() else "emulated"}
        return {"fp32": "native", "bf16": "unknown", "int8": "unknown"}
    if "amx_bf16" in flags or "avx512_bf16" in flags:
        bf16 = "native"
    elif "avx512f" in flags or capability.startswith("AVX512"):
        bf16 = "unknown"  # AVX-512 without BF16: oneDNN converts in registers; measure
    elif flags & {"avx2", "sse4_2", "avx"} or capability.startswith("AVX2"):
        bf16 = "emulated"  # x86 without AVX-512
    else:
        bf16 = "unknown"  # ARM and others: their bf16 ("bf16", "i8mm" features) runs through other kernels
    # int8 on oneDNN is bf16 plus oneDNN int8 products: it needs both; a CPU without VNNI (bf16 emulated) runs int8
    # on fbgemm (fp32 plus fbgemm's int8 products, AVX2) where this PyTorch build has it
    if bf16 == "native" and (flags & {"amx_int8", "avx512_vnni"}):
        int8 = "native"
    elif bf16 == "emulated":
        int8 = "native" if fbgemm_int8_available() else "emulated"
    else:
        int8 = "unknown" if bf16 == "unknown" else "emulated"
    return {"fp32": "native", "bf16": bf16, "int8": int8}


@functools.cache
def fbgemm_int8_available() -> bool:
    """Whether this torch build has fbgemm's dynamic int8 linear (`torch.ops.quantized.linear_dynamic`: x86 builds;
    its products run on AVX2, no VNNI needed)."""
    try:
        return "fbgemm" in torch.backends.quantized.supported_engines and hasattr(torch.ops.quantized, "linear_dynamic")
    except (AttributeError, RuntimeError):
        return False


def cpu_int8_kernel(flags: frozenset | None = None, capability: str | None = None) -> str:
    """Which kernel `precision="int8"` runs its products on, on this CPU: `"fbgemm"` where the CPU has no bf16/int8
    matrix instructions (AVX2 only: bf16 emulated) and this build has fbgemm; fbgemm's dynamic int8 linear (int8
    weights per output channel, the input quantized inside the kernel, fp32 in and out) with the rest of the
    model in fp32. Elsewhere `"onednn"`: oneDNN's int8 linear (VNNI / AMX) with the rest of the model in bf16."""
    flags = cpu_flags() if flags is None else flags
    capability = cpu_capability() if capability is None else capability
    if cpu_precision_support(flags, capability)["bf16"] == "emulated" and fbgemm_int8_available():
        return "fbgemm"
    return "onednn"


def onednn_signed_int8_inputs(flags: frozenset | None = None) -> bool:
    """Whether oneDNN's int8 linear takes signed (int8) input codes at speed on this CPU: only with AMX
    (`amx_int8`). Without it (AVX-512 VNNI: Intel Cascade/Ice Lake, AMD Zen 4) the products take uint8 input codes
    (VNNI's u8 x s8 instruction); signed ones fall back to a reference kernel there, measured 4,600x slower (14 s
    against 3 ms for a 576x768 by 768x3072 product on an AMD Zen 4). Unreadable flags: uint8, fast everywhere."""
    flags = cpu_flags() if flags is None else flags
    return bool(flags) and "amx_int8" in flags


# ------------------------------------------------------------------------------------------------ the probe
def probe_cache_path() -> Path:
    """Where probe results are cached: `$HF_HOME/transformers_ramplus/precision_probe.json`."""
    from huggingface_hub import constants

    return Path(constants.HF_HOME) / "transformers_ramplus" / PROBE_CACHE_NAME


def probe_key() -> str:
    """The cache key of this machine's probe: CPU model, flags digest and torch version."""
    flags = cpu_flags()
    relevant = ",".join(sorted(flag for flag in RELEVANT_FLAGS if flags and flag in flags))
    return f"{cpu_model()} [{relevant}] torch {torch.__version__} threads {torch.get_num_threads()}"


def _time_products(dtype: torch.dtype, rounds: int = 5) -> float:
    """The fastest of `rounds` runs of a few transformer-sized products (256 rows, 1024 -> 4096) in `dtype`."""
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(256, 1024, generator=generator).to(dtype)
    weight = torch.randn(4096, 1024, generator=generator).to(dtype)
    with torch.inference_mode():
        torch.nn.functional.linear(inputs, weight)  # warm-up (kernel selection, weight packing)
        best = float("inf")
        for _ in range(rounds):
            start = time.perf_counter()
            for _ in range(4):
                torch.nn.functional.linear(inputs, weight)
            best = min(best, time.perf_counter() - start)
    return best


def measure_bf16_speedup() -> float:
    """fp32 time over bf16 time of the probe's products on this CPU (above 1: bf16 is faster). Well under a second
    where bf16 runs natively; a few seconds where it is emulated."""
    fp32 = _time_products(torch.float32)
    bf16 = _time_products(torch.bfloat16)
    return fp32 / max(bf16, 1e-9)


def _read_probe_cache() -> dict:
    try:
        with open(probe_cache_path(), encoding="utf-8") as handle:
            data = json.load(handle)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def probed_bf16_speedup(refresh: bool = False) -> float:
    """The probe's bf16 speed-up on this machine: from the cache when this CPU and torch version were probed
    before, else measured now and cached (a cache that cannot be written is only logged)."""
    key = probe_key()
    cache = _read_probe_cache()
    entry = cache.get(key)
    if not refresh and isinstance(entry, dict) and isinstance(entry.get("bf16_speedup"), (int, float)):
        return float(entry["bf16_speedup"])
    speedup = measure_bf16_speedup()
    cache[key] = {"bf16_speedup": round(speedup, 3), "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    try:
        from ..io.atomic import atomic_write_json

        path = probe_cache_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, cache)
    except OSError as error:
        logger.info("precision probe: cannot cache the result in %s (%s)", probe_cache_path(), error)
    return speedup


# ------------------------------------------------------------------------------------------------ the choice
def _device_type(device) -> str:
    if device is None:
        return "cpu"
    if isinstance(device, int):
        return "cpu" if device < 0 else "cuda"
    return torch.device(device).type


def _short_cpu(flags, capability) -> str:
    described = cpu_description(flags, capability)
    shown = ", ".join(described["cpu_flags"] or []) or "no relevant flags"
    return f"{described['cpu_model'] or 'this CPU'} (PyTorch capability {described['cpu_capability']}; {shown})"


def choose_precision(device=None, flags: frozenset | None = None, capability: str | None = None, probe=None) -> PrecisionChoice:
    """What `precision="auto"` means on `device` (default: the CPU), with the reason. `flags`, `capability` and
    `probe` (a function returning bf16's speed-up over fp32) replace what this machine reports (tests)."""
    kind = _device_type(device)
    if kind == "cuda":
        if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return PrecisionChoice("bf16", f"precision auto: bf16 on {device} (the GPU supports bf16)")
        return PrecisionChoice("fp32", f"precision auto: fp32 on {device} (no bf16 support reported)")
    if kind != "cpu":
        return PrecisionChoice("fp32", f"precision auto: fp32 on {device} (bf16 is chosen on CPUs and CUDA GPUs only)")
    flags = cpu_flags() if flags is None else flags
    capability = cpu_capability() if capability is None else capability
    support = cpu_precision_support(flags, capability)
    where = _short_cpu(flags, capability)
    if support["bf16"] == "native":
        return PrecisionChoice("bf16", f"precision auto: bf16, {where} runs bf16 products natively")
    if support["bf16"] == "emulated":
        return PrecisionChoice(
            "fp32", f"precision auto: fp32, {where} has no bf16/int8 matrix instructions (bf16 would be {EMULATED_SLOWDOWN['bf16']} slower)"
        )
    speedup = (probe or probed_bf16_speedup)()
    if speedup >= PROBE_MIN_SPEEDUP:
        return PrecisionChoice("bf16", f"precision auto: bf16, measured {speedup:.2f}x fp32's speed on {where}")
    return PrecisionChoice("fp32", f"precision auto: fp32, bf16 measured at {speedup:.2f}x fp32's speed on {where}")


def resolve_precision(precision: str | None, device=None, model_dtype: torch.dtype | None = None) -> str | None:
    """The precision to run: `precision` itself when explicit (with `warn_if_emulated`), else (`None`/`"auto"`)
    `choose_precision(device)`, logged in one line. A model loaded in bf16 (`model_dtype`) keeps bf16 under
    `"auto"` (it was asked for; warned about where emulated); other dtypes (fp16) return None: the pipeline keeps the
    reference model."""
    if precision is not None and precision not in PRECISION_CHOICES:
        raise ValueError(f"`precision` must be one of {', '.join(map(repr, PRECISION_CHOICES))}, got {precision!r}")
    if precision not in (None, "auto"):
        warn_if_emulated(precision, device)
        return precision
    if model_dtype == torch.bfloat16:
        warn_if_emulated("bf16", device, why="the model was loaded in bfloat16")
        logger.info("precision auto: bf16 (the model was loaded in bfloat16)")
        return "bf16"
    if model_dtype is not None and model_dtype != torch.float32:
        return None
    forced = os.environ.get(PRECISION_ENV, "").strip().lower()
    if forced and forced != "auto":
        if forced not in PRECISION_CHOICES:
            raise ValueError(f"${PRECISION_ENV} must be one of {', '.join(map(repr, PRECISION_CHOICES))}, got {forced!r}")
        logger.info("precision auto: %s (set by $%s)", forced, PRECISION_ENV)
        warn_if_emulated(forced, device, why=f"${PRECISION_ENV}")
        return forced
    choice = choose_precision(device)
    logger.info(choice.reason)
    return choice.precision


_WARNED: set = set()


def warn_if_emulated(precision: str, device=None, flags: frozenset | None = None, capability: str | None = None, why: str | None = None) -> bool:
    """Warn once per process and precision when `precision` ("bf16", "int8") runs on a CPU that emulates it, with
    the expected slowdown and the better choice; whether it is emulated."""
    if precision not in ("bf16", "int8") or _device_type(device) != "cpu":
        return False
    flags = cpu_flags() if flags is None else flags
    capability = cpu_capability() if capability is None else capability
    support = cpu_precision_support(flags, capability)
    if support[precision] != "emulated":
        return False
    if precision not in _WARNED:
        _WARNED.add(precision)
        asked = f" ({why})" if why else ""
        warnings.warn(
            f'precision="{precision}"{asked} runs emulated on {_short_cpu(flags, capability)}: it has no '
            f"{'bf16' if precision == 'bf16' else 'bf16/int8 (VNNI, AMX)'} matrix instructions, so expect it "
            f'{EMULATED_SLOWDOWN[precision]} slower than "fp32" (measured on an AMD EPYC Zen 3, AVX2 only). Use '
            'precision="fp32" (what "auto" picks here)'
            + (
                "; for int8 on this CPU, the ONNX export under onnxruntime (`ramplus export-onnx --quantize int8`) "
                "runs its products 2-2.5x faster than fp32."
                if precision == "int8"
                else (
                    ', or precision="int8" (fbgemm\'s AVX2 kernel here: faster than fp32, more tag decisions change).'
                    if support["int8"] == "native"
                    else "."
                )
            ),
            UserWarning,
            stacklevel=3,
        )
    return True


def applied_precision(model) -> str | None:
    """The precision `enable_fast_inference` gave `model` (or the base model of a PEFT model), else None."""
    target = model.get_base_model() if hasattr(model, "get_base_model") else model
    fast = getattr(target, "_modules", {}).get(FAST_INFERENCE_MODULE)
    return getattr(fast, "precision", None)


__all__ = [
    "EMULATED_SLOWDOWN",
    "PRECISION_CHOICES",
    "PRECISION_ENV",
    "PrecisionChoice",
    "applied_precision",
    "choose_precision",
    "cpu_capability",
    "cpu_description",
    "cpu_flags",
    "cpu_int8_kernel",
    "cpu_model",
    "cpu_precision_support",
    "fbgemm_int8_available",
    "measure_bf16_speedup",
    "probe_cache_path",
    "probed_bf16_speedup",
    "resolve_precision",
    "warn_if_emulated",
]
