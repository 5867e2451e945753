"""The HTTP face of ``SearchService``: a FastAPI app serving the JSON API and the page.

Every route is a thin translation: parse and bound the request (pydantic), run the work (model
and search work on the bounded ``WorkPool``), turn the project's errors into status codes with
their message (``ERROR_STATUS``). Files are only ever reached by ids from the index, never by a
path from a request. OpenAPI: ``/openapi.json``.
"""

from __future__ import annotations

import importlib.resources
import re
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, File, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

from personsearch.data.images import ImageReadError
from personsearch.index import IndexBusyError, ModelMismatchError, PersonIndexError
from personsearch.index.store import SourceChangedError
from personsearch.interfaces.server.access import TOKEN_COOKIE, AccessGuard
from personsearch.interfaces.server.jobs import AdaptJobs, IndexingJobs, NotAllowedError
from personsearch.interfaces.server.limits import BodyLimit, Busy, ShedLoad, WorkPool
from personsearch.interfaces.server.service import (
    MAX_TOP_K,
    NoModelError,
    NotIndexedError,
    SearchRequest,
    SearchService,
)
from personsearch.interfaces.server.uploads import UploadError

Id = Annotated[int, PathParam(ge=0, le=2**62)]
STATIC = Path(__file__).resolve().parent / "static"
SWAGGER_UI = Path(str(importlib.resources.files("fastapi_offline") / "static"))
"""Swagger UI 5's files as the fastapi-offline package ships them (version 4, of
swagger-ui-bundle, cannot read FastAPI's OpenAPI 3.1)."""

POOLED = re.compile(r"POST /api/(search|search/report|uploads)|GET /api/sources/\d+/image")
"""The routes whose work runs on the ``WorkPool`` (models, search, decoding frames)."""


def pooled(method: str, path: str) -> bool:
    """Whether ``method path`` runs on the work pool (and so is refused while it is full)."""
    return POOLED.fullmatch(f"{method} {path}") is not None


ERROR_STATUS: list[tuple[type[BaseException], int]] = [
    (Busy, 503),
    (UploadError, 422),  # its own status overrides
    (NotIndexedError, 404),
    (SourceChangedError, 410),
    (NotAllowedError, 403),
    (IndexBusyError, 409),
    (FileExistsError, 409),
    (ModelMismatchError, 409),
    (PersonIndexError, 500),
    (ImageReadError, 422),
    (FileNotFoundError, 404),
    (KeyError, 404),
    (ValueError, 422),
    (NoModelError, 409),
]
"""The project's errors and their HTTP status; the body is ``{"detail": message}``."""


class SearchBody(BaseModel):
    """A search: ``box_id`` (a person in the index) or ``upload`` (+ optional ``box``), and filters."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    box_id: int | None = Field(None, ge=0, le=2**62)
    upload: str | None = Field(None, max_length=64)
    box: list[float] | None = Field(
        None, min_length=4, max_length=4, description="x1, y1, x2, y2 pixels in the upload"
    )
    top_k: int = Field(10, ge=1, le=MAX_TOP_K)
    camera: list[str] | None = Field(None, max_length=1000, description="any of these cameras")
    source: str | None = Field(None, max_length=1000, description="substring of the source path, or a glob")
    time_from: float | None = Field(None, ge=-1e9, le=1e9, description="video seconds")
    time_to: float | None = Field(None, ge=-1e9, le=1e9)
    include_query: bool = False
    per_frame: bool = Field(
        False,
        description="one hit per matching box instead of one per sighting (a person tracked through a video)",
    )
    whole_sighting: bool = Field(
        False, description="with box_id: query with every frame of that person's sighting, not the one box"
    )
    rerank: bool = Field(
        False,
        description="rank the best boxes again by k-reciprocal re-ranking (footage: a person is many boxes)",
    )

    def request(self) -> SearchRequest:
        return SearchRequest(
            box_id=self.box_id,
            upload=self.upload,
            box=None if self.box is None else tuple(self.box),  # type: ignore[arg-type]
            top_k=self.top_k,
            camera=None if self.camera is None else tuple(self.camera),
            source=self.source,
            time_from=self.time_from,
            time_to=self.time_to,
            include_query=self.include_query,
            per_frame=self.per_frame,
            whole_sighting=self.whole_sighting,
            rerank=self.rerank,
        )


class JobBody(BaseModel):
    """Files and folders to index: absolute, or relative to the first ``--allow-dir``."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    paths: list[Annotated[str, Field(min_length=1, max_length=4096)]] = Field(min_length=1, max_length=100)
    camera: str | None = Field(None, min_length=1, max_length=200)
    stride: int | None = Field(
        None, ge=1, le=100_000, description="Videos: every N-th frame (1: every frame); not with fps."
    )
    fps: float | None = Field(
        None,
        gt=0,
        le=1000,
        description="Videos: about this many frames a second (default 5, index.sources.DEFAULT_VIDEO_FPS).",
    )


