"""Learning re-id from unlabelled footage: the people tracked through an index's videos are the
training identities.

Within one camera, the boxes linked over time (a sighting, index/tracking.py) show one person
for free; that is the idea of Li, Zhu and Gong, "Unsupervised Person Re-identification by Deep
Learning Tracklet Association" (ECCV 2018), from the CLSA authors' group. Here:

1. **Tracklets**: sightings with at least ``min_boxes`` boxes and a mean detection score of at
   least ``min_score`` whose box moves (``min_motion``: a box that stays put is a detector's
   steady false positive far more often than a person); frames where another detected person overlaps the box
   (IoU above ``max_overlap``: the crop shows two people) are left out. Up to ``crops_per_tracklet`` frames
   spread over each are cropped from the video itself (not the thumbnails) at the network's input size.
2. **Per-camera tracklet discrimination** (round 1): every tracklet is its own class, trained
   with the CLSA losses (per-level identity cross-entropy and the cross-level alignment), from the
   starting model's weights (or ImageNet's). Two tracklets of one camera are assumed to be two people.
3. **Cross-camera tracklet association** (later rounds, from a trained start only): tracklets of
   different cameras whose mean features are mutual nearest neighbours with a cosine of at least
   ``associate_min_cosine`` (and above what strangers seen together score) are merged into one
   class, and training continues from the previous round's weights.

The result is a model bundle: the starting bundle's detector and the adapted re-id network, whose
metadata and ``MODEL_CARD.md`` name the footage it learned from. Every round resumes from its
checkpoints (training/runner.py).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, cast

import cv2
import numpy as np
import torch

from personsearch.data.boxes import box_iou
from personsearch.data.crops import CropSet, crop_boxes, normalize_crops
from personsearch.data.images import ImageReadError
from personsearch.index.person_index import PersonIndex
from personsearch.index.sources import video_info
from personsearch.models.bundle import load_component
from personsearch.models.fast import autocast_for
from personsearch.models.registry import registered_network
from personsearch.models.reid import ReIDConfig
from personsearch.training.cluster_contrast import ProxyMemory, cluster_tracklets
from personsearch.training.config import (
    GuideConfig,
    OptimConfig,
    ReIDDataConfig,
    ReIDTrainConfig,
    TrunkConfig,
    to_dict,
)
from personsearch.training.reid import crop_augment, train_reid
from personsearch.training.trunk import TrunkCache

LEARNER_TEXT = {
    "association": "per-camera tracklet discrimination, then cross-camera tracklet association",
    "cluster_contrast": "tracklets clustered into identities each round, with a memory of class and "
    "per-camera proxies",
}
"""What each learner does, in a model card's words."""
LEARNERS = tuple(LEARNER_TEXT)
"""``AdaptConfig.learner``'s choices."""
BUDGET_RESERVE = 0.03
"""Share of a time budget kept back from training: the last step's overrun, loading each
round's network and associating tracklets between rounds."""


