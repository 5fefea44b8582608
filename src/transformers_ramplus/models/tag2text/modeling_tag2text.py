# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""Tag2Text: image tagging (3429 tags, group-wise head) and tag-guided image captioning.

Graph (SPEC section 9): Swin-B tokens with their mean first (145 x 1024, no projection) -> the learned tag queries
cross-attend to them through a 2-layer decoder that shares its weights with the tag encoder's lowest layers -> one
logit per tag from a group-wise linear head. Captions: the tags (predicted, or given by the user) as `" | "`-joined
text go through the BERT tag encoder (cross-attending to the image tokens); the BERT decoder generates from
`[DEC] a picture of`, cross-attending to the tag encoder's states (no mask over the padded tag positions).

This file imports only torch, transformers and its sibling files, so it ships as remote code.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from transformers import SwinModel
from transformers import initialization as init
from transformers.generation import GenerationConfig, GenerationMixin
from transformers.modeling_utils import PreTrainedModel
from transformers.utils import ModelOutput, logging

from .configuration_tag2text import Tag2TextConfig
from .modeling_tag2text_text import SharedLayerTaggingDecoder, Tag2TextTextModel


logger = logging.get_logger(__name__)

# the released model's caption defaults (SPEC section 9): beam search, 3 beams, 10 to 30 tokens with the prompt
CAPTION_GENERATION_DEFAULTS = {"num_beams": 3, "max_length": 30, "min_length": 10, "repetition_penalty": 1.0}


def _asymmetric_loss(logits, targets, gamma_neg, gamma_pos, clip, eps):
    """ASL (Ridnik et al. 2021), summed over batch and classes; focusing weights are constants (SPEC section 3)."""
    probs = torch.sigmoid(logits.float())
    targets = targets.float()
    probs_neg = 1 - probs
    if clip is not None and clip > 0:
        probs_neg = (probs_neg + clip).clamp(max=1)
    loss = targets * torch.log(probs.clamp(min=eps)) + (1 - targets) * torch.log(probs_neg.clamp(min=eps))
    if gamma_neg > 0 or gamma_pos > 0:
        with torch.no_grad():
            pt = probs * targets + probs_neg * (1 - targets)
            gamma = gamma_pos * targets + gamma_neg * (1 - targets)
            weight = torch.pow(1 - pt, gamma)
        loss = loss * weight
    return -loss.sum()


@dataclass
class Tag2TextOutput(ModelOutput):
    """
    Output of [`Tag2TextForConditionalGeneration`].

    Args:
        loss (`torch.FloatTensor`, *optional*): weighted sum of the losses whose targets were given.
        tag_loss (`torch.FloatTensor`, *optional*): asymmetric loss of the tag logits against `labels`.
        caption_loss (`torch.FloatTensor`, *optional*): the caption decoder's mean token cross-entropy
            (`text_generation` of the original).
        logits (`torch.FloatTensor` of shape `(batch_size, num_tags)`): tag logits (scores are their sigmoid).
        image_embeds (`torch.FloatTensor` of shape `(batch_size, 145, 1024)`): the image tokens, mean token first.
        caption_logits (`torch.FloatTensor` of shape `(batch_size, caption_length, vocab_size)`, *optional*).
    """

    loss: torch.FloatTensor | None = None
    tag_loss: torch.FloatTensor | None = None
    caption_loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    image_embeds: torch.FloatTensor | None = None
    caption_logits: torch.FloatTensor | None = None


class Tag2TextGroupWiseLinear(nn.Module):
    """One weight vector and bias per tag: `logits[b, c] = W[0, c] . x[b, c] + b[0, c]` (original keys `fc.W`,
    `fc.b`)."""

    def __init__(self, num_tags: int, hidden_size: int):
        super().__init__()
        self.W = nn.Parameter(torch.empty(1, num_tags, hidden_size))
        self.b = nn.Parameter(torch.empty(1, num_tags))

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return (self.W * hidden_states).sum(-1) + self.b


