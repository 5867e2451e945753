"""One registry of model builders (timm's ``create_model`` idea).

A builder is a function returning a ready network; its name says what it builds, keyword
arguments override any field of the model's config:

    create_model("reid_resnet50", num_classes=5532, variant="multi")
    create_model("detector_mobilenet_v2_c4", score_thresh=0.3)
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable
from typing import Any

from torch import nn

from personsearch.models.detector import DetectorConfig, PersonDetector, build_detector
from personsearch.models.reid import PyramidReID, ReIDConfig, build_reid

_BUILDERS: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Decorator: register ``fn`` under its function name."""
    if fn.__name__ in _BUILDERS:
        raise ValueError(f"model {fn.__name__!r} is already registered")
    _BUILDERS[fn.__name__] = fn
    return fn


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style ``pattern``, sorted."""
    return sorted(n for n in _BUILDERS if fnmatch.fnmatch(n, pattern))


def describe_model(name: str) -> str:
    """The first line of builder ``name``'s docstring: what it builds."""
    doc = (_BUILDERS[name].__doc__ or "").strip()
    return doc.splitlines()[0] if doc else ""


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the registered model ``name``; ``kwargs`` go to its builder."""
    if name not in _BUILDERS:
        close = difflib.get_close_matches(name, _BUILDERS, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ValueError(f"unknown model {name!r}{hint}; registered: {', '.join(list_models())}")
    return _BUILDERS[name](**kwargs)


TINY = dict(pretrained=False)
"""Tiny variants are randomly initialised: for tests and smoke runs, not for accuracy."""
TINY_DETECTOR = dict(
    TINY,
    min_size=128,
    max_size=256,
    rpn_pre_nms_top_n=(600, 300),
    rpn_post_nms_top_n=(100, 50),
    box_batch_size_per_image=32,
)


def _reid(
    backbone: str, num_classes: int, overrides: dict[str, Any], defaults: dict[str, Any] | None = None
) -> PyramidReID:
    return build_reid(
        ReIDConfig(num_classes=num_classes, backbone=backbone, **{**(defaults or {}), **overrides})
    )


def _detector(
    backbone: str, overrides: dict[str, Any], defaults: dict[str, Any] | None = None
) -> PersonDetector:
    return build_detector(DetectorConfig(backbone=backbone, **{**(defaults or {}), **overrides}))


@register_model
def reid_resnet50(num_classes: int, **overrides: Any) -> PyramidReID:
    """
    The paper's re-id network: ResNet-50 pyramid layer2/3/4 (needs resnet50-0676ba61.pth or pretrained=False).
    """
    return _reid("resnet50", num_classes, overrides)


@register_model
def reid_mobilenet_v2(num_classes: int, **overrides: Any) -> PyramidReID:
    """MobileNetV2 pyramid (32/96/1280 channels), ImageNet weights installable offline."""
    return _reid("mobilenet_v2", num_classes, overrides)


@register_model
def reid_mobilenet_v2_tiny(num_classes: int, **overrides: Any) -> PyramidReID:
    """Width-0.25 MobileNetV2 pyramid, random weights, 64-d embeddings: tests run in milliseconds."""
    return _reid("mobilenet_v2_tiny", num_classes, overrides, dict(TINY, embed_dim=64, input_size=(64, 32)))


@register_model
def detector_resnet50_c4(**overrides: Any) -> PersonDetector:
    """The paper's detector: Faster R-CNN ResNet-50 C4."""
    return _detector("resnet50", overrides)


@register_model
def detector_mobilenet_v2_c4(**overrides: Any) -> PersonDetector:
    """Faster R-CNN C4 on MobileNetV2 (RPN on the stride-16 96-channel stage, head = the stride-32 stages)."""
    return _detector("mobilenet_v2", overrides)


@register_model
def detector_mobilenet_v2_tiny_c4(**overrides: Any) -> PersonDetector:
    """Width-0.25 MobileNetV2 C4 detector, random weights, small input sizes: for tests."""
    return _detector("mobilenet_v2_tiny", overrides, TINY_DETECTOR)
