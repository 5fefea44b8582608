# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""Reading DICOM files (medical scans) as 8-bit RGB images, with the optional `medical` extra (pydicom).

`load_image` in `image_processing_ram_plus.py` sends a path ending in `.dcm`/`.dicom`, or any file or bytes with the
DICOM magic (`DICM` at byte 128), here; so DICOM works wherever images are read: the image processor, the pipeline,
`ramplus tag`, fine-tuning and evaluation data.

How a scan becomes an image:

1. **Frame.** A multi-frame file (`NumberOfFrames` > 1: a CT/MR volume, a cine loop) gives its middle frame
   (`index = NumberOfFrames // 2`), or the frame asked for with `frame=` (0-based; negative counts from the end).
2. **Modality.** Stored values are mapped to physical units by the file's rescale slope/intercept (CT: Hounsfield
   units) or its modality LUT.
3. **Window.** Grayscale values are mapped to 0..255 with the DICOM linear VOI function of a window
   `(center, width)`: the one given (`window=`, `ramplus ... --window C,W`, or the image processor's
   `dicom_window`), else the file's first `WindowCenter`/`WindowWidth`, else the file's VOI LUT, else the full range
   of the image (min..max).
4. **Photometric interpretation.** `MONOCHROME1` (low values shown bright) is inverted so that the image looks as a
   viewer shows it; palette-colour images go through their palette; colour images (RGB, YBR decoded by pydicom) are
   kept, scaled to 8 bits when stored with more bits.

A file whose pixel data cannot be decoded (a compression pydicom has no decoder for) raises a `ValueError` saying so.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence

import numpy as np
from PIL import Image


DICOM_EXTENSIONS = (".dcm", ".dicom")
MISSING_PYDICOM = (
    "reading DICOM files needs pydicom, which comes with the `medical` extra: "
    "pip install \"transformers-ramplus[medical]\" (or pip install pydicom)"
)


def _pydicom():
    """pydicom with the submodules used here. Imported only inside this `try` (so that a remote-code copy of this file
    does not make pydicom a requirement of loading a model)."""
    try:
        import pydicom
        import pydicom.errors
        import pydicom.pixels
    except ImportError as error:
        raise ImportError(MISSING_PYDICOM) from error
    return pydicom


def has_dicom_magic(data: bytes) -> bool:
    """Whether `data` starts like a DICOM Part 10 file (128-byte preamble, then `DICM`)."""
    return len(data) >= 132 and bytes(data[128:132]) == b"DICM"


def is_dicom_file(path: str | os.PathLike) -> bool:
    """A `.dcm`/`.dicom` name, or a file with the DICOM magic."""
    if os.fspath(path).lower().endswith(DICOM_EXTENSIONS):
        return True
    try:
        with open(path, "rb") as handle:
            return has_dicom_magic(handle.read(132))
    except OSError:
        return False


def validate_window(window) -> tuple[float, float] | None:
    """`(center, width)` as floats, width > 0; None stays None."""
    if window is None:
        return None
    if isinstance(window, str):
        window = window.replace(" ", "").split(",")
    try:
        center, width = (float(v) for v in window)
    except (TypeError, ValueError):
        raise ValueError(f"a DICOM window is (center, width), two numbers; got {window!r}") from None
    if not (np.isfinite(center) and np.isfinite(width) and width > 0):
        raise ValueError(f"a DICOM window needs a finite center and a positive width; got {window!r}")
    return center, width


