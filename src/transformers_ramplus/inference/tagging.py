# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""The package's one tagging loop: every tagging entry point (`ramplus tag`, sharded or not, `tag_dataset`,
`score_images` and `ramplus evaluate`) loads its tagger with `load_tagger` and tags through `tag_batches`, which
reads each input (an unreadable one is that input's error, the others are tagged) and runs the readable ones of a
batch through the `zero-shot-image-tagging` pipeline: one forward pass and the pipeline's post-processing (tags, or
every tag's score with `raw_scores=True`)."""

from __future__ import annotations

import functools
import multiprocessing
import os
import pickle
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
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
    keep_images: bool = True,
    read_processes: int = 0,
    before_read: Callable[[int], None] | None = None,
    fast_resize: bool | None = None,
) -> Iterator[list[TaggedImage]]:
    """Tag `items` (paths, URLs, bytes, images...) `batch_size` at a time; yields each batch's `TaggedImage`s in
    item order.

    `read(item, index)` turns an item into an image (default: the pipeline's image processor's `load_image`, with its
    EXIF, timeout, pixel-limit and DICOM settings); `indices` are the positions named in its errors (default: the
    items' positions). An item that cannot be read is recorded as its `TaggedImage.error` (`on_error="raise"`:
    raised). The others go through the model in one batch, with the pipeline's call options (`tag_set` as
    `candidate_labels`; `tag_map`, when given, as the pipeline's `tag_map`), and its post-processing.

    Reading: `read_threads` threads read images (decode, then resize for the model with the image processor's
    `resize_ahead`, the same resize its call does: identical pixel values; PIL releases the GIL). With `prefetch`
    (default) they read up to one batch ahead, while the model tags the current one, so decoding large photos
    overlaps the model instead of adding to it; without it, each batch is read when its turn comes. Default
    threads (`default_read_threads`): 1 where the model runs on the CPU (its threads use the cores), one per core up
    to 16 on an accelerator, where decoding is the bottleneck (a GPU tags hundreds of images a second).

    Feeding the model: where the image processor supports it (`supports_uint8_batches`, the package's processor with
    a fixed size), the reader threads hand over the resized images as uint8 arrays, and the batch is rescaled and
    normalized by torch on the model's device (`pixel_values_from_uint8`: the processor's arithmetic, identical
    values). On a CUDA GPU the next batch is sent to the GPU before the current batch's tags are made and yielded,
    so the GPU computes while the CPU post-processes and the caller writes records. Other processors and inputs go
    through the pipeline's call.

    `keep_images`: `TaggedImage.image` keeps the image as read (heatmaps, captions draw on it); False drops it after
    resizing (less memory for large photos and batches).

    `read_processes` > 0 reads in that many processes instead of threads (spawned once per call: a few seconds to
    start): decoding then scales with the cores, free of the GIL that the threads share for the Python parts of
    reading. `read` must then pickle (e.g. `functools.partial(load_image, ...)`, not a closure), and
    `keep_images=False` (the image as read stays in its process). A process that dies (the pool breaks) stops the run
    with an error naming the input it stopped at. Processes are spawned, so a script that uses them must guard its
    entry point (`if __name__ == "__main__":`), as with any spawned process. `before_read(position)` is called in
    this thread as each item is handed to a reader (e.g. to note the file's state before it is read).

    `fast_resize`: the readers resize with torch's antialiased uint8 kernel (True) or PIL's (False); None (default)
    keeps the image processor's `fast_resize` setting (see `RamPlusImageProcessor`)."""
    read = read or getattr(tagger.image_processor, "load_image", None) or load_image
    indices = range(len(items)) if indices is None else indices
    mapped = {} if tag_map is None else {"tag_map": tag_map}
    processor = tagger.image_processor
    resize_ahead = getattr(processor, "resize_ahead", None)
    if fast_resize is not None and resize_ahead is not None:
        resize_ahead = functools.partial(resize_ahead, fast_resize=bool(fast_resize))
    feed_size = _uint8_feed_size(tagger)

    read_threads = default_read_threads(tagger) if read_threads is None else int(read_threads)
    if read_threads < 1:
        raise ValueError(f"read_threads must be at least 1, got {read_threads}")
    if isinstance(read_processes, bool) or not isinstance(read_processes, int) or read_processes < 0:
        raise ValueError(f"read_processes must be 0 (threads) or a positive number of processes, got {read_processes!r}")
    if read_processes and keep_images:
        raise ValueError("read_processes needs keep_images=False: the images as read stay in the reading processes")
    if read_processes:
        try:
            pickle.dumps((read, resize_ahead))
        except Exception as error:  # what pickle raises varies
            raise ValueError(f"read_processes needs a `read` function that pickles (not a closure): {error}") from error

    def collect(position: int, future) -> TaggedImage:
        """The `TaggedImage` of a process's read."""
        try:
            model_input = future.result()
        except BrokenProcessPool as error:
            raise RuntimeError(
                f"a reading process died (killed, or crashed on a file) before input {indices[position]} "
                f"({items[position]!r}) was read; the run stopped there (rerun to resume; without read_processes a "
                "bad file is reported and skipped)"
            ) from error
        except READ_ERRORS as error:
            if on_error == "raise":
                raise
            return TaggedImage(position, error=str(error))
        return TaggedImage(position, model_input=model_input)

    def read_one(position: int) -> TaggedImage:
        tagged = TaggedImage(position)
        try:
            tagged.image = read(items[position], indices[position])
            tagged.model_input = _model_input(tagged.image, resize_ahead, feed_size)
            if not keep_images:
                tagged.image = None
        except READ_ERRORS as error:
            if on_error == "raise":
                raise
            tagged.image, tagged.model_input, tagged.error = None, None, str(error)
        return tagged

    starts = range(0, len(items), batch_size)
    threaded = len(items) > 1 and (read_threads > 1 or (prefetch and len(starts) > 1))
    if read_processes and items:
        readers = ProcessPoolExecutor(max_workers=read_processes, mp_context=multiprocessing.get_context("spawn"))
    elif threaded:
        readers = ThreadPoolExecutor(max_workers=read_threads, thread_name_prefix="ramplus-read")
    else:
        readers = None
    submitted: deque = deque()
    next_position = 0

    def read_batch(start: int) -> list[TaggedImage]:
        nonlocal next_position
        end = min(start + batch_size, len(items))
        if readers is None:
            batch = []
            for position in range(start, end):
                if before_read is not None:
                    before_read(position)
                batch.append(read_one(position))
            return batch
        # keep the readers busy up to one batch ahead (prefetch; processes: two), in order; a read error belongs to
        # its input
        ahead = min(len(items), end + (batch_size * (2 if read_processes else 1) if prefetch else 0))
        while next_position < ahead:
            if before_read is not None:
                before_read(next_position)
            if read_processes:
                future = readers.submit(
                    _read_for_model, read, resize_ahead, feed_size, items[next_position], indices[next_position]
                )
            else:
                future = readers.submit(read_one, next_position)
            submitted.append((next_position, future))
            next_position += 1
        batch = []
        for _ in range(start, end):  # the first error raised (on_error="raise")
            position, future = submitted.popleft()
            batch.append(collect(position, future) if read_processes else future.result())
        return batch

    device = getattr(tagger, "device", None)
    device = torch.device(device) if isinstance(device, str) else device
    lookahead = feed_size is not None and device is not None and _runs_ahead(device)
    sanitized = None

    def launch(readable: list[TaggedImage]):
        """Start tagging `readable`: what `finish` turns into results."""
        nonlocal sanitized
        if not readable:
            return None
        inputs = [tagged.model_input for tagged in readable]
        if feed_size is None or not all(isinstance(value, np.ndarray) for value in inputs):
            return tagger(  # the pipeline's call
                inputs,
                candidate_labels=tag_set,
                threshold=threshold,
                top_k=top_k,
                language=language,
                raw_scores=raw_scores,
                batch_size=len(readable),
                apply_exif_orientation=False,  # `read` has read them, upright or not as it was told
                **mapped,
            )
        if sanitized is None:  # the pipeline's options, checked and resolved once (the tag set built once)
            _, forward_params, postprocess_params = tagger._sanitize_parameters(
                candidate_labels=tag_set, threshold=threshold, top_k=top_k, language=language, raw_scores=raw_scores,
                **mapped,
            )
            sanitized = (forward_params.get("tag_set"), postprocess_params)
        asynchronous = lookahead and device.type == "cuda"
        if asynchronous:  # stacked straight into page-locked memory, copied to the GPU while the CPU goes on
            host = torch.empty((len(inputs), *inputs[0].shape), dtype=torch.uint8, pin_memory=True)
            np.stack(inputs, out=host.numpy())
        else:
            host = torch.from_numpy(np.stack(inputs))
        with torch.inference_mode():
            pixel_values = processor.pixel_values_from_uint8(host.to(device, non_blocking=asynchronous))
            return _to_host(tagger.tag_logits(pixel_values, sanitized[0]), asynchronous)

    def finish(batch: list[TaggedImage], launched) -> list[TaggedImage]:
        readable = [tagged for tagged in batch if tagged.error is None]
        if isinstance(launched, _Launched):
            if launched.done is not None:
                launched.done.synchronize()
            tagger.check_logits(launched.logits, sanitized[0])
            results = tagger.postprocess_batch(launched.logits, **sanitized[1])
        else:
            results = launched or []
        for tagged, result in zip(readable, results):
            tagged.result, tagged.model_input = result, None
        return batch

    pending = None
    try:
        for start in starts:
            batch = read_batch(start)
            launched = launch([tagged for tagged in batch if tagged.error is None])
            if pending is not None:  # the GPU computes this batch while the previous one's tags are made and used
                yield finish(*pending)
            pending = (batch, launched)
            if not lookahead:
                yield finish(*pending)
                pending = None
        if pending is not None:
            yield finish(*pending)
    finally:
        if readers is not None:
            readers.shutdown(wait=True, cancel_futures=True)


