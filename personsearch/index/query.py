"""Building a query feature from what a user has: a person crop, a scene image + box, or a video
frame + box. Without a box, a person-shaped image that shows no one else is taken whole as the
person (with a note); otherwise the scene's people are detected and the one person is used
(several people: the error lists their boxes so the user can pick one).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from personsearch.data.boxes import crop_box
from personsearch.data.images import read_image
from personsearch.index.hits import SearchQuery
from personsearch.index.sources import read_frame
from personsearch.pipeline import PersonEngine, PersonSearchPipeline


def query_from_crop(engine: PersonEngine, crop: np.ndarray | str | Path) -> SearchQuery:
    """Query from an image that shows just the person (the whole image is the box)."""
    if isinstance(crop, (str, Path)):
        image, name, source = read_image(crop), str(crop), str(crop)
    else:
        image, name, source = np.ascontiguousarray(crop), "query crop", None
    _, feature = PersonSearchPipeline(engine).query_person(
        image, (0, 0, image.shape[1], image.shape[0]), name
    )
    return SearchQuery(feature, image, source)


def _query_in(
    engine: PersonEngine,
    pixels: np.ndarray,
    box: Sequence[float] | None,
    name: str,
    source: str | None,
    frame: int | None,
) -> SearchQuery:
    chosen, feature = PersonSearchPipeline(engine).query_person(pixels, box, name)
    x1, y1, x2, y2 = (float(v) for v in chosen)
    note = None
    if box is None and PersonSearchPipeline.is_whole_image(chosen.tolist(), pixels):
        note = (
            f"{name}: a {pixels.shape[1]}x{pixels.shape[0]} person-shaped image with no other person in it, "
            "taken whole as the person (give a box to pick someone in it)"
        )
    return SearchQuery(feature, crop_box(pixels, chosen), source, frame, (x1, y1, x2, y2), note)


def query_from_scene(
    engine: PersonEngine, image: np.ndarray | str | Path, box: Sequence[float] | None = None
) -> SearchQuery:
    """Query from a person (``box`` xyxy, or the only person detected) in a scene image."""
    if isinstance(image, (str, Path)):
        return _query_in(engine, read_image(image), box, str(image), str(image), None)
    return _query_in(engine, np.ascontiguousarray(image), box, "query image", None, None)


def query_from_video(
    engine: PersonEngine, video: str | Path, frame: int, box: Sequence[float] | None = None
) -> SearchQuery:
    """Query from a person (``box`` xyxy, or the only person detected) in frame ``frame`` of a video."""
    return _query_in(engine, read_frame(video, frame), box, f"{video} frame {frame}", str(video), frame)
