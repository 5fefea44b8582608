# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""`ramplus tag` over several processes: `accelerate launch --multi_gpu --num_processes N -m transformers_ramplus.cli
tag ...` (or `torchrun --nproc_per_node N -m transformers_ramplus.cli tag ...`).

Every process loads the model once (on its own GPU when there are GPUs: `cuda:LOCAL_RANK`), and tags its share of the
images that have no result yet (shared round-robin, in input order). With `--output OUT`:

* each process appends its records (jsonl) to its own part, `.OUT.ramplus-tag.parts/part-RANK.jsonl`, with a
  `[path, size/mtime]` index beside it, under the same rules as a single-process output (flushed per record, a record
  cut short by a kill dropped and redone);
* after all processes are done, process 0 merges the parts and the earlier results of OUT into OUT (written
  atomically, in input order: results of inputs not named in this run first, as they were), records the size and
  modification time of every tagged file in OUT's index, and removes the parts;
* a rerun (with any number of processes, one included) resumes: images with a result in OUT or in a part are not
  tagged again, unless their file changed since. A part left by a killed run makes even a plain `ramplus tag` run
  take this path (with one process), so that the parts are merged and nothing is redone.

Without `--output`, process 0 gathers the records and prints them in input order.

Process 0 holds OUT's lock; options are checked and recorded by it, and a failure of any process (bad options, an
unreadable model, a bug) stops all of them with the same message. Unreadable images are error records, as with one
process. The launchers report one exit status for all processes (torchrun: 1 for any failure), so process 0 also
prints the command's own exit code.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from datetime import timedelta
from pathlib import Path

from . import tag as _tag


PART_GLOB = "part-*.jsonl"
# a process that finishes its share early waits this long for the others at the merge (shares can take hours)
BARRIER_TIMEOUT = timedelta(days=7)


def parts_dir(output) -> Path:
    """The folder next to `output` where each process of a sharded run writes its part."""
    from ..io.atomic import sidecar_path

    return sidecar_path(output, "ramplus-tag.parts")


def _has_parts(output) -> bool:
    folder = parts_dir(output)
    return folder.is_dir() and any(folder.glob(PART_GLOB))


def world_size() -> int:
    """The number of processes started by `accelerate launch` / `torchrun` (1 without a launcher)."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def sharded_run(args) -> bool:
    """Whether `ramplus tag` runs sharded: under a launcher with several processes, or when `--output` has the parts
    of a sharded run that did not finish (they are merged, whatever the number of processes now)."""
    return world_size() > 1 or bool(args.output and _has_parts(args.output))


# ------------------------------------------------------------------------------------------------ processes
class ProcessGroup:
    """Rank, world size and device of this process, and the few collectives a sharded run needs. One process: no
    torch.distributed at all.

    The processes only exchange a few small Python objects (the work list, counts, failures), so they talk over gloo
    whatever the devices: NCCL would bring nothing here and refuses two processes on one GPU. Each process computes on
    the GPU of its local rank (modulo the GPUs there are) when there are GPUs, as accelerate places them."""

    def __init__(self, device=None):
        self.rank, self.world, self.local_rank, self.device = 0, 1, 0, None
        if world_size() == 1:
            return
        import torch
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("gloo", timeout=BARRIER_TIMEOUT)
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        self.local_rank = int(os.environ.get("LOCAL_RANK", self.rank))
        cpu = not torch.cuda.is_available() or (device is not None and str(device).startswith("cpu"))
        self.device = torch.device("cpu" if cpu else f"cuda:{self.local_rank % torch.cuda.device_count()}")
        if not cpu:
            torch.cuda.set_device(self.device)

    def device_for(self, requested):
        """The device of this process: --device as given for one process; with several, each on its own GPU
        (`--device cuda` or no --device) unless --device names one (`cpu`, `cuda:1`)."""
        if self.world == 1:
            return requested
        if requested is None:
            return str(self.device)
        if requested == "cuda":
            return str(self.device)
        return requested

    def gather(self, value) -> list:
        """`value` of every process, in rank order, on every process."""
        if self.world == 1:
            return [value]
        import torch.distributed as dist

        values = [None] * self.world
        dist.all_gather_object(values, value)
        return values

    def broadcast(self, value):
        """Process 0's `value`, on every process."""
        if self.world == 1:
            return value
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def agree(self, step):
        """Run `step()` here; every process learns whether it failed anywhere, and a failure anywhere is raised
        everywhere (a user error as ValueError, exit 2; anything else as RuntimeError, exit 3), so that no process
        waits forever for one that stopped."""
        result, failure = None, None
        try:
            result = step()
        except Exception as error:  # noqa: BLE001  (re-raised below, after the others know)
            failure = error
        if self.world > 1:
            status = None
            if failure is not None:
                status = (isinstance(failure, (ValueError, TypeError, OSError)), f"{type(failure).__name__}: {failure}")
            statuses = self.gather(status)
        else:
            statuses = [None]
        if failure is not None:
            raise failure
        for rank, status in enumerate(statuses):
            if status is not None:
                user_error, message = status
                raise (ValueError if user_error else RuntimeError)(f"process {rank} of {self.world} failed ({message})")
        return result


# ------------------------------------------------------------------------------------------------ plan (process 0)
def _check_parts_resume(output, settings: dict) -> None:
    """Parts exist but OUT may still be empty (the run was killed before its merge): compare the recorded options."""
    recorded_file = _tag.settings_file(output)
    try:
        with open(recorded_file, encoding="utf-8") as handle:
            recorded = json.load(handle)
    except (OSError, ValueError) as error:
        raise ValueError(
            f"{os.fspath(parts_dir(output))!r} holds results of an earlier sharded run of {output!r} whose options "
            f"cannot be read ({error}); pass --overwrite to start afresh"
        ) from error
    _tag.refuse_changed_settings(output, recorded, settings)


def _open_output(path, fmt, fresh):
    return _tag._JsonWriter(path, fresh) if fmt == "json" else _tag._LineWriter(path, fmt, fresh)


def _plan(args, fmt, settings, inputs) -> tuple[list, int]:
    """Process 0: start OUT afresh or find what is done (in OUT and in every part; results of files changed since are
    dropped), and prepare the parts folder. Returns the `(index, path)` pairs to tag and the number done already."""
    if not args.output:
        return list(enumerate(inputs)), 0
    from ..io.atomic import atomic_write_json

    output, folder = args.output, parts_dir(args.output)
    if args.overwrite:
        fresh = True
    elif _has_parts(output):
        if os.path.isdir(output):
            raise ValueError(f"--output {output!r} is a folder; name a file")
        _check_parts_resume(output, settings)
        fresh = False
    else:
        fresh = _tag.check_resume(output, settings, args.overwrite)
    done: set[str] = set()
    if fresh:
        if folder.exists():
            shutil.rmtree(folder)
        _open_output(output, fmt, True).close()  # emptied first, options recorded second (as with one process)
        atomic_write_json(_tag.settings_file(output), settings)
        _tag._StampIndex(output, True).close()
    else:
        changed_count = 0
        sources = [(output, fmt)] + [(part, "jsonl") for part in sorted(folder.glob(PART_GLOB))]
        for path, source_fmt in sources:
            writer = _open_output(path, source_fmt, False)
            stamps = _tag._StampIndex(path, False)
            try:
                changed = stamps.changed(writer.done)
                changed_count += len(changed)
                writer.forget(changed)
                done |= writer.done
            finally:
                writer.close()
                stamps.close()
        if changed_count:
            sys.stderr.write(
                f"{changed_count} image(s) changed since they were tagged (size or modification time): tagging them again\n"
            )
    folder.mkdir(parents=True, exist_ok=True)
    todo = [(index, path) for index, path in enumerate(inputs) if _tag._key(path) not in done]
    return todo, len(inputs) - len(todo)


# ------------------------------------------------------------------------------------------------ merge (process 0)
def _read_json_lines(path: Path) -> list:
    if not path.is_file():
        return []
    lines, _ = _tag._split_records(path.read_bytes(), "jsonl")
    values = []
    for line in lines:
        try:
            values.append(json.loads(line.decode("utf-8", errors="surrogateescape")))
        except ValueError:
            continue
    return values


def _record_path(raw: bytes, fmt: str):
    """The path of any record (finished or error) of a line format, else None (a csv header, garbage)."""
    text = raw.decode("utf-8", errors="surrogateescape")
    if fmt == "jsonl":
        try:
            record = json.loads(text)
        except ValueError:
            return None
        return record.get("path") if isinstance(record, dict) and isinstance(record.get("path"), str) else None
    if fmt == "csv":
        import csv
        import io

        rows = list(csv.reader(io.StringIO(text, newline="")))
        if len(rows) == 1 and rows[0] and rows[0] != _tag.CSV_FIELDS:
            return rows[0][0]
        return None
    path, tab, _ = text.rstrip("\n").partition("\t")
    return _tag.unescape_text(path) if tab else None


def merge_parts(output, fmt, inputs) -> None:
    """Merge the parts of a sharded run and OUT's earlier results into OUT (atomically), then remove the parts.

    OUT keeps its results for inputs not named in this run (first, in their order), then has one record per input in
    input order: its earlier result, else the new one from a part (a finished record before an error record)."""
    from ..io.atomic import atomic_file, atomic_write_text

    folder = parts_dir(output)
    finished, errors, stamps = {}, {}, {}
    for part in sorted(folder.glob(PART_GLOB)):
        for record in _read_json_lines(part):
            if not isinstance(record, dict) or not isinstance(record.get("path"), str):
                continue
            key = _tag._key(record["path"])
            if "error" in record:
                errors[key] = record
            else:
                finished[key] = record
        for entry in _read_json_lines(_tag.stamps_file(part)):
            if isinstance(entry, list) and len(entry) == 2:
                stamps[entry[0]] = entry[1]
    recorded = {}
    for entry in _read_json_lines(_tag.stamps_file(output)):
        if isinstance(entry, list) and len(entry) == 2:
            recorded[entry[0]] = entry[1]

    # OUT's records: (key, whether finished, the record as written)
    if fmt == "json":
        existing = []
        if os.path.isfile(output) and os.path.getsize(output) > 0:
            with open(output, encoding="utf-8", errors="surrogateescape") as handle:
                array = json.load(handle)
            for record in array if isinstance(array, list) else []:
                if isinstance(record, dict) and isinstance(record.get("path"), str):
                    existing.append((_tag._key(record["path"]), "error" not in record, record))
    else:
        data = Path(output).read_bytes() if os.path.isfile(output) else b""
        raws, _ = _tag._split_records(data, fmt)
        existing = []
        for raw in raws:
            path = _record_path(raw, fmt)
            if path is not None:
                existing.append((_tag._key(path), _tag._finished_path(raw, fmt) is not None, raw))

    named = {_tag._key(path) for path in inputs}
    earlier = {}
    merged = [entry for key, _, entry in existing if key not in named]  # results of other runs' inputs, as they were
    for key, is_finished, entry in existing:
        if key in named and is_finished:
            earlier.setdefault(key, entry)
    index_entries = {key: stamp for key, stamp in recorded.items() if key not in named or key in earlier}
    emitted = set()
    for path in inputs:
        key = _tag._key(path)
        if key in emitted:
            continue
        emitted.add(key)
        if key in earlier:
            merged.append(earlier[key])
            continue
        record = finished.get(key) or errors.get(key)
        if record is None:
            continue
        merged.append(record if fmt == "json" else _tag.render_record(record, fmt).encode("utf-8", "surrogateescape"))
        if "error" not in record and key in stamps:
            index_entries[key] = stamps[key]

    # the index first (an entry without its record is harmless), then OUT, then the parts go
    atomic_write_text(
        _tag.stamps_file(output),
        "".join(json.dumps([key, stamp], ensure_ascii=False) + "\n" for key, stamp in index_entries.items()),
    )
    if fmt == "json":
        with atomic_file(output, "w", errors="surrogateescape") as stream:
            json.dump(merged, stream, ensure_ascii=False, indent=1)
            stream.write("\n")
    else:
        with atomic_file(output, "wb", encoding=None) as stream:
            if fmt == "csv":
                import csv
                import io

                header = io.StringIO()
                csv.writer(header, lineterminator="\n").writerow(_tag.CSV_FIELDS)
                stream.write(header.getvalue().encode())
            stream.write(b"".join(merged))
    shutil.rmtree(folder, ignore_errors=True)


# ------------------------------------------------------------------------------------------------ run
class _Collector:
    """Keeps the records of this process (no --output: process 0 prints them all)."""

    def __init__(self):
        self.records: list[dict] = []

    def write(self, record):
        self.records.append(record)

    def flush_batch(self):
        pass


def run_sharded(args, fmt) -> int:
    group = ProcessGroup(args.device)
    lock = None

    def lock_output():
        nonlocal lock
        if group.rank == 0 and args.output:
            if os.path.isdir(args.output):
                raise ValueError(f"--output {args.output!r} is a folder; name a file")
            from ..io.atomic import OutputLock

            lock = OutputLock(args.output).acquire()

    try:
        group.agree(lock_output)
        candidate_labels = group.agree(lambda: _tag._candidate_labels(args))
        tagger, tag_set, read_settings, settings = group.agree(
            lambda: _tag._load_tagger(args, fmt, candidate_labels, device=group.device_for(args.device))
        )
        devices = group.gather(str(tagger.device))
        if group.rank == 0 and group.world > 1:
            sys.stderr.write(f"ramplus tag: {group.world} processes, on {', '.join(devices)}\n")
        inputs = empty_folders = todo = None
        skipped = 0

        def plan():
            nonlocal inputs, empty_folders, todo, skipped
            if group.rank == 0:
                inputs, empty_folders = _tag._collect(args)
                todo, skipped = _plan(args, fmt, settings, inputs)
                if skipped:
                    sys.stderr.write(f"resuming: {skipped} of {len(inputs)} images already have results in {args.output}\n")

        group.agree(plan)
        todo = group.broadcast(todo)
        share = todo[group.rank :: group.world]

        def tag_share():
            if args.output:
                part = parts_dir(args.output) / f"part-{group.rank:05d}.jsonl"
                writer, stamps = _tag._LineWriter(os.fspath(part), "jsonl"), _tag._StampIndex(part, False)
            else:
                writer, stamps = _Collector(), None
            try:
                failures = _tag._tag_inputs(
                    args, share, tagger, tag_set, read_settings, writer, stamps, show_progress=group.rank == 0
                )
            finally:
                if stamps is not None:
                    writer.close()
                    stamps.close()
            # one record per input of the share, in its order
            collected = None if args.output else [(index, record) for (index, _), record in zip(share, writer.records)]
            return failures, collected

        failures, collected = group.agree(tag_share)
        reports = group.gather((failures, collected))

        def finish():
            if group.rank != 0:
                return
            if args.output:
                merge_parts(args.output, fmt, inputs)
            else:
                records = sorted((pair for _, pairs in reports for pair in pairs), key=lambda pair: pair[0])
                writer = _open_output(None, fmt, False)
                for _, record in records:
                    writer.write(record)
                writer.close()

        group.agree(finish)
        total_failures = sum(count for count, _ in reports)
        summary = group.broadcast(
            None if group.rank != 0 else (len(inputs), skipped, bool(empty_folders))
        )
        input_count, skipped, had_empty = summary
        code = 1 if total_failures or had_empty or not input_count else 0
        if group.rank == 0:
            done = len(todo) - total_failures
            processes = f" by {group.world} processes" if group.world > 1 else ""
            sys.stderr.write(
                f"tagged {done} image(s){processes}, {total_failures} failed, {skipped} skipped (already done)\n"
            )
            if not input_count:
                sys.stderr.write("ramplus tag: no images to tag\n")
            if group.world > 1:
                sys.stderr.write(f"ramplus tag: exit code {code}\n")
        return code
    finally:
        if lock is not None:
            lock.release()
