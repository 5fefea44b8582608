# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""Tagging at scale on existing engines: `tag_dataset` adds tag columns to a 🤗 `datasets` dataset.

Each process loads the pipeline once and tags through the package's one tagging loop
(`transformers_ramplus.inference.tagging.tag_batches`). Tagging files over processes (`accelerate launch -m
transformers_ramplus.cli tag ...`) lives in `transformers_ramplus.inference.sharding`.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid

import torch

from ..hub import DEFAULT_MODEL
from ..io.fingerprints import model_fingerprint, tag_set_digest
from ..pipelines.zero_shot_image_tagging import resolve_device
from ..tags.tag_map import TagMap
from ..tags.tag_set import TagSet
from .tagging import check_options, load_tagger, tag_batches


def _loadable(item):
    """A value of an image column as `load_image` takes it: a `datasets.Image(decode=False)` value `{"bytes", "path"}`
    becomes its bytes (else its path); paths, URLs, bytes, PIL images and arrays are kept."""
    if isinstance(item, dict) and ("bytes" in item or "path" in item):
        return item.get("bytes") if item.get("bytes") is not None else item.get("path")
    return item


class _Engine:
    """The pipeline and tag set of one process (loaded on the first batch it sees)."""

    def __init__(self, spec: dict, rank=None):
        device = resolve_device(spec["device"], rank)  # num_proc workers share the GPUs
        if spec["threads"] and device.type == "cpu":
            torch.set_num_threads(spec["threads"])  # num_proc CPU workers: share the cores instead of each taking all
        self.tagger, _ = load_tagger(
            spec["model"], device=device, precision=spec["precision"], revision=spec["revision"], processor=spec["processor"]
        )
        self.tag_set = self.tagger.get_tag_set(spec["candidate_labels"], templates=spec["templates"])
        # the same tags in the same order, named in Chinese (tag names are unique in a tag set)
        self.chinese = dict(zip(self.tag_set.names, self.tag_set.labels("zh"))) if "zh" in spec["languages"] else None

    def tag(self, items, indices, threshold, top_k, on_error, tag_map=None):
        """`(tags per language, scores, errors)` for a batch of image values (rows `indices`, named in errors); a bad
        image is an error (not tagged)."""
        tags = {"en": [[] for _ in items]}
        if self.chinese is not None:
            tags["zh"] = [[] for _ in items]
        scores = [[] for _ in items]
        errors: list = [None] * len(items)
        batches = tag_batches(
            self.tagger, [_loadable(item) for item in items], tag_set=self.tag_set, threshold=threshold, top_k=top_k,
            batch_size=max(1, len(items)), indices=indices, on_error=on_error, tag_map=tag_map, keep_images=False,
        )
        for tagged in (tagged for batch in batches for tagged in batch):
            if tagged.error is not None:
                errors[tagged.index] = tagged.error
                continue
            tags["en"][tagged.index] = [t["label"] for t in tagged.result]
            if self.chinese is not None:
                # a tag renamed by a tag map keeps its new name
                tags["zh"][tagged.index] = [self.chinese.get(t["label"], t["label"]) for t in tagged.result]
            scores[tagged.index] = [t["score"] for t in tagged.result]
        return tags, scores, errors


class _DatasetTagger:
    """The function given to `map(batched=True)`. It pickles as its options only (datasets pickles it once per
    `num_proc` worker and hashes it for the cache): the model is loaded in each process on its first batch."""

    def __init__(self, spec: dict):
        self.spec = spec
        self._engine = None
        self._pid = None

    def __getstate__(self):
        return {"spec": self.spec}

    def __setstate__(self, state):
        self.spec = state["spec"]
        self._engine = None
        self._pid = None

    def engine(self, rank=None) -> _Engine:
        if self._engine is None or self._pid != os.getpid():
            self._engine = _Engine(self.spec, rank)
            self._pid = os.getpid()
        return self._engine

    def __call__(self, batch, indices=None, rank=None):
        spec = self.spec
        items = batch[spec["image_column"]]
        indices = range(len(items)) if indices is None else indices
        tags, scores, errors = self.engine(rank).tag(
            items, indices, spec["threshold"], spec["top_k"], spec["on_error"], spec.get("tag_map")
        )
        columns = {spec["tags_column"]: tags["en"], spec["scores_column"]: scores}
        if "zh" in tags:
            columns[spec["tags_column"] + "_zh"] = tags["zh"]
        if spec["on_error"] != "raise":
            columns[spec["error_column"]] = errors
        return columns


