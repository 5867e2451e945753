"""Linking a video's detections over time into tracks: who is the same person from frame to frame.

Indexing stores every detected person with its box, time and re-id feature. Once a video is
indexed to its end, its people are tracked in one pass over those stored rows (``track``), and
each track becomes a *sighting*: one appearance of one person, searchable as a unit (store.py).
Tracking after the fact, from stored data only, makes sightings a pure function of the index:
a killed indexing run resumes to the very same sightings, and an index built by an older
version gains them without re-reading any video (``link_pending``).

The tracker is a small online one in the SORT/DeepSORT family: each track predicts its box at
the next sampled frame with a constant velocity, and detections are assigned to tracks by the
Hungarian algorithm (``scipy.optimize.linear_sum_assignment``) on a similarity that mixes box
overlap with the prediction and re-id cosine, gated by appearance, displacement and scale. Why
not a library: ByteTrack as packaged by ``supervision`` left it in 0.30; ``supervision`` 0.29
and Roboflow's ``trackers`` require the GUI build ``opencv-python`` (it clashes with our
``opencv-python-headless`` over the ``cv2`` module and needs libGL); ``norfair`` 2.3 pins
``numpy<2``; ``bytetracker`` pins torch 1.13; ``motpy``/``filterpy`` are unmaintained. ByteTrack's
distinctive step, a second pass over low-score boxes, also has nothing to work on here: the
index keeps only detections above the deployment threshold.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from personsearch.data.boxes import box_iou
from personsearch.index.store import IndexStore

NOMINAL_FPS = 25.0
"""Frame rate assumed for frames that carry no time (a container without a frame rate)."""


@dataclass(frozen=True)
class TrackerSettings:
    """How sure the tracker must be that two detections are one person."""

    max_gap_s: float = 2.0
    """A track not matched for longer than this ends (occlusion it can bridge)."""
    min_gap_frames: int = 2
    """...but never after fewer sampled frames than this (sparse sampling: 1 frame per 2 s)."""
    min_appearance: float = 0.5
    """Re-id cosine below which two detections are never linked."""
    iou_weight: float = 0.2
    """Similarity = iou_weight * IoU(predicted box, detection) + (1 - iou_weight) * cosine."""
    min_similarity: float = 0.55
    max_step_heights: float = 0.6
    """Allowed centre displacement from the predicted box, in box heights: this much..."""
    max_speed_heights: float = 1.5
    """...plus this much per second since the track was last seen."""
    max_scale_change: float = 1.6
    """Heights of linked detections differ by at most this factor."""
    min_iou_followed: float = 0.2
    """A track seen at the previous sampled frame continues only into a detection overlapping its
    predicted box this much: appearance decides between nearby people, never across the scene
    (re-id features trained on synthetic people tell real people in dark clothes apart poorly)."""
    followed_within_s: float = 0.5
    """...when sampled frames are at most this far apart (sparser sampling: motion gates only)."""
    strangers_quantile: float = 0.95
    """Linking across a gap (a track not seen at the previous frame, and stitching) also needs an
    appearance score above this quantile of the cosines between people seen in the same frame
    (who are different people for sure): the features' own level for "strangers" in this video.
    With features that tell these people apart poorly it rises and motion decides alone."""
    gallery: int = 30
    """Recent features a track keeps; a detection's appearance score is its best cosine to them
    (DeepSORT's rule: robust to the pose changing through a gait cycle)."""
    stitch_gap_s: float = 1.0
    """After tracking, a track that ends and one that starts at most this much later..."""
    stitch_appearance: float = 0.8
    """...are joined when their mean features agree this well and the motion fits: one person
    whose track broke while another person walked in front of them."""


@dataclass
class _Track:
    label: int
    box: np.ndarray
    time: float
    features: list[np.ndarray]
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4))
    seen: int = 1


def strangers_level(
    frames: np.ndarray, features: np.ndarray, quantile: float, max_pairs: int = 20_000
) -> float:
    """The ``quantile`` of re-id cosines between two people in the same frame (-1 with fewer
    than 20 such pairs): how alike different people look to these features in this video."""
    order = np.argsort(frames, kind="stable")
    _, starts, counts = np.unique(frames[order], return_index=True, return_counts=True)
    values: list[np.ndarray] = []
    total = 0
    for start, count in zip(starts, counts, strict=True):
        if count < 2 or total >= max_pairs:
            continue
        rows = order[start : start + count]
        cos = features[rows] @ features[rows].T
        pairs = cos[np.triu_indices(count, 1)]
        values.append(pairs)
        total += len(pairs)
    if total < 20:
        return -1.0
    return float(np.quantile(np.concatenate(values), quantile))


