import io
import json

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from transformers_ramplus import RamPlusImageProcessor, RamPlusProcessor

from conftest import REFERENCE_IMAGES, tiny_config


def original_transform(image: Image.Image, size=384) -> torch.Tensor:
    """The original inference transform written out directly: RGB, PIL bilinear resize, /255, ImageNet normalization."""
    array = np.asarray(image.convert("RGB").resize((size, size), Image.BILINEAR), dtype=np.float32) / 255.0
    mean = np.array([0.485, 0.456, 0.406], dtype=np.float32)
    std = np.array([0.229, 0.224, 0.225], dtype=np.float32)
    return torch.from_numpy(((array - mean) / std).transpose(2, 0, 1))


@pytest.fixture
def processor():
    return RamPlusImageProcessor()


def test_defaults(processor):
    assert processor.size == {"height": 384, "width": 384} or dict(processor.size)["height"] == 384
    assert processor.resample == Image.BILINEAR and not processor.do_center_crop


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "RGB"])
def test_modes_match_pil_convert(processor, mode):
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (50, 70, 3), dtype=np.uint8))
    image = rgb.convert(mode)
    out = processor(image, return_tensors="pt")["pixel_values"]
    assert out.shape == (1, 3, 384, 384)
    torch.testing.assert_close(out[0], original_transform(image), atol=1e-5, rtol=0)


def test_sixteen_bit_images_are_scaled(processor):
    array = (np.arange(40 * 30, dtype=np.uint16).reshape(40, 30) * 50).astype(np.uint16)
    image = Image.fromarray(array)
    assert image.mode.startswith("I;16")
    out = processor(image, return_tensors="pt")["pixel_values"]
    eight_bit = Image.fromarray(np.clip(np.rint(array / 257.0), 0, 255).astype(np.uint8))
    torch.testing.assert_close(out[0], original_transform(eight_bit), atol=1e-5, rtol=0)
    assert out.std() > 0.1  # not clipped to a flat white image


def test_mixed_batch_of_types_and_sizes(processor, tmp_path):
    rng = np.random.default_rng(1)
    array = rng.integers(0, 256, (33, 47, 3), dtype=np.uint8)
    path = tmp_path / "x.png"
    Image.fromarray(array).save(path)
    inputs = [
        Image.fromarray(array),
        array,
        np.moveaxis(array, -1, 0),  # channels first
        torch.from_numpy(array),
        array.astype(np.float32) / 255.0,
        str(path),
        path,
        path.read_bytes(),
    ]
    out = processor(inputs, return_tensors="pt")["pixel_values"]
    assert out.shape == (len(inputs), 3, 384, 384)
    for row in out[1:]:
        torch.testing.assert_close(row, out[0], atol=1e-5, rtol=0)


def test_reference_images_from_paths(processor, reference_outputs):
    out = processor([str(p) for p in REFERENCE_IMAGES], return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(out, reference_outputs["pixel_values"], atol=1e-5, rtol=0)


def make_rotated_jpeg(path):
    """A 40x20 image (wide) whose EXIF says 'rotate 90': upright it is 20x40 (tall)."""
    image = Image.new("RGB", (40, 20), (255, 0, 0))
    image.paste((0, 0, 255), (0, 0, 20, 20))  # left half blue
    exif = Image.Exif()
    exif[0x0112] = 6
    image.save(path, exif=exif.tobytes())


def test_exif_orientation_applied_by_default_and_optional(processor, tmp_path):
    path = tmp_path / "rotated.jpg"
    make_rotated_jpeg(path)
    with Image.open(path) as raw:
        ignored_expected = original_transform(raw)  # the original code ignores the tag
        applied_expected = original_transform(ImageOps.exif_transpose(raw))
    applied = processor(str(path), return_tensors="pt")["pixel_values"][0]
    torch.testing.assert_close(applied, applied_expected, atol=1e-5, rtol=0)
    ignored = processor(str(path), apply_exif_orientation=False, return_tensors="pt")["pixel_values"][0]
    torch.testing.assert_close(ignored, ignored_expected, atol=1e-5, rtol=0)
    assert not torch.allclose(applied, ignored, atol=1e-2)
    never = RamPlusImageProcessor(apply_exif_orientation=False)
    torch.testing.assert_close(never(str(path), return_tensors="pt")["pixel_values"][0], ignored)


def test_bad_inputs_name_the_input(processor, tmp_path):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    truncated = tmp_path / "truncated.jpg"
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 20, 30)).save(buffer, format="JPEG")
    truncated.write_bytes(buffer.getvalue()[:200])
    cases = [
        (str(empty), "empty.jpg"),
        (str(text), "notes.txt"),
        (str(truncated), "truncated.jpg"),
        (str(tmp_path / "missing.png"), "no such file"),
        (np.zeros((0, 10, 3), dtype=np.uint8), "empty"),
        (np.zeros((5, 5, 7), dtype=np.uint8), "channels"),
        (np.full((4, 4), np.nan, dtype=np.float32), "NaN"),
        (Image.new("RGB", (0, 0)), "zero size"),
        (b"", "empty bytes"),
    ]
    for item, message in cases:
        with pytest.raises(ValueError, match=message):
            processor([Image.new("RGB", (8, 8)), item], return_tensors="pt")
    with pytest.raises(TypeError, match="unsupported input type dict"):
        processor({"a": 1}, return_tensors="pt")
    with pytest.raises(ValueError, match="image 1"):
        processor([Image.new("RGB", (8, 8)), str(empty)], return_tensors="pt")


