"""Synthetic benchmark: determinism, protocol invariants, exact round trip through the loaders."""

from __future__ import annotations

import io
import json
import math
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from personsearch.data import load_dataset
from personsearch.data.records import (
    HEIGHT_BUCKETS,
    UNLABELED,
    PersonSearchDataset,
    box_heights,
    height_bucket,
)
from personsearch.data.stats import dataset_statistics
from personsearch.data.synthetic import (
    GENERATOR_VERSION,
    PRESETS,
    build_dataset,
    make_contact_sheet,
    make_synthetic,
    plan_benchmark,
    resolve_config,
)
from personsearch.data.synthetic.drawing import composite
from personsearch.data.synthetic.figures import figure
from personsearch.data.synthetic.generate import default_workers
from personsearch.data.synthetic.identities import Pose, detail_difference
from personsearch.data.synthetic.plan import population, sample_heights
from personsearch.data.synthetic.scenes import render_scene

TINY = PRESETS["tiny"]
# a benchmark small enough to generate twice in a test
MINI = {
    "num_train_ids": 2,
    "num_test_ids": 2,
    "image_width": 160,
    "image_height": 120,
    "min_height": 10,
    "max_height": 100,
}


def assert_same_dataset(a: PersonSearchDataset, b: PersonSearchDataset) -> None:
    """Same scenes (by name), gallery order, queries and protocol galleries, exactly."""
    assert (a.protocol, a.root) == (b.protocol, b.root)
    assert [s.name for s in a.gallery] == [s.name for s in b.gallery]
    for mine, theirs in ((a.train, b.train), (a.gallery, b.gallery)):
        by_name = {s.name: s for s in theirs}
        assert sorted(by_name) == sorted(s.name for s in mine)
        for s in mine:
            t = by_name[s.name]
            assert s.path == t.path and s.cam == t.cam, s.name
            np.testing.assert_array_equal(s.boxes, t.boxes, err_msg=s.name)
            np.testing.assert_array_equal(s.pids, t.pids, err_msg=s.name)
            assert (s.hard is None) == (t.hard is None)
            if s.hard is not None:
                np.testing.assert_array_equal(s.hard, t.hard, err_msg=s.name)
    assert len(a.queries) == len(b.queries)
    for q, r in zip(a.queries, b.queries):
        assert (q.name, q.pid, q.cam) == (r.name, r.pid, r.cam)
        np.testing.assert_array_equal(q.box, r.box)
        assert sorted(q.galleries) == sorted(r.galleries)
        for size, items in q.galleries.items():
            assert [i.name for i in items] == [i.name for i in r.galleries[size]]
            for i, j in zip(items, r.galleries[size]):
                assert (i.box is None) == (j.box is None)
                if i.box is not None:
                    np.testing.assert_array_equal(i.box, j.box)


@pytest.fixture(scope="module")
def cuhk(tmp_path_factory) -> PersonSearchDataset:
    return make_synthetic(tmp_path_factory.mktemp("cuhk") / "bench", "tiny", seed=0)


@pytest.fixture(scope="module")
def prw(tmp_path_factory) -> PersonSearchDataset:
    return make_synthetic(tmp_path_factory.mktemp("prw") / "bench", "tiny", seed=0, layout="prw")


def test_same_seed_same_annotations_other_seed_differs(tmp_path):
    root = tmp_path.resolve()
    for layout in ("cuhk", "prw"):
        first = build_dataset(plan_benchmark(TINY, 3), root, layout)
        assert_same_dataset(first, build_dataset(plan_benchmark(TINY, 3), root, layout))
    other = build_dataset(plan_benchmark(TINY, 4), root, "prw")
    mine, theirs = (np.concatenate([s.boxes for s in ds.train]) for ds in (first, other))
    assert mine.shape != theirs.shape or not np.array_equal(mine, theirs)


