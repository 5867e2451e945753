"""The persistent person index: building, incremental and crash-safe updates, search and filters, JSON."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from index_testkit import (
    BLUE,
    GREEN,
    RED,
    YELLOW,
    ColourEngine,
    SimulatedKill,
    colour_feature,
    draw_scene,
    index_content,
    write_png,
    write_video,
)

from personsearch.index import (
    IndexBusyError,
    IndexCorruptError,
    ModelMismatchError,
    PersonIndex,
    ann,
    hits_from_json,
    hits_to_json,
    search_index,
)
from personsearch.index.hits import HIT_KEYS
from personsearch.index.sources import Source
from personsearch.index.store import BoxRow, IndexStore, SourceUpdate
from personsearch.interfaces.api import query_from_crop, query_from_scene, query_from_video

TESTS = Path(__file__).parent


def _gallery(root: Path) -> dict[str, Path]:
    """Three scenes in two camera folders; people chosen so cosine scores are 1, 0.75 and 0.5."""
    return {
        "a": write_png(root / "cam1" / "a.png", draw_scene([(10, 10, RED, BLUE), (60, 10, GREEN, YELLOW)])),
        "b": write_png(root / "cam1" / "b.png", draw_scene([(10, 50, RED, GREEN)])),
        "c": write_png(root / "cam2" / "c.png", draw_scene([(100, 20, GREEN, BLUE), (30, 60, RED, BLUE)])),
    }


def _build(directory: Path, paths: list[Path], engine: ColourEngine | None = None, **kwargs: object):
    engine = engine or ColourEngine()
    with PersonIndex.open(directory, engine, create=True) as index:
        return index.add_paths(paths, progress=False, **kwargs)


def test_search_ranks_by_cosine_with_hand_computed_scores(tmp_path: Path) -> None:
    files = _gallery(tmp_path / "g")
    summary = _build(tmp_path / "idx", [tmp_path / "g"], batch_size=2)
    assert (summary.sources_seen, summary.sources_indexed, summary.people_added, summary.sources_skipped) == (
        3,
        3,
        5,
        0,
    )
    query = colour_feature(RED, BLUE)
    with PersonIndex.open(tmp_path / "idx") as index:
        assert index.count() == 5
        hits = index.search(query, top_k=5)
        # Per-channel 4-bin histograms of half/half people.
        # red/blue: R=(.5,0,0,.5) G=(1,0,0,0) B=(.5,0,0,.5), |f|^2 = 2.
        # red/green and green/blue agree with it on two channels: dot 1.5 / (sqrt 2 * sqrt 2) = 0.75.
        # green/yellow: R=(.5,0,0,.5) G=(0,0,0,1) B=(1,0,0,0), |f|^2 = 2.5: dot 1 / sqrt(5) = 0.44721.
        assert [round(h.score, 5) for h in hits] == [1.0, 1.0, 0.75, 0.75, 0.44721]
        assert [(Path(h.source).name, h.box) for h in hits[:2]] == [
            ("a.png", (10.0, 10.0, 30.0, 50.0)),
            ("c.png", (30.0, 60.0, 50.0, 100.0)),
        ]
        assert [h.rank for h in hits] == [1, 2, 3, 4, 5]
        assert (hits[0].kind, hits[0].frame, hits[0].time, hits[0].camera, hits[0].detection_score) == (
            "image",
            None,
            None,
            "cam1",
            pytest.approx(0.9),
        )
        assert hits[0].thumbnail().shape == (40, 20, 3)  # thumbnails keep small people at full size
        assert np.abs(hits[0].thumbnail()[5, 5].astype(int) - RED).max() < 20
        np.testing.assert_allclose(index.feature(hits[0].box_id), query, atol=1e-6)
        # filters: substring, glob, camera; top_k
        assert {Path(h.source).name for h in index.search(query, 10, source="cam2")} == {"c.png"}
        assert {Path(h.source).name for h in index.search(query, 10, source="*/cam1/[ab].png")} == {
            "a.png",
            "b.png",
        }
        assert [round(h.score, 5) for h in index.search(query, 10, camera="cam1")] == [1.0, 0.75, 0.44721]
        assert (
            len(index.search(query, 10, camera=["cam1", "cam2"])) == 5
            and index.search(query, 10, camera="cam9") == []
        )
        assert len(index.search(query, 2)) == 2
        assert index.search(query, 10, time_range=(0, 100)) == []  # images have no time
    one_off = search_index(tmp_path / "idx", query, 3)
    assert [h.score for h in one_off] == [h.score for h in hits[:3]] and one_off[0].source == str(files["a"])


def test_json_form_has_exact_keys_and_round_trips(tmp_path: Path) -> None:
    _gallery(tmp_path / "g")
    _build(tmp_path / "idx", [tmp_path / "g"])
    engine = ColourEngine()
    with PersonIndex.open(tmp_path / "idx", engine) as index:
        query = query_from_scene(engine, tmp_path / "g" / "cam1" / "b.png")  # one person: no box needed
        hits = index.search(query.feature, 3)
    document = json.loads(json.dumps(hits_to_json(hits, query=query)))
    assert list(document) == ["schema", "schema_version", "query", "ranking", "hits"]
    assert (document["schema"], document["schema_version"]) == ("personsearch.search-results", 2)
    assert document["ranking"] == "cosine"
    assert hits_to_json(hits, query=query, reranked=True)["ranking"] == "k-reciprocal"
    assert document["query"] == {
        "source": str(tmp_path / "g" / "cam1" / "b.png"),
        "frame": None,
        "box": [10.0, 50.0, 30.0, 90.0],
        "note": None,
    }
    assert HIT_KEYS == (
        "rank",
        "score",
        "box",
        "detection_score",
        "source",
        "kind",
        "frame",
        "time",
        "camera",
        "box_id",
        "sighting",
    )
    assert all(hit["sighting"] is None for hit in document["hits"])  # images: one-frame appearances
    assert all(list(hit) == list(HIT_KEYS) for hit in document["hits"])
    assert document["hits"][0]["score"] == 1.0 and document["hits"][0]["box"] == [10.0, 50.0, 30.0, 90.0]
    back = hits_from_json(document)
    assert [(h.rank, h.source, h.box, h.frame, h.camera, h.box_id) for h in back] == [
        (h.rank, h.source, h.box, h.frame, h.camera, h.box_id) for h in hits
    ]
    with_thumbs = hits_to_json(hits, include_thumbnails=True)
    assert list(with_thumbs["hits"][0]) == [*HIT_KEYS, "thumbnail_jpeg_base64"]
    assert hits_from_json(with_thumbs)[0].thumbnail_jpeg == hits[0].thumbnail_jpeg
    with pytest.raises(ValueError, match="schema_version 3; this version of personsearch reads 1 to 2"):
        hits_from_json({**document, "schema_version": 3})
    version_1 = {
        **document,
        "schema_version": 1,
        "hits": [{k: v for k, v in hit.items() if k != "sighting"} for hit in document["hits"]],
    }
    # older documents still read
    assert [h.box_id for h in hits_from_json(version_1)] == [h.box_id for h in hits]
    with pytest.raises(ValueError, match=r"hit 0 lacks keys \['camera'\]"):
        hits_from_json(
            {**document, "hits": [{k: v for k, v in document["hits"][0].items() if k != "camera"}]}
        )


def test_incremental_runs_skip_unchanged_add_new_and_replace_modified(tmp_path: Path) -> None:
    files = _gallery(tmp_path / "g")
    _build(tmp_path / "idx", [tmp_path / "g"])
    engine = ColourEngine()
    with PersonIndex.open(tmp_path / "idx", engine) as index:
        # green/yellow: dot 2.5 / (sqrt 3 * sqrt 2.5)
        assert round(index.search(colour_feature(YELLOW, YELLOW), 1)[0].score, 5) == round(
            np.sqrt(2.5 / 3), 5
        )
        again = index.add_paths([tmp_path / "g"], progress=False)
        assert (
            again.sources_unchanged,
            again.sources_indexed,
            again.people_added,
            engine.images_detected,
        ) == (3, 0, 0, 0)
        write_png(tmp_path / "g" / "cam2" / "d.png", draw_scene([(5, 5, YELLOW, YELLOW)]))
        added = index.add_paths([tmp_path / "g"], progress=False)
        assert (
            added.sources_unchanged,
            added.sources_indexed,
            added.people_added,
            engine.images_detected,
        ) == (3, 1, 1, 1)
        # an open index sees new rows
        assert Path(index.search(colour_feature(YELLOW, YELLOW), 1)[0].source).name == "d.png"
        # b.png changes: its red/green person is replaced by a yellow/blue one
        write_png(files["b"], draw_scene([(70, 30, YELLOW, BLUE), (120, 70, GREEN, GREEN)]))
        changed = index.add_paths([tmp_path / "g"], progress=False)
        assert (changed.sources_replaced, changed.sources_indexed, changed.people_added) == (1, 1, 2)
        assert index.count() == 5 - 1 + 1 + 2
        b_hits = index.search(colour_feature(RED, GREEN), 10, source="b.png")
        assert sorted(h.box for h in b_hits) == [(70.0, 30.0, 90.0, 70.0), (120.0, 70.0, 140.0, 110.0)]
        top = index.search(colour_feature(YELLOW, BLUE), 1)[0]
        assert (Path(top.source).name, round(top.score, 5)) == ("b.png", 1.0)
        assert all(
            h.box != (10.0, 50.0, 30.0, 90.0) or Path(h.source).name != "b.png"
            for h in index.search(colour_feature(RED, GREEN), 20)
        )
        # d.png is overwritten with garbage: skipped, and its old person no longer found
        (tmp_path / "g" / "cam2" / "d.png").write_bytes(b"garbage")
        broken = index.add_paths([tmp_path / "g"], progress=False)
        assert (broken.sources_skipped, broken.sources_replaced, index.count()) == (1, 1, 6)
        assert all(Path(h.source).name != "d.png" for h in index.search(colour_feature(YELLOW, YELLOW), 10))


def test_corrupt_and_oversized_inputs_are_skipped_and_counted(tmp_path: Path) -> None:
    _gallery(tmp_path / "g")
    (tmp_path / "g" / "cam1" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (tmp_path / "g" / "cam1" / "broken.avi").write_bytes(b"RIFF" + bytes(200))
    write_png(tmp_path / "g" / "cam2" / "huge.png", np.zeros((200, 300, 3), np.uint8))
    summary = _build(tmp_path / "idx", [tmp_path / "g", tmp_path / "missing.png"], max_pixels=160 * 120)
    assert (summary.sources_seen, summary.sources_indexed, summary.people_added) == (6, 3, 5)
    reasons = {Path(s.path).name: s.reason for s in summary.skipped}
    assert set(reasons) == {"broken.jpg", "broken.avi", "huge.png", "missing.png"}
    assert "not a readable image" in reasons["broken.jpg"]
    assert "OpenCV cannot open this video" in reasons["broken.avi"]
    assert "300x200 = 60,000 pixels, over the limit of 19,200" in reasons["huge.png"]
    assert reasons["missing.png"] == "no such file or folder"
    assert summary.to_json()["sources_skipped"] == 4


def test_model_mismatch_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    _build(tmp_path / "idx", [])
    with pytest.raises(ModelMismatchError) as err:
        PersonIndex.open(tmp_path / "idx", ColourEngine(model_id="other-model"))
    message = str(err.value)
    assert "built with model 'colour-histogram-v1' (12-d features)" in message
    assert "the model in use is 'other-model' (12-d)" in message and "--index NEW_DIR" in message
    with PersonIndex.open(tmp_path / "idx") as index:
        with pytest.raises(ValueError, match="query feature has 5 dimensions"):
            index.search(np.ones(5, np.float32))
        with pytest.raises(ValueError, match="needs an engine"):
            index.add_paths([tmp_path])
    with pytest.raises(FileNotFoundError, match="no person index at"):
        PersonIndex.open(tmp_path / "elsewhere")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "index.sqlite").write_bytes(b"not a database at all" * 100)
    with pytest.raises(IndexCorruptError, match=r"junk/index\.sqlite: not a personsearch index database"):
        PersonIndex.open(tmp_path / "junk")


def test_video_frames_are_indexed_with_stride_times_and_time_filter(tmp_path: Path) -> None:
    video = write_video(tmp_path / "cams" / "door" / "clip.avi", frames=10, fps=10.0)
    summary = _build(tmp_path / "idx", [video], stride=3, batch_size=3)
    assert (summary.frames_processed, summary.people_added) == (4, 4)
    engine = ColourEngine()
    with PersonIndex.open(tmp_path / "idx", engine) as index:
        hits = index.search(colour_feature(RED, BLUE), 10, per_frame=True)
        assert sorted((h.frame, h.time, h.kind, h.camera) for h in hits) == [
            (f, f / 10, "video", "door") for f in (0, 3, 6, 9)
        ]
        frame6 = next(h for h in hits if h.frame == 6)
        assert frame6.box[0] == pytest.approx(10 + 4 * 6, abs=2) and frame6.score > 0.95
        assert sorted(
            h.frame
            for h in index.search(colour_feature(RED, BLUE), 10, time_range=(0.25, 0.6), per_frame=True)
        ) == [3, 6]
        assert sorted(
            h.frame
            for h in index.search(colour_feature(RED, BLUE), 10, time_range=(None, 0.0), per_frame=True)
        ) == [0]
        # by default one hit per appearance: the person's walk through the clip is one sighting
        (walk,) = index.search(colour_feature(RED, BLUE), 10)
        assert walk.sighting is not None and all(h.sighting == walk.sighting for h in hits)
        assert (walk.sighting.first_frame, walk.sighting.last_frame, walk.sighting.boxes) == (0, 9, 4)
        assert (walk.sighting.start_time, walk.sighting.end_time) == (0.0, 0.9)
        assert list(walk.sighting.sample_boxes) == sorted(h.box_id for h in hits)
        assert walk.score == max(h.score for h in hits) and walk.box_id in {h.box_id for h in hits}
        (later,) = index.search(colour_feature(RED, BLUE), 10, time_range=(0.25, 0.6))
        assert later.sighting == walk.sighting and later.frame in (3, 6)  # the best frame within the filter
        query = query_from_video(engine, video, 6)
        assert (query.frame, query.source, query.box) == (6, str(video), frame6.box)
        np.testing.assert_allclose(query.feature, index.feature(frame6.box_id), atol=1e-6)
        denser = index.add_paths([video], fps=5.0, progress=False)  # complete videos are not re-read
        assert (denser.sources_unchanged, denser.people_added) == (1, 0)


def test_the_row_table_reads_a_large_index_in_chunks_to_the_same_arrays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The filters' per-row arrays (source, time, sighting) are read from SQLite a chunk at a
    time, so a ten-million-box index never holds them as Python lists: chunks of 2 rows give the
    arrays one read gives."""
    from personsearch.index import person_index
    from personsearch.index.person_index import RowTable

    write_video(tmp_path / "cams" / "door" / "clip.avi", frames=10, fps=10.0)
    write_png(
        tmp_path / "cams" / "hall" / "a.png", draw_scene([(10, 20, RED, BLUE), (60, 30, GREEN, YELLOW)])
    )
    _build(tmp_path / "idx", [tmp_path / "cams"], stride=2, batch_size=3)
    with PersonIndex.open(tmp_path / "idx", ColourEngine()) as index:
        whole = RowTable(index.store)
        whole.refresh()
        monkeypatch.setattr(person_index, "ROWS_PER_READ", 2)
        chunked = RowTable(index.store)
        chunked.refresh()
        monkeypatch.setattr(
            index.store, "sighting_rows", lambda after, chunk=2, f=index.store.sighting_rows: f(after, 2)
        )
        by_two = RowTable(index.store)
        by_two.refresh()
    assert whole.rows >= 7 and (whole.sighting_of >= 0).sum() >= 5 and np.isnan(whole.time_of).sum() == 2
    for table in (chunked, by_two):
        np.testing.assert_array_equal(table.source_of, whole.source_of)
        np.testing.assert_array_equal(table.time_of, whole.time_of)
        np.testing.assert_array_equal(table.sighting_of, whole.sighting_of)
        assert table.last_sighting == whole.last_sighting and table.sources == whole.sources


