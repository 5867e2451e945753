"""A pickle-free ``.npz`` results format, so any codebase's detections and features can be
scored with this package's protocols (``personsearch score``).

Keys (one ``np.savez`` archive; ``M`` detections, ``N`` gallery images, ``Q`` queries, ``D``
feature size):

=========================  =========  ========  ==============================================
key                        shape      dtype     meaning
=========================  =========  ========  ==============================================
gallery_images             (N,)       unicode   every gallery image name of the dataset, any
                                                order, images without detections included
det_boxes                  (M, 4)     float32   detection boxes, ``[x1, y1, x2, y2]`` pixels
det_scores                 (M,)       float32   detection confidence
det_image_index            (M,)       int64     row of ``gallery_images`` holding the detection
det_features               (M, D)     float32   re-id feature of each detection, L2-normalised
query_features             (Q, D)     float32   feature of each query box, in the dataset's
                                                query order (CUHK-SYSU: TestG50; PRW:
                                                query_info.txt), L2-normalised
query_context_boxes        (K, 4)     float32   optional (CBGM): people detected in the query
query_context_scores       (K,)       float32   images; for each query its rows in order, the
query_context_index        (K,)       int64     first being the query box itself, then the
query_context_features     (K, D)     float32   others by descending score
=========================  =========  ========  ==============================================

Arrays must be plain numbers or unicode strings: the file is read with ``allow_pickle=False``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import numpy as np

from personsearch.data.records import PersonSearchDataset
from personsearch.evaluation.detection import as_detection_array, evaluate_detection
from personsearch.evaluation.metrics import check_l2_normalised
from personsearch.evaluation.results import DetectionResult, SearchResult
from personsearch.evaluation.search import QueryContext, evaluate_search

REQUIRED_KEYS = (
    "gallery_images",
    "det_boxes",
    "det_scores",
    "det_image_index",
    "det_features",
    "query_features",
)
CONTEXT_KEYS = (
    "query_context_boxes",
    "query_context_scores",
    "query_context_index",
    "query_context_features",
)


class ResultsFileError(ValueError):
    """A results file that does not follow the format (the message names the file and the fix)."""


def save_results(
    path: str | Path,
    dataset: PersonSearchDataset,
    gallery_dets: list[np.ndarray],
    gallery_feats: list[np.ndarray],
    query_feats: np.ndarray,
    query_context: QueryContext | None = None,
) -> None:
    """Write detections and features (the ``evaluate_search`` inputs) to ``path`` in the format
    above, exactly at ``path`` (no ``.npz`` is appended)."""
    if len(gallery_dets) != len(dataset.gallery) or len(gallery_feats) != len(dataset.gallery):
        raise ValueError(
            f"gallery_dets ({len(gallery_dets)}) and gallery_feats ({len(gallery_feats)}) must have one "
            f"entry per gallery image of {dataset.name} ({len(dataset.gallery)})"
        )
    query_feats = np.asarray(query_feats, dtype=np.float32)
    if query_feats.ndim != 2 or len(query_feats) != len(dataset.queries):
        raise ValueError(
            f"query_feats: expected ({len(dataset.queries)}, D), one row per dataset query, "
            f"got {query_feats.shape}"
        )
    dim = query_feats.shape[1]
    dets = [as_detection_array(d, f"gallery_dets[{i}]") for i, d in enumerate(gallery_dets)]
    feats = [
        _rows(f, len(d), dim, f"gallery_feats[{i}]") for i, (d, f) in enumerate(zip(dets, gallery_feats))
    ]
    arrays: dict[str, np.ndarray] = {
        "gallery_images": np.array([s.name for s in dataset.gallery], dtype=str),
        "det_boxes": np.concatenate([d[:, :4] for d in dets]).astype(np.float32),
        "det_scores": np.concatenate([d[:, 4] for d in dets]).astype(np.float32),
        "det_image_index": np.repeat(np.arange(len(dets), dtype=np.int64), [len(d) for d in dets]),
        "det_features": np.concatenate(feats),
        "query_features": query_feats,
    }
    if query_context is not None:
        cdets = [as_detection_array(d, f"query_context[{i}]") for i, (d, _) in enumerate(query_context)]
        arrays["query_context_boxes"] = np.concatenate([d[:, :4] for d in cdets]).astype(np.float32)
        arrays["query_context_scores"] = np.concatenate([d[:, 4] for d in cdets]).astype(np.float32)
        arrays["query_context_index"] = np.repeat(
            np.arange(len(cdets), dtype=np.int64), [len(d) for d in cdets]
        )
        arrays["query_context_features"] = np.concatenate(
            [
                _rows(f, len(d), dim, f"query_context[{i}]")
                for i, (d, (_, f)) in enumerate(zip(cdets, query_context))
            ]
        )
    with open(path, "wb") as handle:
        np.savez_compressed(handle, **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds like its allow_pickle flag


def _rows(feats: np.ndarray, n: int, dim: int, where: str) -> np.ndarray:
    """Features of ``n`` boxes as float32 (n, dim); empty inputs for no boxes are fine."""
    feats = np.asarray(feats, dtype=np.float32)
    if n == 0 and feats.size == 0:
        return np.zeros((0, dim), np.float32)
    if feats.shape != (n, dim):
        raise ValueError(f"{where}: expected features of shape ({n}, {dim}), got {feats.shape}")
    return feats


def _read_archive(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise ResultsFileError(f"{path}: no such results file")
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise ResultsFileError(
            f"{path}: not a readable .npz archive ({err}); write it with numpy.savez"
        ) from err
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ResultsFileError(
            f"{path}: holds a single array, expected an .npz archive with keys {list(REQUIRED_KEYS)}"
        )
    with archive:
        missing = [k for k in REQUIRED_KEYS if k not in archive.files]
        if missing:
            raise ResultsFileError(
                f"{path}: missing keys {missing} (found {sorted(archive.files)}); the format needs "
                f"{list(REQUIRED_KEYS)}, see personsearch.evaluation.results_file"
            )
        arrays = {}
        for key in archive.files:
            try:
                arrays[key] = archive[key]
            except ValueError as err:
                raise ResultsFileError(
                    f"{path}: key {key!r} is stored as Python objects, which are never unpickled; "
                    "save it as a numeric or unicode string array"
                ) from err
    return arrays


def _numeric(
    path: Path, arrays: dict[str, np.ndarray], key: str, shape: tuple[int | None, ...], dtype: Any
) -> np.ndarray:
    """``arrays[key]`` checked against ``shape`` (None = any length) and cast to ``dtype``."""
    value = arrays[key]
    if (
        value.dtype.kind not in "biuf"
        or value.ndim != len(shape)
        or any(want is not None and got != want for got, want in zip(value.shape, shape))
    ):
        expected = str(tuple("any" if s is None else s for s in shape)).replace("'", "")
        raise ResultsFileError(
            f"{path}: {key} must be a numeric array of shape {expected}, found {value.dtype} {value.shape}"
        )
    if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
        raise ResultsFileError(f"{path}: {key} holds NaN or infinite values")
    if np.dtype(dtype).kind in "iu" and value.dtype.kind == "f":
        raise ResultsFileError(f"{path}: {key} must hold integers, found {value.dtype}")
    return value.astype(dtype)


def _index(path: Path, arrays: dict[str, np.ndarray], key: str, length: int, upper: int) -> np.ndarray:
    """``arrays[key]``: (length,) integers in [0, upper)."""
    value = _numeric(path, arrays, key, (length,), np.int64)
    if length and (value.min() < 0 or value.max() >= upper):
        raise ResultsFileError(f"{path}: {key} must lie in [0, {upper}), found {value.min()}..{value.max()}")
    return value


def _features(path: Path, feats: np.ndarray, key: str, normalise: bool) -> np.ndarray:
    if not normalise:
        fix = "save L2-normalised features, or pass normalise=True to load_results / score_results_file"
        check_l2_normalised(feats, f"{path}: {key}", fix)
        return feats
    norms = np.linalg.norm(feats, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise ResultsFileError(
            f"{path}: {key} has {int((norms == 0).sum())} all-zero rows, which cannot be normalised"
        )
    return cast(np.ndarray, (feats / norms).astype(np.float32))


def _group(order_index: np.ndarray, n_groups: int) -> list[np.ndarray]:
    """Row indices of each group 0..n_groups-1, file order kept within a group."""
    order = np.argsort(order_index, kind="stable")
    return np.split(order, np.searchsorted(order_index[order], np.arange(1, n_groups)))


def load_results(
    path: str | Path, dataset: PersonSearchDataset, *, normalise: bool = False
) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray, QueryContext | None]:
    """Read a results file and realign it with ``dataset.gallery`` by image name.

    Returns ``(gallery_dets, gallery_feats, query_feats, query_context)`` as ``evaluate_search``
    takes them (``query_context`` is ``None`` when the file has none). Features must be
    L2-normalised unless ``normalise=True``.
    """
    path = Path(path)
    arrays = _read_archive(path)
    stored_names = arrays["gallery_images"]
    if stored_names.dtype.kind not in "US" or stored_names.ndim != 1:
        raise ResultsFileError(
            f"{path}: gallery_images must be a 1-D string array, found {stored_names.dtype} "
            f"{stored_names.shape}"
        )
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in stored_names.tolist()]
    if len(set(names)) != len(names):
        raise ResultsFileError(f"{path}: gallery_images lists some images more than once")
    index = dataset.gallery_index()
    unknown = [n for n in names if n not in index]
    if unknown:
        raise ResultsFileError(
            f"{path}: {len(unknown)} gallery_images are not in {dataset.name}'s gallery, e.g. "
            f"{unknown[:5]}; is this the results file of another dataset?"
        )
    absent = sorted(set(index) - set(names))
    if absent:
        raise ResultsFileError(
            f"{path}: {len(absent)} gallery images of {dataset.name} are missing from gallery_images, e.g. "
            f"{absent[:5]}; list every gallery image, including those without detections"
        )

    boxes = _numeric(path, arrays, "det_boxes", (None, 4), np.float32)
    m = len(boxes)
    scores = _numeric(path, arrays, "det_scores", (m,), np.float32)
    image = _index(path, arrays, "det_image_index", m, len(names))
    query = _numeric(path, arrays, "query_features", (None, None), np.float32)
    if len(query) != len(dataset.queries):
        raise ResultsFileError(
            f"{path}: query_features has {len(query)} rows but {dataset.name} has {len(dataset.queries)} "
            "queries; write one row per query, in the dataset's query order"
        )
    dim = query.shape[1]
    feats = _numeric(path, arrays, "det_features", (m, dim), np.float32)
    query = _features(path, query, "query_features", normalise)
    feats = _features(path, feats, "det_features", normalise)

    dets = np.concatenate([boxes, scores[:, None]], axis=1)
    rows = _group(image, len(names))
    file_row = {n: r for r, n in enumerate(names)}
    gallery_rows = [rows[file_row[scene.name]] for scene in dataset.gallery]
    gallery_dets = [dets[r] for r in gallery_rows]
    gallery_feats = [feats[r] for r in gallery_rows]
    return gallery_dets, gallery_feats, query, _load_context(path, arrays, len(query), dim, normalise)


def _load_context(
    path: Path, arrays: dict[str, np.ndarray], n_queries: int, dim: int, normalise: bool
) -> QueryContext | None:
    present = [k for k in CONTEXT_KEYS if k in arrays]
    if not present:
        return None
    if len(present) != len(CONTEXT_KEYS):
        absent = sorted(set(CONTEXT_KEYS) - set(present))
        raise ResultsFileError(f"{path}: has {present} but not {absent}; give all four or none")
    boxes = _numeric(path, arrays, "query_context_boxes", (None, 4), np.float32)
    k = len(boxes)
    scores = _numeric(path, arrays, "query_context_scores", (k,), np.float32)
    owner = _index(path, arrays, "query_context_index", k, n_queries)
    feats = _numeric(path, arrays, "query_context_features", (k, dim), np.float32)
    feats = _features(path, feats, "query_context_features", normalise)
    rows = _group(owner, n_queries)
    lacking = [q for q, r in enumerate(rows) if len(r) == 0]
    if lacking:
        raise ResultsFileError(
            f"{path}: queries {lacking[:5]} have no query_context rows; each needs at least its own box"
        )
    dets = np.concatenate([boxes, scores[:, None]], axis=1)
    return [(dets[r], feats[r]) for r in rows]


def score_results_file(
    dataset: PersonSearchDataset,
    path: str | Path,
    *,
    gallery_size: int = 100,
    det_thresh: float = 0.5,
    cross_camera: bool = False,
    cbgm: bool = False,
    normalise: bool = False,
    rerank: bool = False,
) -> SearchResult:
    """Score a results file with ``dataset``'s search protocol (see ``evaluate_search``)."""
    gallery_dets, gallery_feats, query_feats, context = load_results(path, dataset, normalise=normalise)
    if cbgm and context is None:
        raise ResultsFileError(
            f"{path}: cbgm needs the query context keys {list(CONTEXT_KEYS)}, which the file lacks"
        )
    result = evaluate_search(
        dataset,
        gallery_dets,
        gallery_feats,
        query_feats,
        gallery_size=gallery_size,
        det_thresh=det_thresh,
        cross_camera=cross_camera,
        cbgm=cbgm,
        query_context=context,
        rerank=rerank,
    )
    result.settings["results_file"] = str(path)
    return result


def score_results_file_detection(
    dataset: PersonSearchDataset, path: str | Path, *, det_thresh: float = 0.5
) -> DetectionResult:
    """The detection protocol (recall and AP at IoU 0.5, by person height) on a results file's
    gallery detections: what ``personsearch score`` reports beside the search scores."""
    gallery_dets, _, _, _ = load_results(path, dataset)
    return evaluate_detection(dataset, gallery_dets, det_thresh=det_thresh)
