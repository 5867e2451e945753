"""``benchmarks/rendered_people.py train --init imagenet``: the long runs on rendered people start
from ImageNet backbone weights, not from the shipped network they are compared with, and keep its
shape (so the bundle they write loads and scores like any other)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from model_testkit import mobilenet_weights_or_skip, rendered_folder
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]
FIRST_CONV = "features.0.0.weight"  # in torchvision's file; the backbone calls it stem.0


def _first_conv(state: dict[str, torch.Tensor]) -> torch.Tensor:
    return state["backbone.stem.0.weight"].float()


def test_imagenet_init_starts_from_imagenet_weights(monkeypatch, tmp_path):
    imagenet_weights = mobilenet_weights_or_skip()
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    from rendered_people import DEFAULT, train_rendered

    rendered_folder(tmp_path / "rendered")
    summary = train_rendered(
        tmp_path / "rendered", tmp_path / "run", "imagenet", [], device="cpu", identities=0, epochs=1
    )
    assert summary["steps"] >= 1

    trained = _first_conv(load_file(tmp_path / "run" / "reid.safetensors"))
    imagenet = torch.load(imagenet_weights, map_location="cpu", weights_only=True)[FIRST_CONV].float()
    shipped = _first_conv(load_file(DEFAULT / "reid.safetensors"))
    # a few steps at the backbone's learning rate move it a little from where it started
    assert (trained - imagenet).norm() < 0.05 * imagenet.norm()
    assert (trained - shipped).norm() > 10 * (trained - imagenet).norm()

    written = json.loads((tmp_path / "run" / "reid.json").read_text())
    shipped_config = json.loads((DEFAULT / "reid.json").read_text())["config"]
    for field in ("backbone", "levels", "variant", "embed_dim", "input_size"):
        assert written["config"][field] == shipped_config[field], field
    assert written["metadata"]["train"]["model"]["pretrained"] is True


def test_init_names_a_bundle_or_imagenet(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    from rendered_people import train_rendered

    rendered_folder(tmp_path / "rendered", people=2, shots=1)
    with pytest.raises((FileNotFoundError, ValueError)):
        train_rendered(tmp_path / "rendered", tmp_path / "run", tmp_path / "no-such-bundle", [], device="cpu")


def test_re_scoring_keeps_the_training_records_of_networks_not_trained_again(monkeypatch, tmp_path):
    """``evaluate`` replacing its results file keeps each scored network's training record (the
    recipe and seconds the docs quote) while the bundle still records that training, drops it
    for a network trained again since or no longer scored, and keeps a ``--keep`` row's."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    from rendered_people import carried_training

    def bundle(name: str, seconds: float) -> str:
        folder = tmp_path / name
        folder.mkdir()
        (folder / "reid.json").write_text(json.dumps({"metadata": {"summary": {"seconds": seconds}}}))
        return str(folder)

    same, retrained, gone, kept = bundle("same", 10.0), bundle("retrained", 99.0), "gone", "kept"
    earlier = {
        "training": {name: {"summary": {"seconds": 10.0}} for name in (same, retrained, gone, kept)},
        "training_machine": {"cpu": "AMD EPYC"},
    }
    scores = {same: {}, retrained: {}, kept: {}}
    carried = carried_training(earlier, scores, rescored={same, retrained})
    assert set(carried["training"]) == {same, kept}
    assert carried["training_machine"] == {"cpu": "AMD EPYC"}
    assert carried_training(earlier, {retrained: {}}, rescored={retrained}) == {}
