"""`fast_resize` (issue 25): torch's antialiased uint8 resize instead of PIL's, off by default. What it gives (the
reference preprocessing's pixels within one grey level), where it applies (bilinear and bicubic; other filters keep
PIL's), that the processor's call, `resize_ahead` and the uint8 feed agree under it, and how `ramplus tag
--fast-resize` records it for resuming."""

import json

import numpy as np
import pytest
import torch
from conftest import REFERENCE_IMAGES
from PIL import Image

from transformers_ramplus.cli.main import main
from transformers_ramplus.inference.tagging import load_tagger, tag_batches
from transformers_ramplus.models.ram_plus.image_processing_ram_plus import (
    RamPlusImageProcessor,
    resize_uint8,
    rgb_array,
)


ONE_LEVEL = 1 / 255 / min(RamPlusImageProcessor.image_std)  # one grey level, in normalized units


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    """A 1600x1200 JPEG of a reference photo."""
    path = tmp_path_factory.mktemp("fast-resize") / "big.jpg"
    Image.open(REFERENCE_IMAGES[0]).convert("RGB").resize((1600, 1200), Image.BICUBIC).save(path, quality=92)
    return path


def test_fast_resize_is_off_by_default_and_within_one_level_of_the_reference(reference_outputs):
    assert RamPlusImageProcessor().fast_resize is False
    fast = RamPlusImageProcessor(fast_resize=True)
    got = fast([str(path) for path in REFERENCE_IMAGES], return_tensors="pt")["pixel_values"]
    want = reference_outputs["pixel_values"]  # the authors' preprocessing: PIL's bilinear resize
    assert got.shape == want.shape
    difference = (got - want).abs()
    assert difference.max() <= ONE_LEVEL + 1e-5
    assert 0 < (difference > 1e-5).float().mean() < 0.01  # torch's kernel, not PIL's: a few values differ by one
    assert RamPlusImageProcessor.from_dict(fast.to_dict()).fast_resize is True  # kept in preprocessor_config.json


@pytest.mark.parametrize("resample", [Image.BILINEAR, Image.BICUBIC])
@pytest.mark.parametrize("size", [(1600, 1200), (200, 150)])  # down and up
def test_fast_resize_matches_pil_within_one_level(resample, size):
    image = Image.open(REFERENCE_IMAGES[1]).convert("RGB").resize(size, Image.BICUBIC)
    exact = RamPlusImageProcessor(resample=resample).resize_ahead(image)
    fast = RamPlusImageProcessor(resample=resample, fast_resize=True).resize_ahead(image)
    assert fast.mode == "RGB" and fast.size == exact.size == (384, 384)
    difference = np.abs(np.asarray(fast, dtype=int) - np.asarray(exact, dtype=int))
    bound = 2 if resample == Image.BICUBIC and size[0] < 384 else 1  # bicubic enlargement: one value off by 2 here
    assert difference.max() <= bound and (difference == 0).mean() > 0.99


def test_call_resize_ahead_and_uint8_feed_agree_under_fast_resize(photo):
    fast = RamPlusImageProcessor(fast_resize=True)
    exact = RamPlusImageProcessor()
    image = fast.load_image(str(photo))
    by_call = fast(image, return_tensors="pt")["pixel_values"]
    resized = fast.resize_ahead(image)
    assert torch.equal(fast(resized, return_tensors="pt")["pixel_values"], by_call)
    assert torch.equal(exact(exact.resize_ahead(image, fast_resize=True), return_tensors="pt")["pixel_values"], by_call)
    assert fast.supports_uint8_batches()
    fed = fast.pixel_values_from_uint8(torch.from_numpy(np.asarray(resized).copy())[None])
    assert torch.equal(fed, by_call)
    # per call the other way: PIL's resize, the reference pixels
    assert torch.equal(exact(fast.resize_ahead(image, fast_resize=False), return_tensors="pt")["pixel_values"],
                       exact(image, return_tensors="pt")["pixel_values"])
    assert not torch.equal(exact(image, return_tensors="pt")["pixel_values"], by_call)


