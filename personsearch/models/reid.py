"""The feature-pyramid re-id network (docs/specs/clsa.md section 2).

One backbone pass gives feature maps at several depths (the in-network pyramid). Each level l has
its own head: global average pooling -> linear to ``embed_dim`` -> BatchNorm1d -> identity
classifier. Variants: ``single`` uses the top level only (the usual re-id baseline); ``multi`` and
``clsa`` use every level (they differ only in the loss, see ``losses.py``).

The test feature concatenates the L2-normalised per-level embeddings and L2-normalises the result,
so each level weighs the same in the cosine similarity.

Two baselines the paper compares multi-scale matching with (its section 4), built from the same
parts so that only the way scale is handled differs:

- ``image_pyramid``: ``single`` run on each crop at several input scales (``scales``), the
  scales' embeddings fused (``fuse``); trained on one scale per batch, drawn at random, so that it
  has seen every scale it is tested at.
- ``multi_branch``: the backbone up to ``branch_from`` shared, then one copy of the upper stages
  and embedding head per band of person height (``bands``: small, medium, large), each branch's
  identity loss over its band's crops only (the training crops' heights route them). The branches
  share one identity classifier, so that they embed into one space: a small query's branch and a
  large gallery person's branch must agree on who is who. At test time every branch runs and the
  features are fused (``fuse``), since the product's crops carry no height; a caller that knows
  each box's height can route instead, keeping the slice of the ``concat`` feature that the box's
  band's branch gave (``route_weights``; the ablation compares all three).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from personsearch import names
from personsearch.data.crops import normalize_crops
from personsearch.models.backbones import ARCHS, STAGES, Pretrained, build_backbone

VARIANTS = tuple(names.VARIANTS)
FUSIONS = ("mean", "concat")


@dataclass
class ReIDConfig:
    """Every switch of the re-id network, with the defaults of docs/specs/clsa.md section 2."""

    num_classes: int = 0
    """Training identities (the classifiers' outputs); 0 in a training config, where the
    training data sets it."""
    backbone: str = "mobilenet_v2"
    pretrained: Pretrained = True
    levels: tuple[str, ...] = ("layer2", "layer3", "layer4")
    """Backbone stages forming the pyramid, lowest first; the last is the top level."""
    embed_dim: int = 256
    variant: str = "clsa"
    input_size: tuple[int, int] = (256, 128)
    """(H, W) of the person crops the network expects."""
    temperature: float = 3.0
    """Softening T of the cross-level alignment loss (``clsa``; the training loss only)."""
    align_weight: float = 1.0
    """lambda, the alignment loss's weight against the per-level cross-entropy (``clsa``)."""
    scales: tuple[float, ...] = (0.5, 1.0, 1.5)
    """``image_pyramid``: input scales, relative to ``input_size``: at test time every one, in
    training one per batch at random."""
    fuse: str = "mean"
    """``image_pyramid`` / ``multi_branch``: the test feature from the scales' or branches'
    embeddings: ``mean`` (of the L2-normalised embeddings: ``embed_dim`` long) or ``concat``
    (normalised, concatenated, normalised again, as the levels of ``multi``)."""
    bands: tuple[float, ...] = (60.0, 120.0)
    """``multi_branch``: person heights (pixels, the box in its scene) between the branches:
    small < 60 <= medium < 120 <= large (the ablation's height buckets, its top two merged)."""
    branch_from: str = "layer4"
    """``multi_branch``: the first stage each branch has a copy of."""
    instance_norm: tuple[str, ...] = ()
    """Backbone stages with IBN-Net-a's instance-batch normalisation (``backbones``), for
    networks trained on drawn or rendered people that must hold up on real ones; () is the
    paper's network, ("layer1", "layer2", "layer3") IBN-Net-a's choice."""
    mix_style: tuple[str, ...] = ()
    """Backbone stages followed by MixStyle while training (``backbones``: image styles mixed
    within a batch, so the upper layers cannot rely on the training people's look); () is the
    paper's network. No weights, no effect at inference."""
    triplet_weight: float = 0.0
    """Weight of a batch-hard soft-margin triplet term on the test feature (the training loss
    only; 0 keeps the paper's recipe). With thousands of identities each class is seen about once
    an epoch, too rarely for its classifier to learn on a CPU's budget; the triplet term learns
    from every identity-balanced batch from the first step."""

    def __post_init__(self) -> None:
        if self.num_classes < 0:
            raise ValueError(
                f"ReIDConfig.num_classes={self.num_classes}: must be the number of training identities "
                "(0: set by the training data)"
            )
        if self.temperature <= 0 or self.align_weight < 0 or self.triplet_weight < 0:
            raise ValueError(
                f"ReIDConfig: temperature={self.temperature} must be > 0, align_weight={self.align_weight} "
                f"and triplet_weight={self.triplet_weight} >= 0"
            )
        if self.backbone not in ARCHS:
            raise ValueError(f"ReIDConfig.backbone={self.backbone!r}; available: {', '.join(sorted(ARCHS))}")
        if self.variant not in VARIANTS:
            raise ValueError(f"ReIDConfig.variant={self.variant!r}; expected one of {VARIANTS}")
        self.levels, self.instance_norm = tuple(self.levels), tuple(self.instance_norm)
        self.mix_style = tuple(self.mix_style)
        for name, stages in (("instance_norm", self.instance_norm), ("mix_style", self.mix_style)):
            if not set(stages) <= set(STAGES[1:]):
                raise ValueError(f"ReIDConfig.{name}={stages}: expected stages of {STAGES[1:]}")
        allowed = STAGES[1:]
        if (
            not self.levels
            or not set(self.levels) <= set(allowed)
            or list(self.levels) != sorted(set(self.levels), key=allowed.index)
        ):
            raise ValueError(
                f"ReIDConfig.levels={self.levels}: expected distinct stages of {allowed}, lowest first"
            )
        if self.fuse not in FUSIONS:
            raise ValueError(f"ReIDConfig.fuse={self.fuse!r}; expected one of {FUSIONS}")
        self.scales, self.bands = tuple(self.scales), tuple(self.bands)
        if not self.scales or min(self.scales) <= 0:
            raise ValueError(f"ReIDConfig.scales={self.scales}: positive factors of input_size, at least one")
        if list(self.bands) != sorted(set(self.bands)) or any(b <= 0 for b in self.bands):
            raise ValueError(f"ReIDConfig.bands={self.bands}: increasing positive heights")
        if self.variant == "multi_branch" and self.branch_from not in STAGES[2:]:
            raise ValueError(
                f"ReIDConfig.branch_from={self.branch_from!r}: a stage after the first two of {STAGES}"
            )
        branched = STAGES[STAGES.index(self.branch_from) :] if self.variant == "multi_branch" else ()
        if set(self.mix_style) & set(branched):
            raise ValueError(
                f"ReIDConfig.mix_style={self.mix_style}: multi_branch mixes styles in the shared "
                f"stages only, before branch_from={self.branch_from!r}"
            )
        if self.variant == "clsa" and len(self.levels) < 2:
            raise ValueError(
                "ReIDConfig: variant 'clsa' aligns lower levels to the top one and needs at least two levels"
            )
        self.input_size = cast("tuple[int, int]", tuple(self.input_size))

    @property
    def used_levels(self) -> tuple[str, ...]:
        """The levels with a head: all for ``multi`` / ``clsa``, the top one otherwise."""
        return self.levels if self.variant in ("multi", "clsa") else self.levels[-1:]

    @property
    def streams(self) -> int:
        """How many embeddings the test feature is made of: levels, scales or branches."""
        if self.variant == "image_pyramid":
            return len(self.scales)
        if self.variant == "multi_branch":
            return len(self.bands) + 1
        return len(self.used_levels)


def identity_classifier(embed_dim: int, num_classes: int) -> nn.Linear:
    """The linear identity classifier over an embedding, with small logits at the start (a stable
    first epoch)."""
    classifier = nn.Linear(embed_dim, num_classes)
    nn.init.normal_(classifier.weight, std=0.001)
    nn.init.zeros_(classifier.bias)
    return classifier


class LevelHead(nn.Module):
    """GAP -> linear embedding -> BatchNorm1d -> identity classifier, for one pyramid level."""

    def __init__(self, in_channels: int, embed_dim: int, num_classes: int | None) -> None:
        super().__init__()
        self.embed = nn.Linear(in_channels, embed_dim)
        self.bn = nn.BatchNorm1d(embed_dim)
        # None: the network classifies this head's embeddings itself (multi_branch's shared one)
        self.classifier = None if num_classes is None else identity_classifier(embed_dim, num_classes)

    def embedding(self, feature_map: torch.Tensor) -> torch.Tensor:
        """The BatchNorm'd ``embed_dim`` embedding of a (B, C, h, w) feature map."""
        return cast(
            torch.Tensor, self.bn(self.embed(torch.flatten(F.adaptive_avg_pool2d(feature_map, 1), 1)))
        )


class PyramidReID(nn.Module):
    """Train mode: ``forward(x, heights)`` -> ``{"embeddings": [...], "logits": [...]}`` per used
    level (top level last), scale or branch, and for ``multi_branch`` ``"routes"``: each branch's
    crops (bool masks by ``heights``). Eval mode: ``forward(x)`` -> (B, D) L2-normalised test
    features."""

    def __init__(self, config: ReIDConfig) -> None:
        super().__init__()
        self.config = config
        self.levels = config.used_levels
        if config.variant == "multi_branch":
            trunk_end = STAGES[STAGES.index(config.branch_from) - 1]
            full = build_backbone(
                config.backbone,
                config.pretrained,
                out_stages=(config.levels[-1],),
                instance_norm=config.instance_norm,
                mix_style=config.mix_style,
            )
            self.backbone, upper = full.split(trunk_end)
            # a copy of the upper stages per band, each starting from the same (ImageNet) weights
            self.branches = nn.ModuleList([upper, *(copy.deepcopy(upper) for _ in config.bands)])
            channels = {self.levels[-1]: full.channels[self.levels[-1]]}
            names_ = [f"branch{i}" for i in range(len(self.branches))]
            # one classifier for every branch: the branches embed into one identity space
            self.shared = nn.ModuleDict(
                {"classifier": identity_classifier(config.embed_dim, config.num_classes)}
            )
        else:
            self.backbone = build_backbone(
                config.backbone,
                config.pretrained,
                out_stages=self.levels,
                instance_norm=config.instance_norm,
                mix_style=config.mix_style,
            )
            channels = self.backbone.out_channels
            names_ = list(self.levels)
        top = channels[self.levels[-1]]
        self.heads = nn.ModuleDict(
            {
                name: LevelHead(
                    channels.get(name, top),
                    config.embed_dim,
                    None if config.variant == "multi_branch" else config.num_classes,
                )
                for name in names_
            }
        )

    @property
    def feature_dim(self) -> int:
        """Length of the test feature."""
        fused = self.config.variant in ("image_pyramid", "multi_branch") and self.config.fuse == "mean"
        return self.config.embed_dim * (1 if fused else self.config.streams)

    def forward(
        self, x: torch.Tensor, heights: torch.Tensor | None = None
    ) -> dict[str, list[torch.Tensor]] | torch.Tensor:
        variant = self.config.variant
        if variant == "multi_branch":
            shared = self.backbone(x)[self.backbone.out_stages[-1]]
            heads = [cast(LevelHead, head) for head in self.heads.values()]
            embeddings = [head.embedding(branch(shared)) for head, branch in zip(heads, self.branches)]
        elif variant == "image_pyramid":
            head = cast(LevelHead, self.heads[self.levels[-1]])
            scales = self.config.scales
            if self.training:  # one scale per batch: every scale seen, at one scale's cost
                scales = (scales[int(torch.randint(len(scales), ()))],)
            heads = [head] * len(scales)
            embeddings = [head.embedding(self.backbone(_rescaled(x, s))[self.levels[-1]]) for s in scales]
        else:
            features = self.backbone(x)
            heads = [cast(LevelHead, self.heads[lvl]) for lvl in self.levels]
            embeddings = [head.embedding(features[lvl]) for head, lvl in zip(heads, self.levels)]
        if self.training:
            classifiers = (
                [self.shared["classifier"]] * len(heads)
                if variant == "multi_branch"
                else [cast(nn.Linear, h.classifier) for h in heads]
            )
            out = {"embeddings": embeddings, "logits": [c(e) for c, e in zip(classifiers, embeddings)]}
            if variant == "multi_branch":
                if heights is None:
                    raise ValueError("a multi_branch network trains on crops with their heights (routing)")
                band = torch.bucketize(
                    heights, torch.tensor(self.config.bands, device=heights.device), right=True
                )
                out["routes"] = [band == i for i in range(len(embeddings))]
            return out
        if variant in ("image_pyramid", "multi_branch") and self.config.fuse == "mean":
            return F.normalize(torch.stack([F.normalize(e, dim=1) for e in embeddings]).mean(0), dim=1)
        return test_feature(embeddings)


def _rescaled(x: torch.Tensor, scale: float) -> torch.Tensor:
    """``x`` resized by ``scale`` (antialiased when shrinking, as a smaller crop would be cut)."""
    if scale == 1.0:
        return x
    return F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False, antialias=scale < 1)


