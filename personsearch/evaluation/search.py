"""The CUHK-SYSU and PRW person-search protocols, with optional CBGM re-scoring
(docs/specs/benchmarks.md sections 3.1-3.3 and 4), and their breakdown by person scale
(docs/specs/clsa.md section 3).

The rules are those of SeqNet's ``eval_func.py`` (the numbers papers report), minus its bugs
(docs/specs/benchmarks.md section 5): the full-set CUHK gallery scores every image once, fewer than ten
candidates or none at all is fine, nothing is written to disk, and a PRW query whose identity
appears in no gallery frame is reported as excluded instead of dividing by zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from personsearch.data.records import HEIGHT_BUCKETS, PersonSearchDataset, Query, height_bucket
from personsearch.evaluation.detection import as_detection_array
from personsearch.evaluation.metrics import check_l2_normalised, localises, recall_corrected_ap, topk_hits
from personsearch.evaluation.results import (
    TOPK,
    BucketScore,
    ExcludedQuery,
    SearchResult,
    query_height_buckets,
)
from personsearch.index.reranking import reranked_scores

QueryContext = Sequence[tuple[np.ndarray, np.ndarray]]
"""Per query: (m, 5) detections in the query image and their (m, D) features, row 0 being the
query box itself, then the other people by descending detection score (CBGM only)."""

_CBGM_DEFAULTS = {"cuhk": (10, 3), "prw": (30, 4)}
"""(k1, k2) of SeqNet: re-score the images of the k1 best candidates, using k2 query-image people."""

_NORMALISE_FIX = "L2-normalise each feature row (x / ||x||) before evaluation."


@dataclass
class _Detections:
    """The kept gallery detections of every image, concatenated in gallery order."""

    boxes: np.ndarray
    """(M, 4) float64 xyxy."""
    feats: np.ndarray
    """(M, D) float32."""
    image: np.ndarray
    """(M,) gallery index of each detection."""
    starts: np.ndarray
    """(N + 1,) detections of image i are rows starts[i]:starts[i + 1]."""


@dataclass
class _QueryGallery:
    """What one query is scored against."""

    scored: np.ndarray
    """(N,) bool: gallery images ranked with labels (each once, duplicates scored once)."""
    negatives: np.ndarray
    """(N,) bool: extra all-negative images (CUHK full set), never CBGM re-scored."""
    targets: list[np.ndarray]
    """GT box (4,) of every gallery entry holding the target; count_gt = len(targets)."""
    labelling_target: dict[int, int]
    """gallery image -> index into ``targets`` of the box that labels its detections."""
    empty_reason: str
    """Why a query with no target is excluded."""


@dataclass
class _Scored:
    """One query's pooled candidates after labelling."""

    score: np.ndarray
    label: np.ndarray
    target: np.ndarray
    """(n,) index into the query's targets of the target this candidate localises, else -1."""
    target_height: np.ndarray
    """(count_gt,) GT box height of each target."""


def _kept_detections(
    dataset: PersonSearchDataset,
    gallery_dets: Sequence[np.ndarray],
    gallery_feats: Sequence[np.ndarray],
    det_thresh: float,
    dim: int,
) -> _Detections:
    """Validate the per-image arrays against the contract (``dim``: the query feature size) and
    keep ``score >= det_thresh``."""
    n = len(dataset.gallery)
    if len(gallery_dets) != n or len(gallery_feats) != n:
        raise ValueError(
            f"gallery_dets has {len(gallery_dets)} entries and gallery_feats {len(gallery_feats)}, "
            f"but {dataset.name} has {n} gallery images: pass one array per dataset.gallery entry, in order"
        )
    boxes, feats, counts = [], [], []
    for i, (scene, det, feat) in enumerate(zip(dataset.gallery, gallery_dets, gallery_feats)):
        det = as_detection_array(det, f"gallery_dets[{i}] ({scene.name})")
        feat = np.asarray(feat, dtype=np.float32)
        if len(det) == 0:
            if feat.size:
                raise ValueError(
                    f"gallery_feats[{i}] ({scene.name}) has {feat.shape} features but no detections"
                )
            counts.append(0)
            continue
        if feat.shape != (len(det), dim):
            raise ValueError(
                f"gallery_feats[{i}] ({scene.name}): expected shape ({len(det)}, {dim}) for its "
                f"{len(det)} detections and the queries' feature size, got {feat.shape}"
            )
        keep = det[:, 4] >= det_thresh
        boxes.append(det[keep, :4])
        feats.append(feat[keep])
        counts.append(int(keep.sum()))
    kept = _Detections(
        boxes=np.concatenate(boxes) if boxes else np.zeros((0, 4)),
        feats=np.concatenate(feats) if feats else np.zeros((0, dim), np.float32),
        image=np.repeat(np.arange(n), counts),
        starts=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
    )
    check_l2_normalised(kept.feats, "gallery features", _NORMALISE_FIX)
    return kept