def _first(value):
    """First value of a possibly multi-valued DICOM element, as float (None when absent or not a number)."""
    if value is None:
        return None
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        if len(value) == 0:
            return None
        value = value[0]
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def linear_window(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """The DICOM linear VOI function to 0..255 (PS3.3 C.11.2.1.2): `((x - (c - 0.5)) / (w - 1) + 0.5)` scaled,
    clipped below `c - 0.5 - (w - 1) / 2` and above `c - 0.5 + (w - 1) / 2`."""
    values = np.asarray(values, dtype=np.float64)
    if width <= 1:  # a window of width 1 is a threshold at the center
        return np.where(values > center - 0.5, 255.0, 0.0)
    scaled = ((values - (center - 0.5)) / (width - 1.0) + 0.5) * 255.0
    return np.clip(scaled, 0.0, 255.0)


def _full_range(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros_like(values)
    return (values - low) / (high - low) * 255.0


def _select_frame(array: np.ndarray, dataset, frame: int | None, label: str) -> np.ndarray:
    frames = int(dataset.get("NumberOfFrames", 1) or 1)
    if frames <= 1:
        if frame not in (None, 0, -1):
            raise ValueError(f"{label}: frame {frame} asked for, but the file holds a single frame")
        return array
    index = frames // 2 if frame is None else int(frame)
    if not -frames <= index < frames:
        raise ValueError(f"{label}: frame {frame} is outside the file's {frames} frames")
    return array[index]


def read_dicom(source, window=None, frame: int | None = None, label: str | None = None) -> Image.Image:
    """Read a DICOM file (path, bytes or file object) as an RGB PIL image (see the module docstring)."""
    pydicom = _pydicom()
    InvalidDicomError = pydicom.errors.InvalidDicomError

    label = label or (repr(os.fspath(source)) if isinstance(source, (str, os.PathLike)) else "DICOM data")
    window = validate_window(window)
    stream = io.BytesIO(bytes(source)) if isinstance(source, (bytes, bytearray, memoryview)) else source
    try:
        dataset = pydicom.dcmread(stream, force=True)
    except (InvalidDicomError, OSError, ValueError, EOFError, TypeError, AttributeError, KeyError) as error:
        raise ValueError(f"{label}: not a readable DICOM file: {error}") from error
    if "PixelData" not in dataset and "FloatPixelData" not in dataset and "DoubleFloatPixelData" not in dataset:
        raise ValueError(f"{label}: the DICOM file holds no image (no pixel data)")
    try:
        array = dataset.pixel_array
    except Exception as error:  # missing decoder plugins, truncated data, ... (pydicom raises several types)
        raise ValueError(f"{label}: could not decode the DICOM pixel data: {error}") from error
    photometric = str(dataset.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    samples = int(dataset.get("SamplesPerPixel", 1) or 1)
    array = _select_frame(array, dataset, frame, label)

    if samples == 1 and photometric == "PALETTE COLOR":
        rgb = np.asarray(pydicom.pixels.apply_color_lut(array, dataset), dtype=np.float64)
        bits = 16 if rgb.max(initial=0) > 255 else 8
        return Image.fromarray(np.clip(np.rint(rgb / (2**bits - 1) * 255.0), 0, 255).astype(np.uint8), "RGB")
    if samples == 1:
        values = np.asarray(pydicom.pixels.apply_modality_lut(array, dataset), dtype=np.float64)
        if window is None:
            center, width = _first(dataset.get("WindowCenter")), _first(dataset.get("WindowWidth"))
            if center is not None and width is not None and width > 0:
                window = (center, width)
        if window is not None:
            gray = linear_window(values, *window)
        elif "VOILUTSequence" in dataset:
            gray = _full_range(np.asarray(pydicom.pixels.apply_voi_lut(values, dataset), dtype=np.float64))
        else:
            gray = _full_range(values)
        if photometric == "MONOCHROME1":
            gray = 255.0 - gray
        gray = np.rint(gray).astype(np.uint8)
        return Image.fromarray(gray, "L").convert("RGB")
    # colour: pydicom converts YBR to RGB when decoding
    rgb = np.asarray(array)
    if rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise ValueError(f"{label}: unsupported DICOM colour layout {rgb.shape} ({photometric})")
    if rgb.dtype != np.uint8:
        bits = int(dataset.get("BitsStored", 8) or 8)
        rgb = np.clip(np.rint(rgb.astype(np.float64) / (2**bits - 1) * 255.0), 0, 255).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(rgb), "RGB")


__all__ = ["DICOM_EXTENSIONS", "MISSING_PYDICOM", "has_dicom_magic", "is_dicom_file", "linear_window", "read_dicom"]