def test_resume_after_a_crash_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    _gallery(tmp_path / "g")
    write_video(tmp_path / "g" / "cam3" / "walk.avi", frames=9)
    _build(tmp_path / "whole", [tmp_path / "g"], batch_size=2)
    expected = index_content(tmp_path / "whole")
    assert len(expected) == 5 + 9
    # Batches of 2 frames: a.png+b.png, c.png+frame 0, frames 1-2, ... the kill lands mid-video.
    with pytest.raises(SimulatedKill):
        _build(tmp_path / "resumed", [tmp_path / "g"], ColourEngine(kill_on_detect_call=4), batch_size=2)
    partial = index_content(tmp_path / "resumed")
    assert {e[-1] for e in expected if e[0].endswith("walk.avi")} == {(0, 8, 9)}  # the walk is one sighting
    assert 0 < len(partial) < len(expected) and {p[:-1] for p in partial} <= {e[:-1] for e in expected}
    # tracked only once complete
    assert {p[-1] for p in partial if p[0].endswith("walk.avi")} == {(None, None, None)}
    engine = ColourEngine()
    summary = _build(tmp_path / "resumed", [tmp_path / "g"], engine, batch_size=2)
    # 3 batches committed (a+b, c+frame 0, frames 1-2): the images are done, the video resumes at frame 3
    assert len(partial) == 2 + 1 + 2 + 3
    assert (summary.sources_unchanged, summary.sources_indexed, engine.images_detected) == (3, 1, 6)
    assert index_content(tmp_path / "resumed") == expected


