# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""Tagging files over several processes: `accelerate launch --multi_gpu --num_processes N -m transformers_ramplus.cli
tag ...` (or `torchrun --nproc_per_node N -m transformers_ramplus.cli tag ...`).

Every process loads the model once (on its own GPU when there are GPUs: `cuda:LOCAL_RANK`), and tags its share of the
images that have no result yet (shared round-robin, in input order). With an output OUT:

* each process appends its records (jsonl) to its own part, `.OUT.ramplus-tag.parts/part-RANK.jsonl`, with a
  `[path, size/mtime]` index beside it, under the same rules as a single-process output (flushed per record, a record
  cut short by a kill dropped and redone);
* after all processes are done, process 0 merges the parts and the earlier results of OUT into OUT (written
  atomically, in input order: results of inputs not named in this run first, as they were), records the size and
  modification time of every tagged file in OUT's index, and removes the parts;
* a rerun (with any number of processes, one included) resumes: images with a result in OUT or in a part are not
  tagged again, unless their file changed since. A part left by a killed run makes even a plain run take this path
  (with one process), so that the parts are merged and nothing is redone.

Without an output, process 0 gathers the records and prints them in input order.

Process 0 holds OUT's lock; options are checked and recorded by it, and a failure of any process (bad options, an
unreadable model, a bug) stops all of them with the same message. Unreadable images are error records, as with one
process.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist

from ..io.atomic import OutputLock, atomic_file, atomic_write_json, atomic_write_text, sidecar_path
from ..io.inputs import input_key
from ..io.records import (
    CSV_HEADER,
    LineWriter,
    RecordCollector,
    finished_path,
    open_writer,
    record_path,
    render_record,
    split_records,
    write_json_records,
)
from ..io.resume import StampIndex, check_resume, read_json_lines, refuse_changed_settings, settings_file, stamps_file
from ..pipelines.zero_shot_image_tagging import resolve_device
from .tag_files import (
    TagFilesOptions,
    TagFilesSummary,
    candidate_labels,
    collect,
    load_file_tagger,
    prepare,
    refuse_output_inputs,
    resolve_run_output,
    tag_into,
)


logger = logging.getLogger(__name__)

PART_GLOB = "part-*.jsonl"
# a process that finishes its share early waits this long for the others at the merge (shares can take hours)
BARRIER_TIMEOUT = timedelta(days=7)


def parts_dir(output) -> Path:
    """The folder next to `output` where each process of a sharded run writes its part."""
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


def sharded_run(output=None) -> bool:
    """Whether a run writing `output` runs sharded: under a launcher with several processes, or when `output` has
    the parts of a sharded run that did not finish (they are merged, whatever the number of processes now)."""
    return world_size() > 1 or bool(output and _has_parts(output))


# ------------------------------------------------------------------------------------------------ processes
class ProcessGroup:
    """Rank, world size and device of this process, and the few collectives a sharded run needs. One process: no
    torch.distributed at all.

    The processes only exchange a few small Python objects (the work list, counts, failures), so they talk over gloo
    whatever the devices: NCCL would bring nothing here and refuses two processes on one GPU. Each process computes on
    the GPU of its local rank (modulo the GPUs there are) when there are GPUs, as accelerate places them."""

    def __init__(self):
        self.rank, self.world, self.local_rank = 0, 1, 0
        if world_size() == 1:
            return
        if not dist.is_initialized():
            dist.init_process_group("gloo", timeout=BARRIER_TIMEOUT)
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        self.local_rank = int(os.environ.get("LOCAL_RANK", self.rank))

    def device_for(self, requested):
        """The device of this process: the one asked for with one process; with several, each on the GPU of its
        local rank (no device, or `cuda`) unless the device asked for names one (`cpu`, `cuda:1`)."""
        if self.world == 1:
            return requested
        device = resolve_device(None if requested in (None, "cuda") else requested, rank=self.local_rank)
        if device.type == "cuda":
            torch.cuda.set_device(device)
        return str(device)

    def gather(self, value) -> list:
        """`value` of every process, in rank order, on every process."""
        if self.world == 1:
            return [value]
        values = [None] * self.world
        dist.all_gather_object(values, value)
        return values

    def broadcast(self, value):
        """Process 0's `value`, on every process."""
        if self.world == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def agree(self, step):
        """Run `step()` here; every process learns whether it failed anywhere, and a failure anywhere is raised
        everywhere (a user error as ValueError; anything else as RuntimeError), so that no process waits forever for
        one that stopped."""
        result, failure = None, None
        try:
            result = step()
        except Exception as error:  # noqa: BLE001  (re-raised below, after the others know)
            failure = error
        statuses = [None]
        if self.world > 1:
            status = None
            if failure is not None:
                status = (isinstance(failure, (ValueError, TypeError, OSError)), f"{type(failure).__name__}: {failure}")
            statuses = self.gather(status)
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
    recorded_file = settings_file(output)
    try:
        with open(recorded_file, encoding="utf-8") as handle:
            recorded = json.load(handle)
    except (OSError, ValueError) as error:
        raise ValueError(
            f"{os.fspath(parts_dir(output))!r} holds results of an earlier sharded run of {output!r} whose options "
            f"cannot be read ({error}); pass --overwrite to start afresh"
        ) from error
    refuse_changed_settings(output, recorded, settings)


def _plan(options: TagFilesOptions, fmt, settings, inputs, report) -> tuple[list, int]:
    """Process 0: start OUT afresh or find what is done (in OUT and in every part; results of files changed since are
    dropped), and prepare the parts folder. Returns the `(index, path)` pairs to tag and the number done already."""
    output = options.output
    if not output:
        return list(enumerate(inputs)), 0
    folder = parts_dir(output)
    if options.overwrite:
        fresh = True
    elif _has_parts(output):
        if os.path.isdir(output):
            raise ValueError(f"--output {output!r} is a folder; name a file")
        _check_parts_resume(output, settings)
        fresh = False
    else:
        fresh = check_resume(output, settings, options.overwrite)
    done: set[str] = set()
    if fresh:
        if folder.exists():
            shutil.rmtree(folder)
        open_writer(output, fmt, True).close()  # emptied first, options recorded second (as with one process)
        atomic_write_json(settings_file(output), settings)
        StampIndex(output, True).close()
    else:
        changed_count = 0
        sources = [(output, fmt)] + [(part, "jsonl") for part in sorted(folder.glob(PART_GLOB))]
        for path, source_fmt in sources:
            writer = open_writer(path, source_fmt, False, report=report)
            stamps = StampIndex(path, False)
            try:
                changed = stamps.changed(writer.done)
                changed_count += len(changed)
                writer.forget(changed)
                done |= writer.done
            finally:
                writer.close()
                stamps.close()
        if changed_count:
            report(f"{changed_count} image(s) changed since they were tagged (size or modification time): tagging them again")
    folder.mkdir(parents=True, exist_ok=True)
    todo = [(index, path) for index, path in enumerate(inputs) if input_key(path) not in done]
    return todo, len(inputs) - len(todo)


# ------------------------------------------------------------------------------------------------ merge (process 0)
def _stamp_entries(path) -> dict:
    return {entry[0]: entry[1] for entry in read_json_lines(path) if isinstance(entry, list) and len(entry) == 2}


def _existing_records(output, fmt) -> list:
    """OUT's records as `(key, whether finished, the record as written)`."""
    existing = []
    if fmt == "json":
        if os.path.isfile(output) and os.path.getsize(output) > 0:
            with open(output, encoding="utf-8", errors="surrogateescape") as handle:
                array = json.load(handle)
            for record in array if isinstance(array, list) else []:
                if isinstance(record, dict) and isinstance(record.get("path"), str):
                    existing.append((input_key(record["path"]), "error" not in record, record))
        return existing
    data = Path(output).read_bytes() if os.path.isfile(output) else b""
    raws, _ = split_records(data, fmt)
    for raw in raws:
        path = record_path(raw, fmt)
        if path is not None:
            existing.append((input_key(path), finished_path(raw, fmt) is not None, raw))
    return existing


def merge_parts(output, fmt, inputs) -> None:
    """Merge the parts of a sharded run and OUT's earlier results into OUT (atomically), then remove the parts.

    OUT keeps its results for inputs not named in this run (first, in their order), then has one record per input in
    input order: its earlier result, else the new one from a part (a finished record before an error record)."""
    folder = parts_dir(output)
    finished, errors, stamps = {}, {}, {}
    for part in sorted(folder.glob(PART_GLOB)):
        for record in read_json_lines(part):
            if not isinstance(record, dict) or not isinstance(record.get("path"), str):
                continue
            key = input_key(record["path"])
            (errors if "error" in record else finished)[key] = record
        stamps.update(_stamp_entries(stamps_file(part)))
    recorded = _stamp_entries(stamps_file(output))
    existing = _existing_records(output, fmt)

    named = {input_key(path) for path in inputs}
    earlier = {}
    merged = [entry for key, _, entry in existing if key not in named]  # results of other runs' inputs, as they were
    for key, is_finished, entry in existing:
        if key in named and is_finished:
            earlier.setdefault(key, entry)
    index_entries = {key: stamp for key, stamp in recorded.items() if key not in named or key in earlier}
    emitted = set()
    for path in inputs:
        key = input_key(path)
        if key in emitted:
            continue
        emitted.add(key)
        if key in earlier:
            merged.append(earlier[key])
            continue
        record = finished.get(key) or errors.get(key)
        if record is None:
            continue
        merged.append(record if fmt == "json" else render_record(record, fmt).encode("utf-8", "surrogateescape"))
        if "error" not in record and key in stamps:
            index_entries[key] = stamps[key]

    # the index first (an entry without its record is harmless), then OUT, then the parts go
    atomic_write_text(
        stamps_file(output),
        "".join(json.dumps([key, stamp], ensure_ascii=False) + "\n" for key, stamp in index_entries.items()),
    )
    if fmt == "json":
        write_json_records(output, merged)
    else:
        with atomic_file(output, "wb", encoding=None) as stream:
            if fmt == "csv":
                stream.write(CSV_HEADER.encode())
            stream.write(b"".join(merged))
    shutil.rmtree(folder, ignore_errors=True)


# ------------------------------------------------------------------------------------------------ run
def tag_files_sharded(options: TagFilesOptions, report=logger.warning) -> TagFilesSummary:
    """Tag the inputs of `options` with this process's share (see the module docstring). Every process returns the
    run's summary; messages are reported by process 0."""
    group = ProcessGroup()
    lock = None
    say = report if group.rank == 0 else (lambda message: None)
    options, stream = resolve_run_output(options)  # a link is written through
    if stream not in (None, "-"):
        raise ValueError(f"--output {stream!r} is not a regular file: a sharded run writes a stream only to stdout (-o -)")

    def check():
        nonlocal lock
        fmt = prepare(options)
        if options.heatmaps is not None:
            raise ValueError(
                "--heatmaps runs in one process only (not under accelerate launch/torchrun): tag with --heatmaps "
                "without the launcher"
            )
        if options.write_keywords or options.write_captions:
            raise ValueError(
                "--write-keywords and --write-captions run in one process only (not under accelerate launch/torchrun)"
            )
        if group.rank == 0 and options.output:
            refuse_output_inputs(options)
            lock = OutputLock(options.output).acquire()
        return fmt

    try:
        fmt = group.agree(check)
        labels = group.agree(lambda: candidate_labels(options))
        tagger = group.agree(lambda: load_file_tagger(options, fmt, labels, device=group.device_for(options.device)))
        devices = group.gather(str(tagger.pipeline.device))
        if group.world > 1:
            say(f"ramplus tag: {group.world} processes, on {', '.join(devices)}")
        inputs = empty_folders = todo = None
        skipped = 0

        def plan():
            nonlocal inputs, empty_folders, todo, skipped
            if group.rank == 0:
                inputs, empty_folders = collect(options, say)
                todo, skipped = _plan(options, fmt, tagger.settings, inputs, say)
                if skipped:
                    say(f"resuming: {skipped} of {len(inputs)} images already have results in {options.output}")

        group.agree(plan)
        todo = group.broadcast(todo)
        share = todo[group.rank :: group.world]

        def tag_share():
            if options.output:
                part = parts_dir(options.output) / f"part-{group.rank:05d}.jsonl"
                writer, stamps = LineWriter(os.fspath(part), "jsonl", report=report), StampIndex(part, False)
            else:
                writer, stamps = RecordCollector(), None
            try:
                failures = tag_into(options, share, tagger, writer, stamps, options.progress and group.rank == 0, report=report)
            finally:
                writer.close()
                if stamps is not None:
                    stamps.close()
            # one record per input of the share, in its order
            collected = None if options.output else [(index, record) for (index, _), record in zip(share, writer.records)]
            return failures, collected

        failures, collected = group.agree(tag_share)
        reports = group.gather((failures, collected))

        def finish():
            if group.rank != 0:
                return
            if options.output:
                merge_parts(options.output, fmt, inputs)
            else:
                writer = open_writer(None, fmt)
                for _, record in sorted((pair for _, pairs in reports for pair in pairs), key=lambda pair: pair[0]):
                    writer.write(record)
                writer.close()

        group.agree(finish)
        total_failures = sum(count for count, _ in reports)
        input_count, skipped, empty_folders, todo_count = group.broadcast(
            None if group.rank != 0 else (len(inputs), skipped, list(empty_folders), len(todo))
        )
        return TagFilesSummary(
            input_count, todo_count - total_failures, total_failures, skipped, empty_folders, group.world, group.rank
        )
    finally:
        if lock is not None:
            lock.release()


__all__ = ["PART_GLOB", "ProcessGroup", "merge_parts", "parts_dir", "sharded_run", "tag_files_sharded", "world_size"]
