"""Detection protocol: mutual-argmax matching, recall-corrected AP, labelled-only, height buckets."""

import json
from pathlib import Path

import numpy as np
import pytest

from personsearch.data.boxes import box_iou
from personsearch.data.records import UNLABELED, PersonSearchDataset, Scene
from personsearch.evaluation.detection import evaluate_detection, mutual_argmax_matches
from personsearch.evaluation.results import DetectionResult

ROOT = Path("/nonexistent")


def dataset():
    gallery = [
        Scene("g1.jpg", ROOT / "g1.jpg", [[0, 0, 10, 10], [20, 0, 30, 10]], [1, 2]),
        Scene("g2.jpg", ROOT / "g2.jpg", [[0, 0, 10, 20]], [3]),
        Scene("g3.jpg", ROOT / "g3.jpg", [[0, 0, 40, 100]], [UNLABELED]),
    ]
    return PersonSearchDataset("tiny", ROOT, "cuhk", [], gallery, [])


DETS = [
    np.array(
        [
            [0, 0, 10, 10, 0.9],  # IoU 1 with GT 0: its best detection
            [1, 0, 11, 10, 0.95],  # IoU 9/11 with GT 0, higher score: still a false positive
            [22, 0, 32, 10, 0.8],  # IoU 8/12 with GT 1
            [100, 100, 110, 110, 0.3],  # below det_thresh
        ],
        np.float32,
    ),
    [],  # g2: nothing detected
    np.array([[0, 0, 40, 100, 0.6]], np.float32),
]


def test_mutual_argmax_not_greedy():
    res = evaluate_detection(dataset(), DETS)
    # GT 0-det 0, GT 1-det 2, GT 3-det 4 match; GT 2 missed: recall 3/4.
    # ranking .95(0) .9(1) .8(1) .6(1): sklearn AP (1/2 + 2/3 + 3/4) / 3 = 23/36, * 3/4 = 23/48.
    # (VOC greedy would give det 1 to GT 0 and make det 0 the false positive.)
    assert (res.count_gt, res.count_tp, res.n_images) == (4, 3, 3)
    assert res.recall == pytest.approx(0.75)
    assert res.ap == pytest.approx(23 / 48)
    by = res.recall_by_height
    assert (by["<60"].count_gt, by["<60"].count_tp) == (3, 2) and by["<60"].recall == pytest.approx(2 / 3)
    assert by["60-120"].recall == 1.0 and by[">=240"].recall is None


def test_labeled_only_skips_unlabelled_images():
    res = evaluate_detection(dataset(), DETS, labeled_only=True)
    assert (res.count_gt, res.count_tp, res.n_images) == (3, 2, 2)
    assert res.ap is None and res.recall == pytest.approx(2 / 3)


def test_det_thresh_inclusive():
    dets = [np.array([[0, 0, 10, 10, 0.5]], np.float32), [], np.zeros((0, 5), np.float32)]
    assert evaluate_detection(dataset(), dets, det_thresh=0.5).count_tp == 1
    res = evaluate_detection(dataset(), dets, det_thresh=0.51)
    assert res.count_tp == 0 and res.ap == 0.0


def test_argmax_ties_go_to_first_index():
    gt = np.array([[0, 0, 10, 10], [10, 0, 20, 10]])
    det = np.array([[0, 0, 20, 10]])  # IoU 0.5 with both GT boxes
    assert mutual_argmax_matches(box_iou(gt, det), 0.5).tolist() == [[True], [False]]
    assert mutual_argmax_matches(box_iou(gt, det), 0.51).tolist() == [[False], [False]]
    assert mutual_argmax_matches(np.zeros((0, 2)), 0.5).shape == (0, 2)


def test_bad_detections_are_reported():
    with pytest.raises(ValueError, match="has 3 gallery images"):
        evaluate_detection(dataset(), DETS[:2])
    with pytest.raises(ValueError, match=r"gallery_dets\[0\] \(g1.jpg\): expected shape \(n, 5\)"):
        evaluate_detection(dataset(), [DETS[0][:, :4], [], []])


def test_json_round_trip_and_table():
    res = evaluate_detection(dataset(), DETS)
    back = DetectionResult.from_dict(json.loads(json.dumps(res.to_dict())))
    assert back.to_dict() == res.to_dict()
    table = res.format_table()
    assert "75.00" in table and "height <60" in table and "iou_thresh=0.5" in table
