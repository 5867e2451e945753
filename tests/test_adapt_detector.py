"""Teaching the detector real people from unlabelled footage: the pseudo-label rules on hand-made
boxes, and the fine-tuning wiring (starts from the bundle's detector, writes a bundle and a card)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from personsearch.data import load_dataset
from personsearch.data.synthetic import make_synthetic
from personsearch.models.bundle import load_component, save_component
from personsearch.models.detector import DetectorConfig, build_detector
from personsearch.models.reid import ReIDConfig, build_reid
from personsearch.training import adapt_detector as ad
from personsearch.training.config import OptimConfig


def test_detectors_agree_one_to_one_above_the_overlap() -> None:
    ssd = np.array([[0, 0, 10, 30, 0.9], [50, 0, 60, 30, 0.8], [100, 0, 110, 30, 0.7]], np.float32)
    # two near the 2nd
    hog = np.array([[1, 1, 11, 31, 0.5], [49, 0, 59, 30, 0.5], [49, 2, 60, 32, 0.5]], np.float32)
    assert ad.agreed(ssd, hog, 0.5).tolist() == [True, True, False]
    assert ad.agreed(ssd, hog[:0], 0.5).tolist() == [False, False, False]


def test_a_person_is_a_track_long_enough_and_mostly_agreed_on() -> None:
    walker = [np.array([[10.0 + 4 * k, 10, 30 + 4 * k, 70]]) for k in range(5)]
    flicker = [np.array([[200.0, 10, 220, 70]]) if k == 2 else np.zeros((0, 4)) for k in range(5)]
    frames = [np.concatenate([w, f]) for w, f in zip(walker, flicker, strict=True)]
    tracks = ad.link_tracks(frames, 0.3)
    assert len({int(t[0]) for t in tracks}) == 1 and tracks[2][1] != tracks[2][0]  # the walker is one track
    hog_missed_once = [np.array([k != 3] + [True] * (len(f) - 1)) for k, f in enumerate(frames)]
    people = ad.confirmed(tracks, hog_missed_once, min_track=4, min_agreement=0.5)
    # frame 3 kept: the track vouches
    assert [p.tolist() for p in people] == [[True], [True], [True, False], [True], [True]]
    rarely_agreed = [np.array([k == 0] + [True] * (len(f) - 1)) for k, f in enumerate(frames)]
    assert not any(p[0] for p in ad.confirmed(tracks, rarely_agreed, min_track=4, min_agreement=0.5))


def test_unsure_boxes_are_painted_over() -> None:
    image = np.zeros((20, 20, 3), np.uint8)
    image[:, 10:] = 200
    out = ad.mask_boxes(image, np.array([[2.0, 2, 6, 8]]))
    assert (out[2:8, 2:6] == 100).all() and (out[:2] == image[:2]).all() and (image[2:8, 2:6] == 0).all()


def test_fine_tuning_starts_from_the_bundle_detector_and_writes_a_bundle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = make_synthetic(tmp_path / "tiny", preset="tiny", seed=2).root
    scenes = [s for s in load_dataset(data).train if len(s.boxes)][:4]
    bundle = tmp_path / "start"
    torch.manual_seed(0)
    config = DetectorConfig(backbone="mobilenet_v2_tiny", pretrained=False, min_size=160, max_size=224)
    start = build_detector(config).eval()
    save_component(bundle, "detector", start, config, {})
    save_component(
        bundle,
        "reid",
        build_reid(
            ReIDConfig(backbone="mobilenet_v2_tiny", pretrained=False, input_size=(64, 32), num_classes=3)
        ),
        ReIDConfig(backbone="mobilenet_v2_tiny", pretrained=False, input_size=(64, 32), num_classes=3),
        {},
    )
    stats = {"video": "walk.mp4", "frames": 10, "frames_kept": len(scenes), "boxes_kept": 5}
    monkeypatch.setattr(ad, "pseudo_label_video", lambda video, out_dir, labels: (scenes, stats))
    still = ad.AdaptDetectorConfig(
        epochs=1, optim=OptimConfig(lr=0.0, backbone_lr=0.0, weight_decay=0.0, warmup_steps=0)
    )
    result = ad.adapt_detector(["walk.mp4"], bundle, data, tmp_path / "out", still, progress=False)
    assert result["real_frames"] == 4 and result["synthetic_scenes"] == 4
    adapted, _, _ = load_component(tmp_path / "out", "detector")
    for (
        name,
        value,
    ) in start.state_dict().items():  # learning rate 0: the start's weights, so it started from them
        if value.is_floating_point() and "running" not in name:
            torch.testing.assert_close(adapted.state_dict()[name], value, msg=name)
    card = (tmp_path / "out" / "MODEL_CARD.md").read_text()
    assert "walk.mp4: 4 of 10 sampled frames" in card
    assert json.loads((tmp_path / "out" / "detector.json").read_text())["metadata"]["adaptation"][
        "footage"
    ] == ["walk.mp4"]
    assert (tmp_path / "out" / "reid.safetensors").read_bytes() == (bundle / "reid.safetensors").read_bytes()


def test_footage_without_any_confirmed_person_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = tmp_path / "start"
    config = DetectorConfig(backbone="mobilenet_v2_tiny", pretrained=False)
    save_component(bundle, "detector", build_detector(config), config, {})
    monkeypatch.setattr(
        ad,
        "pseudo_label_video",
        lambda video, out_dir, labels: ([], {"frames_kept": 0, "frames": 3, "boxes_kept": 0}),
    )
    with pytest.raises(ValueError, match="empty.mp4.*nothing to learn from"):
        ad.adapt_detector(["empty.mp4"], bundle, tmp_path, tmp_path / "out", progress=False)
