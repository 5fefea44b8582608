# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""Keywords where photo managers read them (`ramplus tag --write-keywords xmp-sidecar|embedded`).

- `xmp-sidecar`: an XMP file beside each image (`IMG_1.JPG.xmp`, or `IMG_1.xmp` with `sidecar_naming="stem"`),
  written with the standard library; an existing sidecar is updated (its other properties are kept).
- `embedded`: XMP `dc:subject` (every format) and IPTC `Keywords` (JPEG and TIFF, where IPTC is standard) inside the
  image, written by ExifTool (`exiftool`, Debian/Ubuntu: `apt-get install libimage-exiftool-perl`, macOS: `brew
  install exiftool`). ExifTool copies the image data as it is (never re-encodes the pixels), writes every format
  photographers use (JPEG, TIFF, PNG, WebP, DNG and most RAW formats) and is maintained and used by the photo
  managers' own workflows.

Both merge with the keywords already there (see `transformers_ramplus.io.xmp`: the user's keywords are never removed;
this tool's earlier keywords are replaced), leave a file untouched when nothing changes, replace a file in one step
(a copy is written and renamed over it: a kill leaves the old file or the new one), keep its modification time and
permissions, and refuse read-only files. `dry_run=True` only says what would change.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import weakref
from dataclasses import dataclass

from .atomic import atomic_write_bytes
from .xmp import DEFAULT_PARENT, SIDECAR_NAMING, Keywords, merge_keywords, read_sidecar, sidecar_for, update_xmp


MODES = ("xmp-sidecar", "embedded")
EMBEDDED_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".jpe": "JPEG", ".tif": "TIFF", ".tiff": "TIFF", ".png": "PNG", ".webp": "WebP"}
IPTC_FORMATS = {"JPEG", "TIFF"}

# ExifTool's definition of this tool's XMP namespace (`ramplus:Tags`, `ramplus:Scores`)
EXIFTOOL_CONFIG = """%Image::ExifTool::UserDefined = (
    'Image::ExifTool::XMP::Main' => {
        ramplus => { SubDirectory => { TagTable => 'Image::ExifTool::UserDefined::ramplus' } },
    },
);
%Image::ExifTool::UserDefined::ramplus = (
    GROUPS => { 0 => 'XMP', 1 => 'XMP-ramplus', 2 => 'Image' },
    NAMESPACE => { 'ramplus' => 'https://github.com/transformers-ramplus/xmp/1.0/' },
    WRITABLE => 'string',
    Tags => { List => 'Bag' },
    Scores => { List => 'Seq' },
);
1;
"""
FIELDS = {
    "subject": "XMP-dc:Subject",
    "hierarchical": "XMP-lr:HierarchicalSubject",
    "ours": "XMP-ramplus:Tags",
    "scores": "XMP-ramplus:Scores",
    "iptc": "IPTC:Keywords",
}


class KeywordError(ValueError):
    """A photo whose keywords cannot be written (read-only, unsupported, corrupt metadata): that photo's error."""


def exiftool_path() -> str | None:
    """The `exiftool` program on PATH ($RAMPLUS_EXIFTOOL overrides), or None."""
    return os.environ.get("RAMPLUS_EXIFTOOL") or shutil.which("exiftool")


