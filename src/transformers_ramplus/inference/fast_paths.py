# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""Faster RAM++ inference, applied by one call: `enable_fast_inference(model, precision="fp32")`.

The reference model (`modeling_ram_plus.py`) computes RAM++ plainly. This module adds, for inference only:

- **oneDNN fp32 linear kernels**: on CPUs other than Intel's, fp32 CPU `F.linear` calls made without autograd run
  through oneDNN's linear kernel instead of the default BLAS (the same fp32 arithmetic up to summation order, ~1e-6).
  Where the default BLAS (MKL) is slow for fp32 (an AMD EPYC: 179 GFLOP/s through `addmm`, 307 through oneDNN) the
  whole model, Swin encoder included, runs faster; on an Intel Xeon MKL is as fast and the routing cost 4% end to end
  (`onednn_routing_by_default`).
- **Folded cross-attention**: per image, the decoder's query and output projections are folded into the (few) image
  tokens. With K_h, V_h the per-head keys and values of the N image tokens, the scores of head h are
  `(x Wq_h^T + bq_h) K_h^T = x (K_h Wq_h)^T + K_h bq_h` and the projected output is `sum_h P_h (V_h Wo_h^T) + bo`:
  exact algebra that replaces two (tags x H x H) products by (tags x H x heads*N) ones (heads*N = 580 < H = 768 at
  full size), with no per-head transposes of the (batch, tags, H) activations. For one image both products are plain
  linear maps whose weights are that image's folded keys and values, so they run on the linear kernel.
- **Blocking**: on the CPU, large batches are encoded in blocks of `VISION_CHUNK_IMAGES` images (the Swin encoder's
  per-image cost grows with the batch as its activations leave the caches. Swin-L per image at batch 8 on the 2-core
  Xeon of the README, in blocks of 1 / 2 / 4 images: fp32 0.883 / 0.883 / 0.917 s, bf16 0.254 / 0.302 / 0.262 s,
  int8 0.239 / 0.267 / 0.249 s; earlier on an AMD EPYC, fp32 0.80 s unblocked against 0.70 in blocks of 2 to 4). On
  a GPU the whole batch is encoded at once. The decoder runs per image in near-equal blocks of tags whose feed-forward
  activation (rows x intermediate size) holds at most `DECODER_BLOCK_BYTES`, sharing that image's folded keys and
  values. Full-size decoder per image on the development machine, fp32: 0.405 s in blocks of 1024 rows against
  0.437 in blocks of 2304; bf16: 0.124 s in 2 or 3 near-equal blocks against 0.149 in blocks of 1024 (whose
  remainder is a block of 489) and 0.167 in one block; int8 likewise 0.106 against 0.132. `DECODER_CHUNK_ROWS`, when
  set, caps the rows per block instead.
- **Precision**: `"bf16"` casts the weights to bfloat16 (about twice as fast on CPUs with bf16 matrix units; the
  description softmax and attention softmax stay in fp32). `"int8"` runs the big linears (`int8_linear_targets`) as
  int8 products (`Int8DynamicLinear`: int8 weights per output channel, inputs quantized per call per tensor) on one
  of two kernels (`int8_kernel`): on CPUs with int8 matrix instructions (VNNI, AMX) oneDNN's int8 linear, with the
  rest of the model in bf16; on CPUs without them (AVX2 only, such as an AMD EPYC Zen 3, where bf16 and oneDNN's
  int8 are emulated) fbgemm's dynamic int8 linear, which quantizes its input inside the kernel, with the rest of the
  model in fp32.

How they are installed: `enable_fast_inference` replaces submodules, each new one built over the Parameters of the
one it replaces (the state dict keeps its keys and tensors): every Swin block becomes a `FastSwinLayer`, and with
`"int8"` the selected linears become `Int8DynamicLinear`s. It adds a `fast_inference` submodule
(`RamPlusFastInference`, no weights) that the model's `get_image_embeds`, `description_similarity` and `tag_logits`
consult (`RamPlusModel._fast_inference`), and a forward pre-hook and hook on the model (public torch API) that open
the oneDNN kernels around a call and mark the calls that record hidden states or attention weights. The model's own
class, and every other module's, stay as they are.

The fast model keeps the reference model's class, call signature, outputs and parameters. It runs the reference
computation whenever the fast paths do not apply: in training mode, with autograd, while `torch.compile`/
`torch.export`/the ONNX exporter trace it, and when hidden states or attention weights are requested.
`save_pretrained` writes the standard checkpoint (a bf16 model writes bf16 weights).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import math
import threading
import warnings

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode
from transformers.models.swin.modeling_swin import SwinLayer

from ..models.ram_plus.modeling_ram_plus import FAST_INFERENCE_MODULE, RamPlusCrossAttention, RamPlusModel
from .precision import cpu_int8_kernel, fbgemm_int8_available, onednn_signed_int8_inputs


# the precisions and their dtypes (int8's depends on its kernel: `precision_dtype`)
PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "int8": torch.bfloat16}

# the kernels of precision="int8"'s products, and the dtype of the rest of the model around each
INT8_KERNELS = {"onednn": torch.bfloat16, "fbgemm": torch.float32}
# None: by this CPU (`precision.cpu_int8_kernel`: fbgemm where there are no int8/bf16 matrix instructions, else
# oneDNN); "onednn" or "fbgemm" forces one (tests and measurements compare them)
INT8_KERNEL: str | None = None
# fbgemm on AVX2 (no VNNI) sums pairs of u8 x s8 products in 16 bits, saturating: with 8-bit input codes
# (0..255, no `reduce_range`) the weights take 7-bit codes (-63..63, per output channel), so that a pair stays
# within 255 * 63 * 2 = 32130 < 32767. Measured at full size (docs/performance.md): 8-bit weights with 7-bit inputs
# (PyTorch's default for this CPU) flip 2-3x more tag decisions; 8-bit both ways saturates (worse still).
FBGEMM_REDUCE_RANGE = False
# oneDNN's int8 input codes: signed (int8, symmetric around 0) only where the CPU runs them at speed (AMX), else
# uint8 (`precision.onednn_signed_int8_inputs`); True/False forces one for int8 linears made afterwards
INT8_SIGNED_INPUTS: bool | None = None
FBGEMM_WEIGHT_MAX = 63
# The second MLP / feed-forward layers in int8 too (`int8_linear_targets`), for int8 models made afterwards. None: by
# the CPU (`int8_second_layers`): on where oneDNN takes uint8 input codes (VNNI without AMX, e.g. AMD Zen 4), off on
# AMX and on fbgemm; True/False forces it. Measured (docs/performance.md): on an AMD Zen 4 int8 ~1.3x -> ~1.5x bf16's
# speed, identical decisions against fp32 99.44% -> 99.27% (32 images, per-tag thresholds); on fbgemm (AVX2) 97.7%
# against 99.1%; on AMX slower (measured before the faster input quantization).
INT8_SECOND_LAYERS: bool | None = None
# ... and only those with at least this many outputs: a second layer's input is 4x wider than its output, and its
# quantization costs more than the int8 product saves where the output is narrow (measured: Swin-L's first stage,
# 192 outputs, was slower in int8; from its second stage on, 384 and more, faster)
INT8_SECOND_LAYER_MIN_OUTPUTS = 384