@dataclass(frozen=True)
class AdaptConfig:
    """What counts as a usable tracklet, and how to train on them."""

    min_boxes: int = 8
    min_score: float = 0.6
    max_overlap: float = 0.3
    min_motion: float = 0.5
    """A tracklet whose box centre stays within this many of its own box heights over its whole
    span is dropped: on real footage a detector's steady false boxes (a cone, a tripod, a lamp
    post) track perfectly and would each become an "identity". People who stand still the whole
    time are dropped with them."""
    crops_per_tracklet: int = 16
    feature_crops_per_tracklet: int = 16
    """Crops of each tracklet, spread over it, whose mean feature stands for it when tracklets are
    clustered or associated between rounds (default: all of them). That pass runs over every
    tracklet each round, on time the budget would rather train with; fewer crops make it cheaper
    and the pseudo-labels noisier (how much was not measured well enough to choose a smaller
    default)."""
    rounds: int = 2
    """1: per-camera tracklet discrimination only; each further round associates across cameras
    first. Association needs features that already tell people apart, so from ImageNet weights
    it is skipped: on synthetic walks (benchmarks/adaptation.py, ground truth), association from
    the shipped network's round-1 features merged 5 groups, all of one person each; from an
    ImageNet start's round-1 features it merged 10 groups, none of one person (another run: 1 of 1)."""
    associate_min_cosine: float = 0.5
    """Cross-camera mutual nearest neighbours merge from this cosine up."""
    learner: str = "association"
    """How tracklets become identities: ``association`` (round 1 per-camera tracklet
    discrimination, then cross-camera mutual nearest neighbours, steps 2-3 above) or
    ``cluster_contrast`` (every round, from any start: tracklets clustered by DBSCAN on
    k-reciprocal Jaccard distances, cannot-links split, and a memory of class and per-camera
    proxies added to the losses; training/cluster_contrast.py)."""
    cluster_eps: float = 0.6
    """``cluster_contrast``: DBSCAN's neighbourhood radius on the Jaccard distance."""
    memory_weight: float = 1.0
    """``cluster_contrast``: weight of the ClusterNCE loss against the memory's class proxies."""
    camera_weight: float = 0.5
    """``cluster_contrast``: weight of the intra-camera NCE against the per-camera proxies (0 and
    ``memory_weight`` 0: the pseudo-labels train the CLSA losses alone)."""
    epochs: int = 8
    """Epochs per round."""
    batch_size: int = 32
    """Half a re-id training's: twice the steps in a budget, which is what a camera's short runs
    are short of."""
    optim: OptimConfig = field(
        default_factory=lambda: OptimConfig(lr=0.01, backbone_lr=0.001, warmup_steps=20, full_rate_steps=40)
    )
    """Rates for a budget's few dozen steps a round; a longer round (``--budget 10x``) scales them
    down (``full_rate_steps``), or it overfits the pseudo-labels."""
    from_imagenet: bool = False
    """Start from ImageNet weights instead of the bundle's re-id network (same architecture)."""
    guide: GuideConfig = field(default_factory=GuideConfig)
    """The ImageNet guide (training/guide.py; ``weight`` 0: off): on a camera's own crops, real
    photographs where ImageNet's view of who resembles whom is at home, it holds the network to
    that view while the pseudo-labels pull it towards this camera's people."""
    trunk: TrunkConfig = field(default_factory=TrunkConfig)
    """The lowest backbone stages kept as the start network has them, their outputs for a few
    augmented views of each crop computed once for every round (training/trunk.py)."""
    seed: int = 0
    budget_footage: float = 1.0
    """Time budget of the whole run (tracklets, crops, every round, writing the bundle), in
    multiples of the footage's own duration: by default an hour of footage adapts in at most an
    hour. Training is shortened to fit (``runner.Trainer.deadline``); 0: no budget, every epoch
    runs. Footage of unknown duration (no video frame rate) has no budget unless ``budget_s``."""
    budget_s: float | None = None
    """A budget in seconds instead of ``budget_footage``."""

    def __post_init__(self) -> None:
        if self.learner not in LEARNERS:
            raise ValueError(f"AdaptConfig.learner={self.learner!r}; expected one of {', '.join(LEARNERS)}")

    def budget(self, footage_s: float | None) -> float | None:
        """The run's budget in seconds for footage of this duration (None: unlimited)."""
        if self.budget_s is not None:
            return self.budget_s
        if self.budget_footage > 0 and footage_s:
            return self.budget_footage * footage_s
        return None


SECONDS_PER_UNIT = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_budget(text: str) -> tuple[float, float | None]:
    """``(budget_footage, budget_s)`` of a budget as people write it: ``2x`` (twice the
    footage's duration), ``45m``, ``1.5h``, ``900s`` or ``900`` (seconds), ``none``."""
    value = text.strip().lower()
    if value == "none":
        return 0.0, None
    unit = value[-1:] if value[-1:] in ("x", *SECONDS_PER_UNIT) else ""
    try:
        number = float(value[: len(value) - len(unit)])
    except ValueError:
        number = -1.0
    if not number > 0 or number == float("inf"):
        raise ValueError(
            f"budget {text!r}: write a positive time (900s, 45m, 1.5h), a multiple of the footage's "
            "duration (2x), or none"
        )
    return (number, None) if unit == "x" else (1.0, number * SECONDS_PER_UNIT.get(unit, 1.0))


