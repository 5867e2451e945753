"""Learning re-id from unlabelled video: tracklets in, a better network out, held-out people scored."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from personsearch.data.crops import crop_boxes, normalize_crops
from personsearch.data.synthetic.walks import appearance_crops, make_walks, split_walks
from personsearch.evaluation.metrics import recall_corrected_ap
from personsearch.index import PersonIndex
from personsearch.interfaces.api import SHIPPED_MODEL
from personsearch.models.bundle import ModelBundle, load_component, save_component
from personsearch.models.reid import ReIDConfig, build_reid
from personsearch.training.adapt import (
    AdaptConfig,
    adapt,
    associate,
    camera_rivals,
    crop_features,
    feature_rows,
    later_round_fits,
    parse_budget,
    rounds_affordable,
    tracklet_features,
)
from personsearch.training.config import OptimConfig

WALKS = dict(people=8, frames=60, width=320, height=240, max_person=150)


@torch.no_grad()
def cross_camera_map(model: torch.nn.Module, videos: list[Path]) -> float:
    """mAP of the first camera's appearances (mean feature of their frames) against the others'."""
    crops, owners, keys = appearance_crops(videos, tuple(model.config.input_size))
    means = tracklet_features(model, crops, owners, len(keys))
    cams, pids = np.array([k[0] for k in keys]), np.array([k[1] for k in keys])
    first = cams == sorted(set(cams.tolist()))[0]
    aps = []
    for q in np.flatnonzero(first):
        right = pids[~first] == pids[q]
        if right.any():
            sims = means[~first] @ means[q]
            aps.append(recall_corrected_ap(right, sims, int(right.sum())))
    return float(np.mean(aps))


class WalkEngine:
    """The ground truth as detector (frames recognised by their decoded pixels) and a re-id network
    as embedder: indexes walking videos in seconds, without running a detector."""

    def __init__(self, videos: list[Path], reid: torch.nn.Module, model_id: str) -> None:
        import cv2

        self.reid, self.model_id, self.feature_dim = reid.eval(), model_id, reid.feature_dim
        self.boxes: dict[bytes, np.ndarray] = {}
        for video in videos:
            truth = json.loads(video.with_suffix(".json").read_text())
            capture = cv2.VideoCapture(str(video))
            for people in truth["frames"]:
                ok, bgr = capture.read()
                assert ok
                key = hashlib.sha1(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).tobytes()).digest()
                self.boxes[key] = np.array([[*p["box"], 0.95] for p in people], np.float32).reshape(-1, 5)
            capture.release()

    def detect(self, images: list[np.ndarray]) -> list[np.ndarray]:
        return [self.boxes[hashlib.sha1(np.ascontiguousarray(image).tobytes()).digest()] for image in images]

    @torch.no_grad()
    def embed(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        crops = crop_boxes(image, boxes, tuple(self.reid.config.input_size))
        return self.reid(normalize_crops(crops)).numpy()


def test_associate_links_mutual_nearest_neighbours_across_cameras_never_people_seen_together() -> None:
    e = np.eye(4)
    features = np.stack([e[0], e[1], e[0] * 0.9 + e[2] * 0.1, e[1] * 0.8 + e[3] * 0.2, e[1]])
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    cameras = ["a", "a", "b", "b", "a"]
    spans = [("a.avi", 0, 10), ("a.avi", 0, 10), ("b.avi", 0, 10), ("b.avi", 0, 10), ("a.avi", 20, 30)]
    labels = associate(features, cameras, 0.5, spans)
    # 0 ~ 2 across cameras; 1 ~ 3 across cameras; 4 looks like 1 and is its broken-off track (never together)
    assert labels[0] == labels[2] and labels[1] == labels[3] == labels[4] and labels[0] != labels[1]
    seen_together = [("a.avi", 0, 10), ("a.avi", 0, 10), ("b.avi", 0, 10), ("b.avi", 0, 10), ("a.avi", 5, 30)]
    labels = associate(features, cameras, 0.5, seen_together)
    assert labels[4] != labels[1]  # alike, but in the frame at the same time: two people
    rivals = camera_rivals(np.array([0, 1, 0, 2]), ["a", "a", "b", "b"])
    # b's tracklet 3 is never 1's negative
    assert rivals.tolist() == [[True, True, True], [True, True, False], [True, False, True]]


def _frames(video: Path) -> list[np.ndarray]:
    import cv2

    capture = cv2.VideoCapture(str(video))
    frames = []
    while (read := capture.read())[0]:
        frames.append(read[1].astype(np.int16))
    capture.release()
    return frames


def test_footage_cut_in_two_keeps_every_frame_and_each_walk_on_its_side(tmp_path: Path) -> None:
    """The adaptation benchmark learns on the earlier part of a camera's footage and scores on the
    later part: nothing may be lost, shifted or shared at the cut."""
    (whole,) = make_walks(tmp_path / "whole", seed=3, cameras=1, people=4, frames=30, width=160, height=120)
    (earlier,), (later,) = split_walks([whole], 12, tmp_path / "a", tmp_path / "b")
    truth, first, second = (json.loads(v.with_suffix(".json").read_text()) for v in (whole, earlier, later))
    assert first["frames"] == truth["frames"][:12] and second["frames"] == truth["frames"][12:]
    seen = {(w["pid"], f) for w in truth["walks"] for f in range(w["first_frame"], w["last_frame"] + 1)}
    parts = {
        (w["pid"], f + shift)
        for part, shift in ((first, 0), (second, 12))
        for w in part["walks"]
        for f in range(w["first_frame"], w["last_frame"] + 1)
    }
    assert parts == seen
    for part in (first, second):
        assert all(0 <= w["first_frame"] <= w["last_frame"] < len(part["frames"]) for w in part["walks"])
    pictures, cut = _frames(whole), _frames(earlier) + _frames(later)
    assert len(cut) == len(pictures) == 30
    # the same picture at the same place (re-encoded: close, and far closer than its neighbour)
    for k in (0, 11, 12, 29):
        own = np.abs(cut[k] - pictures[k]).mean()
        assert own < 3.0 and own < np.abs(cut[k] - pictures[(k + 6) % 30]).mean()
    with pytest.raises(ValueError, match="walk.avi: cannot cut 30 frames at frame 30"):
        split_walks([whole], 30, tmp_path / "c", tmp_path / "d")


def test_between_rounds_a_tracklet_is_seen_through_a_few_crops_in_the_fast_layout() -> None:
    owners = np.array([0, 1, 0, 0, 2, 0, 0, 1])
    # the first, middle and last of tracklet 0's five crops; all of the shorter ones
    assert feature_rows(owners, 3).tolist() == [0, 1, 3, 4, 6, 7]
    assert feature_rows(owners, 16).tolist() == list(range(8))
    torch.manual_seed(0)
    config = ReIDConfig(num_classes=4, backbone="mobilenet_v2_tiny", pretrained=False, input_size=(64, 32))
    model = build_reid(config)
    crops = torch.randint(0, 256, (6, 3, 64, 32), dtype=torch.uint8)
    exact, fast = crop_features(model, crops, fast=False), crop_features(model, crops)
    cosine = (exact * fast).sum(1) / np.linalg.norm(exact, axis=1) / np.linalg.norm(fast, axis=1)
    assert cosine.min() > 0.99
    # the network is left as it was found, for training to go on
    assert all(p.is_contiguous() for p in model.parameters())


def tiny_start_and_index(tmp_path: Path) -> tuple[Path, list[Path]]:
    """A bundle of the shipped detector and a small untrained re-id network, and an index of two
    cameras' walking videos (60 frames at 10 fps each) built with it; returns (bundle, videos)."""
    learn = make_walks(tmp_path / "learn", seed=21, cameras=2, **WALKS)
    start = tmp_path / "start"
    start.mkdir()
    for part in ("detector.json", "detector.safetensors"):
        shutil.copyfile(SHIPPED_MODEL / part, start / part)
    torch.manual_seed(0)
    config = ReIDConfig(
        num_classes=8, backbone="mobilenet_v2_tiny", pretrained=False, input_size=(64, 32), embed_dim=32
    )
    save_component(start, "reid", build_reid(config), config, {})
    engine = WalkEngine(learn, load_component(start, "reid")[0], "ground-truth-boxes")
    with PersonIndex.open(tmp_path / "index", engine, create=True) as index:
        index.add_paths(learn, progress=False)
        assert index.store.summary()["sightings"] >= 6
    return start, learn