def _describe_model(model, revision) -> str:
    """What identifies the model for the datasets cache: a folder's files (names, sizes, times), a Hub id and
    revision, or (a model object) nothing reusable."""
    if isinstance(model, str):
        return f"{model_fingerprint(model)}@{revision}"
    return f"object-{uuid.uuid4().hex}"


def tag_dataset(
    dataset,
    model=None,
    processor=None,
    *,
    candidate_labels=None,
    threshold: float | None = None,
    top_k: int | None = None,
    chinese: bool = False,
    batch_size: int = 8,
    image_column: str = "image",
    tags_column: str = "tags",
    scores_column: str = "scores",
    error_column: str = "tag_error",
    on_error: str = "record",
    device=None,
    precision: str | None = "auto",
    num_proc: int | None = None,
    templates=None,
    revision: str | None = None,
    tag_map=None,
    overwrite: bool = False,
    **map_kwargs,
):
    """
    Add tag columns to a 🤗 `datasets.Dataset` (with `map(batched=True)`) or `IterableDataset` (lazily, as it is
    iterated; streaming datasets included).

    New columns: `tags` (labels, highest score first), `scores` (the same order), `tags_zh` with `chinese=True`
    (Chinese names of built-in tags; new tags keep their name), and `tag_error`: `None`, or why the row's image could not
    be read (its tags are then empty). `on_error="skip"` drops such rows instead, `"raise"` stops at the first one.

    Args:
        dataset: a `datasets.Dataset` or `datasets.IterableDataset` with an image column: `datasets.Image()` values
            (decoded here, so that a corrupt image is one row's error rather than the end of the map), paths, URLs or
            bytes.
        model: a model folder, a Hub id (the authors' release by default), or a loaded `RamPlusModel`. With
            `num_proc`, pass a folder or id: each worker loads it once (a model object is pickled to every worker).
        processor: optional `RamPlusProcessor` or `RamPlusImageProcessor` (default: the model's).
        candidate_labels: `None` (built-in tags), tag names, `{tag: [descriptions]}`, or a `TagSet` (open set).
        threshold, top_k: as the pipeline's (`None`: per-tag thresholds; at most `top_k` tags per image).
        batch_size: images per forward pass (and per `map` batch).
        device: torch device (default: under `accelerate launch`/`torchrun` this process's GPU, else the first GPU,
            else the CPU; `num_proc` workers spread over the GPUs).
        precision: `"auto"` (default: what this device runs well, see `transformers_ramplus.inference.precision`),
            `"fp32"`, `"bf16"` or `"int8"` (see `enable_fast_inference`).
        num_proc: worker processes for a `Dataset` (each loads the model once; CPU workers share the cores).
        tag_map: rename, translate, merge, drop or keep tags after the thresholds: a `TagMap`, a dict or a YAML/JSON
            file (see `transformers_ramplus.tags.tag_map`); `tags_zh` then holds the Chinese name of each tag that kept
            its name.
        overwrite: replace columns of the dataset that have the new columns' names (default: refused).
        map_kwargs: passed on to `map` (e.g. `desc`, `load_from_cache_file`, `writer_batch_size`).

    One process per GPU: under `accelerate launch`, give each process its part with
    `datasets.distributed.split_dataset_by_node(dataset, rank=state.process_index, world_size=state.num_processes)`
    (see the README's "Tagging at scale").
    """
    try:
        import datasets
    except ImportError as error:
        raise ImportError("tag_dataset needs the `datasets` package: pip install 'transformers-ramplus[scale]'") from error

    threshold, top_k, _ = check_options(threshold, top_k, precision=precision, batch_size=batch_size, on_error=on_error)
    streaming = isinstance(dataset, datasets.IterableDataset)
    if not streaming and not isinstance(dataset, datasets.Dataset):
        raise TypeError(f"`dataset` must be a datasets.Dataset or IterableDataset, got {type(dataset).__name__}")
    if num_proc is not None and (isinstance(num_proc, bool) or not isinstance(num_proc, int) or num_proc <= 0):
        raise ValueError(f"`num_proc` must be None or a positive integer, got {num_proc!r}")
    if streaming and num_proc not in (None, 1):
        raise ValueError(
            "`num_proc` needs a datasets.Dataset (an IterableDataset is tagged as it is iterated): split it with "
            "`datasets.distributed.split_dataset_by_node` over processes instead"
        )
    columns = dataset.column_names
    if columns is not None and image_column not in columns:
        raise ValueError(f"`image_column` {image_column!r} is not a column of the dataset (columns: {columns})")
    new_columns = [tags_column, scores_column] + ([tags_column + "_zh"] if chinese else [])
    error_name = error_column if on_error != "raise" else None
    if error_name is not None:
        new_columns.append(error_name)
    if len(set(new_columns)) != len(new_columns) or image_column in new_columns:
        raise ValueError(f"the new columns {new_columns} must differ from each other and from `image_column`")
    existing = [name for name in new_columns if columns is not None and name in columns]
    if existing and not overwrite:
        raise ValueError(
            f"the dataset already has the column(s) {existing}: pass other names (tags_column=..., scores_column=..., "
            "error_column=...) or overwrite=True to replace them"
        )
    if model is None:
        model = DEFAULT_MODEL
    tag_map = TagMap.coerce(tag_map)

    workers = num_proc if num_proc and num_proc > 1 and not streaming else None
    spec = {
        "model": model,
        "revision": revision,
        "processor": processor,
        "candidate_labels": candidate_labels,
        "templates": templates,
        "threshold": threshold,
        "top_k": top_k,
        "languages": ("en", "zh") if chinese else ("en",),
        "device": device,
        "precision": precision,
        "threads": max(1, (os.cpu_count() or 1) // workers) if workers else None,
        "image_column": image_column,
        "tags_column": tags_column,
        "scores_column": scores_column,
        "error_column": error_column,
        "on_error": on_error,
        "tag_map": tag_map,
    }
    function = _DatasetTagger(spec)

    # decode images here (a corrupt one is that row's error), and give them back decoded afterwards
    features = dataset.features
    image_feature = features.get(image_column) if features is not None else None
    decoded = isinstance(image_feature, datasets.Image) and image_feature.decode
    if decoded:
        dataset = dataset.cast_column(image_column, datasets.Image(decode=False))
    out_features = None
    if features is not None:
        out_features = datasets.Features(dict(dataset.features))
        out_features[tags_column] = datasets.List(datasets.Value("string"))
        out_features[scores_column] = datasets.List(datasets.Value("float32"))
        if chinese:
            out_features[tags_column + "_zh"] = datasets.List(datasets.Value("string"))
        if error_name is not None:
            out_features[error_name] = datasets.Value("string")

    if streaming:
        tagged = dataset.map(
            function, batched=True, batch_size=batch_size, with_indices=True, features=out_features, **map_kwargs
        )
    else:
        if "new_fingerprint" not in map_kwargs:
            options = {k: v for k, v in spec.items() if k not in ("model", "processor", "candidate_labels", "device", "tag_map")}
            options["tag_map"] = None if tag_map is None else tag_map.digest()
            options["labels"] = _labels_digest(candidate_labels)
            options["processor"] = None if processor is None else uuid.uuid4().hex  # a processor object: no reuse
            key = json.dumps([dataset._fingerprint, _describe_model(model, revision), options], default=str, sort_keys=True)
            map_kwargs["new_fingerprint"] = hashlib.sha256(key.encode()).hexdigest()[:32]
        tagged = dataset.map(
            function,
            batched=True,
            batch_size=batch_size,
            with_indices=True,
            with_rank=workers is not None,
            num_proc=workers,
            features=out_features,
            **map_kwargs,
        )
    if on_error == "skip":
        tagged = tagged.filter(lambda errors: [e is None for e in errors], input_columns=[error_name], batched=True)
        tagged = tagged.remove_columns(error_name)
    if decoded:
        tagged = tagged.cast_column(image_column, datasets.Image(decode=True))
    return tagged


def _labels_digest(candidate_labels) -> str:
    """What identifies the candidate labels for the datasets cache."""
    if candidate_labels is None:
        return "builtin"
    if isinstance(candidate_labels, TagSet):
        return tag_set_digest(candidate_labels)
    return hashlib.sha256(json.dumps(candidate_labels, default=str, sort_keys=True).encode()).hexdigest()


__all__ = ["tag_dataset"]
