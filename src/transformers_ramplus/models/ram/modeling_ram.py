# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""PyTorch RAM (Recognize Anything, arXiv 2306.03514): RAM++'s tagging graph with one label embedding per tag.

Swin image encoder -> 145 tokens (mean token + 144) -> image projection -> the label embeddings, one CLIP text
embedding per tag used as they are (no description re-weighting) -> query projection + ReLU -> RAM++'s 2-layer
cross-attention decoder -> one logit per tag. Everything else (vocabulary, open set, heatmaps, thresholds, the tagging
and distillation losses, fast inference, adapters) is [`RamPlusModel`]'s, which this model subclasses.

This file imports only RAM++'s modeling file, its configuration, `transformers` and `torch` (remote-code bundle).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers.conversion_mapping import register_checkpoint_conversion_mapping
from transformers.core_model_loading import WeightRenaming

from ..ram_plus.modeling_ram_plus import RamPlusModel, RamPlusOutput
from ..tag2text.modeling_tag2text_text import Tag2TextTextModel
from .configuration_ram import RamConfig


# converted folders store the label embeddings at the top level (`label_embeds`), as RAM++'s do
register_checkpoint_conversion_mapping(
    "RamModel",
    [WeightRenaming(source_patterns=r"^label_embeds", target_patterns="tag_embeddings.label_embeds")],
    overwrite=True,
)


@dataclass
class RamOutput(RamPlusOutput):
    """
    Output of [`RamModel`]: [`RamPlusOutput`] and `text_generation_loss` (`torch.FloatTensor` of shape `()`,
    *optional*), the caption decoder's mean token cross-entropy (label smoothing 0.1) given the image and the tags.
    """

    text_generation_loss: torch.FloatTensor | None = None


# the tagging decoder's modules that ARE the tag encoder's (`decoder.layers.N.<ours>` = `...layer.N.<theirs>`)
_SHARED_MODULES = {
    "cross_attention.q_proj": "crossattention.self.query",
    "cross_attention.k_proj": "crossattention.self.key",
    "cross_attention.v_proj": "crossattention.self.value",
    "cross_attention.o_proj": "crossattention.output.dense",
    "cross_attention_layer_norm": "crossattention.output.LayerNorm",
    "fc1": "intermediate.dense",
    "fc2": "output.dense",
    "final_layer_norm": "output.LayerNorm",
}
_CAPTION_LM_TIES = {
    "caption_model.text_decoder.cls.predictions.decoder.weight": "caption_model.text_decoder.bert.embeddings.word_embeddings.weight",
    "caption_model.text_decoder.cls.predictions.decoder.bias": "caption_model.text_decoder.cls.predictions.bias",
}


def _submodule(module, path: str):
    for name in path.split("."):
        module = getattr(module, name)
    return module


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

    def _add_modules(self, config: RamConfig) -> None:
        """The optional caption model (`config.caption_config`): the BERT tag encoder, whose lowest layers' cross-
        attention and feed-forward modules are the tagging decoder's own (one set of weights, as the original ties
        them), and the caption decoder."""
        self.caption_model = None
        if config.caption_config is None:
            return
        # transformers' BERT text layers (BlipText*) run the eager attention only, whatever the tagging side uses
        config.caption_config._attn_implementation_internal = "eager"
        self.caption_model = Tag2TextTextModel(config.caption_config)
        ties = dict(_CAPTION_LM_TIES)
        for index, layer in enumerate(self.decoder.layers):
            encoder_layer = self.caption_model.tag_encoder.encoder.layer[index]
            for ours, theirs in _SHARED_MODULES.items():
                parent, _, name = ours.rpartition(".")
                setattr(_submodule(layer, parent) if parent else layer, name, _submodule(encoder_layer, theirs))
                for leaf in ("weight", "bias"):
                    ties[f"caption_model.tag_encoder.encoder.layer.{index}.{theirs}.{leaf}"] = (
                        f"decoder.layers.{index}.{ours}.{leaf}"
                    )
        self._tied_weights_keys = ties  # saved once, under the tagging decoder's names

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
        tag_input_ids: torch.Tensor | None = None,
        tag_attention_mask: torch.Tensor | None = None,
        caption_input_ids: torch.Tensor | None = None,
        caption_attention_mask: torch.Tensor | None = None,
        caption_labels: torch.Tensor | None = None,
        caption_embeds: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        **kwargs,
    ) -> RamOutput:
        r"""
        As [`RamPlusModel.forward`]: `pixel_values` (or `image_embeds`), optional open-set `label_embeds`
        (`(num_tags, D, text_embed_dim)`, or 2-D with `descriptions_per_tag`; several rows per tag are averaged),
        `tag_indices`, `labels` (tagging loss) and `teacher_image_embeds` (distillation loss). With a caption model
        (`config.caption_config`), the `text_generation` loss: `tag_input_ids` / `tag_attention_mask` (the image's
        tags as text, `Tag2TextTextModel.tag_inputs`) and `caption_input_ids` / `caption_attention_mask` /
        `caption_labels` (the caption, `Tag2TextTextModel.caption_inputs`). RAM has no image-caption alignment loss
        (`caption_embeds` is refused).
        """
        if caption_embeds is not None:
            raise ValueError(
                "RAM has no image-caption alignment loss (that objective is RAM++'s): its caption loss takes BERT "
                "`caption_input_ids` / `caption_labels` with `tag_input_ids`"
            )
        text_inputs = (tag_input_ids, caption_input_ids, caption_labels)
        wants_text = any(x is not None for x in (*text_inputs, tag_attention_mask, caption_attention_mask))
        if wants_text:
            if self.caption_model is None:
                raise ValueError(
                    "this RAM model has no caption model (converted without its text side: pass --tokenizer to "
                    "`ramplus convert`), so it has no text_generation loss"
                )
            if any(x is None for x in text_inputs):
                raise ValueError("the text_generation loss needs `tag_input_ids`, `caption_input_ids` and `caption_labels`")
        output = super().forward(
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
        output = RamOutput(**output)
        if wants_text:
            tag_states = self.caption_model.encode_tags(tag_input_ids, tag_attention_mask, output.image_embeds)
            loss = self.caption_model.caption_loss(tag_states, caption_input_ids, caption_attention_mask, caption_labels)
            total = loss if output.loss is None else output.loss + loss
            output = RamOutput(**{**output, "loss": total, "text_generation_loss": loss})
        return output


__all__ = ["RamModel", "RamOutput"]
