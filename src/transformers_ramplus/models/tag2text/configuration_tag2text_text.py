# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""Configuration of the BERT text side shared by Tag2Text and RAM: the tag encoder and the caption decoder.

Both parts are the BLIP-style BERT of the authors' code (self-attention, then cross-attention to an encoder's states,
then feed-forward; word + position embeddings, no token types), which transformers ships as `BlipTextModel` /
`BlipTextLMHeadModel`. This configuration is a `BlipTextConfig` with the defaults of the released checkpoints
(bert-base-uncased plus `[DEC]` (bos) and `[ENC]`, 12 layers of width 768) and the few text facts the models need
(the `[ENC]` id, the padded tag length, the caption prompt). `encoder_hidden_size` is the width of the image tokens
the tag encoder attends to: 1024 for Tag2Text (Swin-B tokens), 512 for RAM (`image_embeds` after its projection).
"""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers import BlipTextConfig


@strict
class Tag2TextTextConfig(BlipTextConfig):
    r"""
    Configuration of the text side of Tag2Text / RAM ([`Tag2TextTextModel`]): a BERT tag encoder that reads the tags
    as text (`" | "`-joined names, first token replaced by `[ENC]`) while cross-attending to the image tokens, and a
    BERT causal LM that writes the caption while cross-attending to the tag encoder's states.

    Args:
        vocab_size (`int`, defaults to 30524): bert-base-uncased's 30522 word pieces plus `[DEC]` and `[ENC]`.
        hidden_size / num_hidden_layers / num_attention_heads / intermediate_size: BERT-base (768 / 12 / 12 / 3072).
        encoder_hidden_size (`int`, defaults to 1024): width of the image tokens the tag encoder cross-attends to.
        bos_token_id (`int`, defaults to 30522): `[DEC]`, the first token of every caption.
        enc_token_id (`int`, defaults to 30523): `[ENC]`, the first token of the tag text.
        eos_token_id / sep_token_id (`int`, defaults to 102): `[SEP]` ends a caption.
        pad_token_id (`int`, defaults to 0): `[PAD]`.
        tag_max_length (`int`, defaults to 40): the tag text is padded / truncated to this many tokens.
        caption_max_length (`int`, defaults to 40): training captions are truncated to this many tokens.
        prompt (`str`, defaults to `"a picture of "`): the caption prompt; it is masked out of the caption loss and
            cut off the generated text.
        label_smoothing (`float`, defaults to 0.1): label smoothing of the caption cross-entropy (the authors' 0.1).
    """

    model_type = "tag2text_text"
    base_config_key = "text_config"

    vocab_size: int = 30524
    hidden_size: int = 768
    encoder_hidden_size: int = 1024
    intermediate_size: int = 3072
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    max_position_embeddings: int = 512
    hidden_dropout_prob: float | int = 0.1
    attention_probs_dropout_prob: float | int = 0.1
    bos_token_id: int | None = 30522
    enc_token_id: int = 30523
    eos_token_id: int | list[int] | None = 102
    pad_token_id: int | None = 0
    sep_token_id: int | None = 102
    is_decoder: bool = True
    tag_max_length: int = 40
    caption_max_length: int = 40
    prompt: str = "a picture of "
    label_smoothing: float = 0.1

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        for name in (
            "vocab_size",
            "hidden_size",
            "encoder_hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
            "tag_max_length",
            "caption_max_length",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"`text_config.{name}` must be a positive integer, got {value!r}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"`text_config.hidden_size` ({self.hidden_size}) must be divisible by `text_config.num_attention_heads`"
                f" ({self.num_attention_heads})"
            )
        for name in ("bos_token_id", "enc_token_id", "pad_token_id"):
            value = getattr(self, name)
            if value is not None and not 0 <= value < self.vocab_size:
                raise ValueError(f"`text_config.{name}` ({value}) is outside the vocabulary of {self.vocab_size}")
        # the layers need their cross-attention (BlipTextLayer builds it for decoders); whether a pass is causal is
        # chosen per call (`is_decoder=` of BlipTextModel.forward)
        if not self.is_decoder:
            raise ValueError("`text_config.is_decoder` must be True: every text layer has a cross-attention")


__all__ = ["Tag2TextTextConfig"]