# images per block of the image encoder
VISION_CHUNK_IMAGES = 1
# the decoder runs one image at a time, in near-equal blocks of tags whose feed-forward activation holds at most
# this many bytes (fp32: 1147 rows of 3072; bf16: 2293), or at most DECODER_CHUNK_ROWS rows when that is set
DECODER_BLOCK_BYTES = 14 * 2**20
DECODER_CHUNK_ROWS: int | None = None
# Which fast paths apply off the CPU (a GPU): the fast Swin blocks (one gather instead of roll + partition, a cached
# bias) and the folded per-image decoder. The per-image decoder is blocked for CPU caches; on a GPU it launches
# small kernels per image and tag block, so by default the reference decoder runs there, batched over the images
# (SDPA cross-attention). Measured on an H200 (benchmarks/bench_gpu.py, docs/performance.md).
ACCELERATOR_FAST_SWIN = True
ACCELERATOR_FOLDED_DECODER = False


def int8_kernel() -> str:
    """The kernel `precision="int8"` runs its products on here: `INT8_KERNEL` when set, else
    `precision.cpu_int8_kernel()` ("fbgemm" on a CPU without VNNI/AMX, "onednn" elsewhere)."""
    if INT8_KERNEL is not None:
        if INT8_KERNEL not in INT8_KERNELS:
            raise ValueError(f"INT8_KERNEL must be None or one of {', '.join(map(repr, INT8_KERNELS))}, got {INT8_KERNEL!r}")
        return INT8_KERNEL
    return cpu_int8_kernel()


def int8_signed_inputs() -> bool:
    """Whether oneDNN int8 linears made now quantize inputs spread around 0 (layer-norm outputs) to signed codes:
    `INT8_SIGNED_INPUTS` when set, else only on a CPU with AMX (`precision.onednn_signed_int8_inputs`)."""
    return onednn_signed_int8_inputs() if INT8_SIGNED_INPUTS is None else bool(INT8_SIGNED_INPUTS)


def int8_second_layers(kernel: str | None = None) -> bool:
    """Whether int8 models made now on `kernel` (default `int8_kernel()`) run the second MLP / feed-forward layers in
    int8 too: `INT8_SECOND_LAYERS` when set, else only on oneDNN with uint8 input codes (a CPU with VNNI and no AMX,
    where they pay without costing the 99% of identical decisions; see `int8_linear_targets`)."""
    if INT8_SECOND_LAYERS is not None:
        return bool(INT8_SECOND_LAYERS)
    return (kernel or int8_kernel()) == "onednn" and not int8_signed_inputs()


def int8_available(kernel: str | None = None) -> bool:
    """Whether this torch build has `kernel`'s int8 linear (default: the kernel `int8_kernel()` picks here)."""
    kernel = kernel or int8_kernel()
    return fbgemm_int8_available() if kernel == "fbgemm" else onednn_int8_available()


def precision_dtype(precision: str, kernel: str | None = None) -> torch.dtype:
    """The dtype of a fast model's weights and activations at `precision`: fp32, bf16; for int8, the dtype around
    its int8 products on `kernel` (default `int8_kernel()`): bf16 on oneDNN, fp32 on fbgemm."""
    if precision == "int8":
        return INT8_KERNELS[kernel or int8_kernel()]
    return PRECISIONS[precision]


