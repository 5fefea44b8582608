# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""Tagging at scale on existing engines: `tag_dataset` adds tag columns to a 🤗 `datasets` dataset.

The sharded command line (`accelerate launch -m transformers_ramplus.cli tag ...`) lives in
`transformers_ramplus.cli.tag_shards`.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid


ON_ERROR = ("record", "skip", "raise")


def default_device(device=None):
    """`device` if given; else this process's GPU under a launcher (`cuda:LOCAL_RANK`), the first GPU, or the CPU."""
    if device is not None:
        return device
    import torch

    if torch.cuda.is_available():
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0')) % torch.cuda.device_count()}"
    return "cpu"


def _loadable(item):
    """A value of an image column as `load_image` takes it: a `datasets.Image(decode=False)` value `{"bytes", "path"}`
    becomes its bytes (else its path); paths, URLs, bytes, PIL images and arrays are kept."""
    if isinstance(item, dict) and ("bytes" in item or "path" in item):
        return item.get("bytes") if item.get("bytes") is not None else item.get("path")
    return item


class _Engine:
    """The model, processor and tag set of one process (loaded on the first batch it sees)."""

    def __init__(self, spec: dict, rank=None):
        import torch
        from transformers import pipeline

        import transformers_ramplus  # noqa: F401  (registers the pipeline task)

        device = spec["device"]
        if device is None and rank is not None and torch.cuda.is_available():  # num_proc workers share the GPUs
            device = f"cuda:{rank % torch.cuda.device_count()}"
        device = default_device(device)
        if spec["threads"] and str(device).startswith("cpu"):
            torch.set_num_threads(spec["threads"])  # num_proc CPU workers: share the cores instead of each taking all
        model, hub_kwargs = spec["model"], dict(spec["hub_kwargs"])
        if isinstance(model, str):
            from ..hub import resolve_model_name

            model, extra = resolve_model_name(model, revision=hub_kwargs.get("revision"))
            hub_kwargs.update(extra)
        options = dict(hub_kwargs)
        processor = spec["processor"]
        if processor is not None:
            image_processor = getattr(processor, "image_processor", processor)
            options["image_processor"] = image_processor
            tokenizer = getattr(processor, "tokenizer", None)
            if tokenizer is not None:
                options["tokenizer"] = tokenizer
        if spec["precision"] is not None:
            options["precision"] = spec["precision"]
        self.tagger = pipeline("zero-shot-image-tagging", model=model, device=device, **options)
        self.tag_set = self.tagger.get_tag_set(spec["candidate_labels"], templates=spec["templates"])
        self.labels = {language: self.tag_set.labels(language) for language in spec["languages"]}
        self.model_inputs = self.tag_set.model_inputs(self.tagger.model)  # on the model's device, once

    def tag(self, items, indices, threshold, top_k, on_error):
        """`(tags per language, scores, errors)` for a batch of image values (rows `indices`, named in errors); a bad
        image is an error (not tagged)."""
        import torch

        from ..models.ram_plus.processing_ram_plus import post_process_image_tagging

        tagger = self.tagger
        errors: list = [None] * len(items)
        images, positions = [], []
        for position, (item, index) in enumerate(zip(items, indices)):
            try:
                images.append(tagger.image_processor.load_image(_loadable(item), index))
                positions.append(position)
            except (ValueError, TypeError) as error:
                if on_error == "raise":
                    raise
                errors[position] = str(error)
        tags = {language: [[] for _ in items] for language in self.labels}
        scores = [[] for _ in items]
        if images:
            pixel_values = tagger.image_processor(images, return_tensors="pt")["pixel_values"].to(tagger.device)
            with torch.inference_mode():
                outputs = tagger.model(pixel_values=pixel_values, **self.model_inputs)
            logits = outputs.logits.float()
            if not torch.isfinite(logits).all():
                raise ValueError("the model produced NaN or infinite scores: check its weights and the tag set's embeddings")
            thresholds = self.tag_set.thresholds if threshold is None else threshold
            for language, names in self.labels.items():  # the same tags in the same order, named in each language
                results = post_process_image_tagging(logits, thresholds, names, top_k=top_k)
                for position, result in zip(positions, results):
                    tags[language][position] = [t["label"] for t in result]
                    scores[position] = [t["score"] for t in result]
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
        tags, scores, errors = self.engine(rank).tag(items, indices, spec["threshold"], spec["top_k"], spec["on_error"])
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
        from ..cli.tag import model_fingerprint

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
    precision: str | None = None,
    num_proc: int | None = None,
    templates=None,
    revision: str | None = None,
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
        precision: `"fp32"` or `"bf16"` (see `optimize_for_inference`).
        num_proc: worker processes for a `Dataset` (each loads the model once; CPU workers share the cores).
        map_kwargs: passed on to `map` (e.g. `desc`, `load_from_cache_file`, `writer_batch_size`).

    One process per GPU: under `accelerate launch`, give each process its part with
    `datasets.distributed.split_dataset_by_node(dataset, rank=state.process_index, world_size=state.num_processes)`
    (see the README's "Tagging at scale").
    """
    try:
        import datasets
    except ImportError as error:
        raise ImportError("tag_dataset needs the `datasets` package: pip install 'transformers-ramplus[scale]'") from error

    if on_error not in ON_ERROR:
        raise ValueError(f"`on_error` must be one of {ON_ERROR}, got {on_error!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"`batch_size` must be a positive integer, got {batch_size!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k <= 0):
        raise ValueError(f"`top_k` must be None or a positive integer, got {top_k!r}")
    if threshold is not None:
        from ..models.ram_plus.configuration_ram_plus import validate_threshold

        threshold = validate_threshold(threshold)
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
    if model is None:
        from ..hub import DEFAULT_MODEL

        model = DEFAULT_MODEL
    if precision is not None and precision not in ("fp32", "bf16", "int8"):
        raise ValueError(f"`precision` must be 'fp32', 'bf16' or 'int8', got {precision!r}")

    workers = num_proc if num_proc and num_proc > 1 and not streaming else None
    spec = {
        "model": model,
        "hub_kwargs": {"revision": revision} if revision else {},
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
            options = {k: v for k, v in spec.items() if k not in ("model", "processor", "candidate_labels", "device")}
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
    from ..tags.tag_set import TagSet

    if isinstance(candidate_labels, TagSet):
        from ..cli.tag import tag_set_digest

        return tag_set_digest(candidate_labels)
    return hashlib.sha256(json.dumps(candidate_labels, default=str, sort_keys=True).encode()).hexdigest()


__all__ = ["default_device", "tag_dataset"]
