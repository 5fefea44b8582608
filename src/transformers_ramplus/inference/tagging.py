# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""The package's one tagging loop: every tagging entry point (`ramplus tag`, sharded or not, `tag_dataset`,
`score_images` and `ramplus evaluate`) loads its tagger with `load_tagger` and tags through `tag_batches`, which
reads each input (an unreadable one is that input's error, the others are tagged) and runs the readable ones of a
batch through the `zero-shot-image-tagging` pipeline: one forward pass and the pipeline's post-processing (tags, or
every tag's score with `raw_scores=True`)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from transformers import pipeline

from ..hub import reading, resolve_model_name
from ..models.ram_plus.image_processing_ram_plus import load_image
from ..models.remote_code import TASK
from ..pipelines.zero_shot_image_tagging import check_tagging_options, resolve_device
from .precision import PRECISION_CHOICES


# what reading an input may raise for that input alone (the loaders name the input and its position)
READ_ERRORS = (OSError, ValueError, TypeError)
ON_ERROR = ("record", "skip", "raise")


@dataclass
class TaggedImage:
    """One input of a batch: its position, the image read (None when it could not be read) and its result (the
    pipeline's tags, or with `raw_scores` every tag's score) or why it could not be read."""

    index: int
    image: Any = None
    result: Any = None
    error: str | None = None
    model_input: Any = None  # what the pipeline is given (the image, or its resized copy); not kept after tagging


def check_options(threshold=None, top_k=None, language="en", precision=None, batch_size=8, on_error="record", names=None):
    """The options of a tagging entry point, checked before any model loads: `(threshold, top_k, language)` as the
    pipeline takes them (see `check_tagging_options`). `names` maps an option to what the caller calls it (e.g.
    `{"batch_size": "--batch-size"}`), for the messages."""
    names = names or {}
    if precision is not None and precision not in PRECISION_CHOICES:
        raise ValueError(
            f"`{names.get('precision', 'precision')}` must be one of {', '.join(map(repr, PRECISION_CHOICES))}, got {precision!r}"
        )
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"`{names.get('batch_size', 'batch_size')}` must be a positive integer, got {batch_size!r}")
    if on_error not in ON_ERROR:
        raise ValueError(f"`on_error` must be one of {ON_ERROR}, got {on_error!r}")
    return check_tagging_options(threshold, top_k, language, names)


def load_tagger(
    model, device=None, rank=None, precision=None, revision=None, processor=None, original_file=None, **pipeline_kwargs
):
    """`(pipeline, model)`: the `zero-shot-image-tagging` pipeline of `model` (a folder, a Hub id of a converted or
    an original checkpoint, or a loaded model) on `resolve_device(device, rank)`, and the folder or id it was loaded
    from (`model` itself for a model object). `processor`: a `RamPlusProcessor` or image processor to use instead of
    the model's. `original_file`: the checkpoint of a Hub repository holding several (e.g. `tag2text_swin_14m.pth` in
    `xinyu1205/recognize_anything_model`)."""
    options = dict(pipeline_kwargs)
    name = model
    if isinstance(model, str):  # a folder, or a Hub id looked up once (original checkpoints: the converted folder)
        model, found = resolve_model_name(model, revision=revision, original_file=original_file)
        options.update(found)
        if model == name and revision:
            options["revision"] = revision
    if processor is not None:
        options["image_processor"] = getattr(processor, "image_processor", processor)
        if getattr(processor, "tokenizer", None) is not None:
            options["tokenizer"] = processor.tokenizer
    if precision is not None:
        options["precision"] = precision
    with reading(f"cannot load the model {name!r}"):
        tagger = pipeline(TASK, model=model, device=resolve_device(device, rank), **options)
    return tagger, model


