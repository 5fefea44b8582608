# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""Faster RAM++ inference, applied by one call: `optimize_for_inference(model, precision="fp32")`.

The reference model (`modeling_ram_plus.py`) computes RAM++ plainly. This module adds, for inference only:

- **oneDNN fp32 linear kernels**: fp32 CPU `F.linear` calls made without autograd run through oneDNN's linear kernel
  instead of the default BLAS (the same fp32 arithmetic up to summation order, ~1e-6). On CPUs where the default BLAS
  is slow for fp32 (the AMD EPYC development machine: 179 GFLOP/s through `addmm`, 307 through oneDNN) the whole
  model, Swin encoder included, runs faster.
- **Folded cross-attention**: per image, the decoder's query and output projections are folded into the (few) image
  tokens. With K_h, V_h the per-head keys and values of the N image tokens, the scores of head h are
  `(x Wq_h^T + bq_h) K_h^T = x (K_h Wq_h)^T + K_h bq_h` and the projected output is `sum_h P_h (V_h Wo_h^T) + bo`:
  exact algebra that replaces two (tags x H x H) products by (tags x H x heads*N) ones (heads*N = 580 < H = 768 at
  full size), with no per-head transposes of the (batch, tags, H) activations. For one image both products are plain
  linear maps whose weights are that image's folded keys and values, so they run on the linear kernel.
- **Blocking**: large batches are encoded in blocks of `VISION_CHUNK_IMAGES` images (the Swin encoder's per-image
  cost grows with the batch as its activations leave the caches; fp32 Swin-L here: 0.80 s/image at batch 8 against
  0.70 in blocks of 2 to 4), and the decoder runs per image in blocks of `DECODER_CHUNK_ROWS` tags, sharing that
  image's folded keys and values (1024 rows keep the feed-forward activation, rows x 3072, inside a 32 MiB L3;
  full-size decoder per image, fp32 / bf16: 0.31 / 0.14 s in blocks of 1024 rows against 0.35 / 0.17 s in blocks
  of 4096).
- **Precision**: `"bf16"` casts the weights to bfloat16 (about twice as fast on CPUs with bf16 matrix units; the
  description softmax and attention softmax stay in fp32). `"int8"` is `"bf16"` plus int8 products for the big
  linears (`int8_linear_targets`): int8 weights per output channel, inputs quantized per call per tensor, oneDNN's
  int8 linear kernel (`Int8DynamicLinear`).

