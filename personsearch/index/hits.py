"""Search inputs and results (``SearchQuery``, ``Hit``) and their stable JSON form.

The JSON document (``hits_to_json``) is what ``personsearch search --json`` prints and what
reports can be rebuilt from; its layout is documented in docs/search-json.md and versioned by
``schema_version``: a change that renames, removes or retypes a key bumps the version.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from personsearch.data.images import decode_image
from personsearch.index.store import SightingInfo

JSON_SCHEMA = "personsearch.search-results"
JSON_SCHEMA_VERSION = 2
"""1: hits are boxes. 2: + ``sighting`` per hit, and by default one hit per sighting (version-1
documents are still read)."""
HIT_KEYS = (
    "rank",
    "score",
    "box",
    "detection_score",
    "source",
    "kind",
    "frame",
    "time",
    "camera",
    "box_id",
    "sighting",
)
"""Keys of every hit object, in order; ``thumbnail_jpeg_base64`` is added only on request."""


@dataclass
class SearchQuery:
    """A query person: its feature, the crop it came from, and where the crop came from."""

    feature: np.ndarray
    """(D,) float32, L2-normalised."""
    crop: np.ndarray
    """HxWx3 uint8 RGB (reports show it)."""
    source: str | None = None
    """The image or video the query was cut from; ``None`` for a crop given directly."""
    frame: int | None = None
    box: tuple[float, float, float, float] | None = None
    """xyxy in ``source``; ``None`` for a crop given directly."""
    note: str | None = None
    """What was assumed to find the person (an image with no box taken whole as a crop)."""


@dataclass
class Hit:
    """One search result: a detected person in an indexed image or video frame."""

    rank: int
    """1 = best."""
    score: float
    """Cosine similarity to the query (features are unit vectors), in [-1, 1]."""
    box: tuple[float, float, float, float]
    """xyxy pixels in the source image / frame."""
    detection_score: float
    source: str
    """Absolute path of the image or video file."""
    kind: str
    """``"image"`` or ``"video"``."""
    frame: int | None
    """Video frame number (0-based); ``None`` for an image."""
    time: float | None
    """Seconds from the start of the video; ``None`` for an image."""
    camera: str
    box_id: int
    """Stable id of the box in its index."""
    thumbnail_jpeg: bytes | None = field(default=None, repr=False)
    """The stored thumbnail (JPEG); ``None`` when the hit was read from JSON without thumbnails."""
    sighting: SightingInfo | None = None
    """The tracked appearance this box belongs to (its time span and a few of its boxes); ``None``
    for an image (a one-frame sighting) or a video not yet indexed to its end. When results are
    grouped by sighting, the hit's box is the sighting's best-matching frame."""
    sighting_thumbnails: tuple[bytes, ...] = field(default=(), repr=False)
    """Thumbnails (JPEG) of ``sighting.sample_boxes``, in that order (reports show the walk)."""

    def thumbnail(self) -> np.ndarray:
        """The thumbnail as HxWx3 uint8 RGB."""
        if self.thumbnail_jpeg is None:
            raise ValueError(
                f"hit {self.rank} (box {self.box_id}) carries no thumbnail; search the index again or read "
                "the scene with personsearch.index.sources.read_frame"
            )
        return decode_image(self.thumbnail_jpeg, f"thumbnail of box {self.box_id}")


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(float(value), digits)


def hit_to_json(hit: Hit, *, include_thumbnail: bool = False) -> dict[str, Any]:
    """One hit as a JSON object with exactly ``HIT_KEYS`` (plus the thumbnail when asked)."""
    data: dict[str, Any] = {
        "rank": int(hit.rank),
        "score": _round(hit.score, 6),
        "box": [_round(v, 2) for v in hit.box],
        "detection_score": _round(hit.detection_score, 6),
        "source": hit.source,
        "kind": hit.kind,
        "frame": None if hit.frame is None else int(hit.frame),
        "time": _round(hit.time, 3),
        "camera": hit.camera,
        "box_id": int(hit.box_id),
        "sighting": None if hit.sighting is None else hit.sighting.to_json(),
    }
    if include_thumbnail and hit.thumbnail_jpeg is not None:
        data["thumbnail_jpeg_base64"] = base64.b64encode(hit.thumbnail_jpeg).decode("ascii")
    return data


def hits_to_json(
    hits: Sequence[Hit],
    *,
    query: SearchQuery | None = None,
    include_thumbnails: bool = False,
    reranked: bool = False,
) -> dict[str, Any]:
    """The versioned JSON document for a result list (see docs/search-json.md); ``reranked``: the
    hits were ranked and scored by k-reciprocal re-ranking (``ranking``), not cosine."""
    query_json = None
    if query is not None:
        query_json = {
            "source": query.source,
            "frame": query.frame,
            "box": None if query.box is None else [_round(v, 2) for v in query.box],
            "note": query.note,
        }
    return {
        "schema": JSON_SCHEMA,
        "schema_version": JSON_SCHEMA_VERSION,
        "query": query_json,
        "ranking": "k-reciprocal" if reranked else "cosine",
        "hits": [hit_to_json(hit, include_thumbnail=include_thumbnails) for hit in hits],
    }


def hits_from_json(document: Mapping[str, Any]) -> list[Hit]:
    """Read back the hits of a ``hits_to_json`` document, checking its schema and version."""
    if document.get("schema") != JSON_SCHEMA:
        raise ValueError(
            f"not a personsearch search-results document: 'schema' is {document.get('schema')!r}, "
            f"expected {JSON_SCHEMA!r}"
        )
    version = document.get("schema_version")
    if version not in (1, JSON_SCHEMA_VERSION):
        raise ValueError(
            f"search results schema_version {version!r}; this version of personsearch reads 1 to "
            f"{JSON_SCHEMA_VERSION}"
        )
    keys = HIT_KEYS if version == JSON_SCHEMA_VERSION else HIT_KEYS[:-1]
    hits = []
    for i, item in enumerate(document.get("hits", [])):
        missing = [key for key in keys if key not in item]
        if missing:
            raise ValueError(f"hit {i} lacks keys {missing}; every hit has {list(keys)}")
        thumbnail = None
        if "thumbnail_jpeg_base64" in item:
            try:
                thumbnail = base64.b64decode(item["thumbnail_jpeg_base64"], validate=True)
            except (binascii.Error, ValueError) as err:
                raise ValueError(f"hit {i}: thumbnail_jpeg_base64 is not valid base64 ({err})") from None
        box = [float(v) for v in item["box"]]
        if len(box) != 4:
            raise ValueError(f"hit {i}: box must be [x1, y1, x2, y2], got {item['box']}")
        hits.append(
            Hit(
                rank=int(item["rank"]),
                score=float(item["score"]),
                box=(box[0], box[1], box[2], box[3]),
                detection_score=float(item["detection_score"]),
                source=str(item["source"]),
                kind=str(item["kind"]),
                frame=None if item["frame"] is None else int(item["frame"]),
                time=None if item["time"] is None else float(item["time"]),
                camera=str(item["camera"]),
                box_id=int(item["box_id"]),
                thumbnail_jpeg=thumbnail,
                sighting=_sighting_from_json(item.get("sighting"), i),
            )
        )
    return hits


def _sighting_from_json(data: Any, i: int) -> SightingInfo | None:
    if data is None:
        return None
    try:
        return SightingInfo(
            id=int(data["id"]),
            source_id=int(data["source_id"]),
            first_frame=int(data["first_frame"]),
            last_frame=int(data["last_frame"]),
            start_time=None if data["start_time"] is None else float(data["start_time"]),
            end_time=None if data["end_time"] is None else float(data["end_time"]),
            boxes=int(data["boxes"]),
            best_box=int(data["best_box"]),
            sample_boxes=tuple(int(b) for b in data.get("sample_boxes", [])),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"hit {i}: malformed sighting ({err!r}); see docs/search-json.md") from None