def _cuhk_galleries(
    dataset: PersonSearchDataset, queries: Sequence[Query], gallery_size: int
) -> list[_QueryGallery]:
    """Per-query protocol galleries; ``gallery_size=-1`` adds every other test image as negatives."""
    full = gallery_size == -1
    available = sorted(set.intersection(*(set(q.galleries) for q in queries)))
    if full and not available:
        raise ValueError(
            f"gallery_size=-1 needs the queries' protocol galleries, but {dataset.name} has none"
        )
    if not full and gallery_size not in available:
        raise ValueError(
            f"gallery_size={gallery_size} is not a protocol gallery of these {dataset.name} queries; "
            f"available sizes: {available} (or -1 for the whole test set)"
        )
    size = available[0] if full else gallery_size
    index = dataset.gallery_index()
    n = len(dataset.gallery)
    out = []
    for q in queries:
        scored = np.zeros(n, bool)
        targets: list[np.ndarray] = []
        labelling: dict[int, int] = {}
        for item in q.galleries[size]:
            if item.name not in index:
                raise ValueError(
                    f"query {q.name} (pid {q.pid}): protocol gallery image {item.name} is not in "
                    f"{dataset.name}'s gallery; the protocol file and the gallery list disagree"
                )
            i = index[item.name]
            if item.box is not None:
                targets.append(np.asarray(item.box, dtype=np.float64))
            if not scored[i]:
                scored[i] = True
                if item.box is not None:
                    labelling[i] = len(targets) - 1
        negatives = np.zeros(n, bool)
        if full:
            negatives[:] = ~scored
            if q.name in index:
                negatives[index[q.name]] = False
        reason = f"no image of its {size}-image protocol gallery holds the target"
        out.append(_QueryGallery(scored, negatives, targets, labelling, reason))
    return out


def _prw_galleries(
    dataset: PersonSearchDataset, queries: Sequence[Query], cross_camera: bool
) -> list[_QueryGallery]:
    """Gallery = every test frame but the query's own (``cross_camera``: other cameras only)."""
    names = np.array([s.name for s in dataset.gallery], dtype=object)
    cams = np.array([s.cam for s in dataset.gallery])
    occurrences: dict[int, list[tuple[int, np.ndarray]]] = {}
    for i, scene in enumerate(dataset.gallery):
        for pid in np.unique(scene.pids):
            box = scene.boxes[scene.pids == pid][0]
            occurrences.setdefault(int(pid), []).append((i, np.asarray(box, dtype=np.float64)))
    out = []
    for q in queries:
        scored = names != q.name
        if cross_camera:
            scored &= cams != q.cam
        targets: list[np.ndarray] = []
        labelling: dict[int, int] = {}
        for i, box in occurrences.get(int(q.pid), []):
            if scored[i]:
                labelling[i] = len(targets)
                targets.append(box)
        reason = f"its pid appears in no other{' camera' if cross_camera else ''} gallery frame"
        out.append(_QueryGallery(scored, np.zeros(len(names), bool), targets, labelling, reason))
    return out