def adapt_tiny(tmp_path: Path, start: Path, **config: object) -> dict:
    """``adapt`` of ``tiny_start_and_index``'s index into ``tmp_path/adapted``: every epoch, at the
    high learning rate a tiny network needs, tracklets from 6 boxes."""
    settings = AdaptConfig(
        min_boxes=6, optim=OptimConfig(lr=0.05, backbone_lr=0.05, warmup_steps=5), budget_footage=0
    )
    return adapt(tmp_path / "index", start, tmp_path / "adapted", replace(settings, **config), progress=False)


def test_adapting_to_unlabelled_walks_beats_the_starting_network_on_other_people(tmp_path: Path) -> None:
    start, learn = tiny_start_and_index(tmp_path)
    held_out = make_walks(tmp_path / "held-out", seed=22, cameras=2, **WALKS)
    result = adapt_tiny(tmp_path, start, epochs=15, rounds=1)
    assert result["tracklets"] >= 6 and result["footage"] == sorted(str(v.resolve()) for v in learn)
    before = cross_camera_map(load_component(start, "reid")[0], held_out)
    after = cross_camera_map(load_component(tmp_path / "adapted", "reid")[0], held_out)
    # an untrained start learns from per-camera tracklet discrimination alone (its features cannot
    # associate tracklets across cameras yet); measured 0.418 -> 0.60 / 0.71 with 1 / 2 threads on
    # a Zen 5 (10 epochs gave 0.49 / 0.68 there and 0.66-0.68 on a Zen 3: too close to the floor)
    assert after > before + 0.1, (before, after, result["tracklets"])
    card = (tmp_path / "adapted" / "MODEL_CARD.md").read_text()
    assert "walk.avi" in card and "without any identity label" in card
    # the time it took, against the footage it learned from (2 cameras x 60 frames at 10 fps)
    assert result["footage_s"] == pytest.approx(12.0, abs=0.5)
    assert result["seconds"]["total"] >= sum(result["seconds"]["rounds"]) > 0 and "min of footage" in card
    steps = result["rounds"][0]["train"]["steps"]
    assert f"Rounds: 1: {result['rounds'][0]['classes']} classes, {steps} steps, " in card
    meta = json.loads((tmp_path / "adapted" / "reid.json").read_text())["metadata"]["adaptation"]
    assert meta["tracklets"] == result["tracklets"]
    ModelBundle(tmp_path / "adapted", engine="torch-fp32")  # a usable bundle
    with pytest.raises(ValueError, match="usable tracklet"):
        adapt(tmp_path / "index", start, tmp_path / "never", AdaptConfig(min_boxes=1000), progress=False)


