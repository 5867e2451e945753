"""Safe image reading: exact pixels, RGB conversion, clear errors, the decompression-bomb bound."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from personsearch.data.images import (
    DEFAULT_MAX_PIXELS,
    MAX_PIXELS_ENV,
    ImageReadError,
    decode_image,
    encode_jpeg,
    read_image,
)


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A tiny PNG that claims ``width`` x ``height`` pixels (a decompression-bomb shape)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )
    return path


def test_png_round_trip_is_exact_rgb_uint8(tmp_path: Path) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, size=(7, 5, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    image = read_image(tmp_path / "a.png")
    assert image.dtype == np.uint8 and image.shape == (7, 5, 3) and image.flags.c_contiguous
    np.testing.assert_array_equal(image, pixels)


def test_grey_and_rgba_become_three_channels(tmp_path: Path) -> None:
    Image.fromarray(np.full((4, 6), 77, np.uint8)).save(tmp_path / "g.png")
    Image.fromarray(np.full((4, 6, 4), (10, 20, 30, 0), np.uint8)).save(tmp_path / "rgba.png")
    assert read_image(tmp_path / "g.png").tolist() == np.full((4, 6, 3), 77).tolist()
    assert read_image(tmp_path / "rgba.png")[0, 0].tolist() == [10, 20, 30]


def test_missing_and_corrupt_files_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match=r"nope\.jpg: file not found"):
        read_image(tmp_path / "nope.jpg")
    (tmp_path / "junk.jpg").write_bytes(b"this is not a jpeg")
    with pytest.raises(ImageReadError, match=r"junk\.jpg: not a readable image"):
        read_image(tmp_path / "junk.jpg")
    good = encode_jpeg(np.zeros((64, 64, 3), np.uint8))
    (tmp_path / "cut.jpg").write_bytes(good[: len(good) // 2])
    with pytest.raises(ImageReadError, match=r"cut\.jpg"):
        read_image(tmp_path / "cut.jpg")
    with pytest.raises(ImageReadError, match="is a directory"):
        read_image(tmp_path)


def test_oversized_image_is_refused_before_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bomb = _png_header_only(tmp_path / "bomb.png", 9000, 8000)  # 72 Mpx claimed by a ~100-byte file
    assert bomb.stat().st_size < 200
    with pytest.raises(
        ImageReadError,
        match=r"bomb\.png: image is 9000x8000 = 72,000,000 pixels, over the limit of 64,000,000",
    ):
        read_image(bomb)
    Image.fromarray(np.zeros((100, 100, 3), np.uint8)).save(tmp_path / "small.png")
    with pytest.raises(ImageReadError, match="over the limit of 5,000"):
        read_image(tmp_path / "small.png", max_pixels=5000)
    monkeypatch.setenv(MAX_PIXELS_ENV, "9999")
    with pytest.raises(ImageReadError, match="over the limit of 9,999"):
        read_image(tmp_path / "small.png")
    assert read_image(tmp_path / "small.png", max_pixels=10_000).shape == (100, 100, 3)
    monkeypatch.setenv(MAX_PIXELS_ENV, "lots")
    with pytest.raises(ValueError, match="PERSONSEARCH_MAX_PIXELS='lots' is not an integer"):
        read_image(tmp_path / "small.png")
    assert DEFAULT_MAX_PIXELS == 64_000_000


def test_jpeg_bytes_round_trip() -> None:
    image = np.zeros((20, 10, 3), np.uint8)
    image[:10] = (200, 30, 30)
    decoded = decode_image(encode_jpeg(image, quality=95), "thumb")
    assert decoded.shape == (20, 10, 3)
    assert np.abs(decoded.astype(int) - image).mean() < 4
    with pytest.raises(ImageReadError, match="thumb: not a readable image"):
        decode_image(b"\xff\xd8garbage", "thumb")
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        encode_jpeg(np.zeros((4, 4), np.uint8))
