"""`ramplus tag PATH...`: tag images and folders with the built-in tags, your own tags, or tags with descriptions.

Results are written as they come (jsonl/csv/text: one record appended and flushed per image; json: the whole file
rewritten atomically after every batch), so an interrupted run loses nothing done; rerunning with the same
`--output` skips the images that already have a result (unless the file's size or modification time changed since,
recorded in `.NAME.ramplus-tag.index`), and a record cut short by a crash is dropped and redone.
The options that determine the results (model, tags, thresholds, top-k, language, format) are recorded next to the
output (`.NAME.ramplus-tag.json`); a rerun with other options refuses unless `--overwrite`. A lock file
(`.NAME.lock`) stops a second `ramplus tag` on the same output. Unreadable inputs are reported on stderr and as error
records, the others are tagged.

Exit codes: 0 every input tagged; 1 some inputs failed (unreadable, unreachable, an empty folder); 2 usage or
input-file errors (bad options, a corrupt tag set, an output written with other options or locked); 3 an internal
error (a bug: please report it with the traceback).

Under `accelerate launch --multi_gpu --num_processes N -m transformers_ramplus.cli tag ...` (or `torchrun`), the
inputs are shared out over the processes and merged into one output: see `tag_shards.py`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import sys
import unicodedata
from pathlib import Path

from . import heatmaps


FORMATS = ("text", "json", "jsonl", "csv")
CSV_FIELDS = ["path", "labels", "scores", "error"]


def add_arguments(parser):
    parser.add_argument("paths", nargs="+", metavar="PATH", help="image files, folders (walked) or URLs")
    parser.add_argument(
        "--model",
        default=None,
        help="RAM++ model: a folder, a Hub id of a converted model, or a Hub id of an original checkpoint (converted "
        "once and cached); default: $RAMPLUS_MODEL, else the authors' release xinyu1205/recognize-anything-plus-model",
    )
    parser.add_argument("--revision", help="Hub revision (branch, tag or commit) of --model")
    parser.add_argument("--labels", nargs="+", action="extend", metavar="TAG", help="tag only these tags (built-in or new names)")
    parser.add_argument("--labels-file", help="file with one tag per line (UTF-8; lines starting with # are ignored, blank lines are an error)")
    parser.add_argument("--descriptions", metavar="FILE_OR_HUB_ID", help="tag descriptions JSON ([{tag: [descriptions]}], e.g. from `ramplus describe`): a file, a folder, or a Hub dataset id (downloaded and cached)")
    parser.add_argument("--descriptions-file", metavar="NAME", help="the JSON file to read in the --descriptions folder or Hub repository (needed when it holds several)")
    parser.add_argument("--descriptions-revision", metavar="REV", help="branch, tag or commit of the --descriptions Hub repository")
    parser.add_argument("--descriptions-repo-type", choices=["dataset", "model"], default="dataset", help="kind of the --descriptions Hub repository (default: dataset)")
    parser.add_argument("--name-templates", choices=["ram_plus", "compact"], default=None, help="how new tags given by name are embedded: the authors' 63-template ensemble (ram_plus, default) or the earlier 14 templates (compact)")
    parser.add_argument("--tag-set", help="a tag set saved with TagSet.save_pretrained (directory or Hub id)")
    parser.add_argument("--threshold", type=float, help="one threshold for all tags (default: per tag; 0.5 for new tags)")
    parser.add_argument("--top-k", type=int, help="keep at most K tags per image")
    parser.add_argument("--language", default="en", choices=["en", "zh"], help="names of built-in tags")
    parser.add_argument("--batch-size", type=int, default=8, help="images per forward pass")
    parser.add_argument("--recursive", "-r", action="store_true", help="walk folders recursively")
    parser.add_argument("--extensions", help="comma-separated file extensions to take from folders (default: every file)")
    parser.add_argument("--format", choices=FORMATS, help="output format (default: from --output's extension, else text)")
    parser.add_argument("--output", "-o", help="output file (default: stdout); rerunning with the same file resumes")
    parser.add_argument("--overwrite", action="store_true", help="start --output afresh instead of resuming it (also when it was written with other options)")
    parser.add_argument("--timeout", type=float, default=None, help="seconds to wait for an image URL's server (default 10)")
    parser.add_argument("--max-image-pixels", type=int, default=None, help="refuse encoded images declaring more pixels (decompression bombs; default about 179 million)")
    parser.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda:0 (default: first GPU, else CPU)")
    parser.add_argument("--precision", choices=["fp32", "bf16", "int8"], default=None, help="inference precision (optimize_for_inference): fp32 (default), bf16, or int8 (CPU: int8 linears, bf16 elsewhere)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.add_argument("--window", help="DICOM display window CENTER,WIDTH (default: each scan's own VOI window)")
    heatmaps.add_arguments(parser)  # --heatmaps DIR, --heatmap-tags


# ------------------------------------------------------------------------------------------------ inputs
def _is_url(path: str) -> bool:
    return path.startswith(("http://", "https://"))


def _key(path: str) -> str:
    """What identifies an input: the URL, or the real absolute path (so `x`, `./x` and `../dir/x` are one image)."""
    return path if _is_url(path) else os.path.normcase(os.path.realpath(path))


def collect_inputs(paths, recursive=False, extensions=None, exclude=None, empty_folders=None) -> list[str]:
    """Files named directly, files in folders (recursively with `recursive`; hidden files skipped), URLs, each once
    (in the spelling first met). A missing path is kept, so that it gets an error record. Folders that yield no file
    are appended to `empty_folders` when it is a list."""
    wanted = None
    if extensions:
        wanted = {"." + e.strip().lower().lstrip(".") for e in extensions.split(",") if e.strip()}
    excluded = _key(exclude) if exclude else None
    found: dict[str, str] = {}

    def take(path: str) -> bool:
        key = _key(path)
        if key == excluded:
            return False
        found.setdefault(key, path)
        return True

    for path in paths:
        if _is_url(path) or not os.path.isdir(path):
            take(path)
            continue
        taken = 0
        if recursive:
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    if not name.startswith(".") and (wanted is None or Path(name).suffix.lower() in wanted):
                        taken += take(os.path.join(root, name))
        else:
            for name in sorted(os.listdir(path)):
                full = os.path.join(path, name)
                if name.startswith(".") or not os.path.isfile(full):
                    continue
                if wanted is None or Path(name).suffix.lower() in wanted:
                    taken += take(full)
        if not taken and empty_folders is not None:
            empty_folders.append(path)
    return list(found.values())


def read_labels_file(path) -> list[str]:
    from ..tags.files import read_tag_list

    return read_tag_list(path, "labels", comments=True)


# ------------------------------------------------------------------------------------------------ text escaping
_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}
_UNESCAPES = {"\\": "\\", "t": "\t", "n": "\n", "r": "\r"}


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


# ------------------------------------------------------------------------------------------------ writers
def _format_tags(tags) -> str:
    return " | ".join(f"{escape_text(t['label'])} ({t['score']:.4f})" for t in tags)


def _split_records(data: bytes, fmt: str) -> tuple[list[bytes], bytes]:
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


def _finished_path(raw: bytes, fmt: str) -> str | None:
    """The path of a finished (not error) record, else None."""
    text = raw.decode("utf-8", errors="surrogateescape")
    if fmt == "csv":
        rows = list(csv.reader(io.StringIO(text, newline="")))
        if len(rows) == 1 and len(rows[0]) == len(CSV_FIELDS) and rows[0][0] and rows[0][3] == "" and rows[0] != CSV_FIELDS:
            return rows[0][0]
        return None
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


def _write_csv_row(stream, row, quoting=csv.QUOTE_ALL):
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n", quoting=quoting).writerow(row)
    stream.write(buffer.getvalue())
    stream.flush()


def render_record(record: dict, fmt: str) -> str:
    """One record of a line format (jsonl, csv, text) as written to the output, newline included."""
    if fmt == "csv":
        tags = record.get("tags") or []
        row = [
            record["path"],
            " | ".join(t["label"] for t in tags),
            " | ".join(f"{t['score']:.6f}" for t in tags),
            record.get("error", ""),
        ]
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_ALL).writerow(row)
        return buffer.getvalue()
    if fmt == "jsonl":
        line = json.dumps(record, ensure_ascii=False)
    elif "error" in record:
        line = f"{escape_text(record['path'])}\tERROR: {escape_text(record['error'])}"
    else:
        line = f"{escape_text(record['path'])}\t{_format_tags(record['tags'])}"
    return line + "\n"


class _LineWriter:
    """Appends one line per record to the output (or stdout) and flushes it."""

    def __init__(self, output, fmt, fresh=False):
        self.fmt = fmt
        self.output = output
        self.done: set[str] = set()
        self._records: list[bytes] = []
        if output is None:
            self.stream = sys.stdout
            self.owned = False
            if fmt == "csv":
                _write_csv_row(self.stream, CSV_FIELDS, csv.QUOTE_MINIMAL)
            return
        from ..io.atomic import atomic_write_text

        self.owned = True
        if fresh or not os.path.isfile(output) or os.path.getsize(output) == 0:
            atomic_write_text(output, "")  # honours the umask; replaces only the named output
            data = b""
        else:
            data = self._recover(output)
        self.stream = open(output, "a", encoding="utf-8", errors="surrogateescape", newline="")
        if fmt == "csv" and not data:
            _write_csv_row(self.stream, CSV_FIELDS, csv.QUOTE_MINIMAL)

    def _recover(self, output) -> bytes:
        """Read the finished records, and drop a last record cut short by a crash (it is redone)."""
        with open(output, "rb") as handle:
            data = handle.read()
        self._records, partial = _split_records(data, self.fmt)
        if partial:
            with open(output, "rb+") as handle:
                handle.truncate(len(data) - len(partial))
            sys.stderr.write(f"dropped an unfinished last record of {output} ({len(partial)} bytes); it is redone\n")
            data = data[: len(data) - len(partial)]
        for raw in self._records:
            path = _finished_path(raw, self.fmt)
            if path is not None:
                self.done.add(_key(path))
        return data

    def forget(self, keys: set[str]) -> None:
        """Remove the finished records of `keys` (inputs changed since): the output is rewritten atomically."""
        if not keys or self.output is None:
            return
        from ..io.atomic import atomic_write_bytes

        kept = [raw for raw in self._records if (path := _finished_path(raw, self.fmt)) is None or _key(path) not in keys]
        self.stream.close()
        atomic_write_bytes(self.output, b"".join(kept))
        self.stream = open(self.output, "a", encoding="utf-8", errors="surrogateescape", newline="")
        self.done -= keys

    def write(self, record):
        self.stream.write(render_record(record, self.fmt))
        self.stream.flush()

    def flush_batch(self):
        pass

    def close(self):
        if self.owned:
            self.stream.close()


class _JsonWriter:
    """Keeps every record and rewrites the JSON array atomically after every batch (stdout: once, at the end)."""

    def __init__(self, output, fresh=False):
        self.output = output
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
            self.done = {_key(r["path"]) for r in self.records}
        self.dirty = False
        if output is not None and (fresh or not os.path.isfile(output)):
            self.dirty = True
            self.flush_batch()  # start from an empty array on disk

    def forget(self, keys: set[str]) -> None:
        if keys:
            self.records = [r for r in self.records if _key(r["path"]) not in keys]
            self.done -= keys
            self.dirty = True
            self.flush_batch()

    def write(self, record):
        self.records.append(record)
        self.dirty = True

    def flush_batch(self):
        if self.output is not None and self.dirty:
            from ..io.atomic import atomic_file

            with atomic_file(self.output, "w", errors="surrogateescape") as stream:
                json.dump(self.records, stream, ensure_ascii=False, indent=1)
                stream.write("\n")
            self.dirty = False

    def close(self):
        if self.output is None:
            sys.stdout.write(json.dumps(self.records, ensure_ascii=False, indent=1) + "\n")
            sys.stdout.flush()
        else:
            self.flush_batch()


def _infer_format(args) -> str:
    if args.format:
        return args.format
    if args.output:
        suffix = Path(args.output).suffix.lower().lstrip(".")
        if suffix in FORMATS:
            return suffix
    return "text"


# ------------------------------------------------------------------------------------------------ resume keys
def settings_file(output) -> Path:
    """Where the options of a run writing `output` are recorded."""
    from ..io.atomic import sidecar_path

    return sidecar_path(output, "ramplus-tag.json")


_MODEL_SUFFIXES = (".safetensors", ".bin", ".json", ".txt", ".model", ".py", ".jinja")


def stamps_file(output) -> Path:
    """Where the size and modification time of every tagged file are recorded (one JSON line per image)."""
    from ..io.atomic import sidecar_path

    return sidecar_path(output, "ramplus-tag.index")


def file_stamp(path: str):
    """What identifies an input's content cheaply: `[size, mtime_ns]` of a file, None for a URL."""
    if _is_url(path):
        return None
    try:
        stat = os.stat(path)
    except OSError:
        return "missing"
    return [stat.st_size, stat.st_mtime_ns]


