# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""RAM++ (Recognize Anything Plus) model configuration."""

from __future__ import annotations

import math

from transformers import CLIPTextConfig, SwinConfig
from transformers.configuration_utils import PreTrainedConfig
from transformers.utils import logging


logger = logging.get_logger(__name__)

# The released RAM++ image encoder: Swin-L, 384 px (SPEC section 1.2).
SWIN_L_384 = {
    "image_size": 384,
    "patch_size": 4,
    "embed_dim": 192,
    "depths": [2, 2, 18, 2],
    "num_heads": [6, 12, 24, 48],
    "window_size": 12,
    "mlp_ratio": 4.0,
    "qkv_bias": True,
    "use_absolute_embeddings": False,
    "layer_norm_eps": 1e-5,
    "drop_path_rate": 0.0,
}
# Swin-B variant supported by the original code (no RAM++ weights were released for it).
SWIN_B_384 = {**SWIN_L_384, "embed_dim": 128, "num_heads": [4, 8, 16, 32]}

VISION_PRESETS = {"swin_l": SWIN_L_384, "swin_b": SWIN_B_384}

_ASL_FIELDS = ("gamma_neg", "gamma_pos", "clip", "eps")


class RamPlusConfig(PreTrainedConfig):
    r"""
    Configuration of a [`RamPlusModel`] (RAM++, "Open-Set Image Tagging with Multi-Grained Text Supervision").

    The defaults reproduce the released `ram_plus_swin_large_14m` model: a Swin-L/384 image encoder, 4585 tags with
    51 CLIP ViT-B/16 description embeddings each, and a 2-layer cross-attention decoder of width 768.

    Args:
        vision_config (`dict` or `SwinConfig`, *optional*):
            The Swin image encoder. Defaults to the released Swin-L/384 (see [`RamPlusConfig.from_preset`] for Swin-B).
        text_config (`dict` or `CLIPTextConfig`, *optional*):
            An optional frozen CLIP text tower (`CLIPTextModelWithProjection`) used to embed new tags and captions.
            `None` means the model carries no text tower and can only use the label embeddings it stores.
        hidden_size (`int`, defaults to 768): width of the tagging decoder.
        num_hidden_layers (`int`, defaults to 2): decoder layers (cross-attention + feed-forward each).
        num_attention_heads (`int`, defaults to 4): heads of the decoder's cross-attention.
        intermediate_size (`int`, defaults to 3072): width of the decoder's feed-forward layer.
        hidden_act (`str`, defaults to `"gelu"`): decoder activation (exact erf GELU).
        layer_norm_eps (`float`, defaults to 1e-12): epsilon of the decoder LayerNorms.
        hidden_dropout_prob / attention_probs_dropout_prob (`float`, defaults to 0.1): decoder dropouts (training only).
        text_embed_dim (`int`, defaults to 512): width of the CLIP text embeddings (label embeddings, image projection).
        descriptions_per_tag (`int`, defaults to 51): number of description embeddings stored per built-in tag.
        tag_description_counts (`list[int]`, *optional*): how many of the `descriptions_per_tag` rows of each tag are
            real (the rest are padding, masked out of the re-weighting softmax); `None` means all rows of every tag.
        reweight_scale_init (`float`): initial value of the learned log-scale of the description re-weighting.
        tag_thresholds (`list[float]`, *optional*): per-tag decision thresholds, one per tag, each in (0, 1]
            (1.0 disables a tag: a tag is output when its score is strictly greater than its threshold).
        default_threshold (`float`, defaults to 0.68): threshold of tags without a tuned threshold.
        tag_names_chinese (`list[str]`, *optional*): Chinese tag names, one per tag, same order as `id2label`.
        tag_loss_* / align_loss_* : asymmetric-loss hyper-parameters (SPEC section 3).
        tag_loss_weight / align_loss_weight / distill_loss_weight (`float`, defaults to 1.0): loss weights.
        initializer_range (`float`, defaults to 0.02): std of the truncated normal initializer.
        cpu_onednn_linear (`bool`, defaults to `True`): at fp32 CPU inference (eval mode, no autograd), run the linear
            layers through oneDNN's kernel instead of the default BLAS (same fp32 arithmetic; much faster on CPUs where
            the default BLAS is slow, such as AMD EPYC with MKL). Set `False` to use plain `torch.nn.functional.linear`.
    """

    model_type = "ram_plus"
    sub_configs_defaults = {"vision_config": SwinConfig, "text_config": CLIPTextConfig}

    vision_config: dict | SwinConfig | None = None
    text_config: dict | CLIPTextConfig | None = None
    hidden_size: int = 768
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    layer_norm_eps: float = 1e-12
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    text_embed_dim: int = 512
    descriptions_per_tag: int = 51
    tag_description_counts: list[int] | None = None
    reweight_scale_init: float = math.log(1 / 0.07)
    tag_thresholds: list[float] | None = None
    default_threshold: float = 0.68
    tag_names_chinese: list[str] | None = None
    tag_loss_gamma_neg: float = 7.0
    tag_loss_gamma_pos: float = 0.0
    tag_loss_clip: float = 0.05
    align_loss_gamma_neg: float = 4.0
    align_loss_gamma_pos: float = 0.0
    align_loss_clip: float = 0.05
    asl_eps: float = 1e-8
    tag_loss_weight: float = 1.0
    align_loss_weight: float = 1.0
    distill_loss_weight: float = 1.0
    initializer_range: float = 0.02
    cpu_onednn_linear: bool = True
    # multi-label: pipeline("image-classification") applies a sigmoid per tag
    problem_type: str | None = "multi_label_classification"

    def __post_init__(self, **kwargs):
        if self.vision_config is None:
            self.vision_config = SwinConfig(**SWIN_L_384)
        elif isinstance(self.vision_config, dict):
            vision_kwargs = {k: v for k, v in self.vision_config.items() if k != "model_type"}
            self.vision_config = SwinConfig(**vision_kwargs)
        elif not isinstance(self.vision_config, SwinConfig):
            raise TypeError(
                f"`vision_config` must be a dict or a SwinConfig, got {type(self.vision_config).__name__}"
            )
        if isinstance(self.text_config, dict):
            text_kwargs = {k: v for k, v in self.text_config.items() if k != "model_type"}
            self.text_config = CLIPTextConfig(**text_kwargs)
        elif self.text_config is not None and not isinstance(self.text_config, CLIPTextConfig):
            raise TypeError(
                f"`text_config` must be None, a dict or a CLIPTextConfig, got {type(self.text_config).__name__}"
            )
        # The text tower is optional: skip the base class' default creation of sub-configs.
        sub_configs = (self.vision_config, self.text_config)
        super().__post_init__(**kwargs)
        self.vision_config, self.text_config = sub_configs
        if self.id2label is None:
            self.id2label = {i: f"tag_{i}" for i in range(self.num_labels)}
        if self.label2id is None or len(self.label2id) != len(self.id2label):
            self.label2id = {name: index for index, name in self.id2label.items()}
        self.label2id = {name: int(index) for name, index in self.label2id.items()}
        self._validate_ram_plus()

    # ------------------------------------------------------------------ validation
    def _validate_ram_plus(self):
        def positive_int(name):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}")

        for name in (
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
            "text_embed_dim",
            "descriptions_per_tag",
        ):
            positive_int(name)
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"`hidden_size` ({self.hidden_size}) must be divisible by `num_attention_heads` "
                f"({self.num_attention_heads})"
            )
        vc = self.vision_config
        if len(vc.depths) != len(vc.num_heads):
            raise ValueError(
                f"`vision_config.depths` {list(vc.depths)} and `vision_config.num_heads` {list(vc.num_heads)} "
                "must have the same length"
            )
        for stage, heads in enumerate(vc.num_heads):
            width = vc.embed_dim * 2**stage
            if width % heads != 0:
                raise ValueError(
                    f"`vision_config.num_heads[{stage}]` ({heads}) does not divide the stage width {width} "
                    f"(`vision_config.embed_dim` {vc.embed_dim} x 2^{stage})"
                )
        if self.text_config is not None and self.text_config.projection_dim != self.text_embed_dim:
            raise ValueError(
                f"`text_config.projection_dim` ({self.text_config.projection_dim}) must equal `text_embed_dim` "
                f"({self.text_embed_dim}): the text tower's embeddings are the label embeddings"
            )
        if not 0.0 < float(self.default_threshold) < 1.0:
            raise ValueError(f"`default_threshold` must be in (0, 1), got {self.default_threshold!r}")
        num_tags = len(self.id2label)
        if self.tag_thresholds is not None:
            self.tag_thresholds = [float(t) for t in self.tag_thresholds]
            if len(self.tag_thresholds) != num_tags:
                raise ValueError(
                    f"`tag_thresholds` has {len(self.tag_thresholds)} values but the model has {num_tags} tags "
                    "(`id2label`)"
                )
            for index, value in enumerate(self.tag_thresholds):
                # 1.0 is allowed: with the strict `score > threshold` rule it disables a tag, and the released
                # threshold file uses it for 10 tags
                if not 0.0 < value <= 1.0:
                    raise ValueError(f"`tag_thresholds[{index}]` must be in (0, 1], got {value!r}")
        if self.tag_description_counts is not None:
            self.tag_description_counts = [int(c) for c in self.tag_description_counts]
            if len(self.tag_description_counts) != num_tags:
                raise ValueError(
                    f"`tag_description_counts` has {len(self.tag_description_counts)} values but the model has "
                    f"{num_tags} tags (`id2label`)"
                )
            for index, count in enumerate(self.tag_description_counts):
                if not 1 <= count <= self.descriptions_per_tag:
                    raise ValueError(
                        f"`tag_description_counts[{index}]` must be in [1, descriptions_per_tag="
                        f"{self.descriptions_per_tag}], got {count!r}"
                    )
        if self.tag_names_chinese is not None and len(self.tag_names_chinese) != num_tags:
            raise ValueError(
                f"`tag_names_chinese` has {len(self.tag_names_chinese)} names but the model has {num_tags} tags "
                "(`id2label`)"
            )
        for prefix in ("tag_loss", "align_loss"):
            for name in ("gamma_neg", "gamma_pos"):
                value = getattr(self, f"{prefix}_{name}")
                if value < 0:
                    raise ValueError(f"`{prefix}_{name}` must be >= 0, got {value!r}")
            clip = getattr(self, f"{prefix}_clip")
            if clip is not None and not 0.0 <= clip < 1.0:
                raise ValueError(f"`{prefix}_clip` must be in [0, 1), got {clip!r}")

    # ------------------------------------------------------------------ helpers
    @property
    def num_tags(self) -> int:
        return len(self.id2label)

    @property
    def tag_names(self) -> list[str]:
        return [self.id2label[i] for i in range(len(self.id2label))]

    def thresholds(self) -> list[float]:
        """The decision threshold of every tag (`tag_thresholds`, or `default_threshold` for all)."""
        if self.tag_thresholds is not None:
            return list(self.tag_thresholds)
        return [float(self.default_threshold)] * self.num_tags

    def set_tags(self, names, thresholds=None, chinese_names=None, description_counts=None, descriptions_per_tag=None):
        """Replace the tag vocabulary (names, optional thresholds, Chinese names and per-tag description counts).

        The model's `label_embeds` must be replaced to match (see `RamPlusModel.set_label_embeds`)."""
        names = [str(n) for n in names]
        if len(set(names)) != len(names):
            duplicates = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"tag names must be unique, duplicated: {duplicates[:10]}")
        values = {
            "id2label": dict(enumerate(names)),
            "label2id": {n: i for i, n in enumerate(names)},
            "tag_thresholds": None if thresholds is None else [float(t) for t in thresholds],
            "tag_names_chinese": None if chinese_names is None else list(chinese_names),
            "tag_description_counts": None if description_counts is None else [int(c) for c in description_counts],
            "descriptions_per_tag": self.descriptions_per_tag if descriptions_per_tag is None else int(descriptions_per_tag),
        }
        previous = {name: getattr(self, name) for name in values}
        for name, value in values.items():
            setattr(self, name, value)
        try:
            self._validate_ram_plus()
        except ValueError:
            for name, value in previous.items():  # leave the config as it was
                setattr(self, name, value)
            raise

    @classmethod
    def from_preset(cls, variant: str = "swin_l", **kwargs) -> "RamPlusConfig":
        """A config with the image encoder of `variant` (`"swin_l"` = released model, or `"swin_b"`)."""
        if variant not in VISION_PRESETS:
            raise ValueError(f"unknown variant {variant!r}; choose one of {sorted(VISION_PRESETS)}")
        return cls(vision_config=dict(VISION_PRESETS[variant]), **kwargs)


__all__ = ["RamPlusConfig"]
