"""Backbones as named stages: channels and strides, pretrained loading, freezing, the C4 split."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from model_testkit import isolate_weights, mobilenet_weights_or_skip

from personsearch.models.backbones import (
    STAGES,
    InstanceBatchNorm,
    add_instance_norm,
    build_backbone,
    mix_styles,
)
from personsearch.models.weights import load_state_dict_file

torch.set_num_threads(1)


def _shapes(backbone: torch.nn.Module, size: int = 64) -> dict[str, tuple[int, ...]]:
    with torch.no_grad():
        return {k: tuple(v.shape[1:]) for k, v in backbone.eval()(torch.randn(1, 3, size, size)).items()}


def test_resnet50_stages_have_the_paper_channels_and_strides() -> None:
    backbone = build_backbone("resnet50", None, out_stages=STAGES)
    assert backbone.channels == {"stem": 64, "layer1": 256, "layer2": 512, "layer3": 1024, "layer4": 2048}
    assert backbone.strides == {"stem": 4, "layer1": 4, "layer2": 8, "layer3": 16, "layer4": 32}
    assert _shapes(backbone) == {
        "stem": (64, 16, 16),
        "layer1": (256, 16, 16),
        "layer2": (512, 8, 8),
        "layer3": (1024, 4, 4),
        "layer4": (2048, 2, 2),
    }


def test_mobilenet_v2_stage_ends_match_clsa_levels() -> None:
    backbone = build_backbone("mobilenet_v2", None, out_stages=("layer2", "layer3", "layer4"))
    assert backbone.out_channels == {"layer2": 32, "layer3": 96, "layer4": 1280}
    assert _shapes(backbone) == {"layer2": (32, 8, 8), "layer3": (96, 4, 4), "layer4": (1280, 2, 2)}
    assert backbone.strides["stem"] == 2 and backbone.channels["layer1"] == 24


def test_forward_stops_at_the_last_requested_stage() -> None:
    backbone = build_backbone("mobilenet_v2_tiny", None, out_stages=("layer1",))
    calls = []
    backbone.layer2.register_forward_hook(lambda *_: calls.append("layer2"))
    assert _shapes(backbone) == {"layer1": (8, 16, 16)}
    assert calls == []


def test_mobilenet_v2_imagenet_weights_load_with_every_key_matched() -> None:
    state = load_state_dict_file(mobilenet_weights_or_skip())
    backbone = build_backbone("mobilenet_v2", True, out_stages=STAGES)
    ours = {k: v for k, v in backbone.state_dict().items() if not k.endswith("num_batches_tracked")}
    theirs = {
        k: v
        for k, v in state.items()
        if not k.startswith("classifier.") and not k.endswith("num_batches_tracked")
    }
    assert len(ours) == len(theirs) == 260
    torch.testing.assert_close(ours["stem.0.weight"], theirs["features.0.0.weight"])
    torch.testing.assert_close(ours["layer3.13.conv.3.running_var"], theirs["features.13.conv.3.running_var"])
    torch.testing.assert_close(ours["layer4.18.0.weight"], theirs["features.18.0.weight"])


def test_a_weights_file_of_another_network_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "partial.pth"
    torch.save({"features.0.0.weight": torch.zeros(32, 3, 3, 3)}, path)
    with pytest.raises(
        ValueError, match=r"partial\.pth: not torchvision mobilenet_v2 weights: \d+ missing keys"
    ):
        build_backbone("mobilenet_v2", path)


def test_resnet50_without_its_file_explains_and_from_scratch_warns(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    isolate_weights(monkeypatch, tmp_path)
    with pytest.raises(FileNotFoundError, match=r"resnet50-0676ba61\.pth.*pretrained=False"):
        build_backbone("resnet50", True)
    with caplog.at_level(logging.WARNING):
        build_backbone("mobilenet_v2_tiny", False)
    assert "FROM SCRATCH" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        build_backbone("mobilenet_v2_tiny", None)  # a caller about to load trained weights: no warning
    assert caplog.text == ""
    with pytest.raises(
        ValueError, match="'mobilenet_v2_tiny' has no pretrained weights; pass pretrained=False"
    ):
        build_backbone("mobilenet_v2_tiny", True)


def test_frozen_stages_keep_weights_and_statistics_in_training() -> None:
    backbone = build_backbone("mobilenet_v2_tiny", None, out_stages=("layer2",), frozen_stages=("stem",))
    before = {k: v.clone() for k, v in backbone.stem.state_dict().items()}
    backbone.train()
    assert not backbone.stem.training and backbone.layer1.training
    assert all(not p.requires_grad for p in backbone.stem.parameters())
    assert all(p.requires_grad for p in backbone.layer1.parameters())
    running_before = backbone.layer1[0].conv[0][1].running_mean.clone()
    backbone(torch.randn(4, 3, 32, 32) * 3 + 1)
    for key, value in backbone.stem.state_dict().items():
        assert torch.equal(value, before[key]), key
    # trainable BN did update
    assert not torch.equal(backbone.layer1[0].conv[0][1].running_mean, running_before)


def test_split_gives_the_c4_trunk_and_head() -> None:
    backbone = build_backbone("mobilenet_v2_tiny", None, frozen_stages=("stem",))
    trunk, head = backbone.split("layer3")
    assert trunk.out_channels == {"layer3": 24} and trunk.frozen_stages == ("stem",)
    assert [name for name, _ in head.named_children()] == ["layer4"]
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(head.eval()(trunk.eval()(x)["layer3"]), backbone.eval()(x)["layer4"])
    frozen_late = build_backbone("mobilenet_v2_tiny", None, frozen_stages=("layer4",))
    with pytest.raises(ValueError, match=r"stages \['layer4'\] are frozen but would be in the head"):
        frozen_late.split("layer3")


def test_bad_names_are_refused_with_the_choices() -> None:
    with pytest.raises(
        ValueError, match="unknown backbone 'resnet51'; available: mobilenet_v2, mobilenet_v2_tiny, resnet50"
    ):
        build_backbone("resnet51")
    with pytest.raises(ValueError, match=r"stages \['layer5'\] requested.*has stages \['stem', 'layer1'"):
        build_backbone("mobilenet_v2_tiny", None, out_stages=("layer5",))


def test_instance_batch_norm_takes_over_batchnorm_and_ignores_each_images_colour_and_contrast() -> None:
    generator = torch.Generator().manual_seed(0)
    bn = torch.nn.BatchNorm2d(6)
    with torch.no_grad():
        for tensor in (bn.weight, bn.bias, bn.running_mean):
            tensor.copy_(torch.randn(6, generator=generator))
        bn.running_var.copy_(torch.rand(6, generator=generator) + 0.5)
    ibn = InstanceBatchNorm.replacing(bn.eval()).eval()
    x = torch.randn(2, 6, 8, 4, generator=generator)
    with torch.no_grad():
        out = ibn(x)
        # the batch half is the replaced layer on its channels
        torch.testing.assert_close(out[:, 3:], bn(x)[:, 3:])
        # the instance half: one image brighter and with more contrast gives the same output
        restyled = x.clone()
        restyled[0, :3] = restyled[0, :3] * 2.5 + 4.0
        torch.testing.assert_close(ibn(restyled)[:, :3], out[:, :3], atol=1e-4, rtol=1e-4)
        assert not torch.allclose(bn(restyled)[0, :3], bn(x)[0, :3], atol=0.1)


def test_instance_norm_added_to_a_trained_backbone_loads_into_one_built_with_it() -> None:
    """The fine-tuning path: IBN-a added to a network trained without it must give the state a
    network built with ``instance_norm`` (as a saved model is) loads strictly and runs alike."""
    torch.manual_seed(0)
    stages = ("layer1", "layer2", "layer3")
    trained = build_backbone("mobilenet_v2_tiny", None, out_stages=("layer3",))
    assert add_instance_norm(trained, stages) == 13  # every block of MobileNetV2's features[1:14]
    rebuilt = build_backbone("mobilenet_v2_tiny", None, out_stages=("layer3",), instance_norm=stages)
    rebuilt.load_state_dict(trained.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.eval()(x)["layer3"], trained.eval()(x)["layer3"])
    with pytest.raises(ValueError, match="stem"):
        add_instance_norm(trained, ("stem",))


def test_mix_style_mixes_image_styles_in_training_only_and_keeps_the_weights() -> None:
    """MixStyle (``model.mix_style``): in training a batch's images come out with each channel's
    mean and spread moved between their own and another image's, the content kept; at inference
    the network is the one built without it, weights and outputs alike."""
    torch.manual_seed(0)
    x = torch.randn(8, 4, 6, 3)
    x[:4] = x[:4] * 3.0 + 5.0  # two styles in one batch: half bright and contrasted
    mixed = [mix_styles(x) for _ in range(40)]
    changed = [m for m in mixed if not torch.equal(m, x)]
    assert 8 <= len(changed) <= 32  # about half the batches (probability 1/2)
    m = changed[0]

    def centred(t: torch.Tensor) -> torch.Tensor:
        return (t - t.mean((2, 3), keepdim=True)) / t.std((2, 3), keepdim=True)

    # each image keeps its pattern (correlation with itself per channel) ...
    torch.testing.assert_close(centred(m), centred(x), atol=1e-3, rtol=1e-3)
    # ... while the batch's styles move towards each other: some bright images got darker
    assert (m.mean((2, 3))[:4] < x.mean((2, 3))[:4] - 0.5).any()
    assert torch.equal(mix_styles(x[:1]), x[:1])  # one image has no other style to take

    plain = build_backbone("mobilenet_v2_tiny", None, out_stages=("layer3",))
    with_mix = build_backbone(
        "mobilenet_v2_tiny", None, out_stages=("layer3",), mix_style=("layer1", "layer2")
    )
    with_mix.load_state_dict(plain.state_dict(), strict=True)  # no weights of its own
    images = torch.randn(4, 3, 64, 32)
    with torch.no_grad():
        torch.testing.assert_close(with_mix.eval()(images)["layer3"], plain.eval()(images)["layer3"])
        plain.train(), with_mix.train()
        outputs = [with_mix(images)["layer3"] for _ in range(6)]
        assert any(not torch.allclose(o, plain(images)["layer3"]) for o in outputs)
    with pytest.raises(ValueError, match="layer9"):
        build_backbone("mobilenet_v2_tiny", None, mix_style=("layer9",))