def decoder_blocks(num_rows: int, intermediate_size: int, element_size: int) -> int:
    """How many near-equal blocks the decoder splits `num_rows` tag queries of one image into."""
    rows = DECODER_CHUNK_ROWS or max(1, DECODER_BLOCK_BYTES // max(1, intermediate_size * element_size))
    return max(1, math.ceil(num_rows / rows))


# route fp32 CPU linears to oneDNN (see `OneDnnLinearMode`): None = `onednn_routing_by_default()`;
# `onednn_routing(True/False)` forces it inside a block, for measurements
_ONEDNN_ROUTING: dict = {"enabled": None}


@functools.cache
def cpu_vendor() -> str:
    """The x86 vendor string of this CPU ("GenuineIntel", "AuthenticAMD", ...), or "" where it cannot be read."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def onednn_routing_by_default() -> bool:
    """Whether fp32 linears go to oneDNN when nothing forces it: on every CPU but Intel's, whose default BLAS (MKL)
    is as fast for fp32 (measured: Intel Xeon, the routing 4% slower end to end; AMD EPYC, 1.7x faster GEMMs)."""
    return cpu_vendor() != "GenuineIntel"


def _routing_enabled() -> bool:
    forced = _ONEDNN_ROUTING["enabled"]
    return onednn_routing_by_default() if forced is None else forced


@contextlib.contextmanager
def onednn_routing(enabled: bool):
    """Force the oneDNN routing of fp32 linears on or off inside the block (the benchmark measures what it buys)."""
    previous, _ONEDNN_ROUTING["enabled"] = _ONEDNN_ROUTING["enabled"], bool(enabled)
    try:
        yield
    finally:
        _ONEDNN_ROUTING["enabled"] = previous


def _tensor_version(tensor: torch.Tensor) -> int:
    """The in-place version counter of `tensor`, a cache key: -1 for an inference tensor (made under
    `torch.inference_mode()`, e.g. a model loaded there), which has none."""
    return -1 if tensor.is_inference() else tensor._version


def _is_tracing() -> bool:
    return torch.compiler.is_compiling() or torch.jit.is_tracing()


# ------------------------------------------------------------------------------------------------- oneDNN kernels
@functools.cache
def onednn_linear_available() -> bool:
    """Whether this torch build has oneDNN's fused linear kernel."""
    try:
        return bool(torch.backends.mkldnn.is_available()) and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    except (AttributeError, RuntimeError):
        return False


class OneDnnLinearMode(TorchFunctionMode):
    """Routes contiguous fp32 CPU `F.linear` calls to oneDNN's linear kernel (used without autograd only)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.linear and len(args) >= 2 and not kwargs:
            inputs, weight = args[0], args[1]
            bias = args[2] if len(args) > 2 else None
            if (
                inputs.dtype == torch.float32
                and weight.dtype == torch.float32
                and inputs.device.type == "cpu"
                and inputs.dim() >= 2
                and inputs.is_contiguous()
                and weight.is_contiguous()
                and (bias is None or bias.dtype == torch.float32)
            ):
                return torch.ops.mkldnn._linear_pointwise(inputs, weight, bias, "none", [], "")
        return func(*args, **kwargs)


# ---------------------------------------------------------------------------------------------------- int8 linears
@functools.cache
def onednn_int8_available() -> bool:
    """Whether this torch build has oneDNN's int8 linear kernel (x86 CPU builds: VNNI / AMX int8)."""
    try:
        if not torch.backends.mkldnn.is_available():
            return False
        weight = torch.ones(8, 8, dtype=torch.int8)
        packed = torch.ops.onednn.qlinear_prepack(weight, None)
        torch.ops.onednn.qlinear_pointwise(
            torch.ones(2, 8, dtype=torch.uint8), 1.0, 0, packed, torch.ones(8), torch.zeros(8, dtype=torch.int32),
            None, 1.0, 0, torch.float32, "none", [], "",
        )
        return True
    except (AttributeError, RuntimeError, NotImplementedError):
        return False


# Adding 1.5 * 2**23 to a float32 of magnitude below 2**22 rounds it to the nearest integer (ties to even) and leaves
# that integer in the low bits of the sum: its bits minus _ROUNDING_BITS are the integer, an int32.
_ROUNDING_MAGIC = 12582912.0
_ROUNDING_BITS = 0x4B400000


def quantize_activation(inputs: torch.Tensor, symmetric: bool):
    """Dynamic per-tensor quantization of a 2-D float tensor: `(codes, scale, zero_point)` with
    `inputs ~= (codes - zero_point) * scale` (to half a step: `codes = round(inputs / scale) + zero_point`, computed
    in float32), or None when it holds non-finite values.

    `symmetric`: int8 codes in [-127, 127] around 0 (for inputs spread around 0, such as layer-norm outputs); else
    uint8 codes over [min(inputs, 0), max(inputs, 0)] in 254 steps, the zero point rounded up so that no code
    leaves [0, 255] (one more bit for one-sided inputs, such as GELU outputs).

    Four cheap passes after the range: a float32 copy, its scaling with the rounding constant added in one
    operation (rounding by float32 addition, see `_ROUNDING_MAGIC`), the integers taken from its bits, and their
    narrowing. On bf16 inputs this is about 3x faster than rounding and clamping in bf16, whose float-to-uint8
    conversion and clamp are slow on the CPU, and exact where bf16's intermediate roundings were not (measured:
    docs/performance.md)."""
    low, high = torch.aminmax(inputs)
    low, high = min(low.item(), 0.0), max(high.item(), 0.0)
    if not (math.isfinite(low) and math.isfinite(high)):
        return None
    if symmetric:
        scale = max(-low, high) / 127.0 or 1.0  # |inputs / scale| <= 127: no clamp needed
        zero_point, code_dtype = 0, torch.int8
    else:
        scale = (high - low) / 254.0 or 1.0
        # inputs / scale + zero_point lies in [0, 255) up to float32 rounding: no clamp needed
        zero_point, code_dtype = min(255, max(0, math.ceil(-low / scale))), torch.uint8
    offset = torch.tensor(_ROUNDING_MAGIC + zero_point, dtype=torch.float32)
    if inputs.dtype == torch.float32:
        scaled = torch.add(offset, inputs, alpha=1.0 / scale)
    else:  # one pass fewer than a multiplication and an addition
        scaled = inputs.float()
        torch.add(offset, scaled, alpha=1.0 / scale, out=scaled)
    return scaled.view(torch.int32).sub_(_ROUNDING_BITS).to(code_dtype), scale, zero_point


class Int8DynamicLinear(nn.Linear):
    """An `nn.Linear` whose inference runs as int8 x int8: the weight quantized per output channel (symmetric int8,
    prepacked once), the input quantized per call over its own range (per tensor), the product accumulated in int32
    and rescaled to the input's dtype, with the bias. On one of two kernels (`int8_kernel()` when it is made):

    - `"onednn"`: oneDNN's int8 linear (VNNI / AMX on x86); the input is quantized here (`quantize_activation`), once
      for a Swin attention's query, key and value projections, and a GELU after it can be fused into the kernel;
    - `"fbgemm"`: fbgemm's dynamic int8 linear (`torch.ops.quantized.linear_dynamic`, AVX2), which quantizes its fp32
      input inside the kernel (uint8 codes over the input's range) and returns fp32; its weight codes are 7-bit
      (`FBGEMM_WEIGHT_MAX`), so that AVX2's saturating 16-bit pair sums cannot overflow.

    Its `weight` and `bias` are the float Parameters of the linear it was made from (`from_linear`: the same
    objects, so the state dict, `save_pretrained` and training mode see the linear's own weights); with autograd, in
    training mode and while tracing, `forward` is the float linear. `enable_fast_inference(model, precision="int8")`
    puts one in place of each of the selected linears (`int8_linear_targets`)."""

    int8_symmetric_inputs: bool = True

    @classmethod
    def from_linear(cls, linear: nn.Linear, kernel: str | None = None) -> Int8DynamicLinear:
        """An int8 linear over `linear`'s own `weight` and `bias` Parameters (shared, not copied), prepacked for
        `kernel` (default `int8_kernel()`)."""
        int8 = cls(linear.in_features, linear.out_features, bias=linear.bias is not None, device="meta")
        int8.weight, int8.bias = linear.weight, linear.bias
        int8._int8_kernel = kernel or int8_kernel()
        int8._signed_input_codes()  # chosen now, with the kernel
        int8.train(linear.training)
        int8._int8_prepare()
        return int8

    def to_linear(self) -> nn.Linear:
        """The plain `nn.Linear` over the same `weight` and `bias` Parameters."""
        linear = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None, device="meta")
        linear.weight, linear.bias = self.weight, self.bias
        return linear.train(self.training)

    @property
    def int8_kernel(self) -> str:
        """The kernel this linear's int8 products run on ("onednn" or "fbgemm"), chosen when it was made."""
        if "_int8_kernel" not in self.__dict__:
            self._int8_kernel = int8_kernel()
        return self._int8_kernel

    @property
    def int8_input_codes(self) -> str:
        """How oneDNN's products take this linear's inputs: "int8" (symmetric around 0; with AMX) or "uint8" (over the
        input's range: one-sided inputs such as GELU outputs, and every input on a CPU without AMX). fbgemm
        quantizes inside its kernel (uint8)."""
        return "int8" if self.int8_symmetric_inputs and self._signed_input_codes() else "uint8"

    def _signed_input_codes(self) -> bool:
        """Whether oneDNN may take signed input codes from this linear: decided once (`int8_signed_inputs()`),
        then kept, through copies and pickles too."""
        if "_int8_signed" not in self.__dict__:
            self._int8_signed = self.int8_kernel == "onednn" and int8_signed_inputs()
        return self._int8_signed

    def _int8_prepare(self):
        weight = self.weight.detach()
        fbgemm = self.int8_kernel == "fbgemm"
        scales = weight.abs().amax(dim=1).float().clamp(min=1e-12) / (FBGEMM_WEIGHT_MAX if fbgemm else 127.0)
        if fbgemm:
            self._int8_weight = _fbgemm_prepack(weight, scales, self.bias)
            return
        codes = torch.empty(weight.shape, dtype=torch.int8)
        for rows in range(0, weight.shape[0], 16384):  # in blocks of rows: no float32 copy of a large matrix
            block = weight[rows : rows + 16384].float() / scales[rows : rows + 16384, None]
            codes[rows : rows + 16384] = block.round_().clamp_(-127, 127).to(torch.int8)
        self._int8_weight = torch.ops.onednn.qlinear_prepack(codes, None)
        self._int8_scales = scales
        self._int8_zero_points = torch.zeros_like(scales, dtype=torch.int32)
        self._int8_bias = None if self.bias is None else self.bias.detach().float()

    def __getstate__(self):  # the prepacked weight is an opaque oneDNN tensor: rebuilt after copying/unpickling
        state = super().__getstate__()
        state.pop("_int8_weight", None)
        return state

    def _float_forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return F.linear(inputs, self.weight.to(inputs.dtype), None if self.bias is None else self.bias.to(inputs.dtype))

    def _int8_product(self, inputs, quantized, post_op: str = "none", output_dtype=None) -> torch.Tensor:
        if getattr(self, "_int8_weight", None) is None:
            self._int8_prepare()
        if self.int8_kernel == "fbgemm":
            flat = inputs.reshape(-1, self.in_features)
            output = torch.ops.quantized.linear_dynamic(flat.float().contiguous(), self._int8_weight, FBGEMM_REDUCE_RANGE)
            if post_op == "gelu":
                output = F.gelu(output)
            return output.to(output_dtype or inputs.dtype).view(*inputs.shape[:-1], self.out_features)
        codes, scale, zero_point = quantized
        output = torch.ops.onednn.qlinear_pointwise(
            codes, scale, zero_point, self._int8_weight, self._int8_scales, self._int8_zero_points, self._int8_bias,
            1.0, 0, output_dtype or inputs.dtype, post_op, [], "none" if post_op == "gelu" else "",
        )
        return output.view(*inputs.shape[:-1], self.out_features)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if (
            self.training
            or torch.is_grad_enabled()
            or _is_tracing()
            or inputs.device.type != "cpu"
            or inputs.dtype not in (torch.float32, torch.bfloat16)
            or inputs.dim() < 2
            or inputs.numel() == 0
        ):
            return self._float_forward(inputs)
        if self.int8_kernel == "fbgemm":  # quantized inside the kernel: nothing to share
            output = self.int8_forward(inputs)
            return self._float_forward(inputs) if output is None else output
        shared = getattr(self, "_int8_shared_input", None)  # the query/key/value projections of one attention
        if shared is not None and self._int8_shared_role != "first" and shared.get("source") is inputs:
            quantized = shared["quantized"]  # the same input, quantized once for the three projections
        else:
            quantized = quantize_activation(inputs.reshape(-1, self.in_features), self.int8_input_codes == "int8")
        if shared is not None:
            if self._int8_shared_role == "last":
                shared.clear()
            else:
                shared.update(source=inputs, quantized=quantized)
        if quantized is None:  # inf/nan inputs: the float linear propagates them as the reference does
            return self._float_forward(inputs)
        return self._int8_product(inputs, quantized)

    def int8_forward(self, inputs: torch.Tensor, post_op: str = "none", output_dtype=None) -> torch.Tensor | None:
        """The int8 product of `inputs` (2-D or more, bf16/fp32, CPU, inference), with oneDNN's `post_op` fused
        ("none", or "gelu": the exact erf GELU; on fbgemm applied after the kernel), in `output_dtype` (default: the
        inputs'); None when the inputs hold inf/nan (the caller runs the float path)."""
        if self.int8_kernel == "fbgemm":
            if not bool(torch.isfinite(inputs.sum())):  # one pass; inf/nan would spoil every row's quantization
                return None
            return self._int8_product(inputs, None, post_op, output_dtype)
        quantized = quantize_activation(inputs.reshape(-1, self.in_features), self.int8_input_codes == "int8")
        return None if quantized is None else self._int8_product(inputs, quantized, post_op, output_dtype)


