# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""Tag maps: rename, translate, merge, drop or keep tags after thresholding (`ramplus tag --tag-map FILE`, the
pipeline's `tag_map=`, `tag_dataset(tag_map=...)`).

A tag map is a YAML or JSON file (or the same structure as a dict) with up to three sections:

```yaml
rename:            # old name -> new name (also translations); several names -> one name merges synonyms
  man: person
  woman: person
  dog: Hund
drop: [text, illustration]   # never output these (before or after renaming)
keep: [person, Hund, cat]     # optional: output only these (names before or after renaming)
```

or, shorter, a flat mapping `{old: new}` where `null` (or an empty string) drops the tag: `{"man": "person",
"text": null}`.

Applied to each image's tags (after the thresholds): a tag whose name or new name is in `drop` is removed; with
`keep`, only tags whose name or new name is listed stay; renamed tags that meet (synonyms) are merged into one, with
the higher score; the result is sorted by score again and `top_k` is applied last. Renaming is one step (`a -> b`,
`b -> c` does not turn `a` into `c`). Names in the map that the tag set does not have are reported (a typo would
otherwise silently do nothing).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


logger = logging.getLogger(__name__)

SECTIONS = ("rename", "drop", "keep")


def _name(value, where: str) -> str:
    if not isinstance(value, str) or not value.strip():  # a file's content: ValueError, as for every bad file
        raise ValueError(f"tag map: {where} must be a non-empty tag name, got {value!r}")
    return value.strip()


def _names(values, where: str) -> list[str]:
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, (list, tuple)):
        raise ValueError(f"tag map: `{where}` must be a list of tag names, got {type(values).__name__}")  # noqa: TRY004
    return [_name(value, f"an entry of `{where}`") for value in values]