def test_tiny_invariants(cuhk):
    plan = plan_benchmark(TINY, 0)
    assert not set(plan.train_ids) & set(plan.test_ids)
    assert not {p.family for p in plan.train_ids} & {p.family for p in plan.test_ids}

    train_pids = np.concatenate([s.pids for s in cuhk.train])
    assert sorted(set(train_pids[train_pids != UNLABELED])) == list(range(1, TINY.num_train_ids + 1))
    for scene in cuhk.train + cuhk.gallery:
        assert len(scene.boxes) >= 1
        b = scene.boxes
        assert np.array_equal(b, np.round(b)), scene.name
        assert (b[:, 0] >= 0).all() and (b[:, 1] >= 0).all(), scene.name
        assert (b[:, 2] <= TINY.image_width).all() and (b[:, 3] <= TINY.image_height).all(), scene.name
        heights = box_heights(b)
        assert ((heights >= TINY.min_height) & (heights <= TINY.max_height)).all(), scene.name
        assert (b[:, 2] > b[:, 0]).all()

    shown_in: dict[int, set[str]] = {}
    for scene in cuhk.gallery:
        for pid in scene.pids[scene.pids != UNLABELED]:
            shown_in.setdefault(int(pid), set()).add(scene.name)
    assert sorted(shown_in) == list(range(1, TINY.num_test_ids + 1))
    assert all(len(names) >= 2 for names in shown_in.values())

    assert [q.pid for q in cuhk.queries] == list(range(1, TINY.num_test_ids + 1))
    by_name = {s.name: s for s in cuhk.gallery}
    for q in cuhk.queries:
        assert q.pid in by_name[q.name].pids
        for size in TINY.gallery_sizes:
            items = q.galleries[size]
            names = [i.name for i in items]
            assert len(items) == size and len(set(names)) == size
            assert q.name not in names
            n_targets = sum(i.box is not None for i in items)
            assert all(i.box is not None for i in items[:n_targets])  # targets first
            assert set(names[:n_targets]) == shown_in[q.pid] - {q.name}
            for item in items[n_targets:]:
                assert q.pid not in by_name[item.name].pids


def test_cuhk_layout_loads_back_identically(cuhk):
    root = cuhk.root
    assert (root / "Image" / "SSM" / cuhk.train[0].name).is_file()
    loaded = load_dataset(root)
    assert_same_dataset(cuhk, loaded)
    info = json.loads((root / "synthetic.json").read_text())
    assert (info["preset"], info["seed"], info["layout"], info["version"]) == (
        "tiny",
        0,
        "cuhk",
        GENERATOR_VERSION,
    )
    assert info["complete"] is True
    assert info["counts"] == json.loads(json.dumps(dataset_statistics(loaded)["splits"]))


def test_prw_layout_loads_back_identically(prw):
    assert_same_dataset(prw, load_dataset(prw.root))
    assert all(re.fullmatch(r"c[1-6]s1_\d{6}\.jpg", s.name) for s in prw.train + prw.gallery)
    train_pids = {int(p) for s in prw.train for p in s.pids if p != UNLABELED}
    test_pids = {int(p) for s in prw.gallery for p in s.pids if p != UNLABELED}
    assert not train_pids & test_pids
    # one query per test identity and camera it appears in, each with another frame to find
    cams_of: dict[int, set[int]] = {}
    for s in prw.gallery:
        for pid in s.pids[s.pids != UNLABELED]:
            cams_of.setdefault(int(pid), set()).add(s.cam)
    assert sorted((q.pid, q.cam) for q in prw.queries) == sorted(
        (p, c) for p, cams in cams_of.items() for c in cams
    )
    for q in prw.queries:
        assert not q.galleries
        assert any(q.pid in s.pids for s in prw.gallery if s.name != q.name)