class _StampIndex:
    """Append-only `[key, stamp]` lines, written after the records they describe are on disk."""

    def __init__(self, output, fresh: bool):
        from ..io.atomic import atomic_write_text

        self.path = stamps_file(output)
        self.stamps: dict = {}
        if fresh or not self.path.is_file():
            atomic_write_text(self.path, "")
        else:
            data = self.path.read_bytes()
            lines, partial = _split_records(data, "jsonl")
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


def model_fingerprint(model_path: str, config=None, exclude=()) -> str:
    """What identifies a model: in a folder, the files `from_pretrained` reads (weights, configs, tokenizer and code
    files: names, sizes, modification times; hidden files and `exclude` left out); else the Hub id and commit."""
    parts = [model_path]
    if os.path.isdir(model_path):
        parts = [os.path.realpath(model_path)]
        skipped = {os.path.realpath(path) for path in exclude if path}
        for name in sorted(os.listdir(model_path)):
            full = os.path.join(model_path, name)
            if name.startswith(".") or not name.endswith(_MODEL_SUFFIXES) or not os.path.isfile(full):
                continue
            if os.path.realpath(full) in skipped:
                continue
            stat = os.stat(full)
            parts.append(f"{name}:{stat.st_size}:{stat.st_mtime_ns}")
    elif config is not None:
        parts.append(str(getattr(config, "_commit_hash", None)))
    return hashlib.sha256("\n".join(parts).encode("utf-8", "surrogateescape")).hexdigest()[:16]