def tag_batches(
    tagger,
    items: Sequence,
    tag_set=None,
    threshold=None,
    top_k=None,
    language: str = "en",
    raw_scores: bool = False,
    batch_size: int = 8,
    read: Callable | None = None,
    indices: Sequence[int] | None = None,
    on_error: str = "record",
    prefetch: bool = True,
    tag_map=None,
    read_threads: int | None = None,
) -> Iterator[list[TaggedImage]]:
    """Tag `items` (paths, URLs, bytes, images...) `batch_size` at a time; yields each batch's `TaggedImage`s in
    item order.

    `read(item, index)` turns an item into an image (default: the pipeline's image processor's `load_image`, with its
    EXIF, timeout, pixel-limit and DICOM settings); `indices` are the positions named in its errors (default: the
    items' positions). An item that cannot be read is recorded as its `TaggedImage.error` (`on_error="raise"`:
    raised). The others go through `tagger` in one batch, with the pipeline's call options (`tag_set` as
    `candidate_labels`; `tag_map`, when given, as the pipeline's `tag_map`).

    With `prefetch` (default), a reader thread reads the next batch, and resizes its images for the model with the
    image processor's `resize_ahead` (the same resize its call does: identical pixel values), while the model tags
    the current one: decoding large photos overlaps the model instead of adding to it. `TaggedImage.image` stays
    the image as read (heatmaps draw on it).

    `read_threads` threads read (decode and resize) the images of a batch in parallel (PIL releases the GIL). Default
    (`default_read_threads`): 1 where the model runs on the CPU (its threads use the cores), up to 8 on an
    accelerator, where decoding on one thread would be the bottleneck (a GPU tags hundreds of images a second)."""
    read = read or getattr(tagger.image_processor, "load_image", None) or load_image
    indices = range(len(items)) if indices is None else indices
    mapped = {} if tag_map is None else {"tag_map": tag_map}
    resize_ahead = getattr(tagger.image_processor, "resize_ahead", None) if prefetch else None

    read_threads = default_read_threads(tagger) if read_threads is None else int(read_threads)
    if read_threads < 1:
        raise ValueError(f"read_threads must be at least 1, got {read_threads}")

    def read_one(position: int) -> TaggedImage:
        tagged = TaggedImage(position)
        try:
            tagged.image = read(items[position], indices[position])
            tagged.model_input = tagged.image if resize_ahead is None else resize_ahead(tagged.image)
        except READ_ERRORS as error:
            if on_error == "raise":
                raise
            tagged.image, tagged.error = None, str(error)
        return tagged

    decoders = (
        ThreadPoolExecutor(max_workers=read_threads, thread_name_prefix="ramplus-decode")
        if read_threads > 1 and len(items) > 1 else None
    )

    def read_batch(start: int) -> list[TaggedImage]:
        positions = range(start, min(start + batch_size, len(items)))
        if decoders is None or len(positions) == 1:
            return [read_one(position) for position in positions]
        return list(decoders.map(read_one, positions))  # in order; the first error raised (on_error="raise")

    starts = range(0, len(items), batch_size)
    # with `prefetch`, one reader thread decodes and resizes the next batch while the model tags this one (PIL and
    # torch release the GIL); the batches still come in order and a read error still belongs to its input
    reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ramplus-read") if prefetch and len(starts) > 1 else None
    try:
        pending = reader.submit(read_batch, starts[0]) if reader is not None else None
        for number, start in enumerate(starts):
            if reader is None:
                batch = read_batch(start)
            else:
                batch = pending.result()
                if number + 1 < len(starts):
                    pending = reader.submit(read_batch, starts[number + 1])
            readable = [tagged for tagged in batch if tagged.error is None]
            if readable:
                results = tagger(
                    [tagged.model_input for tagged in readable],
                    candidate_labels=tag_set,
                    threshold=threshold,
                    top_k=top_k,
                    language=language,
                    raw_scores=raw_scores,
                    batch_size=len(readable),
                    apply_exif_orientation=False,  # `read` has read them, upright or not as it was told
                    **mapped,
                )
                for tagged, result in zip(readable, results):
                    tagged.result, tagged.model_input = result, None
            yield batch
    finally:
        if reader is not None:
            reader.shutdown(wait=True, cancel_futures=True)
        if decoders is not None:
            decoders.shutdown(wait=True, cancel_futures=True)


def default_read_threads(tagger) -> int:
    """Threads that read a batch's images in `tag_batches` by default: 1 when the model runs on the CPU, else
    `min(8, os.cpu_count())`."""
    device = getattr(tagger, "device", None)
    if device is None or getattr(device, "type", str(device)) == "cpu":
        return 1
    return max(1, min(8, os.cpu_count() or 1))


__all__ = ["ON_ERROR", "READ_ERRORS", "TaggedImage", "check_options", "default_read_threads", "load_tagger", "tag_batches"]