def test_images_are_the_planned_scenes(cuhk):
    plan = plan_benchmark(TINY, 0)
    by_boxes = {tuple(s.boxes.ravel().tolist()): s for s in cuhk.train + cuhk.gallery}
    for image in plan.images[:2]:
        scene = by_boxes[tuple(float(v) for p in image.scene.people for v in p.box)]
        expected = io.BytesIO()
        Image.fromarray(render_scene(image.scene)).save(expected, format="JPEG", quality=TINY.jpeg_quality)
        assert scene.path.read_bytes() == expected.getvalue()
        with Image.open(scene.path) as im:
            assert im.size == (TINY.image_width, TINY.image_height)


def test_drawing_in_processes_writes_the_same_images_and_records(tmp_path):
    """``workers`` (the CLI and the demo use every CPU) changes nothing but the time taken."""
    root = tmp_path / "bench"
    parallel = make_synthetic(root, "tiny", seed=0, workers=2)
    drawn = {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*.jpg"))}
    serial = make_synthetic(root, "tiny", seed=0, workers=1, overwrite=True)
    assert_same_dataset(parallel, serial)
    assert drawn and drawn == {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*.jpg"))}
    assert 1 <= default_workers() <= 8


def test_contact_sheet_is_a_png_of_lookalike_rows(tmp_path, cuhk):
    assert (cuhk.root / "contact_sheet.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = make_contact_sheet(tmp_path / "sheet.png", seed=0, preset="tiny", families=2, heights=(30, 120))
    with Image.open(out) as im:
        assert im.format == "PNG"
        # 150 px labels + 4 cells (front/back x 2 heights) of 132 + 6 px; header 24 + 4 rows of
        # 240 + 6 px + a 12 px family separator
        assert im.size == (150 + 4 * 138, 24 + 4 * 246 + 12)
    with pytest.raises(ValueError, match="heights"):
        make_contact_sheet(tmp_path / "bad.png", heights=(2,))


def _drawn(identity, view: str, height: int) -> np.ndarray:
    fig = figure(identity, Pose(view, 0.0, 0.0, "none"))
    canvas = np.full((height, height, 3), 128, np.float32)
    composite(canvas, fig.render(height), int(round(height / 2 + fig.xmin * height)), 0)
    return canvas


def _differing_share(a, b, view: str) -> float:
    """Share of a 240x240 cell where two identities drawn 240 px tall visibly differ."""
    return float((np.abs(_drawn(a, view, 240) - _drawn(b, view, 240)).max(axis=2) > 40).mean())


def test_lookalikes_share_the_coarse_look_and_differ_only_in_details():
    train, _ = population(TINY, 0)
    families: dict[int, list] = {}
    for identity in train:
        families.setdefault(identity.family, []).append(identity)
    assert len({members[0].coarse() for members in families.values()}) == len(families)
    pairs = []
    for members in families.values():
        assert len({m.coarse() for m in members}) == 1
        assert all(detail_difference(a, b) >= 3 for i, a in enumerate(members) for b in members[i + 1 :])
        if len(members) >= 2:
            pairs.append(members[:2])
    assert len(pairs) >= 2
    for view in ("front", "back"):
        # visible differences: small but non-zero within a family, larger between families
        same = [_differing_share(a, b, view) for a, b in pairs]
        cross = [
            _differing_share(pairs[i][0], pairs[(i + 1) % len(pairs)][0], view) for i in range(len(pairs))
        ]
        assert min(same) > 0.005 and max(same) < min(cross), (view, same, cross)


def test_heights_follow_the_configured_distribution():
    heights = sample_heights(np.random.default_rng(0), 20000, PRESETS["standard"])
    assert heights.min() >= 20 and heights.max() <= 400
    # log-uniform on [20, 400]: P(h < 60) = ln(3) / ln(20) = 0.3667
    assert abs((heights < 59.5).mean() - math.log(3) / math.log(20)) < 0.015
    uniform = sample_heights(
        np.random.default_rng(0), 20000, resolve_config("standard", height_distribution="uniform")
    )
    assert abs((uniform < 59.5).mean() - 39.5 / 380) < 0.015


def test_queries_span_every_height_bucket():
    config = resolve_config(
        "tiny",
        num_test_ids=40,
        appearances=(3, 4),
        image_width=800,
        image_height=600,
        min_height=20,
        max_height=400,
    )
    queries = build_dataset(plan_benchmark(config, 0), Path("/unused"), "cuhk").queries
    counts = Counter(height_bucket(float(box_heights(q.box)[0])) for q in queries)
    # log-uniform 20..400 px puts 37%, 23%, 23% and 17% of people in the four buckets
    assert all(counts[name] >= 4 for name, _, _ in HEIGHT_BUCKETS), counts


def test_bad_configs_and_folders_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown synthetic preset 'huge'"):
        resolve_config("huge")
    with pytest.raises(TypeError, match="num_train_id.*valid names"):
        resolve_config("tiny", num_train_id=3)
    with pytest.raises(ValueError, match="min_height"):
        resolve_config("tiny", min_height=300)
    with pytest.raises(ValueError, match="gallery_sizes"):
        resolve_config("small", gallery_sizes=(20,))
    with pytest.raises(ValueError, match="layout"):
        make_synthetic(tmp_path / "x", "tiny", layout="market1501")
    with pytest.raises(ValueError, match="unknown people 'clay'"):
        make_synthetic(tmp_path / "x", "tiny", people="clay")
    assert not (tmp_path / "x").exists()


def test_rendered_people_without_the_renderer_fail_before_writing(tmp_path, monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "anny" else find_spec(name, *a)
    )
    fix = r"needs anny( and moderngl)?: pip install 'personsearch\[people3d\]'"
    with pytest.raises(ImportError, match=fix):
        make_synthetic(tmp_path / "x", "tiny", people="3d")
    assert not (tmp_path / "x").exists()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not empty"):
        make_synthetic(tmp_path / "mine", "tiny", overwrite=True, **MINI)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_overwrite_replaces_an_earlier_synthetic_benchmark(tmp_path):
    first = make_synthetic(tmp_path / "b", "tiny", seed=0, **MINI)
    with pytest.raises(FileExistsError):
        make_synthetic(tmp_path / "b", "tiny", seed=1, **MINI)
    second = make_synthetic(tmp_path / "b", "tiny", seed=1, overwrite=True, **MINI)
    assert json.loads((tmp_path / "b" / "synthetic.json").read_text())["seed"] == 1
    names = {s.name for s in second.train + second.gallery}
    assert {p.name for p in (tmp_path / "b" / "Image" / "SSM").iterdir()} == names
    assert_same_dataset(second, load_dataset(tmp_path / "b"))
    assert len(first.queries) == len(second.queries) == 2


def test_regulars_appear_often_and_leave_the_train_images_alone():
    plain = resolve_config("tiny", num_test_ids=8, appearances=(2, 3))
    with_regular = resolve_config(
        "tiny", num_test_ids=8, appearances=(2, 3), regulars=1, regular_appearances=7
    )
    a, b = plan_benchmark(plain, 4), plan_benchmark(with_regular, 4)
    assert repr([i for i in a.images if i.split == "train"]) == repr(
        [i for i in b.images if i.split == "train"]
    )
    seen = Counter(p.pid for i in b.images if i.split == "test" for p in i.scene.people if p.pid != UNLABELED)
    assert seen[0] == 7 and max(n for pid, n in seen.items() if pid != 0) <= 3
    dataset = build_dataset(b, Path("/unused"), "cuhk")
    regular = next(q for q in dataset.queries if q.pid == 1)  # CUHK test pids start at 1
    targets = [g for g in regular.galleries[50] if g.box is not None]
    assert len(targets) == 6  # every other appearance is in the protocol gallery


def test_bad_regular_settings_are_refused():
    with pytest.raises(ValueError, match="regulars"):
        resolve_config("tiny", regulars=7)  # tiny has 6 test identities
    with pytest.raises(ValueError, match="regular_appearances"):
        resolve_config("tiny", regulars=1, regular_appearances=2)