def _check_context(
    query: Query, dets: np.ndarray, feats: np.ndarray, dim: int, i: int
) -> tuple[np.ndarray, np.ndarray]:
    dets = np.asarray(dets, dtype=np.float64)
    feats = np.asarray(feats, dtype=np.float32)
    if dets.ndim != 2 or dets.shape[1] != 5 or len(dets) == 0 or feats.shape != (len(dets), dim):
        raise ValueError(
            f"query_context[{i}] ({query.name}): expected (m, 5) detections and (m, {dim}) features with m "
            f">= 1, got {dets.shape} and {feats.shape}"
        )
    if np.abs(dets[0, :4] - query.box).max() > 0.5:
        raise ValueError(
            f"query_context[{i}] ({query.name}): row 0 must be the query box itself {query.box.tolist()}, "
            f"got {dets[0, :4].tolist()}"
        )
    check_l2_normalised(feats, f"query_context[{i}] features", _NORMALISE_FIX)
    return dets, feats


def _cbgm(
    score: np.ndarray, cand: np.ndarray, kept: _Detections, context_feats: np.ndarray, k1: int, k2: int
) -> None:
    """Context bipartite graph matching (section 3.3), in place on ``score``: in the images of the
    k1 best candidates, match the first k2 query-image people to the image's detections
    (maximum total similarity); the detection matched to the query gets the largest matched edge."""
    top = np.argsort(-score, kind="stable")[:k1]
    for img in np.unique(kept.image[cand[top]]):
        lo, hi = np.searchsorted(cand, kept.starts[img : img + 2])
        weights = context_feats[:k2] @ kept.feats[cand[lo:hi]].T
        rows, cols = linear_sum_assignment(weights, maximize=True)
        if 0 in rows:
            score[lo + cols[rows == 0][0]] = weights[rows, cols].max()


def _score_query(
    qfeat: np.ndarray,
    gallery: _QueryGallery,
    kept: _Detections,
    context_feats: np.ndarray | None,
    k1: int,
    k2: int,
    rerank: bool = False,
) -> _Scored:
    """Pool and label the query's candidates (sections 3.1-3.2): in each target image, the
    most similar detection reaching the target's IoU threshold is the single true positive.
    ``rerank``: similarity is ``reranking.reranked_scores`` over the query's whole gallery, as a
    re-ranked search of an index of it would score."""
    cand = np.flatnonzero(gallery.scored[kept.image])
    neg = np.flatnonzero(gallery.negatives[kept.image])
    if rerank:
        reranked = reranked_scores(qfeat, kept.feats[np.concatenate([cand, neg])]).astype(np.float64)
        score, neg_score = reranked[: len(cand)], reranked[len(cand) :]
    else:
        sims = (kept.feats @ qfeat).astype(np.float64)
        score, neg_score = sims[cand], sims[neg]
    if context_feats is not None and len(cand):
        _cbgm(score, cand, kept, context_feats, k1, k2)
    label = np.zeros(len(cand), bool)
    target = np.full(len(cand), -1, np.int64)
    for img, t in gallery.labelling_target.items():
        lo, hi = np.searchsorted(cand, kept.starts[img : img + 2])
        if lo == hi:
            continue
        gt = gallery.targets[t]
        order = lo + np.argsort(-score[lo:hi], kind="stable")
        hit = np.flatnonzero(localises(kept.boxes[cand[order]], gt))
        if hit.size:
            label[order[hit[0]]] = True
            target[order[hit[0]]] = t
    heights = np.array([gt[3] - gt[1] for gt in gallery.targets], dtype=np.float64)
    return _Scored(
        score=np.concatenate([score, neg_score]),
        label=np.concatenate([label, np.zeros(len(neg), bool)]),
        target=np.concatenate([target, np.full(len(neg), -1, np.int64)]),
        target_height=heights,
    )


