# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""The one reader of tag files: tag lists (one tag per line), their Chinese names and per-tag thresholds.

Every tool reads them here: `ramplus convert` (`--tag-list`, `--tag-list-chinese`, `--thresholds`), `ramplus evaluate`
(`--tag-list`), `ramplus tag --labels-file` and `ramplus describe --tags-file`.

Rules: UTF-8 text, one entry per line, surrounding whitespace stripped (the released Chinese list pads names with
spaces); a blank line inside the file is an error (in a tag list the line number is the tag's index, so a stray blank
line would shift every tag after it); blank lines at the end of the file are ignored. Every error is a `ValueError`
that names the file (and the line).
"""

from __future__ import annotations

import os

from ..models.ram_plus.configuration_ram_plus import validate_threshold


def read_tag_list(path, what: str = "tag list", comments: bool = False) -> list[str]:
    """The entries of a tag file, in order (duplicates kept). `comments=True` also skips lines starting with `#`
    (the hand-written files of `--labels-file` / `--tags-file`)."""
    name = os.fspath(path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as error:
        raise ValueError(f"cannot read the {what} file {name!r}: {error.strerror or error}") from error
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise ValueError(
            f"the {what} file {name!r} is not UTF-8 text (line {line}: {error.reason}); save it as UTF-8"
        ) from None
    lines = [line.strip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    entries = []
    for number, line in enumerate(lines, 1):
        if not line:
            raise ValueError(
                f"the {what} file {name!r} has a blank line {number}: every line must name one tag "
                "(blank lines are allowed only at the end)"
            )
        if comments and line.startswith("#"):
            continue
        entries.append(line)
    if not entries:
        raise ValueError(f"the {what} file {name!r} holds no tag")
    return entries


def read_thresholds(path) -> list[float]:
    """One decision threshold per line, each a number in [0, 1]."""
    values = []
    for number, line in enumerate(read_tag_list(path, "thresholds"), 1):
        try:
            value = float(line)
        except ValueError:
            raise ValueError(f"{os.fspath(path)!r} line {number}: not a number: {line!r}") from None
        try:
            values.append(validate_threshold(value, f"threshold on line {number} of {os.fspath(path)!r}"))
        except ValueError as error:
            raise ValueError(str(error)) from None
    return values


__all__ = ["read_tag_list", "read_thresholds"]
