"""One detector's boxes shared by several re-id networks: computed once, kept in a cache that a
later run reads without making the engine, and recomputed when the cache is for other scenes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from index_testkit import BLUE, GREEN, RED, YELLOW, ColourEngine, draw_scene
from PIL import Image

from personsearch.data.records import Scene
from personsearch.evaluation.pipeline import gallery_detections


def _scenes(tmp_path: Path, count: int) -> list[Scene]:
    layouts = [[(10, 20, RED, GREEN)], [(10, 20, BLUE, YELLOW), (60, 80, RED, RED)], []]
    scenes = []
    for k in range(count):
        path = tmp_path / f"s{k}.png"
        Image.fromarray(draw_scene(layouts[k % len(layouts)])).save(path)
        scenes.append(Scene(path.name, path, np.zeros((0, 4)), np.zeros(0, np.int64)))
    return scenes


def test_shared_detections_are_computed_once_and_read_back(tmp_path: Path) -> None:
    scenes = _scenes(tmp_path, 3)
    engine = ColourEngine()
    cache = tmp_path / "work" / "dets.npz"
    first = gallery_detections(lambda: engine, scenes, cache)
    assert [len(d) for d in first] == [1, 2, 0] and engine.images_detected == 3
    np.testing.assert_array_equal(first[1][:, :4], [[10, 20, 30, 60], [60, 80, 80, 120]])

    def no_engine() -> ColourEngine:
        raise AssertionError("the cache should have been read")

    again = gallery_detections(no_engine, scenes, cache)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not list(cache.parent.glob("*.tmp*"))  # written whole, then moved into place

    more = _scenes(tmp_path, 4)  # a cache of other scenes is not taken for these
    with pytest.raises(AssertionError, match="cache should have been read"):
        gallery_detections(no_engine, more, cache)
    assert len(gallery_detections(ColourEngine, more, cache)) == 4