def _fbgemm_prepack(weight: torch.Tensor, scales: torch.Tensor, bias: torch.Tensor | None):
    """fbgemm's packed int8 weight (per output channel, symmetric, `scales`) and fp32 bias. The quantized weight
    tensor it is packed from is made once here (PyTorch 2.13 deprecates creating quantized tensors: its warning is
    silenced for this call only; the products themselves take plain fp32 tensors)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*quantized tensor creation.*", category=UserWarning)
        quantized = torch.quantize_per_channel(
            weight.float(), scales.double(), torch.zeros(scales.shape, dtype=torch.long), 0, torch.qint8
        )
        return torch.ops.quantized.linear_prepack(quantized, None if bias is None else bias.detach().float())


class Int8DynamicLinearOneSided(Int8DynamicLinear):
    """`Int8DynamicLinear` for inputs that are mostly on one side of 0 (GELU outputs): uint8 input codes."""

    int8_symmetric_inputs = False


def int8_linear_targets(model, kernel: str | None = None) -> dict[str, tuple[nn.Module, str]]:
    """The linears that `precision="int8"` runs in int8 on `kernel` (default `int8_kernel()`), by qualified name (as
    `(owner module, attribute)`): in every Swin stage, each block's query/key/value projections (one int8 product on
    their shared input in the fast path), output projection and first MLP layer (with the GELU fused into the int8
    kernel); in the tag decoder, the first feed-forward layer of each layer; and where `int8_second_layers(kernel)`
    (by default: oneDNN with uint8 input codes, a CPU with VNNI and no AMX; `INT8_SECOND_LAYERS` forces it), the Swin
    blocks' second MLP layers and the decoder's second feed-forward layers too, those with at least
    `INT8_SECOND_LAYER_MIN_OUTPUTS` outputs (Swin-L: from its second stage on). (The description re-weighting's
    similarity product also runs in int8: see `RamPlusFastInference.description_similarity`.)

    Kept in float (bf16 on oneDNN, fp32 on fbgemm), by measurement (see docs/performance.md): the second layers on
    fbgemm (with them 97.7% of the decisions stay those of fp32 instead of 99.1%) and on AMX (slower there), the
    patch embedding and merging, the image and query projections, the decoder's cross-attention (folded per image)
    and the classifier."""
    return _int8_selection(model, include_int8=False, kernel=kernel)


def _int8_selection(model, include_int8: bool, kernel: str | None = None) -> dict[str, tuple[nn.Module, str]]:
    """`int8_linear_targets`, and with `include_int8` the selected linears that are int8 already too."""
    second = int8_second_layers(kernel)
    swin_linears = INT8_SWIN_LINEARS + (INT8_SWIN_SECOND_LINEARS if second else ())
    decoder_linears = INT8_DECODER_LINEARS + (INT8_DECODER_SECOND_LINEARS if second else ())
    targets = {}
    stages = model.vision_model.encoder.layers
    for stage_index, stage in enumerate(stages):
        if stage_index in INT8_SKIP_STAGES or stage_index - len(stages) in INT8_SKIP_STAGES:
            continue
        for block_index, block in enumerate(stage.blocks):
            prefix = f"vision_model.encoder.layers.{stage_index}.blocks.{block_index}"
            attention = block.attention
            for name in swin_linears:
                if name.startswith("mlp."):
                    targets[f"{prefix}.{name}"] = (block.mlp, name[4:])
                else:
                    targets[f"{prefix}.attention.{name}"] = (attention, name)
    for layer_index, layer in enumerate(model.decoder.layers):
        for name in decoder_linears:
            targets[f"decoder.layers.{layer_index}.{name}"] = (layer, name)
    kinds = (nn.Linear, Int8DynamicLinear, Int8DynamicLinearOneSided) if include_int8 else (nn.Linear,)
    return {
        name: (owner, attr)
        for name, (owner, attr) in targets.items()
        if type(getattr(owner, attr)) in kinds
        and not (_one_sided(name) and getattr(owner, attr).out_features < INT8_SECOND_LAYER_MIN_OUTPUTS)
    }


# which linears precision="int8" quantizes (see `int8_linear_targets`; chosen by measurement, see the README)
INT8_SKIP_STAGES = ()
INT8_SWIN_LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "mlp.fc1")
INT8_DECODER_LINEARS = ("fc1",)
INT8_SWIN_SECOND_LINEARS = ("mlp.fc2",)  # where int8_second_layers()
INT8_DECODER_SECOND_LINEARS = ("fc2",)
# inputs of the second layers come out of a GELU (one-sided): uint8 codes
INT8_ONE_SIDED = INT8_SWIN_SECOND_LINEARS + INT8_DECODER_SECOND_LINEARS


def _one_sided(name: str) -> bool:
    """Whether the linear at qualified `name` is one of the second layers (`INT8_ONE_SIDED`: inputs out of a GELU)."""
    return any(name.endswith("." + suffix) for suffix in INT8_ONE_SIDED)


def _quantize_linears(model, kernel: str) -> None:
    """Put an `Int8DynamicLinear` on `kernel` in place of each of `int8_linear_targets(model)`."""
    targets = int8_linear_targets(model, kernel)
    for name, (owner, attr) in targets.items():
        int8_class = Int8DynamicLinearOneSided if _one_sided(name) else Int8DynamicLinear
        setattr(owner, attr, int8_class.from_linear(getattr(owner, attr), kernel))
    # a Swin attention passes one tensor to its query, key and value projections: quantize it once for the three
    for name, (owner, attr) in targets.items():
        if attr == "q_proj" and all(f"{name[:-6]}{other}" in targets for other in ("k_proj", "v_proj")):
            shared: dict = {}
            for other, role in (("q_proj", "first"), ("k_proj", "middle"), ("v_proj", "last")):
                linear = getattr(owner, other)
                linear._int8_shared_input, linear._int8_shared_role = shared, role


def _dequantize_linears(model) -> None:
    """Put the plain `nn.Linear` back in place of each `Int8DynamicLinear` (same Parameters), dropping the int8
    products built from them."""
    for name, module in list(model.named_modules()):
        if isinstance(module, Int8DynamicLinear):
            owner_name, _, attr = name.rpartition(".")
            setattr(model.get_submodule(owner_name), attr, module.to_linear())
        elif isinstance(module, (FastSwinLayer, RamPlusFastInference)):
            module.__dict__.pop("_int8_qkv", None)
            module.__dict__.pop("_int8_vocabulary", None)


def _int8_linears(model):
    return [module for module in model.modules() if isinstance(module, Int8DynamicLinear)]


# -------------------------------------------------------------------------------------------- folded attention
def fold_image(attention: RamPlusCrossAttention, image_embeds: torch.Tensor):
    """The image side of the folded cross-attention of `attention` for `image_embeds` `(B, N, text_embed_dim)`:
    `folded_keys` `(B, heads*N, H)`, `score_bias` `(B, heads*N)` or None, `folded_values` `(B, H, heads*N)`."""
    batch_size, num_tokens, _ = image_embeds.shape
    heads, head_dim = attention.num_heads, attention.head_dim
    q_proj, o_proj = attention.q_proj, attention.o_proj
    key = attention.k_proj(image_embeds).view(batch_size, num_tokens, heads, head_dim)
    value = attention.v_proj(image_embeds).view(batch_size, num_tokens, heads, head_dim)
    query_weight = q_proj.weight.view(heads, head_dim, q_proj.in_features) * attention.scaling
    # row (h, n): the key of token n, head h, mapped back through the query projection
    folded_keys = torch.einsum("bnhd,hde->bhne", key, query_weight).reshape(batch_size, heads * num_tokens, -1)
    score_bias = None
    if q_proj.bias is not None:
        query_bias = q_proj.bias.view(heads, head_dim) * attention.scaling
        score_bias = torch.einsum("bnhd,hd->bhn", key, query_bias).reshape(batch_size, heads * num_tokens)
    # column (h, n): the value of token n, head h, mapped through the output projection
    output_weight = o_proj.weight.view(o_proj.out_features, heads, head_dim)
    folded_values = torch.einsum("bnhd,ehd->behn", value, output_weight).reshape(batch_size, -1, heads * num_tokens)
    return folded_keys, score_bias, folded_values


def can_fold(attention: nn.Module) -> bool:
    """The fold reads the query and output projection weights directly: plain `nn.Linear`s only (a PEFT/LoRA or
    quantized wrapper adds its own computation, which the reference attention runs)."""
    return type(attention.q_proj) is nn.Linear and type(attention.o_proj) is nn.Linear


def folded_cross_attention(attention: RamPlusCrossAttention, hidden_states: torch.Tensor, folded_image) -> torch.Tensor:
    """The output of `attention` (its projected attention output, as `RamPlusCrossAttention.forward` gives it) for
    the tag queries `hidden_states` `(B, tags, H)`, from the image side folded by `fold_image`."""
    folded_keys, score_bias, folded_values = folded_image
    batch_size, num_queries, _ = hidden_states.shape
    if batch_size == 1:  # plain linear maps: the linear kernel is faster than the batched matmul kernel
        scores = F.linear(hidden_states, folded_keys[0], None if score_bias is None else score_bias[0])
    else:
        scores = torch.matmul(hidden_states, folded_keys.transpose(1, 2))
        if score_bias is not None:
            scores = scores + score_bias.unsqueeze(1)
    probs = scores.view(batch_size, num_queries, attention.num_heads, -1).softmax(dim=-1, dtype=torch.float32)
    probs = probs.to(folded_values.dtype).view(batch_size, num_queries, folded_keys.shape[1])
    if batch_size == 1:
        return F.linear(probs, folded_values[0], attention.o_proj.bias)
    attn_output = torch.matmul(probs, folded_values.transpose(1, 2))
    return attn_output if attention.o_proj.bias is None else attn_output + attention.o_proj.bias


# ------------------------------------------------------------------------------------------------ Swin blocks
def window_order(height: int, width: int, window: int, shift: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token `k` of the (shifted) window partition of an `height x width` grid is raster token `order[k]`
    (`torch.roll` by `-shift` on both axes, then windows of `window x window` in row-major order, as Swin does);
    `inverse` puts the window-ordered tokens back in raster order."""
    rows, cols = height // window, width // window
    window_row = torch.arange(rows).view(rows, 1, 1, 1)
    window_col = torch.arange(cols).view(1, cols, 1, 1)
    inner = torch.arange(window)
    y = (window_row * window + inner.view(1, 1, window, 1) + shift) % height
    x = (window_col * window + inner.view(1, 1, 1, window) + shift) % width
    order = (y * width + x).reshape(-1)
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(order.numel())
    return order, inverse


