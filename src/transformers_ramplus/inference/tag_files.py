# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""Tagging image files, folders and URLs into one results file that survives kills (`ramplus tag`).

Results are written as they come (jsonl/csv/text: one record appended and flushed per image; json: the whole file
rewritten atomically after every batch), so an interrupted run loses nothing done; rerunning with the same output
skips the images that already have a result (unless the file's size or modification time changed since, recorded in
`.NAME.ramplus-tag.index`), and a record cut short by a crash is dropped and redone. The options that determine the
results (model, tags, thresholds, top-k, language, format...) are recorded next to the output
(`.NAME.ramplus-tag.json`); a rerun with other options is refused unless `overwrite`. A lock file (`.NAME.lock`)
stops a second run on the same output. Unreadable inputs are error records; the others are tagged.

`tag_files` runs in one process; `transformers_ramplus.inference.sharding.tag_files_sharded` shares the inputs out
over the processes of `accelerate launch`/`torchrun`. Both tag through `inference.tagging.tag_batches`.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
from dataclasses import dataclass, field, replace

from tqdm.auto import tqdm

from ..hub import DEFAULT_MODEL
from ..io.atomic import OutputLock, atomic_write_json
from ..io.dicom import validate_window
from ..io.fingerprints import file_stamp, model_fingerprint, tag_set_digest
from ..io.inputs import collect_inputs, input_key
from ..io.outputs import refuse_file_over_inputs, resolve_output
from ..io.records import infer_format, open_writer
from ..io.resume import StampIndex, check_resume, settings_file
from ..models.ram_plus.image_processing_ram_plus import load_image
from ..models.tag2text.processing_tag2text import decode_captions
from ..tags.descriptions import load_descriptions, select_descriptions
from ..tags.files import read_tag_list
from ..tags.tag_map import TagMap
from ..tags.tag_set import TagSet
from .heatmaps import HeatmapWriter, check_heatmap_options, parse_heatmap_tags, without_heatmaps
from .photo_outputs import PhotoOutputError, photo_outputs_from, raw_file_note, without_side_files
from .precision import applied_precision
from .tagging import check_options, load_tagger, tag_batches


logger = logging.getLogger(__name__)

# what the options are called on the command line, in messages
OPTION_NAMES = {"threshold": "--threshold", "top_k": "--top-k", "precision": "--precision", "batch_size": "--batch-size"}


@dataclass
class TagFilesOptions:
    """What a `ramplus tag` run is asked to do (the fields are its options, by the same names)."""

    paths: list[str]
    model: str | None = None  # None: $RAMPLUS_MODEL, else the authors' release
    revision: str | None = None
    original_file: str | None = None  # a Hub id holding several checkpoints: the one to load (e.g. Tag2Text's)
    output: str | None = None  # None: records to stdout (no resume)
    format: str | None = None  # None: from the output's extension, else text
    overwrite: bool = False
    recursive: bool = False
    extensions: str | None = None
    labels: list[str] | None = None
    labels_file: str | None = None
    descriptions: str | None = None
    descriptions_file: str | None = None
    descriptions_revision: str | None = None
    descriptions_repo_type: str = "dataset"
    name_templates: str | None = None
    tag_set: str | None = None
    threshold: float | None = None
    top_k: int | None = None
    language: str = "en"
    batch_size: int = 8
    timeout: float | None = None
    max_image_pixels: int | None = None
    exif_orientation: bool | None = None  # None: the image processor's setting (on unless its config turns it off)
    fast_decode: bool | None = None  # None: the image processor's setting (off unless its config turns it on)
    fast_resize: bool | None = None  # None: the image processor's setting (off unless its config turns it on)
    read_processes: int = 0  # > 0: images are read in that many processes (see tag_batches), else in threads
    window: str | None = None
    device: str | None = None
    precision: str | None = "auto"  # see transformers_ramplus.inference.precision
    heatmaps: str | None = None
    heatmap_tags: str | None = None
    captions: bool = False  # also write each image's caption (captioning models: Tag2Text)
    tag_map: str | None = None  # a YAML/JSON tag map file (transformers_ramplus.tags.tag_map)
    write_keywords: str | None = None  # "xmp-sidecar" or "embedded" (transformers_ramplus.io.keywords)
    xmp_sidecar_name: str = "full"  # IMG_1.JPG.xmp ("full") or IMG_1.xmp ("stem")
    keyword_parent: str = "ramplus"
    keyword_scores: bool = False
    write_captions: str | None = None  # "txt" (transformers_ramplus.inference.caption_files)
    caption_prefix: str | None = None
    caption_extension: str = ".txt"
    caption_spacing: str = "spaces"
    max_tags: int | None = None
    dry_run: bool = False
    progress: bool = True


