# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""Reading JSON a user gave (descriptions, metadata.jsonl, the authors' training JSON, tag sets) as *bad input*
when it is bad: not JSON, not UTF-8, or nested so deeply that a parser would run out of stack (Python's `json`
raises RecursionError; pyarrow, which `datasets` uses, crashes the process). The nesting is measured before any
parser sees the file, so every such case is a ValueError naming the file."""

from __future__ import annotations

import itertools
import json
import os
import re


MAX_JSON_DEPTH = 200  # far above any real file here (descriptions: 3 levels; metadata records: 3 or 4)
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(rb"[\[\]{}]")


def json_depth(data: bytes) -> int:
    """The deepest nesting of arrays and objects in JSON (or JSON Lines) `data` (brackets inside strings ignored)."""
    steps = (1 if b in (b"[", b"{") else -1 for b in _BRACKETS.findall(_STRING.sub(b'""', data)))
    return max(itertools.accumulate(steps, initial=0))


def check_json_depth(data: bytes, origin, limit: int = MAX_JSON_DEPTH) -> None:
    """ValueError naming `origin` when `data` nests deeper than `limit` levels."""
    depth = json_depth(data)
    if depth > limit:
        raise ValueError(f"{os.fspath(origin)!r} is not usable JSON: nested {depth} levels deep (at most {limit} allowed)")


def check_json_file(path, origin=None, limit: int = MAX_JSON_DEPTH) -> None:
    """`check_json_depth` for the file at `path`."""
    with open(path, "rb") as handle:
        check_json_depth(handle.read(), origin or path, limit)


def load_json_file(path, origin=None, what: str = "file", limit: int = MAX_JSON_DEPTH):
    """The JSON value of the file at `path`; ValueError naming `origin` (default: the path) when it is not UTF-8,
    not JSON, or nested too deeply."""
    origin = os.fspath(origin or path)
    with open(path, "rb") as handle:
        data = handle.read()
    check_json_depth(data, origin, limit)
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise ValueError(f"{what} {origin!r} is not UTF-8 text: {error}") from error
    except json.JSONDecodeError as error:
        raise ValueError(f"{what} {origin!r} is not valid JSON: {error}") from error
    except RecursionError:
        raise ValueError(f"{what} {origin!r} is not usable JSON: nested too deeply") from None


__all__ = ["MAX_JSON_DEPTH", "check_json_depth", "check_json_file", "json_depth", "load_json_file"]