@dataclass(frozen=True)
class Tracklet:
    """One usable sighting: its video, camera, and the boxes to crop (frame, xyxy)."""

    sighting: int
    source_id: int
    path: str
    camera: str
    frames: tuple[int, ...]
    boxes: tuple[tuple[float, float, float, float], ...]


def moves(boxes: np.ndarray, min_motion: float) -> bool:
    """Whether the centres of ``boxes`` (n, 4 xyxy, one tracklet) span at least ``min_motion``
    median box heights, across or along the image."""
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    height = float(np.median(boxes[:, 3] - boxes[:, 1]))
    return bool(np.ptp(centres, axis=0).max() >= min_motion * height)


def find_tracklets(index: PersonIndex, config: AdaptConfig) -> list[Tracklet]:
    """The index's usable tracklets (see the module docstring), in source then sighting order."""
    out = []
    _, sources = index.store.list_sources(limit=1_000_000)
    for source in sources:
        if source.kind != "video":
            continue
        ids, frames, _, boxes = index.store.video_boxes(source.id)
        scores, sighting_of = index.store.video_box_labels(source.id)
        crowded = np.zeros(len(ids), dtype=bool)  # another person's box overlaps: the crop shows two people
        order = np.argsort(frames, kind="stable")
        for rows in np.split(order, np.flatnonzero(np.diff(frames[order])) + 1) if len(order) else []:
            overlaps = box_iou(boxes[rows], boxes[rows])
            np.fill_diagonal(overlaps, 0.0)
            crowded[rows] = overlaps.max(axis=1) > config.max_overlap
        for sighting in np.unique(sighting_of[sighting_of >= 0]).tolist():
            members = np.flatnonzero(sighting_of == sighting)
            if len(members) < config.min_boxes or scores[members].mean() < config.min_score:
                continue
            clean = members[~crowded[members]]
            if len(clean) < config.min_boxes // 2 or not moves(boxes[members], config.min_motion):
                continue
            picks = clean[
                np.unique(
                    np.linspace(0, len(clean) - 1, min(config.crops_per_tracklet, len(clean)))
                    .round()
                    .astype(int)
                )
            ]
            picks = picks[np.argsort(frames[picks], kind="stable")]
            out.append(
                Tracklet(
                    int(sighting),
                    source.id,
                    str(index.store.source_file(source.id)),
                    source.camera,
                    tuple(int(f) for f in frames[picks]),
                    tuple(tuple(float(v) for v in b) for b in boxes[picks]),  # type: ignore[misc]
                )
            )
    return out


def crop_tracklets(tracklets: Sequence[Tracklet], size: tuple[int, int]) -> tuple[torch.Tensor, np.ndarray]:
    """Every tracklet's crops (uint8 (n, 3, H, W)) and the tracklet index of each, reading each
    video once from start to end."""
    wanted: dict[str, dict[int, list[tuple[int, tuple[float, float, float, float]]]]] = {}
    for t, tracklet in enumerate(tracklets):
        for frame, box in zip(tracklet.frames, tracklet.boxes, strict=True):
            wanted.setdefault(tracklet.path, {}).setdefault(frame, []).append((t, box))
    crops: list[torch.Tensor] = []
    owners: list[int] = []
    for path, frames in wanted.items():
        capture = cv2.VideoCapture(path)
        try:
            last = max(frames)
            for number in range(last + 1):
                ok, bgr = capture.read()
                if not ok:
                    raise OSError(
                        f"{path}: could not read frame {number} (the file changed since it was indexed?); "
                        "re-index it with `personsearch index`"
                    )
                for t, box in frames.get(number, []):
                    crops.append(
                        crop_boxes(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), np.asarray([box], np.float32), size)
                    )
                    owners.append(t)
        finally:
            capture.release()
    if not crops:
        return torch.zeros((0, 3, *size), dtype=torch.uint8), np.zeros(0, dtype=np.int64)
    return torch.cat(crops), np.asarray(owners, dtype=np.int64)