class AdaptBody(BaseModel):
    """Adapt the loaded model's re-id network to this index's footage (``personsearch adapt``)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(
        min_length=1, max_length=100, description="Save the adapted model under this name (--model NAME)."
    )
    budget: str = Field(
        "1x",
        min_length=1,
        max_length=20,
        description="Time to spend: 2x (twice the footage's duration), 45m, 1.5h, 900s or none.",
    )
    min_boxes: int | None = Field(
        None, ge=2, le=10_000, description="Shortest usable tracklet, in sampled frames (default 8)."
    )


class LoginBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str = Field(max_length=1000)


def _status(err: BaseException) -> int:
    if isinstance(err, UploadError):
        return err.status
    return next(status for kind, status in ERROR_STATUS if isinstance(err, kind))


def _message(err: BaseException) -> str:
    text = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
    return str(text) or type(err).__name__


def create_app(
    service: SearchService,
    *,
    allow_dirs: list[Path] | None = None,
    token: str | None = None,
    workers: int = 2,
    queue: int = 2,
    max_upload_bytes: int = 20 * 2**20,
    adapt_from: Path | None = None,
) -> FastAPI:
    """The app for ``service``; ``token``: required on every API request (bearer header, or the
    cookie the page gets from ``/api/login``); ``allow_dirs``: where indexing jobs may read;
    ``adapt_from``: the bundle that adapting jobs start from (None: no adapting)."""
    pool = WorkPool(workers, queue)
    jobs = IndexingJobs(service.index_dir, service.engine, list(allow_dirs or []))
    adapting = AdaptJobs(service.index_dir, adapt_from)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        pool.shutdown()
        service.close()

    # /docs is our own page over a local Swagger UI (FastAPI's loads it from a CDN: blank offline)
    app = FastAPI(
        title="personsearch",
        version="1",
        summary="Find a person in indexed images and videos.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.service, app.state.jobs, app.state.pool = service, jobs, pool
    app.state.adapting = adapting

    async def project_error(request: Request, err: Exception) -> JSONResponse:
        headers = {"Retry-After": "1"} if isinstance(err, Busy) else None
        return JSONResponse({"detail": _message(err)}, status_code=_status(err), headers=headers)

    for kind, _ in ERROR_STATUS:
        app.add_exception_handler(kind, project_error)  # type: ignore[arg-type]

    # outermost last: the token and headers first, then shedding, then the body limit
    app.add_middleware(BodyLimit, upload_bytes=max_upload_bytes)
    app.add_middleware(ShedLoad, pool=pool, pooled=pooled)
    app.add_middleware(AccessGuard, token=token)

    # ------------------------------------------------------------------ page
    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/docs", include_in_schema=False)
    def docs() -> FileResponse:
        return FileResponse(STATIC / "docs.html", media_type="text/html")

    # before /static, which would take its paths
    app.mount("/static/swagger", StaticFiles(directory=str(SWAGGER_UI)), name="swagger")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.post(
        "/api/login", summary="Exchange the access token for a same-site cookie (the page's images need one)"
    )
    def login(body: LoginBody) -> JSONResponse:
        if token is None:
            return JSONResponse({"detail": "this server needs no token"})
        if not secrets.compare_digest(body.token.encode(), token.encode()):
            return JSONResponse({"detail": "wrong token"}, status_code=401)
        response = JSONResponse({"detail": "logged in"})
        response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict", secure=False, path="/")
        return response

    # ------------------------------------------------------------------ browsing
    @app.get(
        "/api/summary", summary="Index summary: counts, cameras, time span, model status, indexing state"
    )
    def summary() -> dict[str, Any]:
        running = jobs.running()
        return {
            **service.summary(),
            "indexing": None if running is None else running.to_json(),
            "can_index": bool(jobs.allow_dirs) and service.engine is not None,
            "can_adapt": adapt_from is not None,
        }

    @app.get("/api/sources", summary="Indexed images and videos, a page at a time")
    def sources(
        camera: Annotated[str | None, Query(max_length=200)] = None,
        offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> dict[str, Any]:
        return service.sources(camera=camera, offset=offset, limit=limit)

    @app.get("/api/sources/{source_id}", summary="One indexed source")
    def source(source_id: Id) -> dict[str, Any]:
        return service.source(source_id)

    @app.get(
        "/api/sources/{source_id}/frames",
        summary="The image, or the video frames in which people were indexed",
    )
    def frames(
        source_id: Id,
        offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        return service.frames(source_id, offset=offset, limit=limit)

    @app.get(
        "/api/sources/{source_id}/people", summary="The people indexed in the image or in one video frame"
    )
    def people(source_id: Id, frame: Annotated[int | None, Query(ge=0, le=2**40)] = None) -> dict[str, Any]:
        return service.people(source_id, frame)

    @app.get(
        "/api/sources/{source_id}/image",
        summary="The image or video frame (JPEG), read from the indexed file",
        responses={200: {"content": {"image/jpeg": {}}}},
    )
    async def frame_image(
        source_id: Id, frame: Annotated[int | None, Query(ge=0, le=2**40)] = None
    ) -> Response:
        jpeg = await pool.run(service.frame_jpeg, source_id, frame)
        return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=60"})

    @app.get("/api/boxes/{box_id}", summary="One indexed person: where and when it was seen")
    def box(box_id: Id) -> dict[str, Any]:
        return service.box(box_id).to_json()

    @app.get(
        "/api/boxes/{box_id}/thumbnail",
        summary="The stored thumbnail of an indexed person (JPEG)",
        responses={200: {"content": {"image/jpeg": {}}}},
    )
    def thumbnail(box_id: Id) -> Response:
        # box ids are never reused, so a thumbnail never changes
        return Response(
            service.thumbnail_jpeg(box_id),
            media_type="image/jpeg",
            headers={"Cache-Control": "private, max-age=86400, immutable"},
        )

    # ------------------------------------------------------------------ searching
    @app.post("/api/uploads", summary="Upload a query photo; answers the people detected in it")
    async def upload(
        file: Annotated[UploadFile, File(description="a JPEG, PNG, WebP or BMP photo")],
    ) -> dict[str, Any]:
        data = await file.read(max_upload_bytes + 1)
        if len(data) > max_upload_bytes:
            raise UploadError(f"the upload is over the limit of {max_upload_bytes:,} bytes", 413)
        return await pool.run(service.add_upload, data, "uploaded image")

    @app.post(
        "/api/search", summary="Search: the same JSON as `personsearch search --json` (docs/search-json.md)"
    )
    async def search(body: SearchBody) -> dict[str, Any]:
        return await pool.run(service.search_json, body.request())

    @app.post(
        "/api/search/report",
        summary="The same search as an HTML report (as `personsearch search --html`)",
        response_class=HTMLResponse,
    )
    async def search_report(body: SearchBody) -> HTMLResponse:
        page = await pool.run(service.search_html, body.request())
        return HTMLResponse(
            page, headers={"Content-Disposition": 'attachment; filename="personsearch-report.html"'}
        )

    # ------------------------------------------------------------------ indexing
    @app.post(
        "/api/index-jobs",
        status_code=202,
        summary="Index files and folders under the allowed folders, in the background",
    )
    def start_job(body: JobBody) -> dict[str, Any]:
        return jobs.start(body.paths, camera=body.camera, stride=body.stride, fps=body.fps).to_json()

    @app.get("/api/index-jobs", summary="Indexing jobs of this server run")
    def list_jobs() -> dict[str, Any]:
        return {
            "allowed": [str(d) for d in jobs.allow_dirs],
            "jobs": [job.to_json() for job in jobs.jobs.values()],
        }

    @app.get("/api/index-jobs/{job_id}", summary="One indexing job and its progress")
    def get_job(job_id: Id) -> dict[str, Any]:
        return jobs.get(job_id).to_json()

    @app.delete(
        "/api/index-jobs/{job_id}", summary="Stop a job after the batch in flight (what was committed stays)"
    )
    def cancel_job(job_id: Id) -> dict[str, Any]:
        return jobs.cancel(job_id).to_json()

    # ------------------------------------------------------------------ adapting
    @app.post(
        "/api/adapt-jobs",
        status_code=202,
        summary="Adapt the model's re-id network to this index's footage, in the background (no labels)",
    )
    def start_adapt(body: AdaptBody) -> dict[str, Any]:
        return adapting.start(body.name, budget=body.budget, min_boxes=body.min_boxes).to_json()

    @app.get("/api/adapt-jobs", summary="Adapting jobs of this server run")
    def list_adapt_jobs() -> dict[str, Any]:
        return {"jobs": [job.to_json() for job in adapting.jobs.values()]}

    @app.get("/api/adapt-jobs/{job_id}", summary="One adapting job and its progress")
    def get_adapt_job(job_id: Id) -> dict[str, Any]:
        return adapting.get(job_id).to_json()

    @app.delete(
        "/api/adapt-jobs/{job_id}",
        summary="Stop adapting at the next training step (starting again with the same name resumes)",
    )
    def cancel_adapt_job(job_id: Id) -> dict[str, Any]:
        return adapting.cancel(job_id).to_json()

    return app
