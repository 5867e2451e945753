"""End to end on the tiny synthetic benchmark: train both networks from the CLI, evaluate, index,
search through the Python API, and the model bundle round trip."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from personsearch.data import load_dataset
from personsearch.evaluation.pipeline import ground_truth_detections
from personsearch.evaluation.search import evaluate_search
from personsearch.index import ModelMismatchError, PersonIndex
from personsearch.interfaces.api import PersonSearch
from personsearch.interfaces.cli import app
from personsearch.models.bundle import ModelBundle, load_component

torch.set_num_threads(1)
runner = CliRunner()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(dataset root, bundle dir): the tiny benchmark and a tiny model trained on it by the CLI."""
    root = tmp_path_factory.mktemp("e2e")
    data, model = root / "data", root / "model"
    result = runner.invoke(app, ["make-synthetic", str(data), "--preset", "tiny", "--seed", "3"])
    assert result.exit_code == 0, result.output
    det_cfg = root / "det.yaml"
    det_cfg.write_text(
        "model:\n  backbone: mobilenet_v2_tiny\n  min_size: 600\n  score_thresh: 0.05\n"
        "epochs: 1\nbatch_size: 2\n"
    )
    # nested settings from the command line (--set) win over the file
    sets = ["--set", "model.min_size=300", "--set", "model.max_size=400"]
    result = runner.invoke(
        app,
        [
            "train-detector",
            "--out",
            str(model),
            "--config",
            str(det_cfg),
            "--dataset",
            str(data),
            "--pretrained",
            "none",
            *sets,
        ],
    )
    assert result.exit_code == 0, result.output
    reid_cfg = root / "reid.yaml"
    reid_cfg.write_text(
        "model:\n  backbone: mobilenet_v2_tiny\n  input_size: [64, 32]\nepochs: 2\nbatch_size: 16\n"
    )
    result = runner.invoke(
        app,
        [
            "train-reid",
            "--out",
            str(model),
            "--config",
            str(reid_cfg),
            "--dataset",
            str(data),
            "--pretrained",
            "none",
        ],
    )
    assert result.exit_code == 0, result.output
    return data, model


def test_training_writes_a_complete_bundle_with_logs(trained: tuple[Path, Path]) -> None:
    _, model = trained
    for name in ("detector.safetensors", "detector.json", "reid.safetensors", "reid.json"):
        assert (model / name).is_file(), name
    for part in ("train-detector", "train-reid"):
        assert (model / part / "last.pt").is_file()
        assert len((model / part / "metrics.csv").read_text().splitlines()) > 1
    meta = json.loads((model / "reid.json").read_text())
    assert meta["config"]["variant"] == "clsa" and meta["config"]["backbone"] == "mobilenet_v2_tiny"
    detector = json.loads((model / "detector.json").read_text())["config"]
    assert (detector["min_size"], detector["max_size"], detector["score_thresh"]) == (300, 400, 0.05)


def test_bundle_round_trip_gives_identical_outputs(trained: tuple[Path, Path]) -> None:
    _, model = trained
    first, _, _ = load_component(model, "reid")
    second, _, _ = load_component(model, "reid")
    crops = torch.rand(3, 3, 64, 32)
    with torch.no_grad():
        assert torch.equal(first(crops), second(crops))
    features = first(crops).detach()
    assert features.shape == (3, 3 * 256)
    torch.testing.assert_close(features.norm(dim=1), torch.ones(3))


