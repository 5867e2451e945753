"""The two-step person search system in one place: detect -> box policy -> crop -> re-id.

CLSA (Lan, Zhu, Gong, ECCV 2018) finds a person in scene images in two steps. A detector (here
Faster R-CNN C4, ``models/detector.py``) finds every person in a scene; each box is clipped to
the image and cut out at the re-id network's input size; the re-id network (the feature pyramid
of ``models/reid.py``) turns each crop into an L2-normalised feature, so that the cosine of two
features says how alike two people are, whatever their scale. A query is a box the user draws
(or the one person the detector finds); the gallery's people are ranked by their cosine to it.

Every caller goes through ``PersonSearchPipeline``: the index (``index/indexer.py``, gallery
side), queries (``interfaces/api.py``), the benchmark evaluation (``evaluation/pipeline.py``) and
the benchmarks. Any ``PersonEngine`` fills it: the trained bundle (``models/bundle.py``, on the
inference engine chosen for the machine), a baseline, or a test double.

    pipeline = PersonSearchPipeline(engine)
    people = pipeline.find_people(images)                 # every person: boxes, scores, features
    features = pipeline.describe(image, boxes)            # features of given boxes (ground truth)
    box, feature = pipeline.query_person(image, box=None) # the query: a given box, the whole image
                                                          # if it is a crop, or the one person
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from personsearch.data.images import clip_boxes, clip_or_refuse


@runtime_checkable
class PersonEngine(Protocol):
    """A person detector and re-id feature extractor (what the pipeline composes)."""

    model_id: str
    """Identifies the detector + re-id weights; changes whenever they change (features of two
    models are not comparable, and an index refuses a model it was not built with)."""
    feature_dim: int
    """Length D of every feature ``embed`` returns."""

    def detect(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """For each HxWx3 uint8 RGB image, float32 (n, 5) ``[x1, y1, x2, y2, score]``, already
        thresholded (every row is a person to keep)."""
        ...

    def embed(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Float32 (n, D) L2-normalised re-id features of the (n, 4) xyxy ``boxes`` in ``image``."""
        ...


PERSON_SHAPED = (1.5, 4.0)
"""Height / width of an image that may be a crop of one person (re-id crops are 2:1, a person's
box about 2.5:1); a query image in this range that shows no other person is taken whole."""
CROP_FILL = 0.6
"""A single person detected in a person-shaped image taller than this share of its height is
the image's subject, not a person in a scene."""

NORM_TOLERANCE = 0.02
"""How far from 1 a feature's length may be (reduced-precision engines normalise to about 0.5 %)."""


def choose_query_box(
    height: int, width: int, detections: np.ndarray, name: str = "query image"
) -> np.ndarray:
    """The query person of an image searched without a box: the whole image if it is a crop of
    one person (person-shaped, and no one detected in it but a person who fills it), else the
    one person detected; none or several: an error that lists what was found, so the user can
    give a box. ``detections``: (n, 5) ``[x1, y1, x2, y2, score]``."""
    dets = np.asarray(detections, dtype=np.float32).reshape(-1, 5)
    subject = len(dets) == 0 or (len(dets) == 1 and dets[0, 3] - dets[0, 1] >= CROP_FILL * height)
    if PERSON_SHAPED[0] <= height / width <= PERSON_SHAPED[1] and subject:
        return np.array([0, 0, width, height], dtype=np.float32)
    if len(dets) != 1:
        listed = "; ".join(",".join(f"{v:.0f}" for v in d[:4]) + f" (score {d[4]:.2f})" for d in dets)
        raise ValueError(
            f"{name}: no person detected; give the query box x1,y1,x2,y2 yourself"
            if len(dets) == 0
            else f"{name}: {len(dets)} people detected, choose one with a query box x1,y1,x2,y2: {listed}"
        )
    return dets[0, :4].copy()


@dataclass
class People:
    """The people found in one image."""

    boxes: np.ndarray
    """(n, 4) float32 xyxy, clipped to the image."""
    scores: np.ndarray
    """(n,) float32 detector scores."""
    features: np.ndarray
    """(n, D) float32 unit-length re-id features."""

    @property
    def detections(self) -> np.ndarray:
        """(n, 5) ``[x1, y1, x2, y2, score]``."""
        return np.concatenate([self.boxes, self.scores[:, None]], axis=1).astype(np.float32)