def test_a_box_that_never_moves_is_not_a_training_identity(tmp_path: Path) -> None:
    """A detector's steady false positive (here a "person" standing in one place for the whole
    video) tracks perfectly; adapting must not learn it as a person. The walker beside it stays."""
    from index_testkit import BLUE, GREEN, RED, YELLOW, ColourEngine, write_walkers

    from personsearch.training.adapt import find_tracklets

    video = write_walkers(
        tmp_path / "cam1" / "v.avi",
        [(RED, BLUE, 0, 19, 5, 10, 5, 1), (GREEN, YELLOW, 0, 19, 120, 70, 0, 0)],
        frames=20,
    )
    with PersonIndex.open(tmp_path / "index", ColourEngine(), create=True) as index:
        index.add_paths([video], progress=False)
        kept = find_tracklets(index, AdaptConfig(min_boxes=6))
        everything = find_tracklets(index, AdaptConfig(min_boxes=6, min_motion=0.0))
    assert len(everything) == 2 and len(kept) == 1
    assert kept[0].boxes[0][0] < 60  # the walker, who starts on the left


def test_adapting_keeps_to_its_time_budget(tmp_path: Path) -> None:
    """A budget is kept to within 10 %, fixed costs (reading the tracklets, cropping) included:
    the training is shortened to the steps that fit, its schedule scaled to that length. By
    default the budget is the footage's own duration (12 s here: too little for the fixed costs
    of a test on a busy machine, so the test gives 20 s)."""
    start, _ = tiny_start_and_index(tmp_path)
    budget_footage, budget_s = parse_budget("20s")
    config = AdaptConfig(
        epochs=1000,
        rounds=2,
        min_boxes=6,
        optim=OptimConfig(lr=0.05, backbone_lr=0.05, warmup_steps=5),
        budget_s=budget_s,
    )
    result = adapt(tmp_path / "index", start, tmp_path / "adapted", config, progress=False)
    assert result["budget_s"] == 20.0 and result["stopped_by_budget"]
    assert 0.7 * 20 <= result["seconds"]["total"] <= 1.1 * 20, result["seconds"]
    first = result["rounds"][0]["train"]  # 1,000 epochs planned, the schedule fitted to what the time allows
    assert 0 < first["steps"] <= first["budget_steps"] < first["planned_steps"], first
    assert (
        "budget 0.3 min (training shortened to fit it)"
        in (tmp_path / "adapted" / "MODEL_CARD.md").read_text()
    )
    assert (
        result["footage_s"] == pytest.approx(12.0, abs=0.5)
        and AdaptConfig().budget(result["footage_s"]) == result["footage_s"]
    )
    ModelBundle(tmp_path / "adapted", engine="torch-fp32")  # a usable bundle