def test_a_bundle_with_settings_this_version_does_not_know_is_refused(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    _, model = trained
    copy = tmp_path / "bundle"
    shutil.copytree(model, copy)
    description = json.loads((copy / "reid.json").read_text())
    description["config"]["pyramid_levelz"] = 4  # a typo, or a setting of a newer version
    (copy / "reid.json").write_text(json.dumps(description))
    with pytest.raises(
        ValueError, match=r"reid\.json: unknown setting\(s\) \['pyramid_levelz'\].*another version"
    ):
        load_component(copy, "reid")


def test_evaluate_reports_every_protocol_part(trained: tuple[Path, Path]) -> None:
    data, model = trained
    result = runner.invoke(
        app,
        [
            "evaluate",
            "--model",
            str(model),
            "--dataset",
            str(data),
            "--gallery-size",
            "50",
            "--json",
            str(data.parent / "eval.json"),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads((data.parent / "eval.json").read_text())
    assert set(report) == {"search", "search_gt_boxes", "detection", "timings_s"}
    gt = report["search_gt_boxes"]
    assert 0.0 <= gt["mAP"] <= 1.0 and gt["n_queries"] == len(load_dataset(data).queries)
    assert "target height" in result.output and "query height" in result.output


def test_oracle_round_trip_on_the_synthetic_benchmark_scores_perfectly(trained: tuple[Path, Path]) -> None:
    """synthetic -> loader -> ground-truth boxes as detections and one-hot identity features
    -> protocol: mAP = top-1 = 1 (every unlabelled person gets a dimension of its own)."""
    data, _ = trained
    dataset = load_dataset(data)
    pids = sorted(
        {int(p) for s in dataset.gallery for p in s.pids if p >= 0} | {q.pid for q in dataset.queries}
    )
    unlabelled = sum(int((s.pids < 0).sum()) for s in dataset.gallery)
    dim = len(pids) + unlabelled
    next_free = iter(range(len(pids), dim))

    def one_hot(pid: int) -> np.ndarray:
        v = np.zeros(dim, np.float32)
        v[pids.index(pid) if pid >= 0 else next(next_free)] = 1
        return v

    dets = ground_truth_detections(dataset.gallery)
    feats = [
        np.stack([one_hot(int(p)) for p in s.pids]) if len(s.pids) else np.zeros((0, dim), np.float32)
        for s in dataset.gallery
    ]
    queries = np.stack([one_hot(q.pid) for q in dataset.queries])
    result = evaluate_search(dataset, dets, feats, queries, gallery_size=50)
    assert result.mAP == pytest.approx(1.0)
    assert result.topk[1] == pytest.approx(1.0)
    assert result.n_queries == len(dataset.queries)


def test_api_index_search_report_round_trip(trained: tuple[Path, Path], tmp_path: Path) -> None:
    data, model = trained
    dataset = load_dataset(data)
    engine = PersonSearch.load(model)
    gallery = [scene.path for scene in dataset.gallery[:6]]
    summary = engine.index(gallery, tmp_path / "index", progress=False)
    assert summary.sources_indexed == 6 and not summary.skipped
    again = engine.index(gallery, tmp_path / "index", progress=False)
    assert again.sources_unchanged == 6 and again.people_added == 0
    scene = dataset.gallery[0]
    found = engine.search(tmp_path / "index", scene.path, box=tuple(scene.boxes[0].tolist()), top_k=3)
    assert 0 < len(found.hits) <= 3
    assert [h.rank for h in found.hits] == list(range(1, len(found.hits) + 1))
    scores = [h.score for h in found.hits]
    assert scores == sorted(scores, reverse=True)
    document = found.to_json()
    assert document["schema"] == "personsearch.search-results" and len(document["hits"]) == len(found.hits)
    html = found.write_html(tmp_path / "r.html").read_text()
    assert "data:image/jpeg;base64," in html
    assert found.write_contact_sheet(tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # re-ranked through the API: the same index, said so in the JSON and the report
    reranked = engine.search(
        tmp_path / "index", scene.path, box=tuple(scene.boxes[0].tolist()), top_k=3, rerank=True
    )
    assert 0 < len(reranked.hits) <= 3 and reranked.to_json()["ranking"] == "k-reciprocal"
    assert "k-reciprocal" in reranked.write_html(tmp_path / "rr.html").read_text()
    assert "k-reciprocal" not in html


def test_an_index_refuses_another_model(trained: tuple[Path, Path], tmp_path: Path) -> None:
    data, model = trained
    other = tmp_path / "other"
    other.mkdir()
    for name in ("detector.json", "detector.safetensors", "reid.json"):
        (other / name).write_bytes((model / name).read_bytes())
    reid, config, meta = load_component(model, "reid")
    with torch.no_grad():
        for p in reid.parameters():
            p.add_(0.01)
    from personsearch.models.bundle import save_component

    save_component(other, "reid", reid, config, meta)
    dataset = load_dataset(data)
    PersonSearch.load(model).index([dataset.gallery[0].path], tmp_path / "index", progress=False)
    with pytest.raises(ModelMismatchError, match="model"):
        PersonIndex.open(tmp_path / "index", ModelBundle(other))


def test_cli_search_prints_hits_and_writes_reports(trained: tuple[Path, Path], tmp_path: Path) -> None:
    data, model = trained
    dataset = load_dataset(data)
    index = tmp_path / "index"
    result = runner.invoke(
        app,
        ["index", *[str(s.path) for s in dataset.gallery[:4]], "--index", str(index), "--model", str(model)],
    )
    assert result.exit_code == 0, result.output
    scene = dataset.gallery[1]
    box = ",".join(f"{v:.0f}" for v in scene.boxes[0])
    result = runner.invoke(
        app,
        [
            "search",
            "--index",
            str(index),
            "--query",
            str(scene.path),
            "--box",
            box,
            "--model",
            str(model),
            "--top-k",
            "2",
            "--json",
            str(tmp_path / "hits.json"),
            "--html",
            str(tmp_path / "hits.html"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "hits.json").read_text())["schema_version"] == 2
    assert (tmp_path / "hits.html").is_file()
    result = runner.invoke(
        app,
        [
            "search",
            "--index",
            str(index),
            "--query",
            str(scene.path),
            "--box",
            "1,2,3",
            "--model",
            str(model),
        ],
    )
    assert result.exit_code != 0 and "x1,y1,x2,y2" in result.output
