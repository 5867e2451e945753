"""Adding image and video files to an index: detect, embed, thumbnail, commit in batches.

Frames from all sources flow through one stream, cut into batches of ``batch_size`` frames
(the engine sees one ``detect`` call per batch). Each batch is committed atomically (see
store.py), together with every source that progressed or finished in it, so a killed run loses
at most the batch in flight and the next run resumes exactly there: finished files are skipped,
a video continues at the first frame not committed, a changed file is indexed afresh.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from rich.progress import Progress

from personsearch.data.images import ImageReadError, crop_box, encode_jpeg
from personsearch.index.sources import Frame, Sampling, Skipped, Source, discover, iter_frames, planned_frames
from personsearch.index.store import BoxRow, IndexStore, SourceUpdate
from personsearch.index.tracking import link_pending
from personsearch.pipeline import PersonEngine, PersonSearchPipeline
from personsearch.progress import job_progress

log = logging.getLogger(__name__)

THUMBNAIL_SIZE = 128
"""Thumbnails fit in THUMBNAIL_SIZE x THUMBNAIL_SIZE pixels (people are taller than wide, so
in practice: at most 128 px tall)."""
THUMBNAIL_QUALITY = 85


@dataclass
class IndexSummary:
    """What one ``add_paths`` run did."""

    sources_seen: int = 0
    """Image and video files found under the given paths."""
    sources_indexed: int = 0
    """Files read in this run (new, changed, or resumed after an interruption)."""
    sources_unchanged: int = 0
    """Files already fully indexed with the same size and modification time: not read again."""
    sources_replaced: int = 0
    """Files that changed since they were indexed: their old boxes were removed."""
    skipped: list[Skipped] = field(default_factory=list)
    """Paths not indexed (missing, unsupported, unreadable, corrupt, too large), with the reason."""
    frames_processed: int = 0
    people_added: int = 0
    seconds: float = 0.0
    commit_seconds: float = 0.0
    """Of ``seconds``, the time spent committing (writing vectors, fsync, the SQLite transaction):
    the part a distributed run cannot spread over workers."""
    tracking_seconds: float = 0.0
    """Of ``seconds``, the time spent tracking finished videos into sightings (tracking.py)."""

    @property
    def sources_skipped(self) -> int:
        return len(self.skipped)

    def to_json(self) -> dict[str, Any]:
        return {
            "sources_seen": self.sources_seen,
            "sources_indexed": self.sources_indexed,
            "sources_unchanged": self.sources_unchanged,
            "sources_replaced": self.sources_replaced,
            "sources_skipped": self.sources_skipped,
            "skipped": [{"path": s.path, "reason": s.reason} for s in self.skipped],
            "frames_processed": self.frames_processed,
            "people_added": self.people_added,
            "seconds": round(self.seconds, 3),
            "commit_seconds": round(self.commit_seconds, 3),
            "tracking_seconds": round(self.tracking_seconds, 3),
        }


@dataclass
class Planned:
    """A source to (re-)index from ``start_frame`` (0, or where a killed run stopped)."""

    source: Source
    start_frame: int


@dataclass
class _Work:
    """A frame to index; ``last`` when no later frame of its source follows in this run."""

    frame: Frame
    last: bool


@dataclass
class _SourceEnd:
    """A source that yielded no frame: unreadable (``error``), or a resumed video already at its end."""

    source: Source
    error: str | None


def make_thumbnail(image: np.ndarray, box: np.ndarray) -> bytes:
    """JPEG of the box's pixels, shrunk to fit THUMBNAIL_SIZE x THUMBNAIL_SIZE."""
    crop = crop_box(image, box)
    scale = min(1.0, THUMBNAIL_SIZE / max(crop.shape[:2]))
    if scale < 1.0:
        size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
        crop = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
    return encode_jpeg(crop, THUMBNAIL_QUALITY)


@dataclass(frozen=True)
class IndexProgress:
    """Where an indexing run stands, reported after every committed batch (``on_progress``)."""

    frames_done: int
    frames_total: int | None
    """``None`` when the frame count of a video is unknown."""
    people_added: int
    current: str
    """Name of the file being indexed."""


ProgressCallback = Callable[[IndexProgress], None]
"""Called after each commit; raising from it stops the run there (nothing committed is lost)."""


def describe_frames(pipeline: PersonSearchPipeline, frames: list[Frame]) -> tuple[list[BoxRow], np.ndarray]:
    """Everyone in ``frames`` (one detector batch) as rows to commit, with their features."""
    rows: list[BoxRow] = []
    vectors = [np.zeros((0, pipeline.feature_dim), np.float32)]
    if not frames:
        return rows, vectors[0]
    for frame, people in zip(frames, pipeline.find_people([f.image for f in frames]), strict=True):
        vectors.append(people.features)
        rows.extend(
            BoxRow(frame.source, frame.frame, frame.time, box, float(score), make_thumbnail(frame.image, box))
            for box, score in zip(people.boxes, people.scores, strict=True)
        )
    return rows, np.concatenate(vectors)


def commit(
    store: IndexStore,
    rows: list[BoxRow],
    vectors: np.ndarray,
    updates: list[SourceUpdate],
    summary: IndexSummary,
) -> None:
    """One batch committed atomically (``IndexStore.commit_batch``), the time it took added to
    ``summary``; the videos it finishes are tracked into sightings at once, so they are searchable
    as sightings while the run goes on. Every indexing run, one process or Ray, commits here."""
    started = time.perf_counter()
    store.commit_batch(rows, vectors, updates)
    summary.commit_seconds += time.perf_counter() - started
    if any(u.complete and u.source.kind == "video" for u in updates):
        started = time.perf_counter()
        link_pending(store)  # a crash right before this is repaired when the index is next opened
        summary.tracking_seconds += time.perf_counter() - started


