"""Indexing on a Ray cluster: Ray Data hands out slices of the footage to an actor pool (one
model copy per actor, frames decoded where the actor runs), and the driver commits what comes
back through the index's one-writer protocol (store.py), in plan order.

The plan is the single-process one (``plan_sources``: new, changed and unfinished sources) cut
into units: consecutive images, ``batch_size`` at a time (the batches a single-process run makes,
so both give the same boxes and features), and videos in slices of ``frames_per_unit`` sampled
frames (an actor seeks to its slice). Results stream back in unit order (Ray Data's
``preserve_order``), so each commit is a prefix of the plan: a source is marked complete only
with its last unit, a killed driver leaves a resumable index exactly as a killed single-process
run does, and a killed actor is restarted by Ray and its unit retried (Ray Data's default for
actor pools), which changes nothing in the result.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from personsearch.data.images import ImageReadError
from personsearch.index.indexer import (
    IndexProgress,
    IndexSummary,
    Planned,
    ProgressCallback,
    begin_run,
    commit,
    describe_frames,
)
from personsearch.index.sources import Frame, Sampling, Skipped, Source, iter_frames, video_info
from personsearch.index.store import BoxRow, IndexStore, SourceUpdate
from personsearch.pipeline import PersonEngine, PersonSearchPipeline

log = logging.getLogger(__name__)

EngineFactory = Callable[[], PersonEngine]
"""Builds the engine inside each actor (it must be picklable: a module-level function, or a
``functools.partial`` of one, such as ``load_engine``)."""


SAME_MACHINE_KEYS = (
    "cpu",
    "flags",
    "torch_capability",
    "native_bf16",
    "torch",
    "onnxruntime",
    "openvino",
    "onednn_max_isa",
    "engines_revision",
)
"""What must match for an actor to run the engines its driver chose: the CPU and the libraries.
Not the thread count (an actor runs on one CPU) nor the malloc tuning (speed only): the same
machine then builds the same index with or without Ray, to the box."""


def machine_key() -> dict[str, object]:
    """This machine's identity for the engine hand-off (``SAME_MACHINE_KEYS`` of ``cpu_signature``)."""
    from personsearch.models.engines import cpu_signature

    signature = cpu_signature()
    return {key: signature[key] for key in SAME_MACHINE_KEYS}


def load_engine(
    model: str,
    device: str = "cpu",
    detector: str = "bundle",
    engine: str | None = None,
    driver: tuple[dict[str, object], str] | None = None,
) -> PersonEngine:
    """A model bundle by name or path: what the CLI's actors load. ``engine=None``: the engine
    chosen on the node the actor runs on, except that on the driver's own kind of machine
    (``driver``: its ``machine_key()`` and its choice as ``reid=..,detector=..``) the driver's
    choice is taken, so the boxes are those a single process would store."""
    from personsearch.models.bundle import ModelBundle, resolve_model

    if engine is None and driver is not None and driver[0] == machine_key():
        engine = driver[1]
    return ModelBundle(resolve_model(model), device=device, engine=engine, detector=detector)


@dataclass(frozen=True)
class Slice:
    """Frames ``[start, stop)`` of one source (``stop`` None: to the end), ``last`` if it ends the source."""

    source: int
    """Position of the source in the plan."""
    start: int
    stop: int | None
    last: bool


def plan_units(
    plan: list[Planned],
    sampling: Sampling,
    batch_size: int,
    frames_per_unit: int,
    max_pixels: int | None = None,
) -> list[list[Slice]]:
    """Cut the plan into units of work, in plan order (see the module docstring)."""
    units: list[list[Slice]] = []
    images: list[Slice] = []
    for i, item in enumerate(plan):
        if item.source.kind == "image":
            images.append(Slice(i, 0, None, True))
            if len(images) == batch_size:
                units.append(images)
                images = []
            continue
        if images:
            units.append(images)
            images = []
        try:
            info = video_info(item.source.path, max_pixels=max_pixels)
        except ImageReadError:
            units.append([Slice(i, item.start_frame, None, True)])  # the actor reports the error
            continue
        step = sampling.step(info.fps)
        span = frames_per_unit * step
        start = item.start_frame
        while start + span < info.frame_count:  # the count is approximate: the last slice reads to the end
            units.append([Slice(i, start, start + span, False)])
            start += span
        units.append([Slice(i, start, None, True)])
    if images:
        units.append(images)
    return units


