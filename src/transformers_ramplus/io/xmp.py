# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""XMP keywords with the standard library only: merging our tags into the keywords a photo already has, and reading
and writing XMP sidecar files (`IMG_1.xmp` or `IMG_1.JPG.xmp`) that digiKam, darktable, Lightroom and Immich read.

Where keywords go:
- `dc:subject` (a bag): the flat keywords every photo manager shows;
- `lr:hierarchicalSubject` (a bag): each tag under a parent, `ramplus|dog` (digiKam and Lightroom show a `ramplus`
  tag tree, which tells the keywords this tool wrote from the user's own);
- `ramplus:Tags` (a bag, namespace `NAMESPACE`): the keywords this tool added to `dc:subject` (not those the user
  already had), so that a rerun replaces them and nothing else;
- `ramplus:Scores` (a sequence, optional): `label=score` for each tag.

A keyword the user wrote is never removed: a rerun removes only the `dc:subject` keywords recorded in `ramplus:Tags`
and the `lr:hierarchicalSubject` entries under the parent, then adds the new tags.
"""

from __future__ import annotations

import io
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field


NAMESPACE = "https://github.com/transformers-ramplus/xmp/1.0/"
DEFAULT_PARENT = "ramplus"
NS = {
    "x": "adobe:ns:meta/",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "dc": "http://purl.org/dc/elements/1.1/",
    "lr": "http://ns.adobe.com/lightroom/1.0/",
    "ramplus": NAMESPACE,
}


def _qualified(prefix: str, name: str = "") -> str:
    """ElementTree's name of `prefix:name` (`{namespace}name`)."""
    return "{" + NS[prefix] + "}" + name


RDF = _qualified("rdf")
XMPMETA = _qualified("x", "xmpmeta")
SUBJECT = _qualified("dc", "subject")
HIERARCHICAL = _qualified("lr", "hierarchicalSubject")
OURS = _qualified("ramplus", "Tags")
SCORES = _qualified("ramplus", "Scores")


def clean_keyword(label: str) -> str:
    """A tag as a keyword: one line, no surrounding blanks (a line break would split it in IPTC and argument files)."""
    return " ".join(str(label).split())


@dataclass
class Keywords:
    """The keyword fields of one photo (its XMP, and for embedded metadata its IPTC keywords)."""

    subject: list = field(default_factory=list)
    hierarchical: list = field(default_factory=list)
    ours: list = field(default_factory=list)
    scores: list = field(default_factory=list)
    iptc: list | None = None  # None: not written (sidecars; formats without IPTC)


@dataclass
class KeywordChange:
    """What merging new tags into a photo's keywords changes."""

    before: Keywords
    after: Keywords
    added: list
    removed: list

    @property
    def changed(self) -> bool:
        return self.before != self.after


def merge_keywords(before: Keywords, tags: list[dict], parent: str = DEFAULT_PARENT, scores: bool = False) -> KeywordChange:
    """`before` with this tool's earlier keywords replaced by `tags` (`[{"label", "score"}]`); the user's keywords
    are kept as they are, in their order."""
    new = list(dict.fromkeys(k for k in (clean_keyword(t["label"]) for t in tags) if k))
    earlier = set(before.ours)
    user_subject = [k for k in before.subject if k not in earlier]
    ours = [k for k in new if k not in user_subject]
    prefix = parent + "|"
    hierarchical = [h for h in before.hierarchical if not h.startswith(prefix)]
    hierarchical += [prefix + k.replace("|", "/") for k in new]
    iptc = None
    if before.iptc is not None:
        user_iptc = [k for k in before.iptc if k not in earlier]
        iptc = user_iptc + [k for k in new if k not in user_iptc]
    score_list = [f"{clean_keyword(t['label'])}={float(t['score']):.4f}" for t in tags] if scores else []
    after = Keywords(user_subject + ours, hierarchical, ours, score_list, iptc)
    removed = [k for k in before.subject if k in earlier and k not in after.subject]
    added = [k for k in after.subject if k not in before.subject]
    return KeywordChange(before, after, added, removed)


# ------------------------------------------------------------------------------------------------ XMP documents
def _bag_items(element) -> list[str]:
    return [(li.text or "").strip() for li in element.iter(RDF + "li") if (li.text or "").strip()]


def _descriptions(root) -> list:
    return list(root.iter(RDF + "Description"))


def parse_xmp(data: bytes, name: str = "XMP") -> tuple[ET.ElementTree, Keywords]:
    """An XMP document and its keyword fields. A file that is not XMP raises ValueError naming `name`."""
    namespaces = []
    try:
        for _, (prefix, uri) in ET.iterparse(io.BytesIO(data), events=("start-ns",)):
            namespaces.append((prefix, uri))
        tree = ET.ElementTree(ET.fromstring(data))
    except ET.ParseError as error:
        raise ValueError(f"{name} is not valid XML ({error}); it was left as it is") from None
    for prefix, uri in namespaces:  # keep the file's own prefixes when it is written back
        if prefix and not prefix.startswith("ns"):
            try:
                ET.register_namespace(prefix, uri)
            except ValueError:
                pass
    root = tree.getroot()
    if root.tag not in (XMPMETA, RDF + "RDF") and root.find(f".//{RDF}RDF") is None:
        raise ValueError(f"{name} is XML but not XMP (no x:xmpmeta or rdf:RDF); it was left as it is")
    found = Keywords()
    for description in _descriptions(root):
        for child in description:
            if child.tag == SUBJECT:
                found.subject += _bag_items(child)
            elif child.tag == HIERARCHICAL:
                found.hierarchical += _bag_items(child)
            elif child.tag == OURS:
                found.ours += _bag_items(child)
            elif child.tag == SCORES:
                found.scores += _bag_items(child)
    return tree, found


def _bag(parent, tag: str, items: list[str], kind: str = "Bag") -> None:
    if not items:
        return
    element = ET.SubElement(parent, tag)
    bag = ET.SubElement(element, RDF + kind)
    for item in items:
        ET.SubElement(bag, RDF + "li").text = item


def new_xmp() -> ET.ElementTree:
    root = ET.Element(XMPMETA)
    rdf = ET.SubElement(root, RDF + "RDF")
    ET.SubElement(rdf, RDF + "Description", {RDF + "about": ""})
    return ET.ElementTree(root)


def update_xmp(tree: ET.ElementTree, keywords: Keywords) -> bytes:
    """`tree` with its keyword fields set to `keywords` (other properties untouched), serialized as UTF-8."""
    for prefix in ("x", "rdf", "dc", "lr", "ramplus"):
        ET.register_namespace(prefix, NS[prefix])
    root = tree.getroot()
    descriptions = _descriptions(root)
    if not descriptions:
        rdf = root if root.tag == RDF + "RDF" else root.find(f".//{RDF}RDF")
        descriptions = [ET.SubElement(rdf, RDF + "Description", {RDF + "about": ""})]
    for description in descriptions:
        for child in list(description):
            if child.tag in (SUBJECT, HIERARCHICAL, OURS, SCORES):
                description.remove(child)
    target = descriptions[0]
    _bag(target, SUBJECT, keywords.subject)
    _bag(target, HIERARCHICAL, keywords.hierarchical)
    _bag(target, OURS, keywords.ours)
    _bag(target, SCORES, keywords.scores, "Seq")
    ET.indent(tree, space=" ")
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8", xml_declaration=False) + b"\n"


# ------------------------------------------------------------------------------------------------ sidecars
SIDECAR_NAMING = ("stem", "full")


def sidecar_for(image: str | os.PathLike, naming: str = "full") -> str:
    """The XMP sidecar of `image`: `IMG_1.JPG.xmp` (`full`: darktable, digiKam) or `IMG_1.xmp` (`stem`:
    Lightroom, Capture One)."""
    if naming not in SIDECAR_NAMING:
        raise ValueError(f"sidecar naming must be one of {SIDECAR_NAMING}, got {naming!r}")
    image = os.fspath(image)
    return image + ".xmp" if naming == "full" else os.path.splitext(image)[0] + ".xmp"


def read_sidecar(path: str) -> tuple[ET.ElementTree, Keywords]:
    """A sidecar's document and keywords (a new empty document when there is no sidecar yet)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        return new_xmp(), Keywords()
    if not data.strip():
        return new_xmp(), Keywords()
    return parse_xmp(data, f"the sidecar {path!r}")


__all__ = [
    "DEFAULT_PARENT",
    "NAMESPACE",
    "SIDECAR_NAMING",
    "KeywordChange",
    "Keywords",
    "clean_keyword",
    "merge_keywords",
    "new_xmp",
    "parse_xmp",
    "read_sidecar",
    "sidecar_for",
    "update_xmp",
]