def tag_set_digest(tag_set) -> str:
    """What identifies a tag set's results: names, thresholds, Chinese names, built-in indices and embeddings."""
    digest = hashlib.sha256()
    meta = [
        list(tag_set.names),
        [float(t) for t in tag_set.thresholds],
        list(getattr(tag_set, "builtin_indices", None) or []),
        list(getattr(tag_set, "chinese_names", None) or []),
    ]
    digest.update(json.dumps(meta, ensure_ascii=True, default=str).encode())
    for tensor in (getattr(tag_set, "label_embeds", None), getattr(tag_set, "description_mask", None)):
        if tensor is not None:
            digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


_SETTING_NAMES = {
    "format": "--format",
    "model": "--model",
    "model_fingerprint": "the model's files",
    "tags": "the tags (--labels, --labels-file, --descriptions, --tag-set)",
    "threshold": "--threshold",
    "top_k": "--top-k",
    "language": "--language",
    "exif": "the image processor's EXIF setting",
    "max_image_pixels": "--max-image-pixels",
    "dicom": "--window (DICOM window and frame)",
    "precision": "--precision",
}


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


def refuse_changed_settings(output, recorded, settings: dict) -> None:
    """A ValueError naming every option whose recorded value (`recorded`, read from the options file) differs from
    this run's `settings`."""
    recorded = recorded if isinstance(recorded, dict) else {}
    changed = [key for key in settings if recorded.get(key) != settings[key]]
    if changed:
        details = "; ".join(
            f"{_SETTING_NAMES.get(key, key)}: {recorded.get(key)!r} before, {settings[key]!r} now" for key in changed
        )
        raise ValueError(
            f"--output {output!r} holds results made with other options ({details}); pass --overwrite to redo them all, "
            "or choose another --output"
        )


