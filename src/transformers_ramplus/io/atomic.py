# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""The one way this package writes files and folders: never half-written, never private, never leaving litter.

* `atomic_write_bytes` / `atomic_write_text` / `atomic_write_json` / `atomic_file`: a file is written under a
  temporary name in its own folder, flushed, given the permissions a plain `open()` would give under the current umask
  (temporary files are created 0600, which would otherwise leak into the result) and moved over the target with
  `os.replace`, so a reader sees the old file or the new one, never a mix.
* `atomic_directory`: a folder is built under a temporary name and swapped into place; an existing target (only
  with `overwrite=True`) is moved aside first and removed only after the new folder is in place.
* Temporary names are `.NAME.tmp-PID-RANDOM` (and `.NAME.old-PID-RANDOM` for a folder being replaced). Before each
  write, leftovers of processes that no longer run (SIGKILL, power loss) are removed, and an old folder whose
  replacement never arrived is put back.
* `OutputLock`: an advisory lock file next to an output, so that a second writer stops with a message.

Only the standard library is imported, so the module ships as remote code next to the pipeline.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import stat
import time
from pathlib import Path


_TEMP_PATTERN = re.compile(r"^\.(?P<name>.+)\.(?P<kind>tmp|old)-(?P<pid>\d+)-[0-9a-f]+$")
# earlier versions named temporaries `.NAME.tmp-XXXXXXXX` (tempfile, no process id): removed once a day old
_LEGACY_PATTERN = re.compile(r"^\.(?P<name>.+)\.tmp-[a-z0-9_]{8}$")
LEGACY_MAX_AGE_S = 24 * 3600
_CLEANED: set = set()


