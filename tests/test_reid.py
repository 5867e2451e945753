"""The pyramid re-id network per variant, its test feature, the fast path, and the model registry."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from model_testkit import mobilenet_weights_or_skip
from torch.nn import functional as F

from personsearch.models.fast import autocast_for, prepare_for_inference
from personsearch.models.machine import native_bf16
from personsearch.models.registry import create_model, list_models
from personsearch.models.reid import PyramidReID, ReIDConfig, build_reid

torch.set_num_threads(1)
CLASSES, BATCH = 5, 4


def tiny(variant: str, **overrides: Any) -> PyramidReID:
    torch.manual_seed(0)
    return create_model("reid_mobilenet_v2_tiny", num_classes=CLASSES, variant=variant, **overrides)


def crops() -> torch.Tensor:
    return torch.randn(BATCH, 3, 64, 32, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize(("variant", "levels"), [("single", 1), ("multi", 3), ("clsa", 3)])
def test_train_outputs_per_level_top_last(variant: str, levels: int) -> None:
    model = tiny(variant).train()
    out = model(crops())
    assert len(out["logits"]) == len(out["embeddings"]) == levels
    assert all(z.shape == (BATCH, CLASSES) for z in out["logits"])
    assert all(e.shape == (BATCH, 64) for e in out["embeddings"])
    assert model.levels[-1] == "layer4"


@pytest.mark.parametrize(("variant", "levels"), [("single", 1), ("multi", 3), ("clsa", 3)])
def test_eval_feature_is_normalised_concatenation_of_normalised_levels(variant: str, levels: int) -> None:
    model = tiny(variant).eval()
    x = crops()
    with torch.no_grad():
        feature = model(x)
        maps = model.backbone(x)
        per_level = [F.normalize(model.heads[lvl].embedding(maps[lvl]), dim=1) for lvl in model.levels]
    assert feature.shape == (BATCH, 64 * levels) == (BATCH, model.feature_dim)
    torch.testing.assert_close(feature.norm(dim=1), torch.ones(BATCH))
    # each level weighs 1/sqrt(L)
    torch.testing.assert_close(feature, torch.cat(per_level, dim=1) / math.sqrt(levels))


def test_pyramid_levels_use_the_clsa_stage_channels() -> None:
    model = create_model("reid_mobilenet_v2", num_classes=3, pretrained=None)
    assert {lvl: h.embed.in_features for lvl, h in model.heads.items()} == {
        "layer2": 32,
        "layer3": 96,
        "layer4": 1280,
    }
    assert all(h.embed.out_features == 256 for h in model.heads.values())
    assert model.config.input_size == (256, 128)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(variant="pyramid"), r"variant='pyramid'; expected one of"),
        (dict(levels=("layer4",)), "variant 'clsa' .* needs at least two levels"),
        (dict(levels=("layer4", "layer3")), "expected distinct stages of .*lowest first"),
        (dict(levels=("layer3", "fc")), "expected distinct stages"),
        (dict(num_classes=-1), "must be the number of training identities"),
        (dict(temperature=0.0), "temperature=0.0 must be > 0"),
        (dict(mix_style=("stem",)), r"mix_style=\('stem',\): expected stages of"),
        (
            dict(variant="multi_branch", branch_from="layer3", mix_style=("layer1", "layer3")),
            "mixes styles in the shared stages only",
        ),
    ],
)
def test_bad_config_values_are_refused(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ReIDConfig(**{"num_classes": 3, **overrides})


def test_a_network_needs_its_training_identities() -> None:
    """num_classes 0 is a training config's "set by the data"; building a network from it is an error."""
    with pytest.raises(ValueError, match="needs at least one training identity"):
        build_reid(ReIDConfig(backbone="mobilenet_v2_tiny", pretrained=False))


