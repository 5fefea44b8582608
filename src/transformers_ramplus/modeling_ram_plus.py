# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""PyTorch RAM++ (Recognize Anything Plus) model.

The graph follows SPEC section 1: Swin image encoder -> 145 tokens (mean token + 144) -> image projection ->
description re-weighting of the label embeddings -> query projection + ReLU -> a cross-attention-only decoder
(Query2Label style, BERT post-LayerNorm) -> a linear head giving one logit per tag.

This file imports only its configuration, `transformers` and `torch`, so that `save_pretrained` after
`register_for_auto_class` ships working remote code.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import os
import weakref
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode
from transformers import CLIPTextModelWithProjection, SwinModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS, PreTrainedModel
from transformers.utils import ModelOutput, logging

from .configuration_ram_plus import RamPlusConfig


logger = logging.get_logger(__name__)


# ----------------------------------------------------------------------------------------------------------- outputs
@dataclass
class RamPlusOutput(ModelOutput):
    """
    Output of [`RamPlusModel`].

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*): weighted sum of the training losses that could be
            computed from the inputs given (`labels`, captions, teacher embeddings).
        logits (`torch.FloatTensor` of shape `(batch_size, num_tags)`): tag logits; scores are `sigmoid(logits)`.
        image_embeds (`torch.FloatTensor` of shape `(batch_size, 145, text_embed_dim)`): projected image tokens
            (token 0 is the projected mean token, the `cls` embedding used for re-weighting and distillation).
        tag_loss / alignment_loss / distillation_loss (`torch.FloatTensor` of shape `()`, *optional*): unweighted
            loss components.
        alignment_logits (`torch.FloatTensor` of shape `(batch_size, num_captions)`, *optional*): image-caption
            logits of the alignment objective.
        hidden_states (`tuple(torch.FloatTensor)`, *optional*): decoder input and the output of every decoder layer,
            each `(batch_size, num_tags, hidden_size)`, returned with `output_hidden_states=True`.
        cross_attentions (`tuple(torch.FloatTensor)`, *optional*): attention weights of every decoder layer, each
            `(batch_size, num_heads, num_tags, 145)`, returned with `output_attentions=True`.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    image_embeds: torch.FloatTensor | None = None
    tag_loss: torch.FloatTensor | None = None
    alignment_loss: torch.FloatTensor | None = None
    distillation_loss: torch.FloatTensor | None = None
    alignment_logits: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    cross_attentions: tuple[torch.FloatTensor, ...] | None = None


def _is_tracing() -> bool:
    """True while torch.compile, torch.export or the ONNX exporter trace the model (no data-dependent checks)."""
    return torch.compiler.is_compiling() or torch.jit.is_tracing()


# -------------------------------------------------------------------------------------------- fp32 CPU inference
@functools.cache
def _onednn_linear_available() -> bool:
    try:
        return bool(torch.backends.mkldnn.is_available()) and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    except (AttributeError, RuntimeError):
        return False


class _OneDnnLinearMode(TorchFunctionMode):
    """Routes fp32 CPU `F.linear` calls made without autograd to oneDNN's linear kernel.

    Same fp32 arithmetic (results differ only by summation order, ~1e-6), but on CPUs where the default BLAS is slow
    for fp32 (measured on the AMD EPYC development machine: 179 GFLOP/s through `addmm`, 307 through oneDNN) the whole
    model, Swin encoder included, runs faster. Used only inside `RamPlusModel` at inference (see
    `RamPlusConfig.cpu_onednn_linear`)."""

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


# ------------------------------------------------------------------------------------------------------------ losses
def asymmetric_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    gamma_neg: float = 4.0,
    gamma_pos: float = 0.0,
    clip: float | None = 0.05,
    eps: float = 1e-8,
) -> torch.Tensor:
    """Asymmetric loss (Ridnik et al. 2021) with the original RAM++ semantics (SPEC section 3).

    `p = sigmoid(x)`, `p_neg = min(1 - p + clip, 1)`,
    `L = -sum[y log(max(p, eps)) (1-p)^gamma_pos + (1-y) log(max(p_neg, eps)) (1-p_neg)^gamma_neg]`.
    The focusing weights are constants (computed without gradient); the reduction is a sum over batch and classes.
    """
    if logits.shape != targets.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} must have the same shape")
    logits = logits.float()
    targets = targets.to(logits.dtype)
    prob_pos = torch.sigmoid(logits)
    prob_neg = 1.0 - prob_pos
    if clip is not None and clip > 0:
        prob_neg = (prob_neg + clip).clamp(max=1.0)
    loss = targets * torch.log(prob_pos.clamp(min=eps)) + (1.0 - targets) * torch.log(prob_neg.clamp(min=eps))
    if gamma_neg > 0 or gamma_pos > 0:
        with torch.no_grad():
            prob_true = prob_pos * targets + prob_neg * (1.0 - targets)
            gamma = gamma_pos * targets + gamma_neg * (1.0 - targets)
            focusing = torch.pow(1.0 - prob_true, gamma)
        loss = loss * focusing
    return -loss.sum()


def tagging_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    gamma_neg: float = 7.0,
    gamma_pos: float = 0.0,
    clip: float | None = 0.05,
    eps: float = 1e-8,
) -> torch.Tensor:
    """ASL of the tag logits `(batch, num_tags)` against multi-hot `labels` (sum over batch and tags)."""
    return asymmetric_loss(logits, labels, gamma_neg=gamma_neg, gamma_pos=gamma_pos, clip=clip, eps=eps)


def alignment_loss(
    alignment_logits: torch.Tensor,
    gamma_neg: float = 4.0,
    gamma_pos: float = 0.0,
    clip: float | None = 0.05,
    eps: float = 1e-8,
) -> torch.Tensor:
    """ASL of image-caption logits `(batch, num_captions)` against identity targets."""
    if alignment_logits.dim() != 2:
        raise ValueError(f"`alignment_logits` must be (batch, num_captions), got {tuple(alignment_logits.shape)}")
    targets = torch.eye(*alignment_logits.shape, device=alignment_logits.device, dtype=torch.float32)
    return asymmetric_loss(alignment_logits, targets, gamma_neg=gamma_neg, gamma_pos=gamma_pos, clip=clip, eps=eps)


def distillation_loss(image_cls: torch.Tensor, teacher_image_embeds: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between `image_cls` `(batch, dim)` and `teacher_image_embeds` `(batch, dim)`."""
    if image_cls.shape != teacher_image_embeds.shape:
        raise ValueError(
            f"`teacher_image_embeds` {tuple(teacher_image_embeds.shape)} must match the image embedding "
            f"{tuple(image_cls.shape)}"
        )
    return F.l1_loss(image_cls.float(), teacher_image_embeds.float())


