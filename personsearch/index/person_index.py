"""``PersonIndex``: the persistent person index as one object (open, add files, search).

Opening is cheap; the first search loads per-row metadata and fills the faiss index, which then
stay in memory, so later searches cost one faiss call plus the filter mask. Many processes may
search an index while one process adds to it: searches see every committed batch.

Search filters (source path, camera, time range) become a boolean mask over vector rows
(``RowTable.mask``): each row's source id and time are kept in memory (about 8 bytes per box), so
a filter costs one pass over the (small) source table, cached, plus a couple of vector operations
over the rows: a few milliseconds at a million boxes, with no SQL on the search path.
"""

from __future__ import annotations

import fnmatch
import functools
import logging
import re
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

from personsearch.data.images import decode_image
from personsearch.index.ann import MIN_IVF_ROWS, VectorSearch, approximate_kind
from personsearch.index.distributed import EngineFactory, RaySettings, index_paths_on_ray
from personsearch.index.hits import Hit
from personsearch.index.indexer import IndexSummary, ProgressCallback, index_paths
from personsearch.index.sources import Sampling
from personsearch.index.store import IndexStore, ModelMismatchError, SightingInfo
from personsearch.index.tracking import aggregate_feature, link_pending
from personsearch.pipeline import PersonEngine

log = logging.getLogger(__name__)

_GLOB_CHARS = re.compile(r"[*?\[]")
ROWS_PER_READ = 1 << 18
"""Box rows read from SQLite at a time into the row table's arrays (bounds the transient Python
objects of a large index's first read to tens of megabytes)."""


class SearchFilters(TypedDict, total=False):
    """The keywords every search takes after its query (``PersonIndex.search``, ``PersonSearch.search``
    and ``search_sighting``): which boxes it may return (as ``Filters``) and how exactly to rank."""

    source: str | None
    time_range: tuple[float | None, float | None] | None
    camera: str | Sequence[str] | None
    approximate: bool | None
    """Approximate (IVF) or exact search; ``None``: the index's setting."""
    nprobe: int | None
    """Approximate search: IVF lists to visit."""
    rerank: bool
    """Rank the best boxes again by k-reciprocal re-ranking (``reranking.py``)."""


@dataclass(frozen=True)
class Filters:
    """Which boxes a search may return. Every given condition must hold."""

    source: str | None = None
    """Substring of the source's absolute path, or, if it contains ``*``, ``?`` or ``[``, a glob
    matched against the whole absolute path (so start it with ``*``: ``*/cam1/*.mp4``)."""
    time_range: tuple[float | None, float | None] | None = None
    """Inclusive ``(start, end)`` seconds in a video (either end may be ``None``); excludes images."""
    camera: str | Sequence[str] | frozenset[str] | None = None
    """Camera label, or several (any of them)."""

    def __post_init__(self) -> None:
        if self.time_range is not None:
            if len(self.time_range) != 2:
                raise ValueError(f"time_range must be (start, end) seconds, got {self.time_range!r}")
            start, end = self.time_range
            if start is not None and end is not None and start > end:
                raise ValueError(f"time_range start {start} is after its end {end}")

    @property
    def cameras(self) -> frozenset[str] | None:
        if self.camera is None:
            return None
        return frozenset([self.camera] if isinstance(self.camera, str) else self.camera)

    def filters_sources(self) -> bool:
        return self.source is not None or self.camera is not None

    def is_empty(self) -> bool:
        return not self.filters_sources() and self.time_range is None

    def source_matches(self, path: str, camera: str) -> bool:
        cameras = self.cameras
        if cameras is not None and camera not in cameras:
            return False
        if self.source is None:
            return True
        if _GLOB_CHARS.search(self.source):
            return fnmatch.fnmatchcase(path, self.source)
        return self.source in path


MASKS_KEPT = 4
"""Row masks of the most recent filters kept by ``RowTable.mask``."""