@dataclass
class TagFilesSummary:
    """What a run did: inputs found, images tagged and failed, images skipped (done before), folders without inputs."""

    inputs: int = 0
    tagged: int = 0
    failed: int = 0
    skipped: int = 0
    empty_folders: list[str] = field(default_factory=list)
    processes: int = 1
    rank: int = 0

    @property
    def complete(self) -> bool:
        """Every input tagged (none failed, no folder was empty, there was something to tag)."""
        return self.inputs > 0 and not self.failed and not self.empty_folders


# ------------------------------------------------------------------------------------------------ checks
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


def prepare(options: TagFilesOptions) -> str:
    """Check `options` before any model loads (and fill in the default model); the output format."""
    if not options.model:
        options.model = os.environ.get("RAMPLUS_MODEL") or DEFAULT_MODEL
    check_options(
        options.threshold, options.top_k, options.language, options.precision, options.batch_size, names=OPTION_NAMES
    )
    if options.timeout is not None and not options.timeout > 0:
        raise ValueError(f"--timeout must be a positive number of seconds, got {options.timeout}")
    if options.max_image_pixels is not None and options.max_image_pixels <= 0:
        raise ValueError(f"--max-image-pixels must be positive, got {options.max_image_pixels}")
    model = options.model
    first = model.split("/")[0]
    if model.count("/") == 1 and first not in ("", ".", "..", "~") and os.path.isdir(first) and not os.path.exists(model):
        # `models/ram` next to a folder `models/`: a mistyped path, not a Hub id to look up
        raise ValueError(f"--model {model!r}: no such directory (the folder {first!r} exists)")
    if options.tag_set:
        _check_local_path("--tag-set", options.tag_set)
    check_heatmap_options(options.heatmaps, options.heatmap_tags)
    processes = options.read_processes
    if isinstance(processes, bool) or not isinstance(processes, int) or processes < 0:
        raise ValueError(f"--read-processes must be 0 (threads) or a positive number, got {processes!r}")
    if processes and (options.captions or options.heatmaps):
        raise ValueError("--read-processes cannot be combined with --captions or --heatmaps (they draw on the images as read)")
    if options.tag_map:
        TagMap.load(options.tag_map)  # a bad file is reported before the model loads
    if options.dry_run and (options.output or options.heatmaps):
        raise ValueError("--dry-run writes nothing: leave out --output and --heatmaps (the records go to stdout)")
    photo_outputs_from(options)  # checks the keyword and caption options (and finds exiftool)
    return infer_format(options.output, options.format)


def resolve_run_output(options: TagFilesOptions) -> tuple[TagFilesOptions, str | None]:
    """The options of a run with its output resolved (`io.outputs.resolve_output`), and the stream to write into
    (or None). A link is followed (the file it points to is written, the link stays; a dangling link's target is
    created); `-`, a device (`/dev/stdout`) or a FIFO is a stream: records are written into it in order, and there
    is no resume, no lock and no state file next to it. The user's `options` are not changed."""
    if not options.output:
        return options, None
    resolved = resolve_output(options.output)
    if resolved.is_stream:
        return replace(options, output=None), resolved.path
    return replace(options, output=resolved.path), None


def refuse_output_inputs(options: TagFilesOptions) -> None:
    """The output file must not be an input named on the command line, nor an existing file that a folder scan
    would take as an input and that `ramplus tag` did not write (a photo named as `--output`)."""
    if not options.output:
        return
    refuse_file_over_inputs(options.output, options.paths)
    if os.path.isfile(options.output) and not settings_file(options.output).exists():
        others = collect_inputs(options.paths, recursive=options.recursive, extensions=options.extensions)
        if input_key(options.output) in {input_key(p) for p in others}:
            raise ValueError(
                f"--output {options.output!r} is also an input (a file in a folder being tagged) that `ramplus tag` did "
                "not write; writing it would destroy it. Choose another output"
            )


