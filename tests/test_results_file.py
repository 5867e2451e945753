"""The .npz results format: round trip, realignment by image name, and its error messages."""

from pathlib import Path

import numpy as np
import pytest

from personsearch.data.records import GalleryItem, PersonSearchDataset, Query, Scene
from personsearch.evaluation.results_file import (
    load_results,
    save_results,
    score_results_file,
    score_results_file_detection,
)
from personsearch.evaluation.search import evaluate_search

ROOT = Path("/nonexistent")
QBOX = [0, 0, 40, 100]


def unit_rows(rng, n, dim=3):
    x = rng.normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture()
def setup():
    rng = np.random.default_rng(0)
    names = ["a.jpg", "b.jpg", "c.jpg", "q.jpg"]
    gallery = [Scene(n, ROOT / n, [QBOX], [1 if n != "c.jpg" else 2]) for n in names]
    items = [GalleryItem(n, np.array(QBOX, np.float32) if n != "c.jpg" else None) for n in names[:3]]
    query = Query("q.jpg", ROOT / "q.jpg", QBOX, 1, galleries={3: items})
    ds = PersonSearchDataset("tiny", ROOT, "cuhk", [], gallery, [query])
    counts = [2, 0, 3, 1]
    boxes = [np.tile(QBOX, (n, 1)) + rng.uniform(0, 5, (n, 4)) for n in counts]
    dets = [np.c_[b, rng.uniform(0.5, 1, len(b))].astype(np.float32) for b in boxes]
    feats = [unit_rows(rng, n) for n in counts]
    query_feats = unit_rows(rng, 1)
    context = [(np.array([[*QBOX, 1.0], [50, 0, 90, 100, 0.8]], np.float32), unit_rows(rng, 2))]
    return ds, dets, feats, query_feats, context


def test_round_trip_scores_like_direct_evaluation(setup, tmp_path):
    ds, dets, feats, query_feats, context = setup
    path = tmp_path / "results.npz"
    save_results(path, ds, dets, feats, query_feats, context)
    with np.load(path, allow_pickle=False) as data:
        assert data["gallery_images"].dtype.kind == "U" and data["det_image_index"].dtype == np.int64
    got_dets, got_feats, got_query, got_context = load_results(path, ds)
    for a, b in zip(got_dets, dets):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(got_feats, feats):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(got_query, query_feats)
    np.testing.assert_array_equal(got_context[0][1], context[0][1])
    for cbgm in (False, True):
        direct = evaluate_search(
            ds, dets, feats, query_feats, gallery_size=3, cbgm=cbgm, query_context=context
        )
        scored = score_results_file(ds, path, gallery_size=3, cbgm=cbgm)
        assert scored.ap.tolist() == direct.ap.tolist()
        assert scored.settings["results_file"] == str(path)


def write(path, **arrays):
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


def file_arrays(ds, dets, feats, query_feats):
    return {
        "gallery_images": np.array([s.name for s in ds.gallery]),
        "det_boxes": np.concatenate([d[:, :4] for d in dets]),
        "det_scores": np.concatenate([d[:, 4] for d in dets]),
        "det_image_index": np.repeat(np.arange(len(dets)), [len(d) for d in dets]),
        "det_features": np.concatenate(feats),
        "query_features": query_feats,
    }


def test_realigns_by_image_name(setup, tmp_path):
    ds, dets, feats, query_feats, _ = setup
    arrays = file_arrays(ds, dets, feats, query_feats)
    perm = np.array([3, 1, 0, 2])  # file row r lists gallery image perm[r]
    arrays["gallery_images"] = arrays["gallery_images"][perm]
    arrays["det_image_index"] = np.argsort(perm)[arrays["det_image_index"]]
    shuffle = np.random.default_rng(1).permutation(len(arrays["det_boxes"]))
    for key in ("det_boxes", "det_scores", "det_image_index", "det_features"):
        arrays[key] = arrays[key][shuffle]
    write(tmp_path / "r.npz", **arrays)
    got_dets, got_feats, _, context = load_results(tmp_path / "r.npz", ds)
    assert context is None
    for a, b in zip(got_dets, dets):  # same detections per image (file order within an image)
        assert sorted(map(tuple, a.tolist())) == sorted(map(tuple, b.tolist()))