class RowTable:
    """In-memory per-row metadata of an index (source id, time, sighting), refreshed as rows are committed."""

    def __init__(self, store: IndexStore) -> None:
        self.store = store
        self.rows = 0
        self.generation = -1
        self.source_of = np.zeros(0, dtype=np.int64)
        """Source id per row; -1 for a deleted box."""
        self.time_of = np.zeros(0, dtype=np.float64)
        """Seconds per row; NaN for images and deleted boxes."""
        self.sighting_of = np.zeros(0, dtype=np.int64)
        """Sighting id per row; -1 for a box in no sighting (an image, an untracked video)."""
        self.last_sighting = 0
        self.sources: dict[int, tuple[str, str]] = {}
        """Source id -> (path, camera)."""
        self._source_masks: dict[Filters, np.ndarray] = {}
        self._groups: np.ndarray | None = None
        self._live: int | None = None
        self._masks: dict[tuple[object, ...], np.ndarray | None] = {}

    def refresh(self) -> int:
        """Catch up with committed rows (reloading all after deletions); returns the row count."""
        with self.store.snapshot():  # the counts and the rows from one state of the index
            rows, generation = self.store.committed_rows(), self.store.generation()
            if generation != self.generation:
                self.rows, self.generation, self._live = 0, generation, None
                self._masks.clear()
                self.source_of = np.zeros(0, dtype=np.int64)
                self.time_of = np.zeros(0, dtype=np.float64)
                self.sighting_of = np.zeros(0, dtype=np.int64)
                self.last_sighting = 0
                self.sources = {}
            if rows > self.rows:
                source_of = np.full(rows - self.rows, -1, dtype=np.int64)
                time_of = np.full(rows - self.rows, np.nan, dtype=np.float64)
                # in chunks: at ten million boxes one list of row tuples would take gigabytes
                for start in range(self.rows, rows, ROWS_PER_READ):
                    data = self.store.box_rows(start, min(start + ROWS_PER_READ, rows))
                    if data:
                        table = np.array(
                            [(i, s, np.nan if t is None else t) for i, s, t in data], dtype=np.float64
                        )
                        offsets = table[:, 0].astype(np.int64) - self.rows
                        source_of[offsets] = table[:, 1].astype(np.int64)
                        time_of[offsets] = table[:, 2]
                self.source_of = np.concatenate([self.source_of, source_of])
                self.time_of = np.concatenate([self.time_of, time_of])
                self.sighting_of = np.concatenate(
                    [self.sighting_of, np.full(rows - self.rows, -1, dtype=np.int64)]
                )
                for sid, path, camera in self.store.sources_after(max(self.sources, default=0)):
                    self.sources[sid] = (path, camera)
                self._source_masks.clear()
                self._masks.clear()
                self._live = None
                self.rows = rows
            newest = self.last_sighting  # the sightings written since the last refresh:
            for linked in self.store.sighting_rows(self.last_sighting):
                pairs = np.array(linked, dtype=np.int64)
                self.sighting_of[pairs[:, 0]] = pairs[:, 1]
                newest = max(newest, int(pairs[:, 1].max()))
            if newest != self.last_sighting or self._groups is None or len(self._groups) != self.rows:
                self._groups = None
            self.last_sighting = newest
        return self.rows

    def group_of(self) -> np.ndarray:
        """A search group per row: its sighting id, or for a box in no sighting ``-1 - row`` (a
        group of its own)."""
        if self._groups is None:
            rows = np.arange(self.rows, dtype=np.int64)
            self._groups = np.where(self.sighting_of >= 0, self.sighting_of, -1 - rows)
        return self._groups

    def live_count(self) -> int:
        if self._live is None:  # counted once per change: at 10M rows a count takes milliseconds
            self._live = int(np.count_nonzero(self.source_of >= 0))
        return self._live

    def _source_mask(self, filters: Filters) -> np.ndarray:
        """Boolean per source id + 1 (index 0 stands for deleted rows, always False)."""
        key = Filters(source=filters.source, camera=filters.cameras)
        mask = self._source_masks.get(key)
        if mask is None:
            mask = np.zeros(max(self.sources, default=0) + 2, dtype=bool)
            for sid, (path, camera) in self.sources.items():
                mask[sid + 1] = filters.source_matches(path, camera)
            self._source_masks[key] = mask
        return mask

    def mask(self, filters: Filters) -> np.ndarray | None:
        """Rows a search may return, or ``None`` when that is every row. The last few filters'
        masks are kept until the rows change: at 10M rows building one takes tens of
        milliseconds, and a user searches one filter many times (paging, other queries)."""
        if filters.is_empty() and self.live_count() == self.rows:
            return None
        time_range = None if filters.time_range is None else tuple(filters.time_range)
        key = (filters.source, time_range, filters.cameras)  # hashable whatever the caller passed
        if key not in self._masks:
            if len(self._masks) >= MASKS_KEPT:
                self._masks.pop(next(iter(self._masks)))
            self._masks[key] = self._build_mask(filters)
        return self._masks[key]

    def _build_mask(self, filters: Filters) -> np.ndarray | None:
        if filters.filters_sources():
            selected = self._source_mask(filters)[self.source_of + 1]
        elif self.live_count() == self.rows:
            selected = None
        else:
            selected = self.source_of >= 0
        if filters.time_range is not None:
            start, end = filters.time_range
            in_range = ~np.isnan(self.time_of)
            if start is not None:
                in_range &= self.time_of >= start
            if end is not None:
                in_range &= self.time_of <= end
            selected = in_range if selected is None else selected & in_range
        return selected


