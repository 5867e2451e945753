"""Short videos of synthetic people walking past fixed cameras, with ground truth.

The still benchmark draws every appearance independently; video search needs the same person
in consecutive frames: a walking phase that advances with the distance covered, a size that
follows the ground plane, people who cross, leave and come back. ``make_walks`` draws one
video per camera of the same cast (so a person seen by one camera can be searched for in
another) and writes, beside each video, ``<name>.json``: per frame, every visible person's id
and box. Tracking and sighting search are tested and measured on these (tests/test_tracking.py,
benchmarks/sightings.py).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from personsearch.data.synthetic.cameras import Camera, make_cameras
from personsearch.data.synthetic.figures import figure
from personsearch.data.synthetic.identities import Identity, Pose, sample_population
from personsearch.data.synthetic.scenes import PersonPlacement, ScenePlan, render_scene

STRIDE_LENGTH = 0.45
"""Distance walked per half gait cycle, in body heights (the legs pass each other once)."""


@dataclass(frozen=True)
class Walk:
    """One appearance: ``pid`` crosses the view from ``start`` to ``end`` ((box centre x, foot row)
    in pixels) between two frames."""

    pid: int
    first_frame: int
    last_frame: int
    start: tuple[float, float]
    end: tuple[float, float]
    stature: float

    def at(self, frame: int) -> tuple[float, float]:
        t = (frame - self.first_frame) / max(self.last_frame - self.first_frame, 1)
        return (
            self.start[0] + t * (self.end[0] - self.start[0]),
            self.start[1] + t * (self.end[1] - self.start[1]),
        )


def plan_walks(
    rng: np.random.Generator,
    camera: Camera,
    people: int,
    frames: int,
    width: int,
    height: int,
    returns: int = 1,
) -> list[Walk]:
    """Each person crosses once, entering at a random time from either side along its own
    ground-plane line; the first ``returns`` people come back for a second crossing after a pause."""
    walks: list[Walk] = []
    bottom = height - 2.0
    top_row = camera.horizon + 0.35 * (bottom - camera.horizon)  # people no smaller than ~35 % of the tallest
    for pid in range(people + returns):
        person = pid % people
        duration = int(rng.integers(frames // 3, frames // 2))
        rows = rng.uniform(top_row, bottom, size=2)
        leftwards = bool(rng.random() < 0.5)
        stature = float(rng.uniform(0.92, 1.08))
        if pid >= people:  # a return: after a pause, never overlapping the first crossing
            first = walks[person].last_frame + int(rng.integers(frames // 10, frames // 6))
            if first > frames - frames // 6:
                continue  # no time left in the video for it
            stature = walks[person].stature
        else:
            first = int(rng.integers(0, max(1, frames // 2 - duration // 2)))
        xs = (width * 1.02, width * -0.02) if leftwards else (width * -0.02, width * 1.02)
        walks.append(
            Walk(
                person,
                first,
                min(first + duration, frames - 1),
                (xs[0], float(rows[0])),
                (xs[1], float(rows[1])),
                stature,
            )
        )
    return walks


def _placement(
    identity: Identity, walk: Walk, camera: Camera, frame: int, pid: int
) -> PersonPlacement | None:
    x, foot = walk.at(frame)
    height_px = int(round((foot - camera.horizon) * camera.scale * walk.stature))
    if height_px < 8:
        return None
    moving_left = walk.end[0] < walk.start[0]
    # the gait phase advances with the distance walked, in body heights
    walked = abs(x - walk.start[0]) / max(height_px, 1)
    stride = math.sin(math.pi * walked / STRIDE_LENGTH)
    pose = Pose(
        view="left" if moving_left else "right", stride=stride, arm_swing=-0.8 * stride, raised_arm="none"
    )
    width = figure(identity, pose).box_width(height_px)
    return PersonPlacement(
        identity, pose, pid, int(round(x - width / 2)), int(round(foot)) - height_px, width, height_px, 1.0
    )


def render_walks(
    path: Path,
    identities: list[Identity],
    walks: list[Walk],
    camera: Camera,
    frames: int,
    fps: float,
    width: int,
    height: int,
    seed: int,
) -> dict[str, Any]:
    """Draw the video (MJPG .avi) and return its ground truth (per frame: pid and box of every
    person whose box is at least half inside the image)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (width, height))
    if not writer.isOpened():
        raise OSError(f"cannot write a video at {path}")
    truth: list[list[dict[str, Any]]] = []
    try:
        for frame in range(frames):
            people = [
                p
                for w in walks
                if w.first_frame <= frame <= w.last_frame
                if (p := _placement(identities[w.pid], w, camera, frame, w.pid)) is not None
            ]
            people.sort(key=lambda p: p.foot)  # nearer people drawn last
            plan = ScenePlan(camera, 0, tuple(people), (), 1.0, seed * 100_003 + frame, width, height)
            writer.write(cv2.cvtColor(render_scene(plan), cv2.COLOR_RGB2BGR))
            visible = []
            for p in people:
                x1, y1, x2, y2 = p.box
                inside = max(0, min(x2, width) - max(x1, 0)) / max(x2 - x1, 1)
                if inside >= 0.5:
                    visible.append(
                        {"pid": p.pid, "box": [max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)]}
                    )
            truth.append(visible)
    finally:
        writer.release()
    return {
        "fps": fps,
        "width": width,
        "height": height,
        "frames": truth,
        "walks": [w.__dict__ for w in walks],
    }


