"""What the web service does, without HTTP: browse an index, search it by an indexed person or
an uploaded photo, render frames, thumbnails and reports. The routes (app.py) only translate.

One index reader is shared by every request and used under a lock (searches take milliseconds
once the vectors are loaded); model work for uploads runs outside it. The index may not exist
yet (nothing indexed: every browse answers ``NotIndexedError``) and may have been built with
another model than the one loaded (browsing and searching by an indexed person still work, as
they only need stored features; uploads and indexing are refused with ``ModelMismatchError``).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from personsearch.data.images import crop_box, encode_jpeg
from personsearch.index import Hit, ModelMismatchError, PersonIndex, SearchQuery, hits_to_json
from personsearch.index.person_index import check_model
from personsearch.index.sources import read_frame
from personsearch.index.store import BoxInfo, IndexStore
from personsearch.interfaces.report import html_report
from personsearch.interfaces.server.uploads import Upload, UploadStore, decode_upload
from personsearch.pipeline import PersonEngine, PersonSearchPipeline, choose_query_box

MAX_TOP_K = 500


class NotIndexedError(FileNotFoundError):
    """The service's index directory holds no index yet."""


class NoModelError(RuntimeError):
    """The service runs without a model, so it cannot look at new pictures."""


MAX_QUERY_BOXES = 64
"""Query features kept per upload (one per box drawn or picked)."""


@dataclass(frozen=True)
class SearchRequest:
    """A query person (an indexed box, or a box in an upload) and the result filters."""

    box_id: int | None = None
    upload: str | None = None
    box: tuple[float, float, float, float] | None = None
    top_k: int = 10
    camera: tuple[str, ...] | None = None
    source: str | None = None
    time_from: float | None = None
    time_to: float | None = None
    include_query: bool = False
    """Searching by an indexed box: keep that box (and its sighting) in the results."""
    per_frame: bool = False
    """One hit per matching box instead of one per sighting."""
    whole_sighting: bool = False
    """Searching by an indexed box: query with the mean feature of its whole sighting."""
    rerank: bool = False
    """Rank the best boxes again by k-reciprocal re-ranking (``index/reranking.py``)."""

    def __post_init__(self) -> None:
        if (self.box_id is None) == (self.upload is None):
            raise ValueError(
                "give exactly one query: box_id (a person in the index) or upload "
                "(an uploaded image, with an optional box)"
            )
        if not 1 <= self.top_k <= MAX_TOP_K:
            raise ValueError(f"top_k must be between 1 and {MAX_TOP_K}, got {self.top_k}")

    @property
    def time_range(self) -> tuple[float | None, float | None] | None:
        return None if self.time_from is None and self.time_to is None else (self.time_from, self.time_to)


