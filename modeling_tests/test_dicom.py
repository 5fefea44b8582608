"""DICOM scans read wherever images are read: rescale, VOI window, MONOCHROME1, frames, errors (pydicom's own files)."""

import json
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import pydicom  # the `medical` extra, installed by `make test`: a missing pydicom fails here instead of skipping
from pydicom.data import get_testdata_file

from transformers_ramplus import RamPlusImageProcessor
from transformers_ramplus.io.dicom import linear_window, read_dicom
from transformers_ramplus.models.ram_plus.image_processing_ram_plus import ImageLoadingError, load_image


def _shipped(name: str) -> str:
    """A test file inside pydicom's wheel (never downloaded)."""
    path = get_testdata_file(name, download=False)
    assert path is not None, f"{name} is not shipped with pydicom {pydicom.__version__}"
    return path


CT = _shipped("CT_small.dcm")  # 128x128 CT, rescale intercept -1024, no window
MR = _shipped("MR_small.dcm")  # 64x64 MR, window 600/1600
MULTI = _shipped("rtdose.dcm")  # 15 frames, 10x10


def _gray(image: Image.Image) -> np.ndarray:
    array = np.asarray(image)
    assert image.mode == "RGB" and (array[..., 0] == array[..., 1]).all() and (array[..., 1] == array[..., 2]).all()
    return array[..., 0].astype(np.int64)


def test_ct_rescale_and_full_range_without_a_window():
    dataset = pydicom.dcmread(CT)
    assert float(dataset.RescaleIntercept) == -1024 and "WindowCenter" not in dataset
    hounsfield = dataset.pixel_array.astype(np.float64) * float(dataset.RescaleSlope) + float(dataset.RescaleIntercept)
    expected = np.rint((hounsfield - hounsfield.min()) / (hounsfield.max() - hounsfield.min()) * 255)
    np.testing.assert_array_equal(_gray(load_image(CT)), expected)
    # a soft-tissue window in Hounsfield units (the intercept must be applied before windowing)
    windowed = _gray(load_image(CT, dicom_window=(40, 400)))
    assert (windowed[hounsfield <= 40 - 200] == 0).all() and (windowed[hounsfield >= 40 + 200] == 255).all()
    inside = (hounsfield > -150) & (hounsfield < 230)
    assert inside.any()
    np.testing.assert_allclose(windowed[inside], ((hounsfield[inside] - 39.5) / 399 + 0.5) * 255, atol=0.51)


def test_mr_uses_the_files_window_and_an_explicit_one_overrides_it():
    dataset = pydicom.dcmread(MR)
    values = dataset.pixel_array.astype(np.float64)
    center, width = float(dataset.WindowCenter), float(dataset.WindowWidth)
    assert (center, width) == (600.0, 1600.0)
    expected = np.clip(np.rint(((values - (center - 0.5)) / (width - 1) + 0.5) * 255), 0, 255)
    np.testing.assert_array_equal(_gray(load_image(MR)), expected)
    narrow = _gray(load_image(MR, dicom_window=(float(np.median(values)), 2)))
    assert set(np.unique(narrow)) <= {0, 255} and len(np.unique(narrow)) == 2  # a threshold at the median
    # the linear VOI function at its ends and middle
    np.testing.assert_allclose(linear_window(np.array([0.0, 99.5, 1000.0]), 100, 200), [0.0, 127.5, 255.0], atol=1.3)


def test_monochrome1_is_inverted(tmp_path):
    dataset = pydicom.dcmread(MR)
    dataset.PhotometricInterpretation = "MONOCHROME1"
    dataset.save_as(tmp_path / "inverted.dcm")
    np.testing.assert_array_equal(_gray(load_image(tmp_path / "inverted.dcm")), 255 - _gray(load_image(MR)))


def test_multi_frame_takes_the_middle_frame_or_the_one_asked_for():
    dataset = pydicom.dcmread(MULTI)
    frames = dataset.pixel_array
    assert int(dataset.NumberOfFrames) == 15 and frames.shape[0] == 15

    def scaled(frame):
        values = frames[frame].astype(np.float64) * float(dataset.get("DoseGridScaling", 1) or 1)
        values = values * float(dataset.get("RescaleSlope", 1) or 1) + float(dataset.get("RescaleIntercept", 0) or 0)
        return np.rint((values - values.min()) / (values.max() - values.min()) * 255)

    np.testing.assert_array_equal(_gray(load_image(MULTI)), scaled(7))  # 15 // 2
    np.testing.assert_array_equal(_gray(load_image(MULTI, dicom_frame=0)), scaled(0))
    np.testing.assert_array_equal(_gray(load_image(MULTI, dicom_frame=-1)), scaled(14))
    with pytest.raises(ImageLoadingError, match="frame 15 is outside the file's 15 frames"):
        load_image(MULTI, dicom_frame=15)