def make_walks(
    root: str | Path,
    *,
    seed: int = 0,
    cameras: int = 2,
    people: int = 4,
    frames: int = 80,
    fps: float = 10.0,
    width: int = 480,
    height: int = 320,
    max_person: int = 200,
    look_alikes: tuple[int, int] = (1, 1),
) -> list[Path]:
    """One video per camera (``root/cam<k>/walk.avi`` and ``walk.json``) of the same ``people``,
    identities drawn like the benchmark's test identities for ``seed``; returns the video paths.

    ``look_alikes``: the sizes of look-alike families (people of one coarse look who differ in
    fine detail only); distinct people by default, since tracking, not fine detail, is what most
    uses of these videos measure."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5A1C]))
    identities = sample_population(rng, people, look_alikes)
    videos = []
    for cam in make_cameras(rng, cameras, width, height, max_person):
        walks = plan_walks(rng, cam, people, frames, width, height)
        out = Path(root) / f"cam{cam.cam}" / "walk.avi"
        out.parent.mkdir(parents=True, exist_ok=True)
        truth = render_walks(out, identities, walks, cam, frames, fps, width, height, seed * 31 + cam.cam)
        out.with_suffix(".json").write_text(json.dumps(truth))
        videos.append(out)
    return videos


def split_walks(
    videos: list[Path], at: int, earlier_root: str | Path, later_root: str | Path
) -> tuple[list[Path], list[Path]]:
    """Cut each ``make_walks`` video and its ground truth at frame ``at``: frames before it go to
    ``earlier_root/<camera>/walk.avi``, the rest to ``later_root``, with the walks clipped to each
    part (a walk crossing the cut becomes one appearance in each). Lets footage be learned from
    and scored on the same cameras and people, the scored part later than the learned one."""
    earlier: list[Path] = []
    later: list[Path] = []
    for video in videos:
        video = Path(video)
        truth = json.loads(video.with_suffix(".json").read_text())
        if not 0 < at < len(truth["frames"]):
            raise ValueError(f"{video}: cannot cut {len(truth['frames'])} frames at frame {at}")
        parts = []
        for root, first, stop in ((earlier_root, 0, at), (later_root, at, len(truth["frames"]))):
            walks = [
                {
                    **w,
                    "first_frame": max(w["first_frame"], first) - first,
                    "last_frame": min(w["last_frame"], stop - 1) - first,
                }
                for w in truth["walks"]
                if w["first_frame"] < stop and w["last_frame"] >= first
            ]
            out = Path(root) / video.parent.name / video.name
            out.parent.mkdir(parents=True, exist_ok=True)
            out.with_suffix(".json").write_text(
                json.dumps({**truth, "frames": truth["frames"][first:stop], "walks": walks})
            )
            writer = cv2.VideoWriter(
                str(out), cv2.VideoWriter.fourcc(*"MJPG"), truth["fps"], (truth["width"], truth["height"])
            )
            if not writer.isOpened():
                raise OSError(f"cannot write a video at {out}")
            parts.append((writer, out))
        capture = cv2.VideoCapture(str(video))
        try:
            frame = 0
            while True:
                ok, bgr = capture.read()
                if not ok:
                    break
                parts[0 if frame < at else 1][0].write(bgr)
                frame += 1
        finally:
            capture.release()
            for writer, _ in parts:
                writer.release()
        if frame != len(truth["frames"]):
            raise ValueError(f"{video}: {frame} frames, its ground truth has {len(truth['frames'])}")
        earlier.append(parts[0][1])
        later.append(parts[1][1])
    return earlier, later


def appearance_crops(
    videos: list[Path], size: tuple[int, int], per_appearance: int = 16, min_height: int = 24
) -> tuple[torch.Tensor, np.ndarray, list[tuple[str, int]]]:
    """Ground-truth crops of every appearance (one person crossing one camera) of ``make_walks``
    videos, for scoring re-id: uint8 crops (n, 3, H, W), the appearance index of each crop, and
    (camera folder, person) per appearance. Up to ``per_appearance`` frames spread over each, boxes
    at least ``min_height`` px tall and at least half inside the image."""
    from personsearch.data.crops import crop_boxes

    crops, owners, keys = [], [], []
    for video in videos:
        truth = json.loads(Path(video).with_suffix(".json").read_text())
        capture = cv2.VideoCapture(str(video))
        frames = []
        while True:
            ok, bgr = capture.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        capture.release()
        for w in truth["walks"]:
            shown = [
                (f, p["box"])
                for f in range(w["first_frame"], w["last_frame"] + 1)
                for p in truth["frames"][f]
                if p["pid"] == w["pid"]
            ]
            shown = [(f, b) for f, b in shown if b[3] - b[1] >= min_height]
            if len(shown) < 4:
                continue
            keys.append((Path(video).parent.name, int(w["pid"])))
            for k in np.linspace(0, len(shown) - 1, min(per_appearance, len(shown))).round().astype(int):
                f, box = shown[k]
                crops.append(crop_boxes(frames[f], np.asarray([box], np.float32), size))
                owners.append(len(keys) - 1)
    if not crops:
        return torch.zeros((0, 3, *size), dtype=torch.uint8), np.zeros(0, dtype=np.int64), keys
    return torch.cat(crops), np.asarray(owners, dtype=np.int64), keys
