"""Teaching the detector real people from unlabelled footage, with pseudo-labels.

The project's Faster R-CNN learned people from synthetic figures only. Real footage has no box
labels, but two off-the-shelf pedestrian detectors that fail in different ways (SSDLite, a CNN
trained on COCO; HOG + linear SVM, a hand-made feature trained on INRIA Person) rarely make the
*same* mistake in the same place, and a real person persists over time while most false boxes
flicker. So, on frames sampled at ``fps``:

1. **tracks**: SSDLite's confident boxes (score >= ``ssd_score``, at least ``min_height`` px) are
   linked frame to frame, one to one at IoU >= ``link_iou`` (Hungarian);
2. **agreement**: a box is agreed on when a HOG box matches it one to one at IoU >= ``agree_iou``;
3. a track of at least ``min_track`` boxes, at least ``min_agreement`` of them agreed on, is a
   person: all its boxes become pseudo-labels (the SSDLite box, the tighter one), including those
   HOG missed in a frame (the hard positives).

A confident SSDLite box that is not confirmed may be a person the rules could not vouch for;
training on the frame as it is would teach the network that it is background. So it is painted
over with the frame's mean colour before the frame is written (neither person nor background,
the way ignore regions are handled in pedestrian benchmarks). People both detectors miss remain
unlabelled: that is what the synthetic scenes, mixed in one to one, make up for.

The bundle's detector is then fine-tuned from its own weights (``adapt_detector``); the result is
a model bundle with the starting bundle's re-id network and a model card naming the footage.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from personsearch.data import load_dataset
from personsearch.data.boxes import box_iou
from personsearch.data.images import encode_jpeg
from personsearch.data.records import UNLABELED, Scene
from personsearch.index.sources import Sampling, discover, iter_frames, video_info
from personsearch.models.bundle import load_component, read_component
from personsearch.models.external_detectors import build_external_detector
from personsearch.training.config import DataConfig, DetectorTrainConfig, OptimConfig, to_dict
from personsearch.training.detector import train_detector


@dataclass(frozen=True)
class PseudoLabelConfig:
    """How boxes of unlabelled footage become training labels (module docstring)."""

    fps: float = 5.0
    """Frames sampled per second of video."""
    ssd_score: float = 0.5
    min_height: float = 24.0
    link_iou: float = 0.3
    agree_iou: float = 0.5
    min_track: int = 4
    min_agreement: float = 0.5
    until_s: float | None = None
    """Learn only from each video's first seconds (the rest kept apart for evaluation)."""


@dataclass(frozen=True)
class AdaptDetectorConfig:
    """The fine-tuning: synthetic scenes mixed one to one with the pseudo-labelled frames."""

    labels: PseudoLabelConfig = field(default_factory=PseudoLabelConfig)
    epochs: int = 2
    """Passes over the mixed set (pseudo-labelled frames + as many synthetic scenes)."""
    optim: OptimConfig = field(
        default_factory=lambda: OptimConfig(lr=0.002, backbone_lr=0.002, weight_decay=1e-4, warmup_steps=20)
    )
    batch_size: int = 2
    seed: int = 0


