"""The C4 person detector: crop shapes, frozen stem, proposals of every size, the score threshold."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torchvision.ops import FrozenBatchNorm2d

from personsearch.models.detector import DetectorConfig, PersonDetector
from personsearch.models.fast import autocast_for
from personsearch.models.registry import create_model

torch.set_num_threads(1)

LOSSES = {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}


def tiny(**overrides: Any) -> PersonDetector:
    torch.manual_seed(0)
    return create_model("detector_mobilenet_v2_tiny_c4", **overrides)


def scenes() -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    """Two small images of different sizes with one and two people."""
    generator = torch.Generator().manual_seed(0)
    images = [torch.rand(3, 120, 90, generator=generator), torch.rand(3, 100, 140, generator=generator)]
    targets = [
        {"boxes": torch.tensor([[10.0, 10.0, 40.0, 100.0]]), "labels": torch.tensor([1])},
        {
            "boxes": torch.tensor([[5.0, 5.0, 30.0, 60.0], [50.0, 20.0, 80.0, 90.0]]),
            "labels": torch.tensor([1, 1]),
        },
    ]
    return images, targets


def test_train_step_gives_four_losses_and_leaves_the_frozen_stem_unchanged() -> None:
    detector = tiny(
        frozen_bn=False
    ).train()  # trainable BN elsewhere: the stem must still keep its statistics
    stem = detector.backbone.body.stem
    stem_before = {k: v.clone() for k, v in stem.state_dict().items()}
    layer2_before = detector.backbone.body.layer2[0].conv[0][0].weight.clone()
    optimizer = torch.optim.SGD(detector.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    images, targets = scenes()
    losses = detector(images, targets)
    assert set(losses) == LOSSES and all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    optimizer.step()
    assert all(not p.requires_grad and p.grad is None for p in stem.parameters())
    for key, value in stem.state_dict().items():
        assert torch.equal(value, stem_before[key]), key
    assert not torch.equal(detector.backbone.body.layer2[0].conv[0][0].weight, layer2_before)


def test_freeze_switches_choose_the_frozen_stages() -> None:
    body = tiny(freeze_layer1=True).backbone.body
    assert body.frozen_stages == ("stem", "layer1")
    assert all(not p.requires_grad for p in body.layer1.parameters())
    assert tiny(freeze_stem=False).backbone.body.frozen_stages == ()


def test_box_head_gets_the_14x14_crop_max_pooled_to_7x7() -> None:
    detector = tiny().eval()
    seen: dict[str, tuple[int, ...]] = {}
    detector.roi_heads.box_roi_pool.pool.register_forward_pre_hook(
        lambda m, args: seen.update(crop=tuple(args[0].shape[1:]))
    )
    detector.roi_heads.box_head.register_forward_pre_hook(
        lambda m, args: seen.update(head=tuple(args[0].shape[1:]))
    )
    with torch.no_grad():
        detector(scenes()[0])
    assert seen == {"crop": (24, 14, 14), "head": (24, 7, 7)}  # 24: the tiny backbone's stride-16 channels

    plain = tiny(roi_max_pool=False, roi_size=7).eval()
    plain.roi_heads.box_head.register_forward_pre_hook(
        lambda m, args: seen.update(head=tuple(args[0].shape[1:]))
    )
    with torch.no_grad():
        plain(scenes()[0])
    assert seen["head"] == (24, 7, 7)


def test_rpn_keeps_tiny_proposals_when_min_proposal_size_is_zero() -> None:
    # 0.0005 px wide, and a person
    proposals = torch.tensor([[[10.0, 10.0, 10.0005, 50.0], [60.0, 10.0, 90.0, 90.0]]])
    objectness = torch.tensor([[5.0, 4.0]])

    def kept(min_proposal_size: float) -> int:
        rpn = tiny(min_proposal_size=min_proposal_size).eval().rpn
        boxes, _ = rpn.filter_proposals(proposals, objectness, [(100, 100)], [2])
        return len(boxes[0])

    assert kept(0.0) == 2
    assert kept(1e-3) == 1  # torchvision's built-in minimum would drop the thin one
    assert kept(1.0) == 1


def test_eval_keeps_every_detection_above_the_score_threshold() -> None:
    detector = tiny(score_thresh=0.5, detections_per_img=40).eval()
    cls_score = detector.roi_heads.box_predictor.cls_score
    with torch.no_grad():  # every region scores softmax([0, 1])[1] = e / (1 + e) = 0.7311 as a person
        cls_score.weight.zero_()
        cls_score.bias.copy_(torch.tensor([0.0, 1.0]))
    images, _ = scenes()
    with torch.no_grad():
        outputs = detector(images)
    for image, out in zip(images, outputs):
        assert 0 < len(out["boxes"]) <= 40 and out["boxes"].shape == (len(out["scores"]), 4)
        torch.testing.assert_close(out["scores"], torch.full_like(out["scores"], math.e / (1 + math.e)))
        assert out["labels"].eq(1).all()
        height, width = image.shape[1:]
        assert (
            out["boxes"][:, [0, 1]].min() >= 0
            and out["boxes"][:, 2].max() <= width
            and out["boxes"][:, 3].max() <= height
        )
    detector.roi_heads.score_thresh = 0.75
    with torch.no_grad():
        assert all(len(o["boxes"]) == 0 for o in detector(images))


def test_boxes_stay_fp32_under_bf16_autocast() -> None:
    detector = tiny(score_thresh=0.0).eval()
    with torch.no_grad(), autocast_for("cpu", True):
        out = detector(scenes()[0])[0]
    assert out["boxes"].dtype == torch.float32 and out["scores"].dtype == torch.float32 and len(out["boxes"])


def test_resnet50_c4_layout() -> None:
    detector = create_model("detector_resnet50_c4", pretrained=None)
    assert detector.backbone.out_channels == 1024 and detector.roi_heads.box_head.out_channels == 2048
    assert detector.rpn.head.cls_logits.out_channels == 18  # 6 sizes x 3 height/width ratios
    assert [n for n, _ in detector.roi_heads.box_head.stages.named_children()] == ["layer4"]
    convs = [m for m in detector.roi_heads.box_head.modules() if isinstance(m, torch.nn.Conv2d)]
    assert {c.stride for c in convs} == {(1, 1)}  # tf-faster-rcnn's conv5 at stride 1 on the crop
    assert isinstance(detector.backbone.body.layer3[0].bn1, FrozenBatchNorm2d)
    strided = tiny(head_stride=2).roi_heads.box_head
    assert (2, 2) in {m.stride for m in strided.modules() if isinstance(m, torch.nn.Conv2d)}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("roi_size", 7, "roi_size=7: must be a positive even number"),
        ("score_thresh", 1.5, r"score_thresh=1.5: must lie in \[0, 1\]"),
        ("min_proposal_size", -1.0, "min_proposal_size=-1.0: must be >= 0"),
        ("backbone", "vgg16", "backbone='vgg16'; available"),
        ("head_stride", 4, "head_stride=4: expected 1 or 2"),
    ],
)
def test_bad_config_values_are_refused(field: str, value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DetectorConfig(**{field: value})
