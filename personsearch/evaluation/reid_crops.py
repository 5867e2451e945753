"""Re-id on crops, Market-1501's protocol: each query is ranked against the gallery without the
query person's own images from the query's camera (those are the easy, same-view matches), and
scored by average precision and the CMC curve (open-reid / torchreid's ``eval_market1501``);
``evaluate_crop_folder`` runs it on a benchmark's folder (``personsearch evaluate-reid``).

Re-id crop sets show people large; a street camera sees most of them small. ``street_heights``
and ``at_heights`` show a set's crops at the heights of the synthetic benchmark's bands, the way
a small person's box is cut from a scene, so a network's skill at each scale can be scored on
crops too."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch

from personsearch.data.records import HEIGHT_BUCKETS
from personsearch.data.reid_crops import GALLERY, QUERY, read_split, resize_crop
from personsearch.index.reranking import reranked_scores


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
    return similarity_scores(query @ gallery.T, query_pids, query_cams, gallery_pids, gallery_cams, ranks)


def similarity_scores(
    similarity: np.ndarray,
    query_pids: np.ndarray,
    query_cams: np.ndarray,
    gallery_pids: np.ndarray,
    gallery_cams: np.ndarray,
    ranks: Sequence[int] = (1, 5, 10),
) -> dict[str, float]:
    """``market_scores`` of a (Q, M) query-gallery ``similarity`` (e.g. re-ranked), Market-1501's
    rule: a gallery entry of the query's person in the query's camera is neither hit nor miss."""
    aps, cmc, skipped = [], np.zeros(max(ranks)), 0
    for q in range(len(similarity)):
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


def evaluate_crop_folder(
    embed: Callable[[torch.Tensor], np.ndarray],
    root: str | Path,
    size: tuple[int, int],
    *,
    rerank: bool = False,
    ranks: Sequence[int] = (1, 5, 10),
) -> dict[str, float]:
    """Market-1501's protocol on the crop folder at ``root`` (``query/`` against
    ``bounding_box_test/``, whose distractors stay in as wrong answers; junk ignored), each crop
    resized to ``size`` and described by ``embed`` (uint8 crops -> L2-normalised features);
    ``rerank``: each query's gallery ranked as ``search --rerank`` ranks (``reranked_scores``)."""
    query = read_split(root, QUERY, size)
    gallery = read_split(root, GALLERY, size, distractors=True)
    q, g = embed(query.crops), embed(gallery.crops)
    similarity = np.stack([reranked_scores(f, g) for f in q]) if rerank else q @ g.T
    scores = similarity_scores(similarity, query.pids, query.cams, gallery.pids, gallery.cams, ranks)
    return scores | {"gallery": float(len(gallery.pids)), "distractors": float(np.sum(gallery.pids == 0))}


STREET_HEIGHTS = (24.0, 256.0)
"""The heights (pixels) ``street_heights`` draws from: the smallest person worth a query, and the
rendered crops' own height."""


def street_heights(count: int, seed: int = 0) -> np.ndarray:
    """A height for each of ``count`` crops, as many in each of ``HEIGHT_BUCKETS`` (within
    ``STREET_HEIGHTS``, log-uniform in a bucket; the order shuffled by ``seed``)."""
    rng = np.random.default_rng(seed)
    bands = np.resize(np.arange(len(HEIGHT_BUCKETS)), count)
    rng.shuffle(bands)
    floor, ceiling = STREET_HEIGHTS
    low, high = np.log([(max(lo, floor), min(hi, ceiling)) for _, lo, hi in HEIGHT_BUCKETS]).T
    heights: np.ndarray = np.exp(rng.uniform(low[bands], high[bands])).astype(np.float32)
    return heights


def at_heights(crops: torch.Tensor, heights: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """Each uint8 crop (n, 3, H, W) shown ``heights`` pixels tall (area-downsampled, keeping its
    aspect), then resized to ``size`` (H, W) as a box of that height is cut from a scene."""
    out = torch.empty((len(crops), 3, *size), dtype=torch.uint8)
    for k, (crop, height) in enumerate(zip(crops.permute(0, 2, 3, 1).numpy(), heights, strict=True)):
        h = max(2, round(float(height)))
        w = max(1, round(h * crop.shape[1] / crop.shape[0]))
        small = cv2.resize(crop, (w, h), interpolation=cv2.INTER_AREA) if h < crop.shape[0] else crop
        out[k] = torch.from_numpy(resize_crop(small, size)).permute(2, 0, 1)
    return out
