"""An index's people with another model's re-id features, without detecting them again.

After ``personsearch adapt`` the re-id network is new but the detector is the old one, so the
boxes an index holds are still the right ones: only their features are stale. Re-embedding reads
each stored box's frame once, describes the box with the new engine and commits it, with its
detection score and thumbnail, into a new index that carries the new model's id (search never
mixes features of two models: an index refuses any model but its own). Videos are tracked into
sightings again from the new features as each one completes.

It is an indexing run in all but the detector: the same batches, the same crash-safe commit
(``indexer.commit``), resumable per source and frame (run it again after a kill and it goes on
where the last commit stopped), the same summary.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from personsearch.index.indexer import IndexSummary, commit
from personsearch.index.sources import Frame, Sampling, Skipped, Source, iter_frames
from personsearch.index.store import BoxRow, IndexStore, SourceChangedError, SourceUpdate
from personsearch.pipeline import PersonEngine, PersonSearchPipeline

log = logging.getLogger(__name__)

EVERY_FRAME = Sampling(stride=1)
"""Frames are read in order and the stored ones kept, whatever sampling indexed them."""


@dataclass
class _StoredFrame:
    frame: Frame
    boxes: np.ndarray
    """(n, 5) xyxy + detection score, as stored."""
    thumbnails: list[bytes]
    last: bool
    """The source's last frame with people: committing it completes the source."""


def _stored_frames(
    store: IndexStore, source_id: int, source: Source, start_frame: int
) -> Iterator[_StoredFrame]:
    """The frames of one source that hold stored people, from ``start_frame`` on."""
    by_frame: dict[int | None, list[tuple[float, ...]]] = {}
    thumbs: dict[int | None, list[bytes]] = {}
    for number, box, jpeg in store.stored_people(source_id):
        if number is None or number >= start_frame:
            by_frame.setdefault(number, []).append(box)
            thumbs.setdefault(number, []).append(jpeg)
    if not by_frame:
        return
    last = max(by_frame, key=lambda f: -1 if f is None else f)
    stop = None if source.kind == "image" else int(last) + 1  # type: ignore[arg-type]
    for frame in iter_frames(source, start_frame=start_frame, sampling=EVERY_FRAME, stop_frame=stop):
        if frame.frame in by_frame:
            yield _StoredFrame(
                frame, np.array(by_frame[frame.frame], np.float32), thumbs[frame.frame], frame.frame == last
            )


def refuse_same_model(source: IndexStore, model_id: str) -> None:
    """Re-embedding into the model that made the features would copy the index: refused (callers
    check before creating the new index, so nothing is left behind)."""
    if source.model_id == model_id:
        raise ValueError(f"{source.directory} already holds {model_id}'s features: nothing to re-embed")


def reembed_index(
    source_dir: str | Path, target: IndexStore, engine: PersonEngine, *, batch_size: int = 8
) -> IndexSummary:
    """Copy the complete sources of the index at ``source_dir`` into ``target`` (an index of
    ``engine``'s model, writer lock held) with ``engine``'s features of the stored boxes.
    Sources already complete in ``target`` are skipped; a partly copied one goes on after its
    last committed frame. A file that changed or went away since it was indexed is skipped and
    reported (its boxes would no longer match its pixels)."""
    started = time.perf_counter()
    summary = IndexSummary()
    pipeline = PersonSearchPipeline(engine)
    old = IndexStore.open(source_dir, shared=True)
    try:
        refuse_same_model(old, engine.model_id)
        for source_id, source, next_frame in old.complete_sources():
            summary.sources_seen += 1
            state = target.source_state(source.path)
            if state is not None and state.matches(source) and state.complete:
                summary.sources_unchanged += 1
                continue
            try:
                old.source_file(source_id)
            except SourceChangedError as err:
                summary.skipped.append(Skipped(str(source.path), str(err)))
                log.warning("skipped %s", err)
                continue
            start = state.next_frame if state is not None and state.matches(source) else 0
            summary.sources_indexed += 1
            batch: list[_StoredFrame] = []
            for item in _stored_frames(old, source_id, source, start):
                batch.append(item)
                if len(batch) >= batch_size:
                    _commit(target, pipeline, batch, next_frame, summary)
                    batch = []
            _commit(target, pipeline, batch, next_frame, summary, finish=source)
    finally:
        old.close()
    summary.seconds = time.perf_counter() - started
    return summary


def _commit(
    target: IndexStore,
    pipeline: PersonSearchPipeline,
    batch: list[_StoredFrame],
    next_frame: int,
    summary: IndexSummary,
    finish: Source | None = None,
) -> None:
    """One batch of frames described and committed; ``finish``: also mark that source complete
    (at the old index's ``next_frame``), even when the batch is empty."""
    people = pipeline.find_people(
        [item.frame.image for item in batch], detections=[item.boxes for item in batch]
    )
    rows = [
        BoxRow(item.frame.source, item.frame.frame, item.frame.time, box, float(score), thumbnail)
        for item, found in zip(batch, people, strict=True)
        for box, score, thumbnail in zip(found.boxes, found.scores, item.thumbnails, strict=True)
    ]
    vectors = np.concatenate(
        [np.zeros((0, pipeline.feature_dim), np.float32), *(found.features for found in people)]
    )
    updates: dict[Path, SourceUpdate] = {}
    for item in batch:
        done = item.last and finish is not None
        frame_after = 1 if item.frame.frame is None else item.frame.frame + 1
        updates[item.frame.source.path] = SourceUpdate(
            item.frame.source, next_frame if done else frame_after, done
        )
    if finish is not None:
        updates[finish.path] = SourceUpdate(finish, next_frame, True)
    if not updates:
        return
    commit(target, rows, vectors, list(updates.values()), summary)
    summary.frames_processed += len(batch)
    summary.people_added += len(rows)
