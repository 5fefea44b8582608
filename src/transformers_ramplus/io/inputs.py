# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""The images a tagging run is given: files named directly, files in folders, URLs; each identified by a key."""

from __future__ import annotations

import os
from pathlib import Path


def is_url(path: str) -> bool:
    return path.startswith(("http://", "https://"))


def input_key(path: str) -> str:
    """What identifies an input: the URL, or the real absolute path (so `x`, `./x` and `../dir/x` are one image)."""
    return path if is_url(path) else os.path.normcase(os.path.realpath(path))


def collect_inputs(paths, recursive=False, extensions=None, exclude=None, empty_folders=None) -> list[str]:
    """Files named directly, files in folders (recursively with `recursive`; hidden files skipped; entries that are
    not regular files, such as FIFOs and broken links, are kept so that they are reported), URLs, each once
    (in the spelling first met). A missing path is kept, so that it gets an error record. Folders that yield no file
    are appended to `empty_folders` when it is a list."""
    wanted = None
    if extensions:
        wanted = {"." + e.strip().lower().lstrip(".") for e in extensions.split(",") if e.strip()}
    excluded = input_key(exclude) if exclude else None
    found: dict[str, str] = {}

    def take(path: str) -> bool:
        key = input_key(path)
        if key == excluded:
            return False
        found.setdefault(key, path)
        return True

    for path in paths:
        if is_url(path) or not os.path.isdir(path):
            take(path)
            continue
        taken = 0
        if recursive:
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    if not name.startswith(".") and (wanted is None or Path(name).suffix.lower() in wanted):
                        taken += take(os.path.join(root, name))
        else:
            for name in sorted(os.listdir(path)):
                full = os.path.join(path, name)
                # a FIFO, socket, device or broken link is taken (it gets an error record: reported, not hidden)
                if name.startswith(".") or os.path.isdir(full):
                    continue
                if wanted is None or Path(name).suffix.lower() in wanted:
                    taken += take(full)
        if not taken and empty_folders is not None:
            empty_folders.append(path)
    return list(found.values())


__all__ = ["collect_inputs", "input_key", "is_url"]
