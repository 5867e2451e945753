"""What the index needs from a model: detect people, embed them, and say which model it is.

The index is written against this protocol only, so any detector + re-id pair (the CLSA bundle,
a baseline, a test double) can fill it. ``model_id`` must change whenever the weights change:
features from different models are not comparable, and an index refuses a model it was not
built with.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class PersonEngine(Protocol):
    """A person detector and re-id feature extractor."""

    model_id: str
    """Identifies the detector + re-id weights (e.g. a digest of the weight files)."""
    feature_dim: int
    """Length D of every feature ``embed`` returns."""

    def detect(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """For each HxWx3 uint8 RGB image, float32 (n, 5) ``[x1, y1, x2, y2, score]``, already
        thresholded (every row is a person to keep)."""
        ...

    def embed(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Float32 (n, D) L2-normalised re-id features of the (n, 4) xyxy ``boxes`` in ``image``."""
        ...


def check_detections(engine: PersonEngine, detections: list[np.ndarray], num_images: int) -> list[np.ndarray]:
    """Validate ``engine.detect`` output, so a broken engine fails loudly instead of corrupting the index."""
    if len(detections) != num_images:
        raise ValueError(f"engine {engine.model_id!r}: detect returned {len(detections)} results for {num_images} images")
    checked = []
    for dets in detections:
        dets = np.asarray(dets, dtype=np.float32)
        if dets.size == 0:
            dets = dets.reshape(0, 5)
        if dets.ndim != 2 or dets.shape[1] != 5:
            raise ValueError(f"engine {engine.model_id!r}: detect must return (n, 5) arrays, got shape {dets.shape}")
        if not np.isfinite(dets).all():
            raise ValueError(f"engine {engine.model_id!r}: detect returned non-finite values")
        checked.append(dets)
    return checked


NORM_TOLERANCE = 0.02
"""How far from 1 a feature's length may be (bf16 engines normalise to about 0.5%)."""


def check_features(engine: PersonEngine, features: np.ndarray, num_boxes: int) -> np.ndarray:
    """Validate ``engine.embed`` output, (n, D) finite rows of unit length, and return it as exact
    float32 unit vectors (so stored inner products are cosines)."""
    features = np.asarray(features, dtype=np.float32)
    if features.shape != (num_boxes, engine.feature_dim):
        raise ValueError(
            f"engine {engine.model_id!r}: embed returned shape {features.shape} for {num_boxes} boxes, "
            f"expected ({num_boxes}, {engine.feature_dim})"
        )
    if not np.isfinite(features).all():
        raise ValueError(f"engine {engine.model_id!r}: embed returned non-finite values")
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    if num_boxes and np.abs(norms - 1.0).max() > NORM_TOLERANCE:
        raise ValueError(
            f"engine {engine.model_id!r}: embed must return L2-normalised features (norms {norms.min():.4f}..{norms.max():.4f})"
        )
    return np.ascontiguousarray(features / np.maximum(norms, 1e-12))