class _ExifToolProcess:
    """One `exiftool -stay_open` process that runs command after command (starting Perl and ExifTool once, not per
    image). Each command ends with `-executeN`; its end is `{readyN}` on stdout and (`-echo4`) on stderr."""

    def __init__(self, program: str, config: str):
        try:
            self.process = subprocess.Popen(
                [program, "-config", config, "-stay_open", "True", "-@", "-"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )
        except OSError as error:
            raise KeywordError(f"cannot start exiftool ({program}): {error}") from None
        self.count = 0
        self._finalizer = weakref.finalize(self, _stop, self.process)

    def run(self, arguments: list[str], what: str) -> tuple[bytes, bytes]:
        if any("\n" in argument or "\r" in argument for argument in arguments):
            raise KeywordError(f"{what}: a file name or keyword holds a line break")
        self.count += 1
        marker = f"{{ready{self.count}}}".encode()
        lines = ["-charset", "filename=utf8", *arguments, "-echo4", marker.decode(), f"-execute{self.count}"]
        try:
            self.process.stdin.write(("\n".join(lines) + "\n").encode("utf-8"))
            self.process.stdin.flush()
            return self._until(self.process.stdout, marker, what), self._until(self.process.stderr, marker, what)
        except OSError as error:
            raise KeywordError(f"{what}: exiftool stopped ({error})") from None

    @staticmethod
    def _until(stream, marker: bytes, what: str) -> bytes:
        lines = []
        while True:
            line = stream.readline()
            if not line:
                raise KeywordError(f"{what}: exiftool stopped unexpectedly")
            if line.rstrip(b"\r\n").endswith(marker):
                lines.append(line.rstrip(b"\r\n")[: -len(marker)])
                return b"\n".join(lines)
            lines.append(line)

    def close(self) -> None:
        self._finalizer()


def _die_with_parent() -> None:
    """In the exiftool child (Linux): end it when this process dies (a killed run leaves no exiftool waiting on a
    closed pipe: with -stay_open it does not stop at the end of its input)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _stop(process) -> None:
    try:
        process.stdin.write(b"-stay_open\nFalse\n")
        process.stdin.flush()
        process.stdin.close()
        process.wait(timeout=10)
    except (OSError, ValueError, subprocess.TimeoutExpired):
        process.kill()
        process.wait()
    finally:
        for stream in (process.stdout, process.stderr):
            stream.close()


@dataclass
class KeywordWriter:
    """Writes each image's tags as keywords (see the module docstring). `write(path, tags)` returns a line saying
    what was (or with `dry_run` would be) written where; it raises `KeywordError` for a file it cannot write."""

    mode: str = "xmp-sidecar"
    sidecar_naming: str = "full"
    parent: str = DEFAULT_PARENT
    scores: bool = False
    dry_run: bool = False

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"--write-keywords must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.sidecar_naming not in SIDECAR_NAMING:
            raise ValueError(f"--xmp-sidecar-name must be one of {', '.join(SIDECAR_NAMING)}, got {self.sidecar_naming!r}")
        if not self.parent or "|" in self.parent or self.parent != self.parent.strip():
            raise ValueError(f"the keyword parent must be a name without '|', got {self.parent!r}")
        self._exiftool = None
        self._config = None
        self._process = None
        self._claimed: dict[str, str] = {}
        if self.mode == "embedded":
            self._exiftool = exiftool_path()
            if self._exiftool is None:
                raise ValueError(
                    "--write-keywords embedded needs ExifTool (`exiftool`): apt-get install libimage-exiftool-perl "
                    "(Debian/Ubuntu), brew install exiftool (macOS), or https://exiftool.org; or use xmp-sidecar"
                )

    def settings(self) -> dict:
        """What decides the keywords written (recorded with the options of a resumable run)."""
        return {"mode": self.mode, "sidecar_naming": self.sidecar_naming, "parent": self.parent, "scores": self.scores}

    def close(self) -> None:
        """Stop the exiftool process (if one was started) and remove its configuration file."""
        if self._process is not None:
            self._process.close()
            self._process = None
        if self._config is not None:
            os.unlink(self._config)
            self._config = None

    # ------------------------------------------------------------------------------------------ one image
    def write(self, path: str, tags: list[dict]) -> str:
        if self.mode == "xmp-sidecar":
            return self._write_sidecar(path, tags)
        return self._write_embedded(path, tags)

    def _describe(self, change, where: str) -> str:
        verb = "would write" if self.dry_run else "wrote"
        if not change.changed:
            return f"keywords unchanged in {where}"
        parts = []
        if change.added:
            parts.append("adds " + ", ".join(change.added))
        if change.removed:
            parts.append("removes its earlier " + ", ".join(change.removed))
        return f"{verb} {len(change.after.subject)} keyword(s) to {where}" + (f" ({'; '.join(parts)})" if parts else "")

    def _claim(self, target: str, image: str) -> None:
        """Two images of one run sharing a sidecar (`IMG_1.JPG` and `IMG_1.CR2` with `stem` naming) would
        overwrite each other's keywords: the second is an error."""
        key = os.path.normcase(os.path.realpath(target))
        first = self._claimed.setdefault(key, image)
        if first != image:
            raise KeywordError(f"{target!r} is already the sidecar of {first!r} in this run (use --xmp-sidecar-name full)")

    def _write_sidecar(self, path: str, tags: list[dict]) -> str:
        target = sidecar_for(path, self.sidecar_naming)
        self._claim(target, path)
        if os.path.isdir(target):
            raise KeywordError(f"the sidecar {target!r} is a folder")
        if os.path.exists(target) and not os.access(target, os.W_OK):
            raise KeywordError(f"the sidecar {target!r} is read-only; it was left as it is")
        try:
            tree, before = read_sidecar(target)
        except ValueError as error:
            raise KeywordError(str(error)) from None
        except OSError as error:
            raise KeywordError(f"cannot read the sidecar {target!r}: {error.strerror or error}") from None
        change = merge_keywords(before, tags, self.parent, self.scores)
        if change.changed and not self.dry_run:
            data = update_xmp(tree, change.after)
            try:
                stat = os.stat(target) if os.path.exists(target) else None
                atomic_write_bytes(target, data)
                if stat is not None:
                    os.chmod(target, stat.st_mode & 0o7777)
            except OSError as error:
                raise KeywordError(f"cannot write the sidecar {target!r}: {error.strerror or error}") from None
        return self._describe(change, target)

    # ------------------------------------------------------------------------------------------ embedded
    def _config_file(self) -> str:
        if self._config is None:
            handle, self._config = tempfile.mkstemp(prefix="ramplus-exiftool-", suffix=".config")
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                stream.write(EXIFTOOL_CONFIG)
        return self._config

    def _exiftool_run(self, arguments: list[str], what: str, writes: bool = False) -> bytes:
        """Run one exiftool command (in the one exiftool process of this writer); its standard output. Errors (and
        for `writes` a file that was not updated) raise KeywordError starting with `what`."""
        if self._process is None:
            self._process = _ExifToolProcess(self._exiftool, self._config_file())
        out, err = self._process.run(arguments, what)
        if self._config is not None:  # read when exiftool started (it has answered): not needed any more
            os.unlink(self._config)
            self._config = None
        problems = [line for line in err.decode("utf-8", "replace").splitlines() if line.startswith("Error")]
        if writes and b"1 image files updated" not in out:
            problems = problems or [out.decode("utf-8", "replace").strip() or "exiftool updated nothing"]
        if problems:
            raise KeywordError(f"{what}: {'; '.join(problems[-3:])}")
        return out

    def read_embedded(self, path: str) -> Keywords:
        """The keyword fields embedded in `path` (IPTC keywords only for JPEG and TIFF)."""
        arguments = ["-j", "-G1", "-charset", "iptc=UTF8", "-struct"] + ["-" + name for name in FIELDS.values()]
        arguments.append(os.path.abspath(path))  # never read as an option (a name starting with "-")
        out = self._exiftool_run(arguments, f"cannot read the metadata of {path!r}")
        try:  # numbers as their text (a keyword "2023" or "1.50" stays as written)
            found = json.loads(out.decode("utf-8"), parse_int=str, parse_float=str)[0]
        except (ValueError, IndexError) as error:
            raise KeywordError(f"cannot read the metadata of {path!r} ({error})") from None

        def values(name):
            value = found.get(FIELDS[name], [])
            return [str(v) for v in (value if isinstance(value, list) else [value])]

        fmt = EMBEDDED_FORMATS.get(os.path.splitext(path)[1].lower())
        return Keywords(
            values("subject"), values("hierarchical"), values("ours"), values("scores"),
            values("iptc") if fmt in IPTC_FORMATS else None,
        )

    def _write_embedded(self, path: str, tags: list[dict]) -> str:
        extension = os.path.splitext(path)[1].lower()
        fmt = EMBEDDED_FORMATS.get(extension)
        if fmt is None:
            raise KeywordError(
                f"cannot embed keywords in {path!r}: {extension or 'no extension'} is not JPEG, TIFF, PNG or WebP "
                "(use --write-keywords xmp-sidecar for RAW and other files)"
            )
        real = os.path.realpath(path)  # a link: the file it points to is updated, the link stays
        self._claim(real, path)
        if not os.access(real, os.W_OK):
            raise KeywordError(f"{path!r} is read-only; its keywords were not written")
        folder = os.path.dirname(real) or "."
        if not os.access(folder, os.W_OK):
            raise KeywordError(f"cannot write beside {path!r} (its folder is read-only); its keywords were not written")
        before = self.read_embedded(real)
        change = self._merge(before, tags)
        if change.changed and not self.dry_run:
            self._replace(real, path, change.after, fmt)
        return self._describe(change, path)

    def _merge(self, before, tags):
        return merge_keywords(before, tags, self.parent, self.scores)

    def _replace(self, real: str, path: str, after: Keywords, fmt: str) -> None:
        """Write `after` into a copy of `real` beside it, then rename the copy over it (same times and mode)."""
        stat = os.stat(real)
        folder, name = os.path.split(real)
        handle, temporary = tempfile.mkstemp(prefix=f".{name[:80]}.", suffix=".ramplus-tmp" + os.path.splitext(name)[1], dir=folder)
        os.close(handle)
        try:
            shutil.copyfile(real, temporary)
            arguments = ["-overwrite_original", "-m", "-charset", "iptc=UTF8"]
            if after.iptc is not None and fmt in IPTC_FORMATS:
                arguments.append("-IPTC:CodedCharacterSet=UTF8")
            for key, tag in FIELDS.items():
                items = getattr(after, key)
                if items is None:
                    continue
                arguments += [f"-{tag}=" + item for item in items] if items else [f"-{tag}="]
            arguments.append(temporary)
            self._exiftool_run(arguments, f"cannot write the keywords of {path!r}", writes=True)
            os.chmod(temporary, stat.st_mode & 0o7777)
            os.utime(temporary, ns=(stat.st_atime_ns, stat.st_mtime_ns))
            os.replace(temporary, real)
        except BaseException:
            if os.path.exists(temporary):
                os.unlink(temporary)
            raise


__all__ = ["EMBEDDED_FORMATS", "IPTC_FORMATS", "MODES", "KeywordError", "KeywordWriter", "exiftool_path"]
