"""`fast_decode` (issue 25): JPEGs decoded at a reduced DCT scale before the resize, off by default; what it changes
(the size decoded, the pixels within a bound), what it leaves alone (other formats, the default path) and how
`ramplus tag --fast-decode` records it for resuming."""

import json

import numpy as np
import pytest
import torch
from conftest import REFERENCE_IMAGES
from PIL import Image

from transformers_ramplus.cli.main import main
from transformers_ramplus.models.ram_plus.image_processing_ram_plus import RamPlusImageProcessor, load_image


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """A 1600x1200 JPEG and a PNG of the same photo, and a 300x200 JPEG (too small to reduce)."""
    folder = tmp_path_factory.mktemp("fast-decode")
    image = Image.open(REFERENCE_IMAGES[0]).convert("RGB").resize((1600, 1200), Image.BICUBIC)
    image.save(folder / "big.jpg", quality=92)
    image.save(folder / "big.png")
    image.resize((300, 200)).save(folder / "small.jpg", quality=92)
    return folder


def test_jpegs_decode_at_the_smallest_scale_no_smaller_than_asked(photos):
    assert load_image(photos / "big.jpg").size == (1600, 1200)
    assert load_image(photos / "big.jpg", draft_size=(384, 384)).size == (800, 600)  # 1/2: 1/4 would be 300 high
    assert load_image(photos / "big.jpg", draft_size=(200, 150)).size == (200, 150)  # 1/8
    assert load_image(photos / "big.png", draft_size=(384, 384)).size == (1600, 1200)  # not a JPEG: as usual
    assert load_image(photos / "small.jpg", draft_size=(384, 384)).size == (300, 200)  # already smaller
    data = (photos / "big.jpg").read_bytes()
    assert load_image(data, draft_size=(384, 384)).size == (800, 600)  # bytes too


def test_fast_decode_is_off_by_default_and_close_to_the_full_decode(photos):
    exact = RamPlusImageProcessor()
    assert exact.fast_decode is False
    fast = RamPlusImageProcessor(fast_decode=True)
    assert fast.draft_size() == (384, 384)
    assert exact.load_image(str(photos / "big.jpg")).size == (1600, 1200)
    assert fast.load_image(str(photos / "big.jpg")).size == (800, 600)
    assert exact.load_image(str(photos / "big.jpg"), fast_decode=True).size == (800, 600)  # per call
    want = exact(str(photos / "big.jpg"), return_tensors="pt")["pixel_values"]
    got = fast(str(photos / "big.jpg"), return_tensors="pt")["pixel_values"]
    also = exact(str(photos / "big.jpg"), return_tensors="pt", fast_decode=True)["pixel_values"]
    assert torch.equal(got, also)
    assert not torch.equal(got, want)  # not the reference preprocessing ...
    assert (got - want).abs().mean() < 0.05  # ... but close: ~1 grey level on average (normalized units)
    png = fast(str(photos / "big.png"), return_tensors="pt")["pixel_values"]
    assert torch.equal(png, exact(str(photos / "big.png"), return_tensors="pt")["pixel_values"])
    saved = RamPlusImageProcessor.from_dict(fast.to_dict())
    assert saved.fast_decode is True  # kept in preprocessor_config.json


def test_ramplus_tag_fast_decode_is_recorded_and_refuses_a_mixed_resume(converted_tiny, photos, tmp_path, capsys):
    output = tmp_path / "tags.jsonl"

    def tag(*extra):
        args = ["tag", str(photos / "big.jpg"), "--model", str(converted_tiny), "--no-progress", "-o", str(output)]
        return main([*args, "--threshold", "0", *extra])

    assert tag() == 0
    exact = json.loads(output.read_text().splitlines()[0])["tags"]
    assert tag("--fast-decode") != 0  # the output was written with full decoding: not resumed with other pixels
    assert "fast_decode" in capsys.readouterr().err
    assert tag("--fast-decode", "--overwrite") == 0
    fast = json.loads(output.read_text().splitlines()[0])["tags"]
    scores = {t["label"]: t["score"] for t in exact}
    assert {t["label"] for t in fast} == set(scores)  # threshold 0: every tag, with scores close to the full decode
    assert np.allclose([t["score"] for t in fast], [scores[t["label"]] for t in fast], atol=0.05)
    assert [t["score"] for t in fast] != [scores[t["label"]] for t in fast]
    assert tag() != 0  # and the other way: written with reduced decoding, not resumed with full decoding
    assert "--fast-decode" in capsys.readouterr().err


def test_ramplus_tag_read_processes_writes_the_same_records(converted_tiny, photos, tmp_path, capsys):
    def tag(output, *extra):
        args = ["tag", str(photos), "--model", str(converted_tiny), "--no-progress", "-o", str(output), "--top-k", "3"]
        return main([*args, *extra])

    (photos / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    try:
        assert tag(tmp_path / "threads.jsonl") == 1  # the broken file fails, the others are tagged
        assert tag(tmp_path / "processes.jsonl", "--read-processes", "2") == 1
    finally:
        (photos / "broken.jpg").unlink()
    assert (tmp_path / "threads.jsonl").read_text() == (tmp_path / "processes.jsonl").read_text()
    assert tag(tmp_path / "h.jsonl", "--read-processes", "2", "--heatmaps", str(tmp_path / "maps")) == 2
    assert "--read-processes cannot be combined" in capsys.readouterr().err


def test_fast_decode_keeps_orientation_and_modes(photos, tmp_path):
    big = Image.open(photos / "big.jpg")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees to display
    big.save(tmp_path / "phone.jpg", exif=exif.tobytes(), quality=92)
    big.convert("CMYK").save(tmp_path / "cmyk.jpg", quality=92)
    big.convert("L").save(tmp_path / "grey.jpg", quality=92)
    big.save(tmp_path / "progressive.jpg", quality=92, progressive=True)
    fast = RamPlusImageProcessor(fast_decode=True)
    assert fast.load_image(str(tmp_path / "phone.jpg")).size == (600, 800)  # reduced, then turned upright
    for name in ("cmyk.jpg", "grey.jpg", "progressive.jpg"):
        image = fast.load_image(str(tmp_path / name))
        assert image.mode == "RGB" and image.size == (800, 600), name
        exact = RamPlusImageProcessor().load_image(str(tmp_path / name))
        pixels = fast(image, return_tensors="pt")["pixel_values"]
        reference = RamPlusImageProcessor()(exact, return_tensors="pt")["pixel_values"]
        assert (pixels - reference).abs().mean() < 0.05, name
