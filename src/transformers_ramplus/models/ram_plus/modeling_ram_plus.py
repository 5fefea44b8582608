# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""PyTorch RAM++ (Recognize Anything Plus) model: the reference implementation.

Swin image encoder -> 145 tokens (mean token + 144) -> image projection -> description re-weighting of the label
embeddings -> query projection + ReLU -> a cross-attention-only decoder (Query2Label style, BERT post-LayerNorm) -> a
linear head giving one logit per tag. The training losses (asymmetric tagging and alignment losses, L1 distillation)
are computed when their targets are given.

This file is the computation written plainly. Faster inference (oneDNN fp32 linear kernels, the decoder's
cross-attention folded into the image tokens, image and tag blocking) lives in `inference/fast_paths.py`:
`enable_fast_inference(model)` installs it as the `fast_inference` submodule, which `get_image_embeds`,
`description_similarity` and `tag_logits` consult (see `RamPlusModel._fast_inference`); it gives the same outputs.

This file imports only its configuration, `transformers` and `torch`, so that `save_pretrained` after
`register_for_auto_class` ships working remote code.
"""

from __future__ import annotations

import json
import numbers
import os
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import CLIPTextModelWithProjection, SwinModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.conversion_mapping import register_checkpoint_conversion_mapping
from transformers.core_model_loading import WeightRenaming
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS, PreTrainedModel, load_state_dict
from transformers.utils import ModelOutput, cached_file, logging
from transformers.utils.output_capturing import OutputRecorder, capture_outputs

from .configuration_ram_plus import RamPlusConfig


logger = logging.get_logger(__name__)


# Checkpoints written before the decoder layer owned its post-attention LayerNorm stored it inside the attention
# module (`cross_attention.layer_norm.*`), and checkpoints store the label embeddings at the top level
# (`label_embeds`), as before they had a module of their own (`tag_embeddings.label_embeds`). They load unchanged:
# `from_pretrained` renames the keys through this mapping (and `save_pretrained` keeps writing that layout, so every
# version reads every file), and plain `load_state_dict` (a Trainer resuming a checkpoint) renames the LayerNorm
# through `RamPlusDecoderLayer._load_earlier_layout`.
_EARLIER_LAYER_NORM, _LAYER_NORM = "cross_attention.layer_norm.", "cross_attention_layer_norm."
register_checkpoint_conversion_mapping(
    "RamPlusModel",
    [
        WeightRenaming(source_patterns=_EARLIER_LAYER_NORM.replace(".", r"\."), target_patterns=_LAYER_NORM),
        WeightRenaming(source_patterns=r"^label_embeds", target_patterns="tag_embeddings.label_embeds"),
    ],
    overwrite=True,
)


def _is_tracing() -> bool:
    """True while torch.compile, torch.export or the ONNX exporter trace the model (value checks are skipped)."""
    return torch.compiler.is_compiling() or torch.jit.is_tracing()


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
            `(batch_size, num_heads, num_tags, 145)`, returned with `output_attentions=True` (eager attention).
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



@dataclass
class RamPlusHeatmapOutput(ModelOutput):
    """
    Output of [`RamPlusModel.tag_heatmaps`]: where each tag looks in each image.

    Args:
        heatmaps (`torch.FloatTensor` or `list[torch.FloatTensor]`): of shape
            `(batch_size, num_tags, grid_height, grid_width)`, or with `target_sizes` a list of `(num_tags, height,
            width)` tensors, one per image: the decoder's cross-attention of every tag query
            over the image tokens (12x12 at 384 px), the global (mean) token left out, averaged over the chosen heads
            and layers; with `target_sizes`, bilinearly resized to each image's size.
        logits (`torch.FloatTensor` of shape `(batch_size, num_tags)`): the tag logits of the same pass.
        global_attention (`torch.FloatTensor` of shape `(batch_size, num_tags)`): the attention on the global token,
            averaged the same way (without normalization, `heatmaps` of the token grid plus this sum to 1).
        tag_indices (`torch.LongTensor` of shape `(num_tags,)`, *optional*): the tags' ids in the model's vocabulary
            (`None` for open-set label embeddings).
        tag_names (`list[str]`, *optional*): the tags' names, in the order of the heatmaps.
    """

    heatmaps: torch.FloatTensor | list[torch.FloatTensor] | None = None
    logits: torch.FloatTensor | None = None
    global_attention: torch.FloatTensor | None = None
    tag_indices: torch.LongTensor | None = None
    tag_names: list[str] | None = None


# ------------------------------------------------------------------------------------------------------------ losses
def asymmetric_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    gamma_neg: float = 4.0,
    gamma_pos: float = 0.0,
    clip: float | None = 0.05,
    eps: float = 1e-8,
) -> torch.Tensor:
    """Asymmetric loss (Ridnik et al. 2021) with the original RAM++ semantics.

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
    """ASL of image-caption logits `(batch, num_captions)` against identity targets (caption i describes image i)."""
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
    """Multi-head attention of the tag queries `(batch, num_tags, hidden_size)` over the image tokens
    `(batch, num_tokens, text_embed_dim)`, with output projection. Every image token is attended (no mask)."""

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

    def forward(
        self, hidden_states: torch.Tensor, image_embeds: torch.Tensor, **kwargs
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        input_shape = hidden_states.shape[:-1]
        query = self.q_proj(hidden_states).view(*input_shape, -1, self.head_dim).transpose(1, 2)
        token_shape = (*image_embeds.shape[:-1], -1, self.head_dim)
        key = self.k_proj(image_embeds).view(token_shape).transpose(1, 2)
        value = self.v_proj(image_embeds).view(token_shape).transpose(1, 2)

        attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )
        attn_output, attn_weights = attention_interface(
            self,
            query,
            key,
            value,
            None,
            scaling=self.scaling,
            dropout=0.0 if not self.training else self.attention_dropout,
            is_causal=False,
            **kwargs,
        )
        attn_output = attn_output.reshape(*input_shape, -1).contiguous()
        return self.o_proj(attn_output), attn_weights


