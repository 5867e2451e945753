"""docs/real-footage.md's figure tables."""

from __future__ import annotations
