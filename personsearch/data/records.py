"""One record type for every person-search dataset (CUHK-SYSU, PRW, synthetic).

Loaders turn each benchmark's on-disk format into these records; training, evaluation and
statistics only ever see records, so they work unchanged on every dataset.

Conventions (all loaders follow them):
* boxes are ``float32`` arrays of shape (n, 4) in ``[x1, y1, x2, y2]`` pixel coordinates, already
  converted from the files' ``[x, y, w, h]`` with the benchmark's own rounding rules;
* ``pids`` are ``int64``; an unlabelled person (CUHK-SYSU 5555, PRW -2) is ``UNLABELED``;
* ``cam`` is the camera id (PRW: 1..6 from the file name; CUHK-SYSU has no cameras: 0).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

UNLABELED: int = -1
"""pid of a person that is annotated for detection but has no identity."""

HEIGHT_BUCKETS: tuple[tuple[str, float, float], ...] = (
    ("<60", 0.0, 60.0),
    ("60-120", 60.0, 120.0),
    ("120-240", 120.0, 240.0),
    (">=240", 240.0, float("inf")),
)
"""Person-height buckets in pixels (docs/specs/clsa.md section 3): name, inclusive low, exclusive high."""


def height_bucket(height: float, buckets: tuple[tuple[str, float, float], ...] = HEIGHT_BUCKETS) -> str:
    """Name of the bucket that a box of this pixel height falls in."""
    for name, low, high in buckets:
        if low <= height < high:
            return name
    raise ValueError(f"height {height} is in no bucket of {buckets}")


def box_heights(boxes: np.ndarray) -> np.ndarray:
    """Heights (y2 - y1) of an (n, 4) xyxy box array."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return boxes[:, 3] - boxes[:, 1]


@dataclass
class Scene:
    """One scene image with every annotated person in it."""

    name: str
    """Image file name as the benchmark lists it (e.g. ``s15535.jpg``, ``c1s3_016471.jpg``)."""
    path: Path
    """Absolute path of the image file."""
    boxes: np.ndarray
    """(n, 4) float32 xyxy."""
    pids: np.ndarray
    """(n,) int64; ``UNLABELED`` for people without identity."""
    cam: int = 0
    hard: np.ndarray | None = None
    """(n,) bool flags from the annotation (CUHK-SYSU ``ishard``), when present."""

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        self.pids = np.asarray(self.pids, dtype=np.int64).reshape(-1)
        if len(self.boxes) != len(self.pids):
            raise ValueError(f"{self.name}: {len(self.boxes)} boxes but {len(self.pids)} pids")
        if self.hard is not None:
            self.hard = np.asarray(self.hard, dtype=bool).reshape(-1)


@dataclass
class GalleryItem:
    """One entry of a CUHK-SYSU style protocol gallery: an image and, if the target is in it,
    the target's box (xyxy float32), else ``None``."""

    name: str
    box: np.ndarray | None


@dataclass
class Query:
    """One probe person: a box in a scene image."""

    name: str
    path: Path
    box: np.ndarray
    """(4,) float32 xyxy."""
    pid: int
    cam: int = 0
    galleries: dict[int, list[GalleryItem]] = field(default_factory=dict)
    """CUHK-SYSU protocol galleries by gallery size (50, 100, ...). Empty for PRW, whose gallery
    is every test frame but the query's own."""

    def __post_init__(self) -> None:
        self.box = np.asarray(self.box, dtype=np.float32).reshape(4)


@dataclass
class PersonSearchDataset:
    """A whole benchmark: training scenes, the test gallery, the queries and their protocol."""

    name: str
    root: Path
    protocol: str
    """``"cuhk"`` (per-query protocol galleries) or ``"prw"`` (gallery = all test frames)."""
    train: list[Scene]
    gallery: list[Scene]
    """Test scenes in the benchmark's order (CUHK-SYSU: ``pool.mat``; PRW: ``frame_test.mat``)."""
    queries: list[Query]
    subsets: dict[str, list[Query]] = field(default_factory=dict)
    """Extra CUHK-SYSU query sets with their own 100-image galleries (``Occlusion``, ``Resolution``)."""

    @property
    def gallery_sizes(self) -> list[int]:
        """Gallery sizes available for every query (CUHK protocol), ascending."""
        if not self.queries or not self.queries[0].galleries:
            return []
        return sorted(set.intersection(*(set(q.galleries) for q in self.queries)))

    def gallery_index(self) -> dict[str, int]:
        """Map from gallery image name to its position in ``gallery``."""
        return {scene.name: i for i, scene in enumerate(self.gallery)}
