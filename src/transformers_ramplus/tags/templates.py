# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""Tags given by name: the prompt templates a new tag name is embedded with (the authors' 63-template ensemble,
or a compact 14-template set, or your own)."""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path


logger = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------ tags given by name
# A tag known only by its name gets ONE embedding: every prompt template is filled with the name, each filled text is
# encoded and L2-normalized, and the mean of those embeddings is L2-normalized again.
#
# "ram_plus" (the default) is the authors' ensemble, exactly: their 63 templates and their rules (see
# `ram_plus_name_prompts`). The templates and rules ship verbatim, with the authors' own outputs for 8 edge-case
# names, in `data/openset_name_ensemble.json` (`load_name_ensemble_data()`), which `RAM_PLUS_TEMPLATES` is read from.
NAME_ENSEMBLE_FILE = "openset_name_ensemble.json"

def load_name_ensemble_data() -> dict:
    """The authors' name ensemble as shipped in the package (`data/openset_name_ensemble.json`): `templates`,
    `rules`, `examples` (the exact texts their code produces for 8 edge-case names) and `openimages_rare_unseen`."""
    path = Path(__file__).resolve().parent / "data" / NAME_ENSEMBLE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{os.fspath(path)!r} is missing: the package was installed without its data files")
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


# the authors' 63 templates, read from the shipped file (their one home)
RAM_PLUS_TEMPLATES: tuple[str, ...] = tuple(load_name_ensemble_data()["templates"])
COMPACT_TEMPLATES: tuple[str, ...] = (
    "a photo of {article} {}.",
    "There is the {} in the scene.",
    "There is {article} {} in the scene.",
    "This is {article} {} in the scene.",
    "This is the {} in the scene.",
    "This is one {} in the scene.",
    "a photo of the {}.",
    "a good photo of the {}.",
    "a close-up photo of the {}.",
    "a cropped photo of the {}.",
    "a bright photo of the {}.",
    "a blurry photo of the {}.",
    "a photo of one {}.",
    "itap of the {}.",
)

NAME_TEMPLATE_SETS: dict[str, tuple[str, ...]] = {"ram_plus": RAM_PLUS_TEMPLATES, "compact": COMPACT_TEMPLATES}
DEFAULT_NAME_TEMPLATES = "ram_plus"
_TEMPLATE_FIELDS = re.compile(r"(\{article\}|\{\})")  # the two fields a template may hold


def ram_plus_article(name: str) -> str:
    """The authors' article: `"an"` when the ORIGINAL name (before any processing) starts with a lower-case vowel
    letter (a, e, i, o, u), else `"a"` — so "Aerial photography" gets "a" and "egg" gets "an"."""
    return "an" if name[:1] in ("a", "e", "i", "o", "u") else "a"


def ram_plus_name(name: str) -> str:
    """The authors' name processing: lower-cased, `_` -> space, `/` -> " or ", every trailing `.` removed."""
    return name.lower().replace("_", " ").replace("/", " or ").rstrip(".")


def ram_plus_name_prompts(name: str) -> list[str]:
    """The 63 texts the authors' open-set code encodes for a tag known only by `name`, in template order: each
    template is filled with the processed name (`ram_plus_name`) and the article of the original name
    (`ram_plus_article`), and "This is " is put in front of every filled text that starts with "a" or "the" (so any
    text starting with the letter a: "a photo...", "an embroidered...")."""
    if not isinstance(name, str):
        raise TypeError(f"tag names must be strings, got {type(name).__name__}: {name!r:.80}")
    processed = ram_plus_name(name)
    if not processed.strip():
        raise ValueError(f"tag name {name!r} is empty once processed (lower-cased, '_' and '/' replaced, trailing '.' removed)")
    article = ram_plus_article(name)
    texts = []
    for template in RAM_PLUS_TEMPLATES:
        # fill "{article}" and "{}" in one left-to-right pass (like str.format), so braces in a name stay as they are
        text = "".join(
            article if part == "{article}" else processed if part == "{}" else part
            for part in _TEMPLATE_FIELDS.split(template)
        )
        texts.append("This is " + text if text.startswith(("a", "the")) else text)
    return texts


def indefinite_article(word: str) -> str:
    """`"an"` before a vowel letter (either case), else `"a"` (the rule of `fill_template`)."""
    return "an" if word[:1].lower() in ("a", "e", "i", "o", "u") else "a"


def fill_template(template: str, tag: str) -> str:
    """Fill one of your own templates as written: `"{}"` becomes the tag, `"{article}"` "a"/"an"."""
    return "".join(
        indefinite_article(tag) if part == "{article}" else tag if part == "{}" else part
        for part in _TEMPLATE_FIELDS.split(template)
    )


def resolve_name_templates(templates=None) -> str | tuple[str, ...]:
    """Check a `templates` argument: `None` (the default, "ram_plus"), the name of a built-in set ("ram_plus",
    "compact"), or a sequence of your own templates (each containing `"{}"`). Returns the name or the tuple."""
    if templates is None:
        return DEFAULT_NAME_TEMPLATES
    if isinstance(templates, str):
        if templates not in NAME_TEMPLATE_SETS:
            raise ValueError(
                f"unknown template set {templates!r}: use one of {sorted(NAME_TEMPLATE_SETS)} or a list of templates "
                "containing '{}'"
            )
        return templates
    templates = tuple(templates)
    if not templates or not all(isinstance(t, str) and "{}" in t for t in templates):
        raise ValueError(f"`templates` must be non-empty strings that contain '{{}}', got {templates!r:.200}")
    return templates


def name_prompts(name: str, templates=None) -> list[str]:
    """The texts whose normalized mean embeds a tag known only by `name`: the authors' 63 (`templates=None` or
    `"ram_plus"`, see `ram_plus_name_prompts`), or a template set filled as written (`"compact"`, or your own
    sequence; see `fill_template`)."""
    templates = resolve_name_templates(templates)
    if templates == "ram_plus":
        return ram_plus_name_prompts(name)
    if isinstance(templates, str):
        templates = NAME_TEMPLATE_SETS[templates]
    return [fill_template(template, name) for template in templates]