def candidate_labels(options: TagFilesOptions):
    """The tags to tag with: None (built-in), names, `{tag: descriptions}` or a `TagSet`."""
    labels = list(options.labels or [])
    if options.labels_file:
        labels += read_tag_list(options.labels_file, "labels", comments=True)
    labels = list(dict.fromkeys(labels))
    if options.tag_set:
        if labels or options.descriptions or options.name_templates:
            raise ValueError("--tag-set cannot be combined with --labels, --labels-file, --descriptions or --name-templates")
        return TagSet.from_pretrained(options.tag_set)
    if (options.descriptions_file or options.descriptions_revision) and not options.descriptions:
        raise ValueError("--descriptions-file and --descriptions-revision need --descriptions")
    if options.descriptions:
        descriptions = load_descriptions(
            options.descriptions,
            options.descriptions_file,
            repo_type=options.descriptions_repo_type,
            revision=options.descriptions_revision,
        )
        return select_descriptions(descriptions, labels or None, origin=options.descriptions)
    return labels or None


def collect(options: TagFilesOptions, report=logger.warning) -> tuple[list[str], list[str]]:
    """The inputs of a run (its output and heatmap PNGs left out), and the folders that held none (reported)."""
    empty_folders: list[str] = []
    inputs = collect_inputs(
        options.paths,
        recursive=options.recursive,
        extensions=options.extensions,
        exclude=options.output,
        empty_folders=empty_folders,
    )
    inputs = without_heatmaps(options.heatmaps, inputs)
    inputs = without_side_files(options, inputs)  # XMP sidecars and caption files are not images
    for folder in empty_folders:
        report(f"ramplus tag: no image files in folder {folder!r}")
    return inputs, empty_folders


# ------------------------------------------------------------------------------------------------ the tagger
@dataclass
class FileTagger:
    """The pipeline and tag set of a run, how it reads files, and (with an output) the options it records."""

    pipeline: object
    tag_set: object
    read_settings: dict
    settings: dict | None
    tag_map: TagMap | None = None
    fast_resize: bool = False  # torch's resize instead of PIL's (the image processor's `fast_resize`)

    def read(self, path, index):
        return load_image(path, index=index, **self.read_settings)

    def reader(self):
        """`read` as a function that pickles (for reading processes)."""
        return functools.partial(load_image, **self.read_settings)


def load_file_tagger(options: TagFilesOptions, fmt: str, labels, device=None, report=logger.warning) -> FileTagger:
    """Load the model once and build the tag set (all text work happens here, once). `device` overrides the
    options' (each process of a sharded run computes on its own). Names of the tag map that the tag set lacks are
    reported."""
    tagger, model = load_tagger(
        options.model, device=options.device if device is None else device, precision=options.precision,
        revision=options.revision, original_file=options.original_file,
    )
    if options.captions and getattr(tagger.model.config, "model_type", None) != "tag2text":
        raise ValueError(
            f"--captions needs a captioning model (Tag2Text); {options.model!r} is a "
            f"{getattr(tagger.model.config, 'model_type', 'tagging')} model, which only tags"
        )
    tag_set = tagger.get_tag_set(labels, templates=options.name_templates)
    tag_map = TagMap.load(options.tag_map) if options.tag_map else None
    if tag_map is not None:
        tag_map.warn_unknown(tag_set.labels(options.language), report=report)
    processor = tagger.image_processor
    exif = options.exif_orientation
    if exif is None:
        exif = bool(getattr(processor, "apply_exif_orientation", True))
    max_pixels = options.max_image_pixels if options.max_image_pixels is not None else getattr(processor, "max_image_pixels", None)
    read_settings = {"apply_exif_orientation": exif, "max_image_pixels": max_pixels}
    if options.timeout is not None or getattr(processor, "timeout", None) is not None:
        read_settings["timeout"] = options.timeout if options.timeout is not None else processor.timeout
    window = validate_window(options.window) or getattr(processor, "dicom_window", None)
    frame = getattr(processor, "dicom_frame", None)
    read_settings.update(dicom_window=window, dicom_frame=frame)
    fast = options.fast_decode if options.fast_decode is not None else bool(getattr(processor, "fast_decode", False))
    draft = processor.draft_size() if fast and callable(getattr(processor, "draft_size", None)) else None
    if draft is not None:
        read_settings["draft_size"] = draft
    fast_resize = options.fast_resize if options.fast_resize is not None else bool(getattr(processor, "fast_resize", False))
    settings = None
    if options.output:
        name = options.model
        settings = {
            "format": fmt,
            "model": os.path.realpath(name) if os.path.isdir(name) else name,
            "model_fingerprint": model_fingerprint(model, tagger.model.config, exclude=[options.output]),
            "tags": tag_set_digest(tag_set),
            "threshold": options.threshold,
            "top_k": options.top_k,
            "language": options.language,
            "exif": exif,
            "max_image_pixels": max_pixels,
            "dicom": [None if window is None else [float(v) for v in window], frame],
            # scores differ with the precision: the one applied ("auto" resolves per machine)
            "precision": applied_precision(tagger.model) or str(tagger.model.dtype).replace("torch.", ""),
            # None when unused, so that outputs written before these options existed still resume
            "tag_map": None if tag_map is None else tag_map.digest(),
        }
        photo = photo_outputs_from(options)
        settings.update(photo.settings() if photo is not None else {"keywords": None, "captions": None})
        if photo is not None:
            photo.close()
        if options.captions:  # only then: outputs of earlier runs (without the key) still resume
            settings["generated_captions"] = True
        if draft is not None:  # reduced JPEG decoding gives other scores: recorded (only when on, as above)
            settings["fast_decode"] = list(draft)
        if fast_resize:  # torch's resize: pixels within 1 of PIL's, other scores (recorded only when on, as above)
            settings["fast_resize"] = True
    return FileTagger(tagger, tag_set, read_settings, settings, tag_map, fast_resize)