def _check_local_path(option: str, value: str) -> None:
    """A folder argument given as a path that does not exist is reported as such (not as a bad Hub id)."""
    looks_local = (
        value.startswith(("/", ".", "~", "\\"))
        or value.count("/") > 1
        or (os.sep != "/" and os.sep in value)
        or ("/" in value and os.path.isdir(value.split("/")[0]))
    )
    if looks_local and not os.path.exists(os.path.expanduser(value)):
        raise ValueError(f"{option} {value!r}: no such directory")
    if os.path.isfile(value):
        raise ValueError(f"{option} {value!r} is a file; pass a directory (or a Hub id)")


# ------------------------------------------------------------------------------------------------ run
def _candidate_labels(args):
    labels = list(args.labels or [])
    if args.labels_file:
        labels += read_labels_file(args.labels_file)
    labels = list(dict.fromkeys(labels))
    if args.tag_set:
        if labels or args.descriptions or args.name_templates:
            raise ValueError("--tag-set cannot be combined with --labels, --labels-file, --descriptions or --name-templates")
        from ..tags.tag_set import TagSet

        return TagSet.from_pretrained(args.tag_set)
    if args.descriptions_file or args.descriptions_revision:
        if not args.descriptions:
            raise ValueError("--descriptions-file and --descriptions-revision need --descriptions")
    if args.descriptions:
        from ..tags.descriptions import load_descriptions, select_descriptions

        descriptions = load_descriptions(
            args.descriptions,
            args.descriptions_file,
            repo_type=args.descriptions_repo_type,
            revision=args.descriptions_revision,
        )
        return select_descriptions(descriptions, labels or None, origin=args.descriptions)
    return labels or None


