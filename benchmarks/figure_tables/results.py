"""docs/results.md's figure tables."""

from __future__ import annotations