@pytest.mark.parametrize(
    ("key", "change", "message"),
    [
        ("det_features", None, r"missing keys \['det_features'\]"),
        ("det_boxes", lambda v: v[:, :3], r"det_boxes must be a numeric array of shape \(any, 4\)"),
        ("det_scores", lambda v: v[:-1], r"det_scores must be a numeric array of shape \(6,\)"),
        ("det_image_index", lambda v: v + 3, r"det_image_index must lie in \[0, 4\)"),
        ("det_image_index", lambda v: v.astype(np.float32), "det_image_index must hold integers"),
        ("gallery_images", lambda v: np.r_[v[:3], ["zz.jpg"]], r"not in tiny's gallery.*zz.jpg"),
        ("gallery_images", lambda v: v[:3], r"missing from gallery_images.*q.jpg"),
        ("gallery_images", lambda v: v.astype(object), "Python objects"),
        ("query_features", lambda v: np.tile(v, (2, 1)), "query_features has 2 rows but tiny has 1"),
        ("det_features", lambda v: v[:, :2], r"det_features must be a numeric array of shape \(6, 3\)"),
        ("det_features", lambda v: 2 * v, "det_features are not L2-normalised.*normalise=True"),
        ("query_context_boxes", lambda v: np.zeros((1, 4)), "give all four or none"),
    ],
)
def test_errors_name_the_problem(setup, tmp_path, key, change, message):
    ds, dets, feats, query_feats, _ = setup
    arrays = file_arrays(ds, dets, feats, query_feats)
    if change is None:
        del arrays[key]
    else:
        arrays[key] = change(arrays.get(key))
    path = tmp_path / "bad.npz"
    write(path, **arrays)
    with pytest.raises(ValueError, match=message) as err:
        load_results(path, ds)
    assert str(path) in str(err.value)


def test_normalise_option_and_missing_context(setup, tmp_path):
    ds, dets, feats, query_feats, _ = setup
    path = tmp_path / "raw.npz"
    save_results(path, ds, dets, [3 * f for f in feats], 2 * query_feats)
    _, got_feats, got_query, _ = load_results(path, ds, normalise=True)
    np.testing.assert_allclose(got_feats[0], feats[0], rtol=1e-6)
    np.testing.assert_allclose(got_query, query_feats, rtol=1e-6)
    with pytest.raises(ValueError, match="cbgm needs the query context keys"):
        score_results_file(ds, path, gallery_size=3, cbgm=True, normalise=True)


def test_save_rejects_misaligned_inputs(setup, tmp_path):
    ds, dets, feats, query_feats, _ = setup
    with pytest.raises(ValueError, match=r"gallery_feats\[0\]: expected features of shape \(2, 3\)"):
        save_results(tmp_path / "r.npz", ds, dets, [feats[0][:1], *feats[1:]], query_feats)
    with pytest.raises(ValueError, match="one row per dataset query"):
        save_results(tmp_path / "r.npz", ds, dets, feats, np.tile(query_feats, (2, 1)))


def test_unreadable_files(setup, tmp_path):
    ds = setup[0]
    with pytest.raises(ValueError, match="no such results file"):
        load_results(tmp_path / "absent.npz", ds)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable .npz archive"):
        load_results(tmp_path / "junk.npz", ds)


def test_detection_metrics_of_a_results_file_by_hand(setup, tmp_path):
    """One GT person per image. Detections by score: 0.95 a miss (in a.jpg, far from the
    person), 0.9 / 0.8 / 0.7 hits in a.jpg, c.jpg, q.jpg; b.jpg has none. Recall 3/4; the
    protocol's AP = sklearn AP (1/2 + 2/3 + 3/4) / 3 times recall 3/4."""
    ds, _, _, query_feats, _ = setup
    box = np.array(QBOX, np.float32)
    dets = [
        np.array([[*box, 0.9], [200, 200, 240, 300, 0.95]], np.float32),
        np.zeros((0, 5), np.float32),
        np.array([[*box, 0.8]], np.float32),
        np.array([[*box, 0.7]], np.float32),
    ]
    feats = [unit_rows(np.random.default_rng(1), len(d)) for d in dets]
    path = tmp_path / "results.npz"
    save_results(path, ds, dets, feats, query_feats)
    result = score_results_file_detection(ds, path)
    assert (result.count_gt, result.count_tp) == (4, 3) and result.recall == pytest.approx(0.75)
    assert result.ap == pytest.approx((1 / 2 + 2 / 3 + 3 / 4) / 3 * 0.75)
    assert score_results_file_detection(ds, path, det_thresh=0.85).count_tp == 1  # only the 0.9 hit is kept


def test_score_command_reports_detection_and_search(tmp_path):
    """Ground-truth boxes as the detections: recall and AP are exactly 1."""
    import json

    from typer.testing import CliRunner

    from personsearch.data.synthetic import make_synthetic
    from personsearch.interfaces.cli import app

    ds = make_synthetic(tmp_path / "data", preset="tiny", seed=3)
    rng = np.random.default_rng(0)
    dets = [np.c_[s.boxes, np.ones(len(s.boxes))].astype(np.float32) for s in ds.gallery]
    save_results(
        tmp_path / "r.npz",
        ds,
        dets,
        [unit_rows(rng, len(d), 8) for d in dets],
        unit_rows(rng, len(ds.queries), 8),
    )
    result = CliRunner().invoke(
        app,
        [
            "score",
            "--dataset",
            str(tmp_path / "data"),
            "--results",
            str(tmp_path / "r.npz"),
            "--gallery-size",
            "50",
            "--json",
            str(tmp_path / "s.json"),
        ],
    )
    assert result.exit_code == 0, result.output
    scored = json.loads((tmp_path / "s.json").read_text())
    assert scored["detection"]["recall"] == 1.0 and scored["detection"]["ap"] == pytest.approx(1.0)
    assert scored["detection"]["count_gt"] == sum(len(s.boxes) for s in ds.gallery) and "mAP" in result.output