def tag_into(
    options, todo, tagger: FileTagger, writer, stamps=None, progress=True, after_batch=None, report=logger.warning,
    prefetch: bool = True, photo_outputs=None,
) -> int:
    """Tag `todo` (`(index, path)` pairs) batch by batch into `writer`: records in input order, unreadable images as
    error records (reported); the number of failures. With `stamps`, the size and modification time of each tagged
    file (taken before it is read) is recorded after its record is written. `after_batch(paths, images, results)`
    sees each batch's readable images and their tags before their records are written; `photo_outputs` (a
    `PhotoOutputs`) then writes each image's keywords and caption file: one that cannot be written makes the image's
    record an error record. `prefetch`: the next batch is read and resized in a reader thread while the model tags
    this one (see `tag_batches`)."""
    stamped: dict[int, object] = {}

    def stamp(position):  # before the file is read: a later change is seen
        index, path = todo[position]
        stamped[index] = file_stamp(path)

    keep_images = bool(options.captions) or after_batch is not None  # else the photos' memory is freed early
    processes = options.read_processes

    failures = 0
    # disable=None: no bar when stderr is not a terminal (a log file gets the messages and the summary line only)
    bar = tqdm(total=len(todo), desc="tagging", unit="img", disable=None if progress else True)
    try:
        batches = tag_batches(
            tagger.pipeline,
            [path for _, path in todo],
            tag_set=tagger.tag_set,
            threshold=options.threshold,
            top_k=options.top_k,
            language=options.language,
            batch_size=options.batch_size,
            read=tagger.reader() if processes else tagger.read,
            indices=[index for index, _ in todo],
            prefetch=prefetch,
            tag_map=tagger.tag_map,
            keep_images=keep_images,
            read_processes=processes,
            before_read=stamp,
            fast_resize=tagger.fast_resize,
        )
        for batch in batches:
            paths = [todo[tagged.index][1] for tagged in batch]
            for tagged, path in zip(batch, paths):
                if tagged.error is not None:
                    failures += 1
                    report(f"ramplus tag: skipped {tagged.error}{raw_file_note(path)}")
            done = [(tagged, path) for tagged, path in zip(batch, paths) if tagged.error is None]
            captions = {}
            if options.captions and done:
                texts = caption_images(tagger.pipeline, [t.image for t, _ in done], [t.result for t, _ in done])
                captions = {id(t): text for (t, _), text in zip(done, texts)}
            if after_batch is not None and done:  # e.g. heatmaps: before the records, so every record has its PNG
                after_batch([path for _, path in done], [t.image for t, _ in done], [t.result for t, _ in done])
            if photo_outputs is not None:  # keywords and captions before the records: a record means they are written
                for tagged, path in done:
                    try:
                        record = {"path": path, "tags": tagged.result}
                        if id(tagged) in captions:  # a caption file starts with the caption
                            record["caption"] = captions[id(tagged)]
                        photo_outputs.write(path, record)
                        stamped[todo[tagged.index][0]] = file_stamp(path)  # embedded keywords change the file's size
                    except PhotoOutputError as error:
                        tagged.error = str(error)
                        failures += 1
                        report(f"ramplus tag: {error}")
                done = [(tagged, path) for tagged, path in done if tagged.error is None]
            for tagged, path in zip(batch, paths):  # in input order
                if tagged.error:
                    writer.write({"path": path, "error": tagged.error})
                elif id(tagged) in captions:
                    writer.write({"path": path, "tags": tagged.result, "caption": captions[id(tagged)]})
                else:
                    writer.write({"path": path, "tags": tagged.result})
                bar.update(1)
            writer.flush_batch()
            if stamps is not None:  # after the records are on disk: a kill in between only redoes them
                stamps.add((input_key(path), stamped[todo[t.index][0]]) for t, path in done)
    finally:
        bar.close()
    return failures


