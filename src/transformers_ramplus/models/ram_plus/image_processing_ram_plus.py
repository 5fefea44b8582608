# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""Image processor for RAM++ (transformers' PIL backend).

The inference transform of the original: convert to RGB, resize to 384x384 with PIL BILINEAR
(aspect ratio not kept, no crop), scale to [0, 1], normalize with the ImageNet mean and std.
"""

from __future__ import annotations

import http.client
import io
import os
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from transformers.image_processing_backends import PilBackend
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, PILImageResampling
from transformers.processing_utils import ImagesKwargs


try:  # DICOM reading is the package's (the `medical` extra); a saved folder's copy of this module runs without it
    from transformers_ramplus.io.dicom import is_dicom_file, read_dicom
except ImportError:
    is_dicom_file = read_dicom = None


class RamPlusImageProcessorKwargs(ImagesKwargs, total=False):
    """
    apply_exif_orientation (`bool`, *optional*, defaults to `True`):
        Rotate/flip images according to their EXIF orientation tag before resizing (as transformers' `load_image`
        does), so that a phone photo is tagged upright. The original RAM++ code ignores the tag; pass `False` to read
        images as it does (images without an orientation tag, such as the benchmark photos, are the same either
        way).
    timeout (`float`, *optional*, defaults to `DEFAULT_TIMEOUT`):
        Seconds to wait for an image URL's server to connect or send data (the whole download may take at most ten
        times that). `None` waits forever.
    max_image_pixels (`int`, *optional*, defaults to `DEFAULT_MAX_IMAGE_PIXELS`):
        Encoded images (files, URLs, bytes) declaring more pixels than this are refused as possible decompression
        bombs before they are decoded. `None` disables the check (PIL's own limit still applies).
    dicom_window (`list[float]`, *optional*, defaults to `None`):
        `[center, width]` display window for grayscale DICOM files; `None` uses each file's own VOI window (see
        `transformers_ramplus.io.dicom`).
    dicom_frame (`int`, *optional*, defaults to `None`):
        Frame of multi-frame DICOM files (0-based); `None` takes the middle frame.
    fast_decode (`bool`, *optional*, defaults to `False`):
        Decode JPEG files at a reduced scale (libjpeg's DCT scaling by 1/2, 1/4 or 1/8, never below the model's input
        size) before the resize: reading a large photo costs a fraction of a full decode, but the pixel values are
        close to, not identical to, the reference preprocessing (which decodes at full size). Off by default. Other
        formats are decoded as usual.
    fast_resize (`bool`, *optional*, defaults to `False`):
        Resize with torch's antialiased uint8 kernel instead of PIL's (bilinear and bicubic `resample`; other filters
        keep PIL's): several times faster on a large photo; the pixel values differ from PIL's by at most one grey
        level (about 0.3% of them on photos; bicubic enlargement: rarely two). Off by default: the reference
        preprocessing is PIL's. `resize_ahead` and this processor's call resize alike, so the two give identical pixel
        values under either setting.
    """

    apply_exif_orientation: bool | None
    timeout: float | None
    max_image_pixels: int | None
    dicom_window: list[float] | None
    dicom_frame: int | None
    fast_decode: bool | None
    fast_resize: bool | None


DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_IMAGE_PIXELS = 2 * Image.MAX_IMAGE_PIXELS if Image.MAX_IMAGE_PIXELS else 178_956_970
MAX_DOWNLOAD_BYTES = 256 * 1024 * 1024


# PIL filters that `fast_resize` computes with torch's antialiased kernel (the others keep PIL's resize)
FAST_RESIZE_MODES = {PILImageResampling.BILINEAR: "bilinear", PILImageResampling.BICUBIC: "bicubic"}


def fast_resize_mode(resample) -> str | None:
    """torch's interpolation mode for a PIL `resample` under `fast_resize`, or None where PIL resizes."""
    try:
        return FAST_RESIZE_MODES.get(PILImageResampling(int(resample)))
    except (TypeError, ValueError):
        return None


def resize_uint8(pixels: np.ndarray, height: int, width: int, mode: str) -> np.ndarray:
    """`(h, w, 3)` uint8 pixels resized to `(height, width, 3)` by torch's antialiased `mode` kernel (the one
    `fast_resize` uses): within one grey level of PIL's values (bicubic enlargement: rarely two), several times
    faster. The input is not changed."""
    tensor = torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1).unsqueeze(0)  # channels-last memory
    with torch.no_grad():
        resized = torch.nn.functional.interpolate(
            tensor, size=(height, width), mode=mode, antialias=True, align_corners=False
        )
    return resized[0].permute(1, 2, 0).contiguous().numpy()