class PersonSearchPipeline:
    """Detector -> box policy (``data/images.py``) -> crops -> re-id, with every engine output
    checked, so a broken engine fails loudly instead of corrupting an index or a score."""

    def __init__(self, engine: PersonEngine) -> None:
        self.engine = engine

    @property
    def model_id(self) -> str:
        return self.engine.model_id

    @property
    def feature_dim(self) -> int:
        return self.engine.feature_dim

    def detect(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """(n, 5) detections of each image, boxes clipped and those under 1 pixel dropped."""
        found = self._checked_detections(self.engine.detect(images), len(images))
        kept = []
        for image, dets in zip(images, found, strict=True):
            boxes, keep = clip_boxes(dets[:, :4], image.shape[1], image.shape[0])
            kept.append(np.concatenate([boxes[keep], dets[keep, 4:5]], axis=1))
        return kept

    def describe(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Unit-length (n, D) features of the xyxy ``boxes`` (a box outside the image is an error)."""
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        if len(boxes) == 0:
            return np.zeros((0, self.feature_dim), np.float32)
        boxes = clip_or_refuse(boxes, image.shape[1], image.shape[0])
        return self._checked_features(self.engine.embed(image, boxes), len(boxes))

    def find_people(
        self, images: list[np.ndarray], detections: Sequence[np.ndarray] | None = None
    ) -> list[People]:
        """Every person in each image: detected (or the given ``detections``, e.g. ground truth
        or another detector's boxes), clipped, described."""
        found = (
            self.detect(images)
            if detections is None
            else [np.asarray(d, np.float32).reshape(-1, 5) for d in detections]
        )
        return [
            People(dets[:, :4].copy(), dets[:, 4].copy(), self.describe(image, dets[:, :4]))
            for image, dets in zip(images, found, strict=True)
        ]

    def query_person(
        self, image: np.ndarray, box: Sequence[float] | None = None, name: str = "query image"
    ) -> tuple[np.ndarray, np.ndarray]:
        """(box, feature) of the query person: ``box`` if given, else ``choose_query_box`` over
        the people detected in ``image``."""
        if box is not None:
            given = np.asarray(box, dtype=np.float32).reshape(-1)
            if given.shape != (4,):
                raise ValueError(f"{name}: a query box is 4 numbers x1,y1,x2,y2, got {list(box)}")
            chosen = clip_or_refuse(given, image.shape[1], image.shape[0], what=f"{name}: query box")[0]
        else:
            (dets,) = self.detect([image])
            chosen = choose_query_box(image.shape[0], image.shape[1], dets, name)
        return chosen, self.describe(image, chosen[None])[0]

    @staticmethod
    def is_whole_image(box: Sequence[float], image: np.ndarray) -> bool:
        """Whether ``box`` is all of ``image`` (a query taken as a crop)."""
        return [float(v) for v in box] == [0.0, 0.0, float(image.shape[1]), float(image.shape[0])]

    def _checked_detections(self, detections: list[np.ndarray], num_images: int) -> list[np.ndarray]:
        if len(detections) != num_images:
            raise ValueError(
                f"engine {self.model_id!r}: detect returned {len(detections)} results for {num_images} images"
            )
        checked = []
        for dets in detections:
            dets = np.asarray(dets, dtype=np.float32)
            dets = dets.reshape(0, 5) if dets.size == 0 else dets
            if dets.ndim != 2 or dets.shape[1] != 5:
                raise ValueError(
                    f"engine {self.model_id!r}: detect must return (n, 5) arrays, got shape {dets.shape}"
                )
            if not np.isfinite(dets).all():
                raise ValueError(f"engine {self.model_id!r}: detect returned non-finite values")
            checked.append(dets)
        return checked

    def _checked_features(self, features: np.ndarray, num_boxes: int) -> np.ndarray:
        """(n, D) finite rows of unit length, returned as exact float32 unit vectors (so stored
        inner products are cosines)."""
        features = np.asarray(features, dtype=np.float32)
        if features.shape != (num_boxes, self.feature_dim):
            raise ValueError(
                f"engine {self.model_id!r}: embed returned shape {features.shape} for {num_boxes} boxes, "
                f"expected ({num_boxes}, {self.feature_dim})"
            )
        if not np.isfinite(features).all():
            raise ValueError(f"engine {self.model_id!r}: embed returned non-finite values")
        norms = np.linalg.norm(features, axis=1, keepdims=True)
        if num_boxes and np.abs(norms - 1.0).max() > NORM_TOLERANCE:
            raise ValueError(
                f"engine {self.model_id!r}: embed must return L2-normalised features "
                f"(norms {norms.min():.4f}..{norms.max():.4f})"
            )
        return np.ascontiguousarray(features / np.maximum(norms, 1e-12))
