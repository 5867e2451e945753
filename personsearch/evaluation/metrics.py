"""The arithmetic of the person-search protocols: IoU, the small-box IoU rule, the
recall-corrected AP and top-k (docs/specs/benchmarks.md sections 3-4).

Plain functions over numpy arrays, so the protocols in ``search`` and ``detection`` stay short
and every rule can be tested on hand-computed numbers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import average_precision_score

from personsearch.data.boxes import box_iou


def target_iou_threshold(w: float, h: float) -> float:
    """IoU a detection needs to localise a search target of GT size ``w`` x ``h``:
    ``min(0.5, w*h / ((w+10)*(h+10)))``, lowered for small people whose boxes cannot
    reach 0.5 with a few pixels of error (e.g. 15x40 -> 0.48)."""
    return min(0.5, (w * h) / ((w + 10.0) * (h + 10.0)))


def localises(boxes: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Which xyxy ``boxes`` (n, 4) localise the ground-truth ``target`` (4,): IoU at least
    ``target_iou_threshold`` of the target's size, the search protocols' rule."""
    target = np.asarray(target).reshape(4)
    return box_iou(boxes, target)[:, 0] >= target_iou_threshold(target[2] - target[0], target[3] - target[1])


def recall_corrected_ap(y_true: np.ndarray, y_score: np.ndarray, count_gt: int) -> float:
    """Search AP of one query: sklearn's average precision over the pooled candidates, times
    ``count_tp / count_gt`` so that targets never detected count as retrieved at infinite rank.

    ``count_tp`` is the number of positives in ``y_true``; the AP is 0 when there are none.
    Tied scores form one threshold, exactly as in ``sklearn.metrics.average_precision_score``.
    """
    y_true = np.asarray(y_true).astype(bool).reshape(-1)
    y_score = np.asarray(y_score, dtype=np.float64).reshape(-1)
    if y_true.shape != y_score.shape:
        raise ValueError(f"y_true has {y_true.size} entries but y_score has {y_score.size}")
    count_tp = int(y_true.sum())
    if count_tp > count_gt:
        raise ValueError(f"{count_tp} true positives but only count_gt={count_gt} targets")
    if count_tp == 0:
        return 0.0
    # Candidates scored below every positive add only zero-recall steps to sklearn's sum, so
    # dropping them gives the same value (to rounding) without sorting them.
    kept = y_score >= y_score[y_true].min()
    return float(average_precision_score(y_true[kept], y_score[kept])) * count_tp / count_gt


def topk_hits(y_true: np.ndarray, y_score: np.ndarray, ks: Sequence[int] = (1, 5, 10)) -> dict[int, int]:
    """For each k, 1 if a positive is among the k best-ranked candidates, else 0.

    Candidates rank by score, descending; among equal scores the negatives come first. (The
    reference code's order among ties is whatever ``np.argsort`` happens to do; this rule makes
    the result independent of candidate order and never flatters a model that gives many boxes
    the same score. Without ties it is the plain score order.) Fewer than k candidates means
    all of them are looked at; none gives 0.
    """
    y_true = np.asarray(y_true).astype(bool).reshape(-1)
    y_score = np.asarray(y_score, dtype=np.float64).reshape(-1)
    if not y_true.any():
        return {int(k): 0 for k in ks}
    best = y_score[y_true].max()
    rank = np.count_nonzero(y_score > best) + np.count_nonzero(~y_true & (y_score == best))
    return {int(k): int(rank < k) for k in ks}


def check_l2_normalised(features: np.ndarray, what: str, fix: str, atol: float = 1e-3) -> None:
    """Raise if any row of ``features`` is not unit length: the protocols take plain dot
    products as cosine similarities, so unnormalised features give silently wrong scores."""
    features = np.asarray(features)
    if features.size == 0:
        return
    norms = np.linalg.norm(features.astype(np.float64), axis=-1)
    if not np.all(np.abs(norms - 1.0) <= atol):
        raise ValueError(
            f"{what} are not L2-normalised: row norms range from {norms.min():.4g} to "
            f"{norms.max():.4g}, expected 1 +- {atol}. The protocol takes dot products as cosine "
            f"similarities. Fix: {fix}"
        )