def test_bf16_channels_last_features_match_fp32() -> None:
    mobilenet_weights_or_skip()
    torch.manual_seed(0)
    model = create_model("reid_mobilenet_v2", num_classes=3).eval()
    x = torch.randn(2, 3, 128, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        reference = model(x)
        fast = prepare_for_inference(model, "cpu", fast=True)
        assert not fast.training and fast.backbone.stem[0].weight.is_contiguous(
            memory_format=torch.channels_last
        )
        with autocast_for("cpu", True):
            low = fast(x.contiguous(memory_format=torch.channels_last))
    # bf16 only where the CPU computes it natively; elsewhere the fast path is fp32 channels_last
    assert low.dtype == (torch.bfloat16 if native_bf16("cpu") else torch.float32)
    assert F.cosine_similarity(low.float(), reference, dim=1).min() > (0.99 if native_bf16("cpu") else 0.9999)


def test_autocast_for_switches_precision() -> None:
    a = torch.randn(4, 4)
    with autocast_for("cpu", False):
        assert (a @ a).dtype == torch.float32
    with autocast_for(torch.device("cpu"), True):
        # emulated bf16 (AVX2-only CPUs) is 6-10x slower than fp32: no autocast there
        assert (a @ a).dtype == (torch.bfloat16 if native_bf16("cpu") else torch.float32)


def test_registry_lists_builds_and_suggests() -> None:
    assert {"reid_resnet50", "reid_mobilenet_v2", "detector_resnet50_c4", "detector_mobilenet_v2_c4"} <= set(
        list_models()
    )
    assert list_models("reid_*") == ["reid_mobilenet_v2", "reid_mobilenet_v2_tiny", "reid_resnet50"]
    assert tiny("single", embed_dim=32).eval()(crops()).shape == (BATCH, 32)
    with pytest.raises(ValueError, match=r"unknown model 'reid_resnet5' \(did you mean reid_resnet50"):
        create_model("reid_resnet5", num_classes=3)


# ---------------------------------------------------------------- the paper's two baselines (#35)
@pytest.mark.parametrize("fuse", ["mean", "concat"])
def test_image_pyramid_runs_single_at_every_scale_and_fuses(fuse: str) -> None:
    """The test feature is the single-level network's embedding of the crop at each scale
    (0.5x, 1x, 1.5x), fused; in training each batch is seen at one scale."""
    model = tiny("image_pyramid", fuse=fuse).eval()
    x = crops()
    head = model.heads["layer4"]
    with torch.no_grad():
        feature = model(x)
        per_scale = []
        for scale in (0.5, 1.0, 1.5):
            size = (round(64 * scale), round(32 * scale))
            resized = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=scale < 1)
            per_scale.append(F.normalize(head.embedding(model.backbone(resized)["layer4"]), dim=1))
    expected = F.normalize(
        torch.stack(per_scale).mean(0) if fuse == "mean" else torch.cat(per_scale, dim=1), dim=1
    )
    assert feature.shape == (BATCH, model.feature_dim) == (BATCH, 64 if fuse == "mean" else 192)
    torch.testing.assert_close(feature, expected, atol=1e-5, rtol=1e-4)
    out = model.train()(x)
    assert len(out["logits"]) == 1 and out["logits"][0].shape == (BATCH, CLASSES)


def test_multi_branch_routes_each_crop_to_its_height_band_in_training() -> None:
    """Three copies of the upper stages and heads and one identity classifier for all; a crop's
    identity loss reaches only the branch of its height band (< 60, 60-120, >= 120 px), so a
    branch whose band is not in the batch gets no gradient; at test time every branch runs and
    the features are fused."""
    from personsearch.models.losses import reid_loss

    model = tiny("multi_branch").train()
    assert len(model.branches) == len(model.heads) == 3
    assert model.branches[0] is not model.branches[1]
    heights = torch.tensor([20.0, 59.0, 200.0, 400.0])  # small, small, large, large: no medium
    out = model(crops(), heights)
    assert [r.tolist() for r in out["routes"]] == [
        [True, True, False, False],
        [False, False, False, False],
        [False, False, True, True],
    ]
    loss, parts = reid_loss(out, torch.tensor([0, 1, 2, 3]), "multi_branch")
    loss.backward()
    assert float(parts["ce_1"]) == 0.0
    assert all(head.classifier is None for head in model.heads.values())
    assert model.shared["classifier"].weight.grad.abs().sum() > 0
    grads = [head.embed.weight.grad for head in model.heads.values()]
    assert grads[0].abs().sum() > 0 and grads[2].abs().sum() > 0
    assert grads[1] is None or grads[1].abs().sum() == 0
    with pytest.raises(ValueError, match="heights"):
        model(crops())
    model.eval()
    with torch.no_grad():
        feature = model(crops())
    assert feature.shape == (BATCH, model.feature_dim) == (BATCH, 64)
    torch.testing.assert_close(feature.norm(dim=1), torch.ones(BATCH))


def test_routing_weights_send_each_box_to_its_training_band() -> None:
    """The test-time routing of a multi_branch network's features uses the bands exactly as
    training's routes do (a height on a boundary goes to the upper band)."""
    from personsearch.models.reid import route_weights

    model = tiny("multi_branch").train()
    heights = np.array([20.0, 59.9, 60.0, 119.0, 120.0, 400.0], np.float32)
    routes = model(torch.randn(len(heights), 3, 32, 16), torch.from_numpy(heights))["routes"]
    weights = route_weights(heights, model.config.bands)
    assert weights.shape == (6, 3) and (weights.sum(1) == 1).all()
    np.testing.assert_array_equal(weights.T.astype(bool), torch.stack(routes).numpy())


@pytest.mark.parametrize("variant", ["image_pyramid", "multi_branch"])
def test_the_baselines_train_and_round_trip_through_a_bundle(variant: str, tmp_path) -> None:
    """A few steps of ``train_reid`` (which hands the crops' heights to the network), then the
    saved bundle gives the same features."""
    from test_training import tiny_config, tiny_crop_set

    from personsearch.models.bundle import load_component
    from personsearch.training.reid import train_reid

    config = tiny_config(variant, epochs=1, batch_size=4)
    crop_set = tiny_crop_set(n_ids=4, per_id=4)
    crop_set.heights[:] = [30.0, 90.0, 150.0, 300.0] * 4
    summary = train_reid(config, tmp_path, progress=False, crop_set=crop_set)
    assert summary["steps"] == 4
    network, saved, _ = load_component(tmp_path, "reid")
    assert saved.variant == variant
    x = torch.randn(2, 3, 32, 16, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert network(x).shape == (2, network.feature_dim)
