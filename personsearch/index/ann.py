"""Nearest-neighbour search over an index's vectors with faiss: exact by default, IVF on request.

Exact search keeps one ``faiss.IndexFlatIP`` in memory (4 * D bytes per box), filled once from
the memory-mapped ``vectors.f32`` and extended as rows are committed. Approximate search uses an
``IndexIVFFlat`` (inner product) saved as ``ivf.faiss``; it is trusted only when the index's
metadata records the same row count (``ivf_rows``), extended with new rows without retraining,
and retrained when the index has grown so much that its list count is far too small.

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

from personsearch.index.store import IVF_NAME, IndexStore

log = logging.getLogger(__name__)

MIN_IVF_ROWS = 4096
"""Below this many rows approximate search is exact: k-means has too little data, and a flat
scan of a few thousand rows takes well under a millisecond."""
EXACT_SUBSET_ROWS = 4096
"""Masks selecting at most this many rows are searched with one matrix product over just those
rows (faster than a faiss pass over the whole bitmap); larger ones go to faiss with a selector."""
DEFAULT_NPROBE = 64
"""IVF lists probed by default: recall@10 0.99 at 1M boxes in benchmarks/search_latency.py (32 gave
0.96), still well under the 50 ms budget (docs/performance.md)."""
_ADD_CHUNK = 65_536


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


class VectorSearch:
    """The in-memory faiss structures of one open index."""

    def __init__(self, store: IndexStore) -> None:
        self.store = store
        self._flat: faiss.IndexFlatIP | None = None
        self._ivf: faiss.IndexIVFFlat | None = None

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

    # ----------------------------------------------------------------- approximate
    @property
    def ivf_path(self) -> Path:
        return self.store.directory / IVF_NAME

    def _load_ivf(self, rows: int) -> faiss.IndexIVFFlat | None:
        """The saved IVF, if the metadata vouches for it and it is still a good fit for ``rows``."""
        recorded = self.store.meta("ivf_rows")
        if recorded is None or not self.ivf_path.is_file():
            return None
        try:
            index = faiss.downcast_index(faiss.read_index(str(self.ivf_path)))
        except RuntimeError as err:
            log.warning("%s: unreadable (%s); rebuilding it", self.ivf_path, err)
            return None
        if not isinstance(index, faiss.IndexIVFFlat) or index.d != self.store.feature_dim or index.ntotal != int(recorded) or index.ntotal > rows:
            log.warning("%s does not match this index's vectors; rebuilding it", self.ivf_path)
            return None
        return index

    def _save_ivf(self, index: faiss.IndexIVFFlat) -> None:
        tmp = self.ivf_path.with_name(IVF_NAME + ".tmp")
        faiss.write_index(index, str(tmp))
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, self.ivf_path)
        self.store.set_meta("ivf_rows", str(index.ntotal))

    def build_ivf(self, rows: int, nlist: int | None = None, seed: int = 0) -> faiss.IndexIVFFlat:
        """Train an IVF on (a sample of) the first ``rows`` vectors, fill it and save it."""
        if rows < MIN_IVF_ROWS and nlist is None:
            raise ValueError(f"an approximate index needs at least {MIN_IVF_ROWS} boxes (this index has {rows}); exact search is fast at this size")
        nlist = nlist or default_nlist(rows)
        vectors = self.store.vectors(rows)
        sample_size = min(rows, 64 * nlist)
        sample = np.sort(np.random.default_rng(seed).choice(rows, size=sample_size, replace=False))
        quantizer = faiss.IndexFlatIP(self.store.feature_dim)
        index = faiss.IndexIVFFlat(quantizer, self.store.feature_dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed
        log.info("training an IVF index with %d lists on %d of %d vectors", nlist, sample_size, rows)
        index.train(np.ascontiguousarray(vectors[sample]))
        self._add_rows(index, rows)
        self._save_ivf(index)
        self._ivf = index
        return index

    def update_ivf(self, rows: int) -> faiss.IndexIVFFlat:
        """Bring the approximate index up to ``rows``: load, extend, or (re)build as needed."""
        index = self._ivf if self._ivf is not None else self._load_ivf(rows)
        if index is None or default_nlist(rows) > 2 * index.nlist:
            return self.build_ivf(rows)
        if index.ntotal < rows:
            self._add_rows(index, rows)
            self._save_ivf(index)
        self._ivf = index
        return index

    # ----------------------------------------------------------------- search
    def search(self, query: np.ndarray, k: int, rows: int, mask: np.ndarray | None = None, *, approximate: bool = False, nprobe: int | None = None) -> Neighbours:
        """The ``k`` rows among the first ``rows`` (and within ``mask``) with the largest inner product."""
        query = np.ascontiguousarray(np.asarray(query, dtype=np.float32).reshape(1, -1))
        if query.shape[1] != self.store.feature_dim:
            raise ValueError(f"query feature has {query.shape[1]} dimensions, the index holds {self.store.feature_dim}-d features")
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
                scores = np.asarray(self.store.vectors(rows)[ids] @ query[0], dtype=np.float32)
                return _top_k(scores, ids, k)
        k = min(k, rows)  # faiss pads with -1 beyond the rows it has
        bitmap = None if mask is None else np.packbits(np.asarray(mask, dtype=bool), bitorder="little")
        if not (approximate and rows >= MIN_IVF_ROWS):
            return self._faiss_search(self._flat_index(rows), query, k, faiss.SearchParameters(), bitmap, rows)
        index = self.update_ivf(rows)
        probes = min(nprobe or DEFAULT_NPROBE, index.nlist)
        found = self._faiss_search(index, query, k, faiss.SearchParametersIVF(nprobe=probes), bitmap, rows)
        if len(found.ids) < wanted and probes < index.nlist:
            # The probed lists held too few (selected) rows: probe them all, which is exact.
            found = self._faiss_search(index, query, k, faiss.SearchParametersIVF(nprobe=index.nlist), bitmap, rows)
        return found

    @staticmethod
    def _faiss_search(index: faiss.Index, query: np.ndarray, k: int, params: faiss.SearchParameters, bitmap: np.ndarray | None, rows: int) -> Neighbours:
        if bitmap is not None:
            params.sel = faiss.IDSelectorBitmap(rows, faiss.swig_ptr(bitmap))
        scores, ids = index.search(query, k, params=params)
        keep = ids[0] >= 0
        return _top_k(scores[0][keep], ids[0][keep], k)
