"""Suite-wide settings."""

from __future__ import annotations

import pytest

from personsearch.models.bundle import ENGINE_ENV


@pytest.fixture(autouse=True)
def reference_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run models on plain PyTorch fp32 unless a test asks for another engine: results stay
    deterministic across machines, and no test writes an engine choice into the user's cache
    (the choice itself is tested in test_engines.py, with the cache redirected)."""
    monkeypatch.setenv(ENGINE_ENV, "torch-fp32")


MAX_WORKERS = 4
"""Each worker loads PyTorch, ONNX Runtime and its files' models (about 1-2 GB): a cap keeps a
many-core machine's run within its memory, and past a few workers the longest file sets the time."""


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: one worker per core, at most ``MAX_WORKERS``."""
    import os

    return max(1, min(MAX_WORKERS, len(os.sched_getaffinity(0))))