def _target_bucket_scores(scored: _Scored) -> dict[str, tuple[float, dict[int, int]]]:
    """AP and top-k of one query per target-height bucket that holds at least one target."""
    target_bucket = np.array([height_bucket(h) for h in scored.target_height], dtype=object)
    out = {}
    for name in np.unique(target_bucket):
        in_bucket = target_bucket == name
        elsewhere = (scored.target >= 0) & ~in_bucket[np.maximum(scored.target, 0)]
        keep = ~elsewhere
        label, score = scored.label[keep], scored.score[keep]
        out[str(name)] = (
            recall_corrected_ap(label, score, int(in_bucket.sum())),
            topk_hits(label, score, TOPK),
        )
    return out


def evaluate_search(
    dataset: PersonSearchDataset,
    gallery_dets: Sequence[np.ndarray],
    gallery_feats: Sequence[np.ndarray],
    query_feats: np.ndarray,
    *,
    gallery_size: int = 100,
    det_thresh: float = 0.5,
    cross_camera: bool = False,
    cbgm: bool = False,
    query_context: QueryContext | None = None,
    queries: Sequence[Query] | None = None,
    k1: int | None = None,
    k2: int | None = None,
    rerank: bool = False,
) -> SearchResult:
    """Score person search on ``dataset`` with its own protocol (``dataset.protocol``).

    * ``"cuhk"``: each query is ranked against its ``gallery_size``-image protocol gallery;
      ``gallery_size=-1`` adds every other test image (not the query's own) as negatives.
    * ``"prw"``: the gallery is every test frame but the query's own; ``cross_camera`` keeps
      frames of other cameras only. ``gallery_size`` is ignored.

    Inputs follow the contract: ``gallery_dets[i]`` (n, 5) and ``gallery_feats[i]`` (n, D)
    L2-normalised, aligned with ``dataset.gallery``; ``query_feats`` (Q, D) aligned with
    ``queries`` (default ``dataset.queries``; pass e.g. ``dataset.subsets["Occlusion"]`` to score a
    subset). Detections with ``score >= det_thresh`` are kept. ``cbgm`` re-scores with the query
    image's people, given as ``query_context`` (see ``QueryContext``); ``k1``/``k2`` default to
    SeqNet's (CUHK 10/3, PRW 30/4). ``rerank`` ranks each query's gallery by k-reciprocal
    re-ranking as a ``--rerank`` search would (``index/reranking.py``; not with ``cbgm``).

    A query none of whose gallery images holds its target (possible on PRW) is left out of the
    means and listed in ``SearchResult.excluded`` with the reason.

    Scale breakdown: ``by_query_height[b]`` averages the queries whose box height is in bucket
    ``b``. ``by_target_height[b]`` re-scores each query for the gallery targets of height ``b``:
    its positives are only its targets whose GT box height is in ``b`` (count_gt = their number,
    detected or not), and the candidates that are the true positive of a target in another
    bucket are removed from the ranking (they are neither right nor wrong for ``b``); every
    other candidate stays a negative. Queries with no target in ``b`` are skipped for ``b``, and
    ``n_queries`` says how many were scored.
    """
    if dataset.protocol not in _CBGM_DEFAULTS:
        raise ValueError(f"{dataset.name}: unknown protocol {dataset.protocol!r}; expected 'cuhk' or 'prw'")
    queries = list(dataset.queries if queries is None else queries)
    if not queries:
        raise ValueError(f"{dataset.name}: no queries to evaluate")
    query_feats = np.asarray(query_feats, dtype=np.float32)
    if query_feats.ndim != 2 or len(query_feats) != len(queries):
        raise ValueError(
            f"query_feats: expected shape ({len(queries)}, D), one row per query, got {query_feats.shape}"
        )
    kept = _kept_detections(dataset, gallery_dets, gallery_feats, det_thresh, query_feats.shape[1])
    check_l2_normalised(query_feats, "query features", _NORMALISE_FIX)

    k1 = _CBGM_DEFAULTS[dataset.protocol][0] if k1 is None else k1
    k2 = _CBGM_DEFAULTS[dataset.protocol][1] if k2 is None else k2
    context: list[np.ndarray | None] = [None] * len(queries)
    if cbgm and rerank:
        raise ValueError("cbgm and rerank both re-score the candidates: choose one")
    if cbgm:
        if query_context is None or len(query_context) != len(queries):
            found = "none" if query_context is None else f"{len(query_context)} entries"
            raise ValueError(
                f"cbgm=True needs query_context with one entry per query ({len(queries)}), got {found}"
            )
        dim = query_feats.shape[1]
        context = [
            _check_context(q, d, f, dim, i)[1] for i, (q, (d, f)) in enumerate(zip(queries, query_context))
        ]

    if dataset.protocol == "cuhk":
        if cross_camera:
            raise ValueError("cross_camera applies to the PRW protocol only; CUHK-SYSU has no cameras")
        galleries = _cuhk_galleries(dataset, queries, gallery_size)
        gallery_desc = "whole test set" if gallery_size == -1 else f"{gallery_size} images per query"
    else:
        galleries = _prw_galleries(dataset, queries, cross_camera)
        gallery_desc = "other-camera frames" if cross_camera else "all other frames"

    index, aps, count_gt, count_tp, heights = [], [], [], [], []
    hits: dict[int, list[int]] = {k: [] for k in TOPK}
    bucket_aps: dict[str, list[float]] = {b: [] for b, _, _ in HEIGHT_BUCKETS}
    bucket_hits: dict[str, dict[int, list[int]]] = {b: {k: [] for k in TOPK} for b, _, _ in HEIGHT_BUCKETS}
    excluded = []
    for i, (q, gallery) in enumerate(zip(queries, galleries)):
        if not gallery.targets:
            excluded.append(ExcludedQuery(i, q.name, int(q.pid), gallery.empty_reason))
            continue
        scored = _score_query(query_feats[i], gallery, kept, context[i], k1, k2, rerank)
        index.append(i)
        aps.append(recall_corrected_ap(scored.label, scored.score, len(gallery.targets)))
        for k, v in topk_hits(scored.label, scored.score, TOPK).items():
            hits[k].append(v)
        count_gt.append(len(gallery.targets))
        count_tp.append(int(scored.label.sum()))
        heights.append(float(q.box[3] - q.box[1]))
        for bucket, (ap, bhits) in _target_bucket_scores(scored).items():
            bucket_aps[bucket].append(ap)
            for k, v in bhits.items():
                bucket_hits[bucket][k].append(v)
    if not index:
        raise ValueError(f"{dataset.name}: no query can be scored: {excluded[0].reason} for every query")

    ap_arr = np.asarray(aps, dtype=np.float64)
    hit_arrs = {k: np.asarray(v, dtype=np.int64) for k, v in hits.items()}
    height_arr = np.asarray(heights, dtype=np.float64)
    settings = {
        "dataset": dataset.name,
        "protocol": dataset.protocol,
        "gallery": gallery_desc,
        "det_thresh": det_thresh,
        "cbgm": cbgm,
        "rerank": rerank,
    }
    if cbgm:
        settings.update(k1=k1, k2=k2)
    return SearchResult(
        mAP=float(ap_arr.mean()),
        topk={k: float(v.mean()) for k, v in hit_arrs.items()},
        n_queries=len(index),
        query_index=np.asarray(index, dtype=np.int64),
        ap=ap_arr,
        hits=hit_arrs,
        count_gt=np.asarray(count_gt, dtype=np.int64),
        count_tp=np.asarray(count_tp, dtype=np.int64),
        query_height=height_arr,
        by_query_height=query_height_buckets(height_arr, ap_arr, hit_arrs),
        by_target_height={
            b: BucketScore.over(
                np.asarray(bucket_aps[b]), {k: np.asarray(v) for k, v in bucket_hits[b].items()}
            )
            for b, _, _ in HEIGHT_BUCKETS
        },
        excluded=excluded,
        settings=settings,
    )
