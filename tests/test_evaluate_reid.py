"""``personsearch evaluate-reid``: a re-id benchmark's crop folder scored by Market-1501's protocol,
its distractors (person 0000) kept as wrong answers and its junk (-1) ignored."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from index_testkit import write_png
from typer.testing import CliRunner

from personsearch.data.reid_crops import GALLERY, QUERY, TRAIN, read_split
from personsearch.evaluation.reid_crops import evaluate_crop_folder
from personsearch.interfaces.cli import app


def _market_folder(root: Path) -> Path:
    """One query (person 1, camera 1, red). In the gallery: person 1 from camera 2 (reddish: the
    right answer); a distractor exactly as red as the query; junk and person 1's own camera-1
    image, both as red too (neither counts); person 2 (blue)."""

    def crop(split: str, name: str, colour: tuple[int, int, int]) -> None:
        write_png(root / split / name, np.full((32, 16, 3), colour, np.uint8))

    crop(QUERY, "0001_c1s1_000001_00.jpg", (250, 10, 10))
    crop(GALLERY, "0001_c2s1_000002_00.jpg", (200, 60, 40))
    crop(GALLERY, "0000_c3s1_000003_00.jpg", (250, 10, 10))
    crop(GALLERY, "-1_c2s1_000004_00.jpg", (250, 10, 10))
    crop(GALLERY, "0001_c1s1_000005_00.jpg", (250, 10, 10))
    crop(GALLERY, "0002_c2s1_000006_00.jpg", (10, 10, 250))
    (root / TRAIN).mkdir()
    return root


def _mean_colour(crops: torch.Tensor) -> np.ndarray:
    features = crops.float().mean(dim=(2, 3))
    return torch.nn.functional.normalize(features, dim=1).numpy()


def test_a_distractor_is_a_wrong_answer_and_junk_and_the_same_camera_do_not_count(tmp_path: Path) -> None:
    root = _market_folder(tmp_path / "market")
    scores = evaluate_crop_folder(_mean_colour, root, (32, 16))
    # ranked: the distractor (as red as the query) first, then the right answer
    assert (scores["queries"], scores["gallery"], scores["distractors"]) == (1.0, 4.0, 1.0)
    assert scores["top1"] == 0.0 and scores["top5"] == 100.0
    assert scores["mAP"] == pytest.approx(50.0)
    # training reads no distractor: it is no identity
    assert 0 not in read_split(root, GALLERY, (32, 16)).pids.tolist()


def test_the_command_scores_a_folder_with_a_model(tmp_path: Path) -> None:
    root = _market_folder(tmp_path / "market")
    out = tmp_path / "scores.json"
    result = CliRunner().invoke(
        app, ["evaluate-reid", "--dataset", str(root), "--engine", "torch-fp32", "--json", str(out)]
    )
    assert result.exit_code == 0, result.output
    scores = json.loads(out.read_text())
    assert (scores["queries"], scores["gallery"], scores["distractors"], scores["rerank"]) == (1, 4, 1, False)
    assert 0.0 <= scores["mAP"] <= 100.0 and "mAP" in result.output
