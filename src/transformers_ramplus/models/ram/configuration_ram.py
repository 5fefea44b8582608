# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""RAM (Recognize Anything, "Recognize Anything: A Strong Image Tagging Model", arXiv 2306.03514) configuration.

RAM is RAM++'s tagging graph with one CLIP text embedding per tag, used as it is (no description re-weighting), so
[`RamConfig`] is a [`RamPlusConfig`] with its own `model_type` and one description per tag by default. It imports
only RAM++'s configuration and `transformers` (it is part of the remote-code bundle of converted folders).
"""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers.configuration_utils import SubConfigSpec

from ..ram_plus.configuration_ram_plus import RamPlusConfig
from ..tag2text.configuration_tag2text_text import Tag2TextTextConfig


@strict
class RamConfig(RamPlusConfig):
    r"""
    Configuration of a [`RamModel`] (RAM, "Recognize Anything: A Strong Image Tagging Model").

    Every argument of [`RamPlusConfig`] applies, with the same defaults (Swin-L/384 image encoder, the 2-layer
    cross-attention decoder of width 768, per-tag thresholds, Chinese names), except:

    Args:
        descriptions_per_tag (`int`, defaults to 1): the released RAM stores one CLIP text embedding per tag
            (`label_embed` (4585, 512)). A vocabulary with several rows per tag (new tags given by descriptions) is
            used through the mean of each tag's real rows, L2-normalized, as RAM has no re-weighting step.

        caption_config (`dict` or `Tag2TextTextConfig`, *optional*): the checkpoint's BERT text side (a tag encoder
            whose lowest `num_hidden_layers` layers ARE the tagging decoder, and a caption decoder), used by RAM's
            `text_generation` training loss. `None` (the default): tagging only.

    `reweight_scale_init` has no effect: a RAM model has no re-weighting scale.
    """

    model_type = "ram"
    sub_configs_defaults = {  # noqa: RUF012 (as transformers declares it)
        **RamPlusConfig.sub_configs_defaults,
        "caption_config": SubConfigSpec(Tag2TextTextConfig, optional=True),
    }

    descriptions_per_tag: int = 1
    caption_config: dict | Tag2TextTextConfig | None = None
    # the caption decoder's output layer is its word embeddings (as the original's); transformers ties them
    tie_word_embeddings: bool = True

    def __post_init__(self, **kwargs):
        if isinstance(self.caption_config, dict):
            self.caption_config = {k: v for k, v in self.caption_config.items() if k != "model_type"}
        super().__post_init__(**kwargs)
        self.validate_caption_config()

    def validate_caption_config(self) -> None:
        """The caption model's tag encoder can share the tagging decoder's layers (same widths, enough layers)."""
        caption = self.caption_config
        if caption is not None:
            if not isinstance(caption, Tag2TextTextConfig):
                raise TypeError(f"`caption_config` must be None, a dict or a Tag2TextTextConfig, got {type(caption).__name__}")
            shared = {"hidden_size": self.hidden_size, "intermediate_size": self.intermediate_size,
                      "encoder_hidden_size": self.text_embed_dim}
            for name, value in shared.items():
                if getattr(caption, name) != value:
                    raise ValueError(
                        f"`caption_config.{name}` ({getattr(caption, name)}) must be {value}: the tag encoder's lowest "
                        "layers are the tagging decoder"
                    )
            if caption.num_hidden_layers < self.num_hidden_layers:
                raise ValueError(
                    f"`caption_config.num_hidden_layers` ({caption.num_hidden_layers}) must be at least the tagging "
                    f"decoder's {self.num_hidden_layers} layers, which it shares"
                )


__all__ = ["RamConfig"]
