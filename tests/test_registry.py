"""Every registered model builds, runs, gives features and survives a bundle save/load round trip
(timm's test-every-registered-model idea): adding a builder to the registry is enough to test it."""

from pathlib import Path

import pytest
import torch

from personsearch.models.bundle import SHIPPED_MODEL, load_component, save_component
from personsearch.models.detector import PersonDetector
from personsearch.models.registry import _MODELS, SHIPPED_MODELS, create_model, list_models, list_pretrained
from personsearch.models.reid import PyramidReID

torch.set_num_threads(1)


def _build(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    overrides = {"pretrained": None}
    if name.startswith("reid_"):
        return create_model(name, num_classes=3, input_size=(64, 32), **overrides)
    # small inputs keep the full-size detectors to about a second on a CPU
    return create_model(name, min_size=128, max_size=160, score_thresh=0.0, detections_per_img=5, **overrides)


@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_runs_and_round_trips_through_a_bundle(name: str, tmp_path: Path) -> None:
    model = _build(name).eval()
    if isinstance(model, PyramidReID):
        crops = torch.randn(2, 3, 64, 32, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            features = model(crops)
        assert features.shape == (2, model.config.embed_dim * len(model.levels))
        # L2-normalised, what the index stores
        assert torch.allclose(features.norm(dim=1), torch.ones(2), atol=1e-4)
        component, inputs = "reid", crops
    else:
        assert isinstance(model, PersonDetector)
        image = torch.rand(3, 120, 150, generator=torch.Generator().manual_seed(2))
        with torch.no_grad():
            (features,) = model([image])
        assert set(features) >= {"boxes", "scores"} and features["boxes"].shape[1:] == (4,)
        component, inputs = "detector", [image]
    save_component(tmp_path, component, model, model.config, {"registered_as": name})
    again, config, metadata = load_component(tmp_path, component)
    assert config == model.config and metadata == {"registered_as": name}
    with torch.no_grad():
        out = again(inputs)
    if component == "reid":
        assert torch.equal(out, features)
    else:
        assert torch.equal(out[0]["boxes"], features["boxes"]) and torch.equal(
            out[0]["scores"], features["scores"]
        )


@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_is_built_on_the_backbone_it_is_registered_with(name: str) -> None:
    assert _build(name).config.backbone == _MODELS[name].backbone


@pytest.mark.parametrize("name", list_pretrained())
def test_every_pretrained_tag_builds_with_its_weights(name: str) -> None:
    from personsearch.models.backbones import ARCHS
    from personsearch.models.weights import resolve_weights

    model, tag = name.split(".")
    if tag == "shipped":
        network = create_model(name)
        shipped, config, _ = load_component(SHIPPED_MODEL, _MODELS[model].component)
        assert network.config == config and config.backbone == _MODELS[model].backbone
        assert not network.training
        for key, value in shipped.state_dict().items():
            assert torch.equal(network.state_dict()[key], value), key
        with pytest.raises(ValueError, match="takes no overrides"):
            create_model(name, num_classes=3)
        return
    assert tag == "imagenet"
    weights = ARCHS[_MODELS[model].backbone].weights
    assert weights is not None
    try:
        path = resolve_weights(weights)
    except FileNotFoundError as err:  # resnet50's file is on no package: the error says how to get it
        with pytest.raises(FileNotFoundError, match="To get them"):
            create_model(name, **({"num_classes": 3} if model.startswith("reid_") else {}))
        pytest.skip(f"{weights} not on this machine: {err}"[:200])
    network = create_model(name, **({"num_classes": 3} if model.startswith("reid_") else {}))
    imagenet = torch.load(path, weights_only=True)
    stem = next(iter(network.backbone.state_dict().items()))
    assert any(torch.equal(stem[1], value) for value in imagenet.values()), "backbone is not ImageNet's"


def test_a_shipped_network_is_the_registered_model_it_says() -> None:
    for component, model in SHIPPED_MODELS.items():
        _, config, _ = load_component(SHIPPED_MODEL, component)
        assert config.backbone == _MODELS[model].backbone and _MODELS[model].component == component


def test_unknown_tags_are_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown pretrained tag 'reid_mobilenet_v2.shiped' \(did you mean"):
        create_model("reid_mobilenet_v2.shiped")
    with pytest.raises(ValueError, match="unknown pretrained tag 'reid_mobilenet_v2_tiny.imagenet'"):
        create_model("reid_mobilenet_v2_tiny.imagenet", num_classes=3)


def test_the_models_command_lists_every_registered_name() -> None:
    from typer.testing import CliRunner

    from personsearch.interfaces.cli import app
    from personsearch.models.backbones import ARCHS
    from personsearch.models.external_detectors import EXTERNAL_DETECTORS
    from personsearch.models.reid import VARIANTS

    result = CliRunner().invoke(app, ["models"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for name in [*list_models(), *list_pretrained(), *ARCHS, *VARIANTS, *EXTERNAL_DETECTORS]:
        assert name in result.output, name


def test_every_name_a_user_can_give_is_one_the_code_builds() -> None:
    """``personsearch.names`` (what the help and ``personsearch models`` list) and the code that
    builds each name agree: no listed name the code refuses, no buildable name left unlisted."""
    from personsearch import names
    from personsearch.models import engines
    from personsearch.models.external_detectors import EXTERNAL_DETECTORS
    from personsearch.models.reid import ReIDConfig

    assert set(EXTERNAL_DETECTORS) == set(names.DETECTORS) - {"bundle"}
    assert all(callable(getattr(kind, "detect", None)) for kind in EXTERNAL_DETECTORS.values())
    for variant in names.VARIANTS:
        ReIDConfig(num_classes=2, variant=variant)  # accepted
    with pytest.raises(ValueError):
        ReIDConfig(num_classes=2, variant="no-such-variant")
    for name in names.ENGINES:
        assert not (engines.unavailable(name) or "").startswith("unknown engine"), name
    assert (engines.unavailable("no-such-engine") or "").startswith("unknown engine")


@pytest.mark.parametrize("name", list_models())
def test_training_builds_the_registered_model_a_config_names(name: str) -> None:
    """``train-reid`` / ``train-detector`` build through the registry: a config gives the network
    its registered builder gives, weights and all (same seed)."""
    from personsearch.models.registry import registered_network

    model = _build(name)
    torch.manual_seed(0)
    again = registered_network(model.config)
    assert type(again) is type(model) and again.config == model.config
    assert again.state_dict().keys() == model.state_dict().keys()
    for key, value in model.state_dict().items():
        assert torch.equal(again.state_dict()[key], value), key


def test_a_config_on_an_unregistered_backbone_is_refused() -> None:
    from personsearch.models.registry import registered_network
    from personsearch.models.reid import ReIDConfig

    config = ReIDConfig(num_classes=3, backbone="mobilenet_v2_tiny", pretrained=False)
    object.__setattr__(config, "backbone", "vgg16")  # past ReIDConfig's own check, as a stale file would be
    with pytest.raises(ValueError, match="no registered reid model on backbone 'vgg16'; registered: reid_"):
        registered_network(config)
