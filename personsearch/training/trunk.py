"""The frozen stages' outputs of augmented crops, computed once and drawn from at every step.

Fine-tuning on a camera's own tracklets passes a few hundred crops through the network many
times (``adapt``: 8 epochs a round, two rounds). MobileNetV2's stem and first stage run at half
and a quarter of the input resolution, where a step's activations are largest, yet they hold
generic edges and colours that a camera's few crops have little to teach. Frozen
(``TrunkConfig.frozen``), they need no backward pass, and their output for a given augmented
crop never changes, so it is kept: each crop gets ``views`` augmented versions, drawn by the
usual ``CropAugment`` from a seed of (run seed, crop, view), each run through the frozen stages
the first time a batch draws it. A batch draws one view per crop at random; the stages above
train as before.
"""

from __future__ import annotations

import torch

from personsearch.data.crops import CropAugment, normalize_crops
from personsearch.models.backbones import FeatureBackbone
from personsearch.models.fast import autocast_for
from personsearch.training.config import TrunkConfig


class TrunkCache:
    """``views`` augmented views of each of ``crops`` (uint8 (n, 3, H, W)) through the frozen
    stages ``config.frozen``, each computed on first use and kept within ``config.cache_mb``.
    One cache can serve several runs over the same crops (``adapt``'s rounds) while the frozen
    stages keep their weights; ``batch`` refuses a backbone whose frozen weights differ."""

    def __init__(self, crops: torch.Tensor, augment: CropAugment, config: TrunkConfig, seed: int) -> None:
        if not config.frozen:
            raise ValueError("TrunkCache needs frozen stages (TrunkConfig.frozen)")
        self.crops, self.augment, self.config, self.seed = crops, augment, config, seed
        self.top = config.frozen[-1]
        self._kept: dict[int, torch.Tensor] = {}
        self._bytes = 0
        self._weights: float | None = None
        self.computed = 0
        """Views run through the frozen stages so far (kept or not)."""

    def batch(
        self, backbone: FeatureBackbone, index: torch.Tensor, generator: torch.Generator, fast: bool = True
    ) -> torch.Tensor:
        """The frozen stages' output (float32, on ``backbone``'s device) for one random view of
        each crop in ``index``; ``generator`` picks the views."""
        self._check(backbone)
        views = self.config.views
        keys = (index * views + torch.randint(views, (len(index),), generator=generator)).tolist()
        fresh = self._compute(backbone, [k for k in dict.fromkeys(keys) if k not in self._kept], fast)
        return (
            torch.stack([fresh[k] if k in fresh else self._kept[k] for k in keys])
            .float()
            .to(next(backbone.parameters()).device)
        )

    @property
    def kept(self) -> int:
        """Views held in memory."""
        return len(self._kept)

    def _compute(self, backbone: FeatureBackbone, keys: list[int], fast: bool) -> dict[int, torch.Tensor]:
        """The views ``keys`` (crop * views + view) through the frozen stages, kept while there is room."""
        if not keys:
            return {}
        views = self.config.views
        images = torch.cat(
            [
                self.augment(
                    self.crops[k // views][None],
                    torch.Generator().manual_seed(hash((self.seed, k // views, k % views)) & 0x7FFFFFFF),
                )
                for k in keys
            ]
        )
        device = next(backbone.parameters()).device
        with torch.no_grad(), autocast_for(device, fast):
            out = backbone.run_through(normalize_crops(images).to(device), self.top).to("cpu", torch.float16)
        self.computed += len(keys)
        limit = self.config.cache_mb * 2**20
        for k, feature in zip(keys, out):
            size = feature.numel() * feature.element_size()
            if self._bytes + size <= limit:
                self._kept[k] = feature
                self._bytes += size
        return dict(zip(keys, out))

    def _check(self, backbone: FeatureBackbone) -> None:
        """Kept views are only valid for the frozen weights that made them."""
        missing = [s for s in self.config.frozen if s not in backbone.frozen_stages]
        if missing:
            raise ValueError(f"TrunkCache: stages {missing} of the backbone are not frozen")
        total = sum(
            float(t.double().sum())
            for s in self.config.frozen
            for t in (*getattr(backbone, s).parameters(), *getattr(backbone, s).buffers())
        )
        if self._weights is None:
            self._weights = total
        elif total != self._weights:
            raise ValueError("TrunkCache: the frozen stages' weights changed since the kept views were made")
