"""One registry of model builders and their pretrained weights (timm's ``create_model`` idea).

A builder is a function returning a ready network; its name says what it builds, keyword
arguments override any field of the model's config. A pretrained tag after a dot names where the
weights come from, as timm's ``resnet50.a1_in1k`` does:

    create_model("reid_resnet50", num_classes=5532, variant="multi")   # backbone as configured
    create_model("detector_mobilenet_v2_c4", score_thresh=0.3)
    create_model("reid_mobilenet_v2.imagenet", num_classes=600)       # ImageNet backbone, new heads
    create_model("reid_mobilenet_v2.shipped")                         # the shipped network, whole

Tags: ``imagenet`` for every model whose backbone has ImageNet weights (``backbones.ARCHS``,
``weights.WEIGHTS``), ``shipped`` for the two networks of the model shipped in the package.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from personsearch.models.backbones import ARCHS
from personsearch.models.bundle import SHIPPED_MODEL, load_component
from personsearch.models.detector import DetectorConfig, PersonDetector, build_detector
from personsearch.models.reid import PyramidReID, ReIDConfig, build_reid
from personsearch.models.weights import WEIGHTS


@dataclass(frozen=True)
class ModelEntry:
    """A registered builder and what it builds: a bundle component on a backbone."""

    build: Callable[..., nn.Module]
    component: str
    """``reid`` or ``detector``: the bundle file its weights are saved in."""
    backbone: str


_MODELS: dict[str, ModelEntry] = {}

SHIPPED_MODELS = {"reid": "reid_mobilenet_v2", "detector": "detector_mobilenet_v2_c4"}
"""The registered model each network of the shipped bundle is (a test holds the bundle to it)."""


def register_model(
    component: str, backbone: str
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register a builder of a ``component`` network on ``backbone`` under its
    function name."""

    def register(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if fn.__name__ in _MODELS:
            raise ValueError(f"model {fn.__name__!r} is already registered")
        _MODELS[fn.__name__] = ModelEntry(fn, component, backbone)
        return fn

    return register


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style ``pattern``, sorted."""
    return sorted(n for n in _MODELS if fnmatch.fnmatch(n, pattern))


def describe_model(name: str) -> str:
    """The first line of builder ``name``'s docstring: what it builds."""
    doc = (_MODELS[name].build.__doc__ or "").strip()
    return doc.splitlines()[0] if doc else ""


def pretrained_tags() -> dict[str, str]:
    """Every ``model.tag`` ``create_model`` can load weights for, with where they come from."""
    tags = {}
    for name in list_models():
        entry = _MODELS[name]
        weights = ARCHS[entry.backbone].weights
        if weights is not None:
            tags[f"{name}.imagenet"] = f"backbone {WEIGHTS[weights].description}; heads untrained"
        if SHIPPED_MODELS.get(entry.component) == name:
            tags[f"{name}.shipped"] = f"the shipped model's {entry.component} network, whole"
    return tags


def list_pretrained(pattern: str = "*") -> list[str]:
    """``model.tag`` names matching a shell-style ``pattern``, sorted."""
    return sorted(n for n in pretrained_tags() if fnmatch.fnmatch(n, pattern))


def _unknown(name: str, known: list[str], what: str) -> ValueError:
    close = difflib.get_close_matches(name, known, n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return ValueError(f"unknown {what} {name!r}{hint}; registered: {', '.join(known)}")


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the registered model ``name``, or ``name.tag`` with the tag's weights; ``kwargs``
    go to its builder. ``.imagenet`` loads the backbone's ImageNet weights whatever
    ``pretrained`` says; ``.shipped`` is the shipped network as it was trained (eval mode; its
    config is the one stored with it, so it takes no ``kwargs``: fine-tune it with ``train-reid``
    / ``train-detector`` to change it)."""
    model, _, tag = name.partition(".")
    if model not in _MODELS:
        raise _unknown(model, list_models(), "model")
    if not tag:
        return _MODELS[model].build(**kwargs)
    if name not in pretrained_tags():
        raise _unknown(name, list_pretrained(f"{model}.*") or list_pretrained(), "pretrained tag")
    if tag == "imagenet":
        return _MODELS[model].build(**{**kwargs, "pretrained": True})
    if kwargs:
        raise ValueError(f"{name} is built as it was trained; it takes no overrides (got {sorted(kwargs)})")
    network, _, _ = load_component(SHIPPED_MODEL, _MODELS[model].component)
    return network


def registered_network(config: ReIDConfig | DetectorConfig) -> nn.Module:
    """The network a training config describes, built by the registered model of its kind and
    backbone with every field of ``config``: training builds what the registry lists, nothing else."""
    component = "reid" if isinstance(config, ReIDConfig) else "detector"
    matches = [
        n for n, e in sorted(_MODELS.items()) if (e.component, e.backbone) == (component, config.backbone)
    ]
    if not matches:
        raise ValueError(
            f"no registered {component} model on backbone {config.backbone!r}; "
            f"registered: {', '.join(list_models(f'{component}_*'))}"
        )
    fields = {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.name != "backbone"}
    return _MODELS[matches[0]].build(**fields)


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


@register_model("reid", "resnet50")
def reid_resnet50(num_classes: int, **overrides: Any) -> PyramidReID:
    """
    The paper's re-id network: ResNet-50 pyramid layer2/3/4 (needs resnet50-0676ba61.pth or pretrained=False).
    """
    return _reid("resnet50", num_classes, overrides)


@register_model("reid", "mobilenet_v2")
def reid_mobilenet_v2(num_classes: int, **overrides: Any) -> PyramidReID:
    """MobileNetV2 pyramid (32/96/1280 channels), ImageNet weights installable offline."""
    return _reid("mobilenet_v2", num_classes, overrides)


@register_model("reid", "mobilenet_v2_tiny")
def reid_mobilenet_v2_tiny(num_classes: int, **overrides: Any) -> PyramidReID:
    """Width-0.25 MobileNetV2 pyramid, random weights, 64-d embeddings: tests run in milliseconds."""
    return _reid("mobilenet_v2_tiny", num_classes, overrides, dict(TINY, embed_dim=64, input_size=(64, 32)))


@register_model("detector", "resnet50")
def detector_resnet50_c4(**overrides: Any) -> PersonDetector:
    """The paper's detector: Faster R-CNN ResNet-50 C4."""
    return _detector("resnet50", overrides)


@register_model("detector", "mobilenet_v2")
def detector_mobilenet_v2_c4(**overrides: Any) -> PersonDetector:
    """Faster R-CNN C4 on MobileNetV2 (RPN on the stride-16 96-channel stage, head = the stride-32 stages)."""
    return _detector("mobilenet_v2", overrides)


@register_model("detector", "mobilenet_v2_tiny")
def detector_mobilenet_v2_tiny_c4(**overrides: Any) -> PersonDetector:
    """Width-0.25 MobileNetV2 C4 detector, random weights, small input sizes: for tests."""
    return _detector("mobilenet_v2_tiny", overrides, TINY_DETECTOR)