def current_umask() -> int:
    """The process umask (read without changing it where the platform allows)."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _apply_umask(path: str | os.PathLike, directory: bool) -> None:
    """Give `path` the mode a plain `open()`/`mkdir()` would have given it (0666/0777 minus the umask); for a folder,
    everything under it too."""
    mask = current_umask()
    file_mode, dir_mode = 0o666 & ~mask, 0o777 & ~mask
    if not directory:
        os.chmod(path, file_mode)
        return
    os.chmod(path, dir_mode)
    for root, dirs, files in os.walk(path):
        for name in dirs:
            os.chmod(os.path.join(root, name), dir_mode)
        for name in files:
            full = os.path.join(root, name)
            if not os.path.islink(full):
                # keep executable bits of files the writer made executable
                executable = os.stat(full).st_mode & stat.S_IXUSR
                os.chmod(full, (0o777 if executable else 0o666) & ~mask)


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists, owned by someone else
    return True


def short_name(name: str, limit: int = 120) -> str:
    """`name`, or for a long one its start and a hash, so that `.NAME.suffix` names stay under the file system's
    255-byte limit."""
    if len(os.fsencode(name)) <= limit:
        return name

    return name[: limit // 2] + "~" + hashlib.sha1(os.fsencode(name)).hexdigest()[:12]


def sidecar_path(target: str | os.PathLike, suffix: str) -> Path:
    """The hidden `.NAME.suffix` file next to `target` (lock files, recorded options)."""
    target = Path(target)
    return target.with_name(f".{short_name(target.name)}.{suffix}")


def _temporary_name(target: Path, kind: str) -> Path:
    return target.with_name(f".{short_name(target.name)}.{kind}-{os.getpid()}-{secrets.token_hex(4)}")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def clean_stale_temporaries(target: str | os.PathLike) -> list[str]:
    """Remove the temporary files/folders of `target` left by processes that no longer run, and put back an old
    folder whose replacement never arrived (a kill between the two renames). Returns what was removed or restored."""
    target = Path(target)
    parent = target.parent if str(target.parent) else Path(".")
    cleaned: list[str] = []
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return cleaned
    for entry in entries:
        legacy = _LEGACY_PATTERN.match(entry.name)
        if legacy and legacy.group("name") == target.name:  # (earlier versions did not shorten names)
            with contextlib.suppress(OSError):
                if time.time() - entry.stat(follow_symlinks=False).st_mtime > LEGACY_MAX_AGE_S:
                    _remove(Path(entry.path))
                    cleaned.append(entry.path)
            continue
        match = _TEMP_PATTERN.match(entry.name)
        if not match or match.group("name") != short_name(target.name) or _pid_alive(int(match.group("pid"))):
            continue
        path = Path(entry.path)
        if match.group("kind") == "old" and not os.path.lexists(target):
            os.replace(path, target)  # the new version never arrived: the previous one comes back
        else:
            _remove(path)
        cleaned.append(entry.path)
    return cleaned


def _clean_once(target: Path) -> None:
    """`clean_stale_temporaries` once per target and process (a folder of many files is not rescanned per write)."""
    seen = (os.getpid(), os.path.abspath(target))
    if seen not in _CLEANED:
        _CLEANED.add(seen)
        clean_stale_temporaries(target)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8", newline: str | None = None, errors: str | None = None):
    """`with atomic_file(path) as stream:` write `stream`; on success it replaces `path` in one step. Use mode "wb"
    for bytes, or mode "path" to get the temporary path (for libraries that write to a path themselves)."""
    target = Path(path)
    if target.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder, expected a file path", os.fspath(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    _clean_once(target)
    temporary = _temporary_name(target, "tmp")
    try:
        if mode == "path":
            yield temporary
        else:
            binary = "b" in mode
            text_options = {} if binary else {"encoding": encoding, "newline": newline, "errors": errors}
            with open(temporary, "xb" if binary else "x", **text_options) as stream:
                yield stream
                stream.flush()
                os.fsync(stream.fileno())
        _apply_umask(temporary, directory=False)
        os.replace(temporary, target)
    except BaseException:
        _remove(temporary)
        raise


def atomic_write_bytes(path, data: bytes) -> None:
    with atomic_file(path, "wb") as stream:
        stream.write(data)


def atomic_write_text(path, text: str, encoding: str = "utf-8") -> None:
    with atomic_file(path, "w", encoding=encoding, newline="") as stream:
        stream.write(text)


def atomic_write_json(path, data, indent: int | None = 1) -> None:
    with atomic_file(path, "w") as stream:
        json.dump(data, stream, ensure_ascii=False, indent=indent)
        stream.write("\n")


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, overwrite: bool = False):
    """`with atomic_directory(target) as staging:` fill `staging` (a fresh folder next to `target`); on success it
    becomes `target`. An existing non-empty `target` raises `FileExistsError` unless `overwrite`; with `overwrite`
    it is moved aside and deleted once the new folder is in place. A target that is a file is never replaced."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    _clean_once(target)
    if os.path.lexists(target):
        if not target.is_dir() or target.is_symlink():
            raise FileExistsError(errno.EEXIST, "exists and is not a folder; refusing to replace it", os.fspath(target))
        if not overwrite and any(target.iterdir()):
            raise FileExistsError(errno.EEXIST, "exists and is not empty (pass overwrite)", os.fspath(target))
    staging = _temporary_name(target, "tmp")
    os.mkdir(staging)
    try:
        yield staging
        _apply_umask(staging, directory=True)
        if target.is_dir():
            backup = _temporary_name(target, "old")
            os.replace(target, backup)
            try:
                os.replace(staging, target)
            except BaseException:
                os.replace(backup, target)
                raise
            _remove(backup)
        else:
            os.replace(staging, target)
    except BaseException:
        _remove(staging)
        raise


class OutputLock:
    """An exclusive advisory lock on `.NAME.lock` next to `path` (POSIX `flock`). A second holder gets
    `OutputLockedError` at once. The lock file is removed on release."""

    def __init__(self, path: str | os.PathLike):
        self.target = Path(path)
        self.path = sidecar_path(path, "lock")
        self._handle = None

    def acquire(self) -> "OutputLock":
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks; a concurrent writer is not detected
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            handle = open(self.path, "a+")
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.seek(0)
                owner = handle.read().strip() or "unknown"
                handle.close()
                raise OutputLockedError(
                    f"{os.fspath(self.target)!r} is being written by another process "
                    f"(pid {owner}, lock file {os.fspath(self.path)!r}); wait for it to finish or choose another output"
                ) from None
            try:  # the file we locked may have been removed by the previous holder in between: retry then
                if os.fstat(handle.fileno()).st_ino != os.stat(self.path).st_ino:
                    handle.close()
                    continue
            except FileNotFoundError:
                handle.close()
                continue
            handle.seek(0)
            handle.truncate()
            handle.write(str(os.getpid()))
            handle.flush()
            self._handle = handle
            return self

    def release(self) -> None:
        if self._handle is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            self._handle.close()
            self._handle = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


class OutputLockedError(OSError):
    """Another process holds the lock of an output."""


__all__ = [
    "OutputLock",
    "OutputLockedError",
    "atomic_directory",
    "atomic_file",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "clean_stale_temporaries",
    "current_umask",
    "short_name",
    "sidecar_path",
]
