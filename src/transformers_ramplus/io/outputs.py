# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""The checks every writer makes before it writes: nothing a user named as input is destroyed, and an output that
is a link, a special file or `-` is written through rather than replaced.

* `resolve_output(path)`: what a named output file is. `-`, a character device (`/dev/stdout`, a terminal), a FIFO,
  a socket, or any name in (or linking into) `/dev`, `/proc`, `/sys` (`/dev/stdout` when the shell redirected it
  to a file) is a *stream*: written in order, never replaced, no state files next to it. A symbolic link is
  followed (also a dangling one: its target is created), so that the file the link points to is written and the
  link stays; state files then go next to the target. A folder is refused.
* `refuse_file_over_inputs(output, inputs)`: an output file that is one of the inputs (same file, through any
  spelling, link or hard link) is refused.
* `refuse_folder_over_inputs(output_dir, inputs)`: a folder that is replaced as a whole must neither be, contain, nor
  lie inside one of the inputs.

Only the standard library is imported (the module may ship as remote code next to the pipeline).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass


STREAM = "stream"
FILE = "file"


@dataclass(frozen=True)
class ResolvedOutput:
    """`kind` is "stream" or "file"; `path` is the file to write (a link's target for a link; `-` for stdout);
    `given` is the name the user gave."""

    kind: str
    path: str
    given: str

    @property
    def is_stream(self) -> bool:
        return self.kind == STREAM


# system folders of special files: an output named there (or reached through a link there, such as `/dev/stdout`
# -> `/proc/self/fd/1` -> a file the shell redirected to) is written into, never replaced, and gets no state files
SYSTEM_FOLDERS = ("/dev/", "/proc/", "/sys/")


def _follow_links(path: str, limit: int = 40) -> tuple[str, bool]:
    """`path` with every symbolic link followed, also a dangling last one (the target it names), and whether a hop
    lay in a system folder (`SYSTEM_FOLDERS`); a loop is an error."""
    current = os.path.abspath(path)
    system = False
    for _ in range(limit):
        system = system or current.startswith(SYSTEM_FOLDERS)
        if not os.path.islink(current):
            parent, name = os.path.split(current)
            resolved = os.path.join(os.path.realpath(parent), name)
            return resolved, system or resolved.startswith(SYSTEM_FOLDERS)
        target = os.readlink(current)
        current = os.path.normpath(os.path.join(os.path.dirname(current), target))
    raise ValueError(f"output {path!r}: too many levels of symbolic links (a loop?)")


def is_special_file(path: str) -> bool:
    """A character or block device, FIFO or socket (following links): something to stream into, not to replace."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISCHR(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISBLK(mode)


def resolve_output(path: str | os.PathLike, option: str = "--output") -> ResolvedOutput:
    """What the output named `path` is: a stream (`-`, a device, a FIFO, a socket) or a file to write (a link
    followed to its target). Raises ValueError for a folder or a link loop."""
    given = os.fspath(path)
    if given == "-":
        return ResolvedOutput(STREAM, "-", given)
    if not given:
        raise ValueError(f"{option}: an empty name")
    if is_special_file(given):
        return ResolvedOutput(STREAM, given, given)
    target, system = _follow_links(given)
    if system:  # `/dev/stdout` redirected to a file, `/dev/fd/3`, ...: written into, as a stream
        return ResolvedOutput(STREAM, given, given)
    if os.path.isdir(target):
        raise ValueError(f"{option} {given!r} is a folder; name a file")
    return ResolvedOutput(FILE, target, given)


def _real(path: str) -> str:
    return os.path.normcase(os.path.realpath(path))


def _inside(child: str, parent: str) -> bool:
    return child == parent or child.startswith(parent.rstrip(os.sep) + os.sep)


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two names are one file (same real path, or the same inode: a hard link)."""
    if _real(os.fspath(a)) == _real(os.fspath(b)):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _local(inputs) -> list[str]:
    names = []
    for given in inputs:
        if given is None:
            continue
        given = os.fspath(given)
        if given and not given.startswith(("http://", "https://")) and os.path.lexists(given):
            names.append(given)
    return names


def refuse_file_over_inputs(output, inputs, option: str = "--output") -> None:
    """ValueError when the output file `output` is one of `inputs` (files or folders; URLs and names that do not
    exist locally are ignored)."""
    if output is None or os.fspath(output) == "-":
        return
    for given in _local(inputs):
        if same_file(output, given):
            raise ValueError(
                f"{option} {os.fspath(output)!r} is also an input ({given!r}); writing it would destroy that input. "
                "Choose another output"
            )


def refuse_folder_over_inputs(output_dir, inputs, option: str = "OUTPUT_DIR") -> None:
    """ValueError when the folder `output_dir` (replaced as a whole) is an input, holds one, or is an existing folder
    inside an input folder (replacing it would remove part of that input)."""
    target = _real(os.fspath(output_dir))
    for given in _local(inputs):
        source = _real(given)
        replaces_part = _inside(target, source) and os.path.lexists(output_dir)
        if _inside(source, target) or replaces_part or same_file(given, output_dir):
            raise ValueError(
                f"{option} {os.fspath(output_dir)!r} would replace the input {given!r} (or write into it); "
                "choose another output"
            )


__all__ = [
    "ResolvedOutput",
    "is_special_file",
    "refuse_file_over_inputs",
    "refuse_folder_over_inputs",
    "resolve_output",
    "same_file",
]