def _vocabulary_config():
    return tiny_config(num_tags=3, id2label={0: "a", 1: "b", 2: "c"}, tag_thresholds=[0.6, 0.7, 0.5], tag_names_chinese=["甲", "乙", "丙"])


def test_processor_reads_the_vocabulary_from_the_model_folder(tmp_path):
    """The vocabulary has one home, the model config: a folder with `config.json` and the image processor (what
    `evaluate --calibrate-output` writes) reloads a processor with the real names and the saved thresholds."""
    config = _vocabulary_config()
    config.save_pretrained(tmp_path)
    RamPlusImageProcessor().save_pretrained(tmp_path)
    loaded = RamPlusProcessor.from_pretrained(tmp_path)
    assert loaded.tokenizer is None
    assert loaded.tag_names == ["a", "b", "c"] and loaded.model_config.thresholds() == [0.6, 0.7, 0.5]
    tags = loaded.post_process_image_tagging(torch.logit(torch.tensor([[0.65, 0.69, 0.55]])))
    assert [t["label"] for t in tags[0]] == ["a", "c"]
    with pytest.raises(ValueError, match="no tokenizer"):
        loaded(text=["a photo"])
    # the processor's own file does not duplicate the vocabulary; an old one that does is ignored
    RamPlusProcessor.from_model_config(config).save_pretrained(tmp_path)
    assert "tag_names" not in (tmp_path / "processor_config.json").read_text()
    stale = json.loads((tmp_path / "processor_config.json").read_text())
    stale.update(tag_names=["x", "y", "z"], tag_thresholds=[0.1, 0.1, 0.1])
    (tmp_path / "processor_config.json").write_text(json.dumps(stale))
    assert RamPlusProcessor.from_pretrained(tmp_path).tag_names == ["a", "b", "c"]


def test_processor_without_a_vocabulary_says_so(tmp_path):
    processor = RamPlusProcessor()
    processor.save_pretrained(tmp_path)
    loaded = RamPlusProcessor.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="no tag vocabulary"):
        loaded.post_process_image_tagging(torch.zeros(1, 3))
    named = loaded.post_process_image_tagging(torch.tensor([[3.0, -3.0]]), threshold=0.5, tag_names=["x", "y"])
    assert named == [[{"label": "x", "score": pytest.approx(0.9526, abs=1e-4)}]]


def test_post_processing_thresholds_topk_exclude():
    processor = RamPlusProcessor.from_model_config(_vocabulary_config())
    probabilities = torch.tensor([[0.65, 0.7, 0.9], [0.1, 0.71, 0.5]])
    logits = torch.logit(probabilities)
    tags = processor.post_process_image_tagging(logits)
    # per-tag thresholds, strictly greater: 0.7 is not > 0.7 and 0.5 is not > 0.5
    assert [[t["label"] for t in image] for image in tags] == [["c", "a"], ["b"]]
    assert tags[0][0]["score"] == pytest.approx(0.9, abs=1e-6)
    assert [[t["label"] for t in image] for image in processor.post_process_image_tagging(logits, threshold=0.3)] == [
        ["c", "b", "a"],
        ["b", "c"],
    ]
    assert [t["label"] for t in processor.post_process_image_tagging(logits, threshold=0.3, top_k=1)[0]] == ["c"]
    assert [t["label"] for t in processor.post_process_image_tagging(logits, exclude=["c", 0])[0]] == []
    assert [t["label"] for t in processor.post_process_image_tagging(logits, language="zh")[0]] == ["丙", "甲"]
    for kwargs, message in [
        ({"language": "fr"}, "language"),
        ({"top_k": 0}, "top_k"),
        ({"threshold": 2.0}, "threshold"),
        ({"threshold": float("nan")}, "nan"),
        ({"threshold": [0.5, 0.5, -0.1]}, r"thresholds\[2\]"),
        ({"exclude": ["zzz"]}, "zzz"),
        ({"exclude": [9]}, "outside"),
    ]:
        with pytest.raises(ValueError, match=message):
            processor.post_process_image_tagging(logits, **kwargs)
    with pytest.raises(ValueError, match="3 tag names"):
        processor.post_process_image_tagging(torch.zeros(1, 4))