The optimized model keeps the reference model's call signature, outputs and parameters. It runs the reference
computation whenever the fast paths do not apply: in training mode, while `torch.compile`/`torch.export`/the ONNX
exporter trace it, and when hidden states or attention weights are requested. `save_pretrained` writes the standard
checkpoint (a bf16-optimized model writes bf16 weights).
"""

from __future__ import annotations

import contextlib
import functools
import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode
from transformers.utils.output_capturing import _CAN_RECORD_REGISTRY

from .modeling_ram_plus import RamPlusCrossAttention, RamPlusModel


PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "int8": torch.bfloat16}

# images per block of the image encoder
VISION_CHUNK_IMAGES = 2
# tag rows per block of the decoder (one image at a time)
DECODER_CHUNK_ROWS = 1024


# route fp32 CPU linears to oneDNN (see `OneDnnLinearMode`); `onednn_routing(False)` turns it off, for measurements
_ONEDNN_ROUTING = {"enabled": True}


@contextlib.contextmanager
def onednn_routing(enabled: bool):
    """Turn the oneDNN routing of fp32 linears on or off inside the block (the benchmark measures what it buys)."""
    previous, _ONEDNN_ROUTING["enabled"] = _ONEDNN_ROUTING["enabled"], bool(enabled)
    try:
        yield
    finally:
        _ONEDNN_ROUTING["enabled"] = previous


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


def quantize_activation(inputs: torch.Tensor, symmetric: bool):
    """Dynamic per-tensor quantization of a 2-D float tensor: `(codes, scale, zero_point)` with
    `inputs ~= (codes - zero_point) * scale`, or None when it holds non-finite values.

    `symmetric`: int8 codes in [-127, 127] around 0 (for inputs spread around 0, such as layer-norm outputs); else
    uint8 codes in [0, 255] over [min(inputs, 0), max(inputs, 0)] (one more bit for one-sided inputs, such as GELU
    outputs). The arithmetic stays in the input's dtype (three passes over a bf16 tensor: a float32 copy first cost
    more than the int8 product saves)."""
    low, high = torch.aminmax(inputs)
    low, high = min(low.item(), 0.0), max(high.item(), 0.0)
    if not (math.isfinite(low) and math.isfinite(high)):
        return None
    if symmetric:
        scale = max(-low, high) / 127.0 or 1.0
        return torch.mul(inputs, 1.0 / scale).round_().clamp_(-127, 127).to(torch.int8), scale, 0
    scale = (high - low) / 255.0 or 1.0
    zero_point = min(255, max(0, round(-low / scale)))
    codes = torch.mul(inputs, 1.0 / scale).round_().add_(zero_point).clamp_(0, 255).to(torch.uint8)
    return codes, scale, zero_point


class Int8DynamicLinear(nn.Linear):
    """An `nn.Linear` whose inference runs as int8 x int8 on oneDNN's int8 linear kernel (VNNI / AMX on x86): the
    weight quantized per output channel (symmetric int8, prepacked once), the input quantized per call over its
    own range (per tensor), the product accumulated in int32 and rescaled to the input's dtype, with the bias.

    The float `weight` and `bias` stay as they are (the state dict, `save_pretrained` and training mode see a plain
    `nn.Linear`); with autograd, in training mode and while tracing, `forward` is the float linear. Made by
    `optimize_for_inference(model, precision="int8")`, which swaps the class of selected linears."""

    int8_symmetric_inputs: bool = True

    def _int8_prepare(self):
        weight = self.weight.detach().float()
        scales = weight.abs().amax(dim=1).clamp(min=1e-12) / 127.0
        codes = torch.round(weight / scales[:, None]).clamp_(-127, 127).to(torch.int8)
        self._int8_weight = torch.ops.onednn.qlinear_prepack(codes, None)
        self._int8_scales = scales
        self._int8_zero_points = torch.zeros_like(scales, dtype=torch.int32)
        self._int8_bias = None if self.bias is None else self.bias.detach().float()

    def __getstate__(self):  # the prepacked weight is an opaque oneDNN tensor: rebuilt after copying/unpickling
        state = self.__dict__.copy()
        state.pop("_int8_weight", None)
        return state

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
            return F.linear(inputs, self.weight.to(inputs.dtype), None if self.bias is None else self.bias.to(inputs.dtype))
        if getattr(self, "_int8_weight", None) is None:
            self._int8_prepare()
        shared = getattr(self, "_int8_shared_input", None)  # the query/key/value projections of one attention
        if shared is not None and self._int8_shared_role != "first" and shared.get("source") is inputs:
            quantized = shared["quantized"]  # the same input, quantized once for the three projections
        else:
            quantized = quantize_activation(inputs.reshape(-1, self.in_features), self.int8_symmetric_inputs)
        if shared is not None:
            if self._int8_shared_role == "last":
                shared.clear()
            else:
                shared.update(source=inputs, quantized=quantized)
        if quantized is None:  # inf/nan inputs: the float linear propagates them as the reference does
            return F.linear(inputs, self.weight.to(inputs.dtype), None if self.bias is None else self.bias.to(inputs.dtype))
        codes, scale, zero_point = quantized
        output = torch.ops.onednn.qlinear_pointwise(
            codes, scale, zero_point, self._int8_weight, self._int8_scales, self._int8_zero_points, self._int8_bias,
            1.0, 0, inputs.dtype, "none", [], "",
        )
        return output.view(*inputs.shape[:-1], self.out_features)


class Int8DynamicLinearOneSided(Int8DynamicLinear):
    """`Int8DynamicLinear` for inputs that are mostly on one side of 0 (GELU outputs): uint8 input codes."""

    int8_symmetric_inputs = False


def int8_linear_targets(model) -> dict[str, tuple[nn.Module, str]]:
    """The linears that `precision="int8"` runs in int8, by qualified name (as `(owner module, attribute)`): in every
    Swin stage but the last, each block's query/key/value projections (their shared input quantized once), output
    projection and first MLP layer; in the tag decoder, the first feed-forward layer of each layer.

    Kept in bf16, by measurement on a 2-core Xeon with AMX (see the README's Performance section): the second MLP
    layers (their 4x wider inputs cost more to quantize per call than the int8 product saves, and they add the most
    error), the patch embedding and merging, the last Swin stage (144 tokens: cheap, and its output feeds every tag),
    the image and query projections, the decoder's cross-attention (folded per image) and the classifier."""
    targets = {}
    stages = model.vision_model.encoder.layers
    for stage_index, stage in enumerate(stages):
        if stage_index in INT8_SKIP_STAGES or stage_index - len(stages) in INT8_SKIP_STAGES:
            continue
        for block_index, block in enumerate(stage.blocks):
            prefix = f"vision_model.encoder.layers.{stage_index}.blocks.{block_index}"
            attention = block.attention
            for name in INT8_SWIN_LINEARS:
                if name.startswith("mlp."):
                    targets[f"{prefix}.{name}"] = (block.mlp, name[4:])
                else:
                    targets[f"{prefix}.attention.{name}"] = (attention, name)
    for layer_index, layer in enumerate(model.decoder.layers):
        for name in INT8_DECODER_LINEARS:
            targets[f"decoder.layers.{layer_index}.{name}"] = (layer, name)
    return {name: (owner, attr) for name, (owner, attr) in targets.items() if type(getattr(owner, attr)) is nn.Linear}


# which linears precision="int8" quantizes (see `int8_linear_targets`; chosen by measurement, see the README)
INT8_SKIP_STAGES = (-1,)
INT8_SWIN_LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "mlp.fc1")
INT8_DECODER_LINEARS = ("fc1",)
# inputs of these linears come out of a GELU (one-sided): uint8 codes
INT8_ONE_SIDED = ("mlp.fc2", "fc2")


