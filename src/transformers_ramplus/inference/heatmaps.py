# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""One PNG per tagged image, showing where its tags look (`ramplus tag --heatmaps DIR`).

Each PNG holds the image with its tags and, per chosen tag, the decoder's cross-attention over the image
(`RamPlusModel.tag_heatmaps`, averaged over heads and layers) drawn over it. The tags are each image's N best (of its
results, after thresholds and top-k; default 4) or the same named tags for every image. Files are named
`STEM-HASH.png`: the input's file name reduced to safe characters, and a hash of its full path or URL (so `a/x.jpg`
and `b/x.jpg` do not collide). PNGs are written atomically, before the image's result record: a resumed run redoes
the images whose PNG is missing, and all of them when the heatmap tags or the run's options changed (recorded in
`DIR/.ramplus-heatmaps.json`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import unicodedata

import torch

from ..io.atomic import atomic_file, atomic_write_json
from ..io.inputs import input_key, is_url
from ..visualize import _figure_class, plot_heatmaps, plot_tags


logger = logging.getLogger(__name__)

SETTINGS_NAME = ".ramplus-heatmaps.json"
_PNG_NAME = re.compile(r"-[0-9a-f]{10}\.png$")  # the names `heatmap_file_name` gives
DEFAULT_TAGS = 4
THUMBNAIL = 512  # longest side of the image drawn in the PNG


def parse_heatmap_tags(spec):
    """`--heatmap-tags`: an int N (each image's N best tags; None: the default) or comma-separated names."""
    if spec is None:
        return DEFAULT_TAGS
    text = spec.strip()
    if text.isdigit():
        if int(text) <= 0:
            raise ValueError(f"--heatmap-tags must be a positive number or tag names, got {spec!r}")
        return int(text)
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise ValueError(f"--heatmap-tags must be a positive number or comma-separated tag names, got {spec!r}")
    return list(dict.fromkeys(names))


def check_heatmap_options(folder, spec) -> None:
    """Errors in the heatmap options (`folder` None: no heatmaps), raised before the model loads."""
    if folder is None:
        if spec is not None:
            raise ValueError("--heatmap-tags needs --heatmaps DIR")
        return
    if not folder.strip():
        raise ValueError("--heatmaps needs a folder name")
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise ValueError(f"--heatmaps {folder!r} is a file; name a folder")
    parse_heatmap_tags(spec)
    try:
        _figure_class()
    except ImportError as error:
        raise ValueError(f"--heatmaps: {error}") from None


def without_heatmaps(folder, inputs: list[str]) -> list[str]:
    """`inputs` less the PNGs written to the heatmaps `folder` (when an input folder holds it, or is it)."""
    if folder is None:
        return inputs
    folder = os.path.realpath(folder)
    return [
        path
        for path in inputs
        if not (os.path.dirname(os.path.realpath(path)) == folder and _PNG_NAME.search(os.path.basename(path)))
    ]


def heatmap_file_name(key: str) -> str:
    """The PNG name of an input (its real path or URL): a safe stem and a hash of the whole key."""
    name = key.split("?", 1)[0].split("#", 1)[0] if is_url(key) else key
    stem = os.path.splitext(name.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1])[0]
    stem = unicodedata.normalize("NFC", stem)
    stem = "".join(char if char.isalnum() or char in "-_." else "_" for char in stem).strip("._")[:60] or "image"
    digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:10]
    return f"{stem}-{digest}.png"


