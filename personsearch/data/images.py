"""Safe image file I/O shared by every part of the package.

Every image the package decodes (benchmark scenes, index sources, query crops, thumbnails) goes
through here, so one pixel bound protects all of them against decompression bombs (a small file
that decodes to gigabytes) and every failure is the same ``ImageReadError`` naming the file.

Pixels are returned exactly as stored: no EXIF orientation is applied, because the benchmark
annotations (CUHK-SYSU, PRW) and the reference code (SeqNet: ``Image.open(...).convert("RGB")``)
use the stored pixel order, and boxes must keep meaning the same pixels everywhere.

Where a box meets an image, one clipping policy: boxes are float32 xyxy pixels, clipped to the
image; one left with less than 1 pixel of width or height inside it is not a person anyone can
see, so it is dropped (detections) or refused with an error naming it (a box a user or a dataset
gave). ``crop_box`` cuts a box's pixels as they are (thumbnails, query crops). Kept free of
torch, like the rest of this module: the pipeline and the index import it.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

DEFAULT_MAX_PIXELS = 64_000_000
"""Largest image (width x height) decoded by default: ~64 megapixels, 192 MB as RGB uint8."""

MAX_PIXELS_ENV = "PERSONSEARCH_MAX_PIXELS"
"""Environment variable that overrides ``DEFAULT_MAX_PIXELS`` for a whole run."""


class ImageReadError(OSError):
    """An image (or video frame) that cannot be used: missing, corrupt, or too large."""


class ImageNotFoundError(ImageReadError, FileNotFoundError):
    """An image path that does not exist."""


class ImageTooLargeError(ImageReadError):
    """An image over the pixel bound (or a decompression bomb), refused before decoding."""


def max_pixels_limit(max_pixels: int | None = None) -> int:
    """The pixel bound in force: the argument, else ``$PERSONSEARCH_MAX_PIXELS``, else the default."""
    value: int | str
    if max_pixels is not None:
        value, origin = max_pixels, "max_pixels"
    elif os.environ.get(MAX_PIXELS_ENV):
        value, origin = os.environ[MAX_PIXELS_ENV], MAX_PIXELS_ENV
    else:
        return DEFAULT_MAX_PIXELS
    try:
        limit = int(value)
    except ValueError:
        raise ValueError(f"{origin}={value!r} is not an integer pixel count (e.g. 64000000)") from None
    if limit <= 0:
        raise ValueError(f"{origin}={limit} must be a positive pixel count (e.g. 64000000)")
    return limit


def check_image_size(width: int, height: int, name: str | Path, max_pixels: int | None = None) -> None:
    """Refuse a ``width`` x ``height`` image over the pixel bound before anything is decoded."""
    limit = max_pixels_limit(max_pixels)
    if width <= 0 or height <= 0:
        raise ImageReadError(f"{name}: image size {width}x{height} is empty; the file is corrupt")
    if width * height > limit:
        raise ImageTooLargeError(
            f"{name}: image is {width}x{height} = {width * height:,} pixels, over the limit of {limit:,}; "
            f"downscale it, or raise the limit with max_pixels= or ${MAX_PIXELS_ENV} if you trust the file"
        )


def _decode(source: str | Path | io.BytesIO, name: str | Path, max_pixels: int | None) -> np.ndarray:
    limit = max_pixels_limit(max_pixels)
    try:
        with warnings.catch_warnings():
            # Our own bound replaces Pillow's global one (checked below, before decoding).
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(source) as image:
                check_image_size(image.width, image.height, name, limit)
                rgb = image.convert("RGB")
    except ImageReadError:
        raise
    except FileNotFoundError:
        raise ImageNotFoundError(f"{name}: file not found; check the path") from None
    except Image.DecompressionBombError as err:
        raise ImageTooLargeError(f"{name}: refused by Pillow as a decompression bomb ({err})") from None
    except (OSError, ValueError, SyntaxError) as err:
        # Pillow reports unknown formats, truncated data and bad headers with these types.
        raise ImageReadError(
            f"{name}: not a readable image ({type(err).__name__}: {err}); expected a JPEG, PNG, BMP, "
            "TIFF or WebP file: re-export or remove it"
        ) from None
    return np.array(rgb, dtype=np.uint8)  # a writable copy: torch.from_numpy needs one


def read_image(path: str | Path, *, max_pixels: int | None = None) -> np.ndarray:
    """Decode an image file to an HxWx3 uint8 RGB array, refusing files over the pixel bound.

    Raises ``ImageReadError`` (naming the file) for a missing, corrupt or oversized file.
    """
    path = Path(path)
    if path.is_dir():
        raise ImageReadError(f"{path}: is a directory, expected an image file")
    return _decode(path, path, max_pixels)


def decode_image(data: bytes, name: str, *, max_pixels: int | None = None) -> np.ndarray:
    """Decode encoded image bytes (e.g. a stored JPEG thumbnail); ``name`` labels errors."""
    return _decode(io.BytesIO(data), name, max_pixels)


def encode_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    """Encode an HxWx3 uint8 RGB array as JPEG bytes."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 RGB image, got shape {image.shape} dtype {image.dtype}")
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


MIN_SIDE = 1.0
"""Smallest width and height (pixels) a box keeps inside the image."""


def clip_boxes(boxes: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Clip xyxy boxes to a ``width`` x ``height`` image; returns the clipped (n, 4) boxes and
    which ones keep at least ``MIN_SIDE`` pixels each way."""
    clipped = np.asarray(boxes, dtype=np.float32).reshape(-1, 4).copy()
    clipped[:, [0, 2]] = clipped[:, [0, 2]].clip(0, width)
    clipped[:, [1, 3]] = clipped[:, [1, 3]].clip(0, height)
    keep = (clipped[:, 2] - clipped[:, 0] >= MIN_SIDE) & (clipped[:, 3] - clipped[:, 1] >= MIN_SIDE)
    return clipped, keep


def clip_or_refuse(boxes: np.ndarray, width: int, height: int, what: str = "box") -> np.ndarray:
    """Clipped boxes; a box with no area inside the image raises, naming it."""
    clipped, keep = clip_boxes(boxes, width, height)
    if not keep.all():
        bad = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)[np.flatnonzero(~keep)[0]].tolist()
        raise ValueError(
            f"{what} {bad} has no area inside the {width}x{height} image; boxes are [x1, y1, x2, y2] pixels"
        )
    return clipped


def crop_box(image: np.ndarray, box: np.ndarray | tuple[float, ...]) -> np.ndarray:
    """The pixels of an xyxy box (clipped to the image; at least 1 x 1), e.g. for a thumbnail."""
    height, width = image.shape[:2]
    x1, y1 = int(np.floor(max(0.0, float(box[0])))), int(np.floor(max(0.0, float(box[1]))))
    x2, y2 = int(np.ceil(min(float(width), float(box[2])))), int(np.ceil(min(float(height), float(box[3]))))
    x1, y1 = min(x1, width - 1), min(y1, height - 1)
    return np.ascontiguousarray(image[y1 : max(y2, y1 + 1), x1 : max(x2, x1 + 1)])