def run(args) -> int:
    if not args.model:
        from ..hub import DEFAULT_MODEL

        args.model = os.environ.get("RAMPLUS_MODEL") or DEFAULT_MODEL
    if args.batch_size <= 0:
        raise ValueError(f"--batch-size must be positive, got {args.batch_size}")
    if args.top_k is not None and args.top_k <= 0:
        raise ValueError(f"--top-k must be positive, got {args.top_k}")
    if args.threshold is not None:
        from ..models.ram_plus.configuration_ram_plus import validate_threshold

        validate_threshold(args.threshold, "--threshold")
    if args.timeout is not None and not args.timeout > 0:
        raise ValueError(f"--timeout must be a positive number of seconds, got {args.timeout}")
    if args.max_image_pixels is not None and args.max_image_pixels <= 0:
        raise ValueError(f"--max-image-pixels must be positive, got {args.max_image_pixels}")
    first = args.model.split("/")[0]
    if args.model.count("/") == 1 and first not in ("", ".", "..", "~") and os.path.isdir(first) and not os.path.exists(args.model):
        # `models/ram` next to a folder `models/`: a mistyped path, not a Hub id to look up
        raise ValueError(f"--model {args.model!r}: no such directory (the folder {first!r} exists)")
    if args.tag_set:
        _check_local_path("--tag-set", args.tag_set)
    heatmaps.check_arguments(args)
    fmt = _infer_format(args)
    from .tag_shards import run_sharded, sharded_run

    if sharded_run(args):  # under `accelerate launch`/`torchrun`, or resuming the parts of a killed sharded run
        if getattr(args, "heatmaps", None) is not None:
            raise ValueError("--heatmaps runs in one process only (not under accelerate launch/torchrun): tag with --heatmaps without the launcher")
        return run_sharded(args, fmt)
    lock = None
    if args.output:
        if os.path.isdir(args.output):
            raise ValueError(f"--output {args.output!r} is a folder; name a file")
        from ..io.atomic import OutputLock

        lock = OutputLock(args.output).acquire()
    try:
        return _run_locked(args, fmt)
    finally:
        if lock is not None:
            lock.release()


