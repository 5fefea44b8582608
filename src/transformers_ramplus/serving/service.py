# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""What a serving worker does with a batch of requests, without any HTTP: read each request's images (a bad image is
that image's error), tag the readable images of every request that asks for the same options in ONE call of the
`zero-shot-image-tagging` pipeline, and answer each request in its own format.

The answers are the pipeline's own results: `/v1/tag` gets `{"results": [record, ...]}` with the records of
`ramplus tag` (`{"path", "tags"}` or `{"path", "error"}`; a captioning model, Tag2Text, adds each image's
`"caption"`, written from the tags it answers with, as `ramplus tag --captions` does); the Hub's task format gets `[{"label", "score"}, ...]`
(every candidate label, sorted by score; a list of those for several images).
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch

from ..inference.tag_files import caption_images
from ..inference.tagging import READ_ERRORS, load_tagger
from ..models.ram_plus.image_processing_ram_plus import DEFAULT_MAX_IMAGE_PIXELS
from .requests import HUB_FORMAT, RequestError, TagRequest


@dataclass
class Answer:
    """The outcome of one request: HTTP `status` and its JSON `body`."""

    status: int
    body: object


@dataclass
class _Captioned:
    """The tags of one image with the caption written from them."""

    tags: list
    caption: str


class TaggingService:
    """One model, tagging batches of parsed requests (`TagRequest`)."""

    def __init__(
        self,
        model,
        device=None,
        precision=None,
        max_image_pixels=DEFAULT_MAX_IMAGE_PIXELS,
        url_timeout=10.0,
        read_threads: int | None = None,
    ):
        self.tagger, _ = load_tagger(model, device=device, precision=precision)
        self.max_image_pixels = max_image_pixels
        self.url_timeout = url_timeout
        self.captioning = getattr(self.tagger.model.config, "model_type", None) == "tag2text"
        # the images of a batch are decoded and resized by this many threads (PIL releases the GIL): one per CPU
        # thread the model uses by default, so that a batch's decoding uses the cores the model then uses
        if read_threads is None:
            read_threads = max(1, min(torch.get_num_threads(), os.cpu_count() or 1))
        self.read_threads = read_threads
        self._readers = None

    def _read_one(self, image, index: int):
        """One image of a request, decoded and resized for the model (the image processor's `resize_ahead`: the
        pixel values its call then gives are those of the image as read), or the message of why it cannot be read."""
        processor = self.tagger.image_processor
        try:
            source = image.url if image.url is not None else image.data
            loaded = processor.load_image(source, index, max_image_pixels=self.max_image_pixels, timeout=self.url_timeout)
            resize_ahead = getattr(processor, "resize_ahead", None)
            return loaded if resize_ahead is None else resize_ahead(loaded)
        except READ_ERRORS as error:
            return f"{image.name}: {error}"

    def read_all(self, requests: list[TagRequest]) -> list[list]:
        """For each request, each of its images as a PIL image (resized for the model) or the message of why it
        cannot be read; the images of all requests are decoded in parallel (`read_threads`)."""
        jobs = [(position, index, image) for position, request in enumerate(requests)
                for index, image in enumerate(request.images)]
        if self.read_threads > 1 and len(jobs) > 1:
            if self._readers is None:
                self._readers = ThreadPoolExecutor(self.read_threads, thread_name_prefix="ramplus-serve-read")
            outcomes = list(self._readers.map(lambda job: self._read_one(job[2], job[1]), jobs))
        else:
            outcomes = [self._read_one(image, index) for _, index, image in jobs]
        read: list[list] = [[] for _ in requests]
        for (position, _, _), outcome in zip(jobs, outcomes):
            read[position].append(outcome)
        return read

    def answer(self, requests: list[TagRequest]) -> list[Answer]:
        """The answers to `requests`, in order. Requests with the same options share one forward pass."""
        read = self.read_all(requests)
        groups: dict[str, list[int]] = {}
        for position, request in enumerate(requests):
            key = json.dumps([request.format, request.options], sort_keys=True, default=str)
            groups.setdefault(key, []).append(position)
        results: list[list | None] = [None] * len(requests)
        failures: dict[int, Answer] = {}
        for positions in groups.values():
            request = requests[positions[0]]
            images = [image for position in positions for image in read[position] if not isinstance(image, str)]
            if not images:
                continue
            options = dict(request.options)
            if request.format == HUB_FORMAT:
                options["all_labels"] = True
            try:
                tagged = self.tagger(images, batch_size=len(images), **options)
            except (ValueError, TypeError) as error:  # the options' values (a threshold of 2, an empty tag name...)
                for position in positions:
                    failures[position] = Answer(422, {"error": str(error)})
                continue
            if self.captioning and request.format != HUB_FORMAT:
                captions = caption_images(self.tagger, images, tagged)
                tagged = [_Captioned(result, caption) for result, caption in zip(tagged, captions)]
            tagged = iter(tagged)
            for position in positions:
                results[position] = [image if isinstance(image, str) else next(tagged) for image in read[position]]
        return [
            failures.get(position) or self._answer(request, read[position], results[position])
            for position, request in enumerate(requests)
        ]

    @staticmethod
    def _answer(request: TagRequest, read: list, results: list | None) -> Answer:
        errors = [image for image in read if isinstance(image, str)]
        if len(errors) == len(read):  # nothing readable: the request is bad
            first = request.images[read.index(errors[0])].name
            return Answer(400, RequestError(errors[0], image=first).as_json())
        if request.format == HUB_FORMAT:
            if errors:
                bad = next(i for i, image in enumerate(read) if isinstance(image, str))
                return Answer(400, RequestError(read[bad], image=request.images[bad].name).as_json())
            return Answer(200, results[0] if len(results) == 1 else results)
        records = []
        for image, result in zip(request.images, results):
            if isinstance(result, str):
                records.append({"path": image.name, "error": result})
            elif isinstance(result, _Captioned):
                records.append({"path": image.name, "tags": result.tags, "caption": result.caption})
            else:
                records.append({"path": image.name, "tags": result})
        return Answer(200, {"results": records})


__all__ = ["Answer", "TaggingService"]
