# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""The BERT text side shared by Tag2Text and RAM.

- `Tag2TextTextModel.tag_encoder`: transformers' `BlipTextModel` (no pooler) run bidirectionally: the tags as text
  attend to each other and cross-attend to the image tokens (`encoder_hidden_size` wide).
- `Tag2TextTextModel.text_decoder`: transformers' `BlipTextLMHeadModel` (a `GenerationMixin` causal LM) that
  cross-attends to the tag encoder's states and writes the caption.

Their parameter names are the original checkpoints' (`tag_encoder.*`, `text_decoder.bert.*`, `text_decoder.cls.*`),
so a converted state dict loads without renaming. What the authors' models add and transformers lacks is written
here: the tagging decoder that **reuses the cross-attention and feed-forward weights of the tag encoder's lowest
layers** with its own head count (`shared_layer_tagging_decoder`, attention through `ALL_ATTENTION_FUNCTIONS`), the
tag-text and caption inputs (`[ENC]` / `[DEC]` as first token) and the caption loss (prompt and padding masked).

This file imports only torch, transformers and its configuration, so it ships as remote code.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
from torch import nn
from transformers import BlipTextLMHeadModel, BlipTextModel
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from .configuration_tag2text_text import Tag2TextTextConfig


def _eager_attention(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    weights = torch.matmul(query, key.transpose(-1, -2)) * scaling
    if attention_mask is not None:
        weights = weights + attention_mask
    weights = nn.functional.softmax(weights, dim=-1, dtype=torch.float32).to(query.dtype)
    weights = nn.functional.dropout(weights, p=dropout, training=module.training)
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), weights


def tag_text_inputs(config, tokenizer, tag_texts: Sequence[str], device=None) -> dict:
    """Tag texts tokenized as the tag encoder of `config` (a `Tag2TextTextConfig`) reads them: padded to
    `tag_max_length`, first token `[ENC]`."""
    encoded = tokenizer(
        list(tag_texts), padding="max_length", truncation=True, max_length=config.tag_max_length, return_tensors="pt"
    )
    input_ids = encoded["input_ids"].clone()
    input_ids[:, 0] = config.enc_token_id
    return {"input_ids": input_ids.to(device), "attention_mask": encoded["attention_mask"].to(device)}


def caption_text_inputs(config, tokenizer, captions: Sequence[str], device=None) -> dict:
    """Captions (which start with the prompt) tokenized for the caption loss of `config`: padded to the longest,
    truncated to `caption_max_length`, first token `[DEC]`; `labels` mask the padding and the prompt with -100."""
    encoded = tokenizer(
        list(captions), padding="longest", truncation=True, max_length=config.caption_max_length, return_tensors="pt"
    )
    input_ids = encoded["input_ids"].clone()
    input_ids[:, 0] = config.bos_token_id
    labels = input_ids.masked_fill(encoded["attention_mask"] == 0, -100)
    labels[:, : len(tokenizer(config.prompt).input_ids) - 1] = -100  # [DEC] + the prompt (not its [SEP])
    return {
        "input_ids": input_ids.to(device),
        "attention_mask": encoded["attention_mask"].to(device),
        "labels": labels.to(device),
    }


class SharedLayerTaggingDecoder(nn.Module):
    """The authors' Query2Label tagging decoder, whose weights ARE the cross-attention and feed-forward weights of the
    lowest layers of the tag encoder (the original ties them). Each layer: cross-attention of the tag queries
    `(batch, num_tags, hidden)` over the image tokens (no mask, `num_attention_heads` heads, which differs from the
    tag encoder's own head count in the released models: 4 vs 12), residual + LayerNorm, then the BERT feed-forward.
    No self-attention, no embeddings. It owns no parameters: the layers are passed to `forward`."""

    def __init__(self, num_attention_heads: int, attn_implementation: str | None = "eager", dropout: float = 0.0):
        super().__init__()
        self.num_heads = num_attention_heads
        self.attn_implementation = attn_implementation
        self.attention_dropout = dropout
        self.is_causal = False

    def forward(
        self,
        queries: torch.Tensor,
        image_embeds: torch.Tensor,
        layers: Sequence[nn.Module],
        attn_implementation: str | None = None,
    ) -> torch.Tensor:
        hidden_states = queries
        interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(
            attn_implementation or self.attn_implementation or "eager", _eager_attention
        )
        for layer in layers:
            cross = layer.crossattention
            batch, length, width = hidden_states.shape
            head_dim = width // self.num_heads
            query = cross.self.query(hidden_states).view(batch, length, self.num_heads, head_dim).transpose(1, 2)
            kv_shape = (*image_embeds.shape[:-1], self.num_heads, head_dim)
            key = cross.self.key(image_embeds).view(kv_shape).transpose(1, 2)
            value = cross.self.value(image_embeds).view(kv_shape).transpose(1, 2)
            attn, _ = interface(
                self,
                query,
                key,
                value,
                None,
                scaling=head_dim**-0.5,
                dropout=self.attention_dropout if self.training else 0.0,
                is_causal=False,
            )
            attn = attn.reshape(batch, length, width)
            hidden_states = cross.output(attn, hidden_states)
            hidden_states = layer.feed_forward_chunk(hidden_states)
        return hidden_states