def test_a_later_round_runs_only_if_the_budget_pays_for_its_feature_pass_and_a_few_steps() -> None:
    last = {"seconds": 10.0, "steps": 5}  # 2 s a step
    # no pass yet: 640 crops are 10 batches, each costed a third of a step; then 4 steps
    assert not later_round_fits(14.0, last, None, crops=640, batch_size=64)
    assert later_round_fits(15.0, last, None, crops=640, batch_size=64)
    # a pass already measured is costed as it took
    assert later_round_fits(9.0, last, 1.0, crops=640, batch_size=64)
    assert not later_round_fits(9.0, last, 2.0, crops=640, batch_size=64)


def test_a_later_round_is_planned_only_while_each_round_trains_at_least_as_long_as_a_pass() -> None:
    # 36 s, a pass of 5 s: two rounds train 15.5 s each
    assert rounds_affordable(36.0, 5.0, 2) == 2
    # a pass of 13 s leaves two rounds 11.5 s each, less than a pass: the first round gets it all
    assert rounds_affordable(36.0, 13.0, 2) == 1
    assert rounds_affordable(36.0, 13.0, 1) == 1 and rounds_affordable(100.0, 10.0, 3) == 3
    assert rounds_affordable(45.0, 10.0, 3) == 2  # three would train 8.3 s each, two 17.5 s


def test_budgets_as_people_write_them() -> None:
    assert (
        parse_budget("2x") == (2.0, None)
        and parse_budget("45m") == (1.0, 2700.0)
        and parse_budget("1.5h") == (1.0, 5400.0)
    )
    assert parse_budget("900") == parse_budget("900s") == (1.0, 900.0) and parse_budget("None") == (0.0, None)
    assert (
        AdaptConfig(budget_footage=2.0).budget(600.0) == 1200.0
        and AdaptConfig(budget_s=60.0).budget(600.0) == 60.0
    )
    assert AdaptConfig().budget(None) is None and AdaptConfig(budget_footage=0).budget(600.0) is None
    for bad in ("", "x", "-3m", "soon", "0", "inf"):
        with pytest.raises(ValueError, match="write a positive time"):
            parse_budget(bad)