def rgb_array(image: Image.Image, rows: int = 128) -> np.ndarray:
    """A writable `(height, width, 3)` uint8 copy of an RGB PIL image, copied `rows` lines at a time: one large
    `tobytes` (what `np.array(image)` does) can cost several times the copy on a large photo (seen: 22-29 ms
    against 5 for 3000x2000), where allocating its single block faults in fresh memory."""
    width, height = image.size
    pixels = np.empty((height, width, 3), dtype=np.uint8)
    for top in range(0, height, rows):
        pixels[top : top + rows] = np.asarray(image.crop((0, top, width, min(height, top + rows))))
    return pixels


class ImageLoadingError(ValueError):
    """An input could not be read as an image; the message names the input and its position."""


def _describe(item, index: int) -> str:
    if isinstance(item, (str, os.PathLike)):
        return f"image {index} ({os.fspath(item)!r})"
    if isinstance(item, Image.Image):
        return f"image {index} (PIL image, mode {item.mode}, {item.width}x{item.height})"
    shape = getattr(item, "shape", None)
    if shape is not None:
        return f"image {index} ({type(item).__name__} of shape {tuple(shape)}, dtype {getattr(item, 'dtype', '?')})"
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
    if array.dtype.kind not in "biuf":
        kinds = {"c": "complex numbers", "O": "Python objects", "U": "strings", "S": "bytes", "V": "records", "M": "dates", "m": "time deltas"}
        raise ImageLoadingError(
            f"{label}: arrays of {kinds.get(array.dtype.kind, array.dtype)} are not images; expected uint8, uint16, "
            "bool or float pixel values"
        )
    if array.ndim not in (2, 3):
        raise ImageLoadingError(f"{label}: expected a 2-D or 3-D array (one image), got shape {array.shape}")
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
        low, high = float(array.min()), float(array.max())
        if low < 0.0 or high > 255.0:
            raise ImageLoadingError(
                f"{label}: float pixel values must lie in [0, 1] (or [0, 255]), got values in [{low:g}, {high:g}]; "
                "undo any normalization first"
            )
        scale = 255.0 if high <= 1.0 else 1.0  # floats in [0, 1] as in transformers
        array = np.clip(np.rint(array * scale), 0, 255).astype(np.uint8)
    elif array.dtype == np.uint16:
        array = np.clip(np.rint(array / 257.0), 0, 255).astype(np.uint8)
    elif array.dtype != np.uint8:
        if array.min(initial=0) < 0 or array.max(initial=0) > 255:
            raise ImageLoadingError(f"{label}: integer values outside [0, 255] (dtype {array.dtype})")
        array = array.astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(array))


def _tensor_to_array(tensor, label: str) -> np.ndarray:
    try:
        tensor = tensor.detach().cpu()
        if tensor.is_floating_point() and tensor.dtype.itemsize < 4:
            tensor = tensor.float()  # bfloat16 / float8 have no numpy dtype
        return tensor.numpy()
    except Exception as error:  # sparse, quantized, meta tensors ...
        raise ImageLoadingError(f"{label}: cannot read this tensor as an image: {error}") from error