@dataclass(frozen=True)
class TagMap:
    """What to do with tags after thresholding; see the module docstring. Build one with `TagMap.load(file)` or
    `TagMap.from_dict({...})`."""

    rename: dict = field(default_factory=dict)
    drop: frozenset = frozenset()
    keep: frozenset | None = None
    source: str | None = None  # the file it was read from, for messages

    # ---------------------------------------------------------------- building
    @classmethod
    def from_dict(cls, data: Mapping, source: str | None = None) -> TagMap:
        """A tag map from its sections (`rename`, `drop`, `keep`) or from a flat `{old: new-or-null}` mapping."""
        if not isinstance(data, Mapping):
            raise ValueError(f"tag map{_from(source)}: expected a mapping (rename/drop/keep), got {type(data).__name__}")  # noqa: TRY004 (a file's content)
        if data and all(key in SECTIONS for key in data):
            rename_data = data.get("rename") or {}
            if not isinstance(rename_data, Mapping):
                raise ValueError(f"tag map{_from(source)}: `rename` must map old names to new names")
            rename = {_name(k, "a `rename` key"): _name(v, f"the new name of {k!r}") for k, v in rename_data.items()}
            drop = _names(data.get("drop") or [], "drop")
            keep = None if data.get("keep") is None else _names(data["keep"], "keep")
            if keep is not None and not keep:
                raise ValueError(f"tag map{_from(source)}: `keep` is empty (it would drop every tag); leave it out instead")
        else:
            rename, drop, keep = {}, [], None
            for key, value in data.items():
                key = _name(key, "a key")
                if value is None or value == "":
                    drop.append(key)
                else:
                    rename[key] = _name(value, f"the new name of {key!r}")
        return cls(rename=rename, drop=frozenset(drop), keep=None if keep is None else frozenset(keep), source=source)

    @classmethod
    def load(cls, path: str | os.PathLike) -> TagMap:
        """Read a tag map file: YAML (`.yaml`/`.yml`) or JSON (any other name). Errors name the file."""
        path = os.fspath(path)
        try:
            with open(path, encoding="utf-8-sig") as handle:
                text = handle.read()
        except FileNotFoundError:
            raise ValueError(f"--tag-map {path!r}: no such file") from None
        except IsADirectoryError:
            raise ValueError(f"--tag-map {path!r} is a folder; name a YAML or JSON file") from None
        except UnicodeDecodeError as error:
            raise ValueError(f"--tag-map {path!r} is not UTF-8 text ({error})") from None
        if path.lower().endswith((".yaml", ".yml")):
            import yaml  # a dependency of transformers

            try:
                data = yaml.safe_load(text)
            except yaml.YAMLError as error:
                raise ValueError(f"--tag-map {path!r} is not valid YAML: {error}") from None
        else:
            try:
                data = json.loads(text)
            except ValueError as error:
                raise ValueError(f"--tag-map {path!r} is not valid JSON ({error}); YAML files end in .yaml or .yml") from None
        if data is None:
            raise ValueError(f"--tag-map {path!r} is empty")
        return cls.from_dict(data, source=path)

    @classmethod
    def coerce(cls, value) -> TagMap | None:
        """`None`, a `TagMap`, a mapping (the file's structure) or a path to a tag map file, as a `TagMap`."""
        if value is None or isinstance(value, TagMap):
            return value
        if isinstance(value, Mapping):
            return cls.from_dict(value)
        if isinstance(value, (str, os.PathLike)):
            return cls.load(value)
        raise TypeError(f"`tag_map` must be None, a TagMap, a dict or a path to a YAML/JSON file, got {type(value).__name__}")

    # ---------------------------------------------------------------- using
    def to_dict(self) -> dict:
        data = {"rename": dict(sorted(self.rename.items())), "drop": sorted(self.drop)}
        if self.keep is not None:
            data["keep"] = sorted(self.keep)
        return data

    def digest(self) -> str:
        """What identifies the map's effect (recorded with the options of a resumable run)."""
        return hashlib.sha256(json.dumps(self.to_dict(), ensure_ascii=False, sort_keys=True).encode()).hexdigest()[:16]

    def unknown_names(self, labels: Iterable[str]) -> list[str]:
        """Names of the map that are not among `labels` (the tag set's labels in the output language); `keep` may
        also name a new name given by `rename`."""
        known = set(labels)
        targets = known | set(self.rename.values())
        unknown = [n for n in self.rename if n not in known]
        unknown += [n for n in sorted(self.drop) + sorted(self.keep or ()) if n not in targets]
        return list(dict.fromkeys(unknown))

    def warn_unknown(self, labels: Iterable[str], report=None) -> list[str]:
        """Report (default: a logged warning) the names of the map that no tag of `labels` has; returns them."""
        unknown = self.unknown_names(labels)
        if unknown:
            shown = ", ".join(map(repr, unknown[:20])) + (f" and {len(unknown) - 20} more" if len(unknown) > 20 else "")
            (report or logger.warning)(
                f"tag map{_from(self.source)}: {len(unknown)} name(s) are not tags of this tag set and do nothing: {shown}"
            )
        return unknown

    def apply(self, tags: list[dict], top_k: int | None = None) -> list[dict]:
        """One image's tags (`[{"label", "score"}]`) mapped: dropped, kept, renamed, merged (higher score), sorted by
        score (highest first; ties keep their order) and cut to `top_k`."""
        merged: dict[str, dict] = {}
        for tag in tags:
            label = tag["label"]
            new = self.rename.get(label, label)
            if label in self.drop or new in self.drop:
                continue
            if self.keep is not None and label not in self.keep and new not in self.keep:
                continue
            seen = merged.get(new)
            if seen is None or tag["score"] > seen["score"]:
                merged[new] = {**tag, "label": new}
        result = sorted(merged.values(), key=lambda tag: -tag["score"])
        return result if top_k is None else result[:top_k]

    def __call__(self, tags: list[dict], top_k: int | None = None) -> list[dict]:
        return self.apply(tags, top_k)


def _from(source) -> str:
    return f" {source!r}" if source else ""


__all__ = ["TagMap"]
