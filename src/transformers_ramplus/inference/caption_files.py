# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""Caption files for training sets (`ramplus tag --write-captions txt`): one `NAME.txt` beside each image, the
convention of kohya-ss' training scripts, taggui and the WD14 taggers: the trigger words (`--caption-prefix`), then a
caption when the record has one (from a captioning model), then the tags by score, comma-separated.

An existing caption file is kept (reported) unless `overwrite`; two images of one run with the same caption file
(`a.jpg` and `a.png` -> `a.txt`) make the second an error rather than overwriting the first. Files are written
atomically.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..io.atomic import atomic_write_text


CAPTION_FORMATS = ("txt",)
# extensions a caption file may never have: they would replace images (or their sidecars) with text
IMAGE_EXTENSIONS = frozenset(
    ".jpg .jpeg .jpe .png .webp .tif .tiff .bmp .gif .heic .heif .avif .jxl .dcm .xmp .dng .cr2 .cr3 .nef .arw .raf .orf "
    ".rw2 .pef .srw".split()
)
SPACING = ("spaces", "underscores")


def caption_text(tags: list[dict], caption: str | None = None, prefix: str | None = None, max_tags: int | None = None,
                 spacing: str = "spaces") -> str:
    """One caption line: `prefix, caption, tag, tag, ...` (tags in the order given: by score). A tag's own commas
    become spaces (they would split it); `spacing="underscores"` writes `tennis_racket` (the WD14 style)."""
    if spacing not in SPACING:
        raise ValueError(f"--caption-spacing must be one of {', '.join(SPACING)}, got {spacing!r}")
    parts = []
    if prefix and prefix.strip():
        parts += [p.strip() for p in prefix.split(",") if p.strip()]
    if caption and caption.strip():
        parts.append(" ".join(caption.split()))
    names = []
    for tag in tags if max_tags is None else tags[:max_tags]:
        name = " ".join(str(tag["label"]).replace(",", " ").split())
        if spacing == "underscores":
            name = name.replace(" ", "_")
        if name and name not in names and name not in parts:
            names.append(name)
    return ", ".join(parts + names)


@dataclass
class CaptionWriter:
    """Writes `NAME.EXTENSION` beside each image. `write(path, tags, caption=None)` returns a line saying what was
    (with `dry_run`: would be) written where; it raises `OSError`/`ValueError` for a file it cannot write."""

    format: str = "txt"
    extension: str = ".txt"
    prefix: str | None = None
    max_tags: int | None = None
    spacing: str = "spaces"
    overwrite: bool = False
    dry_run: bool = False

    def __post_init__(self):
        if self.format not in CAPTION_FORMATS:
            raise ValueError(f"--write-captions must be one of {', '.join(CAPTION_FORMATS)}, got {self.format!r}")
        extension = self.extension if self.extension.startswith(".") else "." + self.extension
        if extension in (".", "") or any(c in extension for c in "/\\") or extension != extension.strip():
            raise ValueError(f"--caption-extension must be a file extension such as .txt or .caption, got {self.extension!r}")
        if extension.lower() in IMAGE_EXTENSIONS:
            raise ValueError(f"--caption-extension {extension} is an image or sidecar extension: caption files would replace them")
        self.extension = extension
        if self.max_tags is not None and (isinstance(self.max_tags, bool) or not isinstance(self.max_tags, int) or self.max_tags <= 0):
            raise ValueError(f"--max-tags must be a positive integer, got {self.max_tags!r}")
        if self.spacing not in SPACING:
            raise ValueError(f"--caption-spacing must be one of {', '.join(SPACING)}, got {self.spacing!r}")
        self._claimed: dict[str, str] = {}

    def settings(self) -> dict:
        """What decides the captions written (recorded with the options of a resumable run)."""
        return {"format": self.format, "extension": self.extension, "prefix": self.prefix, "max_tags": self.max_tags, "spacing": self.spacing}

    def caption_file(self, path: str) -> str:
        return os.path.splitext(os.fspath(path))[0] + self.extension

    def write(self, path: str, tags: list[dict], caption: str | None = None) -> str:
        target = self.caption_file(path)
        if os.path.splitext(path)[1].lower() == self.extension.lower():
            raise ValueError(f"the caption file of {path!r} would be the image itself (--caption-extension {self.extension})")
        key = os.path.normcase(os.path.abspath(target))
        first = self._claimed.setdefault(key, path)
        if first != path:
            raise ValueError(f"{target!r} is already the caption file of {first!r} in this run; rename one of the images")
        if os.path.isdir(target):
            raise ValueError(f"the caption file {target!r} is a folder")
        text = caption_text(tags, caption, self.prefix, self.max_tags, self.spacing)
        if os.path.exists(target) and not self.overwrite:
            return f"kept the existing caption file {target} (--overwrite replaces it)"
        if self.dry_run:
            return f"would write {target}: {text}"
        atomic_write_text(target, text)
        return f"wrote {target}"


__all__ = ["CAPTION_FORMATS", "SPACING", "CaptionWriter", "caption_text"]
