"""The Python API: one object that holds a model bundle and mirrors the CLI.

ps = PersonSearch.load()                             # the shipped model; or a bundle directory / saved name
ps.index(["footage/", "cam2.avi"], index="my-index")
result = ps.search("my-index", "scene.jpg", box=(10, 20, 60, 170), top_k=10)
result.write_html("report.html")
"""

from __future__ import annotations

import functools
import json
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Unpack

import numpy as np

from personsearch.data.images import crop_box, read_image
from personsearch.index import Hit, IndexSummary, PersonIndex, SearchQuery, hits_to_json
from personsearch.index.distributed import RaySettings, load_engine, machine_key
from personsearch.index.person_index import SearchFilters
from personsearch.index.reembed import reembed_index, refuse_same_model
from personsearch.index.sources import read_frame, sampling_for, source_kind
from personsearch.interfaces.report import write_contact_sheet, write_html_report
from personsearch.models.bundle import (
    DEFAULT_MODEL,
    SHIPPED_MODEL,
    ModelBundle,
    model_home,
    resolve_model,
    saved_model_dir,
)
from personsearch.pipeline import PersonEngine, PersonSearchPipeline

__all__ = ["DEFAULT_MODEL", "SHIPPED_MODEL", "PersonSearch", "SearchResult", "model_home", "resolve_model"]


@dataclass
class SearchResult:
    """The query and its ranked hits, with the ways a person looks at them."""

    query: SearchQuery
    hits: list[Hit]
    index_dir: Path
    model_id: str
    reranked: bool = False
    """Ranked and scored by k-reciprocal re-ranking (``rerank=True``), not cosine."""

    def to_json(self) -> dict[str, Any]:
        """The stable JSON form (docs/search-json.md)."""
        return hits_to_json(self.hits, query=self.query, reranked=self.reranked)

    def write_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_json(), indent=2))
        return path

    def write_html(
        self,
        path: str | Path,
        title: str = "Person search results",
        verdicts: Sequence[bool | None] | None = None,
    ) -> Path:
        """The HTML report; ``verdicts`` (one per hit, from annotations) marks right and wrong hits."""
        notes = {"index": str(self.index_dir), "model": self.model_id}
        if self.reranked:
            notes["ranking"] = "k-reciprocal re-ranking (scores are re-ranked similarities)"
        if self.query.source:
            notes["query"] = self.query.source + (
                f" frame {self.query.frame}" if self.query.frame is not None else ""
            )
        return write_html_report(
            path, self.query.crop, self.hits, title=title, notes=notes, verdicts=verdicts
        )

    def write_contact_sheet(self, path: str | Path, verdicts: Sequence[bool | None] | None = None) -> Path:
        return write_contact_sheet(path, self.query.crop, self.hits, verdicts=verdicts)


# The query person, from what a user has: a person crop, a scene image + box, or a video frame + box.
# Without a box, a person-shaped image that shows no one else is taken whole as the person (with a
# note); otherwise the scene's people are detected and the one person is used (several people: the
# error lists their boxes so the user can pick one). ``PersonSearch.query`` picks among these; they
# take any ``PersonEngine``, so a test engine builds queries as a bundle does.


def query_from_crop(engine: PersonEngine, crop: np.ndarray | str | Path) -> SearchQuery:
    """Query from an image that shows just the person (the whole image is the box)."""
    if isinstance(crop, (str, Path)):
        image, name, source = read_image(crop), str(crop), str(crop)
    else:
        image, name, source = np.ascontiguousarray(crop), "query crop", None
    _, feature = PersonSearchPipeline(engine).query_person(
        image, (0, 0, image.shape[1], image.shape[0]), name
    )
    return SearchQuery(feature, image, source)


