"""The person detector: torchvision's Faster R-CNN in the ResNet "C4" layout with the paper's changes.

C4 (Chen & Gupta's tf-faster-rcnn, which CLSA follows): the RPN and the RoI crop work on the
stride-16 ``layer3`` features; each region is cropped and resized to 14 x 14 (RoIAlign), max-pooled
to 7 x 7, and the box head is the backbone's remaining ``layer4`` run on the crop at stride 1
(as in tf-faster-rcnn), then global average pooling and the classifier / box regressor.
The paper's other changes are switches of ``DetectorConfig``: the stem (optionally ``layer1`` too)
frozen, proposals of every size kept, and every detection scored above 0.5 kept at deployment.

Everything else is torchvision's: ``FasterRCNN``, ``RegionProposalNetwork``, ``AnchorGenerator``,
``RPNHead``, ``MultiScaleRoIAlign``, ``FastRCNNPredictor``, ``GeneralizedRCNNTransform``.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import cast

import numpy as np
import torch
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
from torchvision.models.detection.rpn import RPNHead
from torchvision.ops import MultiScaleRoIAlign

from personsearch.models.backbones import ARCHS, FeatureBackbone, Pretrained, build_backbone

FEATURE_STAGE = "layer3"
"""The stride-16 stage the RPN and the RoI crop use."""
NUM_CLASSES = 2
"""Background and person."""


def image_tensors(images: list[np.ndarray]) -> list[torch.Tensor]:
    """HxWx3 uint8 RGB images as the detector takes them: CxHxW float32 in [0, 1]."""
    return [
        torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div(255) for image in images
    ]


@dataclass
class DetectorConfig:
    """Every switch of the detector, with the paper's (or its reference implementation's) default."""

    backbone: str = "mobilenet_v2"
    """``resnet50`` (the paper's), ``mobilenet_v2`` (the offline default), ``mobilenet_v2_tiny`` (tests)."""
    pretrained: Pretrained = True
    frozen_bn: bool = True
    """FrozenBatchNorm2d everywhere in the backbone and head (standard for detection fine-tuning)."""
    freeze_stem: bool = True
    """Freeze "the first 4 layers" (conv1/bn1/relu/maxpool; MobileNetV2: features[0])."""
    freeze_layer1: bool = False
    min_size: int = 600
    """Shorter image side after the input transform (GeneralizedRCNNTransform)."""
    max_size: int = 1000
    """Longer image side bound after the input transform."""
    anchor_sizes: tuple[int, ...] = (16, 32, 64, 128, 256, 512)
    """Anchor sizes in pixels (sqrt of area) on the stride-16 map; small ones for distant people."""
    anchor_ratios: tuple[float, ...] = (1.0, 2.0, 3.0)
    """Anchor height / width (torchvision's convention); people are tall."""
    rpn_pre_nms_top_n: tuple[int, int] = (12000, 6000)
    """Proposals kept before the RPN's NMS, (training, testing)."""
    rpn_post_nms_top_n: tuple[int, int] = (2000, 300)
    """Proposals kept after the RPN's NMS, (training, testing)."""
    rpn_nms_thresh: float = 0.7
    min_proposal_size: float = 0.0
    """Proposals narrower or shorter than this (pixels) are dropped before NMS; 0 keeps every size."""
    roi_size: int = 14
    """Side of the RoIAlign crop."""
    roi_max_pool: bool = True
    """2 x 2 max-pool of the crop (14 -> 7) before the head; False feeds the crop as is."""
    head_stride: int = 1
    """1: the box head runs at stride 1 on the crop (tf-faster-rcnn); 2: the backbone's stride (cheaper)."""
    box_batch_size_per_image: int = 128
    """Sampled RoIs per training image for the box head."""
    score_thresh: float = 0.5
    """Keep every detection scored above this (deployment); lower it for recall / AP curves."""
    nms_thresh: float = 0.4
    detections_per_img: int = 300

    def __post_init__(self) -> None:
        if self.backbone not in ARCHS:
            raise ValueError(
                f"DetectorConfig.backbone={self.backbone!r}; available: {', '.join(sorted(ARCHS))}"
            )
        if self.roi_size < 1 or (self.roi_max_pool and self.roi_size % 2):
            raise ValueError(
                f"DetectorConfig.roi_size={self.roi_size}: must be a positive even number "
                "when roi_max_pool is on"
            )
        for name in ("score_thresh", "nms_thresh", "rpn_nms_thresh"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"DetectorConfig.{name}={getattr(self, name)}: must lie in [0, 1]")
        if self.head_stride not in (1, 2):
            raise ValueError(f"DetectorConfig.head_stride={self.head_stride}: expected 1 or 2")
        if self.min_proposal_size < 0:
            raise ValueError(
                f"DetectorConfig.min_proposal_size={self.min_proposal_size}: "
                "must be >= 0 (0 keeps every proposal)"
            )
        if not self.anchor_sizes or not self.anchor_ratios:
            raise ValueError("DetectorConfig.anchor_sizes and anchor_ratios must not be empty")


class C4Features(nn.Module):
    """The trunk up to the stride-16 stage, with the ``out_channels`` FasterRCNN requires."""

    def __init__(self, body: FeatureBackbone) -> None:
        super().__init__()
        self.body = body
        (self.out_channels,) = body.out_channels.values()

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        return cast("OrderedDict[str, torch.Tensor]", self.body(x))


class RoICropPool(MultiScaleRoIAlign):  # type: ignore[misc]  # torchvision ships no type information: its classes are Any to mypy
    """Crop-and-resize each region (RoIAlign to ``roi_size``), then optionally 2 x 2 max-pool.

    A MultiScaleRoIAlign (which FasterRCNN requires) over the one stride-16 feature map."""

    def __init__(self, featmap: str, roi_size: int, max_pool: bool) -> None:
        super().__init__([featmap], output_size=roi_size, sampling_ratio=2)
        self.pool = nn.MaxPool2d(2) if max_pool else nn.Identity()

    def forward(
        self, x: dict[str, torch.Tensor], boxes: list[torch.Tensor], image_shapes: list[tuple[int, int]]
    ) -> torch.Tensor:
        return cast(torch.Tensor, self.pool(super().forward(x, boxes, image_shapes)))


class C4BoxHead(nn.Module):
    """The backbone's later stages on each crop, then global average pooling.

    ``stride`` 1 removes the stages' downsampling (tf-faster-rcnn runs conv5 at stride 1 on the
    7 x 7 crop); 2 keeps the backbone's own stride (about 3x cheaper: 4 x 4 instead of 7 x 7).
    """

    def __init__(self, stages: nn.Sequential, out_channels: int, stride: int) -> None:
        super().__init__()
        if stride == 1:
            for conv in stages.modules():
                if isinstance(conv, nn.Conv2d):
                    conv.stride = (1, 1)
        self.stages = stages
        self.out_channels = out_channels

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        return torch.flatten(nn.functional.adaptive_avg_pool2d(self.stages(crops), 1), 1)


class RPNHeadF32(RPNHead):  # type: ignore[misc]  # torchvision ships no type information: its classes are Any to mypy
    """RPNHead whose outputs are fp32 even under autocast.

    torchvision's BoxCoder casts anchors to the deltas' dtype; in bf16 (8 mantissa bits) a box
    coordinate near 1000 px would be rounded to 4 px. The convolutions still run in bf16.
    """

    def forward(self, x: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        logits, deltas = super().forward(x)
        return [t.float() for t in logits], [t.float() for t in deltas]


class FastRCNNPredictorF32(FastRCNNPredictor):  # type: ignore[misc]  # torchvision ships no type information: its classes are Any to mypy
    """FastRCNNPredictor with fp32 outputs, so decoded detection boxes stay fp32 (see RPNHeadF32)."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scores, deltas = super().forward(x)
        return scores.float(), deltas.float()


class PersonDetector(FasterRCNN):  # type: ignore[misc]  # torchvision ships no type information: its classes are Any to mypy
    """Faster R-CNN C4 for one class, person.

    Training mode: ``forward(images, targets)`` -> dict of the four losses. Eval mode:
    ``forward(images)`` -> one dict per image with ``boxes`` (xyxy pixels), ``scores``, ``labels``.
    Images are CHW float tensors in [0, 1] of any size.
    """

    def __init__(self, config: DetectorConfig) -> None:
        frozen = [
            stage for stage, on in (("stem", config.freeze_stem), ("layer1", config.freeze_layer1)) if on
        ]
        backbone = build_backbone(
            config.backbone, config.pretrained, frozen_stages=frozen, frozen_bn=config.frozen_bn
        )
        trunk, later = backbone.split(FEATURE_STAGE)
        features = C4Features(trunk)
        head = C4BoxHead(later, backbone.channels[backbone.stage_names[-1]], config.head_stride)
        anchors = AnchorGenerator(
            sizes=(tuple(config.anchor_sizes),), aspect_ratios=(tuple(config.anchor_ratios),)
        )
        super().__init__(
            features,
            num_classes=None,
            min_size=config.min_size,
            max_size=config.max_size,
            rpn_anchor_generator=anchors,
            rpn_head=RPNHeadF32(features.out_channels, anchors.num_anchors_per_location()[0]),
            rpn_pre_nms_top_n_train=config.rpn_pre_nms_top_n[0],
            rpn_pre_nms_top_n_test=config.rpn_pre_nms_top_n[1],
            rpn_post_nms_top_n_train=config.rpn_post_nms_top_n[0],
            rpn_post_nms_top_n_test=config.rpn_post_nms_top_n[1],
            rpn_nms_thresh=config.rpn_nms_thresh,
            box_roi_pool=RoICropPool(FEATURE_STAGE, config.roi_size, config.roi_max_pool),
            box_head=head,
            box_predictor=FastRCNNPredictorF32(head.out_channels, NUM_CLASSES),
            box_score_thresh=config.score_thresh,
            box_nms_thresh=config.nms_thresh,
            box_detections_per_img=config.detections_per_img,
            box_batch_size_per_image=config.box_batch_size_per_image,
        )
        # RegionProposalNetwork.filter_proposals drops boxes under ``min_size`` (1e-3 by default).
        self.rpn.min_size = config.min_proposal_size
        self.config = config


def build_detector(config: DetectorConfig) -> PersonDetector:
    """The detector ``config`` describes (pretrained backbone per ``config.pretrained``)."""
    return PersonDetector(config)
