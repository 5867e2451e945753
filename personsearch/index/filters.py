"""Search filters (source path, camera, time range) turned into a boolean mask over vector rows.

Each row's source id and time are kept in memory (about 8 bytes per box), so a filter costs one
pass over the (small) source table, cached, plus a couple of vector operations over the rows:
a few milliseconds at a million boxes, with no SQL on the search path.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypedDict

import numpy as np

from personsearch.index.store import IndexStore

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