def check_model(store: IndexStore, engine: PersonEngine) -> None:
    """Refuse an engine whose features are not comparable with the index's."""
    if engine.model_id != store.model_id or engine.feature_dim != store.feature_dim:
        built_weights, _, built_detector = store.model_id.partition(":")
        used_weights, _, used_detector = engine.model_id.partition(":")
        if built_weights == used_weights and built_detector != used_detector:
            raise ModelMismatchError(
                f"the index at {store.directory} was built with the detector '{built_detector or 'bundle'}', "
                f"but '{used_detector or 'bundle'}' is in use: pass --detector {built_detector or 'bundle'} "
                f"(or build a new index for this detector with `personsearch index PATH... --index NEW_DIR`)."
            )
        raise ModelMismatchError(
            f"the index at {store.directory} was built with model {store.model_id!r} ({store.feature_dim}-d "
            f"features), but the model in use is {engine.model_id!r} ({engine.feature_dim}-d). "
            "Features of different models cannot be compared: search with the model that built this index, "
            "or build a new index for this model with `personsearch index PATH... --index NEW_DIR`."
        )


class PersonIndex:
    """An index directory opened for adding files and searching."""

    def __init__(self, store: IndexStore, engine: PersonEngine | None, *, read_only: bool = False) -> None:
        self.store = store
        self.engine = engine
        self.read_only = read_only
        self._rows = RowTable(store)
        self._vectors = VectorSearch(store, persist=not read_only)

    @classmethod
    def open(
        cls,
        directory: str | Path,
        engine: PersonEngine | None = None,
        create: bool = False,
        *,
        shared: bool = False,
        read_only: bool = False,
    ) -> PersonIndex:
        """Open an index; with ``create``, make an empty one for ``engine``'s model if there is none.

        Without an engine the index can search features but not add files. With one, its
        ``model_id`` must be the index's (``ModelMismatchError`` otherwise). ``shared``: the
        object may be used from several threads, one at a time (the caller holds a lock; a web
        service does), instead of only from the thread that opened it. ``read_only``: for
        searching, which then never writes: videos an interrupted run left untracked are
        searched frame by frame instead of being tracked now, and an approximate index that
        is behind its vectors is brought up to date in memory only (``personsearch index``
        repairs and saves both).
        """
        if read_only and create:
            raise ValueError("an index opened read-only cannot be created")
        if create and not IndexStore.exists(directory):
            if engine is None:
                raise ValueError(
                    f"creating an index at {directory} needs an engine: the index records its "
                    "model_id and feature_dim"
                )
            store = IndexStore.create(directory, engine.model_id, engine.feature_dim, shared=shared)
        else:
            store = IndexStore.open(directory, shared=shared)
        try:
            if engine is not None:
                check_model(store, engine)
            if not read_only:
                try:
                    link_pending(store)  # videos an interrupted run (or an older version) left untracked
                except sqlite3.OperationalError as err:  # a read-only copy: search it frame by frame
                    log.warning(
                        "%s: videos not tracked into sightings yet, and the index cannot "
                        "be written here (%s)",
                        store.directory,
                        err,
                    )
        except BaseException:
            store.close()
            raise
        return cls(store, engine, read_only=read_only)

    def _refuse_if_read_only(self, action: str) -> None:
        if self.read_only:
            raise PermissionError(
                f"{self.store.directory} is open read-only (for searching): "
                f"{action} needs PersonIndex.open(..., read_only=False)"
            )

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> PersonIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def model_id(self) -> str:
        return self.store.model_id

    @property
    def feature_dim(self) -> int:
        return self.store.feature_dim

    def add_paths(
        self,
        paths: Iterable[str | Path],
        *,
        stride: int = 1,
        fps: float | None = None,
        camera: str | None = None,
        batch_size: int = 8,
        progress: bool = True,
        max_pixels: int | None = None,
        within: Sequence[Path] | None = None,
        on_progress: ProgressCallback | None = None,
        ray: RaySettings | None = None,
        engine_factory: EngineFactory | None = None,
    ) -> IndexSummary:
        """Index new, changed and unfinished images and videos under ``paths`` (see indexer.py).

        Videos are sampled every ``stride`` frames, or at about ``fps`` frames per second when
        given. ``camera`` labels every file of this call (default: its folder's name).
        ``within`` and ``on_progress``: see ``index_paths``. ``ray``: run the models on a Ray
        actor pool, each actor building its engine with ``engine_factory`` (distributed.py);
        this process stays the one writer.
        """
        self._refuse_if_read_only("adding files")
        if self.engine is None:
            raise ValueError(
                f"adding files to {self.store.directory} needs an engine (the detector and re-id model); "
                "open the index with engine=..."
            )
        run: Callable[..., IndexSummary] = functools.partial(index_paths, progress=progress)
        if ray is not None:
            if engine_factory is None:
                raise ValueError(
                    "indexing on Ray needs engine_factory: how each actor builds its engine "
                    "(e.g. functools.partial(load_engine, MODEL))"
                )
            run = functools.partial(index_paths_on_ray, engine_factory=engine_factory, settings=ray)
        try:
            summary = run(
                self.store,
                self.engine,
                paths=paths,
                sampling=Sampling(stride=stride, fps=fps),
                camera=camera,
                batch_size=batch_size,
                max_pixels=max_pixels,
                within=within,
                on_progress=on_progress,
            )
            if self.approximate_default():
                rows = self.store.committed_rows()
                if rows >= MIN_IVF_ROWS:
                    self._vectors.update(self.approximate_kind(), rows)
        finally:
            self.store.release_writer()
        return summary

    # ----------------------------------------------------------------- approximate search
    def approximate_default(self) -> bool:
        """Whether searches are approximate unless told otherwise: set by ``set_approximate``,
        and always for an index too large to keep an exact in-memory copy (ann.EXACT_MEMORY_BYTES)."""
        return self.store.meta("approximate") == "1" or not self._vectors.fits_in_memory(
            self.store.committed_rows()
        )

    def approximate_kind(self) -> str:
        """``ivf`` or ``ivfpq`` (compact codes, exact re-ranking), as set or by the index's size."""
        return approximate_kind(self.store.meta("approximate_kind"), self.store.committed_rows())

    def set_approximate(self, enabled: bool = True, kind: str = "auto") -> None:
        """Make approximate search the default for this index (``kind``: ``auto`` chooses by size,
        see ann.approximate_kind; ``ivf`` or ``ivfpq`` fixes it), and build its index now when the
        index is large enough (``MIN_IVF_ROWS`` boxes; below that search stays exact)."""
        approximate_kind(kind, 0)  # validates
        self._refuse_if_read_only("setting approximate search")
        self.store.set_meta("approximate", "1" if enabled else "0")
        self.store.set_meta("approximate_kind", kind)
        rows = self.store.committed_rows()
        if enabled and rows >= MIN_IVF_ROWS:
            self._vectors.update(self.approximate_kind(), rows)

    # ----------------------------------------------------------------- searching
    def count(self) -> int:
        """Number of people (boxes) in the index."""
        return self.store.count_boxes()

    def search(
        self,
        feature: np.ndarray,
        top_k: int = 10,
        *,
        source: str | None = None,
        time_range: tuple[float | None, float | None] | None = None,
        camera: str | Sequence[str] | None = None,
        approximate: bool | None = None,
        nprobe: int | None = None,
        per_frame: bool = False,
        exclude_sightings: Sequence[int] = (),
        rerank: bool = False,
    ) -> list[Hit]:
        """The ``top_k`` people most similar to ``feature`` (cosine), best first, within the filters
        (see ``Filters``). ``approximate=None`` uses the index's default. ``rerank``: ranked and
        scored by k-reciprocal re-ranking of the best boxes instead (``reranking.py``: for
        footage, where a person is many boxes).

        Results are sightings: a person tracked through a video is one hit, scored and shown by
        its best-matching frame, instead of one hit per frame of the same walk past the camera.
        ``per_frame`` returns every matching box instead. ``exclude_sightings`` leaves those out
        (the query's own sighting)."""
        feature = np.asarray(feature, dtype=np.float32).reshape(-1)
        if feature.shape[0] != self.feature_dim:
            raise ValueError(
                f"query feature has {feature.shape[0]} dimensions; the index at {self.store.directory} "
                f"holds {self.feature_dim}-d features of model {self.model_id!r}"
            )
        norm = float(np.linalg.norm(feature))
        if not np.isfinite(norm) or norm == 0:
            raise ValueError("query feature is zero or not finite")
        filters = Filters(source=source, time_range=time_range, camera=camera)
        rows = self._rows.refresh()
        mask = self._rows.mask(filters)
        approximate = self.approximate_default() if approximate is None else approximate
        if len(exclude_sightings):
            keep = ~np.isin(self._rows.sighting_of[:rows], np.asarray(exclude_sightings, dtype=np.int64))
            mask = keep if mask is None else mask & keep
        found = self._vectors.search(
            feature / norm,
            top_k,
            rows,
            mask,
            approximate=approximate,
            nprobe=nprobe,
            kind=self.approximate_kind(),
            # one hit per sighting (its best box); boxes in no sighting stand alone
            groups=None if per_frame else self._rows.group_of(),
            rerank=rerank,
        )
        return self._hits(found.ids, found.scores)

    def _hits(self, ids: np.ndarray, scores: np.ndarray) -> list[Hit]:
        records = self.store.boxes_with_thumbnails(ids.tolist())
        linked = np.unique(self._rows.sighting_of[ids])
        sightings = self.store.sightings(linked[linked >= 0].tolist())
        samples = self.store.boxes_with_thumbnails(
            sorted({b for g in sightings.values() for b in g.sample_boxes})
        )
        hits: list[Hit] = []
        for box_id, score in zip(ids.tolist(), scores.tolist()):
            record = records.get(box_id)
            if record is None:  # deleted by another process since the mask was built
                continue
            box, jpeg = record
            sighting = sightings.get(int(self._rows.sighting_of[box_id]))
            strip = (
                ()
                if sighting is None
                else tuple(samples[b][1] for b in sighting.sample_boxes if b in samples)
            )
            hits.append(
                Hit(
                    len(hits) + 1,
                    float(score),
                    box.box,
                    box.score,
                    box.source,
                    box.kind,
                    box.frame,
                    box.time,
                    box.camera,
                    box_id,
                    jpeg,
                    sighting,
                    strip,
                )
            )
        return hits

    def sighting(self, sighting_id: int) -> SightingInfo:
        """One sighting's span, size and a few of its boxes (KeyError if there is none)."""
        found = self.store.sightings([sighting_id])
        if sighting_id not in found:
            raise KeyError(f"no sighting {sighting_id} in the index at {self.store.directory}")
        return found[sighting_id]

    def sighting_of(self, box_id: int) -> int | None:
        """The sighting of an indexed box (None for an image or a video not tracked yet)."""
        return self.store.sighting_of_box(box_id)

    def sighting_feature(self, sighting_id: int) -> np.ndarray:
        """A whole sighting as one query: the normalised mean of its boxes' features (every frame
        of the person, so pose, lighting and occlusion average out)."""
        ids = self.store.sighting_boxes(sighting_id)
        return aggregate_feature(np.asarray(self.store.vectors()[np.asarray(ids)]))

    def thumbnail(self, box_id: int) -> np.ndarray:
        """The stored thumbnail of a box as HxWx3 uint8 RGB."""
        return decode_image(self.store.thumbnail(box_id), f"thumbnail of box {box_id}")

    def feature(self, box_id: int) -> np.ndarray:
        """The stored feature of a box (to search for a person already in the index)."""
        self.store.get_box(box_id)  # KeyError when there is no such box
        return np.array(self.store.vectors()[int(box_id)])

    def people_in(self, path: str | Path, frame: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Everyone indexed in one image (or one video ``frame``): ``(n, 5)`` detections
        ``[x1, y1, x2, y2, score]`` and their ``(n, D)`` features, in detection order. This is
        what the benchmark protocols score, so an index doubles as a results file."""
        boxes = self.store.people_at_path(str(Path(path).resolve()), frame)
        ids = np.array([b.box_id for b in boxes], dtype=np.int64)
        dets = np.array([[*b.box, b.score] for b in boxes], dtype=np.float32).reshape(-1, 5)
        return dets, np.array(self.store.vectors()[ids]) if len(ids) else np.zeros(
            (0, self.feature_dim), np.float32
        )

    def stats(self) -> dict[str, Any]:
        """Model, sizes and settings, for ``personsearch index-info``."""
        sources = self.store.count_sources()
        return {
            "directory": str(self.store.directory),
            "model_id": self.model_id,
            "feature_dim": self.feature_dim,
            "people": self.count(),
            "images": int(sources.get("image", 0)),
            "videos": int(sources.get("video", 0)),
            "vector_rows": self.store.committed_rows(),
            "approximate": self.approximate_default(),
            "approximate_kind": self.approximate_kind(),
        }


def search_index(
    index_dir: str | Path,
    query_feature: np.ndarray,
    top_k: int = 10,
    *,
    source: str | None = None,
    time_range: tuple[float | None, float | None] | None = None,
    camera: str | Sequence[str] | None = None,
    approximate: bool | None = None,
) -> list[Hit]:
    """One-off search of an index directory (opens and closes it; keep a ``PersonIndex`` open
    for repeated searches)."""
    with PersonIndex.open(index_dir, read_only=True) as index:
        return index.search(
            query_feature, top_k, source=source, time_range=time_range, camera=camera, approximate=approximate
        )
