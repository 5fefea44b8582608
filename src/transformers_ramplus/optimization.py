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
  description softmax and attention softmax stay in fp32).

The optimized model keeps the reference model's call signature, outputs and parameters. It runs the reference
computation whenever the fast paths do not apply: in training mode, while `torch.compile`/`torch.export`/the ONNX
exporter trace it, and when hidden states or attention weights are requested. `save_pretrained` writes the standard
checkpoint (a bf16-optimized model writes bf16 weights).
"""

from __future__ import annotations

import contextlib
import functools

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode
from transformers.utils.output_capturing import _CAN_RECORD_REGISTRY

from .modeling_ram_plus import RamPlusCrossAttention, RamPlusModel


PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}

# images per block of the image encoder
VISION_CHUNK_IMAGES = 2
# tag rows per block of the decoder (one image at a time)
DECODER_CHUNK_ROWS = 1024


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


@contextlib.contextmanager
def reference_classes(model):
    """Temporarily give an optimized model (and its attention modules) back their reference classes, so that what
    is saved (weights, `architectures`, remote code) is the reference model's."""
    modules = [model, *_attention_modules(model)]
    optimized = [type(module) for module in modules]
    try:
        for module in modules:
            module.__class__ = getattr(type(module), "_reference_class", type(module))
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
            bfloat16 (about twice as fast on CPUs with bf16 matrix units, tag decisions within ~0.1% of fp32).

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
    if target.image_projection.weight.dtype != dtype:
        target.to(dtype)
    if not is_optimized(target):
        for attention in _attention_modules(target):
            attention.__class__ = _optimized_class(type(attention), FoldedCrossAttentionMixin)
        target.__class__ = _optimized_class(type(target), OptimizedModelMixin)
        _CAN_RECORD_REGISTRY[target] = target._can_record_outputs  # output capture is registered per class
    target.inference_precision = precision
    model.eval()
    return model


__all__ = ["PRECISIONS", "is_optimized", "optimize_for_inference", "onednn_linear_available"]
