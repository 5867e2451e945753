"""Tiny CUHK-SYSU and PRW fixtures written by hand with scipy.io.savemat (not with our writers).

The nesting mirrors docs/specs/benchmarks.md section 1.2 / 2 exactly, so the loader tests check the format
itself rather than a writer/loader pair that could share a mistake. Expected values in the tests
are hand-computed from the numbers below.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image


def struct(fields: tuple[str, ...], *rows: tuple) -> np.ndarray:
    """MATLAB 1xN struct array."""
    array = np.empty((1, len(rows)), dtype=[(f, object) for f in fields])
    for j, row in enumerate(rows):
        for field, value in zip(fields, row, strict=True):
            array[0, j][field] = value
    return array


def cell(*items: object, row: bool = False) -> np.ndarray:
    """MATLAB Nx1 cell array (1xN with ``row=True``)."""
    array = np.empty((1, len(items)) if row else (len(items), 1), dtype=object)
    for k, item in enumerate(items):
        array.flat[k] = item
    return array


def box(*xywh: float) -> np.ndarray:
    return np.array([xywh], dtype=np.float64)


EMPTY = np.zeros((1, 0))
"""The 1x0 idlocate of a gallery image without the target."""


def save(path: Path, **variables: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(str(path), variables, appendmat=False)


def write_images(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        Image.new("RGB", (32, 32), (90, 120, 150)).save(folder / name)


def _img(name: str, *boxes: tuple[np.ndarray, float]) -> tuple:
    return (name, float(len(boxes)), struct(("idlocate", "ishard"), *boxes))


def _query(name: str, xywh: np.ndarray) -> np.ndarray:
    return struct(("imname", "idlocate", "ishard", "idname"), (name, xywh, 0.0, "p"))


def _gallery(*items: tuple[str, np.ndarray]) -> np.ndarray:
    return struct(("imname", "idlocate", "ishard"), *((n, b, 0.0) for n, b in items))


CUHK_IMAGES = ["s1.jpg", "s2.jpg", "s3.jpg", "s4.jpg", "s5.jpg", "s6.jpg"]


def write_cuhk_fixture(root: Path) -> None:
    """Six images: s1, s2 train; s5, s3, s4, s6 test (pool order); two queries; G = 50 and 100."""
    images = struct(
        ("imname", "nAppear", "box"),
        _img("s2.jpg", (box(0, 0, 10, 20), 0.0), (box(12, 3, 8, 16), 0.0)),
        _img("s1.jpg", (box(10, 20, 30, 60), 0.0), (box(50, 10, 20, 40), 1.0), (box(5, 5, 0, 10), 0.0)),
        _img("s3.jpg", (box(1, 2, 10, 30), 0.0), (box(20, 2, 10, 30), 0.0)),
        _img("s4.jpg", (box(3, 4, 10, 20), 0.0), (box(15, 4, 10, 20), 0.0), (box(40, 4, 5, -1), 0.0)),
        _img("s5.jpg", (box(2, 2, 10, 10), 0.0)),
        _img("s6.jpg", (box(7, 7, 9, 9), 0.0)),
    )
    save(root / "annotation/Images.mat", Img=images)
    save(root / "annotation/pool.mat", pool=cell("s5.jpg", "s3.jpg", "s4.jpg", "s6.jpg"))

    def identity(name: str, *scenes: tuple) -> np.ndarray:
        appearances = struct(("imname", "idlocate", "ishard"), *scenes)
        return struct(("idname", "nAppear", "scene"), (name, float(len(scenes)), appearances))

    train = cell(
        identity("pB", ("s2.jpg", box(0, 0, 10, 20), 0.0)),
        # 10.7 / 20.2 truncate to the Images.mat box 10, 20 (int32 equality after the cast)
        identity("pA", ("s1.jpg", box(10.7, 20.2, 30, 60), 0.0), ("s2.jpg", box(12, 3, 8, 16), 0.0)),
    )
    save(root / "annotation/test/train_test/Train.mat", Train=train)

    q1, q2 = ("s3.jpg", box(1, 2, 10, 30)), ("s5.jpg", box(2, 2, 10, 10))
    g50 = struct(
        ("Query", "Gallery"),
        (_query(*q1), _gallery(("s4.jpg", box(3, 4, 10, 20)), ("s6.jpg", EMPTY), ("s5.jpg", EMPTY))),
        # s3's box after the first empty idlocate is in the protocol gallery but labels nothing
        (
            _query(*q2),
            _gallery(("s4.jpg", box(15, 4, 10, 20)), ("s6.jpg", EMPTY), ("s3.jpg", box(20, 2, 10, 30))),
        ),
    )
    g100 = struct(
        ("Query", "Gallery"),
        (
            _query(*q1),
            _gallery(("s4.jpg", box(3, 4, 10, 20)), ("s5.jpg", EMPTY), ("s6.jpg", np.zeros((0, 0)))),
        ),
        (_query(*q2), _gallery(("s4.jpg", box(15, 4, 10, 20)), ("s3.jpg", EMPTY))),
    )
    save(root / "annotation/test/train_test/TestG50.mat", TestG50=g50)
    save(root / "annotation/test/train_test/TestG100.mat", TestG100=g100)
    occlusion = struct(
        ("Query", "Gallery"), (_query(*q2), _gallery(("s4.jpg", box(15, 4, 10, 20)), ("s6.jpg", EMPTY)))
    )
    resolution = struct(
        ("Query", "Gallery"), (_query("s6.jpg", box(7, 7, 9, 9)), _gallery(("s3.jpg", EMPTY)))
    )
    save(root / "annotation/test/subset/Occlusion.mat", Occlusion1=occlusion)
    save(root / "annotation/test/subset/Resolution.mat", Test_Size=resolution)
    write_images(root / "Image/SSM", CUHK_IMAGES)


PRW_TRAIN = ["c1s1_000001", "c2s1_000002"]
PRW_TEST = ["c1s2_000010", "c3s1_000020", "c6s4_000030"]
QUERY_LINES = ["3 -3.7 2.5 10.2 20.9 c1s2_000010", "3 10 0 5 8 c3s1_000020"]


def write_prw_fixture(root: Path, newline: str = "\r\n") -> None:
    """Two train and three test frames using all three annotation variable names."""
    save(
        root / "annotations/c1s1_000001.jpg.mat",
        box_new=np.array([[1, 10, 20, 30, 40], [-2, 5, 5, 10, 10]], float),
    )
    save(root / "annotations/c2s1_000002.jpg.mat", anno_file=np.array([[2, -5.5, 3.7, 20.9, 30.2]]))
    save(root / "annotations/c1s2_000010.jpg.mat", anno_previous=np.array([[3, 1, 2, 3, 4]], float))
    save(root / "annotations/c3s1_000020.jpg.mat", box_new=np.array([[3, 10.6, -2, -4, 8], [-2, 0, 0, 5, 5]]))
    save(root / "annotations/c6s4_000030.jpg.mat", box_new=np.zeros((0, 5)))
    save(root / "frame_train.mat", img_index_train=cell(*PRW_TRAIN))
    save(root / "frame_test.mat", img_index_test=cell(*PRW_TEST, row=True))  # 1xN is accepted too
    (root / "query_info.txt").write_bytes("".join(line + newline for line in QUERY_LINES).encode())
    write_images(root / "frames", [n + ".jpg" for n in PRW_TRAIN + PRW_TEST])
