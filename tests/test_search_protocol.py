"""CUHK-SYSU and PRW search protocols, CBGM and the scale breakdown on hand-worked cases.

Features are 2-D unit vectors ``[s, sqrt(1 - s^2)]`` and query features ``[1, 0]``, so each
detection's similarity to the query is exactly the ``s`` written in the test.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from personsearch.data.records import UNLABELED, GalleryItem, PersonSearchDataset, Query, Scene
from personsearch.evaluation.results import SearchResult
from personsearch.evaluation.search import evaluate_search

ROOT = Path("/nonexistent")
QBOX = [0, 0, 50, 100]
A_T, A_N = [10, 10, 60, 110], [100, 0, 150, 100]
B_T = [100, 100, 140, 180]
D_T = [5, 5, 45, 85]


def scene(name, boxes, pids, cam=0):
    return Scene(name, ROOT / name, np.array(boxes, np.float32).reshape(-1, 4), pids, cam)


def unit(s):
    return [s, float(np.sqrt(1 - s * s))]


def inputs(ds, dets):
    """gallery_dets / gallery_feats from {image: [(box, score, similarity), ...]}."""
    gdets, gfeats = [], []
    for s in ds.gallery:
        rows = dets.get(s.name, [])
        gdets.append(np.array([[*b, sc] for b, sc, _ in rows], np.float32).reshape(-1, 5))
        gfeats.append(np.array([unit(sim) for _, _, sim in rows], np.float32).reshape(-1, 2))
    return gdets, gfeats


def qfeats(n=1):
    return np.tile(np.array([[1.0, 0.0]], np.float32), (n, 1))


def cuhk_dataset(gallery_items):
    gallery = [
        scene("q.jpg", [QBOX], [1]),
        scene("a.jpg", [A_T, A_N], [1, 2]),
        scene("b.jpg", [B_T], [1]),
        scene("c.jpg", [[0, 0, 40, 80]], [3]),
        scene("d.jpg", [D_T], [1]),
        scene("e.jpg", [[0, 0, 40, 80]], [4]),
    ]
    query = Query("q.jpg", ROOT / "q.jpg", QBOX, 1, galleries={len(gallery_items): gallery_items})
    return PersonSearchDataset("tiny-cuhk", ROOT, "cuhk", [], gallery, [query])


def item(name, box=None):
    return GalleryItem(name, None if box is None else np.array(box, np.float32))


CUHK_ITEMS = [item("a.jpg", A_T), item("b.jpg", B_T), item("c.jpg"), item("d.jpg", D_T)]
CUHK_DETS = {
    "q.jpg": [(QBOX, 0.9, 0.99)],
    "a.jpg": [(A_T, 0.9, 0.9), (A_N, 0.9, 0.95)],
    "b.jpg": [(B_T, 0.9, 0.6)],
    "c.jpg": [([0, 0, 40, 80], 0.9, 0.8), ([50, 0, 90, 80], 0.9, 0.3)],
    "e.jpg": [([0, 0, 40, 80], 0.9, 0.85)],
}  # d.jpg holds the target but has no detection


def test_cuhk_missed_target_counts_in_count_gt():
    ds = cuhk_dataset(CUHK_ITEMS)
    res = evaluate_search(ds, *inputs(ds, CUHK_DETS), qfeats(), gallery_size=4)
    # pooled: .95(0) .9(1) .8(0) .6(1) .3(0); 3 targets, 2 found: (1/3)(1/2 + 2/4) = 1/3
    assert res.mAP == pytest.approx(1 / 3)
    assert res.topk == {1: 0.0, 5: 1.0, 10: 1.0}  # 5 candidates, fewer than 10
    assert res.count_gt.tolist() == [3] and res.count_tp.tolist() == [2]
    assert res.n_queries == 1 and not res.excluded


def test_cuhk_full_set_adds_other_images_once_without_query_image():
    ds = cuhk_dataset(CUHK_ITEMS)
    res = evaluate_search(ds, *inputs(ds, CUHK_DETS), qfeats(), gallery_size=-1)
    # only e.jpg (.85) joins: .95(0) .9(1) .85(0) .8(0) .6(1) .3(0) -> (1/3)(1/2 + 2/5) = 0.3.
    # Scoring q.jpg (.99 on top) would give 2/9; re-adding a..c as negatives would give less.
    assert res.mAP == pytest.approx(0.3)
    assert res.settings["gallery"] == "whole test set"


def test_cuhk_unknown_gallery_size_lists_available_sizes():
    ds = cuhk_dataset(CUHK_ITEMS)
    with pytest.raises(ValueError, match=r"gallery_size=100 .* available sizes: \[4\]"):
        evaluate_search(ds, *inputs(ds, CUHK_DETS), qfeats(), gallery_size=100)
    with pytest.raises(ValueError, match="PRW protocol only"):
        evaluate_search(ds, *inputs(ds, CUHK_DETS), qfeats(), gallery_size=4, cross_camera=True)


def test_duplicate_gallery_image_scored_once_counted_twice():
    ds = cuhk_dataset([item("a.jpg", A_T), item("a.jpg", A_T), item("c.jpg")])
    res = evaluate_search(ds, *inputs(ds, CUHK_DETS), qfeats(), gallery_size=3)
    # a scored once: .95(0) .9(1) .8(0) .3(0); count_gt 2 -> AP (1/2) * 1/2
    assert res.count_gt.tolist() == [2] and res.count_tp.tolist() == [1]
    assert res.mAP == pytest.approx(0.25)


def test_first_match_by_similarity_is_the_single_true_positive():
    ds = cuhk_dataset([item("a.jpg", A_T), item("c.jpg")])
    shifted = [A_T[0] + 10, A_T[1], A_T[2] + 10, A_T[3]]  # IoU 40/60 = 0.67 with the target
    far = [A_T[0] + 30, A_T[1], A_T[2] + 30, A_T[3]]  # IoU 20/80 = 0.25

    def run(first):
        dets = {"a.jpg": [(first, 0.9, 0.9), (A_T, 0.9, 0.7)], "c.jpg": [([0, 0, 40, 80], 0.9, 0.8)]}
        return evaluate_search(ds, *inputs(ds, dets), qfeats(), gallery_size=2)

    res = run(shifted)
    # the shifted box is more similar and localises: TP; the exact box becomes a negative
    assert res.ap[0] == pytest.approx(1.0) and res.count_tp[0] == 1
    res = run(far)
    # .9(0) .8(0) .7(1)
    assert res.ap[0] == pytest.approx(1 / 3) and res.top1[0] == 0


@pytest.mark.parametrize(
    ("target", "det", "counts"),
    [
        ([0, 0, 10, 25], [0, 0, 10, 55], True),  # IoU 25/55 = 0.455 >= 250/700 = 0.357
        ([0, 0, 15, 40], [0, 0, 15, 82], True),  # IoU 40/82 = 0.488 >= 0.48, though < 0.5
        ([0, 0, 15, 40], [0, 0, 15, 84], False),  # IoU 40/84 = 0.476 < 0.48
        ([0, 0, 50, 120], [0, 0, 50, 250], False),  # IoU 0.48 < 0.5 for a big person
    ],
)
def test_small_box_iou_threshold(target, det, counts):
    ds = cuhk_dataset([item("a.jpg", target)])
    res = evaluate_search(ds, *inputs(ds, {"a.jpg": [(det, 0.9, 0.9)]}), qfeats(), gallery_size=1)
    assert res.count_tp[0] == int(counts) and res.ap[0] == float(counts)


def test_det_thresh_is_inclusive():
    ds = cuhk_dataset([item("a.jpg", A_T)])
    args = (ds, *inputs(ds, {"a.jpg": [(A_T, 0.5, 0.9)]}), qfeats())
    assert evaluate_search(*args, gallery_size=1, det_thresh=0.5).mAP == 1.0
    res = evaluate_search(*args, gallery_size=1, det_thresh=0.51)
    assert res.mAP == 0.0 and res.count_gt[0] == 1 and res.topk[1] == 0.0


def test_query_with_zero_candidates_scores_zero():
    ds = cuhk_dataset(CUHK_ITEMS)
    res = evaluate_search(ds, *inputs(ds, {}), qfeats(), gallery_size=4)
    assert res.mAP == 0.0 and res.topk == {1: 0.0, 5: 0.0, 10: 0.0} and res.count_gt[0] == 3


def test_cbgm_context_lifts_the_target():
    # three feature axes: query person, companion, rest
    q, c = [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]
    target, companion, negative = [0.6, 0.0, 0.8], [0.0, 0.95, np.sqrt(1 - 0.95**2)], [0.8, 0.0, 0.6]
    ds = cuhk_dataset([item("a.jpg", A_T), item("c.jpg")])
    gdets = [np.zeros((0, 5), np.float32) for _ in ds.gallery]
    gfeats = [np.zeros((0, 3), np.float32) for _ in ds.gallery]
    gdets[1] = np.array([[*A_T, 0.9], [*A_N, 0.9]], np.float32)
    gfeats[1] = np.array([target, companion], np.float32)
    gdets[3] = np.array([[0, 0, 40, 80, 0.9]], np.float32)
    gfeats[3] = np.array([negative], np.float32)
    query_feats = np.array([q], np.float32)
    context = [(np.array([[*QBOX, 1.0], [60, 0, 100, 100, 0.9]]), np.array([q, c], np.float32))]
    plain = evaluate_search(ds, gdets, gfeats, query_feats, gallery_size=2)
    # .8 (negative) .6 (target) 0 (companion)
    assert plain.ap[0] == pytest.approx(0.5) and plain.top1[0] == 0
    res = evaluate_search(ds, gdets, gfeats, query_feats, gallery_size=2, cbgm=True, query_context=context)
    # a.jpg: matching {query-target .6, companion-companion .95} -> the target takes the
    # largest matched edge .95 and moves above the negative (.8, matched to the query in c.jpg)
    assert res.ap[0] == pytest.approx(1.0) and res.top1[0] == 1
    assert res.settings["k1"] == 10 and res.settings["k2"] == 3

    bad = [(np.array([[1, 2, 3, 4, 1.0]]), np.array([q], np.float32))]
    with pytest.raises(ValueError, match="row 0 must be the query box"):
        evaluate_search(ds, gdets, gfeats, query_feats, gallery_size=2, cbgm=True, query_context=bad)
    with pytest.raises(ValueError, match="cbgm=True needs query_context"):
        evaluate_search(ds, gdets, gfeats, query_feats, gallery_size=2, cbgm=True)


def test_target_height_buckets():
    small, mid, tall = [0, 0, 20, 50], [0, 0, 40, 100], [0, 0, 60, 150]
    ds = cuhk_dataset([item("a.jpg", small), item("b.jpg", mid), item("c.jpg"), item("d.jpg", tall)])
    dets = {
        "a.jpg": [(small, 0.9, 0.7)],
        "b.jpg": [(mid, 0.9, 0.9)],
        "c.jpg": [([0, 0, 40, 80], 0.9, 0.8), ([50, 0, 90, 80], 0.9, 0.6)],
    }  # the tall target in d.jpg is never detected
    res = evaluate_search(ds, *inputs(ds, dets), qfeats(), gallery_size=4)
    # all targets: .9(mid) .8 .7(small) .6 -> (1/3)(1 + 2/3) = 5/9
    assert res.mAP == pytest.approx(5 / 9)
    by = res.by_target_height
    # <60: mid's TP removed: .8 .7(1) .6 -> AP 1/2, top-1 0
    assert by["<60"].mAP == pytest.approx(0.5) and by["<60"].topk[1] == 0.0 and by["<60"].topk[5] == 1.0
    # 60-120: small's TP removed: .9(1) .8 .6 -> AP 1
    assert by["60-120"].mAP == pytest.approx(1.0) and by["60-120"].topk[1] == 1.0
    # 120-240: its only target was missed -> AP 0
    assert by["120-240"].mAP == 0.0 and by["120-240"].n_queries == 1
    assert by[">=240"].n_queries == 0 and by[">=240"].mAP is None
    # the query box is 100 px tall
    assert res.by_query_height["60-120"].n_queries == 1
    assert res.by_query_height["60-120"].mAP == pytest.approx(5 / 9)
    assert res.by_query_height["<60"].n_queries == 0


def prw_dataset():
    gallery = [
        scene("f1.jpg", [[0, 0, 40, 100], [50, 0, 90, 100]], [1, 2], cam=1),
        scene("f2.jpg", [[0, 0, 40, 100]], [1], cam=1),
        scene("f3.jpg", [[0, 0, 40, 100], [50, 0, 90, 100]], [1, UNLABELED], cam=2),
        scene("f4.jpg", [[0, 0, 40, 100]], [2], cam=2),
        scene("f5.jpg", [[0, 0, 40, 100]], [3], cam=3),
    ]
    queries = [
        Query("f1.jpg", ROOT / "f1.jpg", [0, 0, 40, 100], 1, cam=1),
        Query("f1.jpg", ROOT / "f1.jpg", [50, 0, 90, 100], 2, cam=1),
        Query("f5.jpg", ROOT / "f5.jpg", [0, 0, 40, 100], 3, cam=3),
    ]
    return PersonSearchDataset("tiny-prw", ROOT, "prw", [], gallery, queries)


def one_hot_inputs(ds):
    """Oracle: GT boxes with score 1, identity one-hot features (unlabelled people share a dim)."""
    dim = {1: 0, 2: 1, 3: 2, UNLABELED: 3}
    dets = [np.concatenate([s.boxes, np.ones((len(s.boxes), 1), np.float32)], axis=1) for s in ds.gallery]
    feats = [np.eye(4, dtype=np.float32)[[dim[int(p)] for p in s.pids]] for s in ds.gallery]
    return dets, feats, np.eye(4, dtype=np.float32)[[dim[q.pid] for q in ds.queries]]


def test_prw_oracle_and_degraded_oracle():
    ds = prw_dataset()
    dets, feats, query = one_hot_inputs(ds)
    res = evaluate_search(ds, dets, feats, query)
    assert res.mAP == 1.0 and res.topk[1] == 1.0 and res.n_queries == 2
    # pid 3 is seen only in the query's own frame: excluded, not a ZeroDivisionError
    assert [(e.index, e.pid) for e in res.excluded] == [(2, 3)]
    assert "no other gallery frame" in res.excluded[0].reason and "Excluded 1 queries" in res.format_table()

    # Degraded: f2 loses its detection (query 1 finds 1 of its 2 targets: AP = 1 * 1/2, top-1 1)
    # and f4's box slides 30 px (IoU 10/70 < 0.5: query 2 finds nothing: AP 0, top-1 0).
    # mAP = (1/2 + 0) / 2 = 0.25, top-1 = (1 + 0) / 2 = 0.5
    dets[1], feats[1] = dets[1][:0], feats[1][:0]
    dets[3] = dets[3] + np.array([30, 0, 30, 0, 0], np.float32)
    res = evaluate_search(ds, dets, feats, query)
    assert res.ap.tolist() == pytest.approx([0.5, 0.0])
    assert res.mAP == pytest.approx(0.25) and res.topk[1] == 0.5


def test_prw_all_cameras_vs_cross_camera():
    ds = prw_dataset()
    box1, box2 = [0, 0, 40, 100], [50, 0, 90, 100]
    dets = {
        "f1.jpg": [(box1, 0.9, 0.99), (box2, 0.9, 0.1)],  # the query's own frame: never scored
        "f2.jpg": [(box1, 0.9, 0.2)],  # same-camera target
        "f3.jpg": [(box1, 0.9, 0.9), (box2, 0.9, 0.5)],
        "f4.jpg": [(box1, 0.9, 0.4)],
        "f5.jpg": [(box1, 0.9, 0.3)],
    }
    gdets, gfeats = inputs(ds, dets)
    res = evaluate_search(ds, gdets, gfeats, qfeats(), queries=ds.queries[:1])
    # .9(1) .5 .4 .3 .2(1) -> (1 + 2/5) / 2
    assert res.mAP == pytest.approx(0.7) and res.count_gt.tolist() == [2]
    res = evaluate_search(ds, gdets, gfeats, qfeats(), queries=ds.queries[:1], cross_camera=True)
    # camera 1 (f1, f2) leaves: .9(1) .5 .4 .3 -> 1
    assert res.mAP == pytest.approx(1.0) and res.count_gt.tolist() == [1]
    assert res.settings["gallery"] == "other-camera frames"


def test_no_scorable_query_is_an_error():
    ds = prw_dataset()
    dets, feats, query = one_hot_inputs(ds)
    with pytest.raises(ValueError, match="no query can be scored"):
        evaluate_search(ds, dets, feats, query[2:], queries=ds.queries[2:])


def test_cuhk_oracle():
    scenes = [
        scene("s0.jpg", [[0, 0, 30, 80], [40, 0, 70, 80]], [1, 2]),
        scene("s1.jpg", [[10, 0, 40, 80], [50, 0, 80, 80]], [1, 3]),
        scene("s2.jpg", [[0, 0, 30, 80], [40, 0, 70, 80]], [2, UNLABELED]),
        scene("s3.jpg", [[0, 0, 30, 80]], [3]),
    ]
    queries = []
    for qname, pid in [("s0.jpg", 1), ("s0.jpg", 2), ("s3.jpg", 3)]:
        items = [
            GalleryItem(s.name, s.boxes[s.pids == pid][0] if pid in s.pids else None)
            for s in scenes
            if s.name != qname
        ]
        qscene = next(s for s in scenes if s.name == qname)
        queries.append(
            Query(qname, ROOT / qname, qscene.boxes[qscene.pids == pid][0], pid, galleries={3: items})
        )
    ds = PersonSearchDataset("oracle", ROOT, "cuhk", [], scenes, queries)
    res = evaluate_search(ds, *one_hot_inputs(ds), gallery_size=3)
    assert res.mAP == 1.0 and res.topk == {1: 1.0, 5: 1.0, 10: 1.0} and res.n_queries == 3


def test_input_validation_messages():
    ds = cuhk_dataset(CUHK_ITEMS)
    gdets, gfeats = inputs(ds, CUHK_DETS)
    with pytest.raises(ValueError, match="has 6 gallery images"):
        evaluate_search(ds, gdets[:-1], gfeats, qfeats(), gallery_size=4)
    with pytest.raises(ValueError, match=r"query_feats: expected shape \(1, D\)"):
        evaluate_search(ds, gdets, gfeats, qfeats(2), gallery_size=4)
    with pytest.raises(ValueError, match=r"gallery_dets\[1\] \(a.jpg\): expected shape \(n, 5\)"):
        evaluate_search(ds, [gdets[0], gdets[1][:, :4], *gdets[2:]], gfeats, qfeats(), gallery_size=4)
    with pytest.raises(ValueError, match="gallery features are not L2-normalised"):
        evaluate_search(ds, gdets, [2 * f for f in gfeats], qfeats(), gallery_size=4)


def test_result_json_round_trip_and_table():
    ds = cuhk_dataset(CUHK_ITEMS)
    res = evaluate_search(ds, *inputs(ds, CUHK_DETS), qfeats(), gallery_size=4)
    data = json.loads(json.dumps(res.to_dict()))
    back = SearchResult.from_dict(data)
    assert back.to_dict() == res.to_dict()
    assert back.topk[1] == res.topk[1] and back.ap.tolist() == res.ap.tolist()
    table = res.format_table()
    assert "protocol=cuhk" in table and "33.33" in table
    lines = table.splitlines()
    assert any(line.startswith("query height 60-120") for line in lines)
    assert any(line.startswith("target height >=240") and line.rstrip().endswith("-") for line in lines)
