"""Write records in the official CUHK-SYSU and PRW annotation formats.

The synthetic benchmark and the test fixtures are stored exactly as the real datasets are, so the
same loaders (and any third-party code written for the real files, e.g. SeqNet's) read them. Only
the annotation files are written; the caller writes the images to ``root/Image/SSM/<name>``
(CUHK-SYSU) or ``root/frames/<name>`` (PRW).

Boxes must be integral xyxy with positive width and height: the formats store ``[x, y, w, h]``
and the loaders truncate to int32, so anything else would not read back unchanged.

Identities are renumbered by the CUHK-SYSU format (PRW stores pids as they are):

* train: ``Train.mat`` lists identities in ascending pid order and the loader numbers them 1..N;
* test: query ``i`` (0-based) is pid ``i + 1`` and a gallery box is labelled only when it is the
  target of a query's TestG50 gallery (or a query box itself); other gallery pids read back as
  ``UNLABELED``.

So a dataset whose train pids are 1..N, whose query ``i`` has pid ``i + 1``, whose labelled
gallery boxes are exactly the queries' TestG50 targets, and whose train scenes are sorted by
name (the loader sorts them) reads back unchanged. TestG galleries are written with the target
images first, as the real files have them (the loaders stop labelling at the first non-target).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import scipy.io

from personsearch.data import cuhk_sysu, prw
from personsearch.data.records import UNLABELED, GalleryItem, PersonSearchDataset, Query, Scene

_PRW_FRAME = re.compile(r"^c(\d)s(\d+)_(\d{6})\.jpg$")
_BOX_FIELDS = ("idlocate", "ishard")
_SCENE_FIELDS = ("imname", "idlocate", "ishard")


def _xywh(boxes: np.ndarray, what: str, *, non_negative: bool = False) -> np.ndarray:
    """Integral xyxy rows -> float64 ``[x, y, w, h]`` rows, refusing what would not read back."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if not np.all(np.isfinite(boxes)) or not np.array_equal(boxes, np.round(boxes)):
        raise ValueError(
            f"{what}: boxes must be integral pixel coordinates, got {boxes.tolist()}; round them first"
        )
    xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
    if np.any(xywh[:, 2:] <= 0):
        raise ValueError(f"{what}: every box needs x2 > x1 and y2 > y1, got {boxes.tolist()}")
    if non_negative and np.any(boxes < 0):
        raise ValueError(
            f"{what}: PRW loaders clip at 0, so boxes must be non-negative, got {boxes.tolist()}"
        )
    return xywh


def _struct(rows: Sequence[Sequence[object]], fields: Sequence[str]) -> np.ndarray:
    """A MATLAB 1xN struct array with the given field values per element."""
    array = np.empty((1, len(rows)), dtype=[(f, object) for f in fields])
    for j, row in enumerate(rows):
        for field, value in zip(fields, row, strict=True):
            array[0, j][field] = value
    return array


def _cell(items: Sequence[object]) -> np.ndarray:
    """A MATLAB Nx1 cell array."""
    array = np.empty((len(items), 1), dtype=object)
    for k, item in enumerate(items):
        array[k, 0] = item
    return array