class HeatmapWriter:
    """Draws and writes the PNGs of one tagging run into `folder`. `spec`: what `parse_heatmap_tags` returns;
    `settings`: the run's recorded options (None without an output file: every PNG is redrawn)."""

    def __init__(self, folder: str, spec, tagger, tag_set, language: str, settings, report=logger.warning):
        self.folder = folder
        self.spec = spec
        self.tagger = tagger
        self.tag_set = tag_set
        self.report = report
        self.labels = tag_set.labels(language)
        self.positions: dict[str, list[int]] = {}
        for position, label in enumerate(self.labels):
            self.positions.setdefault(label, []).append(position)
        for position, name in enumerate(tag_set.names):
            self.positions.setdefault(name, []).append(position)
        if isinstance(spec, list):
            unknown = [name for name in spec if name not in self.positions]
            if unknown:
                raise ValueError(f"--heatmap-tags: not among the tags of this run: {unknown[:10]}")
        os.makedirs(folder, exist_ok=True)
        recorded_path = os.path.join(folder, SETTINGS_NAME)
        recorded = None
        try:
            with open(recorded_path, encoding="utf-8") as handle:
                recorded = json.load(handle)
        except (OSError, ValueError):
            pass
        self.recorded_path, self.current = recorded_path, {"heatmap_tags": spec, "run": settings}
        self.stale = settings is None or recorded != self.current  # PNGs drawn with other options: redo every image

    def path(self, key: str) -> str:
        return os.path.join(self.folder, heatmap_file_name(key))

    def forget_missing(self, writer) -> None:
        """Make the output `writer` forget the results whose PNG is missing or was drawn with other options (so they
        are redone), then record this run's options next to the PNGs."""
        done = set(writer.done)
        missing = done if self.stale else {key for key in done if not os.path.isfile(self.path(key))}
        if missing:
            why = "were drawn with other options" if self.stale else "are missing"
            self.report(f"the heatmaps of {len(missing)} tagged image(s) {why}: tagging them again")
        writer.forget(missing)
        atomic_write_json(self.recorded_path, self.current)

    def _chosen(self, tags) -> list:
        """Positions in the tag set of one image's heatmap tags (a list of positions for a name several tags share)."""
        if isinstance(self.spec, list):
            return [self.positions[name][0] for name in self.spec]
        chosen = []
        for tag in tags[: self.spec]:
            candidates = self.positions.get(tag["label"], [])
            chosen.append(candidates if len(candidates) > 1 else candidates[0])
        return chosen

    def _subset(self, positions: list[int]):
        """The tags at `positions` of the run's tag set, as `tag_heatmaps` takes them."""
        tag_set = self.tag_set
        if tag_set.label_embeds is None:  # built-in tags only: their ids in the vocabulary
            return [tag_set.builtin_indices[p] for p in positions]
        mask = tag_set.description_mask
        return type(tag_set)(
            names=[tag_set.names[p] for p in positions],
            label_embeds=tag_set.label_embeds[positions],
            description_mask=None if mask is None else mask[positions],
            thresholds=[tag_set.thresholds[p] for p in positions],
            builtin_indices=[tag_set.builtin_indices[p] for p in positions],
        )

    def write(self, paths, images, results) -> None:
        """Draw and write the PNG of every image (`paths`, loaded `images` and their tags `results`)."""
        chosen = [self._chosen(tags) for tags in results]
        union = sorted({p for choice in chosen for entry in choice for p in (entry if isinstance(entry, list) else [entry])})
        maps = scores = None
        if union:
            model = self.tagger.model
            pixel_values = self.tagger.image_processor(images, return_tensors="pt")["pixel_values"]
            output = model.tag_heatmaps(pixel_values.to(model.device), tags=self._subset(union))
            maps, scores = output.heatmaps, torch.sigmoid(output.logits)
        for index, (path, image, tags, choice) in enumerate(zip(paths, images, results, chosen)):
            thumbnail = image.copy()
            thumbnail.thumbnail((THUMBNAIL, THUMBNAIL))
            rows = []
            for entry, tag in zip(choice, list(tags) + [None] * len(choice)):
                if isinstance(entry, list):  # several tags share the label: the one with the reported score
                    entry = min(entry, key=lambda p: abs(float(scores[index, union.index(p)]) - tag["score"]))
                rows.append(union.index(entry))
            names = [self.tag_set.names[union[row]] for row in rows]
            shown = [{"label": self.tag_set.names[self.positions[t["label"]][0]], "score": t["score"]} for t in tags]
            if rows:
                figure = plot_heatmaps(
                    thumbnail, maps[index, rows], tag_names=names, scores=scores[index, rows].tolist(), tags=shown
                )
            else:
                figure = plot_tags(thumbnail, shown, title="no tags" if not tags else None)
            with atomic_file(self.path(input_key(path)), "path") as temporary:
                figure.savefig(temporary, format="png", dpi=100)


__all__ = [
    "DEFAULT_TAGS",
    "HeatmapWriter",
    "check_heatmap_options",
    "heatmap_file_name",
    "parse_heatmap_tags",
    "without_heatmaps",
]