def test_hard_kill_between_vector_write_and_commit_leaves_a_consistent_index(tmp_path: Path) -> None:
    _gallery(tmp_path / "g")
    _build(tmp_path / "whole", [tmp_path / "g"], batch_size=1)
    script = textwrap.dedent(
        f"""
        import os, sys
        sys.path.insert(0, {str(TESTS)!r})
        from index_testkit import ColourEngine
        from personsearch.index import PersonIndex
        from personsearch.index.store import IndexStore
        original = IndexStore._append_vectors
        calls = []
        def append_then_die(self, start, vectors):
            original(self, start, vectors)
            calls.append(1)
            if len(calls) == 2:
                os._exit(9)  # vectors of the 2nd image are on disk, its transaction never commits
        IndexStore._append_vectors = append_then_die
        index = PersonIndex.open({str(tmp_path / "idx")!r}, ColourEngine(), create=True)
        index.add_paths([{str(tmp_path / "g")!r}], batch_size=1, progress=False)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 9, result.stderr
    vectors = tmp_path / "idx" / "vectors.f32"
    assert vectors.stat().st_size == (2 + 1) * 12 * 4  # a.png's 2 rows committed + b.png's 1 uncommitted
    with PersonIndex.open(tmp_path / "idx") as reader:
        assert reader.count() == 2 and len(reader.search(colour_feature(RED, BLUE), 10)) == 2
    _build(tmp_path / "idx", [])  # a writer opening the index drops the uncommitted row
    assert vectors.stat().st_size == 2 * 12 * 4
    summary = _build(tmp_path / "idx", [tmp_path / "g"], batch_size=1)
    assert (summary.sources_unchanged, summary.sources_indexed, summary.people_added) == (1, 2, 3)
    assert vectors.stat().st_size == 5 * 12 * 4
    assert index_content(tmp_path / "idx") == index_content(tmp_path / "whole")


def test_one_writer_at_a_time(tmp_path: Path) -> None:
    _build(tmp_path / "idx", [])
    first = IndexStore.open(tmp_path / "idx")
    first.acquire_writer()
    try:
        with (
            PersonIndex.open(tmp_path / "idx", ColourEngine()) as second,
            pytest.raises(IndexBusyError, match="another process is indexing into"),
        ):
            second.add_paths([tmp_path], progress=False)
    finally:
        first.close()


def test_query_helpers_need_one_person_or_a_box(tmp_path: Path) -> None:
    files = _gallery(tmp_path / "g")
    engine = ColourEngine()
    with pytest.raises(
        ValueError,
        match=(
            r"2 people detected, choose one with a query box x1,y1,x2,y2: "
            r"10,10,30,50 \(score 0\.90\); 60,10,80,50"
        ),
    ):
        query_from_scene(engine, files["a"])
    chosen = query_from_scene(engine, files["a"], box=(60, 10, 80, 50))
    np.testing.assert_allclose(chosen.feature, colour_feature(GREEN, YELLOW), atol=1e-6)
    assert chosen.crop.shape == (40, 20, 3) and chosen.box == (60.0, 10.0, 80.0, 50.0)
    with pytest.raises(ValueError, match="has no area inside the 160x120 image"):
        query_from_scene(engine, files["a"], box=(500, 500, 600, 600))
    crop = query_from_crop(engine, draw_scene([(0, 0, RED, BLUE)], size=(40, 20)))
    np.testing.assert_allclose(crop.feature, colour_feature(RED, BLUE), atol=1e-6)
    with pytest.raises(ValueError, match="no person detected"):
        query_from_scene(engine, np.zeros((50, 50, 3), np.uint8))
    assert chosen.note is None


def test_a_person_shaped_query_image_without_a_box_is_taken_whole(tmp_path: Path) -> None:
    """A crop a user saved from somewhere is searched as the person, with a note saying so; a
    scene still asks for a box, and a tall image with two people in it is a scene."""
    engine = ColourEngine()
    # a tight crop: the detector sees one blob that fills it
    tight = write_png(tmp_path / "tight.png", draw_scene([(0, 0, RED, BLUE)], size=(40, 20)))
    query = query_from_scene(engine, tight)
    assert (
        query.box == (0.0, 0.0, 20.0, 40.0)
        and query.note
        and "taken whole" in query.note
        and "tight.png" in query.note
    )
    np.testing.assert_allclose(query.feature, query_from_crop(engine, tight).feature, atol=1e-6)
    assert hits_to_json([], query=query)["query"]["note"] == query.note
    # a dark crop in which the detector finds no one: still the person the user cut out
    dark = np.full((80, 32, 3), 30, np.uint8)
    assert query_from_scene(engine, dark).box == (0.0, 0.0, 32.0, 80.0)
    # person-shaped, but one small person in it: a scene with one person, whose box is used
    small = draw_scene([(5, 5, RED, BLUE)], size=(160, 60))
    query = query_from_scene(engine, small)
    assert query.box == (5.0, 5.0, 25.0, 45.0) and query.note is None
    # person-shaped with two people: a scene, so the user must choose
    with pytest.raises(ValueError, match="2 people detected"):
        query_from_scene(engine, draw_scene([(2, 5, RED, BLUE), (2, 90, GREEN, YELLOW)], size=(160, 60)))
    # a wide scene with nobody detected still asks for a box
    with pytest.raises(ValueError, match="no person detected"):
        query_from_scene(engine, np.zeros((40, 120, 3), np.uint8))


def test_an_index_is_never_created_in_a_model_bundle(tmp_path: Path) -> None:
    """`adapt --out X` then `reembed --out X` (or `index --index X`) would mix an index into the
    model's folder: refused before anything is written."""
    bundle = tmp_path / "adapted"
    bundle.mkdir()
    (bundle / "reid.json").write_text("{}")
    with pytest.raises(FileExistsError, match="holds a model bundle"):
        IndexStore.create(bundle, "some-model", 8)
    assert sorted(p.name for p in bundle.iterdir()) == ["reid.json"]


def _store_with_vectors(directory: Path, vectors: np.ndarray, cameras: list[str]) -> None:
    """An index holding the given unit vectors directly (one image source per camera)."""
    store = IndexStore.create(directory, "random-model", vectors.shape[1])
    store.acquire_writer()
    sources = [Source(Path(f"/data/{cam}/img.png"), "image", 1, 1, cam) for cam in cameras]
    rows = [
        BoxRow(sources[i % len(sources)], None, None, np.array([0, 0, 1, 1]), 1.0, b"")
        for i in range(len(vectors))
    ]
    store.commit_batch(rows, vectors, [SourceUpdate(s, 1, True) for s in sources])
    store.close()


def test_approximate_ivf_search_and_selector_filters_agree_with_exact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(ann.MIN_IVF_ROWS, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    _store_with_vectors(tmp_path / "idx", vectors, ["north", "south"])
    queries = vectors[[3, 100, 2001]]
    monkeypatch.setattr(ann, "EXACT_SUBSET_ROWS", 0)  # force faiss + IDSelector for filtered searches
    with PersonIndex.open(tmp_path / "idx") as index:
        for q in queries:
            exact = index.search(q, 5)
            brute = np.argsort(-(vectors @ q), kind="stable")[:5]
            assert [h.box_id for h in exact] == brute.tolist()
            south = index.search(q, 5, camera="south")
            odd = np.flatnonzero(np.arange(len(vectors)) % 2 == 1)
            assert [h.box_id for h in south] == odd[
                np.argsort(-(vectors[odd] @ q), kind="stable")[:5]
            ].tolist()
        index.set_approximate(True)
        assert (tmp_path / "idx" / "ivf.faiss").is_file() and index.store.meta("ivf_rows") == str(
            len(vectors)
        )
        for q in queries:
            nlist = ann.default_nlist(len(vectors))
            full_probe = index.search(q, 5, nprobe=nlist)  # probing every list is exact
            assert [h.box_id for h in full_probe] == [h.box_id for h in index.search(q, 5, approximate=False)]
            assert index.search(q, 1)[0].box_id == [h.box_id for h in full_probe][0]
            assert all(h.camera == "north" for h in index.search(q, 5, camera="north", nprobe=nlist))
    with PersonIndex.open(tmp_path / "idx") as reopened:  # the saved IVF is reused
        assert reopened.approximate_default() and reopened.search(queries[0], 1)[0].box_id == 3


def _timed_store(directory: Path, vectors: np.ndarray) -> list[tuple[str, float]]:
    """An index of video boxes over three cameras, row i at time i/10 s in camera i % 3."""
    store = IndexStore.create(directory, "random-model", vectors.shape[1])
    store.acquire_writer()
    cameras = ["north", "south", "east"]
    sources = [Source(Path(f"/data/{cam}/clip.mp4"), "video", 1, 1, cam) for cam in cameras]
    rows = [BoxRow(sources[i % 3], i, i / 10, np.array([0, 0, 1, 1]), 1.0, b"") for i in range(len(vectors))]
    store.commit_batch(rows, vectors, [SourceUpdate(s, len(vectors), True) for s in sources])
    store.close()
    return [(cameras[i % 3], i / 10) for i in range(len(vectors))]


def test_compact_pq_search_reranks_exactly_and_keeps_every_filter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(2 * ann.MIN_IVF_ROWS, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    meta = _timed_store(tmp_path / "idx", vectors)
    with PersonIndex.open(tmp_path / "idx") as index:
        index.set_approximate(True, "ivfpq")
        assert index.approximate_kind() == "ivfpq" and (tmp_path / "idx" / "ivfpq.faiss").is_file()
        assert ann.pq_bytes(32) == 4 and ann.pq_bytes(768) == 96 and ann.pq_bytes(2048) == 256
        for q_row in (5, 777, 6001):
            q = vectors[q_row]
            top = index.search(q, 10)
            # re-ranked with exact features
            assert top[0].box_id == q_row and top[0].score == pytest.approx(1.0, abs=1e-5)
            exact_scores = vectors[[h.box_id for h in top]] @ q
            assert [h.score for h in top] == pytest.approx(exact_scores.tolist(), abs=1e-5)
            for use_selector in (False, True):
                monkeypatch.setattr(ann, "EXACT_SUBSET_ROWS", 0 if use_selector else 4096)
                for filters, keep in (
                    ({"camera": "south"}, lambda cam, t: cam == "south"),
                    ({"time_range": (100.0, 130.0)}, lambda cam, t: 100.0 <= t <= 130.0),
                    (
                        {"time_range": (400.0, 400.25), "camera": ["north", "east"]},
                        lambda cam, t: 400.0 <= t <= 400.25 and cam != "south",
                    ),
                    ({"source": "*/east/*"}, lambda cam, t: cam == "east"),
                ):
                    hits = index.search(q, 10, **filters)
                    allowed = [i for i, (cam, t) in enumerate(meta) if keep(cam, t)]
                    assert all(h.box_id in set(allowed) for h in hits), filters
                    assert len(hits) == min(10, len(allowed)), (filters, len(hits), len(allowed))
        # a filter that leaves fewer rows than k returns all of them, whatever the probes saw
        few = index.search(vectors[0], 10, time_range=(0.0, 0.25), nprobe=1)
        assert sorted(h.box_id for h in few) == [0, 1, 2]
    with PersonIndex.open(tmp_path / "idx") as reopened:
        assert (
            reopened.stats()["approximate_kind"] == "ivfpq"
            and reopened.search(vectors[777], 1)[0].box_id == 777
        )


def test_auto_kind_and_indexes_too_big_for_an_exact_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert (
        ann.approximate_kind("auto", ann.COMPACT_MIN_ROWS - 1) == "ivf"
        and ann.approximate_kind(None, ann.COMPACT_MIN_ROWS) == "ivfpq"
    )
    with pytest.raises(ValueError, match="choose auto, ivf, ivfpq"):
        ann.approximate_kind("hnsw", 10)
    rng = np.random.default_rng(2)
    vectors = rng.normal(size=(ann.MIN_IVF_ROWS, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    _timed_store(tmp_path / "idx", vectors)
    monkeypatch.setattr(ann, "EXACT_MEMORY_BYTES", 1000)  # pretend the vectors do not fit in memory
    with PersonIndex.open(tmp_path / "idx") as index:
        assert index.approximate_default()  # too big for an exact copy: approximate unless asked
        exact = index.search(vectors[9], 5, approximate=False, camera="north")  # streamed from the file
        north = np.arange(0, len(vectors), 3)
        assert [h.box_id for h in exact] == north[
            np.argsort(-(vectors[north] @ vectors[9]), kind="stable")[:5]
        ].tolist()
        assert index._vectors._flat is None  # no in-memory copy was made


def test_a_frame_number_needs_a_video_path() -> None:
    from personsearch.interfaces.api import PersonSearch

    with pytest.raises(ValueError, match="frame= picks a frame of a video file"):
        PersonSearch(ColourEngine()).query(draw_scene([(10, 10, RED, BLUE)]), frame=3)  # type: ignore[arg-type]


class _CoarseColours(ColourEngine):
    """Another re-id model on the same detector: squared colour histograms (as an adapted
    network changes features, not boxes); ``kill_on_embed``: die at that embed call."""

    def __init__(self, kill_on_embed: int | None = None) -> None:
        super().__init__(model_id="colour-squared-v2")
        self.kill_on_embed, self.embed_calls = kill_on_embed, 0

    def embed(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        self.embed_calls += 1
        if self.kill_on_embed is not None and self.embed_calls >= self.kill_on_embed:
            raise SimulatedKill(f"killed at embed call {self.embed_calls}")
        squared = super().embed(image, boxes) ** 2
        return squared / np.linalg.norm(squared, axis=1, keepdims=True)


def test_reembedding_an_index_gives_what_indexing_with_the_new_model_gives(tmp_path: Path) -> None:
    """After adapting, an index takes the new re-id features without a detection pass: the same
    boxes, scores and thumbnails, the new model's features and sightings, exactly what indexing
    from scratch with the new model stores; a kill part-way resumes; the old index is untouched
    and each index refuses the other's model."""
    from personsearch.index.reembed import reembed_index

    footage = tmp_path / "footage"
    for i in range(5):
        write_png(
            footage / "cam1" / f"{i}.png",
            draw_scene([(10 + 9 * i, 20, RED, BLUE), (90, 50, GREEN, YELLOW)][: 1 + i % 2]),
        )
    write_video(footage / "cam2" / "walk.avi", frames=12)
    with PersonIndex.open(tmp_path / "old", ColourEngine(), create=True) as index:
        index.add_paths([footage], progress=False, batch_size=3)
    before = index_content(tmp_path / "old")
    with PersonIndex.open(tmp_path / "scratch", _CoarseColours(), create=True) as index:
        index.add_paths([footage], progress=False, batch_size=3)
    expected = index_content(tmp_path / "scratch")
    assert [row[3] for row in expected] == [row[3] for row in before] and [row[5] for row in expected] != [
        row[5] for row in before
    ]

    killer = _CoarseColours(kill_on_embed=4)
    target = PersonIndex.open(tmp_path / "new", killer, create=True)
    target.store.acquire_writer()
    with pytest.raises(SimulatedKill):
        reembed_index(tmp_path / "old", target.store, killer, batch_size=2)
    target.close()
    partial = index_content(tmp_path / "new")
    assert 0 < len(partial) < len(expected)

    engine = _CoarseColours()
    with PersonIndex.open(tmp_path / "new", engine) as index:
        index.store.acquire_writer()
        summary = reembed_index(tmp_path / "old", index.store, engine, batch_size=2)
        index.store.release_writer()
        assert engine.detect_calls == 0  # no detection pass
        assert summary.sources_unchanged > 0 and summary.people_added == len(expected) - len(partial)
    assert index_content(tmp_path / "new") == expected
    assert index_content(tmp_path / "old") == before
    with pytest.raises(ModelMismatchError):
        PersonIndex.open(tmp_path / "new", ColourEngine())
    with pytest.raises(ValueError, match="nothing to re-embed"):
        reembed_index(tmp_path / "old", IndexStore.open(tmp_path / "old"), ColourEngine())


@pytest.mark.parametrize("approximate", [False, True])
def test_grouped_search_gives_the_best_row_of_each_of_the_best_groups(
    tmp_path: Path, approximate: bool
) -> None:
    """A tracked person is tens of near-identical rows: searching by group (sighting) returns one
    row per group, the group's best, for the k best groups, the same groups exact search ranks
    first (all of them when exact; IVF-PQ, whose exact re-scoring sees only each group's best
    few candidates, at least 9 of 10)."""
    from personsearch.index.ann import VectorSearch

    rng = np.random.default_rng(3)
    groups = np.repeat(np.arange(200), 41)  # 8,200 rows: 200 people x 41 frames
    centres = rng.normal(size=(200, 32))
    vectors = (centres[groups] + 0.15 * rng.normal(size=(len(groups), 32))).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    _timed_store(tmp_path / "idx", vectors)
    store = IndexStore.open(tmp_path / "idx")
    try:
        search = VectorSearch(store, persist=False)
        if approximate:
            search.build("ivfpq", len(vectors))
        for q_row in (7, 4000, 8100):
            query = vectors[q_row] + 0.3 * rng.normal(size=32).astype(np.float32)
            query /= np.linalg.norm(query)
            found = search.search(
                query, 10, len(vectors), approximate=approximate, kind="ivfpq", groups=groups
            )
            scores = vectors @ query
            best_of_group = np.array([scores[groups == g].max() for g in range(200)])
            truth = np.argsort(-best_of_group)[:10]
            assert len(set(groups[found.ids].tolist())) == len(found.ids) == 10
            overlap = len(set(groups[found.ids].tolist()) & set(truth.tolist()))
            assert overlap == 10 if not approximate else overlap >= 9, (q_row, overlap)
            if not approximate:  # each group's best row, best first
                assert groups[found.ids].tolist() == truth.tolist()
                np.testing.assert_allclose(found.scores, best_of_group[truth], rtol=1e-5)
    finally:
        store.close()


def test_vector_rows_reads_exactly_the_rows_asked_without_a_map(tmp_path: Path) -> None:
    """Re-scoring reads its candidates' rows with pread: the same values as the memory map, any
    order, and an id past the committed rows is refused."""
    rng = np.random.default_rng(5)
    vectors = rng.normal(size=(50, 8)).astype(np.float32)
    _timed_store(tmp_path / "idx", vectors)
    store = IndexStore.open(tmp_path / "idx")
    try:
        ids = np.array([49, 0, 17, 17, 3])
        np.testing.assert_array_equal(store.vector_rows(ids, 50), vectors[ids])
        assert store.vector_rows(np.zeros(0, np.int64), 50).shape == (0, 8)
        with pytest.raises(IndexError, match="outside 0..49"):
            store.vector_rows(np.array([50]), 50)
    finally:
        store.close()


def test_a_kept_filter_mask_follows_rows_added_later(tmp_path: Path) -> None:
    """Filter masks are kept between searches, and rebuilt once rows are added: a box committed
    after a filtered search is found by the same filter (given as a list, then as a string)."""
    rng = np.random.default_rng(6)
    vectors = rng.normal(size=(30, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    _timed_store(tmp_path / "idx", vectors)
    with PersonIndex.open(tmp_path / "idx") as index:
        before = index.search(vectors[0], 50, camera=["north"], time_range=[0.0, 100.0], per_frame=True)
        assert {h.camera for h in before} == {"north"} and len(before) == 10
        store = index.store
        store.acquire_writer()
        north = Source(Path("/data/north/clip.mp4"), "video", 1, 1, "north")
        new = vectors[:1] * -1
        store.commit_batch([BoxRow(north, 99, 9.9, np.array([0, 0, 1, 1]), 1.0, b"")], new, [])
        store.release_writer()
        after = index.search(new[0], 50, camera="north", time_range=(0.0, 100.0), per_frame=True)
        assert len(after) == 11 and after[0].box_id == 30