def _quantize_linears(model) -> int:
    count = 0
    targets = int8_linear_targets(model)
    for name, (owner, attr) in targets.items():
        linear = getattr(owner, attr)
        one_sided = any(name.endswith("." + suffix) for suffix in INT8_ONE_SIDED)
        linear.__class__ = Int8DynamicLinearOneSided if one_sided else Int8DynamicLinear
        linear._int8_prepare()
        count += 1
    # a Swin attention passes one tensor to its query, key and value projections: quantize it once for the three
    for name, (owner, attr) in targets.items():
        if attr == "q_proj" and all(f"{name[:-6]}{other}" in targets for other in ("k_proj", "v_proj")):
            shared: dict = {}
            for other, role in (("q_proj", "first"), ("k_proj", "middle"), ("v_proj", "last")):
                linear = getattr(owner, other)
                linear._int8_shared_input, linear._int8_shared_role = shared, role
    return count


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


class FoldedCrossAttentionMixin:
    """Cross-attention that takes the folded path when given `folded_image` (see `fold_image`), else the reference
    path. Mixed into the model's own attention class by `optimize_for_inference`."""

    def forward(self, hidden_states, image_embeds, folded_image=None, **kwargs):
        if folded_image is None:
            return super().forward(hidden_states, image_embeds, **kwargs)
        folded_keys, score_bias, folded_values = folded_image
        batch_size, num_queries, _ = hidden_states.shape
        if batch_size == 1:  # plain linear maps: the linear kernel is faster than the batched matmul kernel
            scores = F.linear(hidden_states, folded_keys[0], None if score_bias is None else score_bias[0])
        else:
            scores = torch.matmul(hidden_states, folded_keys.transpose(1, 2))
            if score_bias is not None:
                scores = scores + score_bias.unsqueeze(1)
        probs = scores.view(batch_size, num_queries, self.num_heads, -1).softmax(dim=-1, dtype=torch.float32)
        probs = probs.to(folded_values.dtype).view(batch_size, num_queries, folded_keys.shape[1])
        if batch_size == 1:
            attn_output = F.linear(probs, folded_values[0], self.o_proj.bias)
        else:
            attn_output = torch.matmul(probs, folded_values.transpose(1, 2))
            if self.o_proj.bias is not None:
                attn_output = attn_output + self.o_proj.bias
        return attn_output, None


