"""Nearest-neighbour search over an index's vectors with faiss: exact by default, IVF on request.

Exact search keeps one ``faiss.IndexFlatIP`` in memory (4 * D bytes per box), filled once from
the memory-mapped ``vectors.f32`` and extended as rows are committed; past ``EXACT_MEMORY_BYTES``
it streams the memory-mapped file instead (exact, slow: large indexes search approximately).

Approximate search has two kinds (``approximate_kind``), each saved beside the index and trusted
only when the index's metadata records its row count (``<kind>_rows``), extended with new rows
without retraining, and retrained when the index has grown so much that its list count is far
too small:

- ``ivf``: ``IndexIVFFlat`` (``ivf.faiss``), a full copy of the vectors in memory;
- ``ivfpq``: ``IndexIVFPQ`` (``ivfpq.faiss``), ``pq_bytes(D)`` bytes of product-quantised code
  per box in memory (96 for 768-d: 32x smaller), whose best ``rerank_count(k)`` candidates are
  re-scored with the exact features read from the vectors file (``IndexStore.vector_rows``).
  The default from ``COMPACT_MIN_ROWS`` boxes: 10M boxes fit in about 1 GB of codes.

Candidates (filters, deleted boxes) are given as a boolean row mask. A mask that selects few rows
is searched exactly with one matrix product over just those rows; otherwise faiss searches with
an ``IDSelectorBitmap`` (never "search more, then filter"), and an approximate search whose
probed lists hold fewer than k candidates is repeated over all lists.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from personsearch.index.reranking import SHORTLIST, outside_similarity, reranked_similarity
from personsearch.index.store import IVF_NAME, IVFPQ_NAME, IndexStore

log = logging.getLogger(__name__)

MIN_IVF_ROWS = 4096
"""Below this many rows approximate search is exact: k-means has too little data, and a flat
scan of a few thousand rows takes well under a millisecond."""
EXACT_SUBSET_ROWS = 4096
"""Masks selecting at most this many rows are searched with one matrix product over just those
rows (faster than a faiss pass over the whole bitmap); larger ones go to faiss with a selector."""
DEFAULT_NPROBE = 64
"""Fewest IVF lists probed by default; ``default_nprobe`` probes about 8 % of the lists beyond
that: at 1M boxes (1,000 lists) IVF-Flat recall@10 0.96 at 64 probes, at 10M (3,162 lists)
IVF-PQ 0.955 at 256 probes, 28 ms (benchmarks/search_latency.py, docs/scaling.md)."""


def default_nprobe(nlist: int) -> int:
    return min(nlist, max(DEFAULT_NPROBE, nlist // 12))


_ADD_CHUNK = 65_536
KINDS = {"ivf": IVF_NAME, "ivfpq": IVFPQ_NAME}
"""Approximate index kinds and their files."""
COMPACT_MIN_ROWS = 1_000_000
"""``auto`` picks ``ivfpq`` from this many boxes: an IVF-Flat copy of 1M 768-d vectors is 3 GB."""
EXACT_MEMORY_BYTES = 4 << 30
"""Largest in-memory flat copy for exact search; a larger index searches approximately by default."""
RERANK_FACTOR, RERANK_MIN = 20, 200
"""IVF-PQ: candidates re-scored exactly per search: ``max(RERANK_MIN, RERANK_FACTOR * k)``. At
10M boxes, 256 probes: 100 candidates gave recall@10 0.912, 200 gave 0.955 for the same 28 ms."""


GROUP_FETCH = 8
"""Grouped search: rows fetched per group wanted, and the growth factor when too few groups came."""
RERANK_PER_GROUP = 2
"""Grouped IVF-PQ search: each group's best candidates (by PQ score) that are re-scored exactly."""


