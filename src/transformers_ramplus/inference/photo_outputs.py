# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""What `ramplus tag` writes beside or into each image besides its record: keywords (`--write-keywords`, see
`transformers_ramplus.io.keywords`) and caption files (`--write-captions`, see `caption_files`).

`PhotoOutputs.write(path, record)` writes both for one tagged image; a file that cannot be written raises
`PhotoOutputError` (the image's record becomes an error record naming it, and the run goes on). With `dry_run`,
nothing is written and every change is reported.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

from ..io.keywords import KeywordWriter
from .caption_files import CaptionWriter


logger = logging.getLogger(__name__)

RAW_EXTENSIONS = frozenset(
    [".3fr", ".arw", ".cr2", ".cr3", ".crw", ".dcr", ".dng", ".erf", ".iiq", ".k25", ".kdc", ".mef", ".mos", ".mrw", ".nef", ".nrw", ".orf", ".pef", ".raf", ".raw", ".rw2", ".rwl", ".sr2", ".srf", ".srw", ".x3f"]
)


class PhotoOutputError(ValueError):
    """An image's keywords or caption file could not be written."""


@dataclass
class PhotoOutputs:
    """The keyword and caption writers of a run (either may be None)."""

    keywords: KeywordWriter | None = None
    captions: CaptionWriter | None = None
    dry_run: bool = False
    report: object = logger.warning
    counts: dict = field(default_factory=lambda: {"keywords": 0, "captions": 0, "kept": 0})

    def settings(self) -> dict:
        return {
            "keywords": None if self.keywords is None else self.keywords.settings(),
            "captions": None if self.captions is None else self.captions.settings(),
        }

    def write(self, path: str, record: dict) -> None:
        """Write the keywords and caption of one tagged image (`record`: `{"path", "tags"[, "caption"]}`)."""
        tags = record.get("tags") or []
        problems = []
        if self.keywords is not None:
            try:
                message = self.keywords.write(path, tags)
                if self.dry_run:
                    self.report(message)
                elif message.startswith("wrote"):
                    self.counts["keywords"] += 1
            except (OSError, ValueError) as error:
                problems.append(f"keywords not written: {error}")
        if self.captions is not None:
            try:
                message = self.captions.write(path, tags, record.get("caption"))
                if message.startswith("kept"):
                    self.counts["kept"] += 1
                if self.dry_run or message.startswith("kept"):
                    self.report(message)
                else:
                    self.counts["captions"] += 1
            except (OSError, ValueError) as error:
                problems.append(f"caption file not written: {error}")
        if problems:
            raise PhotoOutputError(f"{path}: " + "; ".join(problems))

    def summary(self) -> str:
        if self.dry_run:
            return "dry run: nothing was written to the images, sidecars or caption files"
        parts = []
        if self.keywords is not None:
            where = "XMP sidecar(s)" if self.keywords.mode == "xmp-sidecar" else "image(s) (embedded XMP/IPTC)"
            parts.append(f"keywords written to {self.counts['keywords']} {where}")
        if self.captions is not None:
            parts.append(f"{self.counts['captions']} caption file(s) written, {self.counts['kept']} kept")
        return "; ".join(parts)

    def close(self) -> None:
        if self.keywords is not None:
            self.keywords.close()


def photo_outputs_from(options, report=logger.warning) -> PhotoOutputs | None:
    """The `PhotoOutputs` of `ramplus tag` options (None when the run writes neither keywords nor captions)."""
    dry_run = bool(getattr(options, "dry_run", False))
    keywords = captions = None
    if options.write_keywords:
        keywords = KeywordWriter(
            options.write_keywords, options.xmp_sidecar_name, options.keyword_parent, options.keyword_scores, dry_run
        )
    if options.write_captions:
        captions = CaptionWriter(
            options.write_captions, options.caption_extension, options.caption_prefix, options.max_tags,
            options.caption_spacing, options.overwrite, dry_run,
        )
    if keywords is None and captions is None:
        if dry_run:
            raise ValueError("--dry-run needs --write-keywords or --write-captions (it lists what they would change)")
        return None
    return PhotoOutputs(keywords, captions, dry_run, report)


def without_side_files(options, inputs: list[str]) -> list[str]:
    """`inputs` without XMP sidecars (`.xmp`) and, when the run writes caption files, without files of the caption
    extension: what this tool writes beside the images is not tagged as an image on the next run."""
    skipped = (".xmp",)
    if getattr(options, "write_captions", None):
        extension = options.caption_extension or ".txt"
        skipped += ((extension if extension.startswith(".") else "." + extension).lower(),)
    return [path for path in inputs if not str(path).lower().endswith(skipped)]


def raw_file_note(path: str) -> str:
    """A hint for a RAW file the image reader could not open."""
    if os.path.splitext(path)[1].lower() in RAW_EXTENSIONS:
        return " (a camera RAW file: tag its JPEG preview or export, or convert it first; the tags can then go to its sidecar)"
    return ""


__all__ = ["RAW_EXTENSIONS", "PhotoOutputError", "PhotoOutputs", "photo_outputs_from", "raw_file_note", "without_side_files"]
