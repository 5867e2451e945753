"""CUHK-SYSU loader: the official ``.mat`` annotations turned into ``PersonSearchDataset`` records.

It follows the rules of the reference loaders (SeqNet / COAT / OIM; docs/specs/benchmarks.md section 1)
exactly, so results computed on these records are comparable with published numbers:

* images: ``Image/SSM/<name>``; every box of ``annotation/Images.mat`` with ``w > 0`` and ``h > 0``,
  cast to int32 and converted ``[x, y, w, h] -> [x, y, x + w, y + h]`` (no +-1);
* test images = ``pool.mat`` in file order (the gallery order); train = the other images, sorted;
* train identity ``i`` of ``Train.mat`` (0-based) is pid ``i + 1``; test query ``i`` of ``TestG50.mat``
  is pid ``i + 1``. A box gets a pid when its int32 ``[x, y, w, h]`` equals the file's box exactly
  (the first such box of the image); every other box is ``UNLABELED``;
* the TestG50 gallery labels the target boxes up to the first entry without the target (the real
  files list target images first); each query's protocol gallery for every ``TestG{G}.mat`` keeps
  all entries, in file order (the file's ``1xG`` gallery; the length is not enforced so that small
  synthetic benchmarks can use the same format).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from personsearch.data.matfile import DatasetFormatError, MatReader, check_files_exist, read_mat_variable
from personsearch.data.records import UNLABELED, GalleryItem, PersonSearchDataset, Query, Scene

IMAGE_DIR = Path("Image") / "SSM"
IMAGES_MAT = Path("annotation") / "Images.mat"
POOL_MAT = Path("annotation") / "pool.mat"
PROTOCOL_DIR = Path("annotation") / "test" / "train_test"
TRAIN_MAT = PROTOCOL_DIR / "Train.mat"
SUBSET_DIR = Path("annotation") / "test" / "subset"

GALLERY_SIZES: tuple[int, ...] = (50, 100, 500, 1000, 2000, 4000)
"""Gallery sizes of the official ``TestG{G}.mat`` files; TestG50 is required (it defines the test pids)."""

SUBSETS: dict[str, tuple[str, str]] = {
    "Occlusion": ("Occlusion.mat", "Occlusion1"),
    "Resolution": ("Resolution.mat", "Test_Size"),
}
"""Optional query subsets: name -> (file in ``annotation/test/subset``, variable)."""

SUBSET_GALLERY_SIZE = 100


def protocol_path(size: int) -> Path:
    """Relative path of the ``TestG{size}.mat`` protocol file."""
    return PROTOCOL_DIR / f"TestG{size}.mat"


def _fix(root: Path, relative: Path) -> str:
    return (
        f"re-download/unpack CUHK-SYSU so that {root / relative} is the official file "
        "(or rewrite the annotations with personsearch.data.writers.write_cuhk_sysu)"
    )


def _read(root: Path, relative: Path, variable: str) -> tuple[MatReader, np.ndarray]:
    fix = _fix(root, relative)
    _, value = read_mat_variable(root / relative, variable, fix=fix)
    return MatReader(root / relative, fix), value


def _xyxy(xywh: np.ndarray) -> np.ndarray:
    """int32 ``[x, y, w, h]`` rows -> float32 ``[x, y, x + w, y + h]`` rows."""
    xywh = np.asarray(xywh, dtype=np.int32).reshape(-1, 4)
    return np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1).astype(np.float32)


@dataclass
class _Image:
    """One ``Images.mat`` entry after the zero-size filter: int32 ``[x, y, w, h]`` and hard flags."""

    xywh: np.ndarray
    hard: np.ndarray


@dataclass
class _ProtocolEntry:
    """One query of a ``TestG``-structured file: the query box and its gallery (xywh or None)."""

    name: str
    xywh: np.ndarray
    gallery: list[tuple[str, np.ndarray | None]]


def _load_images(root: Path) -> dict[str, _Image]:
    reader, value = _read(root, IMAGES_MAT, "Img")
    images: dict[str, _Image] = {}
    for k, entry in enumerate(reader.structs(value, "Img", 3), start=1):
        name = reader.string(entry[0], f"Img({k}).imname")
        if name in images:
            raise reader.error("image names", "unique", f"{name} listed twice (second time at Img({k}))")
        rows, hard = [], []
        for j, box in enumerate(reader.structs(entry[2], f"Img({k}).box", 1), start=1):
            rows.append(reader.numbers(box[0], f"Img({k}).box({j}).idlocate", 4))
            flag: np.ndarray | list[float] = (
                reader.numbers(box[1], f"Img({k}).box({j}).ishard", allow_empty=True) if len(box) > 1 else []  # type: ignore[arg-type]
            )
            hard.append(bool(np.any(flag)))
        xywh = np.asarray(rows, dtype=np.float64).reshape(-1, 4)
        valid = (xywh[:, 2] > 0) & (xywh[:, 3] > 0)
        images[name] = _Image(xywh[valid].astype(np.int32), np.asarray(hard, dtype=bool)[valid])
    return images


def _load_pool(root: Path) -> list[str]:
    reader, value = _read(root, POOL_MAT, "pool")
    return [
        reader.string(cell, f"pool{{{k}}}") for k, cell in enumerate(reader.cells(value, "pool"), start=1)
    ]


def _read_protocol(reader: MatReader, value: np.ndarray, label: str) -> list[_ProtocolEntry]:
    """Entries of a ``TestG``-structured struct array (fields ``Query`` 1x1 and ``Gallery`` 1xG)."""
    queries = reader.struct_field(value, "Query", label).ravel()
    galleries = reader.struct_field(value, "Gallery", label).ravel()
    entries = []
    for i, (query_value, gallery_value) in enumerate(zip(queries, galleries), start=1):
        query = reader.struct(query_value, f"{label}({i}).Query", 2)
        gallery = []
        for j, item in enumerate(reader.structs(gallery_value, f"{label}({i}).Gallery", 2), start=1):
            where = f"{label}({i}).Gallery({j})"
            box = reader.numbers(
                item[1],
                f"{where}.idlocate (4 numbers, or empty 1x0 if the target is absent)",
                4,
                allow_empty=True,
            )
            # interned: TestG4000 alone repeats the 6,978 pool names 11.6 million times
            name = sys.intern(reader.string(item[0], f"{where}.imname"))
            gallery.append((name, box.astype(np.int32) if box.size else None))
        entries.append(
            _ProtocolEntry(
                reader.string(query[0], f"{label}({i}).Query.imname"),
                reader.numbers(query[1], f"{label}({i}).Query.idlocate", 4).astype(np.int32),
                gallery,
            )
        )
    return entries


def _check_query_order(
    reader: MatReader, entries: list[_ProtocolEntry], label: str, reference: list[_ProtocolEntry]
) -> None:
    """The queries match ``reference`` (TestG50) index by index, as evaluation relies on."""
    if len(entries) != len(reference):
        raise reader.error(label, f"{len(reference)} queries, as in TestG50.mat", f"{len(entries)}")
    for i, (entry, ref) in enumerate(zip(entries, reference), start=1):
        if entry.name != ref.name or not np.array_equal(entry.xywh, ref.xywh):
            raise reader.error(
                f"{label}({i}).Query",
                f"the same query as TestG50({i}): {ref.name} {ref.xywh.tolist()}",
                f"{entry.name} {entry.xywh.tolist()} (every TestG file must list the queries in one order)",
            )


def _check_in_pool(reader: MatReader, entries: list[_ProtocolEntry], label: str, pool: set[str]) -> None:
    """Queries and protocol galleries may only name test images (the evaluation looks them up in the pool)."""
    expected = "a test image listed in annotation/pool.mat"
    for i, entry in enumerate(entries, start=1):
        if entry.name not in pool:
            raise reader.error(f"{label}({i}).Query.imname", expected, repr(entry.name))
        for j, (name, _) in enumerate(entry.gallery, start=1):
            if name not in pool:
                raise reader.error(f"{label}({i}).Gallery({j}).imname", expected, repr(name))


def _label(
    images: dict[str, _Image], names: Iterable[str], boxes: Iterable[tuple[str, np.ndarray, int]]
) -> dict[str, np.ndarray]:
    """pids for ``names``: each ``(image, xywh, pid)`` labels the first equal box of that image."""
    pids = {name: np.full(len(images[name].xywh), UNLABELED, dtype=np.int64) for name in names}
    for name, xywh, pid in boxes:
        if name not in pids:
            continue  # an image of the other split: the reference loaders ignore it too
        match = np.flatnonzero(np.all(images[name].xywh == xywh, axis=1))
        if match.size:
            pids[name][match[0]] = pid
    return pids


def _train_boxes(root: Path, images: dict[str, _Image]) -> list[tuple[str, np.ndarray, int]]:
    """``(image, xywh, pid)`` of every box in ``Train.mat``; identity ``i`` (0-based) is pid ``i + 1``."""
    reader, value = _read(root, TRAIN_MAT, "Train")
    boxes = []
    for i, cell in enumerate(reader.cells(value, "Train"), start=1):
        identity = reader.struct(cell, f"Train{{{i}}} (a cell holding a 1x1 struct)", 3)
        for j, scene in enumerate(reader.structs(identity[2], f"Train{{{i}}}.scene", 2), start=1):
            name = reader.string(scene[0], f"Train{{{i}}}.scene({j}).imname")
            if name not in images:
                raise reader.error(
                    f"Train{{{i}}}.scene({j}).imname", "an image listed in annotation/Images.mat", repr(name)
                )
            xywh = reader.numbers(scene[1], f"Train{{{i}}}.scene({j}).idlocate", 4).astype(np.int32)
            boxes.append((name, xywh, i))
    return boxes


def _test_boxes(entries: list[_ProtocolEntry]) -> list[tuple[str, np.ndarray, int]]:
    """``(image, xywh, pid)`` that TestG50 labels: query ``i`` (0-based) and its targets get ``i + 1``."""
    boxes = []
    for pid, entry in enumerate(entries, start=1):
        boxes.append((entry.name, entry.xywh, pid))
        for name, xywh in entry.gallery:
            if xywh is None:
                break  # the reference loaders stop at the first image without the target
            boxes.append((name, xywh, pid))
    return boxes


def _gallery_items(entry: _ProtocolEntry) -> list[GalleryItem]:
    return [GalleryItem(name, None if xywh is None else _xyxy(xywh)[0]) for name, xywh in entry.gallery]


def _scenes(
    root: Path, names: Sequence[str], images: dict[str, _Image], pids: dict[str, np.ndarray]
) -> list[Scene]:
    return [
        Scene(name, root / IMAGE_DIR / name, _xyxy(images[name].xywh), pids[name], 0, images[name].hard)
        for name in names
    ]


def _load_protocol(
    root: Path, size: int, pool: set[str], reference: list[_ProtocolEntry] | None
) -> list[_ProtocolEntry]:
    """``TestG{size}.mat``, checked against the pool and the TestG50 query order (``reference``)."""
    label = f"TestG{size}"
    reader, value = _read(root, protocol_path(size), label)
    entries = _read_protocol(reader, value, label)
    if reference is not None:
        _check_query_order(reader, entries, label, reference)
    _check_in_pool(reader, entries, label, pool)
    return entries


def _load_subsets(root: Path, reference: list[_ProtocolEntry], pool: set[str]) -> dict[str, list[Query]]:
    """Occlusion / Resolution query sets, when present; pids are those of the same TestG50 query."""
    pid_of = {(e.name, tuple(e.xywh.tolist())): pid for pid, e in enumerate(reference, start=1)}
    subsets = {}
    for name, (filename, variable) in SUBSETS.items():
        relative = SUBSET_DIR / filename
        if not (root / relative).exists():
            continue
        reader, value = _read(root, relative, variable)
        entries = _read_protocol(reader, value, variable)
        _check_in_pool(reader, entries, variable, pool)
        subsets[name] = [
            Query(
                e.name,
                root / IMAGE_DIR / e.name,
                _xyxy(e.xywh)[0],
                pid_of.get((e.name, tuple(e.xywh.tolist())), UNLABELED),
                0,
                {SUBSET_GALLERY_SIZE: _gallery_items(e)},
            )
            for e in entries
        ]
    return subsets


def load_cuhk_sysu(root: str | Path, *, gallery_sizes: Sequence[int] | None = None) -> PersonSearchDataset:
    """Load CUHK-SYSU from ``root`` (the folder holding ``Image/`` and ``annotation/``).

    ``gallery_sizes`` limits which ``TestG{G}.mat`` files are read (default: every one present);
    TestG4000 alone holds 11.6 million gallery entries, so training code may want only ``[50]``.
    Raises ``DatasetFormatError`` for a missing or malformed file.
    """
    root = Path(root).expanduser().resolve()
    sizes = GALLERY_SIZES if gallery_sizes is None else tuple(sorted(set(gallery_sizes) | {50}))
    unknown = sorted(set(sizes) - set(GALLERY_SIZES))
    if unknown:
        raise ValueError(
            f"gallery sizes {unknown} do not exist in CUHK-SYSU; choose from {list(GALLERY_SIZES)}"
        )

    images = _load_images(root)
    pool = _load_pool(root)
    unknown_pool = [name for name in pool if name not in images]
    if unknown_pool:
        raise DatasetFormatError(
            root / POOL_MAT,
            "only images that annotation/Images.mat lists",
            f"{len(unknown_pool)} others ({', '.join(unknown_pool[:5])})",
            _fix(root, POOL_MAT),
        )
    check_files_exist(root / IMAGE_DIR, list(images), "annotation/Images.mat", _fix(root, IMAGE_DIR))
    pool_names = set(pool)
    train_names = sorted(set(images) - pool_names)

    train_pids = _label(images, train_names, _train_boxes(root, images))
    reference = _load_protocol(root, 50, pool_names, None)
    test_pids = _label(images, pool, _test_boxes(reference))
    protocols = {50: reference}
    for size in sizes:
        if size != 50 and (root / protocol_path(size)).exists():
            protocols[size] = _load_protocol(root, size, pool_names, reference)

    queries = [
        Query(
            entry.name,
            root / IMAGE_DIR / entry.name,
            _xyxy(entry.xywh)[0],
            pid,
            0,
            {size: _gallery_items(protocols[size][pid - 1]) for size in protocols},
        )
        for pid, entry in enumerate(reference, start=1)
    ]
    return PersonSearchDataset(
        name="CUHK-SYSU",
        root=root,
        protocol="cuhk",
        train=_scenes(root, train_names, images, train_pids),
        gallery=_scenes(root, pool, images, test_pids),
        queries=queries,
        subsets=_load_subsets(root, reference, pool_names),
    )
