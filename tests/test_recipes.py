"""The CUHK-SYSU and PRW recipes (configs/*_cuhk_sysu.yaml, configs/*_prw.yaml) train for real on
the hand-written, format-exact fixtures: loader -> training -> a bundle component that loads.

Only what cannot run here, or not in seconds, is changed from the recipe: no ImageNet ResNet-50
weights ship on PyPI (``model.pretrained=false``), the dataset is the fixture, one epoch (one
step), and the detector samples 32 RoIs per image instead of 256 (its box head, ResNet-50's
``layer4`` at stride 1 on every sampled RoI, takes over a minute a step on a 2-core CPU with 256). The
network, its input scale and its proposals are the recipe's own.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from mat_fixtures import write_cuhk_fixture, write_prw_fixture

from personsearch.models.bundle import load_component
from personsearch.training.config import DetectorTrainConfig, ReIDTrainConfig, load_config
from personsearch.training.detector import train_detector
from personsearch.training.reid import train_reid

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
RECIPES = sorted([*CONFIGS.glob("*_cuhk_sysu.yaml"), *CONFIGS.glob("*_prw.yaml")])
FIXTURES = {"cuhk_sysu": write_cuhk_fixture, "prw": write_prw_fixture}


def test_every_benchmark_has_a_detector_and_a_reid_recipe() -> None:
    names = {path.stem for path in RECIPES}
    assert names == {f"{part}_resnet50_{bench}" for part in ("detector", "reid") for bench in FIXTURES}


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_recipe_trains_on_the_format_exact_fixture(recipe: Path, tmp_path: Path) -> None:
    bench = "cuhk_sysu" if recipe.stem.endswith("cuhk_sysu") else "prw"
    data = tmp_path / bench
    FIXTURES[bench](data)
    is_detector = recipe.stem.startswith("detector")
    cls, train = (DetectorTrainConfig, train_detector) if is_detector else (ReIDTrainConfig, train_reid)
    as_shipped = load_config(cls, recipe)
    sets = ["model.pretrained=false", f"data.dataset={data}", "epochs=1", "device=cpu", "fast=false"]
    config = load_config(cls, recipe, sets + (["model.box_batch_size_per_image=32"] if is_detector else []))
    assert config.model.backbone == "resnet50"
    torch.manual_seed(0)
    summary = train(config, tmp_path / "model", progress=False)
    assert summary["steps"] >= 1 and summary["epochs"] == 1
    _, saved, meta = load_component(tmp_path / "model", "detector" if is_detector else "reid")
    for name in ("backbone", "input_size", "min_size", "rpn_post_nms_top_n", "roi_size", "levels", "variant"):
        if hasattr(as_shipped.model, name):  # the network is the recipe's, not a test stand-in
            assert getattr(saved, name) == getattr(as_shipped.model, name), name
    assert meta["train"]["data"]["dataset"] == str(data)
