# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""Training data for RAM++: `datasets` loaders, training transforms and a collator.

Two on-disk formats are read into a `datasets.Dataset` with the columns `image_path` (str), `captions`
(list[str], possibly empty) and `label_ids` (list[int], tag ids into the model's vocabulary):

- the authors' JSON: a list of records `{"image_path": str, "caption": [str, ...], "union_label_id": [int, ...]}`
  (`load_json_dataset`); relative image paths are resolved against `image_root`;
- an image folder with a `metadata.jsonl` file, one JSON object per line: `{"file_name": "a.jpg", "tags": ["cat",
  "dog"], "caption": "..." | "captions": [...]}` with tags given by name (`load_imagefolder_dataset`).

Images are only opened by the collator (lazy loading). A broken image is skipped and counted
(`RamPlusDataCollator.num_skipped`, and `num_skipped_images` in each batch so that a trainer can log it even when
the collator runs in worker processes); a run never crashes on it.

The transforms are written with PIL, numpy and torch (no torchvision). When the collator has a `seed` (the
`RamPlusTrainer` sets it from `args.seed` and tells it the epoch) and the rows carry a `sample_id` (both loaders add
one), the random crop, flip, jitter and caption choice of a sample depend only on `(seed, epoch, sample_id)`: a run
resumed from a checkpoint sees exactly the augmentations of an uninterrupted one, whatever batches the data loader
prefetched. Without them, torch's global generator is used.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageEnhance

from .image_processing_ram_plus import ImageLoadingError, load_image


logger = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


# ------------------------------------------------------------------------------------------------------ loaders
def _resolve(path: str, root: Path | None) -> str:
    candidate = Path(path)
    if not candidate.is_absolute() and root is not None:
        candidate = root / candidate
    return str(candidate)


def _check_ids(ids, num_tags, where):
    for tag_id in ids:
        if not isinstance(tag_id, int) or isinstance(tag_id, bool) or (num_tags is not None and not 0 <= tag_id < num_tags):
            raise ValueError(f"{where}: tag id {tag_id!r} is not an integer in [0, {num_tags})")


def load_json_dataset(json_path: str | os.PathLike, image_root: str | os.PathLike | None = None, num_tags: int | None = None):
    """Read the authors' training JSON into a `datasets.Dataset` (`image_path`, `captions`, `label_ids`,
    `sample_id`).

    `image_root` defaults to the JSON file's folder; `num_tags` (the model's vocabulary size) validates the ids."""
    import datasets

    json_path = Path(json_path)
    with open(json_path, encoding="utf-8") as handle:
        records = json.load(handle)
    if not isinstance(records, list) or not records:
        raise ValueError(f"{json_path}: expected a non-empty JSON list of records")
    root = Path(image_root) if image_root is not None else json_path.parent
    rows = {"image_path": [], "captions": [], "label_ids": [], "sample_id": []}
    for index, record in enumerate(records):
        where = f"{json_path} record {index}"
        if not isinstance(record, Mapping) or not isinstance(record.get("image_path"), str):
            raise ValueError(f"{where}: needs a string `image_path`")
        captions = record.get("caption", [])
        captions = [captions] if isinstance(captions, str) else list(captions or [])
        ids = list(record.get("union_label_id", []) or [])
        _check_ids(ids, num_tags, where)
        rows["image_path"].append(_resolve(record["image_path"], root))
        rows["captions"].append([str(c) for c in captions])
        rows["label_ids"].append(sorted(set(ids)))
        rows["sample_id"].append(index)
    return datasets.Dataset.from_dict(rows, features=_features())


def _features():
    import datasets

    return datasets.Features(
        {
            "image_path": datasets.Value("string"),
            "captions": datasets.Sequence(datasets.Value("string")),
            "label_ids": datasets.Sequence(datasets.Value("int64")),
            "sample_id": datasets.Value("int64"),
        }
    )


def read_imagefolder_metadata(folder: str | os.PathLike) -> list[dict]:
    """The records of `folder/metadata.jsonl` (each with `file_name`, optional `tags`, `caption`/`captions`)."""
    folder = Path(folder)
    metadata = folder / "metadata.jsonl"
    if not metadata.is_file():
        raise ValueError(f"{folder}: no metadata.jsonl (one JSON object per line with `file_name` and `tags`)")
    records = []
    with open(metadata, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{metadata}:{line_number}: not valid JSON: {error}") from error
            if not isinstance(record, dict) or not isinstance(record.get("file_name"), str):
                raise ValueError(f"{metadata}:{line_number}: needs a string `file_name`")
            tags = record.get("tags")
            if tags is not None and (not isinstance(tags, list) or not all(isinstance(t, str) for t in tags)):
                raise ValueError(
                    f"{metadata}:{line_number}: `tags` must be a list of tag names, got {tags!r:.80}"
                    + (f' (write ["{tags}"] for one tag)' if isinstance(tags, str) else "")
                )
            records.append(record)
    if not records:
        raise ValueError(f"{metadata}: holds no record")
    return records


def collect_tag_names(folder: str | os.PathLike) -> list[str]:
    """All tag names used in an image folder's `metadata.jsonl`, in order of first appearance."""
    seen: dict[str, None] = {}
    for record in read_imagefolder_metadata(folder):
        for tag in record.get("tags", []) or []:
            seen.setdefault(str(tag), None)
    return list(seen)


def load_imagefolder_dataset(folder: str | os.PathLike, label2id: Mapping[str, int], unknown_tags: str = "error"):
    """Read an image folder with `metadata.jsonl` (tags by name) into a `datasets.Dataset`.

    `label2id` maps tag names to the model's tag ids (`model.config.label2id`). A tag not in it raises
    (`unknown_tags="error"`) or is dropped and logged (`"skip"`)."""
    import datasets

    if unknown_tags not in ("error", "skip"):
        raise ValueError(f"`unknown_tags` must be 'error' or 'skip', got {unknown_tags!r}")
    folder = Path(folder)
    rows = {"image_path": [], "captions": [], "label_ids": [], "sample_id": []}
    unknown: dict[str, int] = {}
    for index, record in enumerate(read_imagefolder_metadata(folder)):
        captions = record.get("captions", record.get("caption", []))
        captions = [captions] if isinstance(captions, str) else list(captions or [])
        ids = []
        for tag in record.get("tags", []) or []:
            if tag in label2id:
                ids.append(int(label2id[tag]))
            else:
                unknown[str(tag)] = unknown.get(str(tag), 0) + 1
        rows["image_path"].append(_resolve(record["file_name"], folder))
        rows["captions"].append([str(c) for c in captions])
        rows["label_ids"].append(sorted(set(ids)))
        rows["sample_id"].append(index)
    if unknown:
        names = sorted(unknown)
        if unknown_tags == "error":
            raise ValueError(
                f"{folder}/metadata.jsonl uses {len(names)} tags the model does not know: {names[:10]}; add them to "
                "the vocabulary (see `transformers_ramplus.training.add_tags`) or pass unknown_tags='skip'"
            )
        logger.warning("dropped %d unknown tags from %s: %s", len(names), folder, names[:10])
    return datasets.Dataset.from_dict(rows, features=_features())


# --------------------------------------------------------------------------------------------------- transforms
def _to_tensor(image: Image.Image, mean, std) -> torch.Tensor:
    array = np.asarray(image, dtype=np.float32) / 255.0
    array = (array - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


def _uniform(low: float, high: float, generator: torch.Generator | None = None) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def _randint(high: int, generator: torch.Generator | None = None) -> int:
    """A uniform integer in [0, high)."""
    return int(torch.randint(0, high, (), generator=generator))


class EvalTransform:
    """Resize to `size` x `size` (PIL bilinear, aspect ratio not kept), scale, normalize: the inference transform."""

    def __init__(self, size: int = 384, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        self.size, self.mean, self.std = int(size), tuple(mean), tuple(std)

    def __call__(self, image: Image.Image, generator: torch.Generator | None = None) -> torch.Tensor:
        return _to_tensor(image.resize((self.size, self.size), Image.BILINEAR), self.mean, self.std)


class TrainTransform:
    """Random resized crop (area `scale`, aspect `ratio`), horizontal flip, light colour jitter, then normalize.

    `jitter` is the largest relative change of brightness, contrast and saturation (0 disables it)."""

    def __init__(
        self,
        size: int = 384,
        scale: tuple[float, float] = (0.5, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        flip_probability: float = 0.5,
        jitter: float = 0.2,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
    ):
        if not 0 < scale[0] <= scale[1] <= 1:
            raise ValueError(f"`scale` must satisfy 0 < min <= max <= 1, got {scale}")
        self.size, self.scale, self.ratio = int(size), scale, ratio
        self.flip_probability, self.jitter = flip_probability, jitter
        self.mean, self.std = tuple(mean), tuple(std)

    def crop_box(self, width: int, height: int, generator: torch.Generator | None = None) -> tuple[int, int, int, int]:
        area = width * height
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target_area = area * _uniform(*self.scale, generator)
            aspect = math.exp(_uniform(*log_ratio, generator))
            w = int(round(math.sqrt(target_area * aspect)))
            h = int(round(math.sqrt(target_area / aspect)))
            if 0 < w <= width and 0 < h <= height:
                left = _randint(width - w + 1, generator)
                top = _randint(height - h + 1, generator)
                return left, top, left + w, top + h
        return 0, 0, width, height  # fall back to the whole image

    def __call__(self, image: Image.Image, generator: torch.Generator | None = None) -> torch.Tensor:
        box = self.crop_box(image.width, image.height, generator)
        image = image.crop(box).resize((self.size, self.size), Image.BILINEAR)
        if _uniform(0.0, 1.0, generator) < self.flip_probability:
            image = image.transpose(Image.FLIP_LEFT_RIGHT)
        if self.jitter > 0:
            for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
                image = enhancer(image).enhance(_uniform(1 - self.jitter, 1 + self.jitter, generator))
        return _to_tensor(image, self.mean, self.std)


# ----------------------------------------------------------------------------------------------------- captions
_PUNCTUATION = re.compile(r"[^\w\s]")


def clean_caption(text: str, max_words: int = 30) -> str:
    """Lower-case, punctuation replaced by spaces, whitespace collapsed, at most `max_words` words."""
    words = _PUNCTUATION.sub(" ", str(text).lower()).split()
    return " ".join(words[:max_words])


# ----------------------------------------------------------------------------------------------------- collator
class RamPlusDataCollator:
    """Turn dataset rows (`image_path`, `captions`, `label_ids`, optional `teacher_image_embeds`) into a batch.

    Yields `pixel_values` `(B, 3, S, S)`, multi-hot `labels` `(B, num_tags)`, and when available
    `caption_input_ids`/`caption_attention_mask` (one caption sampled per image, cleaned by `clean_caption`; only
    when a `tokenizer` is given and every image of the batch has a caption, since the alignment targets pair caption
    i with image i; or `caption_embeds` from a `caption_encoder(list[str]) -> (N, dim)` callable instead of a
    tokenizer), `teacher_pixel_values` (a `teacher_size` view with CLIP normalization, when `teacher_size` is
    set) or precomputed `teacher_image_embeds`, and `num_skipped_images`. Broken images are skipped and counted.
    """

    def __init__(
        self,
        num_tags: int,
        tokenizer=None,
        transform=None,
        image_size: int = 384,
        train: bool = True,
        teacher_size: int | None = None,
        max_caption_words: int = 30,
        max_caption_tokens: int = 77,
        seed: int | None = None,
        caption_encoder=None,
    ):
        self.num_tags = int(num_tags)
        self.tokenizer = tokenizer
        self.transform = transform or (TrainTransform(image_size) if train else EvalTransform(image_size))
        self.teacher_transform = EvalTransform(teacher_size, CLIP_MEAN, CLIP_STD) if teacher_size else None
        self.train = train
        self.max_caption_words = max_caption_words
        self.max_caption_tokens = max_caption_tokens
        self.num_skipped = 0
        self.skipped_paths: list[str] = []
        self.seed = seed
        self.epoch = 0
        self.caption_encoder = caption_encoder

    def set_epoch(self, epoch: int) -> None:
        """Augmentations of a sample depend on `(seed, epoch, sample_id)` (see the module docstring)."""
        self.epoch = int(epoch)

    def _generator(self, feature) -> torch.Generator | None:
        sample_id = feature.get("sample_id")
        if self.seed is None or sample_id is None or not self.train:
            return None
        mixed = (int(self.seed) * 1_000_003 + self.epoch * 998_244_353 + int(sample_id) * 7_919) % (2**63 - 1)
        return torch.Generator().manual_seed(mixed)

    def _load(self, feature):
        path = feature["image_path"]
        try:
            return load_image(path, int(feature.get("sample_id") or 0))
        except (ImageLoadingError, OSError, ValueError) as error:
            self.num_skipped += 1
            if len(self.skipped_paths) < 1000:
                self.skipped_paths.append(str(path))
            logger.warning("skipping a broken image: %s", error)
            return None

    def _caption(self, captions: Sequence[str], generator: torch.Generator | None = None) -> str:
        index = _randint(len(captions), generator) if self.train else 0
        return clean_caption(captions[index], self.max_caption_words)

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        pixel_values, teacher_views, labels, captions, teacher_embeds = [], [], [], [], []
        skipped = 0
        for feature in features:
            image = self._load(feature)
            if image is None:
                skipped += 1
                continue
            generator = self._generator(feature)
            pixel_values.append(self.transform(image, generator) if generator is not None else self.transform(image))
            if self.teacher_transform is not None:
                teacher_views.append(self.teacher_transform(image))
            target = torch.zeros(self.num_tags)
            ids = list(feature.get("label_ids") or [])
            if ids:
                target[torch.as_tensor(ids, dtype=torch.long)] = 1.0
            labels.append(target)
            texts = [c for c in (feature.get("captions") or []) if c and str(c).strip()]
            captions.append(self._caption(texts, generator) if texts else None)
            if feature.get("teacher_image_embeds") is not None:
                teacher_embeds.append(torch.as_tensor(feature["teacher_image_embeds"], dtype=torch.float32))
        batch: dict[str, torch.Tensor] = {"num_skipped_images": torch.tensor(skipped)}
        if not pixel_values:
            batch["pixel_values"] = torch.zeros(0, 3, 1, 1)
            batch["labels"] = torch.zeros(0, self.num_tags)
            return batch
        batch["pixel_values"] = torch.stack(pixel_values)
        batch["labels"] = torch.stack(labels)
        if teacher_views:
            batch["teacher_pixel_values"] = torch.stack(teacher_views)
        if teacher_embeds and len(teacher_embeds) == len(pixel_values):
            batch["teacher_image_embeds"] = torch.stack(teacher_embeds)
        if self.caption_encoder is not None and all(c is not None for c in captions):
            batch["caption_embeds"] = torch.as_tensor(self.caption_encoder(captions), dtype=torch.float32)
        elif self.tokenizer is not None and all(c is not None for c in captions):
            encoded = self.tokenizer(
                captions, padding=True, truncation=True, max_length=self.max_caption_tokens, return_tensors="pt"
            )
            batch["caption_input_ids"] = encoded["input_ids"]
            batch["caption_attention_mask"] = encoded["attention_mask"]
        return batch


__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "EvalTransform",
    "RamPlusDataCollator",
    "TrainTransform",
    "clean_caption",
    "collect_tag_names",
    "load_imagefolder_dataset",
    "load_json_dataset",
    "read_imagefolder_metadata",
]
