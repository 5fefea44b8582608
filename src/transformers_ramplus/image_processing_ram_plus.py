# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""Image processor for RAM++ (transformers' PIL backend).

The inference transform of the original: convert to RGB, resize to 384x384 with PIL BILINEAR
(aspect ratio not kept, no crop), scale to [0, 1], normalize with the ImageNet mean and std.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from transformers.image_processing_backends import PilBackend
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, PILImageResampling
from transformers.processing_utils import ImagesKwargs


class RamPlusImageProcessorKwargs(ImagesKwargs, total=False):
    """
    apply_exif_orientation (`bool`, *optional*, defaults to `False`):
        Rotate/flip images according to their EXIF orientation tag before resizing. The original RAM++ ignores the
        tag (its published numbers are computed that way), so this is off by default.
    dicom_window (`list[float]`, *optional*, defaults to `None`):
        `[center, width]` display window for grayscale DICOM files; `None` uses each file's own VOI window (see
        `transformers_ramplus.dicom`).
    dicom_frame (`int`, *optional*, defaults to `None`):
        Frame of multi-frame DICOM files (0-based); `None` takes the middle frame.
    """

    apply_exif_orientation: bool | None
    dicom_window: list[float] | None
    dicom_frame: int | None


class ImageLoadingError(ValueError):
    """An input could not be read as an image; the message names the input."""


def _describe(item, index: int) -> str:
    if isinstance(item, (str, os.PathLike)):
        return f"image {index} ({os.fspath(item)!r})"
    return f"image {index} ({type(item).__name__})"


