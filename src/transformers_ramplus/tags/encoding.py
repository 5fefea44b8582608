# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""Text encoding: texts -> L2-normalized CLIP embeddings in batches with dynamic padding, a progress bar for large
sets, and a cache per text tower (repeating a call with the same texts does no text work)."""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Sequence

import torch
from tqdm.auto import tqdm
from transformers import AutoTokenizer

from ..models.ram_plus.processing_ram_plus import MAX_TEXT_TOKENS


logger = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------- text encoding
_TEXT_CACHES: "weakref.WeakKeyDictionary[torch.nn.Module, dict[str, torch.Tensor]]" = weakref.WeakKeyDictionary()
_CACHE_LOCK = threading.Lock()


def _text_cache(text_model) -> dict[str, torch.Tensor]:
    with _CACHE_LOCK:
        cache = _TEXT_CACHES.get(text_model)
        if cache is None:
            cache = {}
            _TEXT_CACHES[text_model] = cache
        return cache


def clear_text_cache(model=None) -> None:
    """Forget cached text embeddings (of one model's text tower, or of all)."""
    with _CACHE_LOCK:
        if model is None:
            _TEXT_CACHES.clear()
        else:
            _TEXT_CACHES.pop(getattr(model, "text_model", model), None)


def tokenizer_for_model(model):
    """The CLIP tokenizer saved next to a model loaded with `from_pretrained` (as `ramplus convert --text-tower`
    writes it), or `None` when there is none."""
    if getattr(model, "text_model", None) is None:
        return None
    name = getattr(model, "name_or_path", None)
    if not name:
        return None
    if os.path.isdir(name) and not any(
        os.path.isfile(os.path.join(name, f)) for f in ("tokenizer_config.json", "tokenizer.json", "vocab.json")
    ):
        return None

    try:
        return AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError):
        return None


def _require_text_tower(model, tokenizer, texts_needed: int):
    if getattr(model, "text_model", None) is None:
        raise ValueError(
            f"{texts_needed} text(s) of new tags need the CLIP text tower, but this model has none; use built-in tags, "
            "load a tag set saved with its embeddings, or convert the model with `ramplus convert --text-tower "
            "openai/clip-vit-base-patch16`"
        )
    if tokenizer is None:
        raise ValueError(
            "new tags need the CLIP tokenizer: pass `tokenizer=` (or a processor that carries one); a model converted "
            "with `--text-tower` saves it next to the weights"
        )


def encode_texts(
    model,
    tokenizer,
    texts: Sequence[str],
    batch_size: int = 256,
    padding: str = "longest",
    show_progress: bool | None = None,
    use_cache: bool = True,
    description: str = "encoding text",
) -> torch.Tensor:
    """L2-normalized CLIP text embeddings `(len(texts), text_embed_dim)` (float32, CPU) from `model.text_model`.

    Texts are deduplicated, looked up in the per-text-tower cache, and the missing ones are tokenized once (truncated
    to 77 tokens), sorted by length and encoded in batches of `batch_size`. `padding="longest"` pads each batch to its
    longest text (dynamic padding); `padding="max_length"` pads every text to 77 tokens (as the original does).
    `show_progress=None` shows a progress bar (stderr) when there is more than one batch.
    """
    if padding not in ("longest", "max_length"):
        raise ValueError(f"`padding` must be 'longest' or 'max_length', got {padding!r}")
    if not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"`batch_size` must be a positive integer, got {batch_size!r}")
    texts = list(texts)
    for text in texts:
        if not isinstance(text, str):
            raise TypeError(f"texts must be strings, got {type(text).__name__}: {text!r:.80}")
    width = model.config.text_embed_dim
    if not texts:
        return torch.zeros(0, width)
    text_model = getattr(model, "text_model", None)
    cache = _text_cache(text_model) if (use_cache and text_model is not None) else {}
    missing = list(dict.fromkeys(t for t in texts if t not in cache))
    if missing:
        _require_text_tower(model, tokenizer, len(missing))
        encoded = tokenizer(missing, truncation=True, max_length=MAX_TEXT_TOKENS, padding=False)["input_ids"]
        order = sorted(range(len(missing)), key=lambda i: len(encoded[i]))
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        if pad_id is None:
            raise ValueError("the tokenizer has neither a pad nor an end-of-text token to pad with")
        device = next(text_model.parameters()).device
        batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
        if show_progress is None:
            show_progress = len(batches) > 1

        fresh: dict[str, torch.Tensor] = {}
        with torch.no_grad(), tqdm(total=len(missing), desc=description, unit="text", disable=not show_progress) as bar:
            for batch in batches:
                length = MAX_TEXT_TOKENS if padding == "max_length" else max(len(encoded[i]) for i in batch)
                input_ids = torch.full((len(batch), length), pad_id, dtype=torch.long)
                attention_mask = torch.zeros((len(batch), length), dtype=torch.long)
                for row, index in enumerate(batch):
                    ids = encoded[index]
                    input_ids[row, : len(ids)] = torch.as_tensor(ids, dtype=torch.long)
                    attention_mask[row, : len(ids)] = 1
                embeds = model.encode_text(input_ids.to(device), attention_mask.to(device)).float().cpu()
                for row, index in enumerate(batch):
                    fresh[missing[index]] = embeds[row].clone()
                bar.update(len(batch))
        if use_cache and text_model is not None:
            cache.update(fresh)
        else:
            cache = {**cache, **fresh}
    return torch.stack([cache[t] for t in texts]).reshape(len(texts), width)
