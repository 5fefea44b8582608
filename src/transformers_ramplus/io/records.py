# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""Result records of a tagging run and their files: text, json, jsonl and csv.

A record is `{"path": str, "tags": [{"label", "score"}, ...]}`, or `{"path": str, "error": str}` for an input that
could not be tagged. The line formats (jsonl, csv, text: one record per line, appended and flushed) survive a kill:
a last record cut short is dropped when the file is opened again (and redone). json is rewritten atomically after
every batch. Text records escape control characters, so that a record is one line whose first tab ends the path.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import sys
import unicodedata
from pathlib import Path

from .atomic import atomic_file, atomic_write_bytes, atomic_write_text
from .inputs import input_key


logger = logging.getLogger(__name__)

FORMATS = ("text", "json", "jsonl", "csv")
CSV_FIELDS = ["path", "labels", "scores", "error"]


def infer_format(output=None, fmt=None) -> str:
    """`fmt` when given, else the format `output`'s extension names, else text."""
    if fmt:
        return fmt
    if output:
        suffix = Path(output).suffix.lower().lstrip(".")
        if suffix in FORMATS:
            return suffix
    return "text"


# ------------------------------------------------------------------------------------------------ text escaping
_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}
_UNESCAPES = {"\\": "\\", "t": "\t", "n": "\n", "r": "\r", "|": "|"}


def escape_text(value: str) -> str:
    """Backslash-escape `\\`, tab, newline, carriage return and every other control character, so that a text
    record is one line whose first tab ends the path."""
    out = []
    for char in value:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif unicodedata.category(char) in ("Cc", "Zl", "Zp"):
            code = ord(char)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)


def unescape_text(value: str) -> str:
    out, i = [], 0
    while i < len(value):
        char = value[i]
        if char == "\\" and i + 1 < len(value):
            following = value[i + 1]
            if following in _UNESCAPES:
                out.append(_UNESCAPES[following])
                i += 2
                continue
            width = {"x": 2, "u": 4}.get(following)
            if width and i + 2 + width <= len(value):
                try:
                    out.append(chr(int(value[i + 2 : i + 2 + width], 16)))
                    i += 2 + width
                    continue
                except ValueError:
                    pass
        out.append(char)
        i += 1
    return "".join(out)


def escape_label(label: str) -> str:
    """A tag name inside a ` | `-separated list (text records, the csv `labels` cell): `escape_text`, and `|` as
    `\\|`, so that a tag named `cat | dog` stays one label (`unescape_text` reverses it)."""
    return escape_text(label).replace("|", "\\|")


def split_labels(cell: str) -> list[str]:
    """The tag names of a ` | `-separated list written with `escape_label` (a csv `labels` cell)."""
    if not cell:
        return []
    parts, current, i = [], [], 0
    while i < len(cell):
        if cell[i] == "\\" and i + 1 < len(cell):
            current.append(cell[i : i + 2])
            i += 2
        elif cell.startswith(" | ", i):
            parts.append("".join(current))
            current = []
            i += 3
        else:
            current.append(cell[i])
            i += 1
    parts.append("".join(current))
    return [unescape_text(part) for part in parts]


# spreadsheet programs run a cell starting with one of these as a formula (CSV injection); such a cell is written
# with a leading `'` (shown by spreadsheets as text), and so is a cell that starts with `'` itself, so that reading
# back (`csv_cell_value`) is exact
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")


def csv_cell(value: str) -> str:
    """`value` safe for a spreadsheet: a leading `'` when it starts like a formula."""
    return "'" + value if value.startswith(_FORMULA_STARTS) else value


def csv_cell_value(cell: str) -> str:
    """The value written as `cell` by `csv_cell`."""
    return cell.removeprefix("'")


# ------------------------------------------------------------------------------------------------ records
def _format_tags(tags) -> str:
    return " | ".join(f"{escape_label(t['label'])} ({t['score']:.4f})" for t in tags)


def split_records(data: bytes, fmt: str) -> tuple[list[bytes], bytes]:
    """The complete records of `data` (each ending with a newline, outside quotes for csv) and what follows them:
    a last record cut short by a crash."""
    records, start, quoted = [], 0, False
    for position, byte in enumerate(data):
        if fmt == "csv" and byte == 0x22:  # '"'; a doubled quote toggles twice
            quoted = not quoted
        elif byte == 0x0A and not quoted:
            records.append(data[start : position + 1])
            start = position + 1
    return records, data[start:]


def _csv_row(text: str):
    rows = list(csv.reader(io.StringIO(text, newline="")))
    if len(rows) == 1 and rows[0] and rows[0] != CSV_FIELDS:
        return [csv_cell_value(cell) for cell in rows[0]]
    return None


