"""`ramplus tag PATH...`: tag images and folders with the built-in tags, your own tags, or tags with descriptions.

Results are written as they come (jsonl/csv/text: one record appended and flushed per image; json: the whole file
rewritten atomically after every batch), so an interrupted run loses nothing done; rerunning with the same
`--output` skips the images that already have a result. Unreadable files are reported on stderr and as error
records, the others are tagged, and the exit code is 1 when any input failed.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from pathlib import Path


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
    parser.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda:0 (default: first GPU, else CPU)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.add_argument("--window", help="DICOM display window CENTER,WIDTH (default: each scan's own VOI window)")


# ------------------------------------------------------------------------------------------------ inputs
def _is_url(path: str) -> bool:
    return path.startswith(("http://", "https://"))


def collect_inputs(paths, recursive=False, extensions=None, exclude=None) -> list[str]:
    """Files named directly, files in folders (recursively with `recursive`; hidden files skipped), URLs. A missing
    path is kept, so that it gets an error record."""
    wanted = None
    if extensions:
        wanted = {"." + e.strip().lower().lstrip(".") for e in extensions.split(",") if e.strip()}
    excluded = os.path.abspath(exclude) if exclude else None
    found: list[str] = []

    def take(path: str):
        if excluded is not None and os.path.abspath(path) == excluded:
            return
        found.append(path)

    for path in paths:
        if _is_url(path) or not os.path.isdir(path):
            take(path)
            continue
        if recursive:
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    if not name.startswith(".") and (wanted is None or Path(name).suffix.lower() in wanted):
                        take(os.path.join(root, name))
        else:
            for name in sorted(os.listdir(path)):
                full = os.path.join(path, name)
                if name.startswith(".") or not os.path.isfile(full):
                    continue
                if wanted is None or Path(name).suffix.lower() in wanted:
                    take(full)
    return list(dict.fromkeys(found))


def _key(path: str) -> str:
    return path if _is_url(path) else os.path.normpath(path)


def read_labels_file(path) -> list[str]:
    from ..tag_files import read_tag_list

    return read_tag_list(path, "labels", comments=True)


# ------------------------------------------------------------------------------------------------ writers
def _ensure_trailing_newline(path) -> None:
    """A line cut short by a crash is ended, so the next record starts on its own line."""
    if os.path.getsize(path) == 0:
        return
    with open(path, "rb+") as handle:
        handle.seek(-1, os.SEEK_END)
        if handle.read(1) != b"\n":
            handle.write(b"\n")


def _format_tags(tags) -> str:
    return " | ".join(f"{t['label']} ({t['score']:.4f})" for t in tags)


class _LineWriter:
    """Appends one line per record to the output (or stdout) and flushes it."""

    def __init__(self, output, fmt):
        self.fmt = fmt
        self.output = output
        self.done: set[str] = set()
        if output is None:
            self.stream = sys.stdout
            self.owned = False
        else:
            exists = os.path.isfile(output) and os.path.getsize(output) > 0
            if exists:
                self.done = self._read_done(output)
                _ensure_trailing_newline(output)
            Path(output).parent.mkdir(parents=True, exist_ok=True)
            self.stream = open(output, "a", encoding="utf-8", newline="")
            self.owned = True
            if fmt == "csv" and not exists:
                self._write_csv_row({name: name for name in CSV_FIELDS})
        if output is None and fmt == "csv":
            self._write_csv_row({name: name for name in CSV_FIELDS})

    def _read_done(self, output) -> set[str]:
        done = set()
        with open(output, encoding="utf-8", newline="") as handle:
            if self.fmt == "csv":
                for row in csv.DictReader(handle):
                    if row.get("path") and row.get("error") == "" and row.get("scores") is not None:
                        done.add(_key(row["path"]))
            elif self.fmt == "jsonl":
                for line in handle:
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError:
                        continue  # a line cut short by a crash
                    if isinstance(record, dict) and "path" in record and "error" not in record:
                        done.add(_key(record["path"]))
            else:
                for line in handle:
                    path, tab, rest = line.rstrip("\n").partition("\t")
                    if tab and not rest.startswith("ERROR:"):
                        done.add(_key(path))
        return done

    def _write_csv_row(self, row):
        buffer = io.StringIO()
        csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n").writerow(row)
        self.stream.write(buffer.getvalue())
        self.stream.flush()

    def write(self, record):
        if self.fmt == "csv":
            tags = record.get("tags") or []
            self._write_csv_row(
                {
                    "path": record["path"],
                    "labels": " | ".join(t["label"] for t in tags),
                    "scores": " | ".join(f"{t['score']:.6f}" for t in tags),
                    "error": record.get("error", ""),
                }
            )
            return
        if self.fmt == "jsonl":
            line = json.dumps(record, ensure_ascii=False)
        elif "error" in record:
            line = f"{record['path']}\tERROR: {record['error']}"
        else:
            line = f"{record['path']}\t{_format_tags(record['tags'])}"
        self.stream.write(line + "\n")
        self.stream.flush()

    def flush_batch(self):
        pass

    def close(self):
        if self.owned:
            self.stream.close()


class _JsonWriter:
    """Keeps every record and rewrites the JSON array atomically after every batch (stdout: once, at the end)."""

    def __init__(self, output):
        from ..tag_sets import write_json_atomic

        self._write_atomic = write_json_atomic
        self.output = output
        self.records: list[dict] = []
        self.done: set[str] = set()
        if output is not None and os.path.isfile(output) and os.path.getsize(output) > 0:
            try:
                with open(output, encoding="utf-8") as handle:
                    existing = json.load(handle)
            except json.JSONDecodeError as error:
                raise ValueError(f"{output!r} exists but is not a JSON array of results ({error}); move it away") from error
            if not isinstance(existing, list):
                raise ValueError(f"{output!r} exists but is not a JSON array of results; move it away")
            self.records = [r for r in existing if isinstance(r, dict) and "path" in r and "error" not in r]
            self.done = {_key(r["path"]) for r in self.records}
        self.dirty = False

    def write(self, record):
        self.records.append(record)
        self.dirty = True

    def flush_batch(self):
        if self.output is not None and self.dirty:
            self._write_atomic(self.output, self.records)
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


# ------------------------------------------------------------------------------------------------ run
def _candidate_labels(args):
    labels = list(args.labels or [])
    if args.labels_file:
        labels += read_labels_file(args.labels_file)
    labels = list(dict.fromkeys(labels))
    if args.tag_set:
        if labels or args.descriptions or args.name_templates:
            raise ValueError("--tag-set cannot be combined with --labels, --labels-file, --descriptions or --name-templates")
        from ..tag_sets import TagSet

        return TagSet.from_pretrained(args.tag_set)
    if args.descriptions_file or args.descriptions_revision:
        if not args.descriptions:
            raise ValueError("--descriptions-file and --descriptions-revision need --descriptions")
    if args.descriptions:
        from ..tag_sets import load_descriptions, select_descriptions

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
        from ..configuration_ram_plus import validate_threshold

        validate_threshold(args.threshold, "--threshold")
    fmt = _infer_format(args)
    candidate_labels = _candidate_labels(args)
    inputs = collect_inputs(args.paths, recursive=args.recursive, extensions=args.extensions, exclude=args.output)

    import transformers_ramplus  # noqa: F401  (registers the pipeline task)
    from tqdm.auto import tqdm
    from transformers import pipeline

    from ..image_processing_ram_plus import load_image

    from ..hub import resolve_model_name

    # a folder, or a Hub id looked up once without retries (original checkpoints: the converted folder)
    model, hub_kwargs = resolve_model_name(args.model, revision=getattr(args, "revision", None))
    if model == args.model and getattr(args, "revision", None):
        hub_kwargs["revision"] = args.revision
    tagger = pipeline("zero-shot-image-tagging", model=model, device=args.device, **hub_kwargs)
    tag_set = tagger.get_tag_set(candidate_labels, templates=args.name_templates)  # all text work happens here, once
    exif = bool(getattr(tagger.image_processor, "apply_exif_orientation", False))
    from ..dicom import validate_window

    window = validate_window(args.window) or getattr(tagger.image_processor, "dicom_window", None)
    frame = getattr(tagger.image_processor, "dicom_frame", None)

    writer = _JsonWriter(args.output) if fmt == "json" else _LineWriter(args.output, fmt)
    todo = [path for path in inputs if _key(path) not in writer.done]
    skipped = len(inputs) - len(todo)
    if skipped:
        sys.stderr.write(f"resuming: {skipped} of {len(inputs)} images already have results in {args.output}\n")
    failures = 0
    progress = tqdm(total=len(todo), desc="tagging", unit="img", file=sys.stderr, disable=args.no_progress)
    try:
        for start in range(0, len(todo), args.batch_size):
            chunk = todo[start : start + args.batch_size]
            records: list[dict | None] = [None] * len(chunk)
            images, positions = [], []
            for position, path in enumerate(chunk):
                try:
                    images.append(load_image(
                        path, index=start + position, apply_exif_orientation=exif, dicom_window=window, dicom_frame=frame
                    ))
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
                    records[position] = {"path": chunk[position], "tags": tags}
            for record in records:  # in input order
                writer.write(record)
                progress.update(1)
            writer.flush_batch()
    finally:
        progress.close()
        writer.close()
    done = len(todo) - failures
    sys.stderr.write(f"tagged {done} image(s), {failures} failed, {skipped} skipped (already done)\n")
    return 1 if failures else 0
