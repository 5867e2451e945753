"""Re-id on crops, Market-1501's protocol: each query is ranked against the gallery without the
query person's own images from the query's camera (those are the easy, same-view matches), and
scored by average precision and the CMC curve (open-reid / torchreid's ``eval_market1501``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def market_scores(
    query: np.ndarray,
    query_pids: np.ndarray,
    query_cams: np.ndarray,
    gallery: np.ndarray,
    gallery_pids: np.ndarray,
    gallery_cams: np.ndarray,
    ranks: Sequence[int] = (1, 5, 10),
) -> dict[str, float]:
    """mAP and CMC top-k (in %) of L2-normalised ``query`` against ``gallery`` features; queries
    with no valid match in the gallery are left out (as Market-1501's code does), and counted."""
    similarity = query @ gallery.T
    aps, cmc, skipped = [], np.zeros(max(ranks)), 0
    for q in range(len(query)):
        valid = ~((gallery_pids == query_pids[q]) & (gallery_cams == query_cams[q]))
        order = np.argsort(-similarity[q][valid], kind="stable")
        matches = (gallery_pids[valid] == query_pids[q])[order]
        if not matches.any():
            skipped += 1
            continue
        hits = np.flatnonzero(matches)
        first = hits[0]
        if first < len(cmc):
            cmc[first:] += 1
        precision = np.arange(1, len(hits) + 1) / (hits + 1)
        aps.append(float(precision.mean()))
    scored = len(aps)
    if scored == 0:
        raise ValueError("no query has a match in the gallery from another camera: nothing to score")
    out = {
        "mAP": 100 * float(np.mean(aps)),
        "queries": float(scored),
        "queries_without_match": float(skipped),
    }
    out.update({f"top{k}": 100 * float(cmc[k - 1]) / scored for k in ranks})
    return out
