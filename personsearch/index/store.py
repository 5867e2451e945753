"""The on-disk index: SQLite metadata (WAL) plus a raw float32 vector file, and the commit protocol.

Layout of an index directory::

    index.sqlite   meta (model_id, feature_dim, committed vector count, ...), sources, boxes, thumbnails,
                   sightings (a tracked person's boxes in one video, see tracking.py)
    vectors.f32    row i = the feature of box id i; float32, feature_dim columns, no header
    ivf.faiss      optional approximate-search index (see ann.py)
    ivfpq.faiss    optional compact approximate-search index (product-quantised, see ann.py)
    lock           held (flock) by the one process that is writing

Commit protocol (crash safety). A batch is written in two steps:

1. its vectors are written at row ``N`` (the committed count) of ``vectors.f32`` and fsynced;
2. one SQLite transaction inserts its boxes with ids ``N..N+m-1``, updates its sources and sets
   the committed count to ``N+m``.

Sightings are written once a video is indexed to its end, in one transaction per video that
also marks it ``tracked``; they are computed from committed rows only, so a crash before that
transaction is repaired by tracking the video again (``tracking.link_pending``) with the same result.

A crash before step 2 commits leaves rows past ``N`` that nothing refers to; they are
overwritten by the next batch and truncated when a writer opens the index. Readers only ever
look at the first ``N`` rows. Box ids are never reused: re-indexing a changed file deletes its
boxes (their vector rows stay as unreferenced tombstones, excluded from search).
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from personsearch.index.sources import Source

SCHEMA_VERSION = 2
"""1: sources, boxes, thumbnails. 2: + sightings (migrated in place when a v1 index is opened)."""
DB_NAME = "index.sqlite"
VECTORS_NAME = "vectors.f32"
LOCK_NAME = "lock"
IVF_NAME = "ivf.faiss"
IVFPQ_NAME = "ivfpq.faiss"

_SIGHTINGS_SCHEMA = """
CREATE TABLE sightings (
    id INTEGER PRIMARY KEY,
    source_id INTEGER NOT NULL REFERENCES sources(id),
    first_frame INTEGER NOT NULL,
    last_frame INTEGER NOT NULL,
    start_time REAL,
    end_time REAL,
    boxes INTEGER NOT NULL,
    best_box INTEGER NOT NULL
);
CREATE INDEX sightings_by_source ON sightings(source_id);
CREATE INDEX boxes_by_sighting ON boxes(sighting);
"""

_SCHEMA = (
    """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE sources (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    camera TEXT NOT NULL,
    next_frame INTEGER NOT NULL,
    complete INTEGER NOT NULL,
    people INTEGER NOT NULL,
    tracked INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE boxes (
    id INTEGER PRIMARY KEY,
    source_id INTEGER NOT NULL REFERENCES sources(id),
    frame INTEGER,
    time REAL,
    x1 REAL NOT NULL, y1 REAL NOT NULL, x2 REAL NOT NULL, y2 REAL NOT NULL,
    score REAL NOT NULL,
    sighting INTEGER
);
CREATE INDEX boxes_by_source ON boxes(source_id);
CREATE TABLE thumbnails (box_id INTEGER PRIMARY KEY, jpeg BLOB NOT NULL);
"""
    + _SIGHTINGS_SCHEMA
)

_MIGRATE_1_TO_2 = (
    """
ALTER TABLE sources ADD COLUMN tracked INTEGER NOT NULL DEFAULT 0;
ALTER TABLE boxes ADD COLUMN sighting INTEGER;
"""
    + _SIGHTINGS_SCHEMA
)


class PersonIndexError(Exception):
    """Base class for errors about an index directory."""


class ModelMismatchError(PersonIndexError, ValueError):
    """The index was built with another model than the one in use."""


class IndexCorruptError(PersonIndexError):
    """The index files disagree in a way the commit protocol cannot produce."""


class IndexBusyError(PersonIndexError):
    """Another process is writing to the index."""


@dataclass(frozen=True)
class SourceState:
    """What the index holds about one source file."""

    id: int
    size: int
    mtime_ns: int
    next_frame: int
    complete: bool

    def matches(self, source: Source) -> bool:
        """Same file contents as indexed (the incremental key: size and modification time)."""
        return self.size == source.size and self.mtime_ns == source.mtime_ns


@dataclass
class BoxRow:
    """One detected person to commit; its vector is the matching row of the batch."""

    source: Source
    frame: int | None
    time: float | None
    box: np.ndarray
    """(4,) xyxy."""
    score: float
    thumbnail: bytes


@dataclass
class SourceUpdate:
    """Progress on one source within a batch."""

    source: Source
    next_frame: int
    complete: bool


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

    def check_frame(self, frame: int | None) -> None:
        """An image is addressed without a frame number, a video frame with one."""
        if (self.kind == "image") != (frame is None):
            raise ValueError(
                f"source {self.id} is "
                f"{'an image: give no frame' if self.kind == 'image' else 'a video: give a frame number'}"
            )


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


@dataclass(frozen=True)
class SightingInfo:
    """One tracked appearance of a person in a video: its span, size and representative box."""

    id: int
    source_id: int
    first_frame: int
    last_frame: int
    start_time: float | None
    end_time: float | None
    boxes: int
    """Number of (sampled) frames it was detected in."""
    best_box: int
    """Box whose feature is closest to the sighting's mean (its thumbnail stands for the sighting)."""
    sample_boxes: tuple[int, ...] = ()
    """Up to ``SIGHTING_SAMPLES`` box ids spread evenly over the span, first and last included."""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["sample_boxes"] = list(self.sample_boxes)
        for key in ("start_time", "end_time"):
            data[key] = None if data[key] is None else round(data[key], 3)
        return data


SIGHTING_SAMPLES = 5


class SourceChangedError(OSError):
    """An indexed file is gone, or is not the file that was indexed."""


_SOURCE_COLUMNS = "id, path, kind, camera, people, complete, next_frame"
_BOX_SELECT = (
    "SELECT b.id, s.id, s.path, s.kind, s.camera, b.frame, b.time, b.x1, b.y1, b.x2, b.y2, "
    "b.score FROM boxes b JOIN sources s ON s.id = b.source_id "
)


def _source_info(row: tuple[Any, ...]) -> SourceInfo:
    sid, path, kind, camera, people, complete, next_frame = row
    return SourceInfo(
        int(sid),
        path,
        Path(path).name,
        kind,
        camera,
        int(people),
        bool(complete),
        1 if kind == "image" else int(next_frame),
    )


def _box_info(row: tuple[Any, ...]) -> BoxInfo:
    box_id, sid, path, kind, camera, frame, time, x1, y1, x2, y2, score = row
    return BoxInfo(
        int(box_id),
        int(sid),
        path,
        kind,
        camera,
        frame,
        time,
        (float(x1), float(y1), float(x2), float(y2)),
        float(score),
    )


def _migrate_from_1(conn: sqlite3.Connection, db: Path) -> str:
    """Upgrade a schema-1 index in place (every box kept; videos are tracked into sightings on
    the next ``tracking.link_pending``); returns the new version."""
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            (version,) = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if version == "1":  # not upgraded by another process meanwhile
                for statement in filter(str.strip, _MIGRATE_1_TO_2.split(";")):
                    conn.execute(statement)
                conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    except sqlite3.OperationalError as err:
        raise PersonIndexError(
            f"{db}: written by an older personsearch (index schema 1); it is upgraded in place on "
            f"first open (video sightings are added, no box is lost), which needs write access ({err}). "
            "Open it once where it is writable, or rebuild it with `personsearch index`."
        ) from None
    return str(SCHEMA_VERSION)


def _connect(path: Path, shared: bool = False) -> sqlite3.Connection:
    # shared: usable from any thread; the caller serialises use (sqlite3 objects are not re-entrant)
    conn = sqlite3.connect(str(path), isolation_level=None, timeout=30.0, check_same_thread=not shared)
    conn.execute("PRAGMA journal_mode=WAL")
    # NORMAL in WAL mode never corrupts; after a power cut the last commits may roll back, which
    # only makes those images look un-indexed (vectors are fsynced first, so the reverse can't happen).
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


class IndexStore:
    """One open index directory: metadata, vector rows, the writer lock and the commit protocol."""

    def __init__(self, directory: Path, conn: sqlite3.Connection) -> None:
        self.directory = directory
        self.conn = conn
        db = directory / DB_NAME
        try:
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.DatabaseError as err:
            raise IndexCorruptError(
                f"{db}: not a personsearch index database ({err}); rebuild the index with "
                "`personsearch index`"
            ) from None
        if meta.get("schema_version") == "1" and "model_id" in meta and "feature_dim" in meta:
            meta["schema_version"] = _migrate_from_1(conn, db)
        if (
            meta.get("schema_version") != str(SCHEMA_VERSION)
            or "model_id" not in meta
            or "feature_dim" not in meta
        ):
            raise IndexCorruptError(
                f"{db}: index schema version {meta.get('schema_version')!r}, this version of personsearch "
                f"reads {SCHEMA_VERSION}; rebuild the index with `personsearch index`"
            )
        self.model_id: str = meta["model_id"]
        self.feature_dim: int = int(meta["feature_dim"])
        self._lock_file: int | None = None
        self._mapped: np.memmap | None = None
        self._row_reader: int | None = None
        """A descriptor of the vectors file for ``vector_rows`` (opened on first use)."""
        self._check_vector_file(self.committed_rows())

    # ----------------------------------------------------------------- opening and creating
    @classmethod
    def exists(cls, directory: str | Path) -> bool:
        return (Path(directory) / DB_NAME).is_file()

    @classmethod
    def open(cls, directory: str | Path, *, shared: bool = False) -> IndexStore:
        """Open an existing index; ``shared``: see ``PersonIndex.open``."""
        directory = Path(directory)
        if not cls.exists(directory):
            raise FileNotFoundError(
                f"no person index at {directory} (no {DB_NAME}); build one with "
                f"`personsearch index PATH... --index {directory}`"
            )
        try:
            conn = _connect(directory / DB_NAME, shared)
        except sqlite3.DatabaseError as err:
            raise IndexCorruptError(
                f"{directory / DB_NAME}: not a personsearch index database ({err}); "
                "rebuild the index with `personsearch index`"
            ) from None
        try:
            return cls(directory, conn)
        except BaseException:
            conn.close()
            raise

    @classmethod
    def create(
        cls, directory: str | Path, model_id: str, feature_dim: int, *, shared: bool = False
    ) -> IndexStore:
        """Create an empty index; the database appears under its final name only once complete."""
        from personsearch.models.bundle import is_bundle  # late: the index opens without torch

        directory = Path(directory)
        if cls.exists(directory):
            raise FileExistsError(f"{directory} already holds a person index")
        if is_bundle(directory):
            raise FileExistsError(
                f"{directory} holds a model bundle: give the index a folder of its own "
                f"(for example {directory}-index)"
            )
        if feature_dim <= 0:
            raise ValueError(f"feature_dim must be positive, got {feature_dim}")
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / (DB_NAME + ".creating")
        tmp.unlink(missing_ok=True)
        conn = sqlite3.connect(str(tmp), isolation_level=None)
        conn.executescript("BEGIN;" + _SCHEMA + "COMMIT;")
        meta = {
            "schema_version": SCHEMA_VERSION,
            "model_id": model_id,
            "feature_dim": feature_dim,
            "vector_rows": 0,
            "generation": 0,
        }
        conn.executemany("INSERT INTO meta VALUES (?, ?)", [(k, str(v)) for k, v in meta.items()])
        conn.close()
        (directory / VECTORS_NAME).write_bytes(b"")
        for stale in (IVF_NAME, IVFPQ_NAME):
            (directory / stale).unlink(missing_ok=True)  # left from an index deleted by hand
        os.replace(tmp, directory / DB_NAME)
        return cls.open(directory, shared=shared)

    def close(self) -> None:
        self.release_writer()
        self._mapped = None
        if self._row_reader is not None:
            os.close(self._row_reader)
            self._row_reader = None
        self.conn.close()

    # ----------------------------------------------------------------- vector rows
    @property
    def vectors_path(self) -> Path:
        return self.directory / VECTORS_NAME

    @property
    def row_bytes(self) -> int:
        return 4 * self.feature_dim

    def meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def committed_rows(self) -> int:
        """Vector rows recorded by committed transactions (box ids are below this)."""
        return int(self.meta("vector_rows") or 0)

    def generation(self) -> int:
        """Bumped whenever boxes are deleted, so readers know to reload which rows are live."""
        return int(self.meta("generation") or 0)

    def _check_vector_file(self, rows: int) -> None:
        size = self.vectors_path.stat().st_size if self.vectors_path.exists() else -1
        if size < rows * self.row_bytes:
            raise IndexCorruptError(
                f"{self.vectors_path}: holds {max(size, 0) // self.row_bytes} vector "
                f"rows but {self.directory / DB_NAME} records {rows} committed rows; "
                "the file was truncated or replaced outside personsearch. Rebuild the index."
            )

    def vectors(self, rows: int | None = None) -> np.ndarray:
        """The first ``rows`` (default: all committed) vectors, memory-mapped read-only.

        The mapping is kept and reused while it covers ``rows``: searches touch only cached pages.
        """
        rows = self.committed_rows() if rows is None else rows
        if rows == 0:
            return np.zeros((0, self.feature_dim), dtype=np.float32)
        if self._mapped is None or len(self._mapped) < rows:
            self._check_vector_file(rows)
            self._mapped = np.memmap(
                self.vectors_path, dtype=np.float32, mode="r", shape=(rows, self.feature_dim)
            )
        return self._mapped[:rows]

    def vector_rows(self, ids: np.ndarray, rows: int) -> np.ndarray:
        """Copies of the vectors of rows ``ids`` (of the first ``rows``), for re-scoring a few
        candidates of a large index: every row's bytes are requested from the kernel at once
        (``POSIX_FADV_WILLNEED``: one round of parallel reads, not one read after another), then
        read with ``pread``. Unlike indexing a memory map, this reads no more than the rows (no
        read-ahead around each one) and leaves nothing resident in the process: at 10M boxes the
        31 GB file is larger than memory, and pages touched through a map count as the
        process's own until the kernel reclaims them."""
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) and (ids.min() < 0 or ids.max() >= rows):
            raise IndexError(f"vector rows {ids.min()}..{ids.max()} outside 0..{rows - 1}")
        if self._row_reader is None:
            self._check_vector_file(rows)
            self._row_reader = os.open(self.vectors_path, os.O_RDONLY)
        fd, size = self._row_reader, self.row_bytes
        offsets = (ids * size).tolist()
        for offset in offsets:
            os.posix_fadvise(fd, offset, size, os.POSIX_FADV_WILLNEED)
        data = b"".join(os.pread(fd, size, offset) for offset in offsets)
        if len(data) != len(offsets) * size:
            self._check_vector_file(rows)  # names the truncated file
        return np.frombuffer(data, dtype=np.float32).reshape(len(offsets), self.feature_dim)

    # ----------------------------------------------------------------- writing
    def acquire_writer(self) -> None:
        """Become the only writer, then drop vector rows no committed transaction refers to."""
        if self._lock_file is not None:
            return
        fd = os.open(self.directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise IndexBusyError(
                f"another process is indexing into {self.directory}; wait for it to finish "
                "(or stop it) and run again"
            ) from None
        self._lock_file = fd
        rows = self.committed_rows()
        self._check_vector_file(rows)
        if self.vectors_path.stat().st_size > rows * self.row_bytes:
            os.truncate(self.vectors_path, rows * self.row_bytes)

    def release_writer(self) -> None:
        if self._lock_file is not None:
            os.close(self._lock_file)  # closing the descriptor releases the flock
            self._lock_file = None

    def source_state(self, path: Path) -> SourceState | None:
        row = self.conn.execute(
            "SELECT id, size, mtime_ns, next_frame, complete FROM sources WHERE path = ?", (str(path),)
        ).fetchone()
        return None if row is None else SourceState(row[0], row[1], row[2], row[3], bool(row[4]))

    def _append_vectors(self, start_row: int, vectors: np.ndarray) -> None:
        with open(self.vectors_path, "r+b") as f:
            f.seek(start_row * self.row_bytes)
            f.write(np.ascontiguousarray(vectors, dtype=np.float32).tobytes())
            f.flush()
            os.fsync(f.fileno())

    def _delete_source(self, source_id: int) -> int:
        self.conn.execute(
            "DELETE FROM thumbnails WHERE box_id IN (SELECT id FROM boxes WHERE source_id = ?)", (source_id,)
        )
        deleted = self.conn.execute("DELETE FROM boxes WHERE source_id = ?", (source_id,)).rowcount
        self.conn.execute("DELETE FROM sightings WHERE source_id = ?", (source_id,))
        self.conn.execute("DELETE FROM sources WHERE id = ?", (source_id,))
        return deleted

    def _source_id(self, source: Source) -> int:
        """Id of ``source``'s row (inside a transaction), replacing a row for an older version of the file."""
        state = self.source_state(source.path)
        if state is not None and state.matches(source):
            return state.id
        if state is not None:
            self._delete_source(state.id)
            self.set_meta("generation", str(self.generation() + 1))
        cursor = self.conn.execute(
            "INSERT INTO sources (path, kind, size, mtime_ns, camera, next_frame, complete, people) VALUES "
            "(?, ?, ?, ?, ?, 0, 0, 0)",
            (str(source.path), source.kind, source.size, source.mtime_ns, source.camera),
        )
        assert cursor.lastrowid is not None  # an INSERT always sets it
        return int(cursor.lastrowid)

    def commit_batch(self, rows: list[BoxRow], vectors: np.ndarray, updates: list[SourceUpdate]) -> None:
        """Durably add ``rows`` (with their ``vectors``) and record ``updates``, all or nothing."""
        if self._lock_file is None:
            raise RuntimeError("commit_batch needs acquire_writer() first")
        vectors = np.asarray(vectors, dtype=np.float32).reshape(-1, self.feature_dim)
        if len(vectors) != len(rows):
            raise ValueError(f"{len(rows)} box rows but {len(vectors)} vectors")
        start = self.committed_rows()
        if len(rows):
            self._append_vectors(start, vectors)
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            ids: dict[Path, int] = {}
            for update in updates:
                ids.setdefault(update.source.path, self._source_id(update.source))
            for row in rows:
                ids.setdefault(row.source.path, self._source_id(row.source))
            box_ids = range(start, start + len(rows))
            self.conn.executemany(
                "INSERT INTO boxes (id, source_id, frame, time, x1, y1, x2, y2, score) VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (box_id, ids[r.source.path], r.frame, r.time, *map(float, r.box), float(r.score))
                    for box_id, r in zip(box_ids, rows)
                ],
            )
            self.conn.executemany(
                "INSERT INTO thumbnails VALUES (?, ?)",
                [(box_id, r.thumbnail) for box_id, r in zip(box_ids, rows)],
            )
            people: dict[Path, int] = {}
            for row in rows:
                people[row.source.path] = people.get(row.source.path, 0) + 1
            for update in updates:
                self.conn.execute(
                    "UPDATE sources SET next_frame = ?, complete = ?, people = people + ? WHERE id = ?",
                    (
                        update.next_frame,
                        int(update.complete),
                        people.get(update.source.path, 0),
                        ids[update.source.path],
                    ),
                )
            self.set_meta("vector_rows", str(start + len(rows)))
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    def remove_source(self, path: Path) -> int:
        """Forget a source and its boxes (e.g. a changed file that can no longer be read)."""
        state = self.source_state(path)
        if state is None:
            return 0
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            deleted = self._delete_source(state.id)
            self.set_meta("generation", str(self.generation() + 1))
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        return deleted

    # ----------------------------------------------------------------- sightings
    def videos_to_track(self) -> list[int]:
        """Ids of videos indexed to their end whose sightings are not written yet."""
        return [
            int(i)
            for (i,) in self.conn.execute(
                "SELECT id FROM sources WHERE kind = 'video' AND complete = 1 AND tracked = 0 ORDER BY id"
            )
        ]

    def video_boxes(self, source_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(box ids, frames, times (NaN if unknown), boxes (n, 4))`` of one video, by box id."""
        rows = self.conn.execute(
            "SELECT id, frame, time, x1, y1, x2, y2 FROM boxes WHERE source_id = ? ORDER BY id",
            (int(source_id),),
        ).fetchall()
        table = np.array(
            [[r[0], r[1], np.nan if r[2] is None else r[2], *r[3:]] for r in rows], dtype=np.float64
        ).reshape(-1, 7)
        return table[:, 0].astype(np.int64), table[:, 1].astype(np.int64), table[:, 2], table[:, 3:7]

    def complete_sources(self) -> list[tuple[int, Source, int]]:
        """``(id, Source, next_frame)`` of every source indexed to its end, by id."""
        rows = self.conn.execute(
            "SELECT id, path, kind, size, mtime_ns, camera, next_frame FROM sources WHERE "
            "complete = 1 ORDER BY id"
        ).fetchall()
        return [
            (int(i), Source(Path(path), kind, int(size), int(mtime), camera), int(nxt))
            for i, path, kind, size, mtime, camera, nxt in rows
        ]

    def stored_people(
        self, source_id: int
    ) -> list[tuple[int | None, tuple[float, float, float, float, float], bytes]]:
        """``(frame, (x1, y1, x2, y2, score), thumbnail JPEG)`` of every box of one source,
        by frame then id."""
        rows = self.conn.execute(
            "SELECT b.frame, b.x1, b.y1, b.x2, b.y2, b.score, t.jpeg FROM boxes b JOIN thumbnails t ON "
            "t.box_id = b.id WHERE b.source_id = ? ORDER BY b.frame, b.id",
            (int(source_id),),
        ).fetchall()
        return [(frame, (x1, y1, x2, y2, score), bytes(jpeg)) for frame, x1, y1, x2, y2, score, jpeg in rows]

    def video_box_labels(self, source_id: int) -> tuple[np.ndarray, np.ndarray]:
        """``(detection scores, sighting ids (-1: none))`` of one video's boxes, in ``video_boxes`` order."""
        rows = self.conn.execute(
            "SELECT score, sighting FROM boxes WHERE source_id = ? ORDER BY id", (int(source_id),)
        ).fetchall()
        scores = np.array([r[0] for r in rows], dtype=np.float64)
        return scores, np.array([-1 if r[1] is None else r[1] for r in rows], dtype=np.int64)

    def write_sightings(self, source_id: int, sightings: Sequence[Any]) -> bool:
        """Store one video's sightings (``tracking.Sighting``) and mark it tracked, all or nothing;
        False (nothing written) when it is tracked already or no longer complete."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            row = self.conn.execute(
                "SELECT complete, tracked FROM sources WHERE id = ?", (int(source_id),)
            ).fetchone()
            if row is None or not row[0] or row[1]:
                self.conn.execute("ROLLBACK")
                return False
            for sighting in sightings:
                cursor = self.conn.execute(
                    "INSERT INTO sightings (source_id, first_frame, last_frame, start_time, end_time, "
                    "boxes, best_box) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        int(source_id),
                        sighting.first_frame,
                        sighting.last_frame,
                        sighting.start_time,
                        sighting.end_time,
                        len(sighting.box_ids),
                        sighting.best_box,
                    ),
                )
                self.conn.executemany(
                    "UPDATE boxes SET sighting = ? WHERE id = ?",
                    [(cursor.lastrowid, int(b)) for b in sighting.box_ids],
                )
            self.conn.execute("UPDATE sources SET tracked = 1 WHERE id = ?", (int(source_id),))
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        return True

    def sighting_rows(self, after: int, chunk: int = 1 << 18) -> Iterator[list[tuple[int, int]]]:
        """``(box id, sighting id)`` of the boxes in sightings with ids above ``after``, ``chunk``
        rows at a time."""
        cursor = self.conn.execute("SELECT id, sighting FROM boxes WHERE sighting > ?", (int(after),))
        while rows := cursor.fetchmany(chunk):
            yield rows

    def sightings(self, ids: Sequence[int]) -> dict[int, SightingInfo]:
        """The sightings among ``ids`` that exist, with a few of their boxes spread over the span."""
        if not len(ids):
            return {}
        marks = ",".join("?" * len(ids))
        rows = self.conn.execute(
            "SELECT id, source_id, first_frame, last_frame, start_time, end_time, boxes, "
            f"best_box FROM sightings WHERE id IN ({marks})",
            [int(i) for i in ids],
        ).fetchall()
        members: dict[int, list[int]] = {}
        for box_id, sid in self.conn.execute(
            f"SELECT id, sighting FROM boxes WHERE sighting IN ({marks}) ORDER BY frame, id",
            [int(i) for i in ids],
        ):
            members.setdefault(int(sid), []).append(int(box_id))
        out = {}
        for sid, source_id, first, last, start, end, n, best in rows:
            boxes = members.get(int(sid), [])
            picks = (
                sorted({round(i) for i in np.linspace(0, len(boxes) - 1, min(SIGHTING_SAMPLES, len(boxes)))})
                if boxes
                else []
            )
            out[int(sid)] = SightingInfo(
                int(sid),
                int(source_id),
                int(first),
                int(last),
                start,
                end,
                int(n),
                int(best),
                tuple(boxes[i] for i in picks),
            )
        return out

    def sighting_boxes(self, sighting_id: int) -> list[int]:
        """Every box id of one sighting, in frame order (KeyError if there is no such sighting)."""
        ids = [
            int(i)
            for (i,) in self.conn.execute(
                "SELECT id FROM boxes WHERE sighting = ? ORDER BY frame, id", (int(sighting_id),)
            )
        ]
        if not ids:
            raise KeyError(f"no sighting {sighting_id} in the index at {self.directory}")
        return ids

    def sighting_of_box(self, box_id: int) -> int | None:
        """The sighting a box belongs to (None: an image, or a video not tracked yet)."""
        row = self.conn.execute("SELECT sighting FROM boxes WHERE id = ?", (int(box_id),)).fetchone()
        if row is None:
            raise KeyError(f"no box {box_id} in the index at {self.directory}")
        return None if row[0] is None else int(row[0])

    # ----------------------------------------------------------------- reading
    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """One consistent view of the tables for several reads (a read transaction)."""
        self.conn.execute("BEGIN")
        try:
            yield
        finally:
            self.conn.execute("COMMIT")

    def count_boxes(self) -> int:
        (count,) = self.conn.execute("SELECT COUNT(*) FROM boxes").fetchone()
        return int(count)

    def count_sources(self) -> dict[str, int]:
        """Sources by kind (``image`` / ``video``)."""
        return {
            kind: int(n) for kind, n in self.conn.execute("SELECT kind, COUNT(*) FROM sources GROUP BY kind")
        }

    def summary(self) -> dict[str, Any]:
        """Counts, cameras and the time span of the videos: the first thing a browser shows."""
        with self.snapshot():
            kinds = self.count_sources()
            cameras = [
                {"camera": camera, "sources": int(n), "people": int(p or 0)}
                for camera, n, p in self.conn.execute(
                    "SELECT camera, COUNT(*), SUM(people) FROM sources GROUP BY camera ORDER BY camera"
                )
            ]
            start, end = self.conn.execute(
                "SELECT MIN(time), MAX(time) FROM boxes WHERE time IS NOT NULL"
            ).fetchone()
            (incomplete,) = self.conn.execute("SELECT COUNT(*) FROM sources WHERE complete = 0").fetchone()
            people = self.count_boxes()
            (sightings,) = self.conn.execute("SELECT COUNT(*) FROM sightings").fetchone()
        return {
            "model_id": self.model_id,
            "feature_dim": self.feature_dim,
            "people": people,
            "sightings": int(sightings),
            "images": kinds.get("image", 0),
            "videos": kinds.get("video", 0),
            "incomplete_sources": int(incomplete),
            "cameras": cameras,
            "time_span": None if start is None else [float(start), float(end)],
        }

    def list_sources(
        self, *, camera: str | None = None, offset: int = 0, limit: int = 100
    ) -> tuple[int, list[SourceInfo]]:
        """Sources ordered by camera then path, one page: ``(total, page)``."""
        where, args = ("WHERE camera = ?", [camera]) if camera is not None else ("", [])
        (total,) = self.conn.execute(f"SELECT COUNT(*) FROM sources {where}", args).fetchone()
        rows = self.conn.execute(
            f"SELECT {_SOURCE_COLUMNS} FROM sources {where} ORDER BY camera, path LIMIT ? OFFSET ?",
            [*args, limit, offset],
        )
        return int(total), [_source_info(row) for row in rows]

    def get_source(self, source_id: int) -> SourceInfo:
        row = self.conn.execute(
            f"SELECT {_SOURCE_COLUMNS} FROM sources WHERE id = ?", (int(source_id),)
        ).fetchone()
        if row is None:
            raise KeyError(f"no source {source_id} in the index at {self.directory}")
        return _source_info(row)

    def sources_after(self, known: int) -> list[tuple[int, str, str]]:
        """``(id, path, camera)`` of sources with ids above ``known``."""
        return [
            (int(i), p, c)
            for i, p, c in self.conn.execute("SELECT id, path, camera FROM sources WHERE id > ?", (known,))
        ]

    def list_frames(
        self, source_id: int, *, offset: int = 0, limit: int = 100
    ) -> tuple[int, list[FrameInfo]]:
        """The image, or the video frames holding people, in frame order: ``(total, page)``."""
        source = self.get_source(source_id)
        if source.kind == "image":
            return 1, ([FrameInfo(None, None, source.people)] if offset == 0 else [])
        (total,) = self.conn.execute(
            "SELECT COUNT(DISTINCT frame) FROM boxes WHERE source_id = ?", (source.id,)
        ).fetchone()
        rows = self.conn.execute(
            "SELECT frame, MIN(time), COUNT(*) FROM boxes WHERE source_id = ? GROUP BY frame ORDER BY "
            "frame LIMIT ? OFFSET ?",
            (source.id, limit, offset),
        )
        return int(total), [FrameInfo(int(f), None if t is None else float(t), int(n)) for f, t, n in rows]

    def people_in_frame(self, source_id: int, frame: int | None) -> list[BoxInfo]:
        """Everyone indexed in the image (``frame=None``) or in one frame of a video."""
        source = self.get_source(source_id)
        source.check_frame(frame)
        return [
            _box_info(row)
            for row in self.conn.execute(
                _BOX_SELECT + "WHERE s.id = ? AND b.frame IS ? ORDER BY b.id", (source.id, frame)
            )
        ]

    def people_at_path(self, path: str, frame: int | None) -> list[BoxInfo]:
        """Everyone indexed in the file at ``path`` (resolved, as stored) and ``frame``; KeyError if
        the file is not in the index."""
        rows = self.conn.execute(
            _BOX_SELECT + "WHERE s.path = ? AND b.frame IS ? ORDER BY b.id", (path, frame)
        ).fetchall()
        if not rows and self.conn.execute("SELECT 1 FROM sources WHERE path = ?", (path,)).fetchone() is None:
            raise KeyError(
                f"{path} is not in the index at {self.directory}; add it with `personsearch index`"
            )
        return [_box_info(row) for row in rows]

    def get_box(self, box_id: int) -> BoxInfo:
        row = self.conn.execute(_BOX_SELECT + "WHERE b.id = ?", (int(box_id),)).fetchone()
        if row is None:
            raise KeyError(f"no box {box_id} in the index at {self.directory}")
        return _box_info(row)

    def boxes_with_thumbnails(self, ids: Sequence[int]) -> dict[int, tuple[BoxInfo, bytes]]:
        """The boxes among ``ids`` that still exist, with their thumbnails (JPEG)."""
        if not len(ids):
            return {}
        marks = ",".join("?" * len(ids))
        rows = self.conn.execute(
            "SELECT b.id, s.id, s.path, s.kind, s.camera, b.frame, b.time, b.x1, b.y1, b.x2, b.y2, "
            "b.score, t.jpeg FROM boxes b JOIN sources s ON s.id = b.source_id JOIN thumbnails t ON "
            f"t.box_id = b.id WHERE b.id IN ({marks})",
            [int(i) for i in ids],
        )
        return {int(row[0]): (_box_info(row[:12]), bytes(row[12])) for row in rows}

    def thumbnail(self, box_id: int) -> bytes:
        """The stored thumbnail of a box (JPEG)."""
        row = self.conn.execute("SELECT jpeg FROM thumbnails WHERE box_id = ?", (int(box_id),)).fetchone()
        if row is None:
            raise KeyError(f"no box {box_id} in the index at {self.directory}")
        return bytes(row[0])

    def box_rows(self, start: int, stop: int) -> list[tuple[int, int, float | None]]:
        """``(box id, source id, time)`` of the live boxes with ids in ``[start, stop)``."""
        return self.conn.execute(
            "SELECT id, source_id, time FROM boxes WHERE id >= ? AND id < ?", (start, stop)
        ).fetchall()

    def source_file(self, source_id: int) -> Path:
        """The indexed file of ``source_id``, checked to be the very file that was indexed: a regular
        file (not a link put in its place since) with the recorded size and modification time."""
        row = self.conn.execute(
            "SELECT path, size, mtime_ns FROM sources WHERE id = ?", (int(source_id),)
        ).fetchone()
        if row is None:
            raise KeyError(f"no source {source_id} in the index at {self.directory}")
        path, size, mtime_ns = Path(row[0]), int(row[1]), int(row[2])
        try:
            stat = os.lstat(path)
        except OSError:
            raise SourceChangedError(
                f"{path} was indexed but is no longer there; restore it or re-index its folder"
            ) from None
        if path.is_symlink() or not path.is_file() or stat.st_size != size or stat.st_mtime_ns != mtime_ns:
            raise SourceChangedError(
                f"{path} changed since it was indexed; re-index it with `personsearch index`"
            )
        return path