class RamPlusDecoderLayer(GradientCheckpointingLayer):
    """Cross-attention then feed-forward, each followed by dropout, the residual and a LayerNorm (post-LN, as BERT);
    no self-attention: every tag query is decoded independently of the others."""

    def __init__(self, config: RamPlusConfig):
        super().__init__()
        self.cross_attention = RamPlusCrossAttention(config)
        self.cross_attention_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.activation_fn = ACT2FN[config.hidden_act]
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)
        self.final_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self._register_load_state_dict_pre_hook(self._load_earlier_layout)

    @staticmethod
    def _load_earlier_layout(state_dict, prefix, *args):
        for key in [k for k in state_dict if k.startswith(prefix + _EARLIER_LAYER_NORM)]:
            state_dict[prefix + _LAYER_NORM + key[len(prefix + _EARLIER_LAYER_NORM) :]] = state_dict.pop(key)

    def forward(self, hidden_states: torch.Tensor, image_embeds: torch.Tensor, **kwargs) -> torch.Tensor:
        attn_output, _ = self.cross_attention(hidden_states, image_embeds, **kwargs)
        hidden_states = self.cross_attention_layer_norm(hidden_states + self.dropout(attn_output))
        feed_forward = self.fc2(self.activation_fn(self.fc1(hidden_states)))
        hidden_states = self.final_layer_norm(hidden_states + self.dropout(feed_forward))
        return hidden_states


class RamPlusDecoder(nn.Module):
    """`config.num_hidden_layers` [`RamPlusDecoderLayer`]s: tag queries in, decoded tag states out."""

    def __init__(self, config: RamPlusConfig):
        super().__init__()
        self.layers = nn.ModuleList([RamPlusDecoderLayer(config) for _ in range(config.num_hidden_layers)])
        self.gradient_checkpointing = False

    def forward(self, queries: torch.Tensor, image_embeds: torch.Tensor, **kwargs) -> torch.Tensor:
        hidden_states = queries
        for layer in self.layers:
            hidden_states = layer(hidden_states, image_embeds, **kwargs)
        return hidden_states


# ------------------------------------------------------------------------------------------------- tag embeddings
TAG_EMBEDDINGS_MODULE = "tag_embeddings"  # the model's RamPlusTagEmbeddings; PEFT's `modules_to_save` names it
ADAPTER_VOCABULARY_NAME = "tag_vocabulary.json"  # an adapter's tag names, thresholds, Chinese names, counts
# set_vocabulary's keyword arguments <- the keys of the JSON payload adapters of earlier versions kept in a tensor
_EARLIER_ADAPTER_KEYS = {
    "names": "tag_names",
    "thresholds": "tag_thresholds",
    "chinese_names": "tag_names_chinese",
    "description_counts": "tag_description_counts",
}


class RamPlusTagEmbeddings(nn.Module):
    """The label embeddings of the model's tag vocabulary: `label_embeds`, a `(num_tags * descriptions_per_tag,
    text_embed_dim)` buffer of L2-normalized CLIP text embeddings (D consecutive rows per tag). The tags' names,
    thresholds, Chinese names and description counts live in the config; [`RamPlusModel.set_vocabulary`] changes both.

    An ordinary module so that PEFT carries a changed vocabulary with its standard code: listed in a `LoraConfig`'s
    `modules_to_save`, peft keeps a copy of it per adapter, saves and loads that copy's `label_embeds` with the
    adapter, and `forward()` (through peft's wrapper) returns the active adapter's copy."""

    def __init__(self, config: RamPlusConfig):
        super().__init__()
        shape = (config.num_tags * config.descriptions_per_tag, config.text_embed_dim)
        self.register_buffer("label_embeds", torch.zeros(shape), persistent=True)

    def forward(self) -> torch.Tensor:
        return self.label_embeds


