# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""Training data for RAM++: any `datasets` image dataset, training and evaluation transforms, and a collator.

**Datasets.** `load_training_dataset(name_or_path, split)` reads, through `datasets.load_dataset`:

- a Hub dataset id or a local dataset folder (`imagefolder` with class subfolders gives a `label` column, any Hub
  image dataset an `image` column), or a folder written by `Dataset.save_to_disk`;
- an image folder with a `metadata.jsonl` file, one JSON object per line: `{"file_name": "a.jpg", "tags": ["cat",
  "dog"], "caption": "..." | "captions": [...]}` (read as JSON, so that any file type, DICOM included, can be listed);
- the authors' JSON file: a list of records `{"image_path": str, "caption": [str, ...], "union_label_id": [int, ...]}`
  (relative image paths are resolved against the file's folder or `image_root`).

`prepare_dataset(dataset, label2id, ...)` turns any of them into the columns the collator reads: the image (an `image`
column, PIL or `datasets`-encoded `{"bytes", "path"}`, or an `image_path` string), `label_ids` (tags given by name
through `label2id`, by id, or as a `ClassLabel`), `captions` (list[str], possibly empty) and `sample_id`. Images stay
undecoded until the collator loads them with `load_image` (lazy, and a broken image is skipped rather than crashing
the data loader).

A broken image is skipped and counted (`RamPlusDataCollator.num_skipped`, and `num_skipped_images` in each batch so
that a trainer can log it even when the collator runs in worker processes); a run never crashes on it.

**Transforms.** Evaluation uses `ImageProcessorTransform`: exactly `RamPlusImageProcessor`, the inference
preprocessing (one definition for inference and evaluation). `TrainTransform` draws a random resized crop, a flip and
a light colour jitter in PIL, then hands the image to the same image processor (resize, rescale, normalize). When the
collator has a `seed` (the `RamPlusTrainer` sets it from `args.seed` and tells it the epoch) and the rows carry a
`sample_id`, the random crop, flip, jitter and caption choice of a sample depend only on `(seed, epoch, sample_id)`: a
run resumed from a checkpoint sees exactly the augmentations of an uninterrupted one, whatever batches the data loader
prefetched. Without them, torch's global generator is used.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageEnhance

from ..io.jsonfiles import check_json_file
from ..models.ram_plus.image_processing_ram_plus import ImageLoadingError, RamPlusImageProcessor, load_image
from ..models.ram_plus.processing_ram_plus import MAX_TEXT_TOKENS


logger = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# column names tried in order when none is given
IMAGE_COLUMNS = ("image", "image_path", "img", "file_name", "path")
TAG_COLUMNS = ("label_ids", "tags", "union_label_id", "labels", "label")
CAPTION_COLUMNS = ("captions", "caption", "text")


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


def load_training_dataset(name_or_path: str | os.PathLike, split: str = "train", **load_kwargs):
    """Load a dataset with `datasets`: a Hub id or local dataset folder (`load_dataset(name, split=split)`), a folder
    written by `save_to_disk`, an image folder with `metadata.jsonl`, or a JSON / JSON Lines file (the authors' format).

    Returns `(dataset, image_root)`: `image_root` is the folder relative image paths of the records refer to (None
    for datasets that carry their images)."""
    import datasets

    source = os.fspath(name_or_path)
    path = Path(source)
    if path.is_file():
        if path.suffix.lower() not in (".json", ".jsonl"):
            raise ValueError(f"{path}: a dataset file must be JSON (the authors' format) or JSON Lines")
        return _load_json_records(path, **load_kwargs), path.parent
    if path.is_dir():
        if (path / "metadata.jsonl").is_file():
            return _load_json_records(path / "metadata.jsonl", **load_kwargs), path
        if (path / "state.json").is_file() and (path / "dataset_info.json").is_file():
            loaded = datasets.load_from_disk(str(path))
            if isinstance(loaded, datasets.DatasetDict):
                if split not in loaded:
                    raise ValueError(f"{path} has no split {split!r}; it has {sorted(loaded)}")
                loaded = loaded[split]
            return loaded, path
        return datasets.load_dataset(str(path), split=split, **load_kwargs), path
    looks_local = (
        source.startswith((os.path.sep, ".", "~"))
        or source.endswith(os.path.sep)
        or path.suffix.lower() in (".json", ".jsonl")
        or source.count("/") > 1
    )
    if looks_local:
        raise ValueError(f"{source}: no such file or folder")
    return datasets.load_dataset(source, split=split, **load_kwargs), None  # a Hub dataset id ("user/name")


def _load_json_records(path: Path, **load_kwargs):
    import datasets

    check_json_file(path)  # a deeply nested file crashes pyarrow (the process, not an exception)
    try:
        dataset = datasets.load_dataset("json", data_files=str(path), split="train", **load_kwargs)
    except Exception as error:  # datasets wraps JSON errors in its own exception types
        raise ValueError(f"{path}: not a readable JSON / JSON Lines dataset: {error}") from error
    if len(dataset) == 0:
        raise ValueError(f"{path}: holds no record")
    return dataset


def _find_column(columns: Sequence[str], requested: str | None, candidates: Sequence[str], what: str, required=True):
    if requested is not None:
        if requested not in columns:
            raise ValueError(f"the dataset has no {what} column {requested!r}; its columns are {list(columns)}")
        return requested
    for name in candidates:
        if name in columns:
            return name
    if required:
        raise ValueError(
            f"no {what} column found among {list(columns)} (tried {list(candidates)}); name it with the "
            f"{what}_column argument"
        )
    return None


def _class_names(dataset, column: str) -> list[str] | None:
    """Names of a `ClassLabel` column (or a list of `ClassLabel`), else None."""
    import datasets

    feature = dataset.features.get(column) if dataset.features is not None else None
    inner = getattr(feature, "feature", None)
    for candidate in (feature, inner):
        if isinstance(candidate, datasets.ClassLabel):
            return list(candidate.names)
    return None


def _as_list(value) -> list:
    if value is None:
        return []
    if isinstance(value, (str, int, np.integer)):
        return [value]
    return list(value)


def dataset_tag_names(dataset, tags_column: str | None = None) -> list[str]:
    """The tag names a dataset uses, in order of first appearance (`ClassLabel` names first); ids are not names."""
    column = _find_column(dataset.column_names, tags_column, TAG_COLUMNS, "tags")
    classes = _class_names(dataset, column)
    if classes is not None:
        return classes
    seen: dict[str, None] = {}
    for value in dataset[column]:
        for tag in _as_list(value):
            if isinstance(tag, str):
                seen.setdefault(tag, None)
    return list(seen)


def prepare_dataset(
    dataset,
    label2id: Mapping[str, int] | None = None,
    image_column: str | None = None,
    tags_column: str | None = None,
    caption_column: str | None = None,
    image_root: str | os.PathLike | None = None,
    num_tags: int | None = None,
    unknown_tags: str = "error",
    require_tags: bool = True,
):
    """Standard columns for `RamPlusDataCollator`: the image (`image`, left undecoded, or `image_path` resolved
    against `image_root`), `label_ids` (names mapped through `label2id`, ids checked against `num_tags`),
    `captions` (list[str]) and `sample_id`. A tag name not in `label2id` raises (`unknown_tags="error"`) or is
    dropped and logged (`"skip"`)."""
    import datasets

    if unknown_tags not in ("error", "skip"):
        raise ValueError(f"`unknown_tags` must be 'error' or 'skip', got {unknown_tags!r}")
    columns = dataset.column_names
    image_key = _find_column(columns, image_column, IMAGE_COLUMNS, "image")
    tags_key = _find_column(columns, tags_column, TAG_COLUMNS, "tags", required=require_tags)
    caption_key = _find_column(columns, caption_column, CAPTION_COLUMNS, "caption", required=False)
    # metadata.jsonl records may use `caption` or `captions`: read both when no column is named
    extra_caption = None
    if caption_column is None and caption_key in ("caption", "captions"):
        other = "captions" if caption_key == "caption" else "caption"
        extra_caption = other if other in columns else None
    if num_tags is None and label2id is not None:
        num_tags = len(label2id)
    classes = _class_names(dataset, tags_key) if tags_key else None
    root = Path(image_root) if image_root is not None else None
    feature = dataset.features.get(image_key) if dataset.features is not None else None
    is_image_feature = isinstance(feature, datasets.Image)
    if is_image_feature and feature.decode:
        dataset = dataset.cast_column(image_key, datasets.Image(decode=False))  # decoded (and skipped) by the collator
    unknown: dict[str, int] = {}

    def convert(row, index):
        ids = []
        for tag in _as_list(row[tags_key]) if tags_key else []:
            if isinstance(tag, str):
                if label2id is None:
                    raise ValueError(f"row {index}: tag {tag!r} is a name, but no `label2id` was given")
                if tag in label2id:
                    ids.append(int(label2id[tag]))
                else:
                    unknown[tag] = unknown.get(tag, 0) + 1
            else:
                tag_id = int(tag) if isinstance(tag, (int, np.integer)) and not isinstance(tag, bool) else tag
                if classes is not None and isinstance(tag_id, int) and label2id is not None:
                    if not 0 <= tag_id < len(classes):
                        raise ValueError(f"row {index}: class id {tag_id} outside the {len(classes)} classes")
                    name = classes[tag_id]
                    if name not in label2id:
                        unknown[name] = unknown.get(name, 0) + 1
                        continue
                    tag_id = int(label2id[name])
                _check_ids([tag_id], num_tags, f"row {index}")
                ids.append(tag_id)
        captions = [] if caption_key is None else _as_list(row[caption_key])
        if extra_caption is not None:
            captions += _as_list(row[extra_caption])
        out = {"label_ids": sorted(set(ids)), "captions": [str(c) for c in captions if c is not None], "sample_id": index}
        if not is_image_feature:
            value = row[image_key]
            if not isinstance(value, str):
                raise ValueError(f"row {index}: the image column {image_key!r} holds {type(value).__name__}, not a path")
            out["image_path"] = _resolve(value, root)
        return out

    removed = [c for c in (tags_key, caption_key, extra_caption, "sample_id") if c and c in columns]
    if not is_image_feature and image_key != "image_path":
        removed.append(image_key)
    features = {"label_ids": datasets.Sequence(datasets.Value("int64")), "captions": datasets.Sequence(datasets.Value("string")), "sample_id": datasets.Value("int64")}
    prepared = dataset.map(convert, with_indices=True, remove_columns=removed, load_from_cache_file=False, desc=None)
    if is_image_feature and image_key != "image":
        prepared = prepared.rename_column(image_key, "image")
    if unknown:
        names = sorted(unknown)
        if unknown_tags == "error":
            raise ValueError(
                f"the dataset uses {len(names)} tags the model does not know: {names[:10]}; add them to the "
                "vocabulary (see `transformers_ramplus.training.trainer.add_tags`) or pass unknown_tags='skip'"
            )
        logger.warning("dropped %d unknown tags: %s", len(names), names[:10])
    keep = [c for c in ("image", "image_path", "label_ids", "captions", "sample_id", "teacher_image_embeds") if c in prepared.column_names]
    prepared = prepared.select_columns(keep)
    return prepared.cast(datasets.Features({**{k: v for k, v in prepared.features.items()}, **features}))


def load_json_dataset(json_path: str | os.PathLike, image_root: str | os.PathLike | None = None, num_tags: int | None = None):
    """Read the authors' training JSON (through `load_dataset("json")`) into a `datasets.Dataset` (`image_path`,
    `captions`, `label_ids`, `sample_id`). `image_root` defaults to the JSON file's folder; `num_tags` (the model's
    vocabulary size) validates the ids."""
    json_path = Path(json_path)
    dataset, root = load_training_dataset(json_path)
    if "image_path" not in dataset.column_names:
        raise ValueError(f"{json_path}: records need a string `image_path`")
    return prepare_dataset(
        dataset, image_column="image_path", tags_column="union_label_id" if "union_label_id" in dataset.column_names else None,
        caption_column="caption" if "caption" in dataset.column_names else None,
        image_root=image_root if image_root is not None else root, num_tags=num_tags, require_tags=False,
    )


def _metadata_dataset(folder: str | os.PathLike):
    """`folder/metadata.jsonl` through `load_training_dataset`, checked to name its images: `(dataset, root)`."""
    folder = Path(folder)
    if not (folder / "metadata.jsonl").is_file():
        raise ValueError(f"{folder}: no metadata.jsonl (one JSON object per line with `file_name` and `tags`)")
    dataset, root = load_training_dataset(folder)
    if "file_name" not in dataset.column_names:
        raise ValueError(f"{folder}/metadata.jsonl: records need a string `file_name`")
    return dataset, root


def read_imagefolder_metadata(folder: str | os.PathLike) -> list[dict]:
    """The records of `folder/metadata.jsonl` (each with `file_name`, optional `tags`, `caption`/`captions`)."""
    return _metadata_dataset(folder)[0].to_list()


def collect_tag_names(folder: str | os.PathLike) -> list[str]:
    """All tag names used in an image folder's `metadata.jsonl`, in order of first appearance."""
    dataset, _ = load_training_dataset(folder)
    return dataset_tag_names(dataset, "tags") if "tags" in dataset.column_names else []


def load_imagefolder_dataset(folder: str | os.PathLike, label2id: Mapping[str, int], unknown_tags: str = "error"):
    """Read an image folder with `metadata.jsonl` (tags by name) into a `datasets.Dataset` (`image_path`,
    `captions`, `label_ids`, `sample_id`).

    `label2id` maps tag names to the model's tag ids (`model.config.label2id`). A tag not in it raises
    (`unknown_tags="error"`) or is dropped and logged (`"skip"`)."""
    dataset, root = _metadata_dataset(folder)
    return prepare_dataset(
        dataset, label2id, image_column="file_name", tags_column="tags" if "tags" in dataset.column_names else None,
        image_root=root, unknown_tags=unknown_tags, require_tags=False,
    )


# --------------------------------------------------------------------------------------------------- transforms
def _uniform(low: float, high: float, generator: torch.Generator | None = None) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def _randint(high: int, generator: torch.Generator | None = None) -> int:
    """A uniform integer in [0, high)."""
    return int(torch.randint(0, high, (), generator=generator))


def _image_processor(image_processor=None, size: int | None = None, mean=None, std=None) -> RamPlusImageProcessor:
    """`image_processor`, or a `RamPlusImageProcessor` of `size` (default 384) and `mean`/`std` (default ImageNet)."""
    if image_processor is not None:
        if size is not None or mean is not None or std is not None:
            raise ValueError("pass either an `image_processor` or `size`/`mean`/`std`, not both")
        return image_processor
    kwargs = {"size": {"height": int(size or 384), "width": int(size or 384)}}
    if mean is not None:
        kwargs["image_mean"] = list(mean)
    if std is not None:
        kwargs["image_std"] = list(std)
    return RamPlusImageProcessor(**kwargs)


class ImageProcessorTransform:
    """The deterministic evaluation transform: exactly the image processor's inference preprocessing (for
    `RamPlusImageProcessor`: resize to its size with PIL bilinear, rescale, normalize), so that evaluation sees the
    images as inference does. `ImageProcessorTransform(size=224, mean=CLIP_MEAN, std=CLIP_STD)` is the teacher's
    view."""

    def __init__(self, image_processor=None, size: int | None = None, mean=None, std=None):
        self.image_processor = _image_processor(image_processor, size, mean, std)

    @property
    def size(self) -> int:
        return int(self.image_processor.size["height"])

    def __call__(self, image: Image.Image, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.image_processor(images=image, return_tensors="pt")["pixel_values"][0]


class TrainTransform:
    """Random resized crop (area `scale`, aspect `ratio`), horizontal flip, light colour jitter, then the image
    processor (resize, rescale, normalize: the same definition as inference).

    `jitter` is the largest relative change of brightness, contrast and saturation (0 disables it). Give the model's
    `image_processor`, or `size` (and `mean`/`std`) for a `RamPlusImageProcessor` of that size."""

    def __init__(
        self,
        size: int | None = None,
        scale: tuple[float, float] = (0.5, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        flip_probability: float = 0.5,
        jitter: float = 0.2,
        mean=None,
        std=None,
        image_processor=None,
    ):
        if not 0 < scale[0] <= scale[1] <= 1:
            raise ValueError(f"`scale` must satisfy 0 < min <= max <= 1, got {scale}")
        self.image_processor = _image_processor(image_processor, size, mean, std)
        self.scale, self.ratio = scale, ratio
        self.flip_probability, self.jitter = flip_probability, jitter

    @property
    def size(self) -> int:
        return int(self.image_processor.size["height"])

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
        image = image.crop(self.crop_box(image.width, image.height, generator))
        if _uniform(0.0, 1.0, generator) < self.flip_probability:
            image = image.transpose(Image.FLIP_LEFT_RIGHT)
        if self.jitter > 0:
            for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
                image = enhancer(image).enhance(_uniform(1 - self.jitter, 1 + self.jitter, generator))
        return self.image_processor(images=image, return_tensors="pt")["pixel_values"][0]


# ----------------------------------------------------------------------------------------------------- captions
_PUNCTUATION = re.compile(r"[^\w\s]")


def clean_caption(text: str, max_words: int = 30) -> str:
    """Lower-case, punctuation replaced by spaces, whitespace collapsed, at most `max_words` words."""
    words = _PUNCTUATION.sub(" ", str(text).lower()).split()
    return " ".join(words[:max_words])


# ----------------------------------------------------------------------------------------------------- collator
class RamPlusDataCollator:
    """Turn dataset rows into a batch.

    A row holds an image (`image`: PIL, `datasets`-encoded `{"bytes", "path"}`, bytes, array or path; or
    `image_path`), tags (`label_ids`: ids, or names mapped through `label2id`; other column names with
    `tags_column`), optional captions (`captions` / `caption`), optional `teacher_image_embeds` and `sample_id`.

    Yields `pixel_values` `(B, 3, S, S)`, multi-hot `labels` `(B, num_tags)`, and when available
    `caption_input_ids`/`caption_attention_mask` (one caption sampled per image, cleaned by `clean_caption`; only
    when a `tokenizer` is given and every image of the batch has a caption, since the alignment targets pair caption
    i with image i; or `caption_embeds` from a `caption_encoder(list[str]) -> (N, dim)` callable instead of a
    tokenizer), `teacher_pixel_values` (a `teacher_size` view with CLIP normalization, when `teacher_size` is
    set) or precomputed `teacher_image_embeds`, and `num_skipped_images`. Broken images are skipped and counted.

    RAM's caption loss (`text_generation`): with `caption_config` (a RAM model's `config.caption_config`, its BERT text
    side), `tag_names` (the model's) and its BERT `tokenizer`, the captions become `caption_input_ids` /
    `caption_attention_mask` / `caption_labels` (the prompt prepended unless `add_prompt=False`, `[DEC]` first, padding and prompt masked) and
    each image's tags the tag text `tag_input_ids` / `tag_attention_mask` (`" | "`-joined names, `[ENC]` first), as
    `RamModel` takes them; `RamPlusDataCollator.for_model(model, tokenizer)` sets these from a model.

    `train=True` uses `TrainTransform` (augmented), `train=False` the deterministic `ImageProcessorTransform` (the
    inference preprocessing); both are built on `image_processor` (default: a `RamPlusImageProcessor` of
    `image_size`). `for_eval()` returns the evaluation twin of a training collator.
    """

    def __init__(
        self,
        num_tags: int,
        tokenizer=None,
        transform=None,
        image_size: int | None = None,
        train: bool = True,
        teacher_size: int | None = None,
        max_caption_words: int = 30,
        max_caption_tokens: int = MAX_TEXT_TOKENS,
        seed: int | None = None,
        caption_encoder=None,
        image_processor=None,
        label2id: Mapping[str, int] | None = None,
        image_column: str | None = None,
        tags_column: str | None = None,
        caption_column: str | None = None,
        image_root: str | os.PathLike | None = None,
        caption_config=None,
        tag_names: Sequence[str] | None = None,
        add_prompt: bool = True,
    ):
        self.num_tags = int(num_tags)
        if caption_config is not None:
            if tokenizer is None:
                raise ValueError("`caption_config` (RAM's caption loss) needs the model's BERT `tokenizer`")
            if tag_names is None or len(tag_names) != self.num_tags:
                raise ValueError(f"`caption_config` needs the model's {self.num_tags} `tag_names` (for the tag text)")
        self.caption_config = caption_config
        self.tag_names = list(tag_names) if tag_names is not None else None
        self.add_prompt = add_prompt
        self.tokenizer = tokenizer
        if image_processor is None:
            image_processor = _image_processor(size=image_size or 384)
        elif image_size is not None and int(image_processor.size["height"]) != int(image_size):
            image_processor = _image_processor(
                size=image_size, mean=image_processor.image_mean, std=image_processor.image_std
            )
        self.image_processor = image_processor
        self.transform = transform or (
            TrainTransform(image_processor=image_processor) if train else ImageProcessorTransform(image_processor)
        )
        self.teacher_size = teacher_size
        self.teacher_transform = ImageProcessorTransform(size=teacher_size, mean=CLIP_MEAN, std=CLIP_STD) if teacher_size else None
        self.train = train
        self.max_caption_words = max_caption_words
        self.max_caption_tokens = max_caption_tokens
        self.num_skipped = 0
        self.skipped_paths: list[str] = []
        self.seed = seed
        self.epoch = 0
        self.caption_encoder = caption_encoder
        self.label2id = dict(label2id) if label2id is not None else None
        self.image_column, self.tags_column, self.caption_column = image_column, tags_column, caption_column
        self.image_root = Path(image_root) if image_root is not None else None

    def for_eval(self) -> "RamPlusDataCollator":
        """The deterministic twin of this collator for `eval_dataset`: the image processor's own preprocessing, the
        first caption, the same tags and columns."""
        twin = RamPlusDataCollator(
            self.num_tags, tokenizer=self.tokenizer, train=False, teacher_size=self.teacher_size,
            max_caption_words=self.max_caption_words, max_caption_tokens=self.max_caption_tokens,
            caption_encoder=self.caption_encoder, image_processor=self.image_processor, label2id=self.label2id,
            image_column=self.image_column, tags_column=self.tags_column, caption_column=self.caption_column,
            image_root=self.image_root, caption_config=self.caption_config, tag_names=self.tag_names,
            add_prompt=self.add_prompt,
        )
        return twin

    @classmethod
    def for_model(cls, model, tokenizer=None, **kwargs) -> RamPlusDataCollator:
        """A collator for `model`: its tag count, names (`label2id`), image size and, for a RAM model with its text
        side (`config.caption_config`), the inputs of its caption loss (`tokenizer`: its BERT tokenizer)."""
        config = model.config
        kwargs.setdefault("image_size", int(config.vision_config.image_size))
        kwargs.setdefault("label2id", {name: index for index, name in enumerate(config.tag_names)})
        caption_config = getattr(config, "caption_config", None)
        if caption_config is not None and tokenizer is not None:
            kwargs.setdefault("caption_config", caption_config)
            kwargs.setdefault("tag_names", config.tag_names)
        return cls(config.num_tags, tokenizer=tokenizer, **kwargs)

    def set_epoch(self, epoch: int) -> None:
        """Augmentations of a sample depend on `(seed, epoch, sample_id)` (see the module docstring)."""
        self.epoch = int(epoch)

    def _generator(self, feature) -> torch.Generator | None:
        sample_id = feature.get("sample_id")
        if self.seed is None or sample_id is None or not self.train:
            return None
        mixed = (int(self.seed) * 1_000_003 + self.epoch * 998_244_353 + int(sample_id) * 7_919) % (2**63 - 1)
        return torch.Generator().manual_seed(mixed)

    def _image_source(self, feature):
        if self.image_column is not None:
            if self.image_column not in feature:
                raise KeyError(f"row has no image column {self.image_column!r}; its keys are {sorted(feature)}")
            value = feature[self.image_column]
        elif feature.get("image") is not None:
            value = feature["image"]
        elif feature.get("image_path") is not None:
            value = feature["image_path"]
        else:
            raise KeyError(f"row has no `image` or `image_path` (keys {sorted(feature)}); set `image_column`")
        if isinstance(value, Mapping):  # datasets' undecoded Image: {"bytes": ..., "path": ...}
            value = value.get("bytes") or value.get("path")
        if isinstance(value, str) and self.image_root is not None and not value.startswith(("http://", "https://")):
            value = _resolve(value, self.image_root)
        return value

    def _load(self, feature):
        source = None
        try:
            source = self._image_source(feature)
            index = int(feature.get("sample_id") or 0)  # named in the message
            if hasattr(self.image_processor, "load_image"):  # the processor's reading options (EXIF, DICOM, limits)
                return self.image_processor.load_image(source, index)
            if hasattr(self.image_processor, "load_images"):
                return self.image_processor.load_images([source])[0]
            return load_image(source, index)
        except (ImageLoadingError, OSError, ValueError, TypeError) as error:
            self.num_skipped += 1
            if len(self.skipped_paths) < 1000:
                self.skipped_paths.append(str(source) if isinstance(source, (str, os.PathLike)) else repr(type(source)))
            logger.warning("skipping a broken image: %s", error)
            return None

    def _label_ids(self, feature) -> list[int]:
        if self.tags_column is not None:
            value = feature.get(self.tags_column)
        else:
            value = next((feature[c] for c in TAG_COLUMNS if feature.get(c) is not None), None)
        ids = []
        for tag in _as_list(value):
            if isinstance(tag, str):
                if self.label2id is None or tag not in self.label2id:
                    raise ValueError(
                        f"tag {tag!r} is not in the model's vocabulary"
                        + ("" if self.label2id is not None else " (tags given by name need `label2id`)")
                    )
                ids.append(int(self.label2id[tag]))
            else:
                if isinstance(tag, bool) or not isinstance(tag, (int, np.integer)) or not 0 <= int(tag) < self.num_tags:
                    raise ValueError(f"tag id {tag!r} is not an integer in [0, {self.num_tags})")
                ids.append(int(tag))
        return ids

    def _captions(self, feature) -> list[str]:
        if self.caption_column is not None:
            values = _as_list(feature.get(self.caption_column))
        else:
            values = []
            for column in CAPTION_COLUMNS:
                values += _as_list(feature.get(column))
        return [str(c) for c in values if c and str(c).strip()]

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
            ids = self._label_ids(feature)
            if ids:
                target[torch.as_tensor(ids, dtype=torch.long)] = 1.0
            labels.append(target)
            texts = self._captions(feature)
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
        if self.caption_config is not None and all(c is not None for c in captions):
            batch.update(self._text_generation_inputs(batch["labels"], captions))
        elif self.caption_encoder is not None and all(c is not None for c in captions):
            batch["caption_embeds"] = torch.as_tensor(self.caption_encoder(captions), dtype=torch.float32)
        elif self.tokenizer is not None and all(c is not None for c in captions):
            encoded = self.tokenizer(
                captions, padding=True, truncation=True, max_length=self.max_caption_tokens, return_tensors="pt"
            )
            batch["caption_input_ids"] = encoded["input_ids"]
            batch["caption_attention_mask"] = encoded["attention_mask"]
        return batch

    def _text_generation_inputs(self, labels: torch.Tensor, captions: list[str]) -> dict[str, torch.Tensor]:
        """RAM's caption-loss inputs: the captions behind the prompt, and each image's tags as the tag text."""
        from ..models.tag2text.modeling_tag2text_text import caption_text_inputs, tag_text_inputs

        config = self.caption_config
        prompt = config.prompt
        texts = list(captions)
        if self.add_prompt:  # as the authors' caption datasets: the prompt starts every training caption
            texts = [c if c.lower().startswith(prompt.strip().lower()) else prompt + c for c in texts]
        tag_texts = [" | ".join(self.tag_names[i] for i in row.nonzero().flatten().tolist()) for row in labels == 1]
        tags = tag_text_inputs(config, self.tokenizer, tag_texts)
        caption = caption_text_inputs(config, self.tokenizer, texts)
        return {
            "tag_input_ids": tags["input_ids"],
            "tag_attention_mask": tags["attention_mask"],
            "caption_input_ids": caption["input_ids"],
            "caption_attention_mask": caption["attention_mask"],
            "caption_labels": caption["labels"],
        }


__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "ImageProcessorTransform",
    "RamPlusDataCollator",
    "TrainTransform",
    "clean_caption",
    "collect_tag_names",
    "dataset_tag_names",
    "load_imagefolder_dataset",
    "load_json_dataset",
    "load_training_dataset",
    "prepare_dataset",
    "read_imagefolder_metadata",
]
