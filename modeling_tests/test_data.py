"""Data loaders, transforms and the collator (broken images are skipped and counted)."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from transformers_ramplus.training.data import (
    RamPlusDataCollator,
    TrainTransform,
    clean_caption,
    collect_tag_names,
    load_imagefolder_dataset,
    load_json_dataset,
)

from conftest import tiny_word_tokenizer


def _write_image(path, color, size=(40, 30)):
    Image.new("RGB", size, color).save(path)


@pytest.fixture
def image_folder(tmp_path):
    _write_image(tmp_path / "red.png", (255, 0, 0))
    _write_image(tmp_path / "blue.png", (0, 0, 255))
    (tmp_path / "broken.png").write_bytes(b"not an image at all")
    records = [
        {"file_name": "red.png", "tags": ["red", "square"], "caption": "A RED square, on white!"},
        {"file_name": "broken.png", "tags": ["blue"], "captions": ["broken"]},
        {"file_name": "blue.png", "tags": ["blue"], "captions": ["a blue thing", "Blue."]},
    ]
    (tmp_path / "metadata.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return tmp_path


def test_clean_caption():
    assert clean_caption("A RED square, on white!") == "a red square on white"
    assert clean_caption(" ".join(f"w{i}" for i in range(40))).split() == [f"w{i}" for i in range(30)]


def test_json_dataset_authors_format(tmp_path):
    _write_image(tmp_path / "a.png", (10, 20, 30))
    records = [{"image_path": "a.png", "caption": ["one", "two"], "union_label_id": [3, 1, 3]}]
    (tmp_path / "train.json").write_text(json.dumps(records))
    dataset = load_json_dataset(tmp_path / "train.json")
    assert dataset[0]["image_path"] == str(tmp_path / "a.png")
    assert dataset[0]["captions"] == ["one", "two"] and dataset[0]["label_ids"] == [1, 3]
    with pytest.raises(ValueError, match="tag id 3"):
        load_json_dataset(tmp_path / "train.json", num_tags=3)


def test_imagefolder_collator_skips_and_counts_broken_images(image_folder):
    names = collect_tag_names(image_folder)
    assert names == ["red", "square", "blue"]
    label2id = {name: index for index, name in enumerate(names)}
    dataset = load_imagefolder_dataset(image_folder, label2id)
    assert dataset["label_ids"] == [[0, 1], [2], [2]]
    with pytest.raises(ValueError, match="square"):
        load_imagefolder_dataset(image_folder, {"red": 0, "blue": 1})
    tokenizer = tiny_word_tokenizer("a red square on white blue thing".split())
    collator = RamPlusDataCollator(num_tags=3, tokenizer=tokenizer, image_size=32, teacher_size=16)
    torch.manual_seed(0)
    batch = collator([dataset[i] for i in range(3)])
    assert batch["pixel_values"].shape == (2, 3, 32, 32)
    assert batch["teacher_pixel_values"].shape == (2, 3, 16, 16)
    torch.testing.assert_close(batch["labels"], torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]))
    assert int(batch["num_skipped_images"]) == 1 and collator.num_skipped == 1
    assert collator.skipped_paths == [str(image_folder / "broken.png")]
    assert batch["caption_input_ids"].shape[0] == 2
    first = tokenizer.decode(batch["caption_input_ids"][0], skip_special_tokens=True)
    assert first == "a red square on white"
    # a batch of broken images only: an empty batch, not a crash
    empty = collator([dataset[1]])
    assert empty["pixel_values"].shape[0] == 0 and int(empty["num_skipped_images"]) == 1


def test_collator_drops_captions_when_an_image_has_none(image_folder):
    dataset = load_imagefolder_dataset(image_folder, {"red": 0, "square": 1, "blue": 2})
    rows = [dataset[0], {**dataset[2], "captions": []}]
    batch = RamPlusDataCollator(3, tokenizer=tiny_word_tokenizer(["a"]), image_size=16)(rows)
    assert "caption_input_ids" not in batch and batch["pixel_values"].shape[0] == 2


def test_train_transform_is_random_but_seeded():
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (50, 70, 3), dtype=np.uint8))
    transform = TrainTransform(size=24)
    torch.manual_seed(3)
    first = transform(image)
    torch.manual_seed(3)
    again = transform(image)
    other = transform(image)
    assert first.shape == (3, 24, 24)
    torch.testing.assert_close(first, again)
    assert not torch.equal(first, other)
    left, top, right, bottom = transform.crop_box(70, 50)
    assert 0 <= left < right <= 70 and 0 <= top < bottom <= 50


def test_load_training_dataset_reads_every_format_through_datasets(tmp_path, image_folder, monkeypatch):
    import datasets
    import huggingface_hub

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)  # no network: a Hub id must fail fast
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)

    from transformers_ramplus.training.data import dataset_tag_names, load_training_dataset, prepare_dataset

    label2id = {"red": 0, "square": 1, "blue": 2}
    # metadata.jsonl folder
    raw, root = load_training_dataset(image_folder)
    assert root == image_folder and dataset_tag_names(raw) == ["red", "square", "blue"]
    prepared = prepare_dataset(raw, label2id, image_root=root)
    assert prepared["label_ids"] == [[0, 1], [2], [2]] and prepared["captions"][2] == ["a blue thing", "Blue."]
    # the authors' JSON, as a file
    (tmp_path / "authors").mkdir()
    _write_image(tmp_path / "authors" / "a.png", (1, 2, 3))
    (tmp_path / "authors" / "train.json").write_text(json.dumps([{"image_path": "a.png", "caption": ["x"], "union_label_id": [2]}]))
    raw, root = load_training_dataset(tmp_path / "authors" / "train.json")
    prepared = prepare_dataset(raw, label2id, image_root=root)
    assert prepared[0]["image_path"] == str(tmp_path / "authors" / "a.png") and prepared[0]["label_ids"] == [2]
    # a save_to_disk folder with a ClassLabel column, and the imagefolder of class subfolders
    classes = datasets.Dataset.from_dict(
        {"image": [str(image_folder / "red.png")], "label": [1]},
        features=datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["blue", "red"])}),
    )
    classes.save_to_disk(tmp_path / "saved")
    raw, _ = load_training_dataset(tmp_path / "saved")
    assert dataset_tag_names(raw) == ["blue", "red"]
    assert prepare_dataset(raw, label2id)[0]["label_ids"] == [0]  # "red" -> the model's id 0
    for name, color in (("red", (255, 0, 0)), ("blue", (0, 0, 255))):
        (tmp_path / "classes" / "train" / name).mkdir(parents=True)
        _write_image(tmp_path / "classes" / "train" / name / "1.png", color)
    raw, _ = load_training_dataset(tmp_path / "classes", split="train")
    batch = RamPlusDataCollator(3, image_size=16, train=False)(prepare_dataset(raw, label2id).to_list())
    assert sorted(batch["labels"].argmax(1).tolist()) == [0, 2]
    # clear errors
    with pytest.raises(ValueError, match="no image column 'picture'"):
        prepare_dataset(raw, label2id, image_column="picture")
    with pytest.raises(ValueError, match=r"does not know.*'square'"):
        prepare_dataset(load_training_dataset(image_folder)[0], {"red": 0, "blue": 1})
    with pytest.raises(ValueError, match="no such file or folder"):
        load_training_dataset(str(tmp_path / "missing") + "/")
    with pytest.raises(ValueError, match="no such file or folder"):
        load_training_dataset("missing.json")
    # a Hub id goes to load_dataset (offline here: datasets says it cannot find it, an OSError the CLI reports)
    with pytest.raises(OSError):
        load_training_dataset("someone/no-such-dataset-here")
    with pytest.raises(ValueError, match="tag id 7"):
        prepare_dataset(datasets.Dataset.from_dict({"image_path": ["a.png"], "label_ids": [[7]]}), num_tags=3)
