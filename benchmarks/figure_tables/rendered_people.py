"""docs/rendered-people.md's figure tables."""

from __future__ import annotations