class Tag2TextTextModel(nn.Module):
    """The tag encoder and the caption decoder of Tag2Text / RAM, with the inputs and loss they need.

    Args:
        config ([`Tag2TextTextConfig`]): the text side's configuration (`encoder_hidden_size` = image token width).
    """

    def __init__(self, config: Tag2TextTextConfig):
        super().__init__()
        self.config = config
        self.tag_encoder = BlipTextModel(config, add_pooling_layer=False)
        # the caption decoder cross-attends to the tag encoder's states, which are `hidden_size` wide
        decoder_config = copy.deepcopy(config)
        decoder_config.encoder_hidden_size = config.hidden_size
        self.text_decoder = BlipTextLMHeadModel(decoder_config)

    # ----------------------------------------------------------------------------------------- inputs
    @staticmethod
    def tag_texts_from_multi_hot(multi_hot: torch.Tensor, tag_names: Sequence[str]) -> list[str]:
        """`" | "`-joined names of the tags set in each row of a `(batch, num_tags)` 0/1 tensor (tag order)."""
        if multi_hot.dim() != 2 or multi_hot.shape[1] != len(tag_names):
            raise ValueError(f"tag targets must have shape (batch, {len(tag_names)}), got {tuple(multi_hot.shape)}")
        return [" | ".join(tag_names[i] for i in row.nonzero().flatten().tolist()) for row in (multi_hot == 1)]

    def tag_inputs(self, tokenizer, tag_texts: Sequence[str], device=None) -> dict:
        """Tokenize tag texts as the tag encoder reads them: padded to `tag_max_length`, first token `[ENC]`."""
        return tag_text_inputs(self.config, tokenizer, tag_texts, device)

    def caption_inputs(self, tokenizer, captions: Sequence[str], device=None) -> dict:
        """Tokenize captions (which start with the prompt) for the caption loss: padded to the longest, truncated to
        `caption_max_length`, first token `[DEC]`; `labels` mask the padding and the prompt with -100."""
        return caption_text_inputs(self.config, tokenizer, captions, device)

    def prompt_length(self, tokenizer) -> int:
        """Tokens of `[DEC]` + the prompt (the prompt's `[SEP]` is not part of it)."""
        return len(tokenizer(self.config.prompt).input_ids) - 1

    def prompt_ids(self, tokenizer) -> torch.Tensor:
        """`(1, prompt_length)`: `[DEC]` then the prompt's word pieces, the start of every generated caption."""
        ids = torch.tensor(tokenizer(self.config.prompt).input_ids[:-1]).unsqueeze(0)
        ids[:, 0] = self.config.bos_token_id
        return ids

    # ----------------------------------------------------------------------------------------- passes
    def encode_tags(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, image_embeds: torch.Tensor
    ) -> torch.Tensor:
        """Tag-encoder states `(batch, tag_length, hidden)`: the tag text attends to itself (padding masked) and to
        every image token."""
        if image_embeds.shape[-1] != self.config.encoder_hidden_size:
            raise ValueError(
                f"the tag encoder attends to {self.config.encoder_hidden_size}-wide image tokens, got "
                f"{image_embeds.shape[-1]}-wide ones"
            )
        image_mask = torch.ones(image_embeds.shape[:-1], dtype=torch.long, device=image_embeds.device)
        return self.tag_encoder(
            input_ids=input_ids,
            attention_mask=attention_mask,
            encoder_hidden_states=image_embeds,
            encoder_attention_mask=image_mask,
            is_decoder=False,
        ).last_hidden_state

    def caption_loss(
        self,
        tag_states: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        labels: torch.Tensor,
    ) -> torch.Tensor:
        """Mean token cross-entropy of the caption given the tag-encoder states (no mask over the tag padding, as
        the original)."""
        return self.text_decoder(
            input_ids=input_ids,
            attention_mask=attention_mask,
            encoder_hidden_states=tag_states,
            labels=labels,
            use_cache=False,
        ).loss


__all__ = ["SharedLayerTaggingDecoder", "Tag2TextTextModel", "caption_text_inputs", "tag_text_inputs"]