def _encode_unit(unit: list[Slice]) -> str:
    return json.dumps([[s.source, s.start, s.stop, s.last] for s in unit])


def _decode_unit(text: str) -> list[Slice]:
    return [Slice(int(a), int(b), None if c is None else int(c), bool(d)) for a, b, c, d in json.loads(text)]


class FrameWorker:
    """A Ray Data actor: decodes its unit's frames, finds and describes the people in them."""

    def __init__(
        self,
        engine_factory: EngineFactory,
        sources: list[dict[str, Any]],
        sampling: tuple[int, float | None],
        max_pixels: int | None,
    ) -> None:
        self.pipeline = PersonSearchPipeline(engine_factory())
        self.sources = [
            Source(Path(s["path"]), s["kind"], s["size"], s["mtime_ns"], s["camera"]) for s in sources
        ]
        self.position = {source: i for i, source in enumerate(self.sources)}
        """Plan position of each source: how the driver names a row's source."""
        self.sampling = Sampling(stride=sampling[0], fps=sampling[1])
        self.max_pixels = max_pixels

    def _frames(self, unit: list[Slice]) -> tuple[list[Frame], list[dict[str, Any]]]:
        frames: list[Frame] = []
        progress = []
        for piece in unit:
            source = self.sources[piece.source]
            state: dict[str, Any] = {
                "source": piece.source,
                "last": piece.last,
                "error": None,
                "next_frame": None,
            }
            try:
                got = list(
                    iter_frames(
                        source,
                        start_frame=piece.start,
                        sampling=self.sampling,
                        max_pixels=self.max_pixels,
                        stop_frame=piece.stop,
                        seek=True,
                    )
                )
            except ImageReadError as err:
                state["error"] = str(err)
                got = []
            frames.extend(got)
            if got:
                state["next_frame"] = 1 if got[-1].frame is None else got[-1].frame + 1
            progress.append(state)
        return frames, progress

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {
            k: [] for k in ("unit", "progress", "frames", "rows", "vectors", "thumbnails")
        }
        for unit_id, spec in zip(batch["unit"], batch["spec"]):
            frames, progress = self._frames(_decode_unit(str(spec)))
            rows, vectors = describe_frames(self.pipeline, frames)
            out["unit"].append(int(unit_id))
            out["progress"].append(json.dumps(progress))
            out["frames"].append(len(frames))
            out["rows"].append(
                json.dumps(
                    [
                        [self.position[r.source], r.frame, r.time, [float(v) for v in r.box], r.score]
                        for r in rows
                    ]
                )
            )
            out["vectors"].append(np.ascontiguousarray(vectors, np.float32).tobytes())
            out["thumbnails"].append([r.thumbnail for r in rows])
        return out


@dataclass
class RaySettings:
    """Where and how wide: ``address`` None starts (or joins, with ``RAY_ADDRESS``) a local Ray."""

    address: str | None = None
    workers: int | None = None
    """Actors (model copies); default: the cluster's CPU count."""
    frames_per_unit: int = 32
    num_cpus_per_worker: float = 1.0