# ------------------------------------------------------------------------------------------------ optimized model
class OptimizedModelMixin:
    """Mixed into the model's own class by `optimize_for_inference`: the same signature and outputs, faster."""

    inference_precision: str = "fp32"

    def _fast_paths_apply(self) -> bool:
        return not self.training and not _is_tracing() and not getattr(self, "_reference_call", False)

    def _kernels(self):
        """oneDNN linear kernels for fp32 CPU calls without autograd (and not already active)."""
        weight = self.image_projection.weight
        if (
            getattr(self, "_kernels_active", False)
            or not _ONEDNN_ROUTING["enabled"]
            or torch.is_grad_enabled()
            or torch.is_autocast_enabled("cpu")  # autocast picks the matmul dtype itself
            or weight.device.type != "cpu"
            or weight.dtype != torch.float32
            or not onednn_linear_available()
        ):
            return contextlib.nullcontext()
        return _active_kernels(self)

    def forward(self, *args, **kwargs):
        config = self.config
        wants_outputs = kwargs.get("output_attentions", config.output_attentions) or kwargs.get(
            "output_hidden_states", config.output_hidden_states
        )
        if wants_outputs or not self._fast_paths_apply():
            # hidden states and attention weights come from the reference layers
            previous, self._reference_call = getattr(self, "_reference_call", False), True
            try:
                return super().forward(*args, **kwargs)
            finally:
                self._reference_call = previous
        with self._kernels():
            return super().forward(*args, **kwargs)

    def get_image_embeds(self, pixel_values):
        if not self._fast_paths_apply() or not isinstance(pixel_values, torch.Tensor):
            return super().get_image_embeds(pixel_values)
        encode = super().get_image_embeds
        with self._kernels():
            if pixel_values.dim() != 4 or pixel_values.shape[0] <= VISION_CHUNK_IMAGES:
                return encode(pixel_values)
            return torch.cat([encode(block) for block in pixel_values.split(VISION_CHUNK_IMAGES)])

    def tag_logits(self, queries, image_embeds):
        layers = self.decoder.layers
        if not self._fast_paths_apply() or not all(can_fold(layer.cross_attention) for layer in layers):
            return super().tag_logits(queries, image_embeds)
        batch_size, num_queries = queries.shape[:2]
        logits = []
        with self._kernels():
            for index in range(batch_size):
                tokens = image_embeds[index : index + 1]
                folded = [fold_image(layer.cross_attention, tokens) for layer in layers]  # shared by the blocks
                for rows in queries[index : index + 1].split(DECODER_CHUNK_ROWS, dim=1):
                    hidden_states = rows.contiguous()
                    for layer, folded_image in zip(layers, folded):
                        hidden_states = layer(hidden_states, tokens, folded_image=folded_image)
                    logits.append(self.classifier(hidden_states).squeeze(-1))
        return torch.cat(logits, dim=1).view(batch_size, num_queries)

    # ------------------------------------------------------------------ saving writes the reference checkpoint
    def save_pretrained(self, *args, **kwargs):
        with reference_classes(self):  # inside, `self` is the reference model again
            return self.save_pretrained(*args, **kwargs)

    @classmethod
    def register_for_auto_class(cls, auto_class="AutoModel"):
        return cls._reference_class.register_for_auto_class(auto_class)


@contextlib.contextmanager
def _active_kernels(model):
    model._kernels_active = True
    try:
        with OneDnnLinearMode():
            yield
    finally:
        model._kernels_active = False


@functools.cache
def _optimized_class(reference_class: type, mixin: type) -> type:
    """`mixin` over the model's own class (the installed one, or the one loaded as remote code)."""
    name = f"Optimized{reference_class.__name__}"
    optimized = type(name, (mixin, reference_class), {})
    optimized._reference_class = reference_class
    optimized.__module__ = __name__
    if reference_class in (RamPlusModel, RamPlusCrossAttention):
        globals()[name] = optimized  # importable by name, so that an optimized model pickles
    return optimized


def _attention_modules(model):
    return [layer.cross_attention for layer in model.decoder.layers]


def _dequantize_linears(model) -> None:
    for linear in _int8_linears(model):
        linear.__class__ = nn.Linear
        for name in ("_int8_weight", "_int8_scales", "_int8_zero_points", "_int8_bias", "_int8_shared_input", "_int8_shared_role"):
            linear.__dict__.pop(name, None)


