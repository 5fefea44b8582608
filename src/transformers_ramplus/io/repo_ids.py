# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""What counts as a Hugging Face Hub repository id where a name may also be a local path (the one home of that rule:
huggingface_hub's own validation, less what is a path or a file name)."""

from __future__ import annotations

import os

from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id


FILE_SUFFIXES = (".pth", ".pt", ".bin", ".json")  # names of files, never repository ids here


def looks_like_repo_id(name, require_owner: bool = False) -> bool:
    """Whether `name` is a valid Hub repository id (`name`, or `owner/name`; only `owner/name` with `require_owner`)
    and not an existing path or a file name."""
    if not isinstance(name, str) or os.path.exists(name) or name.lower().endswith(FILE_SUFFIXES):
        return False
    if require_owner and name.count("/") != 1:
        return False
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


__all__ = ["looks_like_repo_id"]
