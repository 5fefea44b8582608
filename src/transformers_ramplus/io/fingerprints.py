# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""Cheap identities of what a result depends on: an input file, a model, a tag set. A resumed run compares them
with the ones recorded by the run that wrote the results; caches use them as keys."""

from __future__ import annotations

import hashlib
import json
import os

from .inputs import is_url


_MODEL_SUFFIXES = (".safetensors", ".bin", ".json", ".txt", ".model", ".py", ".jinja")


def file_stamp(path: str):
    """What identifies an input's content cheaply: `[size, mtime_ns]` of a file, None for a URL."""
    if is_url(path):
        return None
    try:
        stat = os.stat(path)
    except OSError:
        return "missing"
    return [stat.st_size, stat.st_mtime_ns]


def model_fingerprint(model_path: str, config=None, exclude=()) -> str:
    """What identifies a model: in a folder, the files `from_pretrained` reads (weights, configs, tokenizer and code
    files: names, sizes, modification times; hidden files and `exclude` left out); else the Hub id and commit."""
    parts = [model_path]
    if os.path.isdir(model_path):
        parts = [os.path.realpath(model_path)]
        skipped = {os.path.realpath(path) for path in exclude if path}
        for name in sorted(os.listdir(model_path)):
            full = os.path.join(model_path, name)
            if name.startswith(".") or not name.endswith(_MODEL_SUFFIXES) or not os.path.isfile(full):
                continue
            if os.path.realpath(full) in skipped:
                continue
            stat = os.stat(full)
            parts.append(f"{name}:{stat.st_size}:{stat.st_mtime_ns}")
    elif config is not None:
        parts.append(str(getattr(config, "_commit_hash", None)))
    return hashlib.sha256("\n".join(parts).encode("utf-8", "surrogateescape")).hexdigest()[:16]


def tag_set_digest(tag_set) -> str:
    """What identifies a tag set's results: names, thresholds, Chinese names, built-in indices and embeddings."""
    digest = hashlib.sha256()
    meta = [
        list(tag_set.names),
        [float(t) for t in tag_set.thresholds],
        list(getattr(tag_set, "builtin_indices", None) or []),
        list(getattr(tag_set, "chinese_names", None) or []),
    ]
    digest.update(json.dumps(meta, ensure_ascii=True, default=str).encode())
    for tensor in (getattr(tag_set, "label_embeds", None), getattr(tag_set, "description_mask", None)):
        if tensor is not None:
            digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


__all__ = ["file_stamp", "model_fingerprint", "tag_set_digest"]