def index_paths_on_ray(
    store: IndexStore,
    engine: PersonEngine,
    engine_factory: EngineFactory,
    paths: Iterable[str | Path],
    *,
    sampling: Sampling = Sampling(),
    camera: str | None = None,
    batch_size: int = 8,
    max_pixels: int | None = None,
    within: Sequence[Path] | None = None,
    settings: RaySettings = RaySettings(),
    on_progress: ProgressCallback | None = None,
) -> IndexSummary:
    """``index_paths`` with the detection and description done by a Ray actor pool; the driver
    (this process, holding ``engine`` only for its model id) is the one writer."""
    try:
        import ray
    except ImportError:
        raise ImportError(
            "indexing on Ray needs Ray: pip install 'personsearch[ray]' (or drop --ray)"
        ) from None

    started = time.perf_counter()
    summary, plan = begin_run(store, paths, camera, within)
    units = plan_units(plan, sampling, batch_size, settings.frames_per_unit, max_pixels)
    if not units:
        summary.seconds = time.perf_counter() - started
        return summary
    if not ray.is_initialized():
        ray.init(
            address=settings.address,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
        )
    workers = settings.workers or max(
        1,
        int(ray.cluster_resources().get("CPU", 1) // settings.num_cpus_per_worker),  # type: ignore[no-untyped-call]  # ray leaves cluster_resources() unannotated
    )
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False
    planned = [p.source for p in plan]
    dataset = ray.data.from_items(
        [{"unit": i, "spec": _encode_unit(u)} for i, u in enumerate(units)], override_num_blocks=len(units)
    )
    results = dataset.map_batches(
        FrameWorker,
        fn_constructor_kwargs={
            "engine_factory": engine_factory,
            "sources": [
                {
                    "path": str(s.path),
                    "kind": s.kind,
                    "size": s.size,
                    "mtime_ns": s.mtime_ns,
                    "camera": s.camera,
                }
                for s in planned
            ],
            "sampling": (sampling.stride, sampling.fps),
            "max_pixels": max_pixels,
        },
        batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=settings.num_cpus_per_worker,
    )
    commit = _Committer(
        store, engine.feature_dim, planned, [p.start_frame for p in plan], summary, on_progress
    )
    for row in results.iter_rows():
        commit(row)
    summary.seconds = time.perf_counter() - started
    return summary


class _Committer:
    """Turns each unit's result into one atomic commit, in plan order."""

    def __init__(
        self,
        store: IndexStore,
        dim: int,
        sources: list[Source],
        start_frames: list[int],
        summary: IndexSummary,
        on_progress: ProgressCallback | None,
    ) -> None:
        self.store, self.dim, self.sources, self.summary, self.on_progress = (
            store,
            dim,
            sources,
            summary,
            on_progress,
        )
        self.next_frame = list(start_frames)
        self.expected = 0
        self.frames = 0

    def __call__(self, row: dict[str, Any]) -> None:
        if int(row["unit"]) != self.expected:
            raise RuntimeError(
                f"distributed indexing: unit {row['unit']} arrived before unit {self.expected}; "
                "results must come in plan order"
            )
        self.expected += 1
        boxes = json.loads(row["rows"])
        vectors = np.frombuffer(row["vectors"], dtype=np.float32).reshape(-1, self.dim)
        thumbnails = list(row["thumbnails"])
        rows = [
            BoxRow(self.sources[s], frame, t, np.asarray(box, np.float32), float(score), bytes(thumb))
            for (s, frame, t, box, score), thumb in zip(boxes, thumbnails, strict=True)
        ]
        updates = []
        for state in json.loads(row["progress"]):
            source = self.sources[state["source"]]
            if state["error"] is not None:
                self.summary.skipped.append(Skipped(str(source.path), state["error"]))
                log.warning("skipped %s", state["error"])
                current = self.store.source_state(source.path)
                if current is not None and not current.matches(source):
                    self.store.remove_source(source.path)
                continue
            if state["next_frame"] is not None:
                self.next_frame[state["source"]] = state["next_frame"]
            if state["last"]:
                self.summary.sources_indexed += 1
            updates.append(SourceUpdate(source, self.next_frame[state["source"]], bool(state["last"])))
        commit(self.store, rows, vectors, updates, self.summary)
        self.frames += int(row["frames"])
        self.summary.frames_processed += int(row["frames"])
        self.summary.people_added += len(rows)
        if self.on_progress is not None:
            self.on_progress(
                IndexProgress(
                    self.frames,
                    None,
                    self.summary.people_added,
                    updates[-1].source.path.name if updates else "",
                )
            )
