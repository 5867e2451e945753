"""``personsearch demo``, the README's main job, end to end on the tiny benchmark with tiny
networks: every stage's output, the ground-truth-marked report, the saved model, and a second
run that reuses what the first one finished."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from rich.console import Console

from personsearch.interfaces.api import PersonSearch, model_home
from personsearch.interfaces.demo import DemoSettings, run_demo
from personsearch.models.detector import DetectorConfig
from personsearch.models.reid import ReIDConfig
from personsearch.training.config import DetectorTrainConfig, ReIDTrainConfig

torch.set_num_threads(1)


def _tiny_settings() -> DemoSettings:
    return DemoSettings(
        preset="tiny",
        seed=1,
        train=True,
        detector=DetectorTrainConfig(
            model=DetectorConfig(
                backbone="mobilenet_v2_tiny", pretrained=False, min_size=300, max_size=400, score_thresh=0.05
            ),
            epochs=1,
        ),
        reid=ReIDTrainConfig(
            model=ReIDConfig(backbone="mobilenet_v2_tiny", pretrained=False, input_size=(64, 32)),
            epochs=2,
            batch_size=16,
        ),
    )


@pytest.fixture(scope="module")
def trained_demo(tmp_path_factory: pytest.TempPathFactory):
    """One ``--train`` demo run (tiny preset, tiny nets), its summary and what it printed; the
    cache (saved models, weights, engine choices) redirected away from ~/.cache."""
    root = tmp_path_factory.mktemp("demo")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PERSONSEARCH_CACHE", str(root / "cache"))
        patch.setenv("PERSONSEARCH_ENGINE", "torch-fp32")
        console = Console(record=True, width=400)
        summary = run_demo(root / "demo", _tiny_settings(), console=console, progress=False)
        yield root, summary, console.export_text()


def test_demo_runs_every_stage_and_resumes(trained_demo, monkeypatch: pytest.MonkeyPatch) -> None:
    root, summary, printed = trained_demo
    monkeypatch.setenv("PERSONSEARCH_CACHE", str(root / "cache"))
    out = root / "demo"
    assert json.loads((out / "demo.json").read_text()) == summary
    for name in (
        "data/synthetic.json",
        "model/detector.safetensors",
        "model/reid.safetensors",
        "index-trained",
        "results.json",
        "search.json",
        "report.png",
    ):
        assert (out / name).exists(), name
    assert 0.0 <= summary["gt_boxes_mAP"] <= 1.0 and summary["indexed_people"] > 0
    page = (out / "report.html").read_text(encoding="utf-8")
    marked = page.count('class="hit match"') + page.count('class="hit miss"')
    assert marked == summary["report_hits"] > 0  # every hit is in the benchmark's gallery: judged
    assert page.count('class="hit match"') == summary["report_hits_correct"]
    first = summary["first_correct_rank"]  # among the top 100 other appearances, or None
    assert first is None or (first >= 1 and (first <= 10) == (summary["report_hits_correct"] > 0))
    assert "query height" in printed and "target height" in printed and "hits are the query person" in printed
    assert (model_home() / "demo" / "reid.safetensors").is_file()
    assert PersonSearch.load("demo").bundle.feature_dim == 3 * 256

    weights = {
        name: (out / "model" / name).stat().st_mtime_ns
        for name in ("detector.safetensors", "reid.safetensors")
    }
    again = run_demo(out, _tiny_settings(), console=Console(record=True), progress=False)
    assert {
        name: (out / "model" / name).stat().st_mtime_ns for name in weights
    } == weights  # nothing retrained
    assert again["indexed_people"] == 0  # the gallery is already indexed
    assert again["gt_boxes_mAP"] == summary["gt_boxes_mAP"] and again["search_mAP"] == summary["search_mAP"]


def test_demo_with_a_given_model_trains_nothing(
    trained_demo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without ``train`` the demo searches with the model it is given (the shipped one by
    default): data, index, scores and report only, and nothing is saved or trained."""
    root, _, _ = trained_demo
    monkeypatch.setenv("PERSONSEARCH_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "demo"
    console = Console(record=True, width=400)
    model = root / "demo" / "model"
    summary = run_demo(
        out, DemoSettings(preset="tiny", seed=1, model=str(model)), console=console, progress=False
    )
    assert not (out / "model").exists() and (out / "index").is_dir() and summary["model"] == str(model)
    assert "detector" not in summary["timings_s"] and summary["indexed_people"] > 0
    assert not (tmp_path / "cache" / "models").exists()  # nothing saved
    printed = console.export_text()
    assert (
        "1/3 synthetic benchmark" in printed and "engines: detector torch-fp32, re-id torch-fp32" in printed
    )
    assert json.loads((out / "search.json").read_text())["hits"] and summary["query_other_appearances"] >= 1


def test_the_showcase_searches_for_the_regular_with_their_clearest_picture():
    from personsearch.data.synthetic import build_dataset, plan_benchmark, resolve_config
    from personsearch.interfaces.demo import showcase_query

    config = resolve_config("tiny", num_test_ids=8, appearances=(2, 3), regulars=1, regular_appearances=7)
    dataset = build_dataset(plan_benchmark(config, 4), Path("/unused"), "cuhk")
    query = showcase_query(dataset)
    assert query.pid == 1  # the regular: 7 appearances, everyone else at most 3
    pictures = [
        (float(b[3] - b[1]), s.name)
        for s in dataset.gallery
        for b, p, h in zip(s.boxes, s.pids, s.hard, strict=True)
        if p == 1 and not h
    ]
    assert (float(query.box[3] - query.box[1]), query.name) == max(pictures)
    assert sum(1 in s.pids for s in dataset.gallery if s.name != query.name) == 6