def _similarity(
    tracks: list[_Track],
    boxes: np.ndarray,
    features: np.ndarray,
    now: float,
    settings: TrackerSettings,
    followed: bool,
    strangers: float,
) -> np.ndarray:
    """(tracks, detections) similarity; -inf where the gates say "not the same person".
    ``followed``: the tracks were seen at the previous sampled frame (min_iou_followed applies)."""
    dt = np.array([now - t.time for t in tracks])
    predicted = np.stack([t.box + t.velocity * d for t, d in zip(tracks, dt, strict=True)])
    appearance = np.stack([(np.stack(t.features) @ features.T).max(axis=0) for t in tracks])
    overlap = box_iou(predicted, boxes)
    # appearance counts by how much more alike than strangers (see strangers_quantile) two people
    # look: with features that barely tell people apart, motion decides
    distinct = np.clip((appearance - max(strangers, 0.0)) / max(1.0 - max(strangers, 0.0), 1e-6), 0.0, 1.0)
    similarity = settings.iou_weight * overlap + (1 - settings.iou_weight) * distinct
    heights = predicted[:, 3] - predicted[:, 1]
    det_heights = boxes[:, 3] - boxes[:, 1]
    centre = (predicted[:, None, :2] + predicted[:, None, 2:]) / 2 - (
        boxes[None, :, :2] + boxes[None, :, 2:]
    ) / 2
    reach = heights[:, None] * (settings.max_step_heights + settings.max_speed_heights * dt[:, None])
    scale = np.maximum(heights[:, None], det_heights[None, :]) / np.maximum(
        np.minimum(heights[:, None], det_heights[None, :]), 1e-6
    )
    allowed = (
        (appearance >= settings.min_appearance)
        & (np.linalg.norm(centre, axis=2) <= reach)
        & (scale <= settings.max_scale_change)
    )
    if followed:
        allowed &= overlap >= settings.min_iou_followed
    else:
        allowed &= (appearance > strangers) & (similarity >= settings.min_similarity)
    return np.where(allowed, similarity, -np.inf)


def track(
    frames: np.ndarray,
    times: np.ndarray,
    boxes: np.ndarray,
    features: np.ndarray,
    settings: TrackerSettings = TrackerSettings(),
) -> np.ndarray:
    """Track label (0, 1, ... in order of first appearance) of every detection of one video.

    ``frames`` (n,) frame numbers, ``times`` (n,) seconds (NaN: frame / NOMINAL_FPS), ``boxes``
    (n, 4) xyxy, ``features`` (n, D) L2-normalised re-id features; in any order. Deterministic:
    detections are visited by frame, then by their position in the input.
    """
    frames = np.asarray(frames, dtype=np.int64).reshape(-1)
    n = len(frames)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(n, 4)
    features = np.asarray(features, dtype=np.float64).reshape(n, -1)
    times = np.asarray(times, dtype=np.float64).reshape(n)
    times = np.where(np.isnan(times), frames / NOMINAL_FPS, times)
    labels = np.full(n, -1, dtype=np.int64)
    order = np.argsort(frames, kind="stable")
    unique_frames, starts = np.unique(frames[order], return_index=True)
    step = float(np.median(np.diff(np.unique(times)))) if len(unique_frames) > 1 else 0.0
    max_gap = max(settings.max_gap_s, settings.min_gap_frames * step)
    strangers = strangers_level(frames, features, settings.strangers_quantile)
    active: list[_Track] = []
    next_label = 0
    for start, stop in zip(starts, [*starts[1:], n], strict=True):
        rows = order[start:stop]
        now = float(times[rows[0]])
        active = [t for t in active if now - t.time <= max_gap + 1e-9]
        matched: dict[int, int] = {}
        # matching cascade (DeepSORT): tracks seen at the previous sampled frame choose first, so
        # a track lost for a while cannot take the detection of one that is being followed
        recent = [i for i, t in enumerate(active) if now - t.time <= 1.5 * step + 1e-9]
        close = step <= settings.followed_within_s  # frames close enough in time for boxes to overlap
        for followed, group in (
            (close, recent),
            (False, [i for i in range(len(active)) if i not in set(recent)]),
        ):
            free = [di for di in range(len(rows)) if di not in matched]
            if not group or not free:
                continue
            similarity = _similarity(
                [active[i] for i in group],
                boxes[rows[free]],
                features[rows[free]],
                now,
                settings,
                followed,
                strangers,
            )
            cost = np.where(np.isfinite(similarity), -similarity, 1e6)
            for ti, di in zip(*linear_sum_assignment(cost), strict=True):
                if np.isfinite(similarity[ti, di]):
                    matched[free[int(di)]] = group[int(ti)]
        for di, row in enumerate(rows):
            if di in matched:
                t = active[matched[di]]
                dt = now - t.time
                if dt > 0:
                    velocity = (boxes[row] - t.box) / dt
                    t.velocity = velocity if t.seen == 1 else 0.5 * t.velocity + 0.5 * velocity
                t.features = [*t.features[-(settings.gallery - 1) :], features[row]]
                t.box, t.time, t.seen = boxes[row], now, t.seen + 1
                labels[row] = t.label
            else:
                active.append(_Track(next_label, boxes[row], now, [features[row]]))
                labels[row] = next_label
                next_label += 1
    return _stitch(labels, times, boxes, features, settings, max(settings.stitch_appearance, strangers))


