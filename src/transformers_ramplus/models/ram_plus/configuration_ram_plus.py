# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""RAM++ (Recognize Anything Plus) model configuration.

Also the one home of the checks every tool applies to user-given decision thresholds and output languages
(`validate_threshold`, `validate_thresholds`, `validate_language`): this file imports only `transformers`, so the
modeling file and every tool of the package can share them.
"""

from __future__ import annotations

import math
import numbers

from huggingface_hub.dataclasses import strict
from transformers import CLIPTextConfig, SwinConfig
from transformers.configuration_utils import PreTrainedConfig, SubConfigSpec
from transformers.pipelines import PIPELINE_REGISTRY
from transformers.utils import logging


logger = logging.get_logger(__name__)

# The released RAM++ image encoder: Swin-L, 384 px.
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

LANGUAGES = ("en", "zh")

# Keys that configs written by earlier versions may hold and that no longer mean anything (the inference fast paths
# are applied by `enable_fast_inference`, never switched by the config). They are dropped when such a file is read.
_RETIRED_KEYS = ("cpu_onednn_linear",)


# ------------------------------------------------------------------------------------------------- shared checks
def validate_threshold(value, name: str = "threshold") -> float:
    """A decision threshold as a float in [0, 1] (a tag is output when its score is strictly greater: 0 keeps every
    tag, 1 disables it). Raises `TypeError` for a non-number and `ValueError` for NaN or a value outside [0, 1],
    naming `name` and the value."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a number in [0, 1], got {type(value).__name__} {value!r}")
    value = float(value)
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"`{name}` must be a number in [0, 1], got {value!r}")
    return value


