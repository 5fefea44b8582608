# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""Evaluation of RAM++ tagging the way the paper measures it.

- `mean_average_precision(scores, targets) -> (mAP, per_class_ap)`: per class, images sorted by score (descending);
  `AP = sum over ranks i holding a positive of precision@i / (number of positives + 1e-8)`; mAP = mean over classes
  (a class without positives has AP 0, as in the paper's script).
- `precision_recall(predictions, targets) -> (CP, CR, per_class_p, per_class_r)`: per-class precision
  `tp / (predicted + 1e-9)` and recall `tp / (positives + 1e-9)`, macro-averaged.
- `f1_scores(predictions, targets)`: `CF1 = 2 CP CR / (CP + CR)` (macro) and the overall (micro) `OP`, `OR`, `OF1`.
- Readers for the benchmark files: tag lists (one tag per line; a tag may repeat, mapping several model classes to
  one benchmark class) and annotation files (`image,tag1,tag2` by name, or `image,i j k` by 0-based index).
- `calibrate_thresholds(scores, targets)`: per-tag thresholds maximizing F1 on a labelled set, and
  `write_thresholds(config, thresholds)` to store them in a model config.

Everything here is numpy; scores are probabilities or logits (only their order matters for AP).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..inference.tagging import load_tagger, tag_batches
from ..models.ram_plus.configuration_ram_plus import validate_threshold, validate_thresholds
from ..tags.files import read_tag_list
from ..tags.tag_set import TagSet


AP_EPS = 1e-8
PR_EPS = 1e-9


def _as_2d(name: str, array) -> np.ndarray:
    if hasattr(array, "detach"):
        array = array.detach().float().cpu().numpy()
    array = np.asarray(array)
    if array.ndim != 2:
        raise ValueError(f"`{name}` must be a 2-D (num_images, num_classes) array, got shape {array.shape}")
    return array


def _check_pair(scores_name, scores, targets):
    scores = _as_2d(scores_name, scores)
    targets = _as_2d("targets", targets)
    if scores.shape != targets.shape:
        raise ValueError(f"`{scores_name}` {scores.shape} and `targets` {targets.shape} must have the same shape")
    if targets.size and not np.isin(targets, (0, 1)).all():
        raise ValueError("`targets` must be multi-hot (0/1 values only)")
    return scores, targets.astype(np.float64)


def average_precision(scores, targets) -> np.ndarray:
    """Per-class AP `(num_classes,)` as in the paper (see the module docstring). Ties keep image order."""
    scores, targets = _check_pair("scores", scores, targets)
    scores = scores.astype(np.float64)
    if np.isnan(scores).any():
        raise ValueError("`scores` contains NaN")
    num_images = scores.shape[0]
    order = np.argsort(-scores, axis=0, kind="stable")
    sorted_targets = np.take_along_axis(targets, order, axis=0)
    ranks = np.arange(1, num_images + 1, dtype=np.float64)[:, None]
    precision_at_rank = np.cumsum(sorted_targets, axis=0) / ranks
    num_positives = targets.sum(axis=0)
    return (precision_at_rank * sorted_targets).sum(axis=0) / (num_positives + AP_EPS)


def mean_average_precision(scores, targets) -> tuple[float, np.ndarray]:
    """`(mAP, per_class_ap)`: mean over classes of the paper's AP."""
    per_class = average_precision(scores, targets)
    return float(per_class.mean()) if per_class.size else 0.0, per_class


def precision_recall(predictions, targets) -> tuple[float, float, np.ndarray, np.ndarray]:
    """`(CP, CR, per_class_precision, per_class_recall)` of binary predictions, eps 1e-9, macro averages."""
    predictions, targets = _check_pair("predictions", predictions, targets)
    if predictions.size and not np.isin(predictions, (0, 1)).all():
        raise ValueError("`predictions` must be binary (0/1 or booleans); threshold the scores first")
    predictions = predictions.astype(np.float64)
    true_positives = (predictions * targets).sum(axis=0)
    per_class_p = true_positives / (predictions.sum(axis=0) + PR_EPS)
    per_class_r = true_positives / (targets.sum(axis=0) + PR_EPS)
    cp = float(per_class_p.mean()) if per_class_p.size else 0.0
    cr = float(per_class_r.mean()) if per_class_r.size else 0.0
    return cp, cr, per_class_p, per_class_r


def f1_scores(predictions, targets) -> dict[str, float]:
    """Macro `CF1 = 2 CP CR / (CP + CR)` and overall (micro) `OP`, `OR`, `OF1` over all image-class pairs."""
    cp, cr, _, _ = precision_recall(predictions, targets)
    predictions, targets = _check_pair("predictions", predictions, targets)
    true_positives = float((predictions.astype(np.float64) * targets).sum())
    op = true_positives / (float(predictions.sum()) + PR_EPS)
    orr = true_positives / (float(targets.sum()) + PR_EPS)
    return {
        "CP": cp,
        "CR": cr,
        "CF1": 2 * cp * cr / (cp + cr) if cp + cr > 0 else 0.0,
        "OP": op,
        "OR": orr,
        "OF1": 2 * op * orr / (op + orr) if op + orr > 0 else 0.0,
    }


def threshold_scores(scores, thresholds) -> np.ndarray:
    """Binary predictions `score > threshold` (strictly, as the original); `thresholds` scalar or per class."""
    scores = _as_2d("scores", scores)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    if thresholds.ndim not in (0, 1) or (thresholds.ndim == 1 and thresholds.shape[0] != scores.shape[1]):
        raise ValueError(f"`thresholds` must be a number or {scores.shape[1]} values, got shape {thresholds.shape}")
    if thresholds.ndim == 0:
        validate_threshold(float(thresholds))
    else:
        validate_thresholds(thresholds)
    return (scores > thresholds).astype(np.int64)


def compute_metrics(scores, targets, thresholds=0.5) -> dict[str, float]:
    """mAP, CP, CR, CF1, OP, OR, OF1 of probability `scores` thresholded at `thresholds` (scalar or per class)."""
    mean_ap, _ = mean_average_precision(scores, targets)
    metrics = {"mAP": mean_ap}
    metrics.update(f1_scores(threshold_scores(scores, thresholds), targets))
    return metrics


# ----------------------------------------------------------------------------------------------------- readers
_INDEX_FIELD = re.compile(r"^\s*\d+(\s+\d+)*\s*$")


@dataclass
class Annotations:
    """Images of a benchmark and their multi-hot targets over the model classes (the lines of the tag list)."""

    image_names: list[str]
    targets: np.ndarray  # (num_images, num_classes) int64
    class_names: list[str]
    format: str
    unknown_tags: dict[str, int] = field(default_factory=dict)  # names not in the tag list -> occurrences


def read_annotations(
    path: str | os.PathLike,
    tag_list: Sequence[str] | str | os.PathLike,
    format: str = "auto",
    on_unknown: str = "error",
) -> Annotations:
    """Read a benchmark annotation file into targets over the classes of `tag_list` (its lines, duplicates kept).

    Formats: `"names"` (`image,tag1,tag2,...`, OpenImages) or `"indices"` (`image,i j k`, 0-based indices into the
    tag list, space separated, possibly none: ImageNet-Multi, HICO); `"auto"` picks `"indices"` when every label
    field is a list of integers. When a tag appears on several lines of the tag list, every one of those classes
    gets the target (several model classes map to one benchmark class). `on_unknown="error"` raises on a tag name
    that is not in the list; `"skip"` counts it in `Annotations.unknown_tags` instead.
    """
    if format not in ("auto", "names", "indices"):
        raise ValueError(f"`format` must be 'auto', 'names' or 'indices', got {format!r}")
    if on_unknown not in ("error", "skip"):
        raise ValueError(f"`on_unknown` must be 'error' or 'skip', got {on_unknown!r}")
    class_names = read_tag_list(tag_list) if isinstance(tag_list, (str, os.PathLike)) else [str(t) for t in tag_list]
    classes_of: dict[str, list[int]] = {}
    for index, name in enumerate(class_names):
        classes_of.setdefault(name, []).append(index)

    records = []
    with open(path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            image, _, rest = line.partition(",")
            image = image.strip()
            if not image:
                raise ValueError(f"{os.fspath(path)}:{line_number}: no image name in {line!r}")
            records.append((line_number, image, rest))
    if not records:
        raise ValueError(f"annotation file {os.fspath(path)!r} holds no image")
    if format == "auto":
        label_fields = [rest for _, _, rest in records if rest.strip()]
        format = "indices" if label_fields and all(_INDEX_FIELD.match(f) for f in label_fields) else "names"

    targets = np.zeros((len(records), len(class_names)), dtype=np.int64)
    unknown: dict[str, int] = {}
    for row, (line_number, _, rest) in enumerate(records):
        if format == "indices":
            if rest.strip() and not _INDEX_FIELD.match(rest):
                raise ValueError(f"{os.fspath(path)}:{line_number}: expected space-separated indices, got {rest!r}")
            names = []
            for token in rest.split():
                index = int(token)
                if index >= len(class_names):
                    raise ValueError(
                        f"{os.fspath(path)}:{line_number}: index {index} outside the tag list of {len(class_names)} tags"
                    )
                names.append(class_names[index])
        else:
            names = [name.strip() for name in rest.split(",") if name.strip()]
        for name in names:
            columns = classes_of.get(name)
            if columns is None:
                if on_unknown == "error":
                    raise ValueError(f"{os.fspath(path)}:{line_number}: tag {name!r} is not in the tag list")
                unknown[name] = unknown.get(name, 0) + 1
                continue
            targets[row, columns] = 1
    return Annotations([image for _, image, _ in records], targets, class_names, format, unknown)


# ------------------------------------------------------------------------------------------------- calibration
def calibrate_thresholds(
    scores,
    targets,
    candidates: Sequence[float] | None = None,
    default: float | Sequence[float] = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-class threshold maximizing the F1 of `score > threshold` on a labelled set.

    `candidates` defaults to 0.01, 0.02, ..., 0.99. A class without positive images keeps `default` (a number or
    one value per class, e.g. the model's current thresholds). Ties between candidates pick the smallest threshold.
    Returns `(thresholds, best_f1)`, each `(num_classes,)`.
    """
    scores, targets = _check_pair("scores", scores, targets)
    candidates = np.round(np.arange(1, 100) / 100.0, 2) if candidates is None else np.asarray(candidates, float)
    if candidates.ndim != 1 or candidates.size == 0 or (candidates <= 0).any() or (candidates >= 1).any():
        raise ValueError("`candidates` must be a non-empty list of thresholds in (0, 1)")
    num_classes = scores.shape[1]
    defaults = np.broadcast_to(np.asarray(default, dtype=np.float64), (num_classes,)).copy()
    positives = targets.sum(axis=0)
    best_f1 = np.full(num_classes, -1.0)
    best = defaults.copy()
    for threshold in np.sort(candidates):
        predicted = scores > threshold
        true_positives = (predicted * targets).sum(axis=0)
        f1 = 2 * true_positives / (predicted.sum(axis=0) + positives + PR_EPS)
        better = f1 > best_f1 + 1e-12
        best_f1 = np.where(better, f1, best_f1)
        best = np.where(better, threshold, best)
    no_positive = positives == 0
    best[no_positive] = defaults[no_positive]
    best_f1[no_positive] = 0.0
    return best, best_f1


def write_thresholds(config, thresholds, tag_indices: Sequence[int] | None = None) -> None:
    """Store calibrated thresholds in a `RamPlusConfig` (`tag_thresholds`); `tag_indices` names the model tags the
    values belong to (default: all tags, in order). The other tags keep their current thresholds."""
    values = np.asarray(thresholds, dtype=np.float64).reshape(-1).tolist()
    config.set_thresholds(values, tag_indices=None if tag_indices is None else [int(i) for i in tag_indices])


# ----------------------------------------------------------------------------------------------------- scoring
IMAGE_EXTENSIONS = ("", ".jpg", ".jpeg", ".JPEG", ".png", ".webp", ".dcm")


def find_image(images_dir: str | os.PathLike, name: str) -> str | None:
    """The file of a benchmark image name under `images_dir` (names without an extension, as in the OpenImages
    files, are tried with the usual ones)."""
    for extension in IMAGE_EXTENSIONS:
        candidate = os.path.join(images_dir, name + extension)
        if os.path.isfile(candidate):
            return candidate
    return None


def score_images(model, image_processor, paths: Sequence[str], tag_indices=None, batch_size: int = 16, progress=None):
    """Sigmoid scores `(len(paths), num_classes)` of a `RamPlusModel` (float32 numpy; the columns are the model's tags,
    or `tag_indices`, repeats allowed) and a boolean mask of the images that could be read; unreadable images are
    skipped (their rows are NaN) and the rest is kept. Tags through the package's one tagging loop (the pipeline with
    `raw_scores=True`), on the model's device; `progress(done, total)` is called after every batch."""
    indices = list(range(model.config.num_tags)) if tag_indices is None else [int(i) for i in tag_indices]
    unique = list(dict.fromkeys(indices))  # each tag scored once
    column_of = {index: column for column, index in enumerate(unique)}
    columns = [column_of[index] for index in indices]
    tag_set = TagSet.builtin(model, unique)
    device = next(model.parameters()).device
    tagger, _ = load_tagger(model, device=device, image_processor=image_processor, optimize=False)
    scores = np.full((len(paths), len(indices)), np.nan, dtype=np.float32)
    ok = np.zeros(len(paths), dtype=bool)
    done = 0
    for batch in tag_batches(tagger, paths, tag_set=tag_set, raw_scores=True, batch_size=batch_size, keep_images=False):
        for tagged in batch:
            if tagged.error is None:
                scores[tagged.index] = tagged.result.numpy()[columns]
                ok[tagged.index] = True
        done += len(batch)
        if progress is not None:
            progress(done, len(paths))
    return scores, ok


__all__ = [
    "find_image",
    "score_images",
    "Annotations",
    "average_precision",
    "calibrate_thresholds",
    "compute_metrics",
    "f1_scores",
    "mean_average_precision",
    "precision_recall",
    "read_annotations",
    "read_tag_list",
    "threshold_scores",
    "write_thresholds",
]
