# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""What lets a tagging run resume its output: the options it was written with (`.NAME.ramplus-tag.json`) and the
size and modification time of every tagged file (`.NAME.ramplus-tag.index`, one JSON line per image, written after
the records it describes)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .atomic import atomic_write_text, sidecar_path
from .fingerprints import file_stamp
from .records import split_records


# what each recorded option is called in a refusal (the `ramplus tag` options that set it)
SETTING_NAMES = {
    "format": "--format",
    "model": "--model",
    "model_fingerprint": "the model's files",
    "tags": "the tags (--labels, --labels-file, --descriptions, --tag-set)",
    "threshold": "--threshold",
    "top_k": "--top-k",
    "language": "--language",
    "exif": "the EXIF orientation (--no-exif-orientation, or the image processor's setting)",
    "max_image_pixels": "--max-image-pixels",
    "dicom": "--window (DICOM window and frame)",
    "precision": "--precision",
    "tag_map": "--tag-map (the map's contents)",
    "keywords": "--write-keywords and its options",
    "captions": "--write-captions and its options",
    "generated_captions": "--captions",
    "fast_decode": "--fast-decode (or the image processor's setting)",
    "fast_resize": "--fast-resize (or the image processor's setting)",
}
# recorded only when on (outputs written before they existed still resume): absent now means off, so an output
# written with one of them is not resumed without it (other pixels, other scores)
OFF_WHEN_ABSENT = ("fast_decode", "fast_resize")


def settings_file(output) -> Path:
    """Where the options of a run writing `output` are recorded."""
    return sidecar_path(output, "ramplus-tag.json")


def stamps_file(output) -> Path:
    """Where the size and modification time of every tagged file are recorded (one JSON line per image)."""
    return sidecar_path(output, "ramplus-tag.index")


def read_json_lines(path: Path) -> list:
    """The values of the complete JSON lines of `path` (none when it is missing; unreadable lines skipped)."""
    if not path.is_file():
        return []
    lines, _ = split_records(path.read_bytes(), "jsonl")
    values = []
    for line in lines:
        try:
            values.append(json.loads(line.decode("utf-8", errors="surrogateescape")))
        except ValueError:
            continue
    return values


class StampIndex:
    """Append-only `[key, stamp]` lines, written after the records they describe are on disk."""

    def __init__(self, output, fresh: bool):
        self.path = stamps_file(output)
        self.stamps: dict = {}
        if fresh or not self.path.is_file():
            atomic_write_text(self.path, "")
        else:
            data = self.path.read_bytes()
            lines, partial = split_records(data, "jsonl")
            if partial:
                with open(self.path, "rb+") as handle:
                    handle.truncate(len(data) - len(partial))
            for line in lines:
                try:
                    key, stamp = json.loads(line.decode("utf-8", errors="surrogateescape"))
                except (ValueError, TypeError):
                    continue
                self.stamps[key] = stamp
        self.stream = open(self.path, "a", encoding="utf-8", errors="surrogateescape")

    def changed(self, keys) -> set[str]:
        """The keys whose file is not the one that was tagged (or that have no stamp)."""
        return {key for key in keys if key not in self.stamps or self.stamps[key] != file_stamp(key)}

    def add(self, entries) -> None:
        for key, stamp in entries:
            self.stream.write(json.dumps([key, stamp], ensure_ascii=False) + "\n")
            self.stamps[key] = stamp
        self.stream.flush()

    def close(self) -> None:
        self.stream.close()


def check_resume(output, settings: dict, overwrite: bool) -> bool:
    """Whether `output` must be started afresh. Refuses (ValueError) to resume an output written with other
    settings, or a non-empty file that `ramplus tag` did not write, unless `overwrite`."""
    if os.path.isdir(output):
        raise ValueError(f"--output {output!r} is a folder; name a file")
    if overwrite or not os.path.isfile(output) or os.path.getsize(output) == 0:
        return True
    recorded_file = settings_file(output)
    try:
        with open(recorded_file, encoding="utf-8") as handle:
            recorded = json.load(handle)
    except FileNotFoundError:
        raise ValueError(
            f"--output {output!r} exists and was not written by this version of `ramplus tag` (no {recorded_file.name}); "
            "pass --overwrite to replace it, or choose another --output"
        ) from None
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot read {os.fspath(recorded_file)!r} ({error}); pass --overwrite to start {output!r} afresh") from error
    refuse_changed_settings(output, recorded, settings)
    return False


def _same_setting(key, before, now) -> bool:
    if before == now:
        return True
    # outputs written before precision="auto" recorded no precision for the default path, which was fp32
    return key == "precision" and before is None and now in ("fp32", "float32")


def refuse_changed_settings(output, recorded, settings: dict) -> None:
    """A ValueError naming every option whose recorded value (`recorded`, read from the options file) differs from
    this run's `settings`."""
    recorded = recorded if isinstance(recorded, dict) else {}
    keys = [*settings, *(key for key in OFF_WHEN_ABSENT if key not in settings and recorded.get(key) is not None)]
    changed = [key for key in keys if not _same_setting(key, recorded.get(key), settings.get(key))]
    if changed:
        details = "; ".join(
            f"{SETTING_NAMES.get(key, key)}: {recorded.get(key)!r} before, {settings.get(key)!r} now" for key in changed
        )
        raise ValueError(
            f"--output {output!r} holds results made with other options ({details}); pass --overwrite to redo them all, "
            "or choose another --output"
        )


__all__ = [
    "SETTING_NAMES",
    "StampIndex",
    "check_resume",
    "read_json_lines",
    "refuse_changed_settings",
    "settings_file",
    "stamps_file",
]