def test_other_filters_keep_pils_resize():
    image = Image.open(REFERENCE_IMAGES[0]).convert("RGB")
    for resample in (Image.NEAREST, Image.LANCZOS, Image.BOX, Image.HAMMING):
        exact = RamPlusImageProcessor(resample=resample)
        fast = RamPlusImageProcessor(resample=resample, fast_resize=True)
        assert np.array_equal(np.asarray(fast.resize_ahead(image)), np.asarray(exact.resize_ahead(image))), resample
        assert torch.equal(fast(image, return_tensors="pt")["pixel_values"], exact(image, return_tensors="pt")["pixel_values"])


@pytest.mark.parametrize("size", [(1, 1), (5, 300), (301, 129), (640, 256)])  # rows: one, fewer than a strip, odd
def test_rgb_array_is_a_writable_copy_of_the_pixels(size):
    image = Image.open(REFERENCE_IMAGES[0]).convert("RGB").resize(size)
    pixels = rgb_array(image)
    assert pixels.shape == (size[1], size[0], 3) and pixels.dtype == np.uint8 and pixels.flags.writeable
    assert np.array_equal(pixels, np.asarray(image))
    assert np.array_equal(rgb_array(image, rows=7), pixels)


def test_resize_uint8_leaves_its_input_alone():
    pixels = np.asarray(Image.open(REFERENCE_IMAGES[1]).convert("RGB")).copy()
    before = pixels.copy()
    out = resize_uint8(pixels, 96, 128, "bilinear")
    assert out.shape == (96, 128, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
    assert np.array_equal(pixels, before)


def test_tag_batches_fast_resize_overrides_the_processor(converted_tiny, photo):
    tagger, _ = load_tagger(str(converted_tiny))
    assert tagger.image_processor.fast_resize is False

    def scores(**options):
        (batch,) = tag_batches(tagger, [str(photo)], raw_scores=True, **options)
        return torch.as_tensor(batch[0].result["scores"] if isinstance(batch[0].result, dict) else batch[0].result)

    exact, fast = scores(), scores(fast_resize=True)
    assert torch.equal(scores(fast_resize=False), exact)
    assert not torch.equal(fast, exact)
    pixels = RamPlusImageProcessor(fast_resize=True)(str(photo), return_tensors="pt")["pixel_values"]
    with torch.inference_mode():
        logits = tagger.model(pixel_values=pixels.to(tagger.model.dtype)).logits
    torch.testing.assert_close(fast.float().reshape(-1), torch.sigmoid(logits.float()).reshape(-1), atol=1e-6, rtol=0)


def test_ramplus_tag_fast_resize_is_recorded_and_refuses_a_mixed_resume(converted_tiny, photo, tmp_path, capsys):
    output = tmp_path / "tags.jsonl"

    def tag(out, *extra):
        args = ["tag", str(photo), "--model", str(converted_tiny), "--no-progress", "-o", str(out)]
        return main([*args, "--threshold", "0", *extra])

    assert tag(output) == 0
    exact = {t["label"]: t["score"] for t in json.loads(output.read_text().splitlines()[0])["tags"]}
    assert tag(output, "--fast-resize") != 0  # written with PIL's resize: not resumed with other pixels
    assert "fast_resize" in capsys.readouterr().err
    assert tag(output, "--fast-resize", "--overwrite") == 0
    fast = json.loads(output.read_text().splitlines()[0])["tags"]
    assert {t["label"] for t in fast} == set(exact)  # threshold 0: every tag, with scores close to PIL's resize
    assert np.allclose([t["score"] for t in fast], [exact[t["label"]] for t in fast], atol=0.01)
    assert [t["score"] for t in fast] != [exact[t["label"]] for t in fast]
    assert tag(output) != 0  # and the other way: written with torch's resize, not resumed with PIL's
    assert "--fast-resize" in capsys.readouterr().err
    # reading processes resize alike (the setting travels with the pickled reader)
    assert tag(tmp_path / "processes.jsonl", "--fast-resize", "--read-processes", "1") == 0
    assert (tmp_path / "processes.jsonl").read_text() == output.read_text()