def _until_done(client: object, job_id: int, stop_when: object = None) -> tuple[dict, list[dict]]:
    """Poll an adapting job until it ends (or ``stop_when(job)``); returns it and what was seen."""
    seen = []
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        job = client.get(f"/api/adapt-jobs/{job_id}").json()  # type: ignore[attr-defined]
        seen.append(job)
        if job["state"] != "running" or (stop_when is not None and stop_when(job)):  # type: ignore[operator]
            return job, seen
        time.sleep(0.2)
    raise AssertionError(f"adapting job {job_id} still running after 300 s: {seen[-1]}")


def test_adapting_from_the_web_page_is_a_job_with_progress_saved_under_a_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page's "Learn this camera": a background job over the index's own footage, with its
    stage and progress, that can be cancelled and started again (it resumes), and saves the
    adapted model under a plain name in the model home; names that are paths, a bad budget and a
    second run at once are refused; a server started without --allow-adapt refuses all of it."""
    from fastapi.testclient import TestClient

    from personsearch.interfaces.server import SearchService, create_app

    monkeypatch.setenv("PERSONSEARCH_CACHE", str(tmp_path / "cache"))
    start, _ = tiny_start_and_index(tmp_path)
    index = tmp_path / "index"
    with TestClient(create_app(SearchService(index, None))) as off:
        assert not off.get("/api/summary").json()["can_adapt"]
        refused = off.post("/api/adapt-jobs", json={"name": "cam"})
        assert refused.status_code == 403 and "--allow-adapt" in refused.json()["detail"]
    with TestClient(create_app(SearchService(index, None), adapt_from=start)) as client:
        assert client.get("/api/summary").json()["can_adapt"]
        for name in ("../evil", ".hidden", "a/b", "a\\b"):
            answer = client.post("/api/adapt-jobs", json={"name": name})
            assert answer.status_code == 422 and "plain name" in answer.json()["detail"], name
        answer = client.post("/api/adapt-jobs", json={"name": "cam", "budget": "soon"})
        assert answer.status_code == 422 and "budget 'soon'" in answer.json()["detail"]

        first = client.post("/api/adapt-jobs", json={"name": "cam", "budget": "60s", "min_boxes": 6})
        assert first.status_code == 202
        busy = client.post("/api/adapt-jobs", json={"name": "other", "min_boxes": 6})
        assert busy.status_code == 409 and "still running" in busy.json()["detail"]
        job, _ = _until_done(client, first.json()["id"], lambda job: job["fraction"] > 0.05)
        assert job["state"] == "running" and "round 1/2: training (step" in job["stage"], job
        client.delete(f"/api/adapt-jobs/{job['id']}")
        job, _ = _until_done(client, job["id"])
        saved = tmp_path / "cache" / "models" / "cam"
        assert job["state"] == "cancelled" and not (saved / "reid.json").exists()

        again = client.post("/api/adapt-jobs", json={"name": "cam", "budget": "20s", "min_boxes": 6})
        job, seen = _until_done(client, again.json()["id"])
        assert job["state"] == "done", job
        fractions = [j["fraction"] for j in seen]
        assert fractions == sorted(fractions) and job["fraction"] == 1.0
        assert any("round 2/2" in j["stage"] for j in seen)
        assert job["summary"]["model"] == "cam" and "--model cam" in job["summary"]["reembed"]
        assert (saved / "reid.json").is_file() and "walk.avi" in (saved / "MODEL_CARD.md").read_text()
        ModelBundle(saved, engine="torch-fp32")  # a usable bundle, found by name
        taken = client.post("/api/adapt-jobs", json={"name": "cam", "min_boxes": 6})
        assert taken.status_code == 409 and "exists already" in taken.json()["detail"]