@torch.no_grad()
def crop_features(
    model: torch.nn.Module, crops: torch.Tensor, batch_size: int = 128, fast: bool = True
) -> np.ndarray:
    """The network's test feature of every crop (uint8 (n, 3, H, W)), in eval mode. ``fast``:
    channels_last under the CPU's native mixed precision (``models.fast``; plain fp32 where it has
    none), which clustering and association can spare the last digits to; ``fast=False`` for
    scores."""
    model.eval()
    device = next(model.parameters()).device
    layout = torch.channels_last if fast else torch.contiguous_format
    model.to(memory_format=layout)
    try:
        with autocast_for(device, fast):
            return torch.cat(
                [
                    model(normalize_crops(crops[i : i + batch_size]).contiguous(memory_format=layout)).float()
                    for i in range(0, len(crops), batch_size)
                ]
            ).numpy()
    finally:
        model.to(memory_format=torch.contiguous_format)


def feature_rows(owners: np.ndarray, per_tracklet: int) -> np.ndarray:
    """Up to ``per_tracklet`` crops of each tracklet (``owners``: the tracklet of each crop),
    spread over it, in crop order."""
    rows = [
        members[
            np.unique(np.linspace(0, len(members) - 1, min(per_tracklet, len(members))).round().astype(int))
        ]
        for members in (np.flatnonzero(owners == t) for t in np.unique(owners))
    ]
    return np.sort(np.concatenate(rows)) if rows else np.zeros(0, dtype=np.int64)


def mean_features(features: np.ndarray, owners: np.ndarray, count: int) -> np.ndarray:
    """The normalised mean feature of each of ``count`` groups (``owners``: the group of each row)."""
    means = np.zeros((count, features.shape[1]), np.float32)
    np.add.at(means, owners, features)
    return cast(np.ndarray, means / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12))


def probe_pass_seconds(model: torch.nn.Module, crops: torch.Tensor, batch_size: int) -> float:
    """About how long ``crop_features`` takes over ``crops``, from one batch of them, timed (so
    that it holds on any CPU) after a first that pays the network's change of layout."""
    crop_features(model, crops[:batch_size], batch_size)  # the first batch pays the layout change
    began = time.perf_counter()
    crop_features(model, crops[:batch_size], batch_size)
    return (time.perf_counter() - began) * len(crops) / max(1, min(batch_size, len(crops)))


def tracklet_features(
    model: torch.nn.Module, crops: torch.Tensor, owners: np.ndarray, count: int
) -> np.ndarray:
    """The normalised mean test feature of each tracklet's crops."""
    return mean_features(crop_features(model, crops), owners, count)


def camera_rivals(labels: np.ndarray, cameras: Sequence[str]) -> torch.Tensor:
    """(classes, classes) bool: which classes a class is trained against. Classes (tracklets, or
    tracklets merged across cameras) rival each other when they share a camera: within a camera,
    two tracklets at once are two people; across cameras nothing says they are not one person."""
    _, classes = np.unique(labels, return_inverse=True)
    cams, cam_index = np.unique(np.asarray(cameras), return_inverse=True)
    seen = np.zeros((len(cams), int(classes.max()) + 1), dtype=bool)
    seen[cam_index, classes] = True
    return torch.from_numpy((seen.T.astype(np.int64) @ seen.astype(np.int64)) > 0)


def starting_network(start: torch.nn.Module, network: ReIDConfig, config: AdaptConfig) -> torch.nn.Module:
    """The network whose features the first round clusters: the bundle's, or with
    ``from_imagenet`` one on the backbone's ImageNet weights (its heads untrained)."""
    if not config.from_imagenet:
        return start
    torch.manual_seed(config.seed)
    return registered_network(replace(network, num_classes=1, pretrained=True))


