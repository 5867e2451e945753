"""The person-search detection protocol (docs/specs/benchmarks.md section 3.4): recall and
recall-corrected AP of the gallery detections, plus recall by GT person height.

Matching is SeqNet's mutual argmax, not VOC's score-ordered greedy matching: a (GT, detection)
pair is a hit only when IoU >= iou_thresh and each is the other's best-IoU partner.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import average_precision_score

from personsearch.data.boxes import box_iou
from personsearch.data.records import (
    HEIGHT_BUCKETS,
    UNLABELED,
    PersonSearchDataset,
    box_heights,
    height_bucket,
)
from personsearch.evaluation.results import BucketRecall, DetectionResult


def as_detection_array(det: np.ndarray, where: str) -> np.ndarray:
    """One image's detections as float64 (n, 5) ``[x1, y1, x2, y2, score]``; any empty array
    (``[]``, (0,), (0, 5)) means none, so callers never trip on ``det != []`` (section 5)."""
    det = np.asarray(det, dtype=np.float64)
    if det.size == 0:
        return np.zeros((0, 5))
    if det.ndim != 2 or det.shape[1] != 5:
        raise ValueError(f"{where}: expected shape (n, 5) [x1, y1, x2, y2, score], got {det.shape}")
    if not np.all(np.isfinite(det)):
        raise ValueError(f"{where} holds NaN or infinite values")
    return det


def mutual_argmax_matches(ious: np.ndarray, iou_thresh: float) -> np.ndarray:
    """(n_gt, n_det) bool: IoU >= iou_thresh, the GT is the det's argmax-IoU GT and the det is
    the GT's argmax-IoU det (argmax over all pairs, first index on ties, scores ignored)."""
    n_gt, n_det = ious.shape
    match = ious >= iou_thresh
    if n_gt == 0 or n_det == 0:
        return match
    best_gt = np.zeros_like(match)
    best_gt[np.argmax(ious, axis=0), np.arange(n_det)] = True
    best_det = np.zeros_like(match)
    best_det[np.arange(n_gt), np.argmax(ious, axis=1)] = True
    return match & best_gt & best_det


def evaluate_detection(
    dataset: PersonSearchDataset,
    gallery_dets: Sequence[np.ndarray],
    *,
    det_thresh: float = 0.5,
    iou_thresh: float = 0.5,
    labeled_only: bool = False,
) -> DetectionResult:
    """Detection recall and AP over ``dataset.gallery`` (detections aligned with it).

    GT is every annotated person, labelled or not; ``labeled_only`` keeps people with an identity
    and skips images left without any (its AP is not reported: matches to unlabelled people would
    count as false positives). Detections with ``score >= det_thresh`` are kept.
    ``AP = average_precision_score * recall``, as the benchmarks compute it.
    """
    if len(gallery_dets) != len(dataset.gallery):
        raise ValueError(
            f"gallery_dets has {len(gallery_dets)} entries but {dataset.name} has {len(dataset.gallery)} "
            "gallery images: pass one array per dataset.gallery entry, in order"
        )
    y_true, y_score, gt_heights, gt_found = [], [], [], []
    n_images = 0
    for i, (scene, det) in enumerate(zip(dataset.gallery, gallery_dets)):
        det = as_detection_array(det, f"gallery_dets[{i}] ({scene.name})")
        gt = scene.boxes[scene.pids != UNLABELED] if labeled_only else scene.boxes
        if labeled_only and len(gt) == 0:
            continue
        n_images += 1
        det = det[det[:, 4] >= det_thresh]
        match = mutual_argmax_matches(box_iou(gt, det[:, :4]), iou_thresh)
        y_true.append(match.any(axis=0))
        y_score.append(det[:, 4])
        gt_heights.append(box_heights(gt))
        gt_found.append(match.any(axis=1))
    heights = np.concatenate(gt_heights) if gt_heights else np.zeros(0)
    found = np.concatenate(gt_found) if gt_found else np.zeros(0, bool)
    if len(heights) == 0:
        raise ValueError(
            f"{dataset.name}: the gallery has no {'labelled ' if labeled_only else ''}ground-truth boxes"
        )
    labels = np.concatenate(y_true)
    scores = np.concatenate(y_score)
    recall = float(found.sum()) / len(heights)
    ap = None
    if not labeled_only:
        ap = float(average_precision_score(labels, scores)) * recall if labels.any() else 0.0
    buckets = np.array([height_bucket(h) for h in heights], dtype=object)
    return DetectionResult(
        recall=recall,
        ap=ap,
        count_gt=len(heights),
        count_tp=int(found.sum()),
        n_images=n_images,
        recall_by_height={
            b: BucketRecall(int((buckets == b).sum()), int(found[buckets == b].sum()))
            for b, _, _ in HEIGHT_BUCKETS
        },
        settings={
            "dataset": dataset.name,
            "det_thresh": det_thresh,
            "iou_thresh": iou_thresh,
            "labeled_only": labeled_only,
        },
    )
