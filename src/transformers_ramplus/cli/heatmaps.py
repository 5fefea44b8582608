"""`ramplus tag --heatmaps DIR`: one PNG per tagged image, showing where its tags look.

Each PNG holds the image with its tags and, per chosen tag, the decoder's cross-attention over the image
(`RamPlusModel.tag_heatmaps`, averaged over heads and layers) drawn over it. `--heatmap-tags N` picks each image's N
best tags (of its results, after thresholds and `--top-k`; default 4), `--heatmap-tags "dog,grass"` names the same
tags for every image. Files are named `STEM-HASH.png`: the input's file name reduced to safe characters, and a hash of
its full path or URL (so `a/x.jpg` and `b/x.jpg` do not collide). PNGs are written atomically, before the image's
result record: a resumed run (`--output`) redoes the images whose PNG is missing, and all of them when
`--heatmap-tags` or the run's options changed (recorded in `DIR/.ramplus-heatmaps.json`).

Called from `commands/tag.py` through `add_arguments`, `check_arguments`, `HeatmapWriter.open`, `forget_missing`
and `write`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import unicodedata


SETTINGS_NAME = ".ramplus-heatmaps.json"
_PNG_NAME = re.compile(r"-[0-9a-f]{10}\.png$")  # the names `heatmap_file_name` gives
DEFAULT_TAGS = 4
THUMBNAIL = 512  # longest side of the image drawn in the PNG


def add_arguments(parser) -> None:
    parser.add_argument(
        "--heatmaps",
        metavar="DIR",
        help="also write one PNG per image to DIR: the image with its tags and, per tag, where the model looks "
        "(needs matplotlib: pip install 'transformers-ramplus[visualize]')",
    )
    parser.add_argument(
        "--heatmap-tags",
        metavar="N_OR_TAGS",
        help=f"which tags get a heatmap: N (each image's N best tags, default {DEFAULT_TAGS}) or comma-separated tag "
        "names (the same tags for every image)",
    )


def check_arguments(args) -> None:
    """Usage errors before the model loads."""
    if getattr(args, "heatmaps", None) is None:
        if getattr(args, "heatmap_tags", None) is not None:
            raise ValueError("--heatmap-tags needs --heatmaps DIR")
        return
    if not args.heatmaps.strip():
        raise ValueError("--heatmaps needs a folder name")
    if os.path.exists(args.heatmaps) and not os.path.isdir(args.heatmaps):
        raise ValueError(f"--heatmaps {args.heatmaps!r} is a file; name a folder")
    _parse_spec(args.heatmap_tags)
    from ..visualize import _figure_class

    try:
        _figure_class()
    except ImportError as error:
        raise ValueError(f"--heatmaps: {error}") from None


def without_folder(args, inputs: list[str]) -> list[str]:
    """`inputs` less the PNGs this command wrote to the --heatmaps folder (when an input folder holds it, or is it)."""
    if getattr(args, "heatmaps", None) is None:
        return inputs
    folder = os.path.realpath(args.heatmaps)
    return [
        path
        for path in inputs
        if not (os.path.dirname(os.path.realpath(path)) == folder and _PNG_NAME.search(os.path.basename(path)))
    ]


def _parse_spec(spec):
    """`--heatmap-tags`: an int N (each image's N best tags) or a list of names."""
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


def heatmap_file_name(key: str) -> str:
    """The PNG name of an input (its real path or URL): a safe stem and a hash of the whole key."""
    name = key.split("?", 1)[0].split("#", 1)[0] if key.startswith(("http://", "https://")) else key
    stem = os.path.splitext(name.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1])[0]
    stem = unicodedata.normalize("NFC", stem)
    stem = "".join(char if char.isalnum() or char in "-_." else "_" for char in stem).strip("._")[:60] or "image"
    digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:10]
    return f"{stem}-{digest}.png"


class HeatmapWriter:
    """Draws and writes the PNGs of one `ramplus tag` run."""

    def __init__(self, folder: str, spec, tagger, tag_set, language: str, settings):
        self.folder = folder
        self.spec = spec
        self.tagger = tagger
        self.tag_set = tag_set
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

    @classmethod
    def open(cls, args, tagger, tag_set, settings=None) -> "HeatmapWriter | None":
        """The writer of `--heatmaps`, or None. `settings`: the run's recorded options (None without --output)."""
        if getattr(args, "heatmaps", None) is None:
            return None
        return cls(args.heatmaps, _parse_spec(args.heatmap_tags), tagger, tag_set, args.language, settings)

    def path(self, key: str) -> str:
        return os.path.join(self.folder, heatmap_file_name(key))

    def forget_missing(self, writer) -> None:
        """Make the output `writer` forget the results whose PNG is missing or was drawn with other options (so they
        are redone), then record this run's options next to the PNGs."""
        from ..io.atomic import atomic_write_json

        done = set(writer.done)
        missing = done if self.stale else {key for key in done if not os.path.isfile(self.path(key))}
        if missing:
            why = "were drawn with other options" if self.stale else "are missing"
            sys.stderr.write(f"the heatmaps of {len(missing)} tagged image(s) {why}: tagging them again\n")
        writer.forget(missing)
        atomic_write_json(self.recorded_path, self.current)

    def _chosen(self, tags) -> list[int]:
        """Positions in the tag set of one image's heatmap tags."""
        if isinstance(self.spec, list):
            return [self.positions[name][0] for name in self.spec]
        chosen = []
        for tag in tags[: self.spec]:
            candidates = self.positions.get(tag["label"], [])
            chosen.append(candidates if len(candidates) > 1 else candidates[0])  # a name shared by several tags
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
        """Draw and write the PNG of every image (`paths`, loaded `images` and their pipeline `results`)."""
        import torch

        from ..io.atomic import atomic_file
        from ..visualize import plot_heatmaps, plot_tags
        from .tag import _key

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
            with atomic_file(self.path(_key(path)), "path") as temporary:
                figure.savefig(temporary, format="png", dpi=100)