def _adapter_file(peft_model_id, filename: str, options: dict) -> str | None:
    """The path of `filename` in a local adapter folder or a Hub repository (downloaded), or None when absent."""
    local = os.path.join(os.fspath(peft_model_id), filename)
    if os.path.isfile(local):
        return local
    try:
        return cached_file(peft_model_id, filename, _raise_exceptions_for_missing_entries=False, **options)
    except (OSError, ValueError):
        return None


def _adapter_tensor(weights: dict, module: str, leaf: str) -> torch.Tensor | None:
    found = [key for key in weights if key.endswith(f"{module}.{leaf}")]
    return weights[found[0]] if found else None


def read_adapter_vocabulary(peft_model_id, **options) -> dict | None:
    """The tag vocabulary a saved adapter carries, as keyword arguments of [`RamPlusModel.set_vocabulary`]; `None`
    for an adapter trained on its base model's own vocabulary. `options` are download options (`revision`, `token`,
    ...) for Hub repositories.

    Adapters keep the names, thresholds, Chinese names and description counts in `tag_vocabulary.json` and the label
    embeddings in their weights (peft's `modules_to_save` copy of `tag_embeddings`). Adapters written by earlier
    versions kept both in their weights (`tag_vocabulary.label_embeds` and a UTF-8 JSON `tag_vocabulary.vocabulary`
    tensor); they are read too."""
    weights_path = _adapter_file(peft_model_id, "adapter_model.safetensors", options)
    if weights_path is None:
        return None
    weights = load_state_dict(weights_path)
    vocabulary_path = _adapter_file(peft_model_id, ADAPTER_VOCABULARY_NAME, options)
    if vocabulary_path is not None:
        with open(vocabulary_path, encoding="utf-8") as file:
            payload = json.load(file)
        label_embeds = _adapter_tensor(weights, TAG_EMBEDDINGS_MODULE, "label_embeds")
        where = f"{ADAPTER_VOCABULARY_NAME} of {peft_model_id}"
    else:
        label_embeds = _adapter_tensor(weights, "tag_vocabulary", "label_embeds")
        encoded = _adapter_tensor(weights, "tag_vocabulary", "vocabulary")
        if encoded is None or encoded.numel() == 0:
            return None
        try:
            earlier = json.loads(bytes(encoded.to(torch.uint8).tolist()).decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as error:
            message = f"the tag vocabulary of the adapter {peft_model_id} is not valid UTF-8 JSON: {error}"
            raise ValueError(message) from error
        payload = {name: earlier.get(key) for name, key in _EARLIER_ADAPTER_KEYS.items()}
        where = f"tag vocabulary of the adapter {peft_model_id}"
    names = payload.get("names")
    if not isinstance(names, list) or not names:
        raise ValueError(f"the {where} has no `names` list")
    if label_embeds is None or label_embeds.dim() != 2 or label_embeds.shape[0] % len(names):
        shape = None if label_embeds is None else tuple(label_embeds.shape)
        raise ValueError(
            f"the {where} names {len(names)} tags, but the adapter's weights hold no label embeddings for them "
            f"({TAG_EMBEDDINGS_MODULE}.label_embeds: {shape})"
        )
    vocabulary = {name: payload.get(name) for name in _EARLIER_ADAPTER_KEYS}
    vocabulary["label_embeds"] = label_embeds.view(len(names), -1, label_embeds.shape[-1])
    return vocabulary


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
    _can_record_outputs = {
        "hidden_states": RamPlusDecoderLayer,
        "cross_attentions": OutputRecorder(RamPlusCrossAttention, index=1),
    }

    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, RamPlusModel) and module.reweight_scale is not None:
            init.constant_(module.reweight_scale, self.config.reweight_scale_init)
        elif isinstance(module, RamPlusTagEmbeddings):
            if not getattr(module.label_embeds, "_is_hf_initialized", False) and module.label_embeds.device.type != "meta":
                # random unit vectors: a fresh model has no trained vocabulary
                random_embeds = torch.randn(module.label_embeds.shape, dtype=torch.float32)
                init.copy_(module.label_embeds, F.normalize(random_embeds, dim=-1))


# ------------------------------------------------------------------------------------------------------------ model
# the submodule that `enable_fast_inference` installs (see `RamPlusModel._fast_inference`)
FAST_INFERENCE_MODULE = "fast_inference"