def fetch_url(url: str, label: str, timeout: float | None = DEFAULT_TIMEOUT) -> bytes:
    """The bytes at an http(s) URL. No answer within `timeout` seconds (per wait; the whole download gets ten times
    that), an HTTP error status or a transfer error raises `ImageLoadingError` saying which."""

    if timeout is not None and (isinstance(timeout, bool) or not timeout > 0):
        raise ValueError(f"`timeout` must be a positive number of seconds or None, got {timeout!r}")
    deadline = None if timeout is None else time.monotonic() + 10 * timeout
    request = urllib.request.Request(url, headers={"User-Agent": "transformers-ramplus"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            chunks, total = [], 0
            while True:
                chunk = response.read1(1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
                total += len(chunk)
                if total > MAX_DOWNLOAD_BYTES:
                    raise ImageLoadingError(f"{label}: the download exceeds {MAX_DOWNLOAD_BYTES} bytes")
                if deadline is not None and time.monotonic() > deadline:
                    raise ImageLoadingError(f"{label}: the download took longer than {10 * timeout:g} s; gave up")
            return b"".join(chunks)
    except ImageLoadingError:
        raise
    except urllib.error.HTTPError as error:
        raise ImageLoadingError(f"{label}: the server answered HTTP {error.code} ({error.reason})") from error
    except urllib.error.URLError as error:
        if isinstance(error.reason, (socket.timeout, TimeoutError)):
            raise ImageLoadingError(f"{label}: no answer from the server within {timeout:g} s (timeout)") from error
        raise ImageLoadingError(f"{label}: could not fetch the image: {error.reason}") from error
    except (socket.timeout, TimeoutError) as error:
        raise ImageLoadingError(f"{label}: no answer from the server within {timeout:g} s (timeout)") from error
    except (OSError, ValueError, http.client.HTTPException) as error:
        raise ImageLoadingError(f"{label}: could not fetch the image: {error!r}") from error


def _decode(
    source, label: str, apply_exif_orientation: bool, max_image_pixels: int | None, draft_size=None
) -> Image.Image:
    """Decode an encoded image (a path or a binary stream); every decoding failure becomes `ImageLoadingError`.
    `draft_size` `(width, height)`: a JPEG is decoded at the smallest DCT scale no smaller than that."""
    try:
        with Image.open(source) as opened:
            width, height = opened.size
            if max_image_pixels is not None and width * height > max_image_pixels:
                raise ImageLoadingError(
                    f"{label}: declares {width}x{height} = {width * height} pixels, more than the limit of "
                    f"{max_image_pixels} (a possible decompression bomb; raise `max_image_pixels` to read it)"
                )
            if draft_size is not None and opened.format == "JPEG":
                opened.draft(None, tuple(draft_size))  # the mode stays; only the scale changes
            opened.load()
            return ImageOps.exif_transpose(opened) if apply_exif_orientation else opened.copy()
    except ImageLoadingError:
        raise
    except Image.DecompressionBombError as error:
        raise ImageLoadingError(f"{label}: refused as a possible decompression bomb: {error}") from error
    except UnidentifiedImageError as error:
        raise ImageLoadingError(f"{label}: not a readable image: the format is not recognized") from error
    except Exception as error:  # truncated data, bad headers, plugin errors, MemoryError ...
        raise ImageLoadingError(f"{label}: not a readable image: {error or type(error).__name__}") from error


# Readers for file formats PIL does not decode, by lower-case suffix (e.g. ".dcm"): `reader(path) -> PIL image`.
# Their failures become `ImageLoadingError` like PIL's; the pixel limit applies to what they return.
FILE_READERS: dict = {}


def _read_with(reader, path: Path, label: str, max_image_pixels: int | None) -> Image.Image:
    try:
        image = reader(path)
    except ImageLoadingError:
        raise
    except Exception as error:
        raise ImageLoadingError(f"{label}: not a readable {path.suffix.lower()} image: {error or type(error).__name__}") from error
    if max_image_pixels is not None and image.width * image.height > max_image_pixels:
        raise ImageLoadingError(f"{label}: {image.width}x{image.height} pixels, more than the limit of {max_image_pixels}")
    return image


def _read_file(
    path: Path, label: str, apply_exif_orientation: bool, max_image_pixels: int | None, draft_size=None
) -> Image.Image:
    """One image file: a reader of `FILE_READERS` for its suffix, else PIL."""
    if not os.path.lexists(path):
        raise ImageLoadingError(f"{label}: no such file")
    if path.is_dir():
        raise ImageLoadingError(f"{label}: is a folder, not an image file")
    if not path.is_file():
        raise ImageLoadingError(f"{label}: not a regular file (a device, pipe or broken link)")
    try:
        if path.stat().st_size == 0:
            raise ImageLoadingError(f"{label}: the file is empty (0 bytes)")
    except OSError as error:
        raise ImageLoadingError(f"{label}: cannot read the file: {error}") from error
    reader = FILE_READERS.get(path.suffix.lower())
    if reader is not None:
        return _read_with(reader, path, label, max_image_pixels)
    return _decode(path, label, apply_exif_orientation, max_image_pixels, draft_size)


def _read_dicom(source, label: str, dicom_window, dicom_frame) -> Image.Image:
    """DICOM files and bytes (the `medical` extra): `transformers_ramplus.io.dicom`."""
    if read_dicom is None:
        raise ImageLoadingError(f"{label}: DICOM files need the transformers-ramplus package (its `medical` extra)")
    try:
        return read_dicom(source, window=dicom_window, frame=dicom_frame, label=label)
    except ValueError as error:
        raise ImageLoadingError(str(error)) from error


def _is_dicom(item) -> bool:
    """A DICOM path (`.dcm`/`.dicom` or the DICM magic) or DICOM bytes: read by `transformers_ramplus.io.dicom`."""
    if isinstance(item, (bytes, bytearray)):
        return len(item) >= 132 and bytes(item[128:132]) == b"DICM"
    if isinstance(item, (str, os.PathLike)):
        source = os.fspath(item)
        if source.startswith(("http://", "https://")):
            return False
        if is_dicom_file is None:
            return source.lower().endswith((".dcm", ".dicom"))
        try:
            return os.path.isfile(source) and is_dicom_file(source)
        except OSError:
            return False  # unreadable: `_read_file` reports it
    return False


def check_dicom_frame(frame) -> None:
    """`dicom_frame` must be None or a whole number (0-based; negative counts from the end)."""
    if frame is not None and (isinstance(frame, bool) or not isinstance(frame, (int, np.integer))):
        raise ValueError(f"dicom_frame must be a whole frame number (0-based) or None, got {frame!r}")


def load_image(
    item,
    index: int = 0,
    apply_exif_orientation: bool = True,
    timeout: float | None = DEFAULT_TIMEOUT,
    max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS,
    dicom_window=None,
    dicom_frame: int | None = None,
    draft_size: tuple[int, int] | None = None,
) -> Image.Image:
    """Turn one input (path, URL, bytes, PIL image, numpy array, torch tensor; DICOM files and bytes with the
    `medical` extra) into an RGB PIL image.

    This is the package's only image-reading path. `index` is the input's position, used in messages. URLs are
    fetched with `timeout` (see [`fetch_url`]); encoded images declaring more than `max_image_pixels` pixels are
    refused. Raises `ImageLoadingError` (a `ValueError`) naming the input and its position when it is unreadable,
    empty or malformed, and `TypeError` for an unsupported input type. `dicom_window` (`(center, width)`) and
    `dicom_frame` apply to DICOM inputs (see `transformers_ramplus.io.dicom`). `draft_size` `(width, height)`:
    encoded JPEGs are decoded at the smallest DCT scale (1/2, 1/4, 1/8) no smaller than that (faster; the pixels
    differ from a full decode), other inputs as usual.
    """
    check_dicom_frame(dicom_frame)
    label = _describe(item, index)
    if _is_dicom(item):
        return _read_dicom(item, label, dicom_window, dicom_frame)
    if isinstance(item, (str, os.PathLike)):
        source = os.fspath(item)
        if isinstance(source, bytes):
            source = os.fsdecode(source)
        if source.startswith(("http://", "https://")):
            data = fetch_url(source, label, timeout)
            if not data:
                raise ImageLoadingError(f"{label}: the server sent an empty body")
            image = _decode(io.BytesIO(data), label, apply_exif_orientation, max_image_pixels, draft_size)
        else:
            image = _read_file(Path(source), label, apply_exif_orientation, max_image_pixels, draft_size)
    elif isinstance(item, (bytes, bytearray, memoryview)):
        if not len(item):
            raise ImageLoadingError(f"{label}: empty bytes")
        image = _decode(io.BytesIO(bytes(item)), label, apply_exif_orientation, max_image_pixels, draft_size)
    elif isinstance(item, Image.Image):
        image = item
        if apply_exif_orientation:
            image = ImageOps.exif_transpose(image)
    elif isinstance(item, np.ndarray):
        image = _array_to_pil(item, label)
    elif type(item).__module__.startswith("torch") and hasattr(item, "detach"):
        image = _array_to_pil(_tensor_to_array(item, label), label)
    else:
        raise TypeError(
            f"{label}: unsupported input type {type(item).__name__}; expected a file path, URL, bytes, PIL image, "
            "numpy array or torch tensor"
        )
    if image.width == 0 or image.height == 0:
        raise ImageLoadingError(f"{label}: the image has zero size ({image.width}x{image.height})")
    try:
        return _pil_to_rgb(image)
    except Exception as error:
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
    apply_exif_orientation = True
    timeout = DEFAULT_TIMEOUT
    max_image_pixels = DEFAULT_MAX_IMAGE_PIXELS
    dicom_window = None
    dicom_frame = None
    fast_decode = False
    fast_resize = False

    _READ_SETTINGS = ("apply_exif_orientation", "timeout", "max_image_pixels", "dicom_window", "dicom_frame")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        check_dicom_frame(self.dicom_frame)  # a bad setting is refused here, not once per image

    def load_image(self, item, index: int = 0, **overrides) -> Image.Image:
        """One input as an RGB PIL image, with this processor's EXIF, timeout, pixel-limit and DICOM settings (each
        can be overridden by keyword)."""
        settings = {
            name: overrides[name] if overrides.get(name) is not None else getattr(self, name)
            for name in self._READ_SETTINGS
        }
        settings["apply_exif_orientation"] = bool(settings["apply_exif_orientation"])
        fast = overrides.get("fast_decode")
        if fast if fast is not None else self.fast_decode:
            settings["draft_size"] = self.draft_size()
        return load_image(item, index, **settings)

    def draft_size(self) -> tuple[int, int] | None:
        """What `fast_decode` asks the JPEG decoder for: a square of the model's larger input side (whatever the
        EXIF orientation turns), or None without a fixed size."""
        fixed = self.fixed_size()
        return None if fixed is None else (max(fixed), max(fixed))

    def load_images(
        self,
        images,
        apply_exif_orientation: bool | None = None,
        dicom_window=None,
        dicom_frame: int | None = None,
        timeout=None,
        max_image_pixels=None,
        fast_decode=None,
    ) -> list[Image.Image]:
        """Load and validate every input as an RGB PIL image (the first bad input raises, naming its position)."""
        settings = dict(
            apply_exif_orientation=apply_exif_orientation,
            dicom_window=dicom_window,
            dicom_frame=dicom_frame,
            timeout=timeout,
            max_image_pixels=max_image_pixels,
            fast_decode=fast_decode,
        )
        return [self.load_image(item, index, **settings) for index, item in enumerate(_flatten_inputs(images))]

    def fixed_size(self) -> tuple[int, int] | None:
        """`(height, width)` every image is resized to, or None for other resize rules (or no resize)."""
        size = self.size
        if getattr(size, "shortest_edge", None) or getattr(size, "max_height", None) or not self.do_resize:
            return None
        if isinstance(size, dict):
            height, width = size.get("height"), size.get("width")
        else:  # transformers' SizeDict
            height, width = getattr(size, "height", None), getattr(size, "width", None)
        return (height, width) if height and width else None

    def supports_uint8_batches(self) -> bool:
        """Whether `pixel_values_from_uint8` gives what this processor's call gives: a fixed size, RGB, no crop or
        pad, and this class's own steps (a subclass that changes one is left to its call)."""
        steps = ("_preprocess", "process_image", "resize", "rescale", "normalize", "resize_ahead", "convert_to_rgb")
        own = all(getattr(type(self), name) is getattr(RamPlusImageProcessor, name) for name in steps)
        return bool(
            own
            and self.fixed_size() is not None
            and self.do_convert_rgb is not False
            and not self.do_center_crop
            and not getattr(self, "do_pad", False)
        )

    def pixel_values_from_uint8(self, images: torch.Tensor) -> torch.Tensor:
        """Pixel values `(batch, 3, height, width)` (float32; uint8 without rescale and normalization, as the call gives
        them) from images already resized by `resize_ahead`, as a uint8
        tensor `(batch, height, width, 3)` (on any device: the arithmetic runs there). The same rescale (in float64,
        then float32) and normalization (float32) as this processor's call, so the values are identical; a GPU gets
        uint8 bytes (a quarter of float32's) and normalizes them itself."""
        if not self.supports_uint8_batches():
            raise ValueError("this image processor's settings need its own call (`supports_uint8_batches()` is False)")
        height, width = self.fixed_size()
        if images.dtype != torch.uint8 or images.dim() != 4 or tuple(images.shape[1:]) != (height, width, 3):
            raise ValueError(
                f"expected uint8 images (batch, {height}, {width}, 3), got {images.dtype} {tuple(images.shape)}"
            )
        pixels = images.permute(0, 3, 1, 2)
        if self.do_rescale:
            pixels = (pixels.to(torch.float64) * self.rescale_factor).to(torch.float32)
        if self.do_normalize:
            pixels = pixels.to(torch.float32)
            mean, std = self.image_mean, self.image_std
            mean = [mean] * 3 if isinstance(mean, (int, float)) else list(mean)
            std = [std] * 3 if isinstance(std, (int, float)) else list(std)
            # made on the CPU and queued to the device: a blocking copy would wait for the GPU's earlier work (the
            # previous batch, which `tag_batches` runs ahead of)
            mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1).to(pixels.device, non_blocking=True)
            std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1).to(pixels.device, non_blocking=True)
            pixels = (pixels - mean) / std
        return pixels.contiguous()

    def resize_ahead(self, image, fast_resize: bool | None = None):
        """`image` (an RGB PIL image, as `load_image` returns it) resized now exactly as this processor's call would
        resize it (the same PIL resize to `size` with `resample`; with `fast_resize`, torch's, as the call then
        does), so that the processor's call on the result gives the same pixel values (its own resize is then the
        identity). Lets a reader thread do the costly resize of a large photo while the model runs
        (`inference.tagging.tag_batches`). `fast_resize` overrides this processor's setting. Other inputs, and
        settings without a fixed height and width, come back unchanged."""
        fixed = self.fixed_size()
        if fixed is None or not (isinstance(image, Image.Image) and image.mode == "RGB"):
            return image  # other resize rules and inputs: left to the processor
        height, width = fixed
        if image.size == (width, height):
            return image
        resample = self.resample if self.resample is not None else PILImageResampling.BILINEAR
        mode = fast_resize_mode(resample) if (self.fast_resize if fast_resize is None else fast_resize) else None
        if mode is not None:
            return Image.fromarray(resize_uint8(rgb_array(image), height, width, mode))
        return image.resize((width, height), resample=int(resample))

    def resize(self, image: np.ndarray, size, resample=None, reducing_gap=None, **kwargs) -> np.ndarray:
        """The call's resize: PIL's (transformers' PIL backend), or with `fast_resize` torch's kernel on uint8
        `(3, h, w)` pixels to a fixed size, the very computation of `resize_ahead` (identical values)."""
        mode = fast_resize_mode(resample if resample is not None else PILImageResampling.BILINEAR)
        height, width = getattr(size, "height", None), getattr(size, "width", None)
        if (
            self.fast_resize
            and mode is not None
            and height
            and width
            and isinstance(image, np.ndarray)
            and image.dtype == np.uint8
            and image.ndim == 3
            and image.shape[0] == 3
        ):
            if image.shape[1:] == (height, width):
                return image
            return np.moveaxis(resize_uint8(np.moveaxis(image, 0, -1), height, width, mode), -1, 0)
        return super().resize(image, size, resample=resample, reducing_gap=reducing_gap, **kwargs)

    def _prepare_image_like_inputs(self, images, *args, expected_ndims: int = 3, **kwargs) -> list[np.ndarray]:
        loaded = self.load_images(images, **{name: kwargs.get(name) for name in (*self._READ_SETTINGS, "fast_decode")})
        return [self.process_image(image, *args, **kwargs) for image in loaded]


__all__ = [
    "DEFAULT_MAX_IMAGE_PIXELS",
    "DEFAULT_TIMEOUT",
    "ImageLoadingError",
    "RamPlusImageProcessor",
    "check_dicom_frame",
    "fast_resize_mode",
    "fetch_url",
    "load_image",
    "resize_uint8",
]
