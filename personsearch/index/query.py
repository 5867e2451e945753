"""Building a query feature from what a user has: a person crop, a scene image + box, or a video
frame + box. Without a box the scene's people are detected and the one person is used (several
people: the error lists their boxes so the user can pick one).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from personsearch.data.images import read_image
from personsearch.index.engine import PersonEngine, check_detections, check_features
from personsearch.index.hits import SearchQuery
from personsearch.index.indexer import clip_boxes, crop_box
from personsearch.index.sources import read_frame


def _embed_one(engine: PersonEngine, image: np.ndarray, box: np.ndarray) -> np.ndarray:
    return check_features(engine, engine.embed(image, box.reshape(1, 4)), 1)[0]


def _pick_box(engine: PersonEngine, image: np.ndarray, box: Sequence[float] | None, name: str) -> np.ndarray:
    height, width = image.shape[:2]
    if box is not None:
        given = np.asarray(box, dtype=np.float32).reshape(-1)
        if given.shape != (4,):
            raise ValueError(f"{name}: a query box is 4 numbers x1,y1,x2,y2, got {list(box)}")
        clipped, keep = clip_boxes(given, width, height)
        if not keep[0]:
            raise ValueError(f"{name}: query box {given.tolist()} has no area inside the {width}x{height} image; boxes are x1,y1,x2,y2 pixels")
        return clipped[0]
    (dets,) = check_detections(engine, engine.detect([image]), 1)
    if len(dets) == 1:
        return clip_boxes(dets[:, :4], width, height)[0][0]
    if len(dets) == 0:
        raise ValueError(f"{name}: no person detected; give the query box x1,y1,x2,y2 yourself")
    listed = "; ".join(",".join(f"{v:.0f}" for v in d[:4]) + f" (score {d[4]:.2f})" for d in dets)
    raise ValueError(f"{name}: {len(dets)} people detected, choose one with a query box x1,y1,x2,y2: {listed}")


def query_from_crop(engine: PersonEngine, crop: np.ndarray | str | Path) -> SearchQuery:
    """Query from an image that shows just the person (the whole image is the box)."""
    is_file = isinstance(crop, (str, Path))
    image = read_image(crop) if is_file else np.ascontiguousarray(crop)
    box = np.array([0, 0, image.shape[1], image.shape[0]], dtype=np.float32)
    return SearchQuery(_embed_one(engine, image, box), image, str(crop) if is_file else None)


def _query_in(engine: PersonEngine, pixels: np.ndarray, box: Sequence[float] | None, name: str, source: str | None, frame: int | None) -> SearchQuery:
    chosen = _pick_box(engine, pixels, box, name)
    x1, y1, x2, y2 = (float(v) for v in chosen)
    return SearchQuery(_embed_one(engine, pixels, chosen), crop_box(pixels, chosen), source, frame, (x1, y1, x2, y2))


def query_from_scene(engine: PersonEngine, image: np.ndarray | str | Path, box: Sequence[float] | None = None) -> SearchQuery:
    """Query from a person (``box`` xyxy, or the only person detected) in a scene image."""
    if isinstance(image, (str, Path)):
        return _query_in(engine, read_image(image), box, str(image), str(image), None)
    return _query_in(engine, np.ascontiguousarray(image), box, "query image", None, None)


def query_from_video(engine: PersonEngine, video: str | Path, frame: int, box: Sequence[float] | None = None) -> SearchQuery:
    """Query from a person (``box`` xyxy, or the only person detected) in frame ``frame`` of a video."""
    return _query_in(engine, read_frame(video, frame), box, f"{video} frame {frame}", str(video), frame)
