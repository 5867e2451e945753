"""Uploaded query images: checked before they are decoded, kept in memory only, for a while.

An upload is refused unless its first bytes are those of a JPEG, PNG, WebP or BMP file, its
header declares at most ``max_pixels`` pixels (decompression bombs are refused before any pixel
is decoded) and its size is within the request-body limit (``body_limit.py``). Accepted uploads
are kept as their original bytes under a random id in a bounded, least-recently-used store, so
nothing a client sends is ever written to disk by this module and memory stays bounded.
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from personsearch.data.images import ImageReadError, ImageTooLargeError, decode_image

MAGIC = {
    b"\xff\xd8\xff": "jpeg",
    b"\x89PNG\r\n\x1a\n": "png",
    b"BM": "bmp",
}


class UploadError(ValueError):
    """An upload that is not an image this service accepts (the message says why)."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


def sniff(data: bytes) -> str:
    """The image format given by the content itself (never by the file name or the client's
    content type), or ``UploadError`` 415."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    for magic, kind in MAGIC.items():
        if data.startswith(magic):
            return kind
    raise UploadError(
        "the upload is not a JPEG, PNG, WebP or BMP image (judged by its content); "
        "upload a photo in one of those formats",
        415,
    )


def decode_upload(data: bytes, name: str, max_pixels: int) -> np.ndarray:
    """Sniff, then decode with the pixel bound; errors are ``UploadError`` with an HTTP status."""
    if not data:
        raise UploadError("the upload is empty; choose an image file", 422)
    sniff(data)
    try:
        return decode_image(data, name, max_pixels=max_pixels)
    except ImageReadError as err:
        raise UploadError(str(err), 413 if isinstance(err, ImageTooLargeError) else 422) from None


@dataclass
class Upload:
    id: str
    image: np.ndarray
    """HxWx3 uint8 RGB."""
    people: np.ndarray
    """(n, 5) detections ``[x1, y1, x2, y2, score]`` found in it."""
    features: dict[tuple[float, ...], np.ndarray] = field(default_factory=dict)
    """Query features already computed, by box: searching again with other filters is free."""


class UploadStore:
    """The most recent uploads, bounded by count and by decoded bytes (oldest dropped first)."""

    def __init__(self, max_items: int = 16, max_bytes: int = 512 * 2**20) -> None:
        self.max_items, self.max_bytes = max_items, max_bytes
        self._items: OrderedDict[str, Upload] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, image: np.ndarray, people: np.ndarray) -> Upload:
        upload = Upload(secrets.token_urlsafe(12), image, people)
        with self._lock:
            self._items[upload.id] = upload
            while len(self._items) > self.max_items or (
                len(self._items) > 1 and self._bytes() > self.max_bytes
            ):
                self._items.popitem(last=False)
        return upload

    def _bytes(self) -> int:
        return sum(item.image.nbytes for item in self._items.values())

    def get(self, upload_id: str) -> Upload:
        with self._lock:
            upload = self._items.get(upload_id)
            if upload is None:
                raise KeyError(
                    f"no upload {upload_id!r}: uploads are kept for the {self.max_items} most recent only; "
                    "upload the image again"
                )
            self._items.move_to_end(upload_id)
            return upload
