"""Bounds that keep one client from exhausting the server: request-body size and concurrent work.

``BodyLimit`` refuses a request body over its limit with 413, from the ``Content-Length`` header
when there is one and by counting otherwise (chunked uploads), before the body reaches the
multipart parser (which would spool it to disk). ``WorkPool`` runs model and search work on a few
threads with a bounded queue: when full, the request gets 503 and ``Retry-After`` instead of
piling up in memory; ``ShedLoad`` refuses such work before it is even parsed while the pool is
full, so that the excess costs little of what the answered searches need.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send

T = TypeVar("T")


class BodyLimit:
    """ASGI middleware: at most ``upload_bytes`` for ``upload_paths``, ``other_bytes`` elsewhere."""

    def __init__(
        self,
        app: ASGIApp,
        upload_bytes: int,
        other_bytes: int = 1 << 20,
        upload_paths: tuple[str, ...] = ("/api/uploads",),
    ) -> None:
        self.app, self.upload_bytes, self.other_bytes, self.upload_paths = (
            app,
            upload_bytes,
            other_bytes,
            upload_paths,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.upload_bytes if scope["path"] in self.upload_paths else self.other_bytes
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _refuse(send, limit)
            return
        seen, started, exceeded = 0, False, False

        async def counting_receive() -> Message:
            # Past the limit the app is told the client went away; whatever it answers to the
            # cut body (a parse error, usually) is replaced by the 413 below.
            nonlocal seen, exceeded
            if exceeded:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    exceeded = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded and not started:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
            await _refuse(send, limit)


async def send_detail(
    send: Send, status: int, detail: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    """Answer ``{"detail": ...}`` with ``status`` straight from ASGI middleware (the app's own
    error bodies have the same shape)."""
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _refuse(send: Send, limit: int) -> None:
    await send_detail(
        send,
        413,
        f"request body over the limit of {limit:,} bytes; send a smaller image "
        "(the server's --max-upload-mb sets the limit)",
    )


class Busy(Exception):
    """Every worker is busy and the queue is full."""


class WorkPool:
    """``workers`` threads for heavy work; at most ``workers + queue`` jobs admitted at once.

    A short queue keeps the workers fed (the next job is waiting when one ends) without letting
    the answered requests' latency grow with the load: past it, a request is refused at once."""

    def __init__(self, workers: int = 2, queue: int = 2) -> None:
        if workers < 1 or queue < 0:
            raise ValueError(f"workers must be >= 1 and queue >= 0, got {workers} and {queue}")
        self.workers, self.queue = workers, queue
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="personsearch-work")
        self._slots = threading.BoundedSemaphore(workers + queue)
        # jobs admitted: changed under the lock, read without it by ``full`` (a stale read only
        # moves one refusal from the middleware to ``run``, which makes it all the same)
        self._admitted = 0
        self._count_lock = threading.Lock()

    @property
    def busy_message(self) -> str:
        return (
            f"the server is busy ({self.workers} searches running, {self.queue} waiting); retry in a moment"
        )

    def full(self) -> bool:
        """Whether a job submitted now would be refused."""
        return self._admitted >= self.workers + self.queue

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """Run ``function(*args)`` on a worker; ``Busy`` at once when no slot is free."""
        if not self._slots.acquire(blocking=False):
            raise Busy(self.busy_message)
        with self._count_lock:
            self._admitted += 1
        try:
            future = self._executor.submit(function, *args)
        except BaseException:
            self._release()
            raise
        # the slot is freed when the work ends, not when a client gives up waiting for it
        future.add_done_callback(lambda _: self._release())
        return await asyncio.wrap_future(future)

    def _release(self) -> None:
        with self._count_lock:
            self._admitted -= 1
        self._slots.release()

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class ShedLoad:
    """ASGI middleware: a request for ``pool`` work while the pool is full is refused (503,
    ``Retry-After``) before routing, body parsing or validation, so that refusing the excess
    costs the server little next to the searches it keeps answering."""

    def __init__(self, app: ASGIApp, pool: WorkPool, pooled: Callable[[str, str], bool]) -> None:
        self.app, self.pool, self.pooled = app, pool, pooled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.pool.full() and self.pooled(scope["method"], scope["path"]):
            await send_detail(send, 503, self.pool.busy_message, [(b"retry-after", b"1")])
            return
        await self.app(scope, receive, send)
