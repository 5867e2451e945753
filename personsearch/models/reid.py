"""The feature-pyramid re-id network (docs/specs/clsa.md section 2).

One backbone pass gives feature maps at several depths (the in-network pyramid). Each level l has
its own head: global average pooling -> linear to ``embed_dim`` -> BatchNorm1d -> identity
classifier. Variants: ``single`` uses the top level only (the usual re-id baseline); ``multi`` and
``clsa`` use every level (they differ only in the loss, see ``losses.py``).

The test feature concatenates the L2-normalised per-level embeddings and L2-normalises the result,
so each level weighs the same in the cosine similarity.
"""

from __future__ import annotations

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
        self.levels = tuple(self.levels)
        allowed = STAGES[1:]
        if (
            not self.levels
            or not set(self.levels) <= set(allowed)
            or list(self.levels) != sorted(set(self.levels), key=allowed.index)
        ):
            raise ValueError(
                f"ReIDConfig.levels={self.levels}: expected distinct stages of {allowed}, lowest first"
            )
        if self.variant == "clsa" and len(self.levels) < 2:
            raise ValueError(
                "ReIDConfig: variant 'clsa' aligns lower levels to the top one and needs at least two levels"
            )
        self.input_size = cast("tuple[int, int]", tuple(self.input_size))

    @property
    def used_levels(self) -> tuple[str, ...]:
        """The levels with a head: the top one for ``single``, all for ``multi`` / ``clsa``."""
        return self.levels[-1:] if self.variant == "single" else self.levels


class LevelHead(nn.Module):
    """GAP -> linear embedding -> BatchNorm1d -> identity classifier, for one pyramid level."""

    def __init__(self, in_channels: int, embed_dim: int, num_classes: int) -> None:
        super().__init__()
        self.embed = nn.Linear(in_channels, embed_dim)
        self.bn = nn.BatchNorm1d(embed_dim)
        self.classifier = nn.Linear(embed_dim, num_classes)
        nn.init.normal_(self.classifier.weight, std=0.001)  # small logits at start: a stable first epoch
        nn.init.zeros_(self.classifier.bias)

    def embedding(self, feature_map: torch.Tensor) -> torch.Tensor:
        """The BatchNorm'd ``embed_dim`` embedding of a (B, C, h, w) feature map."""
        return cast(
            torch.Tensor, self.bn(self.embed(torch.flatten(F.adaptive_avg_pool2d(feature_map, 1), 1)))
        )


class PyramidReID(nn.Module):
    """Train mode: ``forward(x)`` -> ``{"embeddings": [...], "logits": [...]}`` per used level, top
    level last. Eval mode: ``forward(x)`` -> (B, D) L2-normalised test features."""

    def __init__(self, config: ReIDConfig) -> None:
        super().__init__()
        self.config = config
        self.levels = config.used_levels
        self.backbone = build_backbone(config.backbone, config.pretrained, out_stages=self.levels)
        channels = self.backbone.out_channels
        self.heads = nn.ModuleDict(
            {lvl: LevelHead(channels[lvl], config.embed_dim, config.num_classes) for lvl in self.levels}
        )

    @property
    def feature_dim(self) -> int:
        """Length of the test feature."""
        return self.config.embed_dim * len(self.levels)

    def forward(self, x: torch.Tensor) -> dict[str, list[torch.Tensor]] | torch.Tensor:
        features = self.backbone(x)
        embeddings = [cast(LevelHead, self.heads[lvl]).embedding(features[lvl]) for lvl in self.levels]
        if self.training:
            logits = [
                cast(LevelHead, self.heads[lvl]).classifier(e) for lvl, e in zip(self.levels, embeddings)
            ]
            return {"embeddings": embeddings, "logits": logits}
        return test_feature(embeddings)


def test_feature(embeddings: Sequence[torch.Tensor]) -> torch.Tensor:
    """The feature a search compares: every level's embedding L2-normalised, concatenated and
    normalised again, so each level counts equally whatever its scale."""
    return F.normalize(torch.cat([F.normalize(e, dim=1) for e in embeddings], dim=1), dim=1)


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