def seen_together(spans: Sequence[tuple[str, int, int]]) -> np.ndarray:
    """(N, N) bool: which tracklets (video, first frame, last frame) were seen at the same time in
    one video: two people for sure (a cannot-link)."""
    video = np.unique([v for v, _, _ in spans], return_inverse=True)[1]
    first = np.array([f for _, f, _ in spans])
    last = np.array([f for _, _, f in spans])
    together = (
        (video[:, None] == video[None, :])
        & (first[:, None] <= last[None, :])
        & (first[None, :] <= last[:, None])
    )
    np.fill_diagonal(together, False)
    return cast(np.ndarray, together)


def associate(
    features: np.ndarray,
    cameras: Sequence[str],
    min_cosine: float,
    spans: Sequence[tuple[str, int, int]] | None = None,
    same_camera_cosine: float = 0.85,
) -> np.ndarray:
    """Class of every tracklet after association: tracklets of different cameras that are each
    other's nearest neighbour in the other's camera, with cosine >= ``min_cosine``, share a class
    (merged transitively). With ``spans`` ((video, first frame, last frame) per tracklet), two
    tracklets of one video that never coexist and agree to ``same_camera_cosine`` are merged too
    (one person's track broken in two); ``min_cosine`` rises to the 95th percentile of the
    cosines between tracklets seen at the same time (different people for sure, the features'
    own level for strangers), and no class ever holds two tracklets seen at the same time.
    The rest keep their own class."""
    n = len(features)
    cams = np.asarray(cameras)
    sim = features @ features.T
    parent = list(range(n))
    members = {k: [k] for k in range(n)}
    together = seen_together(spans) if spans is not None else np.zeros((n, n), dtype=bool)
    if together.any():  # merging needs more likeness than two people seen together show
        min_cosine = max(min_cosine, float(np.quantile(sim[together], 0.95)))

    def root(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    def merge(a: int, b: int) -> None:
        ra, rb = root(a), root(b)
        if ra == rb or together[np.ix_(members[ra], members[rb])].any():
            return  # never one class for two people seen at the same time
        parent[rb] = ra
        members[ra] += members.pop(rb)

    if spans is not None:
        for a in range(n):
            for b in range(a + 1, n):
                if spans[a][0] == spans[b][0] and not together[a, b] and sim[a, b] >= same_camera_cosine:
                    merge(a, b)
    for cam in np.unique(cams):
        inside, outside = np.flatnonzero(cams == cam), np.flatnonzero(cams != cam)
        if not len(outside):
            continue
        for a in inside.tolist():
            b = int(outside[int(np.argmax(sim[a, outside]))])
            # a is b's best match in a's camera too
            if inside[int(np.argmax(sim[b, inside]))] == a and sim[a, b] >= min_cosine:
                merge(int(a), int(b))
    roots = np.array([root(k) for k in range(n)])
    return np.unique(roots, return_inverse=True)[1].astype(np.int64)


LATER_ROUND_STEPS = 4
"""Training steps a further round must have time for, after its feature pass, to be run at all."""


def rounds_affordable(time_left: float, pass_s: float, rounds: int) -> int:
    """How many of ``rounds`` to plan when each round after the first costs a feature pass of
    ``pass_s`` first: a later round is planned only while each round's training keeps at least
    as much time as a pass takes. Otherwise the first round's training gets it: a few more steps
    of it were worth more than a second round on a CPU where passes are slow
    (benchmarks/results/adaptation_later.json)."""
    while rounds > 1 and (time_left - (rounds - 1) * pass_s) / rounds < pass_s:
        rounds -= 1
    return rounds


def later_round_fits(
    time_left: float, last_train: dict[str, Any], pass_s: float | None, crops: int, batch_size: int
) -> bool:
    """Whether a further round can pay, in the budget's time left, for its feature pass (every
    shown tracklet crop through the network, for association or clustering) and
    ``LATER_ROUND_STEPS`` steps at the last round's pace. The pass is costed as the last one (or
    ``probe_pass_seconds``) took, or without either as a forward without a backward: a third of a
    training step per batch. A round that cannot pay is skipped; run anyway, its pass alone took
    a slow CPU past the budget (benchmarks/results/adaptation_later*.json, AVX2 without bf16)."""
    step_s = float(last_train["seconds"]) / max(1, int(last_train["steps"]))
    cost = pass_s if pass_s is not None else crops / batch_size * step_s / 3
    return time_left >= cost + LATER_ROUND_STEPS * step_s


def adapt(
    index_dir: str | Path,
    bundle_dir: str | Path,
    out_dir: str | Path,
    config: AdaptConfig = AdaptConfig(),
    *,
    progress: bool = True,
    on_progress: Callable[[AdaptProgress], None] | None = None,
) -> dict[str, Any]:
    """Fine-tune ``bundle_dir``'s re-id network on the tracklets of the index at ``index_dir``
    and write a bundle (its detector, the adapted re-id network, a model card) to ``out_dir``.
    Returns a summary (tracklets, cameras, classes per round, training, and the seconds each
    step took, against the seconds of footage learned from). ``on_progress`` hears each stage
    and each training step (a job's progress); an exception it raises stops the run, and a
    later run with the same ``out_dir`` resumes from the last checkpoint."""
    bundle_dir, out_dir = Path(bundle_dir), Path(out_dir)
    clustering = config.learner == "cluster_contrast"
    # association from ImageNet features merges strangers (AdaptConfig.rounds): one round only
    rounds_run = 1 if config.from_imagenet and not clustering else config.rounds

    def tell(stage: str, round_index: int = 0, step: int = 0, steps: int = 0) -> None:
        if on_progress is not None:
            on_progress(AdaptProgress(stage, round_index, rounds_run, step, steps))

    tell("reading tracklets")
    began = run_began = time.perf_counter()
    started = time.monotonic()  # the budget's clock
    start, reid_config, reid_meta = load_component(bundle_dir, "reid")
    with PersonIndex.open(index_dir) as index:
        tracklets = find_tracklets(index, config)
    seconds: dict[str, Any] = {"tracklets": time.perf_counter() - began}
    footage = sorted({t.path for t in tracklets})
    footage_s = footage_seconds(footage)
    budget = config.budget(footage_s)
    finish_by = None if budget is None else started + budget * (1 - BUDGET_RESERVE)
    if len(tracklets) < 2:
        raise ValueError(
            f"{index_dir}: {len(tracklets)} usable tracklet(s) "
            f"(people tracked over at least {config.min_boxes} sampled frames); index more footage, "
            "sample it more densely (--stride 1 or a higher --fps), or lower min_boxes"
        )
    size = cast("tuple[int, int]", tuple(reid_config.input_size))
    began = time.perf_counter()
    tell(f"cropping {len(tracklets)} tracklets")
    crops, owners = crop_tracklets(tracklets, size)
    seconds["crops"] = time.perf_counter() - began
    seconds["rounds"] = []
    cameras = [t.camera for t in tracklets]
    network = replace(
        reid_config,
        num_classes=0,  # set by the tracklets of each round
        pretrained=config.from_imagenet,
        variant="clsa" if len(reid_config.used_levels) > 1 else "single",
        levels=tuple(reid_config.used_levels),
    )
    base = ReIDTrainConfig(
        model=network,
        data=ReIDDataConfig(dataset=str(index_dir)),
        epochs=config.epochs,
        batch_size=config.batch_size,
        optim=config.optim,
        guide=config.guide,
        trunk=config.trunk,
        seed=config.seed,
    )
    # the frozen stages never change, so their outputs serve every round
    trunk = (
        TrunkCache(crops, crop_augment(base.data), config.trunk, config.seed) if config.trunk.frozen else None
    )
    state: dict[str, torch.Tensor] | None = None if config.from_imagenet else start.state_dict()
    labels = np.arange(len(tracklets), dtype=np.int64)
    rounds: list[dict[str, Any]] = []
    model: torch.nn.Module | None = None
    spans = [(t.path, t.frames[0], t.frames[-1]) for t in tracklets]
    together = seen_together(spans)
    shown = feature_rows(owners, config.feature_crops_per_tracklet)
    pass_s: float | None = None  # the last feature pass's seconds: the next costs about as much
    not_planned = 0  # rounds the budget could not pay for, seen before the first
    if finish_by is not None and rounds_run > 1 and not clustering:
        # association's first pass comes after round 1: its cost is timed now, so round 1 leaves it time
        pass_s = probe_pass_seconds(start, crops[shown], config.batch_size)
    for round_index in range(rounds_run):
        if round_index >= rounds_run:  # fewer planned once the first pass was timed
            break
        if (
            round_index > 0
            and finish_by is not None
            and not later_round_fits(
                finish_by - time.monotonic(), rounds[-1]["train"], pass_s, len(shown), config.batch_size
            )
        ):
            break
        crop_feats = None
        pass_began = time.perf_counter()
        if clustering:
            tell("clustering tracklets", round_index + 1)
            current = model if model is not None else starting_network(start, network, config)
            crop_feats = crop_features(current, crops[shown])
            pass_s = time.perf_counter() - pass_began
            labels = cluster_tracklets(
                mean_features(crop_feats, owners[shown], len(tracklets)), together, config.cluster_eps
            )
        elif round_index > 0:
            tell("associating tracklets across cameras", round_index + 1)
            assert model is not None
            labels = associate(
                tracklet_features(model, crops[shown], owners[shown], len(tracklets)),
                cameras,
                config.associate_min_cosine,
                spans,
            )
            pass_s = time.perf_counter() - pass_began
        classes, per_crop = np.unique(labels[owners], return_inverse=True)
        crop_set = CropSet(crops, torch.from_numpy(per_crop.astype(np.int64)), classes, np.zeros(len(owners)))
        # cluster contrast: a memory of this round's classes and their per-camera proxies
        extra_loss = None
        if crop_feats is not None and (config.memory_weight > 0 or config.camera_weight > 0):
            extra_loss = ProxyMemory(
                crop_feats,
                per_crop,
                [cameras[o] for o in owners],
                memory_weight=config.memory_weight,
                camera_weight=config.camera_weight,
                rows=shown,
            ).loss
        work = out_dir / "rounds" / f"round{round_index + 1}"
        began = time.perf_counter()
        if round_index == 0 and finish_by is not None and pass_s is not None:
            # the first pass is known now (timed, or clustering's own): plan only the rounds it allows
            affordable = rounds_affordable(finish_by - time.monotonic(), pass_s, rounds_run)
            not_planned, rounds_run = rounds_run - affordable, affordable
        # each round left gets an equal share of the time left once the later rounds' passes are paid
        left = rounds_run - round_index
        deadline = (
            None
            if finish_by is None
            else time.monotonic() + (finish_by - time.monotonic() - (left - 1) * (pass_s or 0.0)) / left
        )
        summary = train_reid(
            base,
            work,
            progress=progress,
            crop_set=crop_set,
            init=state,
            rivals=camera_rivals(labels, cameras),
            deadline=deadline,
            on_step=partial(tell, "training", round_index + 1),
            extra_loss=extra_loss,
            trunk_cache=trunk,
        )
        model, _, _ = load_component(work, "reid")
        state = model.state_dict()
        seconds["rounds"].append(time.perf_counter() - began)
        rounds.append(
            {
                "classes": int(len(classes)),
                "crops": int(len(owners)),
                "labels": labels.tolist(),  # each tracklet's pseudo-identity (find_tracklets' order)
                "train": summary,
            }
        )
    seconds["total"] = time.perf_counter() - run_began  # what is left (copying four files) takes milliseconds
    result = {
        "adapted_from": str(bundle_dir) if not config.from_imagenet else "ImageNet weights",
        "index": str(index_dir),
        "footage": footage,
        "cameras": sorted(set(cameras)),
        "tracklets": len(tracklets),
        "config": _json(asdict(config)),
        "rounds": rounds,
        "footage_s": footage_s,
        "budget_s": budget,
        "stopped_by_budget": any(r["train"].get("stopped_by_budget") for r in rounds)
        or len(rounds) < rounds_run + not_planned,
        "rounds_skipped_by_budget": rounds_run + not_planned - len(rounds),
        "seconds": seconds,
    }
    final = out_dir / "rounds" / f"round{len(rounds)}"
    out_dir.mkdir(parents=True, exist_ok=True)
    for part in ("detector.json", "detector.safetensors"):
        shutil.copyfile(bundle_dir / part, out_dir / part)
    for part in ("reid.json", "reid.safetensors"):
        shutil.copyfile(final / part, out_dir / part)
    meta = json.loads((out_dir / "reid.json").read_text())
    meta.setdefault("metadata", {})["adaptation"] = result
    meta["metadata"]["train"] = to_dict(base)
    (out_dir / "reid.json").write_text(json.dumps(meta, indent=2))
    (out_dir / "MODEL_CARD.md").write_text(_model_card(result, reid_meta))
    return result


@dataclass(frozen=True)
class AdaptProgress:
    """Where an ``adapt`` run is: its stage and, while training, the round and step."""

    stage: str
    round: int = 0
    """1-based; 0 before training."""
    rounds: int = 0
    step: int = 0
    steps: int = 0
    """Steps planned this round (shortened when a budget runs short)."""

    @property
    def fraction(self) -> float:
        """About how much of the run is done, 0 to 1 (training is nearly all of it)."""
        if not self.round or not self.rounds:
            return 0.0
        within = self.step / self.steps if self.steps else 0.0
        return min(1.0, (self.round - 1 + within) / self.rounds)


def time_taken(result: dict[str, Any]) -> str:
    """How long an ``adapt`` run took, against the footage it learned from and its budget (for
    people to read)."""
    footage = f" for {result['footage_s'] / 60:.1f} min of footage" if result.get("footage_s") else ""
    budget = f", budget {result['budget_s'] / 60:.1f} min" if result.get("budget_s") else ", no time budget"
    cut = " (training shortened to fit it)" if result.get("stopped_by_budget") else ""
    return f"{result['seconds']['total'] / 60:.1f} min{footage}{budget}{cut}"


def rounds_taken(result: dict[str, Any]) -> str:
    """Each round of an ``adapt`` run: its classes, training steps and seconds (for people to read)."""
    return "; ".join(
        f"{k}: {r['classes']} classes, {r['train']['steps']} steps, {seconds:.0f} s"
        for k, (r, seconds) in enumerate(zip(result["rounds"], result["seconds"]["rounds"], strict=True), 1)
    )


def footage_seconds(paths: Sequence[str]) -> float | None:
    """The running time of the videos among ``paths`` (from their containers' frame count and
    rate), or None when none can be read."""
    total, known = 0.0, False
    for path in paths:
        try:
            info = video_info(path)
        except ImageReadError:
            continue
        if info.fps > 0 and info.frame_count > 0:
            total, known = total + info.frame_count / info.fps, True
    return total if known else None


def _json(data: Any) -> Any:
    return json.loads(json.dumps(data, default=str))


def _model_card(result: dict[str, Any], start_meta: dict[str, Any]) -> str:
    lines = [
        "# Re-id adapted to unlabelled footage",
        "",
        f"Started from: {result['adapted_from']}. Learned from {result['tracklets']} tracklets "
        "(people tracked through the videos",
        f"of the index {result['index']}), cameras {', '.join(result['cameras'])}, "
        "without any identity label:",
        "",
        *[f"- {path}" for path in result["footage"]],
        "",
        f"Training: {LEARNER_TEXT[result['config']['learner']]}, with the CLSA losses",
        "(personsearch/training/adapt.py). Rounds: " + rounds_taken(result) + ".",
        "The detector is the starting bundle's, unchanged.",
        f"Adapting took {time_taken(result)} ({result['rounds'][0]['crops']} crops, "
        f"{len(result['rounds'])} round(s)).",
        "",
        "It has seen only this footage's people: expect it to work best on these cameras.",
    ]
    return "\n".join(lines) + "\n"
