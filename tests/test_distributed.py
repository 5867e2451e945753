"""Distributed indexing on Ray (local mode, two actors): the index it builds is the one a
single-process run builds, an actor killed mid-job is restarted and its unit retried with no
change in the result, and a killed driver resumes like a killed single-process run."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from index_testkit import (  # noqa: E402
    BLUE,
    GREEN,
    RED,
    YELLOW,
    ColourEngine,
    SimulatedKill,
    draw_scene,
    index_content,
    write_png,
    write_video,
)

from personsearch.index import PersonIndex  # noqa: E402
from personsearch.index.distributed import RaySettings, Slice, load_engine, machine_key, plan_units  # noqa: E402
from personsearch.index.indexer import Planned  # noqa: E402
from personsearch.index.sources import Sampling, Source  # noqa: E402

TESTS = Path(__file__).parent


@pytest.fixture(scope="module")
def local_ray():
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        object_store_memory=150 * 2**20,
        runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join([str(TESTS), *sys.path])}},
    )
    yield
    ray.shutdown()


def colour_engine(kill_marker: str | None = None) -> ColourEngine:
    """Built inside each actor. With ``kill_marker``: the first actor to find the file removes
    it and dies (os._exit, as an out-of-memory kill or a crash would) at its next detect call."""
    engine = ColourEngine()
    if kill_marker is not None:
        detect = engine.detect

        def detect_or_die(images):
            try:
                os.unlink(kill_marker)
            except FileNotFoundError:
                return detect(images)
            os._exit(1)

        engine.detect = detect_or_die
    return engine


def _footage(root: Path) -> Path:
    for i in range(9):
        people = [(10 + 7 * i, 20, RED, BLUE), (80, 10 + 5 * i, GREEN, YELLOW)][: 1 + i % 2]
        write_png(root / ("cam1" if i < 5 else "cam2") / f"{i:02d}.png", draw_scene(people))
    write_video(root / "cam3" / "walk.avi", frames=23)
    return root


def _single(directory: Path, footage: Path) -> Path:
    with PersonIndex.open(directory, ColourEngine(), create=True) as index:
        index.add_paths([footage], progress=False, batch_size=4)
    return directory


def _on_ray(directory: Path, footage: Path, factory=colour_engine, **settings) -> object:
    with PersonIndex.open(directory, ColourEngine(), create=True) as index:
        return index.add_paths(
            [footage],
            progress=False,
            batch_size=4,
            ray=RaySettings(workers=2, frames_per_unit=5, **settings),
            engine_factory=factory,
        )


def test_units_follow_the_plan_and_batches(tmp_path: Path) -> None:
    footage = _footage(tmp_path / "footage")
    images = [Source(p, "image", 1, 1, "c") for p in sorted((footage / "cam1").glob("*.png"))]
    video = Source((footage / "cam3" / "walk.avi").resolve(), "video", 1, 1, "cam3")
    units = plan_units(
        [Planned(s, 0) for s in images] + [Planned(video, 7)],
        Sampling(stride=2),
        batch_size=4,
        frames_per_unit=5,
    )
    assert [[s.source for s in u] for u in units[:2]] == [[0, 1, 2, 3], [4]]
    # the video resumes at frame 7 (first sampled: 8), 5 sampled frames = 10 frame numbers a slice
    assert units[2:] == [[Slice(5, 7, 17, False)], [Slice(5, 17, None, True)]]


def test_two_actors_build_the_single_process_index(tmp_path: Path, local_ray: None) -> None:
    footage = _footage(tmp_path / "footage")
    expected = index_content(_single(tmp_path / "single", footage))
    summary = _on_ray(tmp_path / "ray", footage)
    assert index_content(tmp_path / "ray") == expected
    assert (
        summary.sources_indexed == 10
        and summary.frames_processed == 9 + 23
        and summary.people_added == len(expected)
    )
    with PersonIndex.open(tmp_path / "ray") as index:
        assert sum(source.complete for source in index.store.list_sources()[1]) == 10
    again = _on_ray(tmp_path / "ray", footage)  # incremental: nothing left to do
    assert again.sources_unchanged == 10 and again.people_added == 0


def test_a_killed_actor_is_restarted_and_the_result_is_unchanged(tmp_path: Path, local_ray: None) -> None:
    footage = _footage(tmp_path / "footage")
    expected = index_content(_single(tmp_path / "single", footage))
    marker = tmp_path / "kill-one-actor"
    marker.write_text("")
    _on_ray(tmp_path / "ray", footage, functools.partial(colour_engine, str(marker)))
    assert not marker.exists(), "no actor died: the test did not test anything"
    assert index_content(tmp_path / "ray") == expected


def test_a_killed_driver_resumes_without_loss_or_duplicates(tmp_path: Path, local_ray: None) -> None:
    footage = _footage(tmp_path / "footage")
    expected = index_content(_single(tmp_path / "single", footage))
    with PersonIndex.open(tmp_path / "ray", ColourEngine(), create=True) as index:

        def die_after_three_commits(progress) -> None:
            die_after_three_commits.calls += 1
            if die_after_three_commits.calls == 3:
                raise SimulatedKill("driver killed")

        die_after_three_commits.calls = 0
        with pytest.raises(SimulatedKill):
            index.add_paths(
                [footage],
                progress=False,
                batch_size=4,
                ray=RaySettings(workers=2, frames_per_unit=5),
                engine_factory=colour_engine,
                on_progress=die_after_three_commits,
            )
    partial = index_content(tmp_path / "ray")
    assert 0 < len(partial) < len(expected)
    _on_ray(tmp_path / "ray", footage)
    assert index_content(tmp_path / "ray") == expected


def test_the_shipped_model_on_the_tiny_preset_matches_single_process(tmp_path: Path, local_ray: None) -> None:
    from personsearch.data.synthetic import make_synthetic
    from personsearch.interfaces.api import SHIPPED_MODEL
    from personsearch.models.bundle import ModelBundle

    data = make_synthetic(tmp_path / "tiny", preset="tiny", seed=0)
    gallery = [scene.path for scene in data.gallery[:12]]
    bundle = ModelBundle(SHIPPED_MODEL, engine="torch-fp32")
    with PersonIndex.open(tmp_path / "single", bundle, create=True) as index:
        index.add_paths(gallery, progress=False, batch_size=4)
    with PersonIndex.open(tmp_path / "ray", bundle, create=True) as index:
        index.add_paths(
            gallery,
            progress=False,
            batch_size=4,
            ray=RaySettings(workers=2),
            engine_factory=functools.partial(load_engine, str(SHIPPED_MODEL), "cpu", "bundle", "torch-fp32"),
        )
    single, distributed = index_content(tmp_path / "single"), index_content(tmp_path / "ray")
    assert len(single) == len(distributed) > 10
    for a, b in zip(single, distributed):
        assert a[:3] == b[:3]  # source, frame, time
        assert np.allclose(a[3], b[3], atol=1e-3) and abs(a[4] - b[4]) < 1e-4  # same boxes and scores
        # features within fp noise: the actors run one thread each, so their GEMMs round differently
        assert float(np.dot(a[5], b[5])) > 0.9999 and np.abs(np.subtract(a[5], b[5])).max() < 1e-3


def test_actors_on_the_drivers_kind_of_machine_run_the_drivers_engines(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A local ``index --ray`` and a single-process ``index`` store the same boxes: an actor (one
    thread, so another engine-cache key) takes the engines its driver runs when the CPU and
    libraries are the same, chooses its own on another kind of node, and an engine asked for by
    name wins everywhere."""
    import personsearch.models.bundle as bundle_module
    from personsearch.interfaces.api import SHIPPED_MODEL, PersonSearch

    built: list[str | None] = []
    monkeypatch.setattr(
        bundle_module, "ModelBundle", lambda path, device, engine, detector: built.append(engine)
    )
    chosen = "reid=ort-int8,detector=ort-fp32"
    load_engine(str(SHIPPED_MODEL), "cpu", "bundle", None, (machine_key(), chosen))
    load_engine(str(SHIPPED_MODEL), "cpu", "bundle", None, ({**machine_key(), "cpu": "another CPU"}, chosen))
    load_engine(str(SHIPPED_MODEL), "cpu", "bundle", "torch-fp32", (machine_key(), chosen))
    assert built == [chosen, None, "torch-fp32"]

    class Driver:  # what the API reads of its bundle
        path, device, detector_name, engine_request = SHIPPED_MODEL, "cpu", "bundle", "auto"
        engine_choice = type("Choice", (), {"reid": "ort-int8", "detector": "ort-fp32"})()

    factory = PersonSearch(Driver()).actor_engine_factory()  # type: ignore[arg-type]
    built.clear()
    factory()
    assert built == [chosen]