def _model_input(image, resize_ahead, feed_size):
    """`image` resized for the model: a `(height, width, 3)` uint8 array where the uint8 feed takes it."""
    model_input = image if resize_ahead is None else resize_ahead(image)
    if feed_size is not None and _is_rgb_of_size(model_input, feed_size):
        return np.asarray(model_input)
    return model_input


def _read_for_model(read, resize_ahead, feed_size, item, index):
    """In a reading process: `item` read and resized for the model (`_model_input`)."""
    return _model_input(read(item, index), resize_ahead, feed_size)


@dataclass
class _Launched:
    """Logits of a batch on their way to the CPU (`done`: the CUDA event after their copy, None when already there)."""

    logits: Any
    done: Any = None


def _runs_ahead(device: torch.device) -> bool:
    """Whether `tag_batches` starts the next batch before finishing the current one on `device`: on a CUDA GPU,
    whose work is queued (on the CPU the model call computes before it returns: nothing to gain)."""
    return device.type == "cuda"


def _to_host(logits: torch.Tensor, asynchronous: bool) -> _Launched:
    """`logits` copied to the CPU: at once, or (`asynchronous`, CUDA) queued into pinned memory behind the work
    that computes them, with the event that marks the copy done."""
    if not asynchronous:
        return _Launched(logits.cpu())
    copied = torch.empty(logits.shape, dtype=logits.dtype, pin_memory=True)
    copied.copy_(logits, non_blocking=True)
    done = torch.cuda.Event()
    done.record(torch.cuda.current_stream(logits.device))
    return _Launched(copied, done)


def _uint8_feed_size(tagger) -> tuple[int, int] | None:
    """`(height, width)` when `tag_batches` can feed `tagger` uint8 batches normalized on its device, else None."""
    processor = getattr(tagger, "image_processor", None)
    supports = getattr(processor, "supports_uint8_batches", None)
    if not callable(supports) or not callable(getattr(tagger, "postprocess_batch", None)):
        return None
    if not callable(getattr(tagger, "tag_logits", None)) or not supports():
        return None
    return processor.fixed_size()


def _is_rgb_of_size(image, size: tuple[int, int]) -> bool:
    height, width = size
    return isinstance(image, Image.Image) and image.mode == "RGB" and image.size == (width, height)


def default_read_threads(tagger) -> int:
    """Threads that read images in `tag_batches` by default: 1 when the model runs on the CPU, else one per core
    (`os.cpu_count()`) up to 16."""
    device = getattr(tagger, "device", None)
    if device is None or getattr(device, "type", str(device)) == "cpu":
        return 1
    return max(1, min(16, os.cpu_count() or 1))


__all__ = ["ON_ERROR", "READ_ERRORS", "TaggedImage", "check_options", "default_read_threads", "load_tagger", "tag_batches"]