# --------------------------------------------------------------------------------------------------------- decoder
def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
):
    attn_weights = torch.matmul(query, key.transpose(-1, -2)) * scaling
    if attention_mask is not None:
        attn_weights = attn_weights + attention_mask
    attn_weights = nn.functional.softmax(attn_weights, dim=-1, dtype=torch.float32).to(query.dtype)
    attn_weights = nn.functional.dropout(attn_weights, p=dropout, training=module.training)
    attn_output = torch.matmul(attn_weights, value)
    attn_output = attn_output.transpose(1, 2).contiguous()
    return attn_output, attn_weights


class RamPlusCrossAttention(nn.Module):
    """Tag queries attend to the image tokens; output projection, dropout, residual and post-LayerNorm (BERT).

    In eval mode with the default `"sdpa"` implementation and no attention weights requested, `_folded_forward`
    computes the same result with the query/output projections folded into the image tokens (fewer FLOPs)."""

    def __init__(self, config: RamPlusConfig):
        super().__init__()
        self.config = config
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.scaling = self.head_dim**-0.5
        self.is_causal = False
        self.attention_dropout = config.attention_probs_dropout_prob
        self.q_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.k_proj = nn.Linear(config.text_embed_dim, config.hidden_size)
        self.v_proj = nn.Linear(config.text_embed_dim, config.hidden_size)
        self.o_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(
        self,
        hidden_states: torch.Tensor,
        image_embeds: torch.Tensor,
        output_attentions: bool = False,
        folded_image: tuple[torch.Tensor, torch.Tensor | None, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        implementation = self.config._attn_implementation
        if self.can_fold(output_attentions):
            if folded_image is None:
                folded_image = self.fold_image(image_embeds)
            return self._folded_forward(hidden_states, folded_image), None
        batch_size, num_queries, _ = hidden_states.shape
        num_tokens = image_embeds.shape[1]
        query = self.q_proj(hidden_states).view(batch_size, num_queries, self.num_heads, self.head_dim).transpose(1, 2)
        key = self.k_proj(image_embeds).view(batch_size, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)
        value = self.v_proj(image_embeds).view(batch_size, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)

        if output_attentions and implementation != "eager":
            implementation = "eager"  # only the eager path materializes the attention weights
        attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(implementation, eager_attention_forward)
        attn_output, attn_weights = attention_interface(
            self,
            query,
            key,
            value,
            None,  # every image token is attended
            scaling=self.scaling,
            dropout=self.attention_dropout if self.training else 0.0,
            is_causal=False,
        )
        attn_output = attn_output.reshape(batch_size, num_queries, -1)
        hidden_states = self.layer_norm(self.dropout(self.o_proj(attn_output)) + hidden_states)
        return hidden_states, (attn_weights if output_attentions else None)

    def can_fold(self, output_attentions: bool = False) -> bool:
        """Whether `forward` takes the folded fast path: eval mode, `"sdpa"`, no attention weights requested, and
        plain Linear projections (the fold reads their weights directly; a PEFT/LoRA or quantized wrapper adds its
        own computation, which the regular path runs)."""
        return (
            self.config._attn_implementation == "sdpa"
            and not output_attentions
            and not self.training
            and type(self.q_proj) is nn.Linear
            and type(self.o_proj) is nn.Linear
        )

    def fold_image(self, image_embeds: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """The image side of `_folded_forward`: `folded_keys` `(B, heads*N, H)`, `score_bias` `(B, heads*N)` or None,
        `folded_values` `(B, H, heads*N)`; per image, the weights of two linear maps. It depends only on the image,
        so the tag blocks of one call share it."""
        batch_size, num_tokens, _ = image_embeds.shape
        heads, head_dim, hidden_size = self.num_heads, self.head_dim, self.q_proj.in_features
        key = self.k_proj(image_embeds).view(batch_size, num_tokens, heads, head_dim)
        value = self.v_proj(image_embeds).view(batch_size, num_tokens, heads, head_dim)
        query_weight = self.q_proj.weight.view(heads, head_dim, hidden_size) * self.scaling
        # row (h, n) is the key of token n, head h, mapped back through the query projection
        folded_keys = torch.einsum("bnhd,hde->bhne", key, query_weight).reshape(batch_size, heads * num_tokens, -1)
        score_bias = None
        if self.q_proj.bias is not None:
            query_bias = self.q_proj.bias.view(heads, head_dim) * self.scaling
            score_bias = torch.einsum("bnhd,hd->bhn", key, query_bias).reshape(batch_size, heads * num_tokens)
        # column (h, n) is the value of token n, head h, mapped through the output projection
        output_weight = self.o_proj.weight.view(self.o_proj.out_features, heads, head_dim)
        folded_values = torch.einsum("bnhd,ehd->behn", value, output_weight).reshape(batch_size, -1, heads * num_tokens)
        return folded_keys, score_bias, folded_values

    def _folded_forward(
        self, hidden_states: torch.Tensor, folded_image: tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]
    ) -> torch.Tensor:
        """Inference fast path: the query and output projections are folded into the (few) image tokens.

        With K_h, V_h the per-head keys/values of the N image tokens, the scores of head h are
        `(x Wq_h^T + bq_h) K_h^T = x (K_h Wq_h)^T + K_h bq_h`, and the projected output is
        `sum_h P_h (V_h Wo_h^T) + bo`. Both rewrites are exact algebra; they replace two (queries x H x H)
        products with (queries x H x heads*N) ones (heads*N = 580 < H = 768 at full size) and need no
        per-head transposes of the (batch, tags, H) activations.

        For a single image (how `RamPlusModel.decode` runs its blocks) both products are plain linear maps whose
        weights are that image's folded keys and values, so they run on the linear kernel (oneDNN for fp32 CPU
        inference, see `_OneDnnLinearMode`), faster than the batched matmul kernel.
        """
        folded_keys, score_bias, folded_values = folded_image
        batch_size, num_queries, _ = hidden_states.shape
        # tracing first: comparing a symbolic batch size would specialize an exported graph to batch 1
        single_image = not _is_tracing() and batch_size == 1
        if single_image:
            scores = F.linear(hidden_states, folded_keys[0], None if score_bias is None else score_bias[0])
        else:
            scores = torch.matmul(hidden_states, folded_keys.transpose(1, 2))
            if score_bias is not None:
                scores = scores + score_bias.unsqueeze(1)
        probs = scores.view(batch_size, num_queries, self.num_heads, -1).softmax(dim=-1, dtype=torch.float32)
        probs = probs.to(folded_values.dtype).view(batch_size, num_queries, folded_keys.shape[1])
        if single_image:
            attn_output = F.linear(probs, folded_values[0], self.o_proj.bias)
        else:
            attn_output = torch.matmul(probs, folded_values.transpose(1, 2))
            if self.o_proj.bias is not None:
                attn_output = attn_output + self.o_proj.bias
        return self.layer_norm(attn_output + hidden_states)


# images per block of the image encoder at inference (see RamPlusModel._image_embeds)
VISION_CHUNK_IMAGES = 2
# (images x tags) rows per block of the decoder at inference (see RamPlusModel.decode): 1024 rows keep the
# feed-forward activation (rows x 3072) inside a 32 MiB L3; full-size decoder per image here, fp32 / bf16:
# 0.31 / 0.14 s in blocks of 1024 rows against 0.35 / 0.17 s in blocks of 4096
DECODER_CHUNK_ROWS = 1024


class RamPlusDecoderLayer(GradientCheckpointingLayer):
    """Cross-attention then feed-forward, both with residual and post-LayerNorm; no self-attention."""

    def __init__(self, config: RamPlusConfig):
        super().__init__()
        self.cross_attention = RamPlusCrossAttention(config)
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.activation_fn = ACT2FN[config.hidden_act]
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.final_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(
        self,
        hidden_states: torch.Tensor,
        image_embeds: torch.Tensor,
        output_attentions: bool = False,
        folded_image: tuple[torch.Tensor, torch.Tensor | None, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        hidden_states, attn_weights = self.cross_attention(
            hidden_states, image_embeds, output_attentions, folded_image=folded_image
        )
        feed_forward = self.fc2(self.activation_fn(self.fc1(hidden_states)))
        hidden_states = self.final_layer_norm(self.dropout(feed_forward) + hidden_states)
        return hidden_states, attn_weights


class RamPlusDecoder(nn.Module):
    def __init__(self, config: RamPlusConfig):
        super().__init__()
        self.layers = nn.ModuleList([RamPlusDecoderLayer(config) for _ in range(config.num_hidden_layers)])

    def fold_image(self, image_embeds: torch.Tensor) -> list | None:
        """Per layer, the image side of the folded cross-attention (see `RamPlusCrossAttention.fold_image`), to be
        shared by several tag blocks of one call; None where the layers take the regular path."""
        if not all(layer.cross_attention.can_fold() for layer in self.layers):
            return None
        return [layer.cross_attention.fold_image(image_embeds) for layer in self.layers]

    def forward(self, queries, image_embeds, output_attentions=False, output_hidden_states=False, folded_images=None):
        all_hidden_states = (queries,) if output_hidden_states else None
        all_attentions = () if output_attentions else None
        hidden_states = queries
        for index, layer in enumerate(self.layers):
            folded_image = folded_images[index] if folded_images is not None else None
            hidden_states, attn_weights = layer(hidden_states, image_embeds, output_attentions, folded_image=folded_image)
            if output_hidden_states:
                all_hidden_states += (hidden_states,)
            if output_attentions:
                all_attentions += (attn_weights,)
        return hidden_states, all_hidden_states, all_attentions


# ------------------------------------------------------------------------------------------ vocabulary in adapters
TAG_VOCABULARY_MODULE = "tag_vocabulary"


class RamPlusTagVocabulary(nn.Module):
    """Carries the model's tag vocabulary (`label_embeds` and the config's names, thresholds, Chinese names and
    description counts) inside PEFT adapters, so that tags added before fine-tuning travel with the adapter weights.

    It holds no weights of its own and adds nothing to a full model's state dict. Listed in a `LoraConfig`'s
    `modules_to_save`, peft wraps it and keeps a copy per adapter: the copy writes the owning model's vocabulary into
    the adapter's state dict (`label_embeds` and a UTF-8 JSON `vocabulary` tensor), only when the vocabulary was
    changed after loading (`RamPlusModel.set_label_embeds`), and loading that state dict (`PeftModel.from_pretrained`,
    `model.load_adapter`, Trainer checkpoints) puts the vocabulary back into the model."""

    def __init__(self, owner: nn.Module):
        super().__init__()
        self.__dict__["_owner"] = weakref.ref(owner)
        self.__dict__["_is_adapter_copy"] = False

    def __deepcopy__(self, memo):
        owner = self._owner()
        new = type(self).__new__(type(self))
        memo[id(self)] = new
        for key, value in self.__dict__.items():
            if key not in ("_owner", "_is_adapter_copy"):
                new.__dict__[key] = copy.deepcopy(value, memo)
        # copying the whole model maps the owner to its copy; peft copying this module alone keeps the owner
        mapped = memo.get(id(owner), owner) if owner is not None else None
        new.__dict__["_owner"] = weakref.ref(mapped) if mapped is not None else (lambda: None)
        new.__dict__["_is_adapter_copy"] = mapped is owner or self._is_adapter_copy
        return new

    def __getstate__(self):  # pickling (torch.save(model), spawn workers): the owner re-links itself on load
        state = dict(self.__dict__)
        state["_owner"] = None
        return state

    def __setstate__(self, state):
        owner = state.pop("_owner", None)
        self.__dict__.update(state)
        self.__dict__["_owner"] = owner if owner is not None else (lambda: None)

    def forward(self):
        raise RuntimeError("RamPlusTagVocabulary only carries the vocabulary in adapters; it has no forward")

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        owner = self._owner()
        if (
            owner is None
            or not self._is_adapter_copy
            or owner._modules.get(TAG_VOCABULARY_MODULE) is self  # merged back into a plain model: nothing to add
            or owner.__dict__.get("_loading_adapter_vocabulary", False)  # load_adapter installed it already
        ):
            return
        if getattr(owner, "vocabulary_changed", False):
            destination[prefix + "label_embeds"] = owner.label_embeds.detach().clone()
            destination[prefix + "vocabulary"] = encode_vocabulary(owner.config)
        else:  # the base model's own vocabulary: empty placeholders (peft loads the keys a module lists)
            destination[prefix + "label_embeds"] = owner.label_embeds.new_zeros(0, owner.label_embeds.shape[-1])
            destination[prefix + "vocabulary"] = torch.zeros(0, dtype=torch.uint8)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
        embeds, vocabulary = state_dict.get(prefix + "label_embeds"), state_dict.get(prefix + "vocabulary")
        if (embeds is None or embeds.numel() == 0) and (vocabulary is None or vocabulary.numel() == 0):
            return  # the adapter was trained with its base model's vocabulary
        owner = self._owner()
        if owner is None or embeds is None or vocabulary is None:
            error_msgs.append(f"{prefix}: an adapter vocabulary needs both `label_embeds` and `vocabulary`")
            return
        owner.apply_vocabulary(embeds, vocabulary)


def _read_adapter_weights(peft_model_id, kwargs) -> dict | None:
    """The adapter's state dict from a local folder or the Hub (`adapter_model.safetensors`), or None when the folder
    has none (then `load_adapter` reports it)."""
    from safetensors.torch import load_file
    from transformers.utils import cached_file

    options = dict(kwargs.get("adapter_kwargs") or {})
    for name in ("revision", "token", "cache_dir", "local_files_only", "force_download", "subfolder"):
        if kwargs.get(name) is not None:
            options[name] = kwargs[name]
    path = os.path.join(os.fspath(peft_model_id), "adapter_model.safetensors")
    if not os.path.isfile(path):
        try:
            path = cached_file(
                peft_model_id, "adapter_model.safetensors", _raise_exceptions_for_missing_entries=False, **options
            )
        except (OSError, ValueError):
            path = None
    return load_file(path) if path else None


def encode_vocabulary(config: RamPlusConfig) -> torch.Tensor:
    """The config's tag vocabulary (names, thresholds, Chinese names, description counts) as a uint8 JSON tensor."""
    payload = {
        "tag_names": list(config.tag_names),
        "tag_thresholds": config.tag_thresholds,
        "tag_names_chinese": config.tag_names_chinese,
        "tag_description_counts": config.tag_description_counts,
        "descriptions_per_tag": int(config.descriptions_per_tag),
    }
    return torch.frombuffer(bytearray(json.dumps(payload, ensure_ascii=False).encode("utf-8")), dtype=torch.uint8)


def decode_vocabulary(tensor: torch.Tensor) -> dict:
    try:
        payload = json.loads(bytes(tensor.to(torch.uint8).cpu().tolist()).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise ValueError(f"the adapter's tag vocabulary is not valid UTF-8 JSON: {error}") from error
    if not isinstance(payload, dict) or not isinstance(payload.get("tag_names"), list):
        raise ValueError("the adapter's tag vocabulary has no `tag_names` list")
    return payload


# ------------------------------------------------------------------------------------------------------ pretrained
class RamPlusPreTrainedModel(PreTrainedModel):
    config_class = RamPlusConfig
    config: RamPlusConfig
    base_model_prefix = "ram_plus"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    supports_gradient_checkpointing = True
    _no_split_modules = ["RamPlusDecoderLayer", "SwinStage", "CLIPEncoderLayer"]
    _supports_sdpa = True
    _supports_flash_attn = False
    _supports_flex_attn = False
    _supports_attention_backend = True
    # buffers of the original Swin that transformers recomputes
    _keys_to_ignore_on_load_unexpected = [r"relative_position_index", r"attn_mask"]

    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, RamPlusModel):
            init.constant_(module.reweight_scale, self.config.reweight_scale_init)
            if not getattr(module.label_embeds, "_is_hf_initialized", False) and module.label_embeds.device.type != "meta":
                # random unit vectors: a fresh model has no trained vocabulary
                random_embeds = torch.randn(module.label_embeds.shape, dtype=torch.float32)
                init.copy_(module.label_embeds, F.normalize(random_embeds, dim=-1))


# ------------------------------------------------------------------------------------------------------------ model
class RamPlusModel(RamPlusPreTrainedModel):
    """
    The RAM++ image tagger: `forward(pixel_values)` returns one logit per tag.

    The built-in vocabulary is stored as `label_embeds`, a `(num_tags * descriptions_per_tag, text_embed_dim)` buffer of
    L2-normalized CLIP text embeddings (D consecutive rows per tag), saved with the model. Any call can use other
    label embeddings instead (open-set tagging), with their own number of descriptions per tag.
    """

    def __init__(self, config: RamPlusConfig):
        super().__init__(config)
        vision_width = config.vision_config.hidden_size
        self.vision_model = SwinModel(config.vision_config, add_pooling_layer=True)
        self.image_projection = nn.Linear(vision_width, config.text_embed_dim)
        self.register_buffer(
            "label_embeds",
            torch.zeros(config.num_tags * config.descriptions_per_tag, config.text_embed_dim),
            persistent=True,
        )
        self.reweight_scale = nn.Parameter(torch.tensor(float(config.reweight_scale_init)))
        self.query_projection = nn.Linear(config.text_embed_dim, config.hidden_size)
        self.decoder = RamPlusDecoder(config)
        self.classifier = nn.Linear(config.hidden_size, 1)
        if config.text_config is not None:
            self.text_model = CLIPTextModelWithProjection(config.text_config)
            self.text_model.requires_grad_(False)
        else:
            self.text_model = None
        # the vocabulary as it travels in PEFT adapters (see RamPlusTagVocabulary); no weights of its own
        self.tag_vocabulary = RamPlusTagVocabulary(self)
        self.vocabulary_changed = False
        self.post_init()

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        model = super().from_pretrained(*args, **kwargs)
        if isinstance(model, RamPlusModel) and model.text_model is not None:
            model.text_model.requires_grad_(False)  # loading re-creates parameters; the text tower stays frozen
        return model

    def __setstate__(self, state):
        super().__setstate__(state)
        for module in self.modules():  # unpickled vocabulary carriers (and their adapter copies) belong to this model
            if isinstance(module, RamPlusTagVocabulary) and module._owner() is None:
                module.__dict__["_owner"] = weakref.ref(self)

    def load_adapter(self, peft_model_id=None, adapter_name=None, peft_config=None, adapter_state_dict=None, **kwargs):
        """`PeftAdapterMixin.load_adapter` that also installs the tag vocabulary an adapter carries (see
        `RamPlusTagVocabulary`): `model.load_adapter(dir)`, `AutoModel.from_pretrained(adapter_dir)` and
        `pipeline(model=adapter_dir)` give the adapter's tags."""
        if adapter_state_dict is None and peft_model_id is not None:
            adapter_state_dict = _read_adapter_weights(peft_model_id, kwargs)
        if adapter_state_dict is not None:
            adapter_state_dict = dict(adapter_state_dict)
            found = {}
            for key in list(adapter_state_dict):
                module, _, leaf = key.rpartition(".")
                if TAG_VOCABULARY_MODULE in module.split(".") and leaf in ("label_embeds", "vocabulary"):
                        found[leaf] = adapter_state_dict.pop(key)
            if found.get("vocabulary") is not None and found["vocabulary"].numel():
                if found.get("label_embeds") is None:
                    raise ValueError(f"the adapter {peft_model_id} has a tag vocabulary but no label embeddings")
                self.apply_vocabulary(found["label_embeds"], found["vocabulary"])
            elif peft_model_id is not None and os.path.isfile(os.path.join(os.fspath(peft_model_id), "tag_set.json")):
                raise ValueError(
                    f"the adapter {peft_model_id} keeps its tags in tag_set.json (written by an earlier version), which "
                    "this loading path does not read; load it with "
                    "`transformers_ramplus.peft_utils.load_adapter(model, adapter_dir)`"
                )
        self.__dict__["_loading_adapter_vocabulary"] = True
        try:
            return super().load_adapter(
                peft_model_id,
                adapter_name=adapter_name,
                peft_config=peft_config,
                adapter_state_dict=adapter_state_dict,
                **kwargs,
            )
        finally:
            self.__dict__["_loading_adapter_vocabulary"] = False

    # ------------------------------------------------------------------ public building blocks
    def _inference_context(self):
        """oneDNN linear kernels for fp32 CPU inference without autograd (see `_OneDnnLinearMode`), else nothing."""
        if (
            self.config.cpu_onednn_linear
            and not self.training
            and not torch.is_grad_enabled()
            and not _is_tracing()
            and not torch.is_autocast_enabled("cpu")  # autocast decides the matmul dtype itself
            and self.image_projection.weight.device.type == "cpu"
            and self.image_projection.weight.dtype == torch.float32
            and _onednn_linear_available()
        ):
            return _OneDnnLinearMode()
        return contextlib.nullcontext()

    def get_image_embeds(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Image tokens `[mean, t1..t144]` of the Swin encoder, projected: `(batch, 145, text_embed_dim)`."""
        with self._inference_context():
            return self._image_embeds(pixel_values)

    def _image_embeds(self, pixel_values: torch.Tensor) -> torch.Tensor:
        if not isinstance(pixel_values, torch.Tensor):
            raise TypeError(f"`pixel_values` must be a torch.Tensor, got {type(pixel_values).__name__}")
        expected_channels = self.config.vision_config.num_channels
        if pixel_values.dim() != 4 or pixel_values.shape[1] != expected_channels:
            raise ValueError(
                f"`pixel_values` must have shape (batch, {expected_channels}, height, width), "
                f"got {tuple(pixel_values.shape)}"
            )
        if pixel_values.shape[0] == 0:
            raise ValueError("`pixel_values` holds no image (batch size 0)")
        patch = self.config.vision_config.patch_size
        patch = patch if isinstance(patch, int) else patch[0]
        if pixel_values.shape[-1] % patch or pixel_values.shape[-2] % patch:
            raise ValueError(
                f"image height and width must be multiples of the patch size {patch}, got {tuple(pixel_values.shape[-2:])}"
            )
        target_dtype = self.image_projection.weight.dtype
        pixel_values = pixel_values.to(target_dtype)
        # tracing first: comparing a symbolic batch size would specialize an exported graph to one batch size
        if _is_tracing() or self.training or pixel_values.shape[0] <= VISION_CHUNK_IMAGES:
            return self._encode_images(pixel_values)
        # inference on many images: the Swin encoder's per-image cost grows with the batch (its activations leave
        # the caches; fp32 Swin-L here: 0.80 s/image at batch 8 against 0.70 in blocks of 2 to 4), so encode in blocks
        return torch.cat([self._encode_images(block) for block in pixel_values.split(VISION_CHUNK_IMAGES)])

    def _encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        vision_outputs = self.vision_model(pixel_values=pixel_values)
        tokens = torch.cat([vision_outputs.pooler_output.unsqueeze(1), vision_outputs.last_hidden_state], dim=1)
        return self.image_projection(tokens)

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """L2-normalized CLIP text embeddings `(num_texts, text_embed_dim)` from the bundled frozen text tower."""
        if self.text_model is None:
            raise ValueError(
                "this model has no text tower, so it cannot encode new text; use the built-in tags, pass precomputed "
                "`label_embeds`, or convert the model with a CLIP text tower (`ramplus convert --text-tower ...`)"
            )
        outputs = self.text_model(input_ids=input_ids, attention_mask=attention_mask)
        return F.normalize(outputs.text_embeds, dim=-1)

    def resolve_label_embeds(
        self,
        label_embeds: torch.Tensor | None = None,
        descriptions_per_tag: int | None = None,
        description_mask: torch.Tensor | None = None,
        tag_indices: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Return `(label_embeds (C, D, T), description_mask (C, D) or None)` for a call, validated."""
        width = self.config.text_embed_dim
        if label_embeds is None:
            if description_mask is not None:
                raise ValueError("`description_mask` needs `label_embeds` (the built-in tags use their stored counts)")
            label_embeds = self.label_embeds.view(self.config.num_tags, self.config.descriptions_per_tag, width)
            description_mask = self.builtin_description_mask()
            if tag_indices is not None:
                tag_indices = torch.as_tensor(tag_indices, dtype=torch.long, device=label_embeds.device)
                if tag_indices.dim() != 1 or tag_indices.numel() == 0:
                    raise ValueError(f"`tag_indices` must be a non-empty 1-D list of tag ids, got {tuple(tag_indices.shape)}")
                # value checks need the data: skipped while torch.compile / export traces the graph
                bad = None if _is_tracing() else tag_indices[(tag_indices < 0) | (tag_indices >= self.config.num_tags)]
                if bad is not None and bad.numel():
                    raise ValueError(
                        f"`tag_indices` contains ids outside [0, {self.config.num_tags}): {bad[:10].tolist()}"
                    )
                label_embeds = label_embeds.index_select(0, tag_indices)
                if description_mask is not None:
                    description_mask = description_mask.index_select(0, tag_indices)
            return label_embeds, description_mask
        if tag_indices is not None:
            raise ValueError("pass either `tag_indices` (a subset of the built-in tags) or `label_embeds`, not both")
        if not isinstance(label_embeds, torch.Tensor):
            raise TypeError(f"`label_embeds` must be a torch.Tensor, got {type(label_embeds).__name__}")
        if label_embeds.dim() == 2:
            if descriptions_per_tag is None:
                raise ValueError(
                    "2-D `label_embeds` (num_tags * descriptions_per_tag, dim) need `descriptions_per_tag`; or pass a "
                    "3-D tensor (num_tags, descriptions_per_tag, dim)"
                )
            if descriptions_per_tag <= 0 or label_embeds.shape[0] % descriptions_per_tag:
                raise ValueError(
                    f"`label_embeds` has {label_embeds.shape[0]} rows, not a multiple of "
                    f"`descriptions_per_tag`={descriptions_per_tag}"
                )
            label_embeds = label_embeds.view(-1, descriptions_per_tag, label_embeds.shape[-1])
        elif label_embeds.dim() != 3:
            raise ValueError(
                f"`label_embeds` must be (num_tags * D, {width}) or (num_tags, D, {width}), got {tuple(label_embeds.shape)}"
            )
        elif descriptions_per_tag is not None and descriptions_per_tag != label_embeds.shape[1]:
            raise ValueError(
                f"`descriptions_per_tag`={descriptions_per_tag} disagrees with `label_embeds` of shape "
                f"{tuple(label_embeds.shape)}"
            )
        if label_embeds.shape[-1] != width or label_embeds.shape[0] == 0 or label_embeds.shape[1] == 0:
            raise ValueError(
                f"`label_embeds` must hold at least one tag of width {width}, got shape {tuple(label_embeds.shape)}"
            )
        if description_mask is not None:
            description_mask = torch.as_tensor(description_mask, device=label_embeds.device).bool()
            if description_mask.shape != label_embeds.shape[:2]:
                raise ValueError(
                    f"`description_mask` must have shape {tuple(label_embeds.shape[:2])} (tags, descriptions), "
                    f"got {tuple(description_mask.shape)}"
                )
            empty = None if _is_tracing() else (~description_mask.any(dim=1)).nonzero().flatten()
            if empty is not None and empty.numel():
                raise ValueError(f"tags without any description in `description_mask`: {empty[:10].tolist()}")
        dtype = self.query_projection.weight.dtype
        return label_embeds.to(device=self.query_projection.weight.device, dtype=dtype), description_mask

    def builtin_description_mask(self) -> torch.Tensor | None:
        """`(num_tags, D)` mask of the real rows of the built-in label embeddings (`None`: all rows are real)."""
        counts = self.config.tag_description_counts
        if counts is None:
            return None
        counts = torch.as_tensor(counts, device=self.label_embeds.device)
        return torch.arange(self.config.descriptions_per_tag, device=counts.device).unsqueeze(0) < counts.unsqueeze(1)

    def set_label_embeds(
        self,
        label_embeds: torch.Tensor,
        tag_names: list[str],
        thresholds: list[float] | None = None,
        description_counts: list[int] | None = None,
        chinese_names: list[str] | None = None,
    ) -> None:
        """Replace the built-in vocabulary: `label_embeds` `(num_tags, D, text_embed_dim)` (rows L2-normalized),
        names, optional thresholds, per-tag real description counts (the rest of the D rows are padding) and Chinese
        names. The config is updated so the model saves and reloads with the new vocabulary."""
        if not isinstance(label_embeds, torch.Tensor) or label_embeds.dim() != 3:
            raise ValueError("`label_embeds` must be a (num_tags, descriptions_per_tag, dim) tensor")
        if label_embeds.shape[0] != len(tag_names) or label_embeds.shape[-1] != self.config.text_embed_dim:
            raise ValueError(
                f"`label_embeds` {tuple(label_embeds.shape)} does not fit {len(tag_names)} tags of width "
                f"{self.config.text_embed_dim}"
            )
        self.config.set_tags(
            tag_names,
            thresholds=thresholds,
            chinese_names=chinese_names,
            description_counts=description_counts,
            descriptions_per_tag=label_embeds.shape[1],
        )
        flat = label_embeds.detach().reshape(-1, label_embeds.shape[-1])
        self.label_embeds = flat.to(device=self.label_embeds.device, dtype=self.label_embeds.dtype).contiguous()
        self.vocabulary_changed = True  # adapters trained from here on carry this vocabulary

    def apply_vocabulary(self, label_embeds: torch.Tensor, vocabulary: torch.Tensor) -> None:
        """Install a vocabulary saved in an adapter: `label_embeds` `(num_tags * D, dim)` and the uint8 JSON
        `vocabulary` tensor written by `RamPlusTagVocabulary`."""
        payload = decode_vocabulary(vocabulary)
        names = payload["tag_names"]
        per_tag = int(payload.get("descriptions_per_tag") or 0)
        width = self.config.text_embed_dim
        if label_embeds.dim() != 2 or label_embeds.shape[-1] != width or label_embeds.shape[0] != len(names) * per_tag:
            raise ValueError(
                f"the adapter's label embeddings {tuple(label_embeds.shape)} do not fit {len(names)} tags x {per_tag} "
                f"descriptions of width {width} (was the adapter trained on a model with another text width?)"
            )
        if (
            names == list(self.config.tag_names)
            and per_tag == self.config.descriptions_per_tag
            and tuple(self.label_embeds.shape) == tuple(label_embeds.shape)
            and torch.equal(self.label_embeds, label_embeds.to(self.label_embeds.device, self.label_embeds.dtype))
        ):
            return
        self.set_label_embeds(
            label_embeds.reshape(len(names), per_tag, width),
            names,
            thresholds=payload.get("tag_thresholds"),
            description_counts=payload.get("tag_description_counts"),
            chinese_names=payload.get("tag_names_chinese"),
        )
        logger.info("installed the adapter's tag vocabulary (%d tags)", len(names))

    def compute_label_queries(
        self,
        image_embeds: torch.Tensor,
        label_embeds: torch.Tensor,
        description_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Description re-weighting + query projection + ReLU: `(batch, num_tags, hidden_size)`.

        `w[b, c, :] = softmax_d(exp(scale) * normalize(cls_b) . E[c, d])`, `q[b, c] = sum_d w[b, c, d] E[c, d]`,
        computed with two batched matrix products (no `(batch, tags, descriptions, dim)` temporary).
        """
        num_tags, num_desc, width = label_embeds.shape
        # The re-weighting runs in the dtype of the label embeddings, outside autocast: under bf16 autocast an fp32
        # vocabulary (C*D rows) would otherwise be converted on every call, which costs more than the products.
        with torch.autocast(device_type=label_embeds.device.type, enabled=False):
            cls = F.normalize(image_embeds[:, 0, :].to(label_embeds.dtype), dim=-1)
            # (B, C*D) similarities: one GEMM against all description embeddings
            similarity = torch.matmul(cls, label_embeds.reshape(num_tags * num_desc, width).t())
            # the softmax over descriptions in fp32 (C*D values per image, cheap; keeps bf16 models' weights accurate)
            similarity = similarity.view(-1, num_tags, num_desc).float() * self.reweight_scale.float().exp()
            if description_mask is not None:
                similarity = similarity.masked_fill(~description_mask.unsqueeze(0), torch.finfo(similarity.dtype).min)
            weights = similarity.softmax(dim=-1).to(label_embeds.dtype)
            # per tag: (B, D) x (D, T) -> (C, B, T), then (B, C, T) contiguous (a no-op at batch 1): linear kernels
            # take a strided input through a slower path
            pooled = torch.bmm(weights.transpose(0, 1), label_embeds).transpose(0, 1).contiguous()
        return F.relu(self.query_projection(pooled), inplace=True)  # in place: no second (B, C, H) buffer

    def decode(
        self,
        queries: torch.Tensor,
        image_embeds: torch.Tensor,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
    ):
        """Run the decoder and the head: returns `(logits (B, Q), hidden_states, attentions)`.

        Every (image, tag) row is decoded independently of the others (cross-attention to that image's tokens, then
        a row-wise feed-forward), so at inference the rows are decoded in blocks of at most `DECODER_CHUNK_ROWS`
        rows of one image: the same numbers, with a working set that stays in cache (the feed-forward activation of
        all 4585 tags of 8 images would be 36680 x 3072), and attention products that are plain linear maps of that
        image's folded keys and values (see `RamPlusCrossAttention._folded_forward`). The image side of the folded
        attention is computed once per image and shared by its blocks."""
        batch_size, num_queries = queries.shape[:2]
        if (
            _is_tracing()  # first: comparing symbolic sizes would specialize an exported graph
            or self.training
            or output_attentions
            or output_hidden_states
            or batch_size * num_queries <= DECODER_CHUNK_ROWS
        ):
            hidden_states, all_hidden_states, all_attentions = self.decoder(
                queries, image_embeds, output_attentions=output_attentions, output_hidden_states=output_hidden_states
            )
            return self.classifier(hidden_states).squeeze(-1), all_hidden_states, all_attentions
        logits = []
        for index in range(batch_size):
            tokens = image_embeds[index : index + 1]
            folded_images = self.decoder.fold_image(tokens)  # once per image, shared by its blocks
            for rows in queries[index : index + 1].split(DECODER_CHUNK_ROWS, dim=1):
                hidden_states = self.decoder(rows, tokens, folded_images=folded_images)[0]
                logits.append(self.classifier(hidden_states).squeeze(-1))
        return torch.cat(logits, dim=1).view(batch_size, num_queries), None, None

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        image_embeds: torch.Tensor | None = None,
        label_embeds: torch.Tensor | None = None,
        descriptions_per_tag: int | None = None,
        description_mask: torch.Tensor | None = None,
        tag_indices: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        caption_input_ids: torch.Tensor | None = None,
        caption_attention_mask: torch.Tensor | None = None,
        caption_embeds: torch.Tensor | None = None,
        teacher_image_embeds: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> RamPlusOutput | tuple:
        r"""
        Args:
            pixel_values (`torch.FloatTensor` of shape `(batch_size, 3, height, width)`):
                Images prepared by [`RamPlusImageProcessor`].
            image_embeds (`torch.FloatTensor` of shape `(batch_size, 145, text_embed_dim)`, *optional*):
                Precomputed output of [`~RamPlusModel.get_image_embeds`], instead of `pixel_values` (lets one image
                be tagged against several tag sets while running the image encoder once).
            label_embeds (`torch.FloatTensor`, *optional*):
                Label embeddings to use instead of the built-in ones: `(num_tags, D, text_embed_dim)`, or
                `(num_tags * D, text_embed_dim)` with `descriptions_per_tag=D`. Rows must be L2-normalized CLIP text
                embeddings.
            descriptions_per_tag (`int`, *optional*): D for 2-D `label_embeds`.
            description_mask (`torch.BoolTensor` of shape `(num_tags, D)`, *optional*):
                Which descriptions of each tag are real (tags with fewer descriptions are padded); padded ones get
                zero weight in the re-weighting softmax.
            tag_indices (`torch.LongTensor`, *optional*): tag only this subset of the built-in tags (cost is
                proportional to the subset size); logits follow the order of `tag_indices`.
            labels (`torch.FloatTensor` of shape `(batch_size, num_tags)`, *optional*):
                Multi-hot targets; gives the tagging loss (asymmetric loss).
            caption_input_ids / caption_attention_mask (`torch.LongTensor` of shape `(num_captions, seq_len)`, *optional*):
                Tokenized captions (one per image) for the image-text alignment loss, encoded by the frozen text tower.
            caption_embeds (`torch.FloatTensor` of shape `(num_captions, text_embed_dim)`, *optional*):
                Precomputed caption embeddings instead of `caption_input_ids`.
            teacher_image_embeds (`torch.FloatTensor` of shape `(batch_size, text_embed_dim)`, *optional*):
                CLIP ViT-B/16 image embeddings of the same images; gives the L1 distillation loss.
        """
        with self._inference_context():
            return self._forward(
                pixel_values=pixel_values,
                image_embeds=image_embeds,
                label_embeds=label_embeds,
                descriptions_per_tag=descriptions_per_tag,
                description_mask=description_mask,
                tag_indices=tag_indices,
                labels=labels,
                caption_input_ids=caption_input_ids,
                caption_attention_mask=caption_attention_mask,
                caption_embeds=caption_embeds,
                teacher_image_embeds=teacher_image_embeds,
                output_attentions=output_attentions,
                output_hidden_states=output_hidden_states,
                return_dict=return_dict,
            )

    def _forward(
        self,
        pixel_values,
        image_embeds,
        label_embeds,
        descriptions_per_tag,
        description_mask,
        tag_indices,
        labels,
        caption_input_ids,
        caption_attention_mask,
        caption_embeds,
        teacher_image_embeds,
        output_attentions,
        output_hidden_states,
        return_dict,
    ) -> RamPlusOutput | tuple:
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        output_attentions = bool(output_attentions) if output_attentions is not None else self.config.output_attentions
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        if (pixel_values is None) == (image_embeds is None):
            raise ValueError("pass exactly one of `pixel_values` and `image_embeds`")
        if image_embeds is None:
            image_embeds = self._image_embeds(pixel_values)
        elif image_embeds.dim() != 3 or image_embeds.shape[-1] != self.config.text_embed_dim:
            raise ValueError(
                f"`image_embeds` must be (batch, tokens, {self.config.text_embed_dim}), got {tuple(image_embeds.shape)}"
            )

        embeds, mask = self.resolve_label_embeds(label_embeds, descriptions_per_tag, description_mask, tag_indices)
        queries = self.compute_label_queries(image_embeds, embeds, mask)
        logits, all_hidden_states, all_attentions = self.decode(
            queries, image_embeds, output_attentions=output_attentions, output_hidden_states=output_hidden_states
        )

        tag_loss = alignment_loss_value = distillation_loss_value = alignment_logits = None
        losses = []
        if labels is not None:
            if labels.shape != logits.shape:
                raise ValueError(f"`labels` must have shape {tuple(logits.shape)} (batch, tags), got {tuple(labels.shape)}")
            tag_loss = tagging_loss(
                logits,
                labels,
                gamma_neg=self.config.tag_loss_gamma_neg,
                gamma_pos=self.config.tag_loss_gamma_pos,
                clip=self.config.tag_loss_clip,
                eps=self.config.asl_eps,
            )
            losses.append(self.config.tag_loss_weight * tag_loss)
        if caption_input_ids is not None or caption_embeds is not None:
            if caption_embeds is None:
                caption_embeds = self.encode_text(caption_input_ids, caption_attention_mask)
            alignment_logits = self.alignment_logits(image_embeds, caption_embeds)
            alignment_loss_value = alignment_loss(
                alignment_logits,
                gamma_neg=self.config.align_loss_gamma_neg,
                gamma_pos=self.config.align_loss_gamma_pos,
                clip=self.config.align_loss_clip,
                eps=self.config.asl_eps,
            )
            losses.append(self.config.align_loss_weight * alignment_loss_value)
        if teacher_image_embeds is not None:
            distillation_loss_value = distillation_loss(image_embeds[:, 0, :], teacher_image_embeds)
            losses.append(self.config.distill_loss_weight * distillation_loss_value)
        loss = torch.stack(losses).sum() if losses else None

        output = RamPlusOutput(
            loss=loss,
            logits=logits,
            image_embeds=image_embeds,
            tag_loss=tag_loss,
            alignment_loss=alignment_loss_value,
            distillation_loss=distillation_loss_value,
            alignment_logits=alignment_logits,
            hidden_states=all_hidden_states,
            cross_attentions=all_attentions,
        )
        return output if return_dict else output.to_tuple()

    def alignment_logits(self, image_embeds: torch.Tensor, caption_embeds: torch.Tensor) -> torch.Tensor:
        """Every caption as a query for every image, through the same decoder and head: `(batch, num_captions)`."""
        if caption_embeds.dim() != 2 or caption_embeds.shape[-1] != self.config.text_embed_dim:
            raise ValueError(
                f"caption embeddings must be (num_captions, {self.config.text_embed_dim}), got {tuple(caption_embeds.shape)}"
            )
        caption_embeds = caption_embeds.to(self.query_projection.weight.dtype)
        queries = F.relu(self.query_projection(caption_embeds))
        queries = queries.unsqueeze(0).expand(image_embeds.shape[0], -1, -1)
        logits, _, _ = self.decode(queries, image_embeds)
        return logits


__all__ = [
    "RamPlusModel",
    "RamPlusTagVocabulary",
    "RamPlusPreTrainedModel",
    "RamPlusOutput",
    "alignment_loss",
    "asymmetric_loss",
    "distillation_loss",
    "tagging_loss",
]
