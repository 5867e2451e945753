"""Browsing an index: what it holds (sources, cameras, time span), the frames of a source, the
people in a frame, one box. Read-only queries over the store, addressed by id only, so a caller
(the web service) never turns a request into a file path: the path comes from the index.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from personsearch.index.store import IndexStore


@dataclass(frozen=True)
class SourceInfo:
    """One indexed image or video file."""

    id: int
    path: str
    name: str
    kind: str
    camera: str
    people: int
    complete: bool
    frames_indexed: int
    """Images: 1. Videos: frames up to which indexing has progressed (sampled or not)."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FrameInfo:
    """One image, or one video frame in which people were indexed."""

    frame: int | None
    time: float | None
    people: int


@dataclass(frozen=True)
class BoxInfo:
    """One indexed person and where it was seen."""

    box_id: int
    source_id: int
    source: str
    kind: str
    camera: str
    frame: int | None
    time: float | None
    box: tuple[float, float, float, float]
    score: float

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["box"] = [round(v, 2) for v in self.box]
        data["score"] = round(self.score, 6)
        return data


_SOURCE_COLUMNS = "id, path, kind, camera, people, complete, next_frame"


def _source_info(row: tuple) -> SourceInfo:
    sid, path, kind, camera, people, complete, next_frame = row
    return SourceInfo(int(sid), path, Path(path).name, kind, camera, int(people), bool(complete), 1 if kind == "image" else int(next_frame))


def summary(store: IndexStore) -> dict[str, Any]:
    """Counts, cameras and the time span of the videos: the first thing a browser shows."""
    conn = store.conn
    (people,) = conn.execute("SELECT COUNT(*) FROM boxes").fetchone()
    kinds = dict(conn.execute("SELECT kind, COUNT(*) FROM sources GROUP BY kind").fetchall())
    cameras = [
        {"camera": camera, "sources": int(n), "people": int(p or 0)}
        for camera, n, p in conn.execute("SELECT camera, COUNT(*), SUM(people) FROM sources GROUP BY camera ORDER BY camera")
    ]
    start, end = conn.execute("SELECT MIN(time), MAX(time) FROM boxes WHERE time IS NOT NULL").fetchone()
    (incomplete,) = conn.execute("SELECT COUNT(*) FROM sources WHERE complete = 0").fetchone()
    return {
        "model_id": store.model_id,
        "feature_dim": store.feature_dim,
        "people": int(people),
        "images": int(kinds.get("image", 0)),
        "videos": int(kinds.get("video", 0)),
        "incomplete_sources": int(incomplete),
        "cameras": cameras,
        "time_span": None if start is None else [float(start), float(end)],
    }


def list_sources(store: IndexStore, *, camera: str | None = None, offset: int = 0, limit: int = 100) -> tuple[int, list[SourceInfo]]:
    """Sources ordered by camera then path, one page: ``(total, page)``."""
    where, args = ("WHERE camera = ?", [camera]) if camera is not None else ("", [])
    (total,) = store.conn.execute(f"SELECT COUNT(*) FROM sources {where}", args).fetchone()
    rows = store.conn.execute(f"SELECT {_SOURCE_COLUMNS} FROM sources {where} ORDER BY camera, path LIMIT ? OFFSET ?", [*args, limit, offset])
    return int(total), [_source_info(row) for row in rows]


def get_source(store: IndexStore, source_id: int) -> SourceInfo:
    row = store.conn.execute(f"SELECT {_SOURCE_COLUMNS} FROM sources WHERE id = ?", (int(source_id),)).fetchone()
    if row is None:
        raise KeyError(f"no source {source_id} in the index at {store.directory}")
    return _source_info(row)


def list_frames(store: IndexStore, source_id: int, *, offset: int = 0, limit: int = 100) -> tuple[int, list[FrameInfo]]:
    """The image, or the video frames holding people, in frame order: ``(total, page)``."""
    source = get_source(store, source_id)
    if source.kind == "image":
        return 1, ([FrameInfo(None, None, source.people)] if offset == 0 else [])
    (total,) = store.conn.execute("SELECT COUNT(DISTINCT frame) FROM boxes WHERE source_id = ?", (source.id,)).fetchone()
    rows = store.conn.execute(
        "SELECT frame, MIN(time), COUNT(*) FROM boxes WHERE source_id = ? GROUP BY frame ORDER BY frame LIMIT ? OFFSET ?",
        (source.id, limit, offset),
    )
    return int(total), [FrameInfo(int(f), None if t is None else float(t), int(n)) for f, t, n in rows]


_BOX_SELECT = (
    "SELECT b.id, s.id, s.path, s.kind, s.camera, b.frame, b.time, b.x1, b.y1, b.x2, b.y2, b.score "
    "FROM boxes b JOIN sources s ON s.id = b.source_id "
)


def _box_info(row: tuple) -> BoxInfo:
    box_id, sid, path, kind, camera, frame, time, x1, y1, x2, y2, score = row
    return BoxInfo(int(box_id), int(sid), path, kind, camera, frame, time, (float(x1), float(y1), float(x2), float(y2)), float(score))


def people_in_frame(store: IndexStore, source_id: int, frame: int | None) -> list[BoxInfo]:
    """Everyone indexed in the image (``frame=None``) or in one frame of a video."""
    source = get_source(store, source_id)
    if (source.kind == "image") != (frame is None):
        raise ValueError(f"source {source_id} is {'an image: give no frame' if source.kind == 'image' else 'a video: give a frame number'}")
    rows = store.conn.execute(_BOX_SELECT + "WHERE s.id = ? AND b.frame IS ? ORDER BY b.id", (source.id, frame))
    return [_box_info(row) for row in rows]


def get_box(store: IndexStore, box_id: int) -> BoxInfo:
    row = store.conn.execute(_BOX_SELECT + "WHERE b.id = ?", (int(box_id),)).fetchone()
    if row is None:
        raise KeyError(f"no box {box_id} in the index at {store.directory}")
    return _box_info(row)


class SourceChangedError(OSError):
    """An indexed file is gone, or is not the file that was indexed."""


def check_source_file(store: IndexStore, source_id: int) -> Path:
    """The indexed file of ``source_id``, checked to be the very file that was indexed: a regular
    file (not a link put in its place since) with the recorded size and modification time."""
    row = store.conn.execute("SELECT path, size, mtime_ns FROM sources WHERE id = ?", (int(source_id),)).fetchone()
    if row is None:
        raise KeyError(f"no source {source_id} in the index at {store.directory}")
    path, size, mtime_ns = Path(row[0]), int(row[1]), int(row[2])
    try:
        stat = os.lstat(path)
    except OSError:
        raise SourceChangedError(f"{path} was indexed but is no longer there; restore it or re-index its folder") from None
    if not path.is_file() or path.is_symlink() or stat.st_size != size or stat.st_mtime_ns != mtime_ns:
        raise SourceChangedError(f"{path} changed since it was indexed; re-index it with `personsearch index`")
    return path