def finished_path(raw: bytes, fmt: str) -> str | None:
    """The path of a finished (not error) record of a line format, else None."""
    text = raw.decode("utf-8", errors="surrogateescape")
    if fmt == "csv":
        row = _csv_row(text)
        return row[0] if row is not None and len(row) == len(CSV_FIELDS) and row[0] and row[3] == "" else None
    if fmt == "jsonl":
        try:
            record = json.loads(text)
        except json.JSONDecodeError:
            return None
        if isinstance(record, dict) and isinstance(record.get("path"), str) and "error" not in record:
            return record["path"]
        return None
    path, tab, rest = text.rstrip("\n").partition("\t")
    return unescape_text(path) if tab and not rest.startswith("ERROR:") else None


def record_path(raw: bytes, fmt: str) -> str | None:
    """The path of any record (finished or error) of a line format, else None (a csv header, garbage)."""
    text = raw.decode("utf-8", errors="surrogateescape")
    if fmt == "jsonl":
        try:
            record = json.loads(text)
        except ValueError:
            return None
        return record.get("path") if isinstance(record, dict) and isinstance(record.get("path"), str) else None
    if fmt == "csv":
        row = _csv_row(text)
        return None if row is None else row[0]
    path, tab, _ = text.rstrip("\n").partition("\t")
    return unescape_text(path) if tab else None


def _csv_line(row, quoting=csv.QUOTE_ALL) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n", quoting=quoting).writerow(row)
    return buffer.getvalue()


CSV_HEADER = _csv_line(CSV_FIELDS, csv.QUOTE_MINIMAL)


def render_record(record: dict, fmt: str) -> str:
    """One record of a line format (jsonl, csv, text) as written to the output, newline included."""
    if fmt == "csv":
        tags = record.get("tags") or []
        cells = [
            record["path"],
            " | ".join(escape_label(t["label"]) for t in tags),
            " | ".join(f"{t['score']:.6f}" for t in tags),
            record.get("error", ""),
        ]
        return _csv_line([csv_cell(cell) for cell in cells])
    if fmt == "jsonl":
        line = json.dumps(record, ensure_ascii=False)
    elif "error" in record:
        line = f"{escape_text(record['path'])}\tERROR: {escape_text(record['error'])}"
    else:
        line = f"{escape_text(record['path'])}\t{_format_tags(record['tags'])}"
        if "caption" in record:  # `ramplus tag --captions`
            line += f"\t{escape_text(record['caption'])}"
    return line + "\n"


# ------------------------------------------------------------------------------------------------ writers
class LineWriter:
    """Appends one line per record to `output` (None: stdout) and flushes it. Opening an existing output (not
    `fresh`) reads its finished records (`done`: their input keys) and drops a last record cut short by a crash."""

    def __init__(self, output, fmt, fresh=False, report=logger.warning, stream=None):
        self.fmt = fmt
        self.output = output
        self.report = report
        self.done: set[str] = set()
        self.failed: set[str] = set()
        self._records: list[bytes] = []
        if output is None:
            self.stream, self.owned = open_stream(stream)
            if fmt == "csv":
                self._write(CSV_HEADER)
            return
        self.owned = True
        if fresh or not os.path.isfile(output) or os.path.getsize(output) == 0:
            atomic_write_text(output, "")  # honours the umask; replaces only the named output
            data = b""
        else:
            data = self._recover(output)
        self.stream = open(output, "a", encoding="utf-8", errors="surrogateescape", newline="")
        if fmt == "csv" and not data:
            self._write(CSV_HEADER)

    def _recover(self, output) -> bytes:
        """Read the finished records, and drop a last record cut short by a crash (it is redone)."""
        with open(output, "rb") as handle:
            data = handle.read()
        self._records, partial = split_records(data, self.fmt)
        if partial:
            with open(output, "rb+") as handle:
                handle.truncate(len(data) - len(partial))
            self.report(f"dropped an unfinished last record of {output} ({len(partial)} bytes); it is redone")
            data = data[: len(data) - len(partial)]
        for raw in self._records:
            path = finished_path(raw, self.fmt)
            if path is not None:
                self.done.add(input_key(path))
            elif (path := record_path(raw, self.fmt)) is not None:
                self.failed.add(input_key(path))
        return data

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    def forget(self, keys: set[str]) -> None:
        """Remove the finished records of `keys` (inputs changed since): the output is rewritten atomically."""
        if not keys or self.output is None:
            return
        kept = [raw for raw in self._records if (path := finished_path(raw, self.fmt)) is None or input_key(path) not in keys]
        self._records = kept
        self.stream.close()
        atomic_write_bytes(self.output, b"".join(kept))
        self.stream = open(self.output, "a", encoding="utf-8", errors="surrogateescape", newline="")
        self.done -= keys

    def drop_errors(self, keys: set[str]) -> None:
        """Remove the error records of `keys` (inputs tried again, or done since): one record per input. The output
        is rewritten atomically."""
        keys = set(keys) & self.failed
        if not keys or self.output is None:
            return

        def stale(raw):
            path = record_path(raw, self.fmt)
            return path is not None and finished_path(raw, self.fmt) is None and input_key(path) in keys

        self._records = [raw for raw in self._records if not stale(raw)]
        self.stream.close()
        atomic_write_bytes(self.output, b"".join(self._records))
        self.stream = open(self.output, "a", encoding="utf-8", errors="surrogateescape", newline="")
        self.failed -= keys

    def write(self, record):
        self._write(render_record(record, self.fmt))

    def flush_batch(self):
        pass

    def close(self):
        if self.owned:
            self.stream.close()


