"""Tracking people through videos into sightings, and searching by sighting."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest
from index_testkit import (
    BLUE,
    GREEN,
    RED,
    YELLOW,
    ColourEngine,
    colour_feature,
    draw_scene,
    index_content,
    write_png,
    write_walkers,
)

from personsearch.index import PersonIndex
from personsearch.index.store import SCHEMA_VERSION
from personsearch.index.tracking import TrackerSettings, sightings_of, track


def _unit(v: list[float]) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


def _walk(
    start: tuple[float, float],
    velocity: tuple[float, float],
    frames: range,
    fps: float = 10.0,
    size: tuple[float, float] = (20, 40),
):
    """Boxes of one person walking at ``velocity`` px/frame, in ``frames``."""
    x, y = start
    return [
        (
            f,
            f / fps,
            (
                x + velocity[0] * (f - frames[0]),
                y + velocity[1] * (f - frames[0]),
                x + velocity[0] * (f - frames[0]) + size[0],
                y + velocity[1] * (f - frames[0]) + size[1],
            ),
        )
        for f in frames
    ]


def _detections(people: dict[int, list], features: dict[int, np.ndarray], noise: float = 0.0, seed: int = 0):
    """Flattened (frames, times, boxes, features, true identity) of several people."""
    rng = np.random.default_rng(seed)
    rows = [(f, t, box, pid) for pid, walk in people.items() for f, t, box in walk]
    frames = np.array([r[0] for r in rows])
    times = np.array([r[1] for r in rows])
    boxes = np.array([r[2] for r in rows], dtype=np.float64)
    feats = np.stack([features[r[3]] + noise * rng.standard_normal(len(features[r[3]])) for r in rows])
    feats /= np.linalg.norm(feats, axis=1, keepdims=True)
    return frames, times, boxes, feats, np.array([r[3] for r in rows])


def _same_partition(labels: np.ndarray, truth: np.ndarray) -> bool:
    """Every true identity is one label and every label one identity."""
    pairs = set(zip(labels.tolist(), truth.tolist(), strict=True))
    return len(pairs) == len(set(labels.tolist())) == len(set(truth.tolist()))


def test_people_who_meet_and_turn_back_keep_their_identity() -> None:
    # two people walk towards each other on one line, meet (their boxes overlap), and each turns
    # back: motion says they walked on through each other; their appearance says they turned
    a = _walk((0, 40), (5, 0), range(0, 15)) + _walk((65, 40), (-5, 0), range(15, 30))
    b = _walk((140, 42), (-5, 0), range(0, 15)) + _walk((75, 42), (5, 0), range(15, 30))
    features = {0: _unit([1, 0.3, 0, 0]), 1: _unit([0.3, 1, 0, 0])}  # cosine 0.55: alike, but not the same
    frames, times, boxes, feats, truth = _detections({0: a, 1: b}, features, noise=0.05)
    assert _same_partition(track(frames, times, boxes, feats), truth)
    motion_only = TrackerSettings(iou_weight=1.0, min_appearance=-1.0, min_similarity=0.0)
    assert not _same_partition(track(frames, times, boxes, feats, motion_only), truth)  # swaps them


def test_an_occlusion_shorter_than_the_gap_is_bridged_a_longer_absence_is_a_new_sighting() -> None:
    walk = _walk((0, 40), (3, 0), range(0, 40))
    features = {0: _unit([1, 0.2, 0.1])}
    hidden = [row for row in walk if not 10 <= row[0] < 25]  # behind a pillar for 1.5 s
    frames, times, boxes, feats, _ = _detections({0: hidden}, features)
    assert set(track(frames, times, boxes, feats).tolist()) == {0}
    walk = _walk((0, 40), (1, 0), range(0, 60))
    gone = [row for row in walk if not 10 <= row[0] < 45]  # away for 3.5 s > max_gap_s + stitch_gap_s
    frames, times, boxes, feats, _ = _detections({0: gone}, features)
    labels = track(frames, times, boxes, feats)
    assert labels[frames < 10].tolist() == [0] * 10 and set(labels[frames >= 45].tolist()) == {1}


def test_different_people_in_the_same_place_are_not_linked_and_sparse_sampling_still_links() -> None:
    # one person leaves at frame 9, another in other clothes stands on the same spot from frame 10
    a = _walk((50, 40), (0, 0), range(0, 10))
    b = _walk((50, 40), (0, 0), range(10, 20))
    frames, times, boxes, feats, truth = _detections(
        {0: a, 1: b}, {0: _unit([1, 0, 0]), 1: _unit([0, 1, 0.2])}
    )
    assert _same_partition(track(frames, times, boxes, feats), truth)
    # one frame every 2 s of a person walking 0.4 body heights per second: still one track
    sparse = _walk((0, 40), (0.8, 0), range(0, 200, 20))  # 10 fps, 16 px (0.4 heights) per second
    frames, times, boxes, feats, _ = _detections({0: sparse}, {0: _unit([1, 1, 0])})
    assert set(track(frames, times, boxes, feats).tolist()) == {0}
    assert TrackerSettings().max_gap_s < 2 * 2.0  # linked by min_gap_frames, not by a long max_gap_s


def test_tracks_are_a_function_of_the_detections_not_their_order() -> None:
    people = {i: _walk((10 + 30 * i, 10 * i), (2, 1), range(i, 20 + i)) for i in range(4)}
    features = {i: _unit(np.eye(6)[i] + 0.3) for i in range(4)}
    frames, times, boxes, feats, truth = _detections(people, features, noise=0.05)
    labels = track(frames, times, boxes, feats)
    assert _same_partition(labels, truth)
    order = np.random.default_rng(1).permutation(len(frames))
    shuffled = track(frames[order], times[order], boxes[order], feats[order])
    assert _same_partition(shuffled, truth[order])
    ids = np.arange(100, 100 + len(frames))
    sightings = sightings_of(ids, frames, times, boxes, feats)
    assert sorted(len(s.box_ids) for s in sightings) == [20] * 4
    first = next(s for s in sightings if s.first_frame == 0)
    assert (first.last_frame, first.start_time, first.end_time) == (
        19,
        0.0,
        1.9,
    ) and first.best_box in first.box_ids


# ------------------------------------------------------------------ through the index
WALKERS = [
    (RED, BLUE, 0, 19, 0, 10, 6, 0),  # A: left to right along the top
    (GREEN, YELLOW, 0, 19, 138, 70, -6, 0),  # B: right to left below, crossing A's column
    (RED, BLUE, 50, 59, 0, 40, 4, 0),  # C: dressed as A, back 3 s later: another appearance
]


def _index(tmp_path: Path, **options) -> Path:
    video = write_walkers(tmp_path / "cams" / "hall" / "clip.avi", WALKERS, frames=60)
    write_png(tmp_path / "cams" / "door" / "still.png", draw_scene([(60, 40, RED, BLUE)]))
    with PersonIndex.open(tmp_path / "idx", ColourEngine(), create=True) as index:
        index.add_paths([tmp_path / "cams"], progress=False, **options)
    return video


def test_a_video_indexes_into_one_sighting_per_appearance_and_search_returns_each_once(
    tmp_path: Path,
) -> None:
    _index(tmp_path, batch_size=4)
    with PersonIndex.open(tmp_path / "idx", ColourEngine()) as index:
        assert index.store.summary()["sightings"] == 3
        hits = index.search(colour_feature(RED, BLUE), 10)
        # the still image, and A and C: 3 hits at score 1 where there are 31 boxes of red-over-blue people
        assert [round(h.score, 4) for h in hits[:3]] == [1.0] * 3 and hits[3].score < 0.99
        spans = sorted(
            (h.sighting.first_frame, h.sighting.last_frame, h.sighting.boxes)
            for h in hits[:3]
            if h.sighting is not None
        )
        assert spans == [(0, 19, 20), (50, 59, 10)]
        assert {h.kind for h in hits[:3]} == {"image", "video"}
        assert (
            sum(1 for h in index.search(colour_feature(RED, BLUE), 50, per_frame=True) if h.score > 0.999)
            == 31
        )
        (green,) = [h for h in index.search(colour_feature(GREEN, YELLOW), 3) if h.score > 0.999]
        assert green.sighting is not None and (green.sighting.first_frame, green.sighting.last_frame) == (
            0,
            19,
        )
        # a whole sighting as the query: A's walk finds C and the still image, not itself
        a = next(h.sighting for h in hits if h.sighting is not None and h.sighting.first_frame == 0)
        np.testing.assert_allclose(index.sighting_feature(a.id), colour_feature(RED, BLUE), atol=1e-5)
        others = index.search(index.sighting_feature(a.id), 3, exclude_sightings=[a.id])
        assert (
            all(h.sighting is None or h.sighting.id != a.id for h in others)
            and round(others[1].score, 4) == 1.0
        )


def test_searching_never_writes_an_untracked_video_is_searched_frame_by_frame(tmp_path: Path) -> None:
    _index(tmp_path)
    conn = sqlite3.connect(str(tmp_path / "idx" / "index.sqlite"))  # a run killed before tracking
    conn.execute("UPDATE boxes SET sighting = NULL")
    conn.execute("DELETE FROM sightings")
    conn.execute("UPDATE sources SET tracked = 0")
    conn.commit()
    conn.close()
    before = {f.name: f.read_bytes() for f in (tmp_path / "idx").iterdir() if f.suffix != ".lock"}
    with PersonIndex.open(tmp_path / "idx", ColourEngine(), read_only=True) as index:
        hits = index.search(colour_feature(RED, BLUE), 50)
        assert sum(h.score > 0.999 for h in hits) == 31 and all(
            h.sighting is None for h in hits if h.kind == "video"
        )
        with pytest.raises(PermissionError, match="open read-only"):
            index.set_approximate(True)
        with pytest.raises(PermissionError, match="open read-only"):
            index.add_paths([tmp_path / "cams"], progress=False)
    assert {f.name: f.read_bytes() for f in (tmp_path / "idx").iterdir() if f.suffix != ".lock"} == before
    with PersonIndex.open(tmp_path / "idx") as index:  # opened to write, it repairs the sightings
        assert index.store.summary()["sightings"] == 3


def test_sightings_survive_a_killed_run_and_an_index_from_the_previous_version_is_migrated(
    tmp_path: Path,
) -> None:
    _index(tmp_path / "whole")
    expected = index_content(tmp_path / "whole" / "idx")
    spans = [e[-1] for e in expected if e[-1] != (None, None, None)]
    # A and B, then C
    assert (spans.count((0, 19, 20)), spans.count((50, 59, 10)), len(spans)) == (40, 10, 50)
    # a crash after the video's last commit but before its sightings: the next open repairs it
    conn = sqlite3.connect(str(tmp_path / "whole" / "idx" / "index.sqlite"))
    conn.execute("UPDATE boxes SET sighting = NULL")
    conn.execute("DELETE FROM sightings")
    conn.execute("UPDATE sources SET tracked = 0")
    conn.commit()
    # ... and the previous schema version, as an older personsearch wrote it
    conn.execute("DROP INDEX boxes_by_sighting")
    conn.execute("DROP TABLE sightings")
    conn.execute("ALTER TABLE boxes DROP COLUMN sighting")
    conn.execute("ALTER TABLE sources DROP COLUMN tracked")
    conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with PersonIndex.open(tmp_path / "whole" / "idx") as index:  # read-only use: no engine
        assert index.store.meta("schema_version") == str(SCHEMA_VERSION)
    assert index_content(tmp_path / "whole" / "idx") == expected  # every box kept, the same sightings
    newer = tmp_path / "whole" / "idx" / "index.sqlite"
    conn = sqlite3.connect(str(newer))
    conn.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(Exception, match="schema version '3', this version of personsearch reads 2"):
        PersonIndex.open(tmp_path / "whole" / "idx")
