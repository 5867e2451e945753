"""The frozen, cached trunk (training/trunk.py): a network fed the kept stage outputs computes
what it computes from the images, the kept views are the augmentation's, and training above them
leaves the frozen stages untouched and writes a bundle that runs on images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from personsearch.data.crops import CropAugment, CropSet, normalize_crops
from personsearch.models.backbones import FeatureBackbone
from personsearch.models.bundle import load_component
from personsearch.models.registry import registered_network
from personsearch.models.reid import ReIDConfig
from personsearch.training.config import OptimConfig, ReIDTrainConfig, TrunkConfig
from personsearch.training.reid import train_reid
from personsearch.training.trunk import TrunkCache

TINY = ReIDConfig(
    num_classes=4, backbone="mobilenet_v2_tiny", pretrained=None, input_size=(64, 32), embed_dim=16
)


def tiny_network() -> torch.nn.Module:
    torch.manual_seed(0)
    return registered_network(TINY)


def crops(n: int = 8) -> torch.Tensor:
    return torch.randint(
        0, 256, (n, 3, 64, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1)
    )


def test_a_network_fed_its_trunk_output_gives_the_features_it_gives_from_images() -> None:
    net = tiny_network().eval()
    backbone: FeatureBackbone = net.backbone
    images = normalize_crops(crops())
    with torch.no_grad():
        direct = net(images)
        stem_and_layer1 = backbone.run_through(images, "layer1")
        with backbone.fed_above("layer1"):
            fed = net(stem_and_layer1)
        again = net(images)  # outside the block it takes images again
    torch.testing.assert_close(fed, direct)
    torch.testing.assert_close(again, direct)
    with pytest.raises(ValueError, match="layer2"), backbone.fed_above("layer2"):
        pass  # layer2 is a pyramid level: its output cannot come from a cache above it


def test_kept_views_are_the_augmented_crops_through_the_frozen_stages_each_computed_once() -> None:
    net = tiny_network()
    backbone: FeatureBackbone = net.backbone
    backbone.freeze(("stem", "layer1"))
    net.train()
    augment = CropAugment()
    source = crops()
    cache = TrunkCache(source, augment, TrunkConfig(frozen=("stem", "layer1"), views=2), seed=5)
    index = torch.tensor([0, 3, 3, 7, 0])
    first = cache.batch(backbone, index, torch.Generator().manual_seed(0), fast=False)
    assert first.shape == (5, *backbone.run_through(normalize_crops(source[:1]), "layer1").shape[1:])
    assert cache.computed == cache.kept <= 4  # at most one computation per (crop, view) drawn
    # a kept view is crop k's augmentation from the seed (5, k, view), through stem and layer1
    for view in range(2):
        generator = torch.Generator().manual_seed(hash((5, 3, view)) & 0x7FFFFFFF)
        with torch.no_grad():
            expected = backbone.run_through(normalize_crops(augment(source[3:4], generator)), "layer1")[0]
        if (3 * 2 + view) in cache._kept:
            torch.testing.assert_close(cache._kept[3 * 2 + view].float(), expected, atol=0.02, rtol=0.01)
    computed = cache.computed
    for seed in range(20):  # every view drawn over and over: 8 crops x 2 views at most, ever
        cache.batch(backbone, torch.arange(8), torch.Generator().manual_seed(seed), fast=False)
    assert computed <= cache.computed <= 16 and cache.kept == cache.computed
    with torch.no_grad():
        next(backbone.stem.parameters()).mul_(2)
    with pytest.raises(ValueError, match="weights changed"):
        cache.batch(backbone, index, torch.Generator().manual_seed(0), fast=False)


def test_no_memory_for_views_still_trains_each_batch_from_fresh_ones() -> None:
    net = tiny_network()
    net.backbone.freeze(("stem", "layer1"))
    cache = TrunkCache(crops(), CropAugment(), TrunkConfig(frozen=("stem", "layer1"), cache_mb=0), seed=0)
    out = cache.batch(net.backbone, torch.arange(4), torch.Generator().manual_seed(0), fast=False)
    assert out.shape[0] == 4 and cache.kept == 0 and cache.computed == 4


def test_the_frozen_stages_are_the_lowest_named_in_order_and_read_from_the_command_line() -> None:
    assert TrunkConfig(frozen="stem,layer1").frozen == ("stem", "layer1")  # type: ignore[arg-type]
    for wrong in (("layer1",), ("stem", "layer2")):
        with pytest.raises(ValueError, match="lowest stages"):
            TrunkConfig(frozen=wrong)


def test_training_above_a_frozen_trunk_keeps_it_and_writes_a_network_that_runs_on_images(
    tmp_path: Path,
) -> None:
    start = tiny_network()
    source = crops(16)
    labels = torch.arange(16) % 4
    crop_set = CropSet(source, labels, np.array([str(i) for i in range(4)]), np.full(16, 64.0))
    config = ReIDTrainConfig(
        model=TINY,
        optim=OptimConfig(lr=0.05, backbone_lr=0.05, warmup_steps=1),
        trunk=TrunkConfig(frozen=("stem", "layer1"), views=2),
        epochs=3,
        batch_size=8,
        device="cpu",
    )
    seen: list[int] = []
    summary = train_reid(
        config,
        tmp_path,
        progress=False,
        crop_set=crop_set,
        init=start.state_dict(),
        on_epoch_end=lambda done, net: seen.append(int(net.eval()(normalize_crops(source[:2])).shape[0])),
    )
    assert summary["steps"] == 6 and 0 < summary["trunk_views_computed"] <= 32
    assert seen == [2, 2, 2]  # between epochs the network is fed images, as a user feeds it
    trained, _, _ = load_component(tmp_path, "reid")
    before, after = start.state_dict(), trained.state_dict()
    for name in before:
        if ".classifier." in name or "num_batches_tracked" in name:
            continue
        same = torch.equal(before[name], after[name])
        assert same == name.startswith(("backbone.stem.", "backbone.layer1.")), name
    with torch.no_grad():
        features = trained.eval()(normalize_crops(source[:3]))
    assert features.shape == (3, trained.feature_dim)