def caption_images(pipeline, images, results) -> list[str]:
    """Captions of `images` by the pipeline's captioning model (Tag2Text), each written from the tags of its result
    (in vocabulary order, as the authors join them), so the caption follows the options that chose the tags."""
    model = pipeline.model
    pixel_values = pipeline.image_processor(images, return_tensors="pt")["pixel_values"].to(model.device)
    order = model.config.label2id
    tags = [" | ".join(sorted((t["label"] for t in result), key=lambda name: order.get(name, -1))) for result in results]
    tokenizer = getattr(pipeline, "tokenizer", None)
    sequences = model.generate(pixel_values=pixel_values, tags=tags, tokenizer=tokenizer)
    if tokenizer is None:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model.config.name_or_path)
    return decode_captions(tokenizer, sequences, model.config.text_config.prompt)


# ------------------------------------------------------------------------------------------------ one process
def tag_files(options: TagFilesOptions, report=logger.warning) -> TagFilesSummary:
    """Tag the inputs of `options` in this process into its output (locked while the run lasts), resuming what an
    earlier run with the same options did. Messages (unreadable inputs, resumed results) go to `report`."""
    fmt = prepare(options)
    options, stream = resolve_run_output(options)
    refuse_output_inputs(options)
    lock = None
    if options.output:
        lock = OutputLock(options.output).acquire()
    try:
        return _tag_files_locked(options, fmt, report, stream)
    except OSError as error:
        if error.errno not in (errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)):
            raise
        where = options.output or "the output"
        raise OSError(
            error.errno,
            f"cannot write {where!r}: {error.strerror} (the disk is full or a file-size limit is set); the results "
            "written so far are kept: free space and run the same command again to resume",
        ) from error
    finally:
        if lock is not None:
            lock.release()


def _tag_files_locked(options: TagFilesOptions, fmt: str, report, stream=None) -> TagFilesSummary:
    labels = candidate_labels(options)
    inputs, empty_folders = collect(options, report)
    tagger = load_file_tagger(options, fmt, labels, report=report)
    output = options.output
    fresh = check_resume(output, tagger.settings, options.overwrite) if output else True
    # a fresh output is emptied first and its options recorded second: a kill in between leaves an empty output
    writer = open_writer(output, fmt, fresh, report=report, stream=stream)
    if output and fresh:
        atomic_write_json(settings_file(output), tagger.settings)
    stamps = StampIndex(output, fresh) if output else None
    heatmaps = None
    if options.heatmaps is not None:
        heatmaps = HeatmapWriter(
            options.heatmaps, parse_heatmap_tags(options.heatmap_tags), tagger.pipeline, tagger.tag_set,
            options.language, tagger.settings, report=report,
        )
    if stamps is not None:
        changed = stamps.changed(writer.done)
        if changed:
            report(f"{len(changed)} image(s) changed since they were tagged (size or modification time): tagging them again")
            writer.forget(changed)
    if heatmaps is not None:  # results without their PNG are redone
        heatmaps.forget_missing(writer)
    todo = [(index, path) for index, path in enumerate(inputs) if input_key(path) not in writer.done]
    if getattr(writer, "failed", None):  # one record per input: old error records of inputs tried again (or done) go
        writer.drop_errors({input_key(path) for _, path in todo} | writer.done)
    skipped = len(inputs) - len(todo)
    if skipped:
        report(f"resuming: {skipped} of {len(inputs)} images already have results in {output}")
    photo_outputs = photo_outputs_from(options, report)
    try:
        after_batch = heatmaps.write if heatmaps is not None else None
        failures = tag_into(options, todo, tagger, writer, stamps, options.progress, after_batch, report, photo_outputs=photo_outputs)
    finally:
        writer.close()
        if stamps is not None:
            stamps.close()
        if photo_outputs is not None:
            photo_outputs.close()
            report(photo_outputs.summary())
    return TagFilesSummary(len(inputs), len(todo) - failures, failures, skipped, empty_folders)


__all__ = [
    "FileTagger",
    "TagFilesOptions",
    "TagFilesSummary",
    "candidate_labels",
    "collect",
    "load_file_tagger",
    "prepare",
    "refuse_output_inputs",
    "resolve_run_output",
    "tag_files",
    "tag_into",
]
