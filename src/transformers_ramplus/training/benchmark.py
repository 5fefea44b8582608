# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""Benchmark mAP / CP / CR / F1 of a RAM++ model on a labelled image folder (`ramplus evaluate`).

Each line of the tag list is a model class: a tag of the model's vocabulary (closed set), or a new tag embedded from
descriptions (open set, e.g. `openimages_rare_200_llm_tag_descriptions.json`) or from its name (`name_prompts`)
through the model's text tower (threshold 0.5, as the original). Scores come from the package's one tagging loop
(`score_images`) and are cached in an `.npz` file (default under `~/.cache/ramplus/eval/`) keyed by the model's files,
the tag list, every image file (name, size, modification time), the descriptions and the image processor; a second
run on unchanged inputs reuses them. Unreadable images are skipped and counted. `calibrate_output` also fits per-tag
thresholds maximizing F1 on this set and saves the model with them in its config.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass

import numpy as np
from transformers import AutoProcessor

from .. import __version__
from ..hub import reading
from ..inference.fast_paths import enable_fast_inference
from ..inference.tag_files import OPTION_NAMES
from ..inference.tagging import check_options
from ..io.atomic import atomic_directory, atomic_file
from ..io.fingerprints import model_fingerprint
from ..models.ram_plus.image_processing_ram_plus import RamPlusImageProcessor
from ..models.ram_plus.modeling_ram_plus import RamPlusModel
from ..models.remote_code import save_model_folder
from ..pipelines.zero_shot_image_tagging import resolve_device
from ..tags.descriptions import load_descriptions
from .metrics import (
    calibrate_thresholds,
    compute_metrics,
    find_image,
    mean_average_precision,
    precision_recall,
    read_annotations,
    score_images,
    threshold_scores,
    write_thresholds,
)
from .trainer import add_tags


logger = logging.getLogger(__name__)


@dataclass
class BenchmarkOptions:
    """What to evaluate (the fields are `ramplus evaluate`'s options, by the same names)."""

    model: str
    images: str
    annotations: str
    tag_list: str
    format: str = "auto"
    descriptions: str | None = None
    name_prompts: bool = False
    threshold: float | None = None
    batch_size: int = 16
    device: str | None = "cpu"
    cache: str | None = None  # None: under ~/.cache/ramplus/eval
    no_cache: bool = False
    output: str | None = None  # the report's file: left out of the model's fingerprint
    per_class: bool = False
    calibrate_output: str | None = None


def load_image_processor(model_path: str, config):
    """The model's saved image processor, or the RAM++ inference transform at the model's image size."""
    try:
        return RamPlusImageProcessor.from_pretrained(model_path)
    except (OSError, ValueError):
        size = int(config.vision_config.image_size)
        return RamPlusImageProcessor(size={"height": size, "width": size})


def _file_fingerprint(path) -> list:
    """Size and modification time of a file (None when missing): a changed, added or replaced file changes it."""
    if path is None or not os.path.isfile(path):
        return [path, None]
    stat = os.stat(path)
    return [os.path.realpath(path), stat.st_size, stat.st_mtime_ns]


def scores_cache_key(options: BenchmarkOptions, classes, image_names, paths, image_processor) -> str:
    """What determines the cached scores: the model's files, the classes, every image file (name, size, mtime), the
    descriptions file, name prompts, the image processor settings and the package version."""
    processor = image_processor.to_dict() if hasattr(image_processor, "to_dict") else repr(image_processor)
    parts = [
        __version__,
        model_fingerprint(options.model, exclude=[options.output, options.cache]),
        classes,
        image_names,
        [_file_fingerprint(path) for path in paths],
        _file_fingerprint(options.descriptions) if options.descriptions else None,
        bool(options.name_prompts),
        json.dumps(processor, sort_keys=True, default=str),
    ]
    return hashlib.sha256(json.dumps(parts, default=str).encode("utf-8", "surrogateescape")).hexdigest()[:24]


def _source_tokenizer(model_path):
    try:
        return getattr(AutoProcessor.from_pretrained(model_path), "tokenizer", None)
    except (OSError, ValueError, TypeError):
        return None


def _load_model(options: BenchmarkOptions, classes):
    """The model with every benchmark class in its vocabulary (new ones embedded), and the names it lacked."""
    with reading(f"cannot load the model {options.model!r}"):
        model = enable_fast_inference(RamPlusModel.from_pretrained(options.model).to(resolve_device(options.device)))
    unknown = [name for name in dict.fromkeys(classes) if name not in model.config.label2id]
    if unknown:
        descriptions = load_descriptions(options.descriptions) if options.descriptions else {}
        missing = [name for name in unknown if name not in descriptions and not options.name_prompts]
        if missing:
            raise ValueError(
                f"{len(missing)} benchmark tags are not in the model's vocabulary and have no description: "
                f"{missing[:10]}; pass --descriptions JSON or --name-prompts"
            )
        # names without descriptions (--name-prompts) are embedded with the prompt-template ensemble
        add_tags(model, {n: descriptions.get(n) for n in unknown}, tokenizer=_source_tokenizer(options.model))
    return model, unknown