class SearchService:
    """The index at ``index_dir`` and (optionally) the model used for uploads and indexing."""

    def __init__(
        self,
        index_dir: str | Path,
        engine: PersonEngine | None,
        *,
        max_upload_pixels: int = 40_000_000,
        uploads: UploadStore | None = None,
    ) -> None:
        self.index_dir = Path(index_dir)
        self.engine = engine
        self.max_upload_pixels = max_upload_pixels
        self.uploads = uploads or UploadStore()
        self._lock = threading.RLock()
        self._index: PersonIndex | None = None

    # ----------------------------------------------------------------- the shared reader
    def _reader(self) -> PersonIndex:
        """The open index (opened on first use, so an index created later by a job is found)."""
        if self._index is None:
            if not IndexStore.exists(self.index_dir):
                raise NotIndexedError(
                    f"nothing indexed yet: no index at {self.index_dir}; "
                    f"run `personsearch index FOLDER --index {self.index_dir}` or start an indexing job"
                )
            self._index = PersonIndex.open(self.index_dir, shared=True, read_only=True)
        return self._index

    def close(self) -> None:
        with self._lock:
            if self._index is not None:
                self._index.close()
                self._index = None

    def model_status(self) -> dict[str, Any]:
        """The loaded model and whether it can add to / query this index."""
        status: dict[str, Any] = {
            "model_id": None if self.engine is None else self.engine.model_id,
            "usable": False,
            "problem": None,
        }
        if self.engine is None:
            status["problem"] = "no model loaded: uploads and indexing are off (restart with --model)"
            return status
        try:
            with self._lock:
                check_model(self._reader().store, self.engine)
            status["usable"] = True
        except NotIndexedError:
            status["usable"] = True
        except ModelMismatchError as err:
            status["problem"] = str(err)
        return status

    def _model(self) -> PersonEngine:
        if self.engine is None:
            raise NoModelError(
                "no model is loaded, so uploads cannot be searched; restart the server with --model"
            )
        problem = self.model_status()["problem"]
        if problem:
            raise ModelMismatchError(problem)
        return self.engine

    # ----------------------------------------------------------------- browsing
    def summary(self) -> dict[str, Any]:
        with self._lock:
            try:
                data = {"indexed": True, **self._reader().store.summary()}
            except NotIndexedError as err:
                data = {"indexed": False, "message": str(err)}
        return {"index": str(self.index_dir), **data, "model": self.model_status()}

    def sources(self, *, camera: str | None, offset: int, limit: int) -> dict[str, Any]:
        with self._lock:
            total, page = self._reader().store.list_sources(camera=camera, offset=offset, limit=limit)
        return {"total": total, "offset": offset, "sources": [s.to_json() for s in page]}

    def source(self, source_id: int) -> dict[str, Any]:
        with self._lock:
            return self._reader().store.get_source(source_id).to_json()

    def frames(self, source_id: int, *, offset: int, limit: int) -> dict[str, Any]:
        with self._lock:
            total, page = self._reader().store.list_frames(source_id, offset=offset, limit=limit)
        return {
            "total": total,
            "offset": offset,
            "frames": [{"frame": f.frame, "time": f.time, "people": f.people} for f in page],
        }

    def people(self, source_id: int, frame: int | None) -> dict[str, Any]:
        with self._lock:
            boxes = self._reader().store.people_in_frame(source_id, frame)
        return {"source_id": source_id, "frame": frame, "people": [b.to_json() for b in boxes]}

    def box(self, box_id: int) -> BoxInfo:
        with self._lock:
            return self._reader().store.get_box(box_id)

    def thumbnail_jpeg(self, box_id: int) -> bytes:
        with self._lock:
            return self._reader().store.thumbnail(box_id)

    def frame_pixels(self, source_id: int, frame: int | None) -> np.ndarray:
        """The image or video frame, read from the indexed file only if it is unchanged."""
        with self._lock:
            store = self._reader().store
            store.get_source(source_id).check_frame(frame)
            path = store.source_file(source_id)
        return read_frame(path, frame)

    def frame_jpeg(self, source_id: int, frame: int | None) -> bytes:
        return encode_jpeg(self.frame_pixels(source_id, frame), 85)

    # ----------------------------------------------------------------- uploads and search
    def add_upload(self, data: bytes, name: str) -> dict[str, Any]:
        """Decode a query photo, find its people, keep it for searches: the page shows the boxes."""
        engine = self._model()
        image = decode_upload(data, name, self.max_upload_pixels)
        (people,) = PersonSearchPipeline(engine).detect([image])
        upload = self.uploads.add(image, people)
        return {
            "upload": upload.id,
            "width": int(image.shape[1]),
            "height": int(image.shape[0]),
            "people": [
                {"box": [round(float(v), 2) for v in det[:4]], "score": round(float(det[4]), 6)}
                for det in people
            ],
        }

    def _upload_query(self, upload: Upload, box: Sequence[float] | None) -> SearchQuery:
        engine = self._model()
        note = None
        if box is None:
            height, width = upload.image.shape[:2]
            box = tuple(
                float(v) for v in choose_query_box(height, width, upload.people, "the uploaded image")
            )
            if PersonSearchPipeline.is_whole_image(box, upload.image):
                note = (
                    f"the uploaded image ({width}x{height}) is person-shaped and shows no other person: "
                    "taken whole as the person"
                )
        key = tuple(round(float(v), 2) for v in box)
        feature = upload.features.get(key)
        if feature is None:
            _, feature = PersonSearchPipeline(engine).query_person(upload.image, box, "uploaded image")
            if len(upload.features) >= MAX_QUERY_BOXES:
                upload.features.clear()
            upload.features[key] = feature
        crop = crop_box(upload.image, np.asarray(key, np.float32))
        return SearchQuery(feature, crop, None, None, key, note)  # type: ignore[arg-type]

    def _box_query(self, box_id: int, whole_sighting: bool) -> tuple[SearchQuery, int | None]:
        """The indexed person as a query (one box, or its whole sighting), and its sighting."""
        with self._lock:
            index = self._reader()
            info = index.store.get_box(box_id)
            sighting = index.sighting_of(box_id)
            feature = (
                index.sighting_feature(sighting)
                if whole_sighting and sighting is not None
                else index.feature(box_id)
            )
            crop = index.thumbnail(box_id)
        return SearchQuery(feature, crop, info.source, info.frame, info.box), sighting

    def search(self, request: SearchRequest) -> tuple[SearchQuery, list[Hit]]:
        """The query person and its ranked hits within the filters. Searching by an indexed
        person leaves out that person's own box and sighting unless ``include_query``."""
        own_sighting = None
        if request.box_id is not None:
            query, own_sighting = self._box_query(request.box_id, request.whole_sighting)
        else:
            query = self._upload_query(self.uploads.get(request.upload or ""), request.box)
        drop_self = request.box_id is not None and not request.include_query
        with self._lock:
            hits = self._reader().search(
                query.feature,
                request.top_k + int(drop_self),
                source=request.source,
                camera=list(request.camera) if request.camera else None,
                time_range=request.time_range,
                per_frame=request.per_frame,
                rerank=request.rerank,
                exclude_sightings=[own_sighting] if drop_self and own_sighting is not None else (),
            )
        if drop_self:
            hits = [h for h in hits if h.box_id != request.box_id][: request.top_k]
            for rank, hit in enumerate(hits, 1):
                hit.rank = rank
        return query, hits

    def search_json(self, request: SearchRequest) -> dict[str, Any]:
        """The search JSON of the CLI (docs/search-json.md)."""
        query, hits = self.search(request)
        return hits_to_json(hits, query=query, reranked=request.rerank)

    def search_html(self, request: SearchRequest) -> str:
        """The CLI's HTML report of the same search (scenes re-read from the indexed files)."""
        query, hits = self.search(request)
        with self._lock:
            notes = {"index": str(self.index_dir), "model": self._reader().model_id}
        if query.source:
            notes["query"] = query.source + (f" frame {query.frame}" if query.frame is not None else "")
        return html_report(query.crop, hits, title="Person search results", notes=notes)
