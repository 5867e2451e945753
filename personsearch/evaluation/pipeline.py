"""The two-step person search (``personsearch/pipeline.py``) scored on a benchmark: detector ->
crops -> re-id -> protocol.

Also the ground-truth-box variant (re-id alone, the paper's "detection is not the bottleneck"
check): the same protocol with every annotated box as a detection of score 1.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from personsearch.data.images import read_image
from personsearch.data.records import PersonSearchDataset, Query, Scene
from personsearch.evaluation.detection import evaluate_detection
from personsearch.evaluation.results import DetectionResult, SearchResult
from personsearch.evaluation.search import evaluate_search
from personsearch.pipeline import PersonEngine, PersonSearchPipeline
from personsearch.progress import job_progress


def ground_truth_detections(scenes: list[Scene]) -> list[np.ndarray]:
    """Every annotated box of each scene as a detection of score 1."""
    return [np.concatenate([s.boxes, np.ones((len(s.boxes), 1), np.float32)], axis=1) for s in scenes]


def run_gallery(
    engine: PersonEngine,
    scenes: list[Scene],
    *,
    detections: list[np.ndarray] | None = None,
    batch_size: int = 4,
    progress: bool = True,
    embed_ground_truth: bool = True,
) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Detections of every gallery scene (``detections`` if given, else the engine's), their
    features, and the features of the ground-truth boxes (an empty list without
    ``embed_ground_truth``, e.g. when ``detections`` are those boxes): one image decode serves all
    three. Everything goes through ``PersonSearchPipeline``, as in deployment."""
    pipeline = PersonSearchPipeline(engine)
    dets: list[np.ndarray] = []
    feats: list[np.ndarray] = []
    gt_feats: list[np.ndarray] = []
    with job_progress(progress, unit="scenes") as bar:
        task = bar.add_task("gallery", total=len(scenes))
        for start in range(0, len(scenes), batch_size):
            chunk = scenes[start : start + batch_size]
            images = [read_image(s.path) for s in chunk]
            given = None if detections is None else detections[start : start + len(chunk)]
            for image, scene, people in zip(images, chunk, pipeline.find_people(images, given), strict=True):
                dets.append(people.detections)
                feats.append(people.features)
                if embed_ground_truth:
                    gt_feats.append(pipeline.describe(image, scene.boxes))
            bar.advance(task, len(chunk))
    return dets, feats, gt_feats


def query_features(engine: PersonEngine, queries: list[Query]) -> np.ndarray:
    """Re-id features of each query's ground-truth box, in query order."""
    pipeline = PersonSearchPipeline(engine)
    feats = [pipeline.describe(read_image(query.path), query.box[None]) for query in queries]
    return np.concatenate(feats) if feats else np.zeros((0, engine.feature_dim), np.float32)


def gallery_detections(
    make_engine: Callable[[], PersonEngine], scenes: list[Scene], cache: Path
) -> list[np.ndarray]:
    """One detector's boxes on every gallery scene, kept in ``cache`` (an .npz, read without
    pickle): several re-id networks scored behind the same detector share them
    (``evaluate_engine(detections=...)``), so it runs once. The engine is made only when the
    cache is missing; the caller names the cache after what decides the boxes (detector weights,
    engine, data)."""
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as data:
            if len(data.files) == len(scenes):
                return [data[f"d{i}"] for i in range(len(scenes))]
    pipeline = PersonSearchPipeline(make_engine())
    dets = [pipeline.detect([read_image(scene.path)])[0] for scene in scenes]
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(cache.name + ".tmp.npz")
    arrays: dict[str, Any] = {f"d{i}": d for i, d in enumerate(dets)}
    np.savez(tmp, **arrays)
    tmp.replace(cache)  # a killed run leaves no half-written cache
    return dets


@dataclass
class PipelineResult:
    """Detection quality, search with detections, and search with ground-truth boxes."""

    search: SearchResult
    search_gt: SearchResult
    detection: DetectionResult
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "search": self.search.to_dict(),
            "search_gt_boxes": self.search_gt.to_dict(),
            "detection": self.detection.to_dict(),
            "timings_s": self.timings,
        }

    def format_table(self) -> str:
        return "\n".join(
            [
                self.detection.format_table(),
                "Search with detections",
                self.search.format_table(),
                "Search with ground-truth boxes",
                self.search_gt.format_table(),
            ]
        )


def evaluate_engine(
    engine: PersonEngine,
    dataset: PersonSearchDataset,
    *,
    gallery_size: int = 100,
    detections: list[np.ndarray] | None = None,
    features: list[np.ndarray] | None = None,
    cross_camera: bool = False,
    det_thresh: float = 0.5,
    progress: bool = True,
    rerank: bool = False,
) -> PipelineResult:
    """Score a detector + re-id engine on ``dataset`` with its standard protocol, with its own
    detections and with the ground-truth boxes.

    ``detections`` (aligned with the gallery) replace the engine's detector, e.g. one detector's
    boxes shared by several re-id models; with ``features`` too (e.g. both read from an index of
    the gallery with ``PersonIndex.people_in``) they are not embedded again. ``rerank``: both
    searches ranked by k-reciprocal re-ranking (``evaluate_search``).
    """
    timings = {}
    started = time.perf_counter()
    if features is None:
        dets, feats, gt_feats = run_gallery(engine, dataset.gallery, detections=detections, progress=progress)
    else:
        if detections is None:
            raise ValueError("features of the gallery detections were given without the detections")
        dets, feats = detections, features
        _, gt_feats, _ = run_gallery(
            engine,
            dataset.gallery,
            detections=ground_truth_detections(dataset.gallery),
            progress=progress,
            embed_ground_truth=False,
        )
    timings["gallery"] = time.perf_counter() - started
    started = time.perf_counter()
    qfeats = query_features(engine, dataset.queries)
    timings["queries"] = time.perf_counter() - started
    search_gt = evaluate_search(
        dataset,
        ground_truth_detections(dataset.gallery),
        gt_feats,
        qfeats,
        gallery_size=gallery_size,
        cross_camera=cross_camera,
        det_thresh=det_thresh,
        rerank=rerank,
    )
    search = evaluate_search(
        dataset,
        dets,
        feats,
        qfeats,
        gallery_size=gallery_size,
        cross_camera=cross_camera,
        det_thresh=det_thresh,
        rerank=rerank,
    )
    detection = evaluate_detection(dataset, dets, det_thresh=det_thresh)
    return PipelineResult(search, search_gt, detection, timings)