class Tag2TextPreTrainedModel(PreTrainedModel):
    config_class = Tag2TextConfig
    config: Tag2TextConfig
    base_model_prefix = "tag2text"
    main_input_name = "pixel_values"
    input_modalities = ("image", "text")
    supports_gradient_checkpointing = True
    _no_split_modules = ["SwinStage", "BlipTextLayer"]
    _supports_sdpa = True
    _supports_flash_attn = False
    _supports_flex_attn = False
    _keys_to_ignore_on_load_unexpected = [r"relative_position_index", r"attn_mask", r"position_ids"]
    # the caption decoder's output layer is its word embeddings (and its bias the prediction bias), as the original
    _tied_weights_keys = {
        "text_model.text_decoder.cls.predictions.decoder.weight": "text_model.text_decoder.bert.embeddings.word_embeddings.weight",
        "text_model.text_decoder.cls.predictions.decoder.bias": "text_model.text_decoder.cls.predictions.bias",
    }

    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, Tag2TextGroupWiseLinear):
            bound = module.W.shape[-1] ** -0.5
            init.uniform_(module.W, -bound, bound)
            init.uniform_(module.b, -bound, bound)


class Tag2TextForConditionalGeneration(Tag2TextPreTrainedModel, GenerationMixin):
    r"""
    Tag2Text: tags an image with its 3429-tag vocabulary and writes a caption guided by the tags (predicted, or given
    by the user). `forward` gives the tag logits (and, with targets, the training losses); `generate` writes captions.
    """

    def __init__(self, config: Tag2TextConfig):
        super().__init__(config)
        text = config.text_config
        self.vision_model = SwinModel(config.vision_config, add_pooling_layer=True)
        self.label_embed = nn.Embedding(config.num_tags, text.hidden_size)
        self.text_model = Tag2TextTextModel(text)
        self.tagging_head = SharedLayerTaggingDecoder(
            config.tagging_num_attention_heads, dropout=text.attention_probs_dropout_prob
        )
        self.fc = Tag2TextGroupWiseLinear(config.num_tags, text.hidden_size)
        self.post_init()
        # the released caption defaults (a converted folder's generation_config.json holds the same)
        self.generation_config = GenerationConfig(
            **CAPTION_GENERATION_DEFAULTS,
            bos_token_id=text.bos_token_id,
            eos_token_id=text.sep_token_id,
            pad_token_id=text.pad_token_id,
        )

    # ------------------------------------------------------------------ parts
    def get_input_embeddings(self):
        return self.text_model.text_decoder.get_input_embeddings()

    def get_image_embeds(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The image tokens `(batch, 1 + N, width)`: the mean of the Swin output tokens, then the tokens."""
        if not isinstance(pixel_values, torch.Tensor) or pixel_values.dim() != 4 or pixel_values.shape[1] != 3:
            shape = tuple(pixel_values.shape) if isinstance(pixel_values, torch.Tensor) else type(pixel_values).__name__
            raise ValueError(f"`pixel_values` must be a (batch, 3, height, width) tensor, got {shape}")
        size = self.config.vision_config.image_size
        size = (size, size) if isinstance(size, int) else tuple(size)
        if tuple(pixel_values.shape[-2:]) != size:
            raise ValueError(
                f"`pixel_values` must be {size[0]}x{size[1]} (prepare images with the model's image processor), "
                f"got {tuple(pixel_values.shape[-2:])}"
            )
        pixel_values = pixel_values.to(self.vision_model.dtype)
        out = self.vision_model(pixel_values=pixel_values)
        return torch.cat([out.pooler_output.unsqueeze(1), out.last_hidden_state], dim=1)

    def tag_logits(self, image_embeds: torch.Tensor) -> torch.Tensor:
        """Tag logits `(batch, num_tags)` from the image tokens."""
        queries = self.label_embed.weight.unsqueeze(0).expand(image_embeds.shape[0], -1, -1)
        layers = self.text_model.tag_encoder.encoder.layer[: self.config.tagging_num_hidden_layers]
        hidden = self.tagging_head(queries, image_embeds, layers, attn_implementation=self.config._attn_implementation)
        return self.fc(hidden)

    def predicted_tag_indices(self, logits: torch.Tensor) -> list[list[int]]:
        """The released decision: `sigmoid(logits) > threshold[c]`, then `delete_tag_index` dropped; tag order."""
        thresholds = torch.tensor(self.config.thresholds(), dtype=torch.float32, device=logits.device)
        selected = torch.sigmoid(logits.float()) > thresholds
        if self.config.delete_tag_index:
            selected[:, self.config.delete_tag_index] = False
        return [row.nonzero().flatten().tolist() for row in selected]

    def tag_text_inputs(self, tag_indices: Sequence[Sequence[int]], device=None) -> dict:
        """Tag-encoder input for tags of the vocabulary, built from the stored word-piece ids of every tag (what the
        tokenizer makes of their `" | "`-joined names): `[ENC]`, the tags joined by `|`, `[SEP]`, padding to
        `text_config.tag_max_length`."""
        config, text = self.config, self.config.text_config
        if config.tag_token_ids is None or config.tag_separator_token_id is None:
            raise ValueError(
                "this model's config has no `tag_token_ids`: convert the checkpoint with its tokenizer, or pass the "
                "tags as text with a tokenizer"
            )
        length = text.tag_max_length
        input_ids = torch.full((len(tag_indices), length), text.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(tag_indices), length), dtype=torch.long)
        for row, indices in enumerate(tag_indices):
            ids = []
            for position, index in enumerate(indices):
                if position:
                    ids.append(config.tag_separator_token_id)
                ids.extend(config.tag_token_ids[int(index)])
            ids = [text.enc_token_id, *ids[: length - 2], text.sep_token_id]
            input_ids[row, : len(ids)] = torch.tensor(ids)
            attention_mask[row, : len(ids)] = 1
        return {"input_ids": input_ids.to(device), "attention_mask": attention_mask.to(device)}

    def tag_names_of(self, tag_indices: Sequence[Sequence[int]]) -> list[str]:
        names = self.config.id2label
        return [" | ".join(names[i] for i in indices) for indices in tag_indices]

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        image_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        caption_labels: torch.Tensor | None = None,
        tag_input_ids: torch.Tensor | None = None,
        tag_attention_mask: torch.Tensor | None = None,
        return_dict: bool | None = None,
    ) -> Tag2TextOutput:
        r"""
        Args:
            pixel_values (`torch.FloatTensor` of shape `(batch_size, 3, 384, 384)`): images from the image processor.
            image_embeds (`torch.FloatTensor`, *optional*): precomputed [`get_image_embeds`] instead of pixels.
            labels (`torch.FloatTensor` of shape `(batch_size, num_tags)`, *optional*): multi-hot tag targets; give
                the tagging loss, and are the tags the caption decoder is conditioned on in training (as the
                original).
            input_ids / attention_mask (`torch.LongTensor` of shape `(batch_size, length)`, *optional*): tokenized
                captions starting with `[DEC]` and the prompt (the processor's `captions=`); give the caption loss.
            caption_labels (`torch.LongTensor`, *optional*): caption targets (-100 ignored); default: `input_ids`
                with the padding and the prompt masked.
            tag_input_ids / tag_attention_mask (`torch.LongTensor`, *optional*): tag text for the caption loss
                (the processor's `tags=`), instead of the tags of `labels` (or, with neither, the predicted tags).
            return_dict (`bool`, *optional*): accepted for `Trainer`; the output is always a [`Tag2TextOutput`].

        A misspelled argument is a `TypeError`, not silently ignored.
        """
        if (pixel_values is None) == (image_embeds is None):
            raise ValueError("pass exactly one of `pixel_values` and `image_embeds`")
        if image_embeds is None:
            image_embeds = self.get_image_embeds(pixel_values)
        logits = self.tag_logits(image_embeds)
        out = Tag2TextOutput(logits=logits, image_embeds=image_embeds)
        weighted = []
        if labels is not None:
            if labels.shape != logits.shape:
                raise ValueError(
                    f"`labels` must have shape {tuple(logits.shape)} (batch, tags), got {tuple(labels.shape)}"
                )
            config = self.config
            out.tag_loss = _asymmetric_loss(
                logits,
                labels,
                config.tag_loss_gamma_neg,
                config.tag_loss_gamma_pos,
                config.tag_loss_clip,
                config.asl_eps,
            )
            weighted.append(config.tag_loss_weight * out.tag_loss)
        if input_ids is not None:
            if input_ids.shape[0] != logits.shape[0]:
                raise ValueError(f"{input_ids.shape[0]} captions for {logits.shape[0]} images: give one per image")
            if tag_input_ids is None:
                if labels is not None:
                    indices = [row.nonzero().flatten().tolist() for row in (labels == 1)]
                else:
                    indices = self.predicted_tag_indices(logits.detach())
                tags = self.tag_text_inputs(indices, device=image_embeds.device)
                tag_input_ids, tag_attention_mask = tags["input_ids"], tags["attention_mask"]
            if attention_mask is None:
                attention_mask = torch.ones_like(input_ids)
            if caption_labels is None:
                caption_labels = input_ids.masked_fill(attention_mask == 0, -100)
                caption_labels[:, : self.prompt_length] = -100
            tag_states = self.text_model.encode_tags(tag_input_ids, tag_attention_mask, image_embeds)
            decoded = self.text_model.text_decoder(
                input_ids=input_ids,
                attention_mask=attention_mask,
                encoder_hidden_states=tag_states,
                labels=caption_labels,
                use_cache=False,
            )
            out.caption_loss, out.caption_logits = decoded.loss, decoded.logits
            weighted.append(self.config.caption_loss_weight * out.caption_loss)
        if weighted:
            out.loss = torch.stack(weighted).sum()
        return out

    # ------------------------------------------------------------------ captions
    @property
    def prompt_length(self) -> int:
        """Tokens of `[DEC]` + the prompt."""
        return 1 + len(self.config.prompt_token_ids or [])

    def prompt_input_ids(self, batch_size: int, device=None) -> torch.Tensor:
        if self.config.prompt_token_ids is None:
            raise ValueError("this model's config has no `prompt_token_ids`: convert the checkpoint with its tokenizer")
        ids = [self.config.text_config.bos_token_id, *self.config.prompt_token_ids]
        return torch.tensor([ids] * batch_size, dtype=torch.long, device=device)

    @staticmethod
    def _tag_texts(tags, batch_size: int) -> list[str]:
        """User tags as tag texts: one entry per image, each a `" | "`-joined string or a list of tags."""
        if isinstance(tags, str):
            tags = [tags]
        if not isinstance(tags, (list, tuple)) or len(tags) != batch_size:
            raise ValueError(
                f"`tags` must give the tags of each of the {batch_size} images (a list of {batch_size} strings or lists "
                f"of tag strings), got {tags!r}"
            )
        texts = []
        for entry in tags:
            if isinstance(entry, (list, tuple)) and all(isinstance(tag, str) for tag in entry):
                entry = " | ".join(tag.strip() for tag in entry)
            if not isinstance(entry, str):
                raise TypeError(f"each entry of `tags` must be a string or a list of strings, got {entry!r}")
            texts.append(entry)
        return texts

    @torch.no_grad()
    def generate(
        self,
        pixel_values: torch.Tensor | None = None,
        tags=None,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        tag_input_ids: torch.Tensor | None = None,
        tag_attention_mask: torch.Tensor | None = None,
        image_embeds: torch.Tensor | None = None,
        tokenizer=None,
        return_tags: bool = False,
        **generate_kwargs,
    ):
        r"""
        Write a caption for each image, guided by its tags.

        Args:
            pixel_values (`torch.FloatTensor` of shape `(batch_size, 3, 384, 384)`): images from the image processor.
            tags (`list`, *optional*): the tags to caption from, one entry per image (a `" | "`-joined string or a
                list of tag strings; any words, not only the vocabulary's: the authors' "specified tags"). `None`:
                the model's predicted tags (thresholds and `delete_tag_index` applied).
            input_ids / attention_mask (*optional*): the caption start (default `[DEC]` + the prompt).
            tag_input_ids / tag_attention_mask (*optional*): tokenized tag text (the processor's `tags=`), instead of
                `tags`.
            tokenizer (*optional*): the BERT tokenizer for `tags` (default: the one saved with the model).
            return_tags (`bool`): also return the tag text each caption was written from.
            generate_kwargs: any `generate` option (`num_beams`, `do_sample`, `top_p`, `max_length`, ...); the
                defaults are the model's `generation_config` (3 beams, length 10 to 30 tokens with the prompt).

        Returns:
            `torch.LongTensor` `(batch_size * num_return_sequences, length)`, the prompt included (decode with the
            processor's `batch_decode` / `post_process_image_text_to_text`, which cut the prompt), or with
            `return_tags` a pair `(sequences, tag_texts)`.
        """
        if (pixel_values is None) == (image_embeds is None):
            raise ValueError("pass exactly one of `pixel_values` and `image_embeds`")
        if tags is not None and tag_input_ids is not None:
            raise ValueError("pass either `tags` or `tag_input_ids`, not both")
        if tags is not None:  # checked before any image is encoded
            texts = self._tag_texts(tags, (pixel_values if image_embeds is None else image_embeds).shape[0])
        if image_embeds is None:
            image_embeds = self.get_image_embeds(pixel_values)
        batch_size, device = image_embeds.shape[0], image_embeds.device
        tag_texts = None
        if tag_input_ids is None:
            if tags is None:
                indices = self.predicted_tag_indices(self.tag_logits(image_embeds))
                tag_texts = self.tag_names_of(indices)
                tag_inputs = self.tag_text_inputs(indices, device=device)
            else:
                if tokenizer is None:
                    tokenizer = _tokenizer_of(self.config.name_or_path)
                tag_inputs = self.text_model.tag_inputs(tokenizer, texts, device=device)
                tag_texts = texts
            tag_input_ids, tag_attention_mask = tag_inputs["input_ids"], tag_inputs["attention_mask"]
        if tag_input_ids.shape[0] != batch_size:
            raise ValueError(f"{tag_input_ids.shape[0]} tag texts for {batch_size} images")
        tag_states = self.text_model.encode_tags(tag_input_ids, tag_attention_mask, image_embeds)

        if input_ids is None:
            input_ids = self.prompt_input_ids(batch_size, device=device)
            attention_mask = None
        elif input_ids.shape[0] != batch_size:
            if input_ids.shape[0] != 1:
                raise ValueError(f"{input_ids.shape[0]} caption starts for {batch_size} images")
            input_ids = input_ids.expand(batch_size, -1)
            attention_mask = None if attention_mask is None else attention_mask.expand(batch_size, -1)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        input_ids = input_ids.to(device)
        text = self.config.text_config
        generation_config = copy.deepcopy(generate_kwargs.pop("generation_config", None) or self.generation_config)
        other_kwargs = generation_config.update(**generate_kwargs)  # the generation options given override
        if generation_config.eos_token_id is None:
            generation_config.eos_token_id = text.sep_token_id
        if generation_config.pad_token_id is None:
            generation_config.pad_token_id = text.pad_token_id
        sequences = self.text_model.text_decoder.generate(
            input_ids=input_ids,
            attention_mask=attention_mask.to(device),
            encoder_hidden_states=tag_states,
            generation_config=generation_config,
            **other_kwargs,
        )
        return (sequences, tag_texts) if return_tags else sequences


_TOKENIZERS: dict = {}


def _tokenizer_of(path):
    """The tokenizer saved with a model (loaded once per folder / id)."""
    if not path:
        raise ValueError(
            "tags given as text need the model's BERT tokenizer: pass `tokenizer=` (or the processor's tags=)"
        )
    if path not in _TOKENIZERS:
        from transformers import AutoTokenizer

        try:
            _TOKENIZERS[path] = AutoTokenizer.from_pretrained(path)
        except (OSError, ValueError) as error:
            raise ValueError(
                f"tags given as text need the model's BERT tokenizer, and none could be loaded from {path!r}: pass "
                f"`tokenizer=` ({error})"
            ) from error
    return _TOKENIZERS[path]


__all__ = [
    "Tag2TextForConditionalGeneration",
    "Tag2TextGroupWiseLinear",
    "Tag2TextOutput",
    "Tag2TextPreTrainedModel",
]