def _collect(args) -> tuple[list[str], list[str]]:
    """The inputs of the command line, and the folders that held none (reported on stderr)."""
    empty_folders: list[str] = []
    inputs = collect_inputs(
        args.paths, recursive=args.recursive, extensions=args.extensions, exclude=args.output, empty_folders=empty_folders
    )
    inputs = heatmaps.without_folder(args, inputs)  # the PNGs of --heatmaps are no inputs
    for folder in empty_folders:
        sys.stderr.write(f"ramplus tag: no image files in folder {folder!r}\n")
    return inputs, empty_folders


def _run_locked(args, fmt) -> int:
    candidate_labels = _candidate_labels(args)
    inputs, empty_folders = _collect(args)
    tagger, tag_set, read_settings, settings = _load_tagger(args, fmt, candidate_labels)
    fresh = True
    if args.output:
        fresh = check_resume(args.output, settings, args.overwrite)
    # a fresh output is emptied first and its options recorded second: a kill in between leaves an empty output
    writer = _JsonWriter(args.output, fresh) if fmt == "json" else _LineWriter(args.output, fmt, fresh)
    if args.output and fresh:
        from ..io.atomic import atomic_write_json

        atomic_write_json(settings_file(args.output), settings)
    stamps = _StampIndex(args.output, fresh) if args.output else None
    heatmap_writer = heatmaps.HeatmapWriter.open(args, tagger, tag_set, settings if args.output else None)
    if stamps is not None:
        changed = stamps.changed(writer.done)
        if changed:
            sys.stderr.write(f"{len(changed)} image(s) changed since they were tagged (size or modification time): tagging them again\n")
            writer.forget(changed)
    if heatmap_writer is not None:  # results without their PNG are redone
        heatmap_writer.forget_missing(writer)
    todo = [(index, path) for index, path in enumerate(inputs) if _key(path) not in writer.done]
    skipped = len(inputs) - len(todo)
    if skipped:
        sys.stderr.write(f"resuming: {skipped} of {len(inputs)} images already have results in {args.output}\n")
    try:
        after_batch = heatmap_writer.write if heatmap_writer is not None else None  # --heatmaps
        failures = _tag_inputs(args, todo, tagger, tag_set, read_settings, writer, stamps, after_batch=after_batch)
    finally:
        writer.close()
        if stamps is not None:
            stamps.close()
    done = len(todo) - failures
    sys.stderr.write(f"tagged {done} image(s), {failures} failed, {skipped} skipped (already done)\n")
    if not inputs:
        sys.stderr.write("ramplus tag: no images to tag\n")
        return 1
    return 1 if failures or empty_folders else 0


