"""IoU, the small-box IoU rule, recall-corrected AP and top-k on hand-computed values."""

import numpy as np
import pytest
import torch
from torchvision.ops import box_iou as tv_box_iou

from personsearch.evaluation.metrics import (
    box_iou,
    check_l2_normalised,
    localises,
    recall_corrected_ap,
    target_iou_threshold,
    topk_hits,
)

torch.set_num_threads(1)


def test_box_iou_continuous_coordinates():
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 10, 10]])
    # overlap 5x10=50, union 100+100-50=150 (a +1 convention would give 66/154)
    np.testing.assert_allclose(box_iou(a, b), [[1 / 3, 0.0, 1.0]])
    assert box_iou(np.zeros((0, 4)), b).shape == (0, 3)
    assert box_iou([[1, 1, 1, 1]], [[1, 1, 1, 1]])[0, 0] == 0.0  # zero-area boxes: 0, not NaN


def test_box_iou_matches_torchvision():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 50, (2, 8, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(1, 40, (2, 8, 2))], axis=2)
    ref = tv_box_iou(torch.from_numpy(boxes[0]), torch.from_numpy(boxes[1])).numpy()
    np.testing.assert_allclose(box_iou(boxes[0], boxes[1]), ref, atol=1e-12)


def test_target_iou_threshold_lowered_for_small_people():
    assert target_iou_threshold(15, 40) == pytest.approx(600 / 1250)  # 0.48
    assert target_iou_threshold(10, 25) == pytest.approx(250 / 700)  # 0.357
    assert target_iou_threshold(50, 120) == 0.5


def test_localises_uses_the_target_size_threshold():
    small = np.array([0, 0, 15, 40], np.float32)  # threshold 0.48
    boxes = np.array([[0, 0, 15, 19.6], [0, 0, 15, 18.8], [0, 0, 15, 16]], np.float32)  # IoU 0.49, 0.47, 0.4
    assert localises(boxes, small).tolist() == [True, False, False]
    large = np.array([0, 0, 100, 200], np.float32)  # threshold 0.5
    # IoU 0.49, 0.5
    assert localises(np.array([[0, 0, 100, 98], [0, 0, 100, 100]]), large).tolist() == [False, True]
    assert localises(np.zeros((0, 4)), large).shape == (0,)


def test_recall_corrected_ap_with_missed_target():
    # TPs at ranks 1 and 3 out of 3 targets: (1/3) * (1/1 + 2/3) = 5/9
    ap = recall_corrected_ap([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.6], count_gt=3)
    assert ap == pytest.approx(5 / 9)
    assert recall_corrected_ap([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.6], count_gt=2) == pytest.approx(5 / 6)


def test_recall_corrected_ap_ties_follow_sklearn():
    # one threshold for three tied candidates: precision 2/3 at recall 1. Ordering the tie
    # positives-first would give 1, negatives-first (0, 1, 1) would give (1/2 + 2/3) / 2.
    assert recall_corrected_ap([1, 0, 1], [0.5, 0.5, 0.5], count_gt=2) == pytest.approx(2 / 3)


def test_recall_corrected_ap_edge_cases():
    assert recall_corrected_ap([0, 0], [0.9, 0.1], count_gt=4) == 0.0
    assert recall_corrected_ap([], [], count_gt=1) == 0.0
    with pytest.raises(ValueError, match="count_gt=1"):
        recall_corrected_ap([1, 1], [0.9, 0.8], count_gt=1)


def test_topk_hits_few_or_no_candidates():
    assert topk_hits([0, 1], [0.9, 0.8]) == {1: 0, 5: 1, 10: 1}
    assert topk_hits([], []) == {1: 0, 5: 0, 10: 0}
    assert topk_hits([0] * 12 + [1], list(np.linspace(1, 0.5, 13)), ks=(1, 10, 13)) == {1: 0, 10: 0, 13: 1}


def test_topk_ties_rank_negatives_first():
    assert topk_hits([1, 0], [0.5, 0.5], ks=(1, 2)) == {1: 0, 2: 1}
    assert topk_hits([1, 0], [0.6, 0.5], ks=(1,)) == {1: 1}


def test_check_l2_normalised_names_the_fix():
    check_l2_normalised(np.array([[0.6, 0.8], [1.0, 0.0]]), "features", "normalise")
    with pytest.raises(ValueError, match=r"gallery features are not L2-normalised.*Fix: do it"):
        check_l2_normalised(np.array([[3.0, 4.0]]), "gallery features", "do it")
    with pytest.raises(ValueError, match="not L2-normalised"):
        check_l2_normalised(np.array([[np.nan, 0.0]]), "features", "fix")


def test_market_protocol_leaves_out_same_camera_matches_and_scores_by_hand() -> None:
    """Query 1 (person 1, camera 1): its camera-1 twin is left out though it ranks first; of the
    rest, person 1 in camera 2 ranks 2nd (AP 1/2, not a top-1 hit). Query 2 (person 2) has its
    match first (AP 1). A query whose only matches share its camera is skipped and counted."""
    from personsearch.evaluation.reid_crops import market_scores

    gallery = np.eye(4, dtype=np.float32)
    g_pids, g_cams = np.array([1, 1, 2, 3]), np.array([1, 2, 2, 2])
    query = np.array([[0.9, 0.3, 0.0, 0.4], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]], np.float32)
    scores = market_scores(
        query, np.array([1, 2, 3]), np.array([1, 1, 2]), gallery, g_pids, g_cams, ranks=(1, 2)
    )
    assert scores["queries"] == 2 and scores["queries_without_match"] == 1
    assert scores["mAP"] == pytest.approx(100 * (0.5 + 1.0) / 2)
    assert scores["top1"] == pytest.approx(50.0) and scores["top2"] == pytest.approx(100.0)


def test_crops_at_street_heights_fill_every_height_bucket_and_lose_detail_when_small() -> None:
    """The rendered ablation's test shows each crop at a street camera's height: as many crops in
    each of the benchmark's height buckets, the same heights for every network (a fixed seed), and
    a crop shown small carries less detail (stripes average out) at the same output size."""
    from personsearch.data.records import HEIGHT_BUCKETS, height_bucket
    from personsearch.evaluation.reid_crops import STREET_HEIGHTS, at_heights, street_heights

    heights = street_heights(400, seed=1)
    assert np.array_equal(heights, street_heights(400, seed=1))
    assert heights.min() >= STREET_HEIGHTS[0] and heights.max() <= STREET_HEIGHTS[1]
    counts = {name: 0 for name, _, _ in HEIGHT_BUCKETS}
    for h in heights:
        counts[height_bucket(float(h))] += 1
    assert set(counts.values()) == {100}

    board = (np.indices((256, 128))[0] // 8 % 2 * 255).astype(np.uint8)  # stripes 8 pixels wide
    crops = torch.from_numpy(np.repeat(board[None, None], 3, axis=1)).repeat(2, 1, 1, 1)
    shown = at_heights(crops, np.array([256.0, 30.0]), (128, 64)).float()
    assert shown.shape == (2, 3, 128, 64)
    contrast = shown.std(dim=(1, 2, 3))
    assert contrast[1] < 0.5 * contrast[0]