def _save(path: Path, variables: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(str(path), variables, appendmat=False)


def _unique_names(scenes: Iterable[Scene]) -> None:
    seen: set[str] = set()
    for scene in scenes:
        if scene.name in seen:
            raise ValueError(
                f"image {scene.name} appears twice across train and gallery; names must be unique"
            )
        seen.add(scene.name)


# --------------------------------------------------------------------------------------- CUHK-SYSU


def _images_mat(scenes: Sequence[Scene]) -> np.ndarray:
    rows = []
    for scene in scenes:
        xywh = _xywh(scene.boxes, f"scene {scene.name}")
        if len({tuple(b) for b in xywh.tolist()}) != len(xywh):
            raise ValueError(
                f"scene {scene.name}: two identical boxes; CUHK-SYSU identifies a person by its box"
            )
        hard = np.zeros(len(xywh), bool) if scene.hard is None else scene.hard
        boxes = _struct([(b[None, :], float(h)) for b, h in zip(xywh, hard)], _BOX_FIELDS)
        rows.append((scene.name, float(len(xywh)), boxes))
    return _struct(rows, ("imname", "nAppear", "box"))


def _train_mat(scenes: Sequence[Scene]) -> np.ndarray:
    """One cell per identity (ascending pid), each a 1x1 struct ``idname, nAppear, scene``."""
    appearances: dict[int, list[tuple[object, ...]]] = {}
    for scene in scenes:
        xywh = _xywh(scene.boxes, f"scene {scene.name}")
        hard = np.zeros(len(xywh), bool) if scene.hard is None else scene.hard
        for box, pid, flag in zip(xywh, scene.pids.tolist(), hard):
            if pid != UNLABELED:
                appearances.setdefault(pid, []).append((scene.name, box[None, :], float(flag)))
    cells = [
        _struct(
            [(f"p{pid}", float(len(appearances[pid])), _struct(appearances[pid], _SCENE_FIELDS))],
            ("idname", "nAppear", "scene"),
        )
        for pid in sorted(appearances)
    ]
    return _cell(cells)


def _protocol(queries: Sequence[Query], size: int, pool: set[str], label: str) -> np.ndarray:
    """A ``TestG``-structured 1xQ struct array (``Query`` 1x1, ``Gallery`` 1xG, targets first)."""
    rows = []
    for i, query in enumerate(queries, start=1):
        items: list[GalleryItem] | None = query.galleries.get(size)
        if items is None:
            raise ValueError(f"{label}: query {i} ({query.name}) has no galleries[{size}]")
        outside = [item.name for item in items if item.name not in pool]
        if outside:
            raise ValueError(
                f"{label}: query {i} gallery names images outside dataset.gallery: {outside[:5]}"
            )
        ordered = [item for item in items if item.box is not None] + [
            item for item in items if item.box is None
        ]
        gallery = _struct(
            [
                (
                    item.name,
                    np.zeros((1, 0))
                    if item.box is None
                    else _xywh(item.box, f"{label} query {i} gallery item"),
                    0.0,
                )
                for item in ordered
            ],
            _SCENE_FIELDS,
        )
        query_struct = _struct(
            [(query.name, _xywh(query.box, f"{label} query {i}"), 0.0, f"p{i}")], (*_SCENE_FIELDS, "idname")
        )
        rows.append((query_struct, gallery))
    return _struct(rows, ("Query", "Gallery"))


def write_cuhk_sysu(dataset: PersonSearchDataset, root: str | Path) -> None:
    """Write ``Images.mat``, ``pool.mat``, ``Train.mat``, ``TestG{G}.mat`` and subsets under ``root``.

    Writes one ``TestG{G}.mat`` per gallery size that every query has (50 is required) and
    ``annotation/test/subset/{Occlusion,Resolution}.mat`` for ``dataset.subsets``.
    """
    root = Path(root)
    _unique_names([*dataset.train, *dataset.gallery])
    pool = {scene.name for scene in dataset.gallery}
    missing = [
        q.name
        for q in [*dataset.queries, *(q for qs in dataset.subsets.values() for q in qs)]
        if q.name not in pool
    ]
    if missing:
        raise ValueError(f"query images {missing[:5]} are not test scenes; add them to dataset.gallery")
    sizes = dataset.gallery_sizes if dataset.queries else [50]
    if 50 not in sizes:
        raise ValueError(
            f"every query needs galleries[50] (TestG50 defines the test pids); common sizes: {sizes}"
        )
    unknown = sorted(set(sizes) - set(cuhk_sysu.GALLERY_SIZES))
    if unknown:
        raise ValueError(
            f"gallery sizes {unknown} have no CUHK-SYSU file; use {list(cuhk_sysu.GALLERY_SIZES)}"
        )
    unknown_subsets = sorted(set(dataset.subsets) - set(cuhk_sysu.SUBSETS))
    if unknown_subsets:
        raise ValueError(f"subsets {unknown_subsets} have no CUHK-SYSU file; use {list(cuhk_sysu.SUBSETS)}")

    _save(root / cuhk_sysu.IMAGES_MAT, {"Img": _images_mat([*dataset.train, *dataset.gallery])})
    _save(root / cuhk_sysu.POOL_MAT, {"pool": _cell([scene.name for scene in dataset.gallery])})
    _save(root / cuhk_sysu.TRAIN_MAT, {"Train": _train_mat(dataset.train)})
    for size in sizes:
        label = f"TestG{size}"
        _save(root / cuhk_sysu.protocol_path(size), {label: _protocol(dataset.queries, size, pool, label)})
    for name, queries in dataset.subsets.items():
        filename, variable = cuhk_sysu.SUBSETS[name]
        protocol = _protocol(queries, cuhk_sysu.SUBSET_GALLERY_SIZE, pool, f"subset {name}")
        _save(root / cuhk_sysu.SUBSET_DIR / filename, {variable: protocol})


# --------------------------------------------------------------------------------------------- PRW


def _prw_frame(name: str, cam: int) -> str:
    """The frame name without ``.jpg``, checked against the official pattern and the camera."""
    match = _PRW_FRAME.match(name)
    if match is None:
        raise ValueError(
            f"PRW frame {name!r} must be named c{{cam}}s{{seq}}_{{frame:06d}}.jpg, e.g. c1s3_016471.jpg"
        )
    if int(match.group(1)) != cam:
        raise ValueError(f"PRW frame {name!r} is camera {match.group(1)} by name but has cam={cam}")
    return name[: -len(".jpg")]


def _prw_annotation(scene: Scene) -> np.ndarray:
    """``[id, x, y, w, h]`` rows (UNLABELED -> -2)."""
    xywh = _xywh(scene.boxes, f"scene {scene.name}", non_negative=True)
    pids = scene.pids.copy()
    if np.any((pids < 0) & (pids != UNLABELED)):
        raise ValueError(f"scene {scene.name}: pids must be >= 0 or UNLABELED, got {pids.tolist()}")
    pids[pids == UNLABELED] = prw.PRW_UNLABELED
    return np.concatenate([pids[:, None].astype(np.float64), xywh], axis=1).reshape(-1, 5)


def _query_line(query: Query) -> str:
    frame = _prw_frame(query.name, query.cam)
    x, y, w, h = _xywh(query.box, f"query in {query.name}", non_negative=True)[0]
    return f"{query.pid} {x:g} {y:g} {w:g} {h:g} {frame}"


def _ids(pids: Iterable[int]) -> np.ndarray:
    return np.array([sorted({int(p) for p in pids if p != UNLABELED})], dtype=np.float64).reshape(1, -1)


def write_prw(dataset: PersonSearchDataset, root: str | Path) -> None:
    """Write ``annotations/<frame>.jpg.mat`` (``box_new``), ``frame_{train,test}.mat``,
    ``query_info.txt`` (CRLF) and ``ID_{train,test}.mat`` under ``root``.

    ``ID_train`` lists the labelled pids of the train frames and ``ID_test`` the query pids
    (1xN doubles; no loader reads them).
    """
    root = Path(root)
    _unique_names([*dataset.train, *dataset.gallery])
    for relative, variable, scenes in (
        (prw.TRAIN_MAT, "img_index_train", dataset.train),
        (prw.TEST_MAT, "img_index_test", dataset.gallery),
    ):
        frames = [_prw_frame(scene.name, scene.cam) for scene in scenes]
        for scene in scenes:
            _save(root / prw.annotation_path(scene.name), {"box_new": _prw_annotation(scene)})
        _save(root / relative, {variable: _cell(frames)})
    lines = [_query_line(query) for query in dataset.queries]
    (root / prw.QUERY_INFO).write_bytes("".join(line + "\r\n" for line in lines).encode("utf-8"))
    _save(root / "ID_train.mat", {"ID_train": _ids(p for s in dataset.train for p in s.pids.tolist())})
    _save(root / "ID_test.mat", {"ID_test": _ids(q.pid for q in dataset.queries)})