def match_boxes(a: np.ndarray, b: np.ndarray, min_iou: float) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``a`` and ``b`` (n, >= 4) paired one to one by the largest total IoU (Hungarian),
    pairs below ``min_iou`` dropped."""
    if not (len(a) and len(b)):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    iou = box_iou(a[:, :4], b[:, :4])
    rows, cols = linear_sum_assignment(iou, maximize=True)
    good = iou[rows, cols] >= min_iou
    return rows[good], cols[good]


def agreed(ssd: np.ndarray, hog: np.ndarray, min_iou: float) -> np.ndarray:
    """Which rows of ``ssd`` (n, >= 4) a box of ``hog`` matches one to one at IoU >= ``min_iou``."""
    keep = np.zeros(len(ssd), dtype=bool)
    keep[match_boxes(ssd, hog, min_iou)[0]] = True
    return keep


def link_tracks(frames: Sequence[np.ndarray], min_iou: float) -> list[np.ndarray]:
    """Track ids of the boxes of each frame (consecutive sampled frames), linked one to one
    between neighbouring frames at IoU >= ``min_iou``."""
    track_of: list[np.ndarray] = []
    next_id = 0
    for k, boxes in enumerate(frames):
        ids = np.full(len(boxes), -1, dtype=np.int64)
        if k:
            rows, cols = match_boxes(boxes, frames[k - 1], min_iou)
            ids[rows] = track_of[k - 1][cols]
        fresh = ids < 0
        ids[fresh] = np.arange(next_id, next_id + int(fresh.sum()))
        next_id += int(fresh.sum())
        track_of.append(ids)
    return track_of


def confirmed(
    tracks: Sequence[np.ndarray], agreement: Sequence[np.ndarray], min_track: int, min_agreement: float
) -> list[np.ndarray]:
    """Per frame, which boxes belong to a track of at least ``min_track`` boxes of which at least
    ``min_agreement`` (a fraction) are agreed on."""
    ids = np.concatenate([np.zeros(0, np.int64), *tracks])
    if not len(ids):
        return [np.zeros(len(t), dtype=bool) for t in tracks]
    length = np.bincount(ids)
    agreed_count = np.bincount(
        ids, weights=np.concatenate([np.zeros(0), *agreement]).astype(float), minlength=len(length)
    )
    good = (length >= min_track) & (agreed_count >= min_agreement * length)
    return [good[t] for t in tracks]


def mask_boxes(image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """``image`` with ``boxes`` painted over in its mean colour (regions neither person nor background)."""
    out = image.copy()
    fill = image.reshape(-1, 3).mean(axis=0).astype(image.dtype)
    height, width = image.shape[:2]
    for x1, y1, x2, y2 in np.round(boxes[:, :4]).astype(int):
        out[max(0, y1) : min(height, y2), max(0, x1) : min(width, x2)] = fill
    return out


def _scene(path: Path, boxes: np.ndarray) -> Scene:
    """A pseudo-labelled frame as a training scene: its boxes, identities unlabelled."""
    return Scene(
        path.name, path.resolve(), boxes.astype(np.float32), np.full(len(boxes), UNLABELED, dtype=np.int64)
    )


def pseudo_label_video(
    path: str | Path, out_dir: str | Path, config: PseudoLabelConfig = PseudoLabelConfig()
) -> tuple[list[Scene], dict[str, Any]]:
    """Pseudo-label one video: the frames with a confirmed person, unconfirmed detections painted
    over, as JPEG files in ``out_dir`` and as ``Scene`` records (identities unlabelled), with
    counts of what was kept."""
    path, out_dir = Path(path), Path(out_dir)
    sources, skipped = discover([path])
    if not sources or sources[0].kind != "video":
        raise ValueError(
            f"{path}: not a readable video ({skipped[0].reason if skipped else 'not a video file'})"
        )
    ssd_detector, hog_detector = build_external_detector("ssdlite"), build_external_detector("hog")
    stop = None if config.until_s is None else max(1, round(config.until_s * video_info(path).fps))
    boxes, agreement, frame_numbers = [], [], []
    for frame in iter_frames(sources[0], sampling=Sampling(fps=config.fps), stop_frame=stop):
        ssd = ssd_detector.detect([frame.image])[0]
        ssd = ssd[(ssd[:, 4] >= config.ssd_score) & (ssd[:, 3] - ssd[:, 1] >= config.min_height)]
        boxes.append(ssd[:, :4])
        agreement.append(agreed(ssd, hog_detector.detect([frame.image])[0], config.agree_iou))
        frame_numbers.append(frame.frame)
    people = confirmed(link_tracks(boxes, config.link_iou), agreement, config.min_track, config.min_agreement)
    keep = {n: (b[p], b[~p]) for n, b, p in zip(frame_numbers, boxes, people, strict=True) if p.any()}
    out_dir.mkdir(parents=True, exist_ok=True)
    scenes: list[Scene] = []
    # again: frames are not held in memory
    for frame in iter_frames(sources[0], sampling=Sampling(fps=config.fps), stop_frame=stop):
        if frame.frame not in keep:
            continue
        labels, unsure = keep[frame.frame]
        name = f"{path.stem}_{frame.frame:06d}.jpg"
        (out_dir / name).write_bytes(encode_jpeg(mask_boxes(frame.image, unsure), quality=95))
        scenes.append(_scene(out_dir / name, labels))
    stats = {
        "video": str(path),
        "frames": len(frame_numbers),
        "ssd_boxes": int(sum(len(b) for b in boxes)),
        "agreed": int(sum(a.sum() for a in agreement)),
        "frames_kept": len(scenes),
        "boxes_kept": int(sum(len(s.boxes) for s in scenes)),
        "boxes_masked": int(sum(len(u) for _, u in keep.values())),
    }
    return scenes, stats


def adapt_detector(
    videos: Sequence[str | Path],
    bundle_dir: str | Path,
    synthetic_dir: str | Path,
    out_dir: str | Path,
    config: AdaptDetectorConfig = AdaptDetectorConfig(),
    *,
    progress: bool = True,
) -> dict[str, Any]:
    """Fine-tune ``bundle_dir``'s detector on pseudo-labelled frames of ``videos`` mixed with the
    synthetic benchmark's training scenes (``synthetic_dir``), from the detector's own weights, and
    write a bundle (that detector, the starting re-id network, a model card) to ``out_dir``.
    Resumable: pseudo-labels are cached per video, training from its checkpoints."""
    bundle_dir, out_dir = Path(bundle_dir), Path(out_dir)
    read_component(bundle_dir, "detector")  # a broken bundle fails before minutes of labelling
    real: list[Scene] = []
    labelling = []
    for video in videos:
        frames_dir = out_dir / "pseudo-labels" / Path(video).stem
        cached = frames_dir / "labels.json"
        if cached.is_file() and json.loads(cached.read_text()).get("config") == asdict(config.labels):
            saved = json.loads(cached.read_text())
            scenes = [
                _scene(frames_dir / s["name"], np.asarray(s["boxes"], np.float32).reshape(-1, 4))
                for s in saved["scenes"]
            ]
            stats = saved["stats"]
        else:
            scenes, stats = pseudo_label_video(video, frames_dir, config.labels)
            frames_dir.mkdir(parents=True, exist_ok=True)
            record = {
                "config": asdict(config.labels),
                "stats": stats,
                "scenes": [{"name": s.name, "boxes": s.boxes.tolist()} for s in scenes],
            }
            cached.write_text(json.dumps(record))
        real += scenes
        labelling.append(stats)
        if progress:
            print(
                f"{video}: {stats['frames_kept']} of {stats['frames']} sampled frames kept, "
                f"{stats['boxes_kept']} pseudo-labelled people",
                flush=True,
            )
    if not real:
        raise ValueError(
            f"no frame of {', '.join(map(str, videos))} has a pseudo-label both detectors agree on and "
            "tracking confirms: nothing to learn from"
        )
    synthetic = [s for s in load_dataset(synthetic_dir).train if len(s.boxes)]
    rng = np.random.default_rng(config.seed)
    mixed = real + [
        synthetic[i] for i in rng.choice(len(synthetic), size=min(len(real), len(synthetic)), replace=False)
    ]
    summary, train = finetune_detector(
        bundle_dir, mixed, out_dir, config, dataset=synthetic_dir, progress=progress
    )
    result = {
        "adapted_from": str(bundle_dir),
        "footage": [str(v) for v in videos],
        "pseudo_labels": labelling,
        "real_frames": len(real),
        "synthetic_scenes": len(mixed) - len(real),
        "synthetic": str(synthetic_dir),
        "config": json.loads(json.dumps(asdict(config), default=str)),
        "train": summary,
    }
    meta = json.loads((out_dir / "detector.json").read_text())
    meta.setdefault("metadata", {})["adaptation"] = result
    meta["metadata"]["train"] = to_dict(train)
    (out_dir / "detector.json").write_text(json.dumps(meta, indent=2))
    (out_dir / "MODEL_CARD.md").write_text(_model_card(result))
    return result


def finetune_detector(
    bundle_dir: str | Path,
    scenes: Sequence[Scene],
    out_dir: str | Path,
    config: AdaptDetectorConfig = AdaptDetectorConfig(),
    *,
    dataset: str | Path,
    progress: bool = True,
) -> tuple[dict[str, Any], DetectorTrainConfig]:
    """``bundle_dir``'s detector fine-tuned from its own weights on ``scenes`` with ``config``'s
    optimiser, epochs, batch and seed (training in ``out_dir/training``, resumable from its
    checkpoints); ``out_dir`` becomes a bundle of that detector and ``bundle_dir``'s re-id
    network. ``dataset`` is recorded as the training data's home. Returns the training summary
    and config. Adapting to footage (``adapt_detector``) and the benchmarks' fine-tuning on other
    scenes share it, so both are the same recipe."""
    bundle_dir, out_dir = Path(bundle_dir), Path(out_dir)
    start, detector_config, _ = load_component(bundle_dir, "detector")
    train = DetectorTrainConfig(
        model=detector_config,
        data=DataConfig(dataset=str(dataset)),
        optim=config.optim,
        epochs=config.epochs,
        batch_size=config.batch_size,
        seed=config.seed,
    )
    work = out_dir / "training"
    summary = train_detector(train, work, progress=progress, scenes=list(scenes), init=start.state_dict())
    for part in ("detector.json", "detector.safetensors"):
        shutil.copyfile(work / part, out_dir / part)
    for part in ("reid.json", "reid.safetensors"):
        shutil.copyfile(bundle_dir / part, out_dir / part)
    return summary, train


def _model_card(result: dict[str, Any]) -> str:
    lines = [
        "# Detector adapted to unlabelled footage (pseudo-labels)",
        "",
        f"Started from: {result['adapted_from']}. Fine-tuned on {result['real_frames']} frames of real "
        "footage, pseudo-labelled",
        "where SSDLite and HOG agree and tracking confirms the box, mixed one to one with "
        "synthetic training scenes",
        f"({result['synthetic']}); no human label. Footage:",
        "",
        *[
            f"- {s['video']}: {s['frames_kept']} of {s['frames']} sampled frames, {s['boxes_kept']} people"
            for s in result["pseudo_labels"]
        ],
        "",
        "The re-id network is the starting bundle's, unchanged. Recipe: "
        "personsearch/training/adapt_detector.py.",
        "People the two off-the-shelf detectors both miss (small, occluded, unusual poses) are not in the",
        "pseudo-labels: the synthetic scenes are what keeps the network finding them.",
        "",
        "Use it on the cameras it learned from. Adapted to one camera (vtest.avi), "
        "it found fewer people on other",
        "cameras than the detector it started from (docs/real-footage.md, "
        "benchmarks/detector_other_cameras.py).",
    ]
    return "\n".join(lines) + "\n"