def _query_in(
    engine: PersonEngine,
    pixels: np.ndarray,
    box: Sequence[float] | None,
    name: str,
    source: str | None,
    frame: int | None,
) -> SearchQuery:
    chosen, feature = PersonSearchPipeline(engine).query_person(pixels, box, name)
    x1, y1, x2, y2 = (float(v) for v in chosen)
    note = None
    if box is None and PersonSearchPipeline.is_whole_image(chosen.tolist(), pixels):
        note = (
            f"{name}: a {pixels.shape[1]}x{pixels.shape[0]} person-shaped image with no other person in it, "
            "taken whole as the person (give a box to pick someone in it)"
        )
    return SearchQuery(feature, crop_box(pixels, chosen), source, frame, (x1, y1, x2, y2), note)


def query_from_scene(
    engine: PersonEngine, image: np.ndarray | str | Path, box: Sequence[float] | None = None
) -> SearchQuery:
    """Query from a person (``box`` xyxy, or the only person detected) in a scene image."""
    if isinstance(image, (str, Path)):
        return _query_in(engine, read_image(image), box, str(image), str(image), None)
    return _query_in(engine, np.ascontiguousarray(image), box, "query image", None, None)


def query_from_video(
    engine: PersonEngine, video: str | Path, frame: int, box: Sequence[float] | None = None
) -> SearchQuery:
    """Query from a person (``box`` xyxy, or the only person detected) in frame ``frame`` of a video."""
    return _query_in(engine, read_frame(video, frame), box, f"{video} frame {frame}", str(video), frame)