def validate_thresholds(values, num_tags: int | None = None, name: str = "thresholds") -> list[float]:
    """Per-tag thresholds as a list of floats, each checked by `validate_threshold` (the message names the index);
    with `num_tags`, their number must match."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise TypeError(f"`{name}` must be a sequence of numbers in [0, 1], got {type(values).__name__}")
    if hasattr(values, "tolist"):  # numpy arrays and tensors
        values = values.tolist()
    checked = [validate_threshold(value, f"{name}[{index}]") for index, value in enumerate(values)]
    if num_tags is not None and len(checked) != num_tags:
        raise ValueError(f"`{name}` has {len(checked)} values but there are {num_tags} tags")
    return checked


def validate_top_k(top_k, name: str = "top_k") -> int | None:
    """`None` (every tag that passes its threshold) or a positive integer (at most that many tags per image)."""
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k <= 0):
        raise ValueError(f"`{name}` must be None or a positive integer, got {top_k!r}")
    return top_k


def validate_language(language) -> str:
    """`"en"` (English tag names) or `"zh"` (Chinese names of the built-in tags)."""
    if language not in LANGUAGES:
        raise ValueError(f"`language` must be one of {', '.join(map(repr, LANGUAGES))}, got {language!r}")
    return language


# ----------------------------------------------------------------------------------------------------- config
@strict
class RamPlusConfig(PreTrainedConfig):
    r"""
    Configuration of a [`RamPlusModel`] (RAM++, "Open-Set Image Tagging with Multi-Grained Text Supervision").

    `RamPlusConfig()` has the geometry of the released `ram_plus_swin_large_14m` model (a Swin-L/384 image encoder,
    51 CLIP ViT-B/16 description embeddings per tag, a 2-layer cross-attention decoder of width 768, no text tower)
    and a placeholder vocabulary of `num_labels` (default 2) tags; the tag vocabulary (`id2label`, thresholds,
    Chinese names, description counts) is set by the conversion of a checkpoint or by
    [`~RamPlusModel.set_vocabulary`], which changes it together with the model's label embeddings. The configuration
    is the one place the vocabulary's names, thresholds and counts are stored: the processor and the pipeline read
    them from here.

    Args:
        vision_config (`dict` or `SwinConfig`, *optional*):
            The Swin image encoder. Defaults to the released Swin-L/384 (see [`RamPlusConfig.from_preset`] for Swin-B).
        text_config (`dict` or `CLIPTextConfig`, *optional*):
            An optional frozen CLIP text tower (`CLIPTextModelWithProjection`) used to embed new tags and captions.
            `None` (the default) means the model carries no text tower and only uses the label embeddings it stores.
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
        tag_thresholds (`list[float]`, *optional*): per-tag decision thresholds, one per tag, each in [0, 1] (a tag
            is output when its score is strictly greater than its threshold, so 1.0 disables a tag).
        default_threshold (`float`, defaults to 0.68): threshold of every tag when `tag_thresholds` is not set.
        tag_names_chinese (`list[str]`, *optional*): Chinese tag names, one per tag, same order as `id2label`.
        tag_loss_gamma_neg / tag_loss_gamma_pos / tag_loss_clip (`float`, defaults to 7 / 0 / 0.05): asymmetric-loss
            focusing and probability margin of the tagging loss.
        align_loss_gamma_neg / align_loss_gamma_pos / align_loss_clip (`float`, defaults to 4 / 0 / 0.05): the same
            for the image-caption alignment loss.
        asl_eps (`float`, defaults to 1e-8): lower clamp of the probabilities inside the logarithms.
        tag_loss_weight / align_loss_weight / distill_loss_weight (`float`, defaults to 1.0): loss weights.
        initializer_range (`float`, defaults to 0.02): std of the truncated normal initializer.
    """

    model_type = "ram_plus"
    sub_configs_defaults = {
        "vision_config": SubConfigSpec(SwinConfig, init_kwargs=dict(SWIN_L_384)),
        "text_config": SubConfigSpec(CLIPTextConfig, optional=True),
    }

    vision_config: dict | SwinConfig | None = None
    text_config: dict | CLIPTextConfig | None = None
    hidden_size: int = 768
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    layer_norm_eps: float = 1e-12
    hidden_dropout_prob: float | int = 0.1
    attention_probs_dropout_prob: float | int = 0.1
    text_embed_dim: int = 512
    descriptions_per_tag: int = 51
    tag_description_counts: list[int] | None = None
    reweight_scale_init: float | int = math.log(1 / 0.07)
    tag_thresholds: list[float | int] | None = None
    default_threshold: float | int = 0.68
    tag_names_chinese: list[str] | None = None
    tag_loss_gamma_neg: float | int = 7.0
    tag_loss_gamma_pos: float | int = 0.0
    tag_loss_clip: float | int | None = 0.05
    align_loss_gamma_neg: float | int = 4.0
    align_loss_gamma_pos: float | int = 0.0
    align_loss_clip: float | int | None = 0.05
    asl_eps: float = 1e-8
    tag_loss_weight: float | int = 1.0
    align_loss_weight: float | int = 1.0
    distill_loss_weight: float | int = 1.0
    initializer_range: float = 0.02
    # multi-label: pipeline("image-classification") applies a sigmoid per tag
    problem_type: str | None = "multi_label_classification"

    def __post_init__(self, **kwargs):
        for key in _RETIRED_KEYS:
            kwargs.pop(key, None)
        if isinstance(self.vision_config, dict):
            self.vision_config = {k: v for k, v in self.vision_config.items() if k != "model_type"}
        if isinstance(self.text_config, dict):
            self.text_config = {k: v for k, v in self.text_config.items() if k != "model_type"}
        super().__post_init__(**kwargs)
        if self.label2id is None or len(self.label2id) != len(self.id2label):
            self.label2id = {name: index for index, name in self.id2label.items()}
        self.label2id = {name: int(index) for name, index in self.label2id.items()}
        # the checks below raise plain ValueErrors naming the field; `@strict` runs them again after `__init__`
        # and `save_pretrained` before writing
        self._validate_ram_plus()

    # ------------------------------------------------------------------ validation
    def _validate_ram_plus(self) -> None:
        self.validate_sub_configs()
        self.validate_decoder()
        self.validate_vocabulary()
        self.validate_losses()

    def validate_sub_configs(self):
        """The Swin stages and the optional text tower fit the model."""
        vc = self.vision_config
        if not isinstance(vc, SwinConfig):
            raise TypeError(f"`vision_config` must be a dict or a SwinConfig, got {type(vc).__name__}")
        if self.text_config is not None and not isinstance(self.text_config, CLIPTextConfig):
            raise TypeError(
                f"`text_config` must be None, a dict or a CLIPTextConfig, got {type(self.text_config).__name__}"
            )
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

    def validate_decoder(self):
        """Positive sizes; the decoder width splits evenly over the attention heads."""
        for name in (
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
            "text_embed_dim",
            "descriptions_per_tag",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}")
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"`hidden_size` ({self.hidden_size}) must be divisible by `num_attention_heads` "
                f"({self.num_attention_heads})"
            )

    def validate_vocabulary(self):
        """One threshold, description count and Chinese name per tag, each in range."""
        num_tags = len(self.id2label)
        validate_threshold(self.default_threshold, "default_threshold")
        if self.tag_thresholds is not None:
            validate_thresholds(self.tag_thresholds, name="tag_thresholds")
            if len(self.tag_thresholds) != num_tags:
                raise ValueError(
                    f"`tag_thresholds` has {len(self.tag_thresholds)} values but the model has {num_tags} tags "
                    "(`id2label`)"
                )
        if self.tag_description_counts is not None:
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

    def validate_losses(self):
        """Non-negative focusing exponents; probability margins in [0, 1)."""
        for prefix in ("tag_loss", "align_loss"):
            for name in ("gamma_neg", "gamma_pos"):
                value = getattr(self, f"{prefix}_{name}")
                if math.isnan(value) or value < 0:
                    raise ValueError(f"`{prefix}_{name}` must be >= 0, got {value!r}")
            clip = getattr(self, f"{prefix}_clip")
            if clip is not None and not 0.0 <= clip < 1.0:
                raise ValueError(f"`{prefix}_clip` must be in [0, 1), got {clip!r}")

    # ------------------------------------------------------------------ custom pipelines
    @property
    def custom_pipelines(self) -> dict:
        """The folder's `custom_pipelines` (as `transformers.pipeline` reads them) less the tasks whose registered
        pipeline class has the name of the one the folder ships: where this package is installed,
        `pipeline(task, model=DIR)` uses its pipeline without `trust_remote_code`. Saved unchanged (`to_dict`)."""
        stored = self.__dict__.get("custom_pipelines")
        if not stored:
            return {}  # a folder saved without the bundle: `pipeline()` takes len() of this
        local = {}
        for task, options in stored.items():
            registered = PIPELINE_REGISTRY.supported_tasks.get(task)
            impl = registered.get("impl") if registered else None
            # a class (a registered pipeline) or a dotted path (transformers' own tasks are resolved lazily)
            impl_name = impl.rsplit(".", 1)[-1] if isinstance(impl, str) else getattr(impl, "__name__", None)
            if impl_name is not None and impl_name == str(options.get("impl", "")).rsplit(".", 1)[-1]:
                continue
            local[task] = options
        return local

    @custom_pipelines.setter
    def custom_pipelines(self, value) -> None:
        self.__dict__["custom_pipelines"] = value

    # ------------------------------------------------------------------ vocabulary
    @property
    def num_tags(self) -> int:
        return len(self.id2label)

    @property
    def tag_names(self) -> list[str]:
        return [self.id2label[i] for i in range(len(self.id2label))]

    def thresholds(self) -> list[float]:
        """The decision threshold of every tag (`tag_thresholds`, or `default_threshold` for all)."""
        if self.tag_thresholds is not None:
            return [float(t) for t in self.tag_thresholds]
        return [float(self.default_threshold)] * self.num_tags

    def vocabulary(self) -> dict:
        """The tag vocabulary's names, thresholds, Chinese names and description counts as keyword arguments of
        `RamPlusModel.set_vocabulary` (JSON-serializable; adapters save it as `tag_vocabulary.json`)."""
        return {
            "names": self.tag_names,
            "thresholds": self.tag_thresholds,
            "chinese_names": self.tag_names_chinese,
            "description_counts": self.tag_description_counts,
        }

    def _set_vocabulary(self, names, thresholds=None, chinese_names=None, description_counts=None, descriptions_per_tag=None):
        """The config half of `RamPlusModel.set_vocabulary` (which replaces the label embeddings with it); called alone
        only for a config without a model (checkpoint conversion). On a bad value the config is left as it was."""
        names = [str(n) for n in names]
        if len(set(names)) != len(names):
            duplicates = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"tag names must be unique, duplicated: {duplicates[:10]}")
        values = {
            "id2label": dict(enumerate(names)),
            "label2id": {n: i for i, n in enumerate(names)},
            "tag_thresholds": None if thresholds is None else validate_thresholds(thresholds, name="tag_thresholds"),
            "tag_names_chinese": None if chinese_names is None else [str(n) for n in chinese_names],
            "tag_description_counts": None if description_counts is None else [int(c) for c in description_counts],
            "descriptions_per_tag": self.descriptions_per_tag if descriptions_per_tag is None else int(descriptions_per_tag),
        }
        previous = {name: getattr(self, name) for name in values}
        try:
            for name, value in values.items():
                setattr(self, name, value)
            self._validate_ram_plus()
        except Exception as error:  # a failed check or a wrongly typed field: leave the config as it was
            for name, value in previous.items():
                object.__setattr__(self, name, value)
            if isinstance(error, (ValueError, TypeError)):
                raise
            raise ValueError(str(error)) from error

    def set_thresholds(self, thresholds, tag_indices=None) -> None:
        """Store decision thresholds: one per tag, or one per tag of `tag_indices` (the other tags keep theirs)."""
        current = self.thresholds()
        if tag_indices is None:
            current = validate_thresholds(thresholds, num_tags=self.num_tags, name="thresholds")
        else:
            indices = [int(i) for i in tag_indices]
            values = validate_thresholds(thresholds, num_tags=len(indices), name="thresholds")
            bad = [i for i in indices if not 0 <= i < self.num_tags]
            if bad:
                raise ValueError(f"tag indices outside [0, {self.num_tags}): {bad[:10]}")
            for index, value in zip(indices, values):
                current[index] = value
        self.tag_thresholds = current

    @classmethod
    def from_preset(cls, variant: str = "swin_l", **kwargs) -> "RamPlusConfig":
        """A config with the image encoder of `variant` (`"swin_l"` = released model, or `"swin_b"`)."""
        if variant not in VISION_PRESETS:
            raise ValueError(f"unknown variant {variant!r}; choose one of {sorted(VISION_PRESETS)}")
        return cls(vision_config=dict(VISION_PRESETS[variant]), **kwargs)


__all__ = ["RamPlusConfig", "validate_language", "validate_threshold", "validate_thresholds", "validate_top_k"]
