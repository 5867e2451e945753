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