def pq_bytes(dim: int) -> int:
    """Bytes of PQ code per vector: the largest divisor of ``dim`` not above ``dim / 8`` (one
    byte per 8 dimensions or a few more; faiss needs sub-vectors of equal length)."""
    return next(m for m in range(max(1, dim // 8), 0, -1) if dim % m == 0)


def rerank_count(k: int) -> int:
    return max(RERANK_MIN, RERANK_FACTOR * k)


def _ivf_params(nprobe: int) -> faiss.SearchParametersIVF:
    params = faiss.SearchParametersIVF()
    params.nprobe = nprobe
    return params


def approximate_kind(setting: str | None, rows: int) -> str:
    """``ivf`` or ``ivfpq`` for an index of ``rows`` boxes: as set, or by size when ``auto``/None."""
    if setting in (None, "", "auto"):
        return "ivfpq" if rows >= COMPACT_MIN_ROWS else "ivf"
    if setting not in KINDS:
        raise ValueError(f"approximate index kind {setting!r}: choose auto, {', '.join(KINDS)}")
    return setting


def default_nlist(rows: int) -> int:
    """IVF list count: about sqrt(rows), with at least 39 training points per centroid."""
    return max(1, min(round(float(np.sqrt(rows))), rows // 39))


@dataclass
class Neighbours:
    ids: np.ndarray
    """(k,) int64 row ids, best first."""
    scores: np.ndarray
    """(k,) float32 inner products (cosine for unit vectors)."""


def _top_k(scores: np.ndarray, ids: np.ndarray, k: int) -> Neighbours:
    if len(scores) > k:
        part = np.argpartition(-scores, k - 1)[:k]
        scores, ids = scores[part], ids[part]
    order = np.lexsort((ids, -scores))  # best score first, ties by id: deterministic
    return Neighbours(ids[order].astype(np.int64), scores[order].astype(np.float32))


def _per_group(found: Neighbours, groups: np.ndarray, per_group: int) -> Neighbours:
    """The best ``per_group`` rows of each group among ``found`` (best first), in ``found``'s order."""
    if len(found.ids) == 0:
        return found
    key = groups[found.ids]
    order = np.lexsort((-found.scores, key))  # by group, best first within it
    sorted_key = key[order]
    starts = np.flatnonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1]])
    rank_in_group = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    keep = np.sort(order[rank_in_group < per_group])
    return Neighbours(found.ids[keep], found.scores[keep])


def _followed_by(found: Neighbours, rest: Neighbours, groups: np.ndarray | None, k: int) -> Neighbours:
    """``found`` (re-ranked), then ``rest``'s rows (or groups) not in it, scored by
    ``reranking.outside_similarity``: no neighbour shared with the query."""
    key = found.ids if groups is None else groups[found.ids]
    new = ~np.isin(rest.ids if groups is None else groups[rest.ids], key)
    ids = np.concatenate([found.ids, rest.ids[new]])
    scores = np.concatenate([found.scores, outside_similarity(rest.scores[new])])
    return Neighbours(ids[:k], scores[:k])


class VectorSearch:
    """The in-memory faiss structures of one open index."""

    def __init__(self, store: IndexStore, *, persist: bool = True) -> None:
        self.store = store
        self.persist = persist
        """Whether built and extended approximate indexes are saved beside the vectors (not when
        the index is open read-only: they then live in memory for this process)."""
        self._flat: faiss.IndexFlatIP | None = None
        self._ann: dict[str, faiss.IndexIVF] = {}

    # ----------------------------------------------------------------- exact
    def _add_rows(self, index: faiss.Index, rows: int) -> None:
        vectors = self.store.vectors(rows)
        for start in range(index.ntotal, rows, _ADD_CHUNK):
            index.add(np.ascontiguousarray(vectors[start : start + _ADD_CHUNK]))

    def _flat_index(self, rows: int) -> faiss.IndexFlatIP:
        if self._flat is None:
            self._flat = faiss.IndexFlatIP(self.store.feature_dim)
        self._add_rows(self._flat, rows)
        return self._flat

    def fits_in_memory(self, rows: int) -> bool:
        """Whether exact search may keep a flat copy of ``rows`` vectors (``EXACT_MEMORY_BYTES``)."""
        return rows * 4 * self.store.feature_dim <= EXACT_MEMORY_BYTES

    def _streamed_exact(self, query: np.ndarray, k: int, rows: int, mask: np.ndarray | None) -> Neighbours:
        """Exact top-k by reading the memory-mapped vectors in chunks (no copy kept)."""
        vectors = self.store.vectors(rows)
        best = Neighbours(np.zeros(0, np.int64), np.zeros(0, np.float32))
        for start in range(0, rows, 1 << 20):
            stop = min(rows, start + (1 << 20))
            ids = np.arange(start, stop) if mask is None else start + np.flatnonzero(mask[start:stop])
            scores = (
                np.asarray(vectors[start:stop] @ query, np.float32)
                if mask is None
                else np.asarray(vectors[ids] @ query, np.float32)
            )
            chunk = _top_k(scores, ids, k)
            best = _top_k(
                np.concatenate([best.scores, chunk.scores]), np.concatenate([best.ids, chunk.ids]), k
            )
        return best

    # ----------------------------------------------------------------- approximate
    def ann_path(self, kind: str) -> Path:
        return self.store.directory / KINDS[kind]

    def _load(self, kind: str, rows: int) -> faiss.IndexIVF | None:
        """The saved index of ``kind``, if the metadata vouches for it and it fits ``rows``."""
        path, recorded = self.ann_path(kind), self.store.meta(f"{kind}_rows")
        if recorded is None or not path.is_file():
            return None
        try:
            # read_index already answers the concrete class; downcast_index of that temporary
            # would hand back a view of an object Python then frees
            index = faiss.read_index(str(path))
        except RuntimeError as err:
            log.warning("%s: unreadable (%s); rebuilding it", path, err)
            return None
        expected = faiss.IndexIVFPQ if kind == "ivfpq" else faiss.IndexIVFFlat
        if (
            not isinstance(index, expected)
            or index.d != self.store.feature_dim
            or index.ntotal != int(recorded)
            or index.ntotal > rows
        ):
            log.warning("%s does not match this index's vectors; rebuilding it", path)
            return None
        return index

    def _save(self, kind: str, index: faiss.IndexIVF) -> None:
        if not self.persist:
            return
        path = self.ann_path(kind)
        tmp = path.with_name(path.name + ".tmp")
        faiss.write_index(index, str(tmp))
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        self.store.set_meta(f"{kind}_rows", str(index.ntotal))

    def build(self, kind: str, rows: int, nlist: int | None = None, seed: int = 0) -> faiss.IndexIVF:
        """Train an approximate index of ``kind`` on (a sample of) the first ``rows`` vectors,
        fill it and save it."""
        if rows < MIN_IVF_ROWS and nlist is None:
            raise ValueError(
                f"an approximate index needs at least {MIN_IVF_ROWS} boxes (this index has {rows}); "
                "exact search is fast at this size"
            )
        dim = self.store.feature_dim
        nlist = nlist or default_nlist(rows)
        vectors = self.store.vectors(rows)
        # PQ's 256 centroids per sub-vector want a few thousand points even when nlist is small
        sample_size = min(rows, max(64 * nlist, 16_384 if kind == "ivfpq" else 0))
        sample = np.sort(np.random.default_rng(seed).choice(rows, size=sample_size, replace=False))
        quantizer = faiss.IndexFlatIP(dim)
        index: faiss.IndexIVF
        if kind == "ivfpq":
            index = faiss.IndexIVFPQ(quantizer, dim, nlist, pq_bytes(dim), 8, faiss.METRIC_INNER_PRODUCT)
        else:
            index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed
        log.info("training a %s index with %d lists on %d of %d vectors", kind, nlist, sample_size, rows)
        index.train(np.ascontiguousarray(vectors[sample]))
        self._add_rows(index, rows)
        self._save(kind, index)
        self._ann[kind] = index
        return index

    def update(self, kind: str, rows: int) -> faiss.IndexIVF:
        """Bring the approximate index of ``kind`` up to ``rows``: load, extend, or (re)build."""
        index = self._ann.get(kind) or self._load(kind, rows)
        if index is None or default_nlist(rows) > 2 * index.nlist:
            index = self.build(kind, rows)
        elif index.ntotal < rows:
            self._add_rows(index, rows)
            self._save(kind, index)
        # a search is one query: share its probed lists among the cores (faiss's default shares
        # queries, so one query ran on one core: at 10M boxes 56 ms against 35 on two cores)
        index.parallel_mode = 1
        self._ann[kind] = index
        return index

    def forget(self) -> None:
        """Drop the in-memory structures (they are rebuilt or reloaded on the next search)."""
        self._flat = None
        self._ann.clear()

    # ----------------------------------------------------------------- search
    def search(
        self,
        query: np.ndarray,
        k: int,
        rows: int,
        mask: np.ndarray | None = None,
        *,
        approximate: bool = False,
        nprobe: int | None = None,
        kind: str | None = None,
        groups: np.ndarray | None = None,
        rerank: bool = False,
    ) -> Neighbours:
        """The ``k`` rows among the first ``rows`` (and within ``mask``) with the largest inner
        product; approximate ones of ``kind`` (``approximate_kind``) when ``approximate``;
        ``rerank``: the ``reranking.SHORTLIST`` best by inner product ranked again by k-reciprocal
        re-ranked similarity; where they hold fewer than ``k`` groups, the next best groups follow.

        ``groups`` (a key per row, e.g. its sighting): the best row of each of the ``k`` best
        groups instead. A tracked person is tens of near-identical rows, so the k best rows are
        often one or two people; rows are fetched ``GROUP_FETCH`` times over, and IVF-PQ keeps
        only each group's best ``RERANK_PER_GROUP`` candidates for the exact re-scoring, so a
        grouped search costs about one plain search, not a series of ever larger ones."""
        if rerank:  # the shortlist compared by neighbourhoods (reranking.py)
            shortlist = max(SHORTLIST, k)
            near = self._search(query, shortlist, rows, mask, approximate, nprobe, kind, None)
            found = self._rescored(query, near, rows, groups)
            if len(found.ids) >= k or len(near.ids) < shortlist:
                return Neighbours(found.ids[:k], found.scores[:k])
            # fewer than k groups among the shortlist: the next best follow, below every compared row
            rest = self.search(
                query, k, rows, mask, approximate=approximate, nprobe=nprobe, kind=kind, groups=groups
            )
            return _followed_by(found, rest, groups, k)
        if groups is None:
            return self._search(query, k, rows, mask, approximate, nprobe, kind, None)
        fetch = k * GROUP_FETCH
        while True:
            found = self._search(query, fetch, rows, mask, approximate, nprobe, kind, groups)
            best = _per_group(found, groups, 1)
            if len(best.ids) >= k or len(found.ids) < fetch:
                return Neighbours(best.ids[:k], best.scores[:k])
            fetch *= GROUP_FETCH

    def _rescored(
        self, query: np.ndarray, near: Neighbours, rows: int, groups: np.ndarray | None
    ) -> Neighbours:
        """``near``'s rows by ``reranking.reranked_similarity`` (their exact vectors read back),
        best first; with ``groups``, the best row of each group."""
        ids = np.sort(near.ids)  # file order
        query = np.asarray(query, dtype=np.float32).reshape(-1)
        found = _top_k(reranked_similarity(query, self.store.vector_rows(ids, rows)), ids, len(ids))
        return found if groups is None else _per_group(found, groups, 1)

    def _search(
        self,
        query: np.ndarray,
        k: int,
        rows: int,
        mask: np.ndarray | None,
        approximate: bool,
        nprobe: int | None,
        kind: str | None,
        groups: np.ndarray | None,
    ) -> Neighbours:
        query = np.ascontiguousarray(np.asarray(query, dtype=np.float32).reshape(1, -1))
        if query.shape[1] != self.store.feature_dim:
            raise ValueError(
                f"query feature has {query.shape[1]} dimensions, the index holds "
                f"{self.store.feature_dim}-d features"
            )
        if mask is not None and len(mask) != rows:
            raise ValueError(f"mask has {len(mask)} entries for {rows} rows")
        empty = Neighbours(np.zeros(0, np.int64), np.zeros(0, np.float32))
        if k <= 0 or rows == 0:
            return empty
        wanted = min(k, rows)
        if mask is not None:
            selected = int(np.count_nonzero(mask))
            wanted = min(wanted, selected)
            if selected == 0:
                return empty
            if selected <= EXACT_SUBSET_ROWS:
                ids = np.flatnonzero(mask)
                scores = np.asarray(self.store.vector_rows(ids, rows) @ query[0], dtype=np.float32)
                return _top_k(scores, ids, k)
        k = min(k, rows)  # faiss pads with -1 beyond the rows it has
        bitmap = None if mask is None else np.packbits(np.asarray(mask, dtype=bool), bitorder="little")
        if not (approximate and rows >= MIN_IVF_ROWS):
            if not self.fits_in_memory(rows):
                return self._streamed_exact(query[0], k, rows, mask)
            return self._faiss_search(
                self._flat_index(rows), query, k, faiss.SearchParameters(), bitmap, rows
            )
        kind = approximate_kind(kind, rows)
        index = self.update(kind, rows)
        candidates = rerank_count(k) if kind == "ivfpq" else k
        probes = min(nprobe or default_nprobe(index.nlist), index.nlist)
        found = self._faiss_search(index, query, candidates, _ivf_params(probes), bitmap, rows)
        if len(found.ids) < wanted and probes < index.nlist:
            # The probed lists held too few (selected) rows: probe them all.
            found = self._faiss_search(index, query, candidates, _ivf_params(index.nlist), bitmap, rows)
        if kind == "ivfpq" and len(found.ids):
            if groups is not None:  # near-duplicates of one group need no exact re-scoring
                found = _per_group(found, groups, RERANK_PER_GROUP)
            ids = np.sort(found.ids)  # file order
            found = _top_k(np.asarray(self.store.vector_rows(ids, rows) @ query[0], np.float32), ids, k)
        return found

    @staticmethod
    def _faiss_search(
        index: faiss.Index,
        query: np.ndarray,
        k: int,
        params: faiss.SearchParameters,
        bitmap: np.ndarray | None,
        rows: int,
    ) -> Neighbours:
        if bitmap is not None:
            params.sel = faiss.IDSelectorBitmap(rows, faiss.swig_ptr(bitmap))
        scores, ids = index.search(query, k, params=params)
        keep = ids[0] >= 0
        return _top_k(scores[0][keep], ids[0][keep], k)