@contextlib.contextmanager
def reference_classes(model):
    """Temporarily give an optimized model (and its attention modules) back their reference classes, so that what
    is saved (weights, `architectures`, remote code) is the reference model's."""
    modules = [model, *_attention_modules(model), *_int8_linears(model)]
    optimized = [type(module) for module in modules]
    try:
        for module in modules:
            module.__class__ = nn.Linear if isinstance(module, Int8DynamicLinear) else getattr(
                type(module), "_reference_class", type(module)
            )
        yield model
    finally:
        for module, cls in zip(modules, optimized):
            module.__class__ = cls


def is_optimized(model) -> bool:
    return isinstance(model, OptimizedModelMixin)


def optimize_for_inference(model, precision: str = "fp32"):
    """
    Make a [`RamPlusModel`] faster for inference, in place, and return it.

    The returned model has the same call signature, outputs (within float rounding: fp32 logits agree with the
    reference computation to ~1e-5) and parameters; it is put in eval mode. The fast paths (see the module
    docstring: oneDNN fp32 linear kernels on CPU, folded decoder cross-attention, image and tag blocking) apply at
    inference; training mode, tracing and requests for hidden states or attention weights run the reference
    computation. `save_pretrained` writes the standard checkpoint.

    Args:
        model: a `RamPlusModel` (or a PEFT model wrapping one: its base model is optimized; LoRA-adapted attention
            projections take the reference attention).
        precision (`str`, defaults to `"fp32"`): `"fp32"` keeps float32 weights; `"bf16"` casts the weights to
            bfloat16 (about twice as fast on CPUs with bf16 matrix units, tag decisions within ~0.1% of fp32);
            `"int8"` (CPU only) is `"bf16"` plus int8 weights and dynamically quantized inputs for the Swin blocks'
            and the decoder's big linears (see `int8_linear_targets`), run on oneDNN's int8 kernel (VNNI / AMX).

    Example:

    ```python
    >>> from transformers_ramplus import RamPlusModel, optimize_for_inference
    >>> model = optimize_for_inference(RamPlusModel.from_pretrained("ram-plus-swin-large"), precision="bf16")
    >>> logits = model(pixel_values=pixel_values).logits
    ```
    """
    if precision not in PRECISIONS:
        raise ValueError(f"`precision` must be one of {', '.join(map(repr, PRECISIONS))}, got {precision!r}")
    target = model.get_base_model() if hasattr(model, "get_base_model") else model
    if not any(cls.__name__ == RamPlusModel.__name__ for cls in type(target).__mro__):
        raise TypeError(f"optimize_for_inference expects a RamPlusModel, got {type(model).__name__}")
    dtype = PRECISIONS[precision]
    if precision == "int8":
        device = target.image_projection.weight.device
        if device.type != "cpu":
            raise ValueError(f'precision="int8" runs on the CPU; the model is on {device} (use "bf16" or "fp32" there)')
        if not onednn_int8_available():
            raise RuntimeError(
                'precision="int8" needs oneDNN\'s int8 linear kernel, which this PyTorch build lacks (x86 CPU builds '
                'have it); use precision="bf16"'
            )
    else:
        _dequantize_linears(target)
    if target.image_projection.weight.dtype != dtype:
        target.to(dtype)
    if precision == "int8" and not _int8_linears(target):
        # from the bf16 weights, so that a copy of the model (which prepacks again from them) computes the same
        _quantize_linears(target)
    if not is_optimized(target):
        for attention in _attention_modules(target):
            attention.__class__ = _optimized_class(type(attention), FoldedCrossAttentionMixin)
        target.__class__ = _optimized_class(type(target), OptimizedModelMixin)
        _CAN_RECORD_REGISTRY[target] = target._can_record_outputs  # output capture is registered per class
    target.inference_precision = precision
    model.eval()
    return model


__all__ = [
    "PRECISIONS",
    "Int8DynamicLinear",
    "int8_linear_targets",
    "is_optimized",
    "onednn_int8_available",
    "onednn_linear_available",
    "onednn_routing",
    "optimize_for_inference",
]
