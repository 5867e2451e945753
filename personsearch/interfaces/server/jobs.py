"""Jobs started from the service: indexing (one writer at a time, only under allowed folders) and
adapting the model to the index's footage (``AdaptJobs``).

A job indexes in a background thread with its own connection to the index; searches go on
meanwhile and see each batch as it commits (the index's reader/writer contract, store.py). The
writer lock is taken before the job is accepted, so a second writer, from this service or any
other process, is refused at once (``IndexBusyError``, HTTP 409). Cancelling stops the job after
the batch in flight: what was committed stays, and the next job resumes there.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from personsearch.index import IndexBusyError, PersonIndex
from personsearch.index.indexer import IndexProgress
from personsearch.index.sources import Sampling, is_within, sampling_for
from personsearch.index.store import IndexStore
from personsearch.interfaces.server.service import NoModelError
from personsearch.pipeline import PersonEngine

if TYPE_CHECKING:  # the training code (PyTorch, OpenCV) loads when a job starts
    from personsearch.training.adapt import AdaptConfig


class NotAllowedError(PermissionError):
    """A path outside the folders the operator allowed at start-up."""


class _Cancelled(Exception):
    pass


@dataclass(kw_only=True)
class Job:
    """What every background job reports: its state, error or summary, and when it ran."""

    id: int
    state: str = "running"
    """``running``, ``done``, ``failed`` or ``cancelled``."""
    error: str | None = None
    summary: dict[str, Any] | None = None
    started: float = field(default_factory=time.time)
    ended: float | None = None
    cancel: threading.Event = field(default_factory=threading.Event, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "cancel"}


@dataclass(kw_only=True)
class IndexingJob(Job):
    paths: list[str]
    camera: str | None
    frames_done: int = 0
    frames_total: int | None = None
    people_added: int = 0
    current: str = ""


J = TypeVar("J", bound=Job)


class _Jobs(Generic[J]):
    """The jobs of one kind this server run started: at most one runs at a time."""

    kind = "background"

    def __init__(self) -> None:
        self.jobs: dict[int, J] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def running(self) -> J | None:
        return next((job for job in self.jobs.values() if job.state == "running"), None)

    def cancel(self, job_id: int) -> J:
        job = self.get(job_id)
        job.cancel.set()
        return job

    def get(self, job_id: int) -> J:
        job = self.jobs.get(job_id)
        if job is None:
            raise KeyError(f"no {self.kind} job {job_id}")
        return job


class IndexingJobs(_Jobs[IndexingJob]):
    """Starts and tracks indexing jobs into one index directory."""

    kind = "indexing"

    def __init__(
        self, index_dir: Path, engine: PersonEngine | None, allow_dirs: list[Path], *, batch_size: int = 4
    ) -> None:
        super().__init__()
        self.index_dir, self.engine, self.batch_size = index_dir, engine, batch_size
        self.allow_dirs = [d.resolve() for d in allow_dirs]

    def resolve(self, given: str) -> Path:
        """A requested path, absolute or relative to the first allowed folder, that must lie
        (after following links) inside an allowed folder."""
        if not self.allow_dirs:
            raise NotAllowedError(
                "indexing from the web is off: restart the server with --allow-dir FOLDER (repeatable) to "
                "allow it under FOLDER"
            )
        if "\x00" in given:
            raise NotAllowedError("path contains a NUL byte")
        path = Path(given)  # no ~ expansion: a request names no user's home
        path = path if path.is_absolute() else self.allow_dirs[0] / path
        try:
            inside = is_within(path, self.allow_dirs)
            resolved = path.resolve()
        except (OSError, RuntimeError) as err:  # a symlink loop, an unreadable component
            raise ValueError(f"{given}: cannot resolve this path ({err})") from None
        if not inside:
            raise NotAllowedError(
                f"{given}: outside the folders this server may index ({', '.join(map(str, self.allow_dirs))})"
            )
        if not resolved.exists():
            raise FileNotFoundError(
                f"{given}: no such file or folder under {', '.join(map(str, self.allow_dirs))}"
            )
        return resolved

    def start(
        self,
        paths: list[str],
        *,
        camera: str | None = None,
        stride: int | None = None,
        fps: float | None = None,
    ) -> IndexingJob:
        """Check the paths, take the writer lock, and index in the background."""
        if self.engine is None:
            raise NoModelError(
                "no model is loaded, so nothing can be indexed; restart the server with --model"
            )
        if not paths:
            raise ValueError("give at least one file or folder to index")
        resolved = [self.resolve(p) for p in paths]
        sampling = sampling_for(stride, fps)  # both given: an error now, not in the job
        with self._lock:
            running = self.running()  # once: the job may end between two looks
            if running is not None:
                raise IndexBusyError(
                    f"indexing job {running.id} is still running on {self.index_dir}; "
                    "wait for it or cancel it"
                )
            index = PersonIndex.open(self.index_dir, self.engine, create=True, shared=True)
            try:
                index.store.acquire_writer()
            except BaseException:
                index.close()
                raise
            job = IndexingJob(id=next(self._ids), paths=[str(p) for p in resolved], camera=camera)
            self.jobs[job.id] = job
        threading.Thread(
            target=self._run, args=(job, index, resolved, sampling), name=f"index-job-{job.id}", daemon=True
        ).start()
        return job

    def _run(self, job: IndexingJob, index: PersonIndex, paths: list[Path], sampling: Sampling) -> None:
        def on_progress(progress: IndexProgress) -> None:
            job.frames_done, job.frames_total = progress.frames_done, progress.frames_total
            job.people_added, job.current = progress.people_added, progress.current
            if job.cancel.is_set():
                raise _Cancelled

        try:
            summary = index.add_paths(
                paths,
                stride=sampling.stride,
                fps=sampling.fps,
                camera=job.camera,
                batch_size=self.batch_size,
                progress=False,
                within=self.allow_dirs,
                on_progress=on_progress,
            )
            job.summary, job.state = summary.to_json(), "done"
        except _Cancelled:
            job.state = "cancelled"
        except Exception as err:  # reported to the client; the index keeps what was committed
            job.state, job.error = "failed", str(err) or type(err).__name__
        finally:
            index.close()
            job.ended = time.time()


@dataclass(kw_only=True)
class AdaptJob(Job):
    """Adapting the loaded model's re-id network to the index's footage, saved as ``name``."""

    name: str
    budget: str
    stage: str = "starting"
    fraction: float = 0.0


class AdaptJobs(_Jobs[AdaptJob]):
    """``personsearch adapt`` from the service: one run at a time, in a background thread, over
    the index's own footage (nothing a request names is read), into the model home under a new
    name. Cancelling stops it at the next training step; starting again with the same name
    resumes from its last checkpoint."""

    kind = "adapting"

    def __init__(self, index_dir: Path, model_dir: Path | None) -> None:
        super().__init__()
        self.index_dir, self.model_dir = index_dir, model_dir

    def start(self, name: str, *, budget: str = "1x", min_boxes: int | None = None) -> AdaptJob:
        """Check the name and budget, then adapt in the background."""
        from personsearch.models.bundle import saved_model_dir
        from personsearch.training.adapt import AdaptConfig, parse_budget

        if self.model_dir is None:
            raise NotAllowedError(
                "adapting from the web is off: restart the server with --allow-adapt to allow it"
            )
        if not IndexStore.exists(self.index_dir):
            raise FileNotFoundError(f"nothing indexed yet at {self.index_dir}: index some footage first")
        out = saved_model_dir(name)
        if (out / "reid.json").exists():
            raise FileExistsError(f"a model named {name!r} exists already ({out}); choose another name")
        budget_footage, budget_s = parse_budget(budget)
        config = AdaptConfig(budget_footage=budget_footage, budget_s=budget_s)
        if min_boxes is not None:
            config = replace(config, min_boxes=min_boxes)
        with self._lock:
            running = self.running()
            if running is not None:
                raise IndexBusyError(f"adapting job {running.id} is still running; wait for it or cancel it")
            job = AdaptJob(id=next(self._ids), name=name, budget=budget)
            self.jobs[job.id] = job
        threading.Thread(
            target=self._run, args=(job, out, config), name=f"adapt-job-{job.id}", daemon=True
        ).start()
        return job

    def _run(self, job: AdaptJob, out: Path, config: AdaptConfig) -> None:
        from personsearch.training.adapt import AdaptProgress, adapt, rounds_taken, time_taken

        def on_progress(progress: AdaptProgress) -> None:
            where = f"round {progress.round}/{progress.rounds}: " if progress.round else ""
            steps = f" (step {progress.step}/{progress.steps})" if progress.steps else ""
            job.stage, job.fraction = f"{where}{progress.stage}{steps}", progress.fraction
            if job.cancel.is_set():
                raise _Cancelled

        assert self.model_dir is not None
        try:
            result = adapt(
                self.index_dir, self.model_dir, out, config, progress=False, on_progress=on_progress
            )
            job.summary = {
                "model": job.name,
                "tracklets": result["tracklets"],
                "cameras": result["cameras"],
                "footage": result["footage"],
                "time": time_taken(result),
                "rounds": rounds_taken(result),
                "reembed": (
                    f"personsearch reembed --index {self.index_dir} --model {job.name} "
                    f"--out {self.index_dir}-{job.name}"
                ),
            }
            job.state, job.stage, job.fraction = "done", "done", 1.0
        except _Cancelled:
            job.state = "cancelled"
        except Exception as err:  # reported to the client; checkpoints stay for a resumed run
            job.state, job.error = "failed", str(err) or type(err).__name__
        finally:
            job.ended = time.time()