def _load_tagger(args, fmt, candidate_labels, device=None):
    """The pipeline, the tag set, the image-reading settings and (with --output) the options recorded next to the
    output. `device` overrides --device (a sharded run puts each process on its own device)."""
    import transformers_ramplus  # noqa: F401  (registers the pipeline task)
    from transformers import pipeline

    from ..hub import resolve_model_name
    from . import reading

    # a folder, or a Hub id looked up once without retries (original checkpoints: the converted folder)
    model, hub_kwargs = resolve_model_name(args.model, revision=getattr(args, "revision", None))
    if model == args.model and getattr(args, "revision", None):
        hub_kwargs["revision"] = args.revision
    with reading(f"cannot load the model {args.model!r}"):
        precision = {"precision": args.precision} if getattr(args, "precision", None) else {}
        tagger = pipeline("zero-shot-image-tagging", model=model, device=device if device is not None else args.device, **precision, **hub_kwargs)
    tag_set = tagger.get_tag_set(candidate_labels, templates=args.name_templates)  # all text work happens here, once
    processor = tagger.image_processor
    exif = bool(getattr(processor, "apply_exif_orientation", False))
    max_pixels = args.max_image_pixels if args.max_image_pixels is not None else getattr(processor, "max_image_pixels", None)
    read_settings = {"apply_exif_orientation": exif, "max_image_pixels": max_pixels}
    if args.timeout is not None or getattr(processor, "timeout", None) is not None:
        read_settings["timeout"] = args.timeout if args.timeout is not None else processor.timeout
    from ..io.dicom import validate_window

    window = validate_window(args.window) or getattr(processor, "dicom_window", None)
    frame = getattr(processor, "dicom_frame", None)
    read_settings.update(dicom_window=window, dicom_frame=frame)

    settings = None
    if args.output:
        settings = {
            "format": fmt,
            "model": os.path.realpath(args.model) if os.path.isdir(args.model) else args.model,
            "model_fingerprint": model_fingerprint(model, tagger.model.config, exclude=[args.output]),
            "tags": tag_set_digest(tag_set),
            "threshold": args.threshold,
            "top_k": args.top_k,
            "language": args.language,
            "exif": exif,
            "max_image_pixels": max_pixels,
            "dicom": [None if window is None else [float(v) for v in window], frame],
            "precision": getattr(args, "precision", None),  # scores differ with the precision (None: the default)
        }
    return tagger, tag_set, read_settings, settings


def _tag_inputs(args, todo, tagger, tag_set, read_settings, writer, stamps, show_progress=True, after_batch=None) -> int:
    """Tag `todo` (`(index, path)` pairs) batch by batch: records written in input order, unreadable images as error
    records; the number of failures. Without `stamps`, nothing is recorded about the inputs' files. `after_batch(paths,
    images, results)` (optional) sees each batch's readable images and their tags before their records are written."""
    from tqdm.auto import tqdm

    from ..models.ram_plus.image_processing_ram_plus import load_image

    failures = 0
    # disable=None: no bar when stderr is not a terminal (a log file gets the messages and the summary line only)
    progress = tqdm(
        total=len(todo), desc="tagging", unit="img", file=sys.stderr,
        disable=True if (args.no_progress or not show_progress) else None,
    )
    try:
        for start in range(0, len(todo), args.batch_size):
            chunk = todo[start : start + args.batch_size]
            records: list[dict | None] = [None] * len(chunk)
            images, positions = [], []
            stamped = [(_key(path), file_stamp(path)) for _, path in chunk]  # before reading: a later change is seen
            for position, (index, path) in enumerate(chunk):
                try:
                    images.append(load_image(path, index=index, **read_settings))
                    positions.append(position)
                except ValueError as error:
                    failures += 1
                    tqdm.write(f"ramplus tag: skipped {error}", file=sys.stderr)
                    records[position] = {"path": path, "error": str(error)}
            if images:
                results = tagger(
                    images,
                    candidate_labels=tag_set,
                    threshold=args.threshold,
                    top_k=args.top_k,
                    language=args.language,
                    batch_size=args.batch_size,
                )
                for position, tags in zip(positions, results):
                    records[position] = {"path": chunk[position][1], "tags": tags}
                if after_batch is not None:  # e.g. --heatmaps: before the records, so every finished record has its PNG
                    after_batch([chunk[position][1] for position in positions], images, results)
            for record in records:  # in input order
                writer.write(record)
                progress.update(1)
            writer.flush_batch()
            if stamps is not None:  # after the records are on disk: a kill in between only redoes them
                stamps.add(entry for entry, record in zip(stamped, records) if "error" not in record)
    finally:
        progress.close()
    return failures