def _stitch(
    labels: np.ndarray,
    times: np.ndarray,
    boxes: np.ndarray,
    features: np.ndarray,
    settings: TrackerSettings,
    min_appearance: float,
) -> np.ndarray:
    """Join tracks that are one person's track broken in two (see ``stitch_gap_s``), greedily,
    best appearance first; relabel in order of first appearance."""
    count = int(labels.max()) + 1 if len(labels) else 0
    members = [np.flatnonzero(labels == k) for k in range(count)]
    firsts = [m[np.argmin(times[m])] for m in members]
    lasts = [m[np.argmax(times[m])] for m in members]
    means = (
        np.stack([aggregate_feature(features[m]) for m in members])
        if count
        else np.zeros((0, features.shape[1]))
    )
    cosine = means @ means.T
    candidates = []
    gaps = (
        times[np.asarray(firsts, dtype=np.int64)][None, :] - times[np.asarray(lasts, dtype=np.int64)][:, None]
        if count
        else np.zeros((0, 0))
    )
    for a, b in zip(
        *np.nonzero((gaps > 0) & (gaps <= settings.stitch_gap_s) & (cosine >= min_appearance)), strict=True
    ):
        end, start = boxes[lasts[a]], boxes[firsts[b]]
        height = max(end[3] - end[1], 1e-6)
        reach = height * (settings.max_step_heights + settings.max_speed_heights * gaps[a, b])
        centre = np.linalg.norm((end[:2] + end[2:]) / 2 - (start[:2] + start[2:]) / 2)
        scale = max(height, start[3] - start[1]) / max(min(height, start[3] - start[1]), 1e-6)
        if centre <= reach and scale <= settings.max_scale_change:
            candidates.append((-cosine[a, b], int(a), int(b)))
    parent = list(range(count))

    def root(k: int) -> int:
        while parent[k] != k:
            k = parent[k]
        return k

    spans = {k: (times[firsts[k]], times[lasts[k]]) for k in range(count)}
    has_next, has_prev = set(), set()
    for _, a, b in sorted(candidates):
        ra, rb = root(a), root(b)
        if a in has_next or b in has_prev or ra == rb:
            continue
        # the joined chains must not be seen at the same time
        if not (spans[ra][1] < spans[rb][0] or spans[rb][1] < spans[ra][0]):
            continue
        parent[rb] = ra
        spans[ra] = (min(spans[ra][0], spans[rb][0]), max(spans[ra][1], spans[rb][1]))
        has_next.add(a)
        has_prev.add(b)
    roots = np.array([root(k) for k in range(count)], dtype=np.int64)
    joined = roots[labels] if count else labels
    _, first_seen = np.unique(joined, return_index=True)
    relabel = {int(joined[i]): new for new, i in enumerate(sorted(first_seen, key=lambda i: (times[i], i)))}
    return np.array([relabel[int(k)] for k in joined], dtype=np.int64)


@dataclass(frozen=True)
class Sighting:
    """One track, as stored: its boxes (ids), time span and representative box."""

    box_ids: tuple[int, ...]
    first_frame: int
    last_frame: int
    start_time: float | None
    end_time: float | None
    best_box: int
    """The box whose feature is closest to the track's mean feature (its thumbnail stands for it)."""


def sightings_of(
    box_ids: np.ndarray,
    frames: np.ndarray,
    times: np.ndarray,
    boxes: np.ndarray,
    features: np.ndarray,
    settings: TrackerSettings = TrackerSettings(),
) -> list[Sighting]:
    """Track one video's stored boxes and describe each track, in order of first appearance."""
    labels = track(frames, times, boxes, features, settings)
    out = []
    for label in range(int(labels.max()) + 1 if len(labels) else 0):
        members = np.flatnonzero(labels == label)
        members = members[np.lexsort((box_ids[members], frames[members]))]
        mean = aggregate_feature(features[members])
        best = members[int(np.argmax(features[members] @ mean))]
        span = times[members]
        out.append(
            Sighting(
                tuple(int(i) for i in box_ids[members]),
                int(frames[members].min()),
                int(frames[members].max()),
                None if np.isnan(span).all() else float(np.nanmin(span)),
                None if np.isnan(span).all() else float(np.nanmax(span)),
                int(box_ids[best]),
            )
        )
    return out


def aggregate_feature(features: np.ndarray) -> np.ndarray:
    """A sighting's feature: the normalised mean of its normalised per-frame features."""
    features = np.asarray(features, dtype=np.float32).reshape(len(features), -1)
    mean: np.ndarray = features.mean(axis=0)
    return mean / max(float(np.linalg.norm(mean)), 1e-12)


def link_pending(store: IndexStore, settings: TrackerSettings = TrackerSettings()) -> int:
    """Track every video indexed to its end but not yet tracked, and store its sightings (one
    transaction per video). Returns how many videos were tracked. Safe to call from any process
    at any time: a video tracked meanwhile by another is left alone, and the result depends only
    on the committed boxes, so repeating it after a crash gives the same sightings."""
    done = 0
    for source_id in store.videos_to_track():
        ids, frames, times, boxes = store.video_boxes(source_id)
        features = (
            np.asarray(store.vectors()[ids]) if len(ids) else np.zeros((0, store.feature_dim), np.float32)
        )
        done += store.write_sightings(source_id, sightings_of(ids, frames, times, boxes, features, settings))
    return done