def _cached_scores(cache, key, shape, report):
    """The scores and readable-image mask stored in `cache` for `key`, else `(None, None)`."""
    if not cache or not os.path.isfile(cache):
        return None, None
    try:
        with np.load(cache, allow_pickle=False) as stored:
            if str(stored["key"]) == key and stored["scores"].shape == shape:
                report(f"using cached scores {cache}")
                return stored["scores"], stored["ok"]
            report(f"the cached scores {cache} were made from other inputs; scoring again")
    except Exception as error:  # a corrupt or foreign cache file is ignored and rewritten
        report(f"ignoring the unreadable scores cache {cache} ({error}); scoring again")
    return None, None


def evaluate_benchmark(options: BenchmarkOptions, report=logger.warning) -> dict:
    """The benchmark report: metrics (none when no image could be read: `num_images` is 0), image and class counts,
    optionally per-class values and the calibrated thresholds' metrics (the model saved to `calibrate_output`).
    Messages (cache use, skipped images) go to `report`."""
    check_options(threshold=options.threshold, batch_size=options.batch_size, names=OPTION_NAMES)
    annotations = read_annotations(options.annotations, options.tag_list, format=options.format)
    classes = annotations.class_names
    model, unknown = _load_model(options, classes)
    tag_indices = [model.config.label2id[name] for name in classes]
    image_processor = load_image_processor(options.model, model.config)

    paths = [find_image(options.images, name) for name in annotations.image_names]
    key = scores_cache_key(options, classes, annotations.image_names, paths, image_processor)
    cache = None
    if not options.no_cache:
        cache = options.cache or os.path.join(
            os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "ramplus", "eval", f"{key}.npz"
        )
    scores, ok = _cached_scores(cache, key, (len(paths), len(classes)), report)
    if scores is None:
        readable = [i for i, p in enumerate(paths) if p is not None]
        scores = np.full((len(paths), len(classes)), np.nan, dtype=np.float32)
        ok = np.zeros(len(paths), dtype=bool)
        part, part_ok = score_images(
            model, image_processor, [paths[i] for i in readable], tag_indices, batch_size=options.batch_size
        )
        scores[readable], ok[readable] = part, part_ok
        if cache:
            with atomic_file(cache, "wb") as stream:
                np.savez(stream, scores=scores, ok=ok, key=np.array(key))
    skipped = [annotations.image_names[i] for i in np.flatnonzero(~ok)]
    result = {"num_images": int(ok.sum()), "num_skipped_images": len(skipped), "num_classes": len(classes)}
    if not ok.any():
        return result
    for name in skipped[:20]:
        report(f"skipped (missing or unreadable): {name}")
    scores, targets = scores[ok], annotations.targets[ok]
    threshold = options.threshold
    thresholds = threshold if threshold is not None else np.asarray(model.config.thresholds())[tag_indices]
    metrics = compute_metrics(scores, targets, thresholds)
    result = {
        **{name: round(float(value), 6) for name, value in metrics.items()},
        **result,
        "threshold": threshold if threshold is not None else "per-tag",
        "open_set_tags": len(unknown),
    }
    if options.per_class:
        _, per_ap = mean_average_precision(scores, targets)
        _, _, per_p, per_r = precision_recall(threshold_scores(scores, thresholds), targets)
        result["per_class"] = [
            {"tag": name, "ap": float(a), "precision": float(p), "recall": float(r)}
            for name, a, p, r in zip(classes, per_ap, per_p, per_r)
        ]
    if options.calibrate_output:
        result["calibrated"] = _calibrate(options, model, image_processor, scores, targets, tag_indices)
        result["calibrated_model"] = options.calibrate_output
    return result


def _calibrate(options, model, image_processor, scores, targets, tag_indices) -> dict:
    """Fit per-tag thresholds maximizing F1, save the model with them, and return their metrics (no mAP)."""
    if os.path.exists(options.calibrate_output):
        raise ValueError(f"{options.calibrate_output} exists; choose a new directory for the calibrated model")
    current = np.asarray(model.config.thresholds())[tag_indices]
    calibrated, _ = calibrate_thresholds(scores, targets, default=current)
    write_thresholds(model.config, calibrated, tag_indices=tag_indices)
    with atomic_directory(options.calibrate_output) as temporary:  # keeps the source's CLIP tokenizer
        save_model_folder(temporary, model, image_processor=image_processor, tokenizer=_source_tokenizer(options.model))
    metrics = compute_metrics(scores, targets, calibrated)
    return {name: round(float(v), 6) for name, v in metrics.items() if name != "mAP"}


__all__ = ["BenchmarkOptions", "evaluate_benchmark", "load_image_processor", "scores_cache_key"]