def _pil_to_rgb(image: Image.Image) -> Image.Image:
    """RGB like the original (`Image.convert("RGB")`), with 16/32-bit and float modes scaled to 8 bits first."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        array = np.asarray(image, dtype=np.float64)
        image = Image.fromarray(np.clip(np.rint(array / 257.0), 0, 255).astype(np.uint8))
    elif image.mode == "F":
        array = np.asarray(image, dtype=np.float64)
        scale = 255.0 if np.nanmax(array) <= 1.0 else 1.0
        image = Image.fromarray(np.clip(np.rint(np.nan_to_num(array) * scale), 0, 255).astype(np.uint8))
    return image if image.mode == "RGB" else image.convert("RGB")


def _array_to_pil(array: np.ndarray, label: str) -> Image.Image:
    if array.ndim not in (2, 3):
        raise ImageLoadingError(f"{label}: expected a 2-D or 3-D array, got shape {array.shape}")
    if array.ndim == 3:
        if array.shape[-1] not in (1, 3, 4) and array.shape[0] in (1, 3, 4):
            array = np.moveaxis(array, 0, -1)  # channels first -> last
        if array.shape[-1] not in (1, 3, 4):
            raise ImageLoadingError(f"{label}: expected 1, 3 or 4 channels, got shape {array.shape}")
        if array.shape[-1] == 1:
            array = array[..., 0]
    if array.size == 0 or min(array.shape[:2]) == 0:
        raise ImageLoadingError(f"{label}: the image is empty (shape {array.shape})")
    if array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    elif np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ImageLoadingError(f"{label}: the array contains NaN or infinite values")
        scale = 255.0 if array.max(initial=0.0) <= 1.0 else 1.0  # floats in [0, 1] as in transformers
        array = np.clip(np.rint(array * scale), 0, 255).astype(np.uint8)
    elif array.dtype == np.uint16:
        array = np.clip(np.rint(array / 257.0), 0, 255).astype(np.uint8)
    elif array.dtype != np.uint8:
        if array.min(initial=0) < 0 or array.max(initial=0) > 255:
            raise ImageLoadingError(f"{label}: integer values outside [0, 255] (dtype {array.dtype})")
        array = array.astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(array))


def _read_dicom(source, label: str, dicom_window, dicom_frame) -> Image.Image:
    """DICOM files and bytes (the `medical` extra): `transformers_ramplus.dicom`, imported only when needed."""
    from .dicom import read_dicom

    try:
        return read_dicom(source, window=dicom_window, frame=dicom_frame, label=label)
    except ValueError as error:
        raise ImageLoadingError(str(error)) from error


def _is_dicom(item) -> bool:
    """A DICOM path (`.dcm`/`.dicom` or the DICM magic) or DICOM bytes: read by `transformers_ramplus.dicom`."""
    if isinstance(item, (bytes, bytearray)):
        return len(item) >= 132 and bytes(item[128:132]) == b"DICM"
    if isinstance(item, (str, os.PathLike)):
        source = os.fspath(item)
        if source.startswith(("http://", "https://")):
            return False
        from .dicom import is_dicom_file

        return os.path.isfile(source) and is_dicom_file(source)
    return False


def load_image(
    item, index: int = 0, apply_exif_orientation: bool = False, dicom_window=None, dicom_frame: int | None = None
) -> Image.Image:
    """Turn one input (path, URL, bytes, PIL image, numpy array, torch tensor; DICOM files and bytes with the
    `medical` extra) into an RGB PIL image.

    Raises `ImageLoadingError` (a `ValueError`) naming the input when it is unreadable, empty or malformed.
    `dicom_window` (`(center, width)`) and `dicom_frame` apply to DICOM inputs (see `transformers_ramplus.dicom`).
    """
    label = _describe(item, index)
    if _is_dicom(item):
        return _read_dicom(item, label, dicom_window, dicom_frame)
    if isinstance(item, (str, os.PathLike)):
        source = os.fspath(item)
        if source.startswith(("http://", "https://")):
            from transformers.image_utils import load_image as load_url

            try:
                image = load_url(source)
            except Exception as error:  # network and decoding errors of any kind
                raise ImageLoadingError(f"{label}: could not fetch the image: {error}") from error
        else:
            path = Path(source)
            if not path.is_file():
                raise ImageLoadingError(f"{label}: no such file")
            if path.stat().st_size == 0:
                raise ImageLoadingError(f"{label}: the file is empty (0 bytes)")
            try:
                with Image.open(path) as opened:
                    opened.load()
                    image = ImageOps.exif_transpose(opened) if apply_exif_orientation else opened.copy()
            except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
                raise ImageLoadingError(f"{label}: not a readable image: {error}") from error
    elif isinstance(item, (bytes, bytearray)):
        if not item:
            raise ImageLoadingError(f"{label}: empty bytes")
        try:
            with Image.open(io.BytesIO(item)) as opened:
                opened.load()
                image = ImageOps.exif_transpose(opened) if apply_exif_orientation else opened.copy()
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
            raise ImageLoadingError(f"{label}: not a readable image: {error}") from error
    elif isinstance(item, Image.Image):
        image = item
        if apply_exif_orientation:
            image = ImageOps.exif_transpose(image)
    elif isinstance(item, np.ndarray):
        image = _array_to_pil(item, label)
    elif type(item).__module__.startswith("torch"):
        image = _array_to_pil(item.detach().cpu().numpy(), label)
    else:
        raise TypeError(
            f"{label}: unsupported input type {type(item).__name__}; expected a file path, URL, bytes, PIL image, "
            "numpy array or torch tensor"
        )
    if image.width == 0 or image.height == 0:
        raise ImageLoadingError(f"{label}: the image has zero size ({image.width}x{image.height})")
    try:
        return _pil_to_rgb(image)
    except (OSError, ValueError) as error:
        raise ImageLoadingError(f"{label}: could not convert mode {image.mode!r} to RGB: {error}") from error


def _flatten_inputs(images) -> list:
    if isinstance(images, (list, tuple)):
        if len(images) == 0:
            raise ValueError("no images were given (empty list)")
        flat = []
        for item in images:
            flat.extend(_flatten_inputs(item) if isinstance(item, (list, tuple)) else [item])
        return flat
    if isinstance(images, np.ndarray) and images.ndim == 4:
        return list(images)
    if type(images).__module__.startswith("torch") and getattr(images, "ndim", 0) == 4:
        return list(images)
    return [images]


class RamPlusImageProcessor(PilBackend):
    r"""
    RAM++ image processor: RGB, 384x384 PIL bilinear resize (no aspect ratio, no crop), rescale, ImageNet normalize.

    Accepts file paths, URLs, bytes (DICOM files too, with the `medical` extra), PIL images (any mode: L, LA, P, RGBA, CMYK, I;16, ...), numpy arrays and torch
    tensors (HWC or CHW; uint8, uint16 or floats in [0, 1]), alone or in lists of mixed sizes and modes. An unreadable,
    empty or zero-sized input raises a `ValueError` that names it.
    """

    valid_kwargs = RamPlusImageProcessorKwargs
    model_input_names = ["pixel_values"]
    resample = PILImageResampling.BILINEAR
    image_mean = IMAGENET_DEFAULT_MEAN
    image_std = IMAGENET_DEFAULT_STD
    size = {"height": 384, "width": 384}
    default_to_square = True
    do_resize = True
    do_center_crop = False
    do_rescale = True
    do_normalize = True
    do_convert_rgb = True
    apply_exif_orientation = False
    dicom_window = None
    dicom_frame = None

    def load_images(
        self, images, apply_exif_orientation: bool | None = None, dicom_window=None, dicom_frame: int | None = None
    ) -> list[Image.Image]:
        """Load and validate every input as an RGB PIL image (the first bad input raises)."""
        apply = self.apply_exif_orientation if apply_exif_orientation is None else apply_exif_orientation
        window = self.dicom_window if dicom_window is None else dicom_window
        frame = self.dicom_frame if dicom_frame is None else dicom_frame
        return [
            load_image(item, index, bool(apply), dicom_window=window, dicom_frame=frame)
            for index, item in enumerate(_flatten_inputs(images))
        ]

    def _prepare_image_like_inputs(self, images, *args, expected_ndims: int = 3, **kwargs) -> list[np.ndarray]:
        loaded = self.load_images(
            images, kwargs.get("apply_exif_orientation"), kwargs.get("dicom_window"), kwargs.get("dicom_frame")
        )
        return [self.process_image(image, *args, **kwargs) for image in loaded]


__all__ = ["RamPlusImageProcessor", "ImageLoadingError", "load_image"]