class JsonWriter:
    """Keeps every record and rewrites the JSON array atomically after every batch (stdout or another stream: once,
    at the end)."""

    def __init__(self, output, fresh=False, stream=None):
        self.output = output
        self.stream = stream
        self.records: list[dict] = []
        self.done: set[str] = set()
        if output is not None and not fresh and os.path.isfile(output) and os.path.getsize(output) > 0:
            try:
                with open(output, encoding="utf-8", errors="surrogateescape") as handle:
                    existing = json.load(handle)
            except json.JSONDecodeError as error:
                raise ValueError(f"{output!r} exists but is not a JSON array of results ({error}); move it away") from error
            if not isinstance(existing, list):
                raise ValueError(f"{output!r} exists but is not a JSON array of results; move it away")
            self.records = [r for r in existing if isinstance(r, dict) and isinstance(r.get("path"), str) and "error" not in r]
            self.done = {input_key(r["path"]) for r in self.records}
        self.dirty = False
        if output is not None and (fresh or not os.path.isfile(output)):
            self.dirty = True
            self.flush_batch()  # start from an empty array on disk

    def forget(self, keys: set[str]) -> None:
        if keys:
            self.records = [r for r in self.records if input_key(r["path"]) not in keys]
            self.done -= keys
            self.dirty = True
            self.flush_batch()

    def write(self, record):
        self.records.append(record)
        self.dirty = True

    def flush_batch(self):
        if self.output is not None and self.dirty:
            write_json_records(self.output, self.records)
            self.dirty = False

    def close(self):
        if self.output is None:
            handle, owned = open_stream(self.stream)
            try:
                handle.write(json.dumps(self.records, ensure_ascii=False, indent=1) + "\n")
                handle.flush()
            finally:
                if owned:
                    handle.close()
        else:
            self.flush_batch()


def write_json_records(output, records) -> None:
    """`records` as the JSON array of a json output, written atomically."""
    with atomic_file(output, "w", errors="surrogateescape") as stream:
        json.dump(records, stream, ensure_ascii=False, indent=1)
        stream.write("\n")


def open_stream(stream=None):
    """`(handle, owned)` for a stream output: stdout for None or `-`, else the special file (device, FIFO) named
    `stream`, opened for appending (never truncated, never replaced)."""
    if stream is None or stream == "-":
        return sys.stdout, False
    return open(stream, "a", encoding="utf-8", errors="surrogateescape", newline=""), True


def open_writer(output, fmt, fresh=False, report=logger.warning, stream=None):
    """The writer of `fmt` for `output` (None: `stream`, a special file such as `/dev/stdout` or a FIFO, or stdout)."""
    if fmt == "json":
        return JsonWriter(output, fresh, stream=stream)
    return LineWriter(output, fmt, fresh, report=report, stream=stream)


class RecordCollector:
    """Keeps the records in memory (a process of a sharded run without an output file)."""

    def __init__(self):
        self.records: list[dict] = []

    def write(self, record):
        self.records.append(record)

    def flush_batch(self):
        pass

    def close(self):
        pass


__all__ = [
    "CSV_FIELDS",
    "CSV_HEADER",
    "FORMATS",
    "JsonWriter",
    "LineWriter",
    "RecordCollector",
    "csv_cell",
    "csv_cell_value",
    "escape_label",
    "escape_text",
    "finished_path",
    "infer_format",
    "open_stream",
    "open_writer",
    "record_path",
    "render_record",
    "split_labels",
    "split_records",
    "unescape_text",
    "write_json_records",
]