def test_colour_and_palette_files():
    rgb = pydicom.dcmread(_shipped("examples_rgb_color.dcm")).pixel_array
    np.testing.assert_array_equal(np.asarray(load_image(_shipped("examples_rgb_color.dcm"))), rgb)
    palette = load_image(_shipped("examples_palette.dcm"))
    assert palette.mode == "RGB" and palette.size == (800, 350)
    array = np.asarray(palette)
    assert not ((array[..., 0] == array[..., 1]) & (array[..., 1] == array[..., 2])).all()  # really in colour


def test_processor_bytes_paths_without_extension_and_saved_window(tmp_path):
    processor = RamPlusImageProcessor(size={"height": 32, "width": 32})
    raw = open(CT, "rb").read()
    (tmp_path / "scan_without_extension").write_bytes(raw)
    from_path = processor(CT, return_tensors="pt")["pixel_values"]
    from_bytes = processor(raw, return_tensors="pt")["pixel_values"]
    from_name = processor(str(tmp_path / "scan_without_extension"), return_tensors="pt")["pixel_values"]
    assert from_path.shape == (1, 3, 32, 32)
    torch.testing.assert_close(from_bytes, from_path, rtol=0, atol=0)
    torch.testing.assert_close(from_name, from_path, rtol=0, atol=0)
    windowed = processor(CT, dicom_window=[40, 400], return_tensors="pt")["pixel_values"]
    assert not torch.equal(windowed, from_path)
    processor.dicom_window = [40, 400]
    processor.save_pretrained(tmp_path / "processor")
    reloaded = RamPlusImageProcessor.from_pretrained(tmp_path / "processor")
    assert reloaded.dicom_window == [40, 400]
    torch.testing.assert_close(reloaded(CT, return_tensors="pt")["pixel_values"], windowed, rtol=0, atol=0)


def test_bad_dicom_inputs_name_the_problem(tmp_path):
    truncated = tmp_path / "truncated.dcm"
    truncated.write_bytes(open(MR, "rb").read()[:2000])
    with pytest.raises(ImageLoadingError, match="truncated.dcm"):
        load_image(truncated)
    (tmp_path / "text.dcm").write_text("not dicom at all")
    with pytest.raises(ImageLoadingError, match="text.dcm"):
        load_image(tmp_path / "text.dcm")
    with pytest.raises(ValueError, match="positive width"):
        load_image(MR, dicom_window=(40, 0))
    with pytest.raises(ValueError, match="center, width"):
        load_image(MR, dicom_window="40")


def test_missing_pydicom_names_the_medical_extra(monkeypatch):
    for name in [n for n in sys.modules if n == "pydicom" or n.startswith("pydicom.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "pydicom", None)  # import pydicom -> ImportError
    with pytest.raises(ImportError, match=r"medical.*pip install"):
        load_image(CT)
    with pytest.raises(ImportError, match="medical"):
        read_dicom(open(CT, "rb").read())


def test_tag_command_and_pipeline_read_dicom(tmp_path, converted_tiny, capsys):
    import shutil

    import transformers_ramplus  # noqa: F401  (registers the pipeline task)
    from transformers import pipeline

    from transformers_ramplus.cli.main import main

    scans = tmp_path / "scans"
    scans.mkdir()
    shutil.copy(CT, scans / "ct.dcm")
    shutil.copy(MR, scans / "mr.dcm")
    (scans / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"garbage")
    tagger = pipeline("zero-shot-image-tagging", model=str(converted_tiny), device="cpu")
    direct = tagger(str(scans / "ct.dcm"), threshold=0.0)
    assert len(direct) == 37
    output = tmp_path / "tags.jsonl"
    code = main(["tag", str(scans), "--model", str(converted_tiny), "--threshold", "0", "--format", "jsonl",
                 "--output", str(output), "--no-progress"])
    assert code != 0  # one file could not be read
    records = {json.loads(line)["path"]: json.loads(line) for line in output.read_text().splitlines()}
    assert "error" in records[str(scans / "broken.dcm")]
    assert len(records[str(scans / "ct.dcm")]["tags"]) == 37
    ct_scores = {t["label"]: t["score"] for t in records[str(scans / "ct.dcm")]["tags"]}
    assert ct_scores == pytest.approx({t["label"]: t["score"] for t in direct}, abs=1e-5)
    windowed = tmp_path / "windowed.jsonl"
    main(["tag", str(scans / "ct.dcm"), "--model", str(converted_tiny), "--threshold", "0", "--format", "jsonl",
          "--output", str(windowed), "--no-progress", "--window", "40,400"])
    windowed_scores = {t["label"]: t["score"] for t in json.loads(windowed.read_text())["tags"]}
    assert windowed_scores != pytest.approx(ct_scores, abs=1e-6)