def test_feature(embeddings: Sequence[torch.Tensor]) -> torch.Tensor:
    """The feature a search compares: every level's embedding L2-normalised, concatenated and
    normalised again, so each level counts equally whatever its scale."""
    return F.normalize(torch.cat([F.normalize(e, dim=1) for e in embeddings], dim=1), dim=1)


def route_weights(heights: np.ndarray, bands: Sequence[float]) -> np.ndarray:
    """(N, len(bands) + 1) one-hot stream weights sending each box, by its height in pixels, to
    its band's branch, the way training routed it: a ``multi_branch`` network's ``concat``
    features re-weighted by these are its routed features."""
    band = np.searchsorted(np.asarray(bands, np.float64), np.asarray(heights, np.float64), side="right")
    return np.eye(len(bands) + 1, dtype=np.float32)[band]


def build_reid(config: ReIDConfig) -> PyramidReID:
    """The re-id network ``config`` describes (pretrained backbone per ``config.pretrained``)."""
    if config.num_classes < 1:
        raise ValueError(
            f"ReIDConfig.num_classes={config.num_classes}: a network needs at least one training identity"
        )
    return PyramidReID(config)


def embed_crops(
    network: Callable[[torch.Tensor], torch.Tensor], crops: torch.Tensor, batch: int = 64
) -> np.ndarray:
    """L2-normalised features of uint8 crops (n, 3, H, W) at ``network``'s input size, in batches,
    without gradients: any callable from normalised crops to features (a re-id network in eval
    mode, or pooled backbone features for a baseline)."""
    with torch.no_grad():
        out = [
            torch.nn.functional.normalize(
                network(normalize_crops(crops[s : s + batch])).float(), dim=1
            ).numpy()
            for s in range(0, len(crops), batch)
        ]
    return np.concatenate(out)