class _Batcher:
    """Accumulates work and commits it as one batch: detections, features, thumbnails, progress."""

    def __init__(
        self,
        store: IndexStore,
        engine: PersonEngine,
        summary: IndexSummary,
        progress: Progress,
        task: Any,
        on_progress: ProgressCallback | None,
    ) -> None:
        self.store, self.pipeline, self.summary = store, PersonSearchPipeline(engine), summary
        self.progress, self.task, self.on_progress = progress, task, on_progress
        self.work: list[_Work] = []
        self.finished: list[Source] = []
        """Sources that yielded nothing this run but are complete (resumed at their end)."""

    def process(self) -> None:
        work, finished = self.work, self.finished
        self.work, self.finished = [], []
        if not work and not finished:
            return
        frames = [w.frame for w in work]
        rows, vectors = describe_frames(self.pipeline, frames)
        updates: dict[Path, SourceUpdate] = {}
        for item in work:
            next_frame = 1 if item.frame.frame is None else item.frame.frame + 1
            updates[item.frame.source.path] = SourceUpdate(item.frame.source, next_frame, item.last)
        for source in finished:
            state = self.store.source_state(source.path)
            updates[source.path] = SourceUpdate(source, state.next_frame if state is not None else 0, True)
        commit(self.store, rows, vectors, list(updates.values()), self.summary)
        self.summary.frames_processed += len(frames)
        self.summary.people_added += len(rows)
        self.progress.advance(self.task, len(frames))
        if self.on_progress is not None:
            bar = self.progress.tasks[self.task]
            current = work[-1].frame.source.path.name if work else finished[-1].path.name
            self.on_progress(
                IndexProgress(
                    int(bar.completed),
                    None if bar.total is None else int(bar.total),
                    self.summary.people_added,
                    current,
                )
            )


def _events(plan: list[Planned], sampling: Sampling, max_pixels: int | None) -> Iterator[_Work | _SourceEnd]:
    """Every frame to index, each source's last one flagged (one frame of look-ahead)."""
    for item in plan:
        previous: Frame | None = None
        try:
            for frame in iter_frames(
                item.source, start_frame=item.start_frame, sampling=sampling, max_pixels=max_pixels
            ):
                if previous is not None:
                    yield _Work(previous, last=False)
                previous = frame
        except ImageReadError as err:  # raised before any frame (see iter_frames)
            yield _SourceEnd(item.source, str(err))
            continue
        yield _SourceEnd(item.source, None) if previous is None else _Work(previous, last=True)


def plan_sources(store: IndexStore, sources: list[Source], summary: IndexSummary) -> list[Planned]:
    """What is left to index: new and changed sources from frame 0, unfinished ones from where
    they stopped; complete unchanged ones are counted and skipped."""
    plan = []
    for source in sources:
        state = store.source_state(source.path)
        if state is not None and state.matches(source):
            if state.complete:
                summary.sources_unchanged += 1
                continue
            plan.append(Planned(source, state.next_frame))
        else:
            if state is not None:
                summary.sources_replaced += 1
            plan.append(Planned(source, 0))
    return plan


def begin_run(
    store: IndexStore, paths: Iterable[str | Path], camera: str | None, within: Sequence[Path] | None
) -> tuple[IndexSummary, list[Planned]]:
    """The start of every indexing run, one process or many: find the files, become the one
    writer, plan what is left (``plan_sources``)."""
    summary = IndexSummary()
    sources, skipped = discover(paths, camera, within=within)
    summary.sources_seen = len(sources)
    summary.skipped.extend(skipped)
    for item in skipped:
        log.warning("skipped %s: %s", item.path, item.reason)
    store.acquire_writer()
    return summary, plan_sources(store, sources, summary)


def index_paths(
    store: IndexStore,
    engine: PersonEngine,
    paths: Iterable[str | Path],
    *,
    sampling: Sampling = Sampling(),
    camera: str | None = None,
    batch_size: int = 8,
    progress: bool = True,
    max_pixels: int | None = None,
    within: Sequence[Path] | None = None,
    on_progress: ProgressCallback | None = None,
) -> IndexSummary:
    """Index every image and video under ``paths`` that is new, changed, or unfinished.

    ``within``: only files whose real path is inside these folders (see ``discover``);
    ``on_progress``: called after every committed batch (a service shows it; raising from it
    stops the run at a commit boundary)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    started = time.perf_counter()
    summary, plan = begin_run(store, paths, camera, within)
    total = sum(
        planned_frames(p.source, start_frame=p.start_frame, sampling=sampling, max_pixels=max_pixels)
        for p in plan
    )
    with job_progress(progress, unit="frames") as bar:
        task = bar.add_task("indexing", total=total or None)
        batcher = _Batcher(store, engine, summary, bar, task, on_progress)
        for event in _events(plan, sampling, max_pixels):
            if isinstance(event, _Work):
                summary.sources_indexed += int(event.last)
                batcher.work.append(event)
                bar.update(task, description=event.frame.source.path.name)
                if len(batcher.work) >= batch_size:
                    batcher.process()
            elif event.error is None:
                summary.sources_indexed += 1
                batcher.finished.append(event.source)
            else:
                summary.skipped.append(Skipped(str(event.source.path), event.error))
                log.warning("skipped %s", event.error)
                state = store.source_state(event.source.path)
                if state is not None and not state.matches(event.source):
                    store.remove_source(event.source.path)  # its old boxes show a file that no longer exists
        batcher.process()
    summary.seconds = time.perf_counter() - started
    return summary
