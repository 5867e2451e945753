"""Shared pieces for the index, sources and report tests: a small honest engine and synthetic scenes.

People are two-coloured rectangles (top colour, bottom colour) on a black background. The engine
detects every connected blob of bright pixels and embeds it as the L2-normalised concatenation of
per-channel 4-bin histograms, so similarities between people can be computed by hand.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

RED, GREEN, BLUE, YELLOW = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)
BINS = 4


class SimulatedKill(RuntimeError):
    """Raised by the engine to stop an indexing run half-way, as a crash would."""


class ColourEngine:
    """Detector: bright connected blobs; re-id: colour histogram. Deterministic and exact on PNGs."""

    feature_dim = 3 * BINS

    def __init__(self, model_id: str = "colour-histogram-v1", kill_on_detect_call: int | None = None) -> None:
        self.model_id = model_id
        self.kill_on_detect_call = kill_on_detect_call
        self.detect_calls = 0
        self.images_detected = 0

    def detect(self, images: list[np.ndarray]) -> list[np.ndarray]:
        self.detect_calls += 1
        if self.kill_on_detect_call is not None and self.detect_calls >= self.kill_on_detect_call:
            raise SimulatedKill(f"killed at detect call {self.detect_calls}")
        self.images_detected += len(images)
        out = []
        for image in images:
            mask = (image.max(axis=2) > 60).astype(np.uint8)
            count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=4)
            boxes = [[x, y, x + w, y + h, 0.9] for x, y, w, h, area in stats[1:count] if area >= 30]
            out.append(np.array(boxes, dtype=np.float32).reshape(-1, 5))
        return out

    def embed(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        features = []
        for x1, y1, x2, y2 in np.asarray(boxes).reshape(-1, 4):
            crop = (
                image[int(y1) : int(np.ceil(y2)), int(x1) : int(np.ceil(x2))].reshape(-1, 3).astype(np.int64)
            )
            hist = np.concatenate(
                [np.bincount(crop[:, c] * BINS // 256, minlength=BINS) for c in range(3)]
            ).astype(np.float32)
            features.append(hist / np.linalg.norm(hist))
        return np.array(features, dtype=np.float32).reshape(-1, self.feature_dim)


def colour_feature(top: tuple[int, int, int], bottom: tuple[int, int, int]) -> np.ndarray:
    """The engine's feature of a person whose top and bottom halves are equally tall."""
    hist = np.zeros(3 * BINS, dtype=np.float32)
    for colour in (top, bottom):
        for c, value in enumerate(colour):
            hist[c * BINS + value * BINS // 256] += 0.5
    return hist / np.linalg.norm(hist)


def draw_scene(
    people: list[tuple[int, int, tuple[int, int, int], tuple[int, int, int]]],
    size: tuple[int, int] = (120, 160),
) -> np.ndarray:
    """A black HxW scene with 20x40 two-colour people at (x, y) top-left corners."""
    image = np.zeros((*size, 3), dtype=np.uint8)
    for x, y, top, bottom in people:
        image[y : y + 20, x : x + 20] = top
        image[y + 20 : y + 40, x : x + 20] = bottom
    return image


def write_png(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return path


def write_video(
    path: Path,
    frames: int,
    fps: float = 10.0,
    colours: tuple[tuple[int, int, int], tuple[int, int, int]] = (RED, BLUE),
) -> Path:
    """An MJPG .avi with one two-colour person (default red over blue) moving 4 px right per frame."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (160, 120))
    assert writer.isOpened()
    for i in range(frames):
        rgb = draw_scene([(10 + 4 * i, 40, *colours)])
        writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def write_walkers(
    path: Path,
    walkers: list[tuple[tuple[int, int, int], tuple[int, int, int], int, int, float, float, float, float]],
    frames: int,
    fps: float = 10.0,
) -> Path:
    """An MJPG .avi (160x120) of several two-colour people, each ``(top, bottom, first frame, last
    frame, x, y, dx, dy)``: visible from its first to its last frame, at (x + dx*t, y + dy*t) in
    frame ``first + t``. Their paths may cross; the later one in the list is drawn on top."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (160, 120))
    assert writer.isOpened()
    for i in range(frames):
        people = [
            (round(x + dx * (i - first)), round(y + dy * (i - first)), top, bottom)
            for top, bottom, first, last, x, y, dx, dy in walkers
            if first <= i <= last
        ]
        writer.write(cv2.cvtColor(draw_scene(people), cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def index_content(directory: Path) -> list[tuple]:
    """Order-independent content of an index: (source, frame, time, box, score, vector, sighting
    span [first frame, last frame, boxes] or Nones) per box."""
    conn = sqlite3.connect(str(directory / "index.sqlite"))
    rows = conn.execute(
        "SELECT b.id, s.path, b.frame, b.time, b.x1, b.y1, b.x2, b.y2, b.score, g.first_frame, "
        "g.last_frame, g.boxes FROM boxes b JOIN sources s ON s.id = b.source_id LEFT JOIN sightings g "
        "ON g.id = b.sighting"
    ).fetchall()
    dim = int(conn.execute("SELECT value FROM meta WHERE key = 'feature_dim'").fetchone()[0])
    conn.close()
    vectors = np.fromfile(directory / "vectors.f32", dtype=np.float32).reshape(-1, dim)
    return sorted(
        (path, frame, time, (x1, y1, x2, y2), score, tuple(vectors[i].tolist()), tuple(sighting))
        for i, path, frame, time, x1, y1, x2, y2, score, *sighting in rows
    )