class PersonSearch:
    """A detector + re-id bundle, able to index galleries and search them by example."""

    def __init__(self, bundle: ModelBundle) -> None:
        self.bundle = bundle

    @classmethod
    def load(
        cls,
        model: str | Path = DEFAULT_MODEL,
        *,
        device: str = "cpu",
        engine: str | None = None,
        detector: str = "bundle",
    ) -> PersonSearch:
        """Load a bundle directory, or a bundle saved by name (see ``save_as``); ``engine``: the
        inference engine (default ``auto``: the fastest that agrees with fp32 on this machine,
        see ``personsearch.models.engine_choice``); ``detector`` ``"hog"`` or ``"ssdlite"``
        replaces the bundle's own detector (docs/real-footage.md)."""
        return cls(ModelBundle(resolve_model(model), device=device, engine=engine, detector=detector))

    def save_as(self, name: str) -> Path:
        """Copy the bundle to the model home so ``PersonSearch.load(name)`` finds it."""
        target = saved_model_dir(name)
        target.mkdir(parents=True, exist_ok=True)
        for part in ("detector.json", "detector.safetensors", "reid.json", "reid.safetensors"):
            shutil.copy2(self.bundle.path / part, target / part)
        return target

    def index(
        self,
        paths: Iterable[str | Path],
        index: str | Path,
        *,
        stride: int | None = None,
        fps: float | None = None,
        camera: str | None = None,
        batch_size: int = 4,
        progress: bool = True,
        ray: bool | str = False,
        workers: int | None = None,
    ) -> IndexSummary:
        """Add images, folders and videos to the index at ``index`` (created if absent).

        ``ray``: run the models on a Ray cluster (``True``: a local one, or the one ``RAY_ADDRESS``
        names; a string: its address), ``workers`` model copies (default: one per CPU); this
        process commits (personsearch.index.distributed)."""
        sampling = sampling_for(stride, fps)
        settings = None
        factory = None
        if ray:
            settings = RaySettings(address=ray if isinstance(ray, str) else None, workers=workers)
            factory = self.actor_engine_factory()
        with PersonIndex.open(index, self.bundle, create=True) as person_index:
            return person_index.add_paths(
                paths,
                stride=sampling.stride,
                fps=sampling.fps,
                camera=camera,
                batch_size=batch_size,
                progress=progress,
                ray=settings,
                engine_factory=factory,
            )

    def reembed(self, index: str | Path, out: str | Path) -> IndexSummary:
        """The people of the index at ``index`` with this model's re-id features, in a new index
        at ``out``: the stored boxes, detection scores and thumbnails, no detection pass (after
        ``adapt``, whose bundle keeps the detector). Resumable: run it again after a kill."""
        with PersonIndex.open(
            index, read_only=True
        ) as source:  # refused before anything is written at ``out``
            refuse_same_model(source.store, self.bundle.model_id)
        with PersonIndex.open(out, self.bundle, create=True) as person_index:
            person_index.store.acquire_writer()
            try:
                return reembed_index(index, person_index.store, self.bundle)
            finally:
                person_index.store.release_writer()

    def actor_engine_factory(self) -> functools.partial[PersonEngine]:
        """What each Ray actor builds: this bundle, on the engine this process runs when the actor
        is on this kind of machine (the same index as without Ray), else on its node's own choice;
        an engine asked for by name is used everywhere."""
        asked = None if self.bundle.engine_request == "auto" else self.bundle.engine_request
        choice = self.bundle.engine_choice
        driver = (
            (machine_key(), f"reid={choice.reid},detector={choice.detector}")
            if str(self.bundle.device) == "cpu"
            else None
        )
        return functools.partial(
            load_engine,
            str(self.bundle.path),
            str(self.bundle.device),
            self.bundle.detector_name,
            asked,
            driver,
        )

    def query(
        self,
        image: str | Path | np.ndarray,
        *,
        box: Sequence[float] | None = None,
        frame: int | None = None,
        crop: bool = False,
    ) -> SearchQuery:
        """The query person: a whole crop (``crop=True``), a box in a scene image, or a box in a
        video frame (``frame``). Without a box, the only person detected is used."""
        if frame is not None:
            if not isinstance(image, (str, Path)):
                raise ValueError(
                    "frame= picks a frame of a video file: give the video's path, "
                    "or pass the frame's pixels without frame="
                )
            return query_from_video(self.bundle, image, frame, box)
        if isinstance(image, (str, Path)) and source_kind(Path(image)) == "video":
            raise ValueError(
                f"{image}: a video; say which frame the person is in (--frame N, or frame= in Python) "
                "and, where more than one person is in it, their --box x1,y1,x2,y2"
            )
        if crop:
            return query_from_crop(self.bundle, image)
        return query_from_scene(self.bundle, image, box)

    def search(
        self,
        index: str | Path,
        query: SearchQuery | str | Path | np.ndarray,
        *,
        box: Sequence[float] | None = None,
        frame: int | None = None,
        crop: bool = False,
        top_k: int = 10,
        per_frame: bool = False,
        **filters: Unpack[SearchFilters],
    ) -> SearchResult:
        """The ``top_k`` indexed people most like the query, with optional ``filters`` (source,
        time_range, camera; approximate, nprobe, rerank: ``SearchFilters``). Hits are sightings (a person
        tracked through a video is one hit) unless ``per_frame``."""
        if not isinstance(query, SearchQuery):
            query = self.query(query, box=box, frame=frame, crop=crop)
        with PersonIndex.open(index, self.bundle, read_only=True) as person_index:
            hits = person_index.search(query.feature, top_k, per_frame=per_frame, **filters)
        return SearchResult(query, hits, Path(index), self.bundle.model_id, bool(filters.get("rerank")))

    def search_sighting(
        self,
        index: str | Path,
        sighting: int,
        *,
        top_k: int = 10,
        per_frame: bool = False,
        **filters: Unpack[SearchFilters],
    ) -> SearchResult:
        """Search with a whole indexed sighting as the query (every frame of the tracked person,
        averaged: steadier than any single frame); the sighting itself is left out of the hits.
        ``filters`` as ``search``'s."""
        with PersonIndex.open(index, self.bundle, read_only=True) as person_index:
            info = person_index.sighting(sighting)
            best = person_index.store.get_box(info.best_box)
            query = SearchQuery(
                person_index.sighting_feature(sighting),
                person_index.thumbnail(info.best_box),
                best.source,
                best.frame,
                best.box,
            )
            hits = person_index.search(
                query.feature, top_k, per_frame=per_frame, exclude_sightings=[sighting], **filters
            )
        return SearchResult(query, hits, Path(index), self.bundle.model_id, bool(filters.get("rerank")))
