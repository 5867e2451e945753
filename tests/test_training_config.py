"""Training configs: YAML round trip, overrides, and errors on typos."""

import dataclasses
from pathlib import Path

import pytest

from personsearch.training.config import (
    DetectorTrainConfig,
    ReIDTrainConfig,
    load_config,
    parse_overrides,
    save_config,
)


def test_yaml_round_trip_keeps_nested_and_tuple_settings(tmp_path: Path) -> None:
    config = load_config(ReIDTrainConfig, None, model={"variant": "multi", "input_size": [128, 64]}, epochs=3)
    config.optim.milestones = (0.5,)
    path = tmp_path / "reid.yaml"
    save_config(config, path)
    again = load_config(ReIDTrainConfig, path)
    assert again == config
    assert again.model.input_size == (128, 64) and again.model.variant == "multi"
    assert again.optim.milestones == (0.5,)


def test_both_networks_share_one_config_shape() -> None:
    """model / data / optim sections and the same run settings, for the detector and the re-id;
    the re-id alone has a ``guide`` (a frozen ImageNet network's term, training/guide.py) and a
    ``trunk`` (frozen lowest stages whose outputs are kept, training/trunk.py)."""
    shapes = [{f.name for f in dataclasses.fields(cls)} for cls in (DetectorTrainConfig, ReIDTrainConfig)]
    assert shapes[1] - shapes[0] == {"guide", "trunk"} and shapes[0] <= shapes[1]
    assert {"model", "data", "optim"} <= shapes[0]
    assert (
        dataclasses.fields(ReIDTrainConfig().data)
        and ReIDTrainConfig().data.dataset == DetectorTrainConfig().data.dataset == ""
    )


def test_a_flat_setting_is_pointed_to_its_section(tmp_path: Path) -> None:
    """A config in the old flat re-id shape fails with the section each setting moved to."""
    path = tmp_path / "old.yaml"
    path.write_text("dataset: data/x\nbackbone: resnet50\nvariant: multi\nepochs: 3\n")
    with pytest.raises(
        ValueError,
        match=(
            r"unknown setting\(s\) \['backbone', 'dataset', 'variant'\] \(settings of a section: "
            r"backbone -> model.backbone, dataset -> data.dataset, variant -> model.variant\)"
        ),
    ):
        load_config(ReIDTrainConfig, path)


def test_overrides_win_over_the_file_and_none_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "det.yaml"
    path.write_text("epochs: 4\nmodel:\n  backbone: resnet50\noptim:\n  lr: 0.02\n")
    config = load_config(DetectorTrainConfig, path, epochs=9, seed=None, model={"min_size": 480})
    assert config.epochs == 9
    assert config.seed == 0
    assert config.model.backbone == "resnet50"
    assert config.model.min_size == 480
    # nested settings merge key by key: the training defaults of the untouched keys survive
    assert config.model.rpn_post_nms_top_n == DetectorTrainConfig().model.rpn_post_nms_top_n == (512, 300)
    assert config.optim.lr == 0.02
    assert config.optim.weight_decay == DetectorTrainConfig().optim.weight_decay


def test_set_pairs_reach_nested_settings_and_win_over_file_and_flags(tmp_path: Path) -> None:
    assert parse_overrides(
        ["optim.lr=0.02", "model.anchor_sizes=[16, 32]", "model.backbone=resnet50", "flip=false"]
    ) == {
        "optim": {"lr": 0.02},
        "model": {"anchor_sizes": [16, 32], "backbone": "resnet50"},
        "flip": False,
    }
    assert load_config(ReIDTrainConfig, None, ["data.flip=false", "model.align_weight=4"]).data.flip is False
    path = tmp_path / "det.yaml"
    path.write_text("epochs: 4\nmodel:\n  min_size: 600\n")
    config = load_config(
        DetectorTrainConfig,
        path,
        ["epochs=7", "model.anchor_sizes=[16,32,64]", "optim.milestones=[0.5]"],
        epochs=9,
    )
    assert config.epochs == 7 and config.model.min_size == 600
    assert config.model.anchor_sizes == (16, 32, 64) and config.optim.milestones == (0.5,)
    assert config.optim.lr == DetectorTrainConfig().optim.lr


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        ("epochs", "expected KEY=VALUE"),
        ("optim..lr=1", "expected KEY=VALUE"),
        ("=3", "expected KEY=VALUE"),
        ("optim.lr=[1", "not valid YAML"),
    ],
)
def test_malformed_set_pairs_are_named(pair: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as err:
        parse_overrides([pair])
    assert repr(pair) in str(err.value)


def test_set_of_an_unknown_setting_names_it_with_its_section() -> None:
    with pytest.raises(ValueError, match=r"optim: unknown setting\(s\) \['learning_rate'\]"):
        load_config(ReIDTrainConfig, None, ["optim.learning_rate=0.1"])
    with pytest.raises(ValueError, match=r"model: unknown setting\(s\) \['anchor_size'\]"):
        load_config(DetectorTrainConfig, None, ["model.anchor_size=[16]"])


def test_unknown_setting_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("epoch: 3\n")
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['epoch'\]"):
        load_config(ReIDTrainConfig, path)
    path.write_text("optim:\n  learning_rate: 0.1\n")
    with pytest.raises(ValueError, match="optim: unknown setting"):
        load_config(ReIDTrainConfig, path)
    path.write_text("model:\n  score_thresh: 2.0\n")
    with pytest.raises(ValueError, match="score_thresh"):
        load_config(DetectorTrainConfig, path)


def test_missing_and_malformed_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_config(ReIDTrainConfig, tmp_path / "nope.yaml")
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ValueError, match="expected a mapping"):
        load_config(ReIDTrainConfig, path)


def test_shipped_configs_load() -> None:
    root = Path(__file__).resolve().parents[1] / "configs"
    files = sorted(root.glob("*.yaml"))
    assert files, "configs/ ships no YAML file"
    for path in files:
        cls = DetectorTrainConfig if path.name.startswith("detector") else ReIDTrainConfig
        load_config(cls, path)


def test_every_job_takes_the_one_config_shape(tmp_path: Path) -> None:
    """adapt, adapt-detector and distill-int8 read YAML and dotted --set like the trainers."""
    from personsearch.training.adapt import AdaptConfig
    from personsearch.training.adapt_detector import AdaptDetectorConfig
    from personsearch.training.int8_distill import Int8DistillConfig

    (tmp_path / "adapt.yaml").write_text("rounds: 1\noptim:\n  lr: 0.01\n")
    adapt = load_config(
        AdaptConfig,
        tmp_path / "adapt.yaml",
        ["optim.backbone_lr=0.001", "budget_footage=2"],
        epochs=3,
        budget_s=None,
    )
    assert (adapt.rounds, adapt.epochs, adapt.optim.lr, adapt.optim.backbone_lr, adapt.budget_footage) == (
        1,
        3,
        0.01,
        0.001,
        2,
    )
    assert adapt.optim.warmup_steps == AdaptConfig().optim.warmup_steps  # the rest of the section kept
    detector = load_config(AdaptDetectorConfig, None, ["labels.fps=2.5"], epochs=4)
    assert (detector.labels.fps, detector.epochs, detector.labels.until_s) == (
        2.5,
        4,
        AdaptDetectorConfig().labels.until_s,
    )
    assert load_config(Int8DistillConfig, None, ["steps=7"]).steps == 7
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['lr'\].*optim.lr"):
        load_config(AdaptConfig, None, ["lr=0.1"])
