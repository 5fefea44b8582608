# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""PyTorch RAM (Recognize Anything, arXiv 2306.03514): RAM++'s tagging graph with one label embedding per tag.

Swin image encoder -> 145 tokens (mean token + 144) -> image projection -> the label embeddings, one CLIP text
embedding per tag used as they are (no description re-weighting) -> query projection + ReLU -> RAM++'s 2-layer
cross-attention decoder -> one logit per tag. Everything else (vocabulary, open set, heatmaps, thresholds, the tagging
and distillation losses, fast inference, adapters) is [`RamPlusModel`]'s, which this model subclasses.

This file imports only RAM++'s modeling file, its configuration, `transformers` and `torch` (remote-code bundle).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers.conversion_mapping import register_checkpoint_conversion_mapping
from transformers.core_model_loading import WeightRenaming

from ..ram_plus.modeling_ram_plus import RamPlusModel, RamPlusOutput
from .configuration_ram import RamConfig


# converted folders store the label embeddings at the top level (`label_embeds`), as RAM++'s do
register_checkpoint_conversion_mapping(
    "RamModel",
    [WeightRenaming(source_patterns=r"^label_embeds", target_patterns="tag_embeddings.label_embeds")],
    overwrite=True,
)


class RamModel(RamPlusModel):
    """
    The RAM image tagger: `forward(pixel_values)` returns one logit per tag (and the tagging and distillation losses
    when their targets are given).

    The built-in vocabulary is `label_embeds`, one L2-normalized CLIP ViT-B/16 text embedding per tag
    (`(num_tags, text_embed_dim)`, the original's `label_embed`); tag queries are `relu(query_projection(label_embeds))`,
    the same for every image. Label embeddings with several rows per tag (open-set tags given by descriptions, or a
    vocabulary mixing those with built-in tags) are reduced to one row per tag, the mean of its real rows,
    L2-normalized, the way tags known by name average their 63 prompt embeddings. RAM has no image-caption alignment
    objective, so it takes no captions.
    """

    config_class = RamConfig
    config: RamConfig
    base_model_prefix = "ram"
    reweights_descriptions = False

    def __init__(self, config: RamConfig):
        super().__init__(config)

    @staticmethod
    def pool_label_embeds(label_embeds: torch.Tensor, description_mask: torch.Tensor | None = None) -> torch.Tensor:
        """One embedding per tag from `(num_tags, D, dim)` label embeddings: a tag's row itself when it has one real
        row (the original's computation, also for built-in tags padded into a mixed tag set), else the L2-normalized
        mean of its real rows (`description_mask`)."""
        if label_embeds.shape[1] == 1:
            return label_embeds[:, 0]
        if description_mask is None:
            return F.normalize(label_embeds.mean(dim=1), dim=-1)
        weights = description_mask.to(label_embeds.dtype).unsqueeze(-1)
        counts = weights.sum(dim=1)
        pooled = (label_embeds * weights).sum(dim=1) / counts.clamp_min(1.0)
        return torch.where(counts == 1, pooled, F.normalize(pooled, dim=-1))

    def compute_label_queries(
        self,
        image_embeds: torch.Tensor,
        label_embeds: torch.Tensor,
        description_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Query projection + ReLU of each tag's embedding: `(batch, num_tags, hidden_size)`, the same for every image."""
        queries = F.relu(self.query_projection(self.pool_label_embeds(label_embeds, description_mask)))
        return queries.unsqueeze(0).expand(image_embeds.shape[0], -1, -1)

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        image_embeds: torch.Tensor | None = None,
        label_embeds: torch.Tensor | None = None,
        descriptions_per_tag: int | None = None,
        description_mask: torch.Tensor | None = None,
        tag_indices: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        teacher_image_embeds: torch.Tensor | None = None,
        caption_input_ids: torch.Tensor | None = None,
        caption_attention_mask: torch.Tensor | None = None,
        caption_embeds: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        **kwargs,
    ) -> RamPlusOutput:
        r"""
        As [`RamPlusModel.forward`]: `pixel_values` (or `image_embeds`), optional open-set `label_embeds`
        (`(num_tags, D, text_embed_dim)`, or 2-D with `descriptions_per_tag`; several rows per tag are averaged),
        `tag_indices`, `labels` (tagging loss) and `teacher_image_embeds` (distillation loss). RAM has no image-caption
        alignment loss: caption inputs are refused.
        """
        if caption_input_ids is not None or caption_embeds is not None or caption_attention_mask is not None:
            raise ValueError(
                "RAM has no image-caption alignment loss (that objective is RAM++'s): pass `labels` and/or "
                "`teacher_image_embeds` for its tagging and distillation losses"
            )
        return super().forward(
            pixel_values=pixel_values,
            image_embeds=image_embeds,
            label_embeds=label_embeds,
            descriptions_per_tag=descriptions_per_tag,
            description_mask=description_mask,
            tag_indices=tag_indices,
            labels=labels,
            teacher_image_embeds=teacher_image_embeds,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            **kwargs,
        )


__all__ = ["RamModel"]
