"""docs/performance-log.md's figure tables."""

from __future__ import annotations
