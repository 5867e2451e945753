"""Indexing jobs started from the service: one writer at a time, only under allowed folders.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from personsearch.index import IndexBusyError, PersonIndex
from personsearch.index.indexer import IndexProgress
from personsearch.index.sources import Sampling, is_within, sampling_for
from personsearch.interfaces.server.service import NoModelError
from personsearch.pipeline import PersonEngine


class NotAllowedError(PermissionError):
    """A path outside the folders the operator allowed at start-up."""


class _Cancelled(Exception):
    pass


@dataclass
class Job:
    id: int
    paths: list[str]
    camera: str | None
    state: str = "running"
    """``running``, ``done``, ``failed`` or ``cancelled``."""
    frames_done: int = 0
    frames_total: int | None = None
    people_added: int = 0
    current: str = ""
    error: str | None = None
    summary: dict[str, Any] | None = None
    started: float = field(default_factory=time.time)
    ended: float | None = None
    cancel: threading.Event = field(default_factory=threading.Event, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "paths": self.paths,
            "camera": self.camera,
            "state": self.state,
            "frames_done": self.frames_done,
            "frames_total": self.frames_total,
            "people_added": self.people_added,
            "current": self.current,
            "error": self.error,
            "summary": self.summary,
            "started": self.started,
            "ended": self.ended,
        }


class IndexingJobs:
    """Starts and tracks indexing jobs into one index directory."""

    def __init__(
        self, index_dir: Path, engine: PersonEngine | None, allow_dirs: list[Path], *, batch_size: int = 4
    ) -> None:
        self.index_dir, self.engine, self.batch_size = index_dir, engine, batch_size
        self.allow_dirs = [d.resolve() for d in allow_dirs]
        self.jobs: dict[int, Job] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

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

    def running(self) -> Job | None:
        return next((job for job in self.jobs.values() if job.state == "running"), None)

    def start(
        self,
        paths: list[str],
        *,
        camera: str | None = None,
        stride: int | None = None,
        fps: float | None = None,
    ) -> Job:
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
            job = Job(next(self._ids), [str(p) for p in resolved], camera)
            self.jobs[job.id] = job
        threading.Thread(
            target=self._run, args=(job, index, resolved, sampling), name=f"index-job-{job.id}", daemon=True
        ).start()
        return job

    def _run(self, job: Job, index: PersonIndex, paths: list[Path], sampling: Sampling) -> None:
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

    def cancel(self, job_id: int) -> Job:
        job = self.get(job_id)
        job.cancel.set()
        return job

    def get(self, job_id: int) -> Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise KeyError(f"no indexing job {job_id}")
        return job