class RamPlusModel(RamPlusPreTrainedModel):
    """
    The RAM++ image tagger: `forward(pixel_values)` returns one logit per tag, and the training losses when their
    targets are given.

    The built-in vocabulary is stored as `label_embeds` (in `tag_embeddings`, a [`RamPlusTagEmbeddings`]), a
    `(num_tags * descriptions_per_tag, text_embed_dim)` buffer of L2-normalized CLIP text embeddings (D consecutive rows
    per tag), saved with the model; its names, thresholds, Chinese names and description counts live in the config.
    [`~RamPlusModel.set_vocabulary`] is the one way to change them. Any call can use other label embeddings instead
    (open-set tagging), with their own number of descriptions per tag. The optional CLIP text tower (`text_model`) is
    frozen: its embedding space is the space of the label embeddings.
    """

    # whether the tag queries weigh each tag's descriptions by their similarity to the image (RAM++); models without
    # (RAM, `RamModel`) have no `reweight_scale` and override `compute_label_queries`
    reweights_descriptions = True

    def __init__(self, config: RamPlusConfig):
        super().__init__(config)
        self.vision_model = SwinModel(config.vision_config, add_pooling_layer=True)
        self.image_projection = nn.Linear(config.vision_config.hidden_size, config.text_embed_dim)
        if self.reweights_descriptions:
            self.reweight_scale = nn.Parameter(torch.tensor(float(config.reweight_scale_init)))
        else:  # RAM: one embedding per tag, used as it is (see `RamModel`)
            self.register_parameter("reweight_scale", None)
        self.query_projection = nn.Linear(config.text_embed_dim, config.hidden_size)
        self.decoder = RamPlusDecoder(config)
        self.classifier = nn.Linear(config.hidden_size, 1)
        self.text_model = CLIPTextModelWithProjection(config.text_config) if config.text_config is not None else None
        self._add_modules(config)
        self.tag_embeddings = RamPlusTagEmbeddings(config)  # last: initialized after every random weight, as before
        # True once `set_vocabulary` changed the loaded vocabulary: adapters trained from here on must carry it
        self.vocabulary_changed = False
        self.post_init()
        self.freeze_text_model()

    def _add_modules(self, config) -> None:
        """Modules a subclass adds before the weights are initialized (RAM: its optional caption model)."""

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        loaded = super().from_pretrained(*args, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded  # `output_loading_info=True` returns a pair
        if isinstance(model, RamPlusModel):
            model.freeze_text_model()  # loading creates new parameters, which require gradients
        return loaded

    def freeze_text_model(self) -> None:
        """Freeze the CLIP text tower (no gradients, eval mode). The one place it is frozen: construction, loading,
        the trainer and adapter merging all call this."""
        if self.text_model is not None:
            self.text_model.requires_grad_(False)
            self.text_model.eval()

    def load_adapter(self, peft_model_id=None, *args, adapter_kwargs=None, **kwargs):
        """`PeftAdapterMixin.load_adapter` that first installs the tag vocabulary the adapter carries
        ([`~RamPlusModel.load_adapter_vocabulary`]): `model.load_adapter(dir)`, `AutoModel.from_pretrained(adapter_dir)`
        and `pipeline(model=adapter_dir)` give the adapter's tags."""
        if peft_model_id is not None:
            options = dict(adapter_kwargs or {})
            for name in ("revision", "token", "cache_dir", "local_files_only", "force_download", "subfolder"):
                if kwargs.get(name) is not None:
                    options[name] = kwargs[name]
            self.load_adapter_vocabulary(peft_model_id, **options)
        return super().load_adapter(peft_model_id, *args, adapter_kwargs=adapter_kwargs, **kwargs)

    # ------------------------------------------------------------------ image and text encoders
    def get_image_embeds(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Image tokens `[mean, t1..t144]` of the Swin encoder, projected: `(batch, 145, text_embed_dim)`."""
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
        pixel_values = pixel_values.to(self.image_projection.weight.dtype)
        fast = self._fast_inference()
        image_embeds = None if fast is None else fast.image_embeds(self, pixel_values)
        return self.compute_image_embeds(pixel_values) if image_embeds is None else image_embeds

    def compute_image_embeds(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """`get_image_embeds` without its input checks: the Swin encoder and the projection."""
        vision_outputs = self.vision_model(pixel_values=pixel_values)
        tokens = torch.cat([vision_outputs.pooler_output.unsqueeze(1), vision_outputs.last_hidden_state], dim=1)
        return self.image_projection(tokens)

    def _fast_inference(self) -> nn.Module | None:
        """The `fast_inference` submodule that `transformers_ramplus.enable_fast_inference` installs, or None.
        `get_image_embeds`, `description_similarity` and `tag_logits` take its result unless it returns None (training,
        autograd, tracing, recorded outputs, inputs it does not handle), and then compute as written here."""
        return self._modules.get(FAST_INFERENCE_MODULE)

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """L2-normalized CLIP text embeddings `(num_texts, text_embed_dim)` from the bundled frozen text tower."""
        if self.text_model is None:
            raise ValueError(
                "this model has no text tower, so it cannot encode new text; use the built-in tags, pass precomputed "
                "`label_embeds`, or convert the model with a CLIP text tower (`ramplus convert --text-tower ...`)"
            )
        outputs = self.text_model(input_ids=input_ids, attention_mask=attention_mask)
        return F.normalize(outputs.text_embeds, dim=-1)

    # ------------------------------------------------------------------ vocabulary
    def builtin_description_mask(self) -> torch.Tensor | None:
        """`(num_tags, D)` mask of the real rows of the built-in label embeddings (`None`: all rows are real)."""
        counts = self.config.tag_description_counts
        if counts is None:
            return None
        counts = torch.as_tensor(counts, device=self.label_embeds.device)
        return torch.arange(self.config.descriptions_per_tag, device=counts.device).unsqueeze(0) < counts.unsqueeze(1)

    @property
    def label_embeds(self) -> torch.Tensor:
        """The built-in label embeddings `(num_tags * descriptions_per_tag, text_embed_dim)` (in a PEFT model, those of
        the active adapter)."""
        return self.tag_embeddings()

    def set_vocabulary(
        self,
        names: list[str],
        label_embeds: torch.Tensor,
        thresholds: list[float] | None = None,
        chinese_names: list[str] | None = None,
        description_counts: list[int] | None = None,
    ) -> None:
        """Replace the tag vocabulary: the one way to change it (adding tags, installing an adapter's tags).

        Args:
            names (`list[str]`): unique tag names.
            label_embeds (`torch.FloatTensor` of shape `(num_tags, D, text_embed_dim)`): L2-normalized rows; D becomes
                `config.descriptions_per_tag`.
            thresholds (`list[float]`, *optional*): per-tag thresholds (default: `config.default_threshold`).
            chinese_names (`list[str]`, *optional*): Chinese tag names.
            description_counts (`list[int]`, *optional*): how many of each tag's D rows are real (the rest is padding).

        The config and the label embeddings (of `tag_embeddings` and of every copy PEFT keeps of it) change together,
        so the model saves and reloads with the new vocabulary; on a bad value nothing changes."""
        if not isinstance(label_embeds, torch.Tensor) or label_embeds.dim() != 3:
            raise ValueError("`label_embeds` must be a (num_tags, descriptions_per_tag, dim) tensor")
        if label_embeds.shape[0] != len(names) or label_embeds.shape[-1] != self.config.text_embed_dim:
            raise ValueError(
                f"`label_embeds` {tuple(label_embeds.shape)} does not fit {len(names)} tags of width "
                f"{self.config.text_embed_dim}"
            )
        self.config._set_vocabulary(
            names,
            thresholds=thresholds,
            chinese_names=chinese_names,
            description_counts=description_counts,
            descriptions_per_tag=label_embeds.shape[1],
        )
        flat = label_embeds.detach().reshape(-1, label_embeds.shape[-1])
        for module in self.modules():  # `tag_embeddings` and peft's copies of it
            if isinstance(module, RamPlusTagEmbeddings):
                current = module.label_embeds
                module.label_embeds = flat.to(device=current.device, dtype=current.dtype, copy=True).contiguous()
        self.vocabulary_changed = True

    def load_adapter_vocabulary(self, peft_model_id, **options) -> bool:
        """Install the tag vocabulary a saved adapter carries ([`read_adapter_vocabulary`]) with
        [`~RamPlusModel.set_vocabulary`], before attaching the adapter (`model.load_adapter` does this; call it before
        `PeftModel.from_pretrained(model, adapter)`). Returns whether the vocabulary changed."""
        if os.path.isfile(os.path.join(os.fspath(peft_model_id), "tag_set.json")):  # TagSet's file (tags/tag_set.py)
            raise ValueError(
                f"the adapter {peft_model_id} keeps its tags in tag_set.json (written by an earlier version), which "
                "this loading path does not read; load it with "
                "`transformers_ramplus.training.adapters.load_adapter(model, adapter_dir)`"
            )
        vocabulary = read_adapter_vocabulary(peft_model_id, **options)
        if vocabulary is None:
            return False
        embeds = vocabulary["label_embeds"]
        same_embeds = tuple(embeds.shape) == (
            self.config.num_tags, self.config.descriptions_per_tag, self.config.text_embed_dim
        ) and torch.equal(self.label_embeds.view(embeds.shape), embeds.to(self.label_embeds))
        if same_embeds and {k: v for k, v in vocabulary.items() if k != "label_embeds"} == self.config.vocabulary():
            return False
        self.set_vocabulary(**vocabulary)
        logger.info("installed the adapter's tag vocabulary (%d tags)", len(vocabulary["names"]))
        return True

    def resolve_label_embeds(
        self,
        label_embeds: torch.Tensor | None = None,
        descriptions_per_tag: int | None = None,
        description_mask: torch.Tensor | None = None,
        tag_indices: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The label embeddings of a call, validated: `(label_embeds (C, D, T), description_mask (C, D) or None)`."""
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
        weight = self.query_projection.weight
        return label_embeds.to(device=weight.device, dtype=weight.dtype), description_mask

    # ------------------------------------------------------------------ tagging head
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
            similarity = self.description_similarity(cls, label_embeds)
            # the softmax over descriptions in fp32 (C*D values per image; keeps bf16 models' weights accurate)
            similarity = similarity.view(-1, num_tags, num_desc).float() * self.reweight_scale.float().exp()
            if description_mask is not None:
                similarity = similarity.masked_fill(~description_mask.unsqueeze(0), torch.finfo(similarity.dtype).min)
            weights = similarity.softmax(dim=-1).to(label_embeds.dtype)
            # per tag: (B, D) x (D, T) -> (C, B, T), then (B, C, T)
            pooled = torch.bmm(weights.transpose(0, 1), label_embeds).transpose(0, 1).contiguous()
        return F.relu(self.query_projection(pooled))

    def description_similarity(self, cls: torch.Tensor, label_embeds: torch.Tensor) -> torch.Tensor:
        """Each normalized image embedding `cls` `(B, T)` against every description of `label_embeds` `(C, D, T)`:
        `(B, C * D)`."""
        fast = self._fast_inference()
        similarity = None if fast is None else fast.description_similarity(self, cls, label_embeds)
        if similarity is None:
            similarity = torch.matmul(cls, label_embeds.reshape(-1, label_embeds.shape[-1]).t())
        return similarity

    def tag_logits(self, queries: torch.Tensor, image_embeds: torch.Tensor) -> torch.Tensor:
        """Decoder and head: one logit per query, `(batch, num_queries)`."""
        fast = self._fast_inference()
        logits = None if fast is None else fast.tag_logits(self, queries, image_embeds)
        return self.classifier(self.decoder(queries, image_embeds)).squeeze(-1) if logits is None else logits

    def alignment_logits(self, image_embeds: torch.Tensor, caption_embeds: torch.Tensor) -> torch.Tensor:
        """Every caption as a query for every image, through the same decoder and head: `(batch, num_captions)`."""
        if caption_embeds.dim() != 2 or caption_embeds.shape[-1] != self.config.text_embed_dim:
            raise ValueError(
                f"caption embeddings must be (num_captions, {self.config.text_embed_dim}), got {tuple(caption_embeds.shape)}"
            )
        caption_embeds = caption_embeds.to(self.query_projection.weight.dtype)
        queries = F.relu(self.query_projection(caption_embeds))
        queries = queries.unsqueeze(0).expand(image_embeds.shape[0], -1, -1)
        return self.tag_logits(queries, image_embeds)

    # ------------------------------------------------------------------ heatmaps
    def _heatmap_tags(self, tags) -> tuple[dict, torch.Tensor | None, list[str] | None]:
        """`tags` of `tag_heatmaps` as model inputs, built-in ids and names."""
        if tags is not None and hasattr(tags, "model_inputs") and hasattr(tags, "names"):  # a TagSet
            inputs = tags.model_inputs(self)
            return inputs, inputs.get("tag_indices"), list(tags.names)
        names = self.config.tag_names
        if tags is None:
            return {}, torch.arange(len(names)), list(names)
        if isinstance(tags, (str, int)) or (isinstance(tags, torch.Tensor) and tags.dim() == 0):
            tags = [tags]
        if isinstance(tags, torch.Tensor):
            tags = tags.tolist()
        if not isinstance(tags, (list, tuple)) or not tags:
            raise ValueError(f"`tags` must be None, tag names or ids of the model's vocabulary, or a TagSet; got {tags!r:.100}")
        indices, unknown = [], []
        for tag in tags:
            if isinstance(tag, str) and tag in self.config.label2id:
                indices.append(self.config.label2id[tag])
            elif isinstance(tag, int) and not isinstance(tag, bool) and 0 <= tag < len(names):
                indices.append(tag)
            elif isinstance(tag, (str, int)) and not isinstance(tag, bool):
                unknown.append(tag)
            else:
                raise TypeError(f"`tags` must hold tag names (str) or ids (int), got {type(tag).__name__}: {tag!r:.80}")
        if unknown:
            raise ValueError(
                f"not in the model's vocabulary of {len(names)} tags (names, or ids in [0, {len(names)})): "
                f"{unknown[:10]}; for new tags pass a TagSet (`TagSet.from_model(model, tags, tokenizer=...)`)"
            )
        indices = torch.tensor(indices, dtype=torch.long)
        return {"tag_indices": indices}, indices, [names[i] for i in indices.tolist()]

    @staticmethod
    def _heatmap_sizes(target_sizes, batch_size: int) -> list[tuple[int, int]]:
        sizes = target_sizes.tolist() if isinstance(target_sizes, torch.Tensor) else target_sizes
        valid = isinstance(sizes, (list, tuple)) and len(sizes) == batch_size
        valid = valid and all(
            isinstance(size, (list, tuple)) and len(size) == 2
            and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v > 0 for v in size)
            for size in sizes
        )
        if not valid:
            raise ValueError(
                f"`target_sizes` must give one (height, width) pair of positive integers per image ({batch_size}), "
                f"got {target_sizes!r:.200}"
            )
        return [(int(height), int(width)) for height, width in sizes]

    @staticmethod
    def _heatmap_selection(selection, count: int, what: str) -> list[int]:
        if selection is None:
            return list(range(count))
        items = [selection] if isinstance(selection, int) else list(selection) if isinstance(selection, (list, tuple, range)) else []
        if not items or any(isinstance(i, bool) or not isinstance(i, int) or not -count <= i < count for i in items):
            raise ValueError(f"`{what}` must be None or {what} indices in [-{count}, {count}), got {selection!r}")
        return sorted({i % count for i in items})

    @torch.no_grad()
    def tag_heatmaps(
        self,
        pixel_values: torch.Tensor,
        tags=None,
        layers: int | list[int] | None = None,
        heads: int | list[int] | None = None,
        target_sizes=None,
        normalize: str | None = None,
    ) -> RamPlusHeatmapOutput:
        r"""
        Where each tag looks: the decoder's cross-attention of each tag query over the image tokens.

        The attention probabilities are computed explicitly from the decoder's own projections (so any
        `attn_implementation` works, and models with `enable_fast_inference` or PEFT give the same maps),
        without gradients. The global (mean) image token is left out of the maps (its share is `global_attention`).

        Args:
            pixel_values (`torch.FloatTensor` of shape `(batch_size, 3, height, width)`): images from the processor.
            tags: `None` (every tag of the vocabulary), tag names or ids of the vocabulary (one or a list), or a
                [`TagSet`] (new tags by name or description, mixed with built-in ones).
            layers / heads (`int` or `list[int]`, *optional*): decoder layers and attention heads to average (negative
                indices count from the end); default all.
            target_sizes (`list[tuple[int, int]]` or `torch.Tensor` of shape `(batch_size, 2)`, *optional*): each
                image's `(height, width)`; the maps are resized to it (bilinear; the processor stretches images to a
                square, so this maps them back onto the original image) and returned as a list.
            normalize (`str`, *optional*): `None` (attention probabilities as they are), `"sum"` (each map of the token
                grid sums to 1) or `"max"` (each map's peak is 1).

        Returns:
            [`RamPlusHeatmapOutput`]: `heatmaps`, `logits`, `global_attention`, `tag_indices`, `tag_names`.

        Example:

        ```python
        >>> out = model.tag_heatmaps(inputs["pixel_values"], tags=["dog", "grass"], target_sizes=[image.size[::-1]])
        >>> out.heatmaps[0].shape  # (2, image height, image width)
        ```
        """
        if normalize not in (None, "sum", "max"):
            raise ValueError(f"`normalize` must be None, 'sum' or 'max', got {normalize!r}")
        layer_ids = self._heatmap_selection(layers, len(self.decoder.layers), "layers")
        head_ids = self._heatmap_selection(heads, self.config.num_attention_heads, "heads")
        inputs, tag_indices, tag_names = self._heatmap_tags(tags)
        image_embeds = self.get_image_embeds(pixel_values)  # checks `pixel_values`
        batch_size, num_tokens = image_embeds.shape[:2]
        vision = self.config.vision_config
        patch = vision.patch_size if isinstance(vision.patch_size, int) else vision.patch_size[0]
        grid = [size // patch for size in pixel_values.shape[-2:]]
        for _ in range(len(vision.depths) - 1):  # every patch merging halves the grid (padding odd sizes)
            grid = [-(-size // 2) for size in grid]
        if grid[0] * grid[1] != num_tokens - 1:
            raise ValueError(f"cannot lay {num_tokens - 1} image tokens on the {grid[0]}x{grid[1]} grid of these images")
        if target_sizes is not None:
            target_sizes = self._heatmap_sizes(target_sizes, batch_size)

        label_embeds, description_mask = self.resolve_label_embeds(
            inputs.get("label_embeds"), None, inputs.get("description_mask"), inputs.get("tag_indices")
        )
        hidden_states = self.compute_label_queries(image_embeds, label_embeds, description_mask)
        attention = 0.0
        for index, layer in enumerate(self.decoder.layers):
            if index in layer_ids:  # softmax(q k^T / sqrt(d)) of this layer, as the eager attention computes it
                module = layer.cross_attention
                shape = (batch_size, -1, module.num_heads, module.head_dim)
                query = module.q_proj(hidden_states).view(shape).transpose(1, 2)
                key = module.k_proj(image_embeds).view(shape).transpose(1, 2)
                scores = torch.matmul(query, key.transpose(-1, -2)).float() * module.scaling
                attention = attention + scores.softmax(dim=-1)[:, head_ids].mean(dim=1)
            hidden_states = layer(hidden_states, image_embeds)
        logits = self.classifier(hidden_states).squeeze(-1).float()
        attention = attention / len(layer_ids)  # (batch, tags, tokens)
        heatmaps = attention[..., 1:].reshape(batch_size, -1, *grid)
        if normalize == "sum":
            heatmaps = heatmaps / heatmaps.sum(dim=(-2, -1), keepdim=True).clamp_min(1e-12)
        elif normalize == "max":
            heatmaps = heatmaps / heatmaps.amax(dim=(-2, -1), keepdim=True).clamp_min(1e-12)
        if target_sizes is not None:
            heatmaps = [
                F.interpolate(maps[None], size=size, mode="bilinear", align_corners=False)[0]
                for maps, size in zip(heatmaps, target_sizes)
            ]
        return RamPlusHeatmapOutput(
            heatmaps=heatmaps,
            logits=logits,
            global_attention=attention[..., 0],
            tag_indices=None if tag_indices is None else torch.as_tensor(tag_indices).cpu(),
            tag_names=tag_names,
        )

    # ------------------------------------------------------------------ forward
    @capture_outputs(tie_last_hidden_states=False)
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
    ) -> RamPlusOutput:
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
            output_attentions (`bool`, *optional*): return the decoder's attention weights (`cross_attentions`); they
                exist only with the eager attention (`attn_implementation="eager"`).
            output_hidden_states (`bool`, *optional*): return the decoder's hidden states.
            return_dict (`bool`, *optional*): `False` returns a tuple.
        """
        output_attentions = self.config.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
        if output_attentions and self.config._attn_implementation != "eager":
            raise ValueError(
                f"attention weights are computed by the eager attention only, this model uses "
                f"{self.config._attn_implementation!r}: load it with `attn_implementation=\"eager\"` or call "
                "`model.set_attn_implementation(\"eager\")`"
            )
        has_captions = caption_input_ids is not None or caption_embeds is not None
        if has_captions and (output_attentions or output_hidden_states):
            raise ValueError(
                "the decoder's hidden states and attentions are returned for the tag queries only: request them in a "
                "call without captions"
            )
        if (pixel_values is None) == (image_embeds is None):
            raise ValueError("pass exactly one of `pixel_values` and `image_embeds`")
        if image_embeds is None:
            image_embeds = self.get_image_embeds(pixel_values)
        elif image_embeds.dim() != 3 or image_embeds.shape[-1] != self.config.text_embed_dim:
            raise ValueError(
                f"`image_embeds` must be (batch, tokens, {self.config.text_embed_dim}), got {tuple(image_embeds.shape)}"
            )

        label_embeds, description_mask = self.resolve_label_embeds(
            label_embeds, descriptions_per_tag, description_mask, tag_indices
        )
        queries = self.compute_label_queries(image_embeds, label_embeds, description_mask)
        logits = self.tag_logits(queries, image_embeds)

        losses = {}
        if labels is not None or has_captions or teacher_image_embeds is not None:
            losses = self._compute_losses(
                logits, image_embeds, labels, caption_input_ids, caption_attention_mask, caption_embeds,
                teacher_image_embeds,
            )
        return RamPlusOutput(logits=logits, image_embeds=image_embeds, **losses)

    def _compute_losses(
        self, logits, image_embeds, labels, caption_input_ids, caption_attention_mask, caption_embeds, teacher_image_embeds
    ) -> dict:
        """The training objective: each loss whose targets are given, and their weighted sum as `loss`."""
        config = self.config
        out, weighted = {}, []
        if labels is not None:
            if labels.shape != logits.shape:
                raise ValueError(f"`labels` must have shape {tuple(logits.shape)} (batch, tags), got {tuple(labels.shape)}")
            out["tag_loss"] = tagging_loss(
                logits,
                labels,
                gamma_neg=config.tag_loss_gamma_neg,
                gamma_pos=config.tag_loss_gamma_pos,
                clip=config.tag_loss_clip,
                eps=config.asl_eps,
            )
            weighted.append(config.tag_loss_weight * out["tag_loss"])
        if caption_input_ids is not None or caption_embeds is not None:
            if caption_embeds is None:
                caption_embeds = self.encode_text(caption_input_ids, caption_attention_mask)
            out["alignment_logits"] = self.alignment_logits(image_embeds, caption_embeds)
            out["alignment_loss"] = alignment_loss(
                out["alignment_logits"],
                gamma_neg=config.align_loss_gamma_neg,
                gamma_pos=config.align_loss_gamma_pos,
                clip=config.align_loss_clip,
                eps=config.asl_eps,
            )
            weighted.append(config.align_loss_weight * out["alignment_loss"])
        if teacher_image_embeds is not None:
            out["distillation_loss"] = distillation_loss(image_embeds[:, 0, :], teacher_image_embeds)
            weighted.append(config.distill_loss_weight * out["distillation_loss"])
        out["loss"] = torch.stack(weighted).sum()
        return out


__all__ = [
    "RamPlusModel",
    "RamPlusTagEmbeddings",
    "RamPlusPreTrainedModel",
    "RamPlusOutput",
    "RamPlusHeatmapOutput",
    "alignment_loss",
    "asymmetric_loss",
    "distillation_loss",
    "read_adapter_vocabulary",
    "tagging_loss",
]