def _exact_gelu(module: nn.Module) -> bool:
    """Whether `module` is transformers' exact (erf) GELU activation, which oneDNN can fuse into a linear."""
    return type(module).__name__ == "GELUActivation" and getattr(module, "act", None) is F.gelu


class FastSwinLayer(SwinLayer):
    """transformers' `SwinLayer` with a faster inference, put in place of each Swin block by `enable_fast_inference`
    (`from_reference`: over the block's own submodules and Parameters). The same arithmetic as the reference block:

    - the cyclic shift and the window partition are one gather of the tokens (`window_order`), and the window
      reverse and the shift back one more, instead of a roll and a copy each;
    - the relative position bias plus the shifted-window mask is built once per resolution and dtype (cached);
    - the attention runs on query/key/value views of one product; with `precision="int8"` that product is one int8
      product of the concatenated projections (the block's input quantized once), and the first MLP layer runs in
      int8 with the GELU fused into the kernel.

    It applies only while a fast model encodes images on its fast path (never in training, with autograd, while
    tracing or when attention weights are recorded), and only for grids that are multiples of the window; otherwise
    the reference block's `forward` runs."""

    @classmethod
    def from_reference(cls, layer: SwinLayer) -> FastSwinLayer:
        """A fast block over `layer`'s own state: the same submodules, Parameters, buffers, settings and hooks (the
        containers are copied, their contents shared), so the state dict and the outputs are unchanged."""
        fast = cls.__new__(cls)
        for key, value in layer.__dict__.items():
            fast.__dict__[key] = copy.copy(value) if isinstance(value, (dict, set)) else value
        return fast

    def __getstate__(self):  # the caches hold an opaque oneDNN tensor: rebuilt after copying/unpickling
        state = super().__getstate__()
        state.pop("_fast_cache", None)
        state.pop("_int8_qkv", None)
        return state

    def forward(self, hidden_states, input_dimensions, always_partition=False, **kwargs):
        if (
            _is_tracing()
            or not _THREAD.fast_swin
            or always_partition
            or kwargs.get("output_attentions")
            or self.training
            or torch.is_grad_enabled()
        ):
            return super().forward(hidden_states, input_dimensions, always_partition, **kwargs)
        self.set_shift_and_window_size(input_dimensions)
        height, width = input_dimensions
        window = self.window_size
        if not isinstance(window, int) or height % window or width % window:
            return super().forward(hidden_states, input_dimensions, always_partition, **kwargs)
        output = self._fast_forward(hidden_states, height, width, window)
        if output is None:  # inf/nan reached an int8 product: the reference block propagates them
            return super().forward(hidden_states, input_dimensions, always_partition, **kwargs)
        return output, None

    def _layout(self, height: int, width: int, window: int, reference: torch.Tensor):
        """(order, inverse, attention bias `(windows or 1, heads, N, N)`) for this grid, cached."""
        table = self.attention.relative_position_bias.relative_position_bias_table
        key = (height, width, reference.dtype, reference.device, table.data_ptr(), _tensor_version(table), self.shift_size)
        cache = self.__dict__.setdefault("_fast_cache", {})
        if key not in cache:
            cache.clear()
            order, inverse = window_order(height, width, window, self.shift_size)
            bias = self.attention.relative_position_bias()  # (1, heads, N, N)
            mask = self.get_attn_mask(height, width, dtype=reference.dtype, device=reference.device)
            if mask is not None:
                bias = bias + mask.unsqueeze(1)  # (windows, heads, N, N), in the dtype the reference block adds them
            cache[key] = (order.to(reference.device), inverse.to(reference.device), bias.to(reference.dtype).contiguous())
        return cache[key]

    def _qkv(self, hidden_states: torch.Tensor) -> torch.Tensor | None:
        attention = self.attention
        projections = (attention.q_proj, attention.k_proj, attention.v_proj)
        if all(isinstance(linear, Int8DynamicLinear) for linear in projections):
            fused = self.__dict__.get("_int8_qkv")
            if fused is None:
                fused = self.__dict__["_int8_qkv"] = _fused_int8_linear(projections)  # not a registered submodule
            return fused.int8_forward(hidden_states)
        return torch.cat([linear(hidden_states) for linear in projections], dim=-1)

    def _fast_forward(self, hidden_states: torch.Tensor, height: int, width: int, window: int):
        batch_size, _, channels = hidden_states.shape
        attention = self.attention
        heads, head_dim = attention.num_attention_heads, attention.head_dim
        order, inverse, bias = self._layout(height, width, window, hidden_states)
        tokens = window * window
        windows = hidden_states.shape[1] // tokens
        shortcut = hidden_states.index_select(1, order)  # (batch, windows * tokens, channels), window order
        qkv = self._qkv(self.layernorm_before(shortcut))
        if qkv is None:
            return None
        query, key, value = qkv.view(batch_size * windows, tokens, 3, heads, head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        if batch_size > 1 and bias.shape[0] > 1:
            bias = bias.repeat(batch_size, 1, 1, 1)
        attended = F.scaled_dot_product_attention(query, key, value, attn_mask=bias, scale=attention.scaling)
        attended = attended.transpose(1, 2).reshape(batch_size, windows * tokens, channels)
        hidden_states = shortcut + attention.o_proj(attended)
        mlp = self.mlp
        hidden_states = hidden_states + _feed_forward(mlp.fc1, mlp.activation_fn, mlp.fc2, self.layernorm_after(hidden_states))
        return hidden_states.index_select(1, inverse)


def _install_fast_swin_layers(model) -> None:
    for stage in model.vision_model.encoder.layers:
        for index, block in enumerate(stage.blocks):
            if isinstance(block, SwinLayer) and not isinstance(block, FastSwinLayer):
                stage.blocks[index] = FastSwinLayer.from_reference(block)


class _PlainWeight:
    """A weight matrix seen as a bias-free linear (for `_fused_int8_linear`)."""

    def __init__(self, weight: torch.Tensor):
        self.weight, self.bias = weight, None
        self.out_features, self.in_features = weight.shape


def _fused_int8_linear(linears) -> Int8DynamicLinear:
    """One int8 linear for several linears that share their input (outputs concatenated), on the first linear's
    kernel (else `int8_kernel()`): a module that is not registered anywhere (no parameters in the state dict),
    prepacked once."""
    join = lambda tensors: tensors[0].detach() if len(tensors) == 1 else torch.cat([t.detach() for t in tensors])  # noqa: E731
    weight = join([linear.weight for linear in linears])
    bias = None if linears[0].bias is None else join([linear.bias for linear in linears])
    fused = Int8DynamicLinear(weight.shape[1], weight.shape[0], bias=bias is not None, device="meta")
    fused._int8_kernel = getattr(linears[0], "int8_kernel", None) or int8_kernel()
    fused.weight = nn.Parameter(weight, requires_grad=False)
    if bias is not None:
        fused.bias = nn.Parameter(bias, requires_grad=False)
    fused.eval()
    fused._int8_prepare()
    fused.weight = fused.bias = None  # the int8 codes are all it needs (its `int8_forward` only)
    return fused


def _feed_forward(fc1, activation_fn, fc2, inputs: torch.Tensor) -> torch.Tensor:
    """`fc2(activation_fn(fc1(inputs)))` at inference, with the GELU fused into the int8 kernel when `fc1` is an
    int8 linear followed by the exact GELU (inf/nan inputs take the float path, as the reference does)."""
    activated = None
    if isinstance(fc1, Int8DynamicLinear) and _exact_gelu(activation_fn):
        activated = fc1.int8_forward(inputs, post_op="gelu")
    if activated is None:
        activated = activation_fn(fc1(inputs))
    return fc2(activated)


def _decoder_layer(layer, hidden_states: torch.Tensor, folded_image) -> torch.Tensor:
    """A decoder layer at inference on the folded cross-attention: `RamPlusDecoderLayer.forward` without its
    identity dropouts, with the GELU fused into an int8 first feed-forward layer (`_feed_forward`)."""
    attn_output = folded_cross_attention(layer.cross_attention, hidden_states, folded_image)
    hidden_states = layer.cross_attention_layer_norm(hidden_states + attn_output)
    feed_forward = _feed_forward(layer.fc1, layer.activation_fn, layer.fc2, hidden_states)
    return layer.final_layer_norm(hidden_states + feed_forward)


# ---------------------------------------------------------------------------------------------- the fast model
class _ThreadState(threading.local):
    """What is in progress in this thread."""

    def __init__(self):
        self.calls: list = []  # (model, reference, kernel context) per forward call of a fast model, innermost last
        self.kernels = False  # the oneDNN linear routing is on
        self.fast_swin = False  # a fast model encodes images on its fast path: the Swin blocks take theirs


_THREAD = _ThreadState()


@contextlib.contextmanager
def _kernels(model):
    """oneDNN linear kernels for fp32 CPU calls without autograd (and not already active)."""
    weight = model.image_projection.weight
    if (
        _THREAD.kernels
        or not _routing_enabled()
        or torch.is_grad_enabled()
        or torch.is_autocast_enabled("cpu")  # autocast picks the matmul dtype itself
        or weight.device.type != "cpu"
        or weight.dtype != torch.float32
        or not onednn_linear_available()
    ):
        yield
        return
    _THREAD.kernels = True
    try:
        with OneDnnLinearMode():
            yield
    finally:
        _THREAD.kernels = False


def _records_outputs(model, kwargs) -> bool:
    """Whether a forward call with `kwargs` returns hidden states or attention weights (recorded by hooks on the
    reference layers)."""
    config = model.config
    attentions, hidden_states = kwargs.get("output_attentions"), kwargs.get("output_hidden_states")
    attentions = config.output_attentions if attentions is None else attentions
    hidden_states = config.output_hidden_states if hidden_states is None else hidden_states
    return bool(attentions or hidden_states)


def _enter_forward(model, args, kwargs):
    """Forward pre-hook of a fast model: a call that records hidden states or attention weights runs the reference
    computation throughout; the others run with the oneDNN kernels (`_kernels`)."""
    if _is_tracing():
        return None
    reference = _records_outputs(model, kwargs)
    kernels = contextlib.nullcontext() if reference or model.training else _kernels(model)
    kernels.__enter__()
    _THREAD.calls.append((model, reference, kernels))
    return None


def _exit_forward(model, args, output):
    """Forward hook of a fast model (called also when the forward raised): closes what `_enter_forward` opened."""
    calls = _THREAD.calls
    if calls and calls[-1][0] is model:
        calls.pop()[2].__exit__(None, None, None)
    return None


def _in_reference_call(model) -> bool:
    for caller, reference, _ in reversed(_THREAD.calls):
        if caller is model:
            return reference
    return False


class RamPlusFastInference(nn.Module):
    """The fast paths of a [`RamPlusModel`], installed as its `fast_inference` submodule by `enable_fast_inference`.

    It holds no weights (the state dict is unchanged) and no reference to the model: the model's `get_image_embeds`,
    `description_similarity` and `tag_logits` hand it their inputs (see `RamPlusModel._fast_inference`), and it
    returns their results computed faster, or None where its paths do not apply (training mode, autograd, tracing,
    a forward call that records hidden states or attention weights), so that the model computes them as written.

    Args:
        precision (`str`): `"fp32"`, `"bf16"` or `"int8"` (see `enable_fast_inference`).
    """

    def __init__(self, precision: str):
        super().__init__()
        self.precision = precision

    def extra_repr(self) -> str:
        return f"precision={self.precision!r}"

    def __getstate__(self):  # the int8 vocabulary is an opaque oneDNN tensor: rebuilt after copying/unpickling
        state = super().__getstate__()
        state.pop("_int8_vocabulary", None)
        return state

    def applies(self, model) -> bool:
        """Whether `model`'s computation takes the fast paths now."""
        return not (_is_tracing() or model.training or torch.is_grad_enabled() or _in_reference_call(model))

    def image_embeds(self, model, pixel_values: torch.Tensor) -> torch.Tensor | None:
        """`model.get_image_embeds` (checked inputs): on the CPU, in blocks of `VISION_CHUNK_IMAGES` images, through
        the fast Swin blocks and the oneDNN kernels."""
        if not self.applies(model):
            return None
        previous, _THREAD.fast_swin = _THREAD.fast_swin, True
        try:
            with _kernels(model):
                if pixel_values.device.type != "cpu":  # the whole batch at once; the fast blocks if set
                    _THREAD.fast_swin = ACCELERATOR_FAST_SWIN
                    return model.compute_image_embeds(pixel_values)
                if pixel_values.shape[0] <= VISION_CHUNK_IMAGES:
                    return model.compute_image_embeds(pixel_values)
                blocks = pixel_values.split(VISION_CHUNK_IMAGES)
                return torch.cat([model.compute_image_embeds(block) for block in blocks])
        finally:
            _THREAD.fast_swin = previous

    def description_similarity(self, model, cls: torch.Tensor, label_embeds: torch.Tensor) -> torch.Tensor | None:
        """With `precision="int8"`, the similarity of each image to the built-in tags' descriptions (a product with
        the whole `(tags * descriptions, dim)` vocabulary, read from memory once per image) runs as an int8 product
        with the vocabulary quantized once per row (fp32 out); the softmax over descriptions and the weighted sum
        stay as in the reference. Other precisions, other label embeddings (open-set, subsets): None (the reference
        product)."""
        vocabulary = model.label_embeds
        if (
            self.precision != "int8"
            or not self.applies(model)
            or label_embeds.device.type != "cpu"
            or label_embeds.data_ptr() != vocabulary.data_ptr()
            or label_embeds.numel() != vocabulary.numel()
            or label_embeds.dtype != vocabulary.dtype
        ):
            return None
        # a new kernel or dtype comes through enable_fast_inference, which drops this copy (`_dequantize_linears`)
        key = (vocabulary.data_ptr(), _tensor_version(vocabulary), tuple(label_embeds.shape))
        packed = self.__dict__.get("_int8_vocabulary")
        if packed is None or packed[0] != key:
            flat = label_embeds.reshape(-1, label_embeds.shape[-1])
            packed = self.__dict__["_int8_vocabulary"] = (key, _fused_int8_linear([_PlainWeight(flat)]))
        return packed[1].int8_forward(cls, output_dtype=torch.float32)

    def tag_logits(self, model, queries: torch.Tensor, image_embeds: torch.Tensor) -> torch.Tensor | None:
        """`model.tag_logits` per image, on the folded cross-attention (`fold_image`, computed once per image and
        layer), in near-equal blocks of tags (`decoder_blocks`), through the oneDNN kernels. None where a decoder
        attention's query or output projection is not a plain linear (LoRA: the reference attention)."""
        layers = model.decoder.layers
        if queries.device.type != "cpu" and not ACCELERATOR_FOLDED_DECODER:
            return None  # the reference decoder, batched over the images
        if not self.applies(model) or not all(can_fold(layer.cross_attention) for layer in layers):
            return None
        batch_size, num_queries = queries.shape[:2]
        blocks = decoder_blocks(num_queries, model.config.intermediate_size, queries.element_size())
        logits = []
        with _kernels(model):
            for index in range(batch_size):
                tokens = image_embeds[index : index + 1]
                folded = [fold_image(layer.cross_attention, tokens) for layer in layers]  # shared by the blocks
                for rows in queries[index : index + 1].tensor_split(blocks, dim=1):
                    hidden_states = rows.contiguous()
                    for layer, folded_image in zip(layers, folded):
                        hidden_states = _decoder_layer(layer, hidden_states, folded_image)
                    logits.append(model.classifier(hidden_states).squeeze(-1))
        return torch.cat(logits, dim=1).view(batch_size, num_queries)


def _base_model(model):
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def supports_fast_inference(model) -> bool:
    """Whether `model` (or the base model of a PEFT model) is a `RamPlusModel` whose code has the fast-inference hook
    points (`RamPlusModel._fast_inference`; remote code saved by earlier versions has none)."""
    target = _base_model(model)
    is_ram_plus = any(cls.__name__ == RamPlusModel.__name__ for cls in type(target).__mro__)
    return is_ram_plus and callable(getattr(type(target), "_fast_inference", None))


def is_optimized(model) -> bool:
    """Whether `enable_fast_inference` was applied to `model` (or to the base model of a PEFT model)."""
    fast = getattr(_base_model(model), "_modules", {}).get(FAST_INFERENCE_MODULE)
    return isinstance(fast, RamPlusFastInference)


def enable_fast_inference(model, precision: str = "fp32"):
    """
    Make a [`RamPlusModel`] faster for inference, in place, and return it (also exported as
    `optimize_for_inference`, its earlier name).

    The model keeps its class, call signature, outputs (within float rounding: fp32 logits agree with the reference
    computation to ~1e-5), state dict and Parameters; it is put in eval mode. What changes is a few submodules: the
    Swin blocks become [`FastSwinLayer`]s over the same weights, a `fast_inference` submodule
    ([`RamPlusFastInference`], no weights) is added, which the model's `get_image_embeds`, `description_similarity`
    and `tag_logits` consult, and with `precision="int8"` the selected linears become [`Int8DynamicLinear`]s over the
    same weights. The fast paths (see the module docstring: oneDNN fp32 linear kernels on CPU, folded decoder
    cross-attention, image and tag blocking) apply at inference without autograd; training mode, autograd, tracing
    and calls that record hidden states or attention weights run the reference computation. `save_pretrained` writes
    the standard checkpoint, which loads into a plain `RamPlusModel`. Calling it again switches the precision.

    Args:
        model: a `RamPlusModel` (or a PEFT model wrapping one: its base model gets the fast paths; LoRA-adapted
            attention projections take the reference attention).
        precision (`str`, defaults to `"fp32"`): `"fp32"` keeps float32 weights; `"bf16"` casts the weights to
            bfloat16 (about twice as fast on CPUs with bf16 matrix units, tag decisions within ~0.1% of fp32);
            `"int8"` (CPU only) runs the Swin blocks' and the decoder's big linears (see `int8_linear_targets`) with
            int8 weights and dynamically quantized inputs: on oneDNN's int8 kernel with the rest in bf16 where the
            CPU has VNNI / AMX, on fbgemm's with the rest in fp32 where it has AVX2 only (`int8_kernel`).

    Example:

    ```python
    >>> from transformers_ramplus import RamPlusModel, enable_fast_inference
    >>> model = enable_fast_inference(RamPlusModel.from_pretrained("ram-plus-swin-large"), precision="bf16")
    >>> logits = model(pixel_values=pixel_values).logits
    ```
    """
    if precision not in PRECISIONS:
        raise ValueError(f"`precision` must be one of {', '.join(map(repr, PRECISIONS))}, got {precision!r}")
    target = _base_model(model)
    if not supports_fast_inference(target):
        raise TypeError(
            f"enable_fast_inference expects a RamPlusModel whose code has the fast-inference hook points, got "
            f"{type(model).__name__} (remote code saved by an earlier version: load the model with this package's "
            "RamPlusModel)"
        )
    kernel = int8_kernel() if precision == "int8" else None
    dtype = precision_dtype(precision, kernel)
    if precision == "int8":
        device = target.image_projection.weight.device
        if device.type != "cpu":
            raise ValueError(f'precision="int8" runs on the CPU; the model is on {device} (use "bf16" or "fp32" there)')
        if not int8_available(kernel):
            raise RuntimeError(
                'precision="int8" needs oneDNN\'s int8 linear kernel, which this PyTorch build lacks (x86 CPU builds '
                'have it); use precision="bf16"'
                if kernel == "onednn"
                else 'precision="int8" on this CPU needs fbgemm\'s int8 linear kernel '
                "(torch.ops.quantized.linear_dynamic), which this PyTorch build lacks; use precision=\"fp32\""
            )
        current = {name: module for name, module in target.named_modules() if isinstance(module, Int8DynamicLinear)}
        if any(linear.int8_kernel != kernel for linear in current.values()) or (
            current and current.keys() != _int8_selection(target, include_int8=True, kernel=kernel).keys()
        ):
            # made for the other kernel (INT8_KERNEL changed) or another selection (INT8_SECOND_LAYERS...): again
            _dequantize_linears(target)
    else:
        _dequantize_linears(target)
    if target.image_projection.weight.dtype != dtype:
        target.to(dtype)
    _install_fast_swin_layers(target)
    if precision == "int8" and not _int8_linears(target):
        # from the weights in their final dtype, so that a copy of the model (which prepacks again from them)
        # computes the same
        _quantize_linears(target, kernel)
    fast = target._modules.get(FAST_INFERENCE_MODULE)
    if not isinstance(fast, RamPlusFastInference):
        target.add_module(FAST_INFERENCE_MODULE, RamPlusFastInference(precision))
        target.register_forward_pre_hook(_enter_forward, with_kwargs=True)
        target.register_forward_hook(_exit_forward, always_call=True)
    else:
        fast.precision = precision
    model.eval()
    return model


optimize_for_inference = enable_fast_inference  # the earlier name, kept as an alias


__all__ = [
    "PRECISIONS",
    "FastSwinLayer",
    "Int8DynamicLinear",
    "RamPlusFastInference",
    "enable_fast_inference",
    "int8_available",
    "int8_kernel",
    "int8_linear_targets",
    "int8_second_layers",
    "is_optimized",
    "onednn_int8_available",
    "onednn_linear_available",
    "onednn_routing",
    "onednn_routing_by_default",
    "optimize_for_inference",
    "precision_dtype",
    "supports_fast_inference",
]
