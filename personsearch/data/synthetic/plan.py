"""Planning a synthetic benchmark: presets, and every decision (identities, which images each
identity appears in and at what height, every box) drawn from the seed alone, before any pixel.
Four independent random streams (people, cameras, layout, protocol) keep e.g. the cameras
unchanged when only the number of identities is overridden. Writing the plan out: ``generate.py``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from personsearch.data.cuhk_sysu import GALLERY_SIZES
from personsearch.data.records import UNLABELED
from personsearch.data.synthetic.cameras import Camera, make_cameras
from personsearch.data.synthetic.identities import Identity, sample_identity, sample_population, sample_pose
from personsearch.data.synthetic.scenes import PersonRequest, ScenePlan, plan_scene

GENERATOR_VERSION = "1"
"""Bumped whenever the same seed and preset would produce different annotations or pixels."""

MAX_IMAGE_SIDE = 4096


@dataclass(frozen=True)
class SyntheticConfig:
    """Size and difficulty of a synthetic benchmark. Ranges are inclusive ``(low, high)`` pairs."""

    num_train_ids: int
    num_test_ids: int
    appearances: tuple[int, int] = (3, 6)
    """Images each identity appears in."""
    regulars: int = 0
    """Test identities seen far more often than the rest (``regular_appearances`` images each), as
    people who pass the same cameras day after day are in real footage (PRW has ~36 boxes per
    identity). With 3-6 appearances no query has ten right answers to show; the demo's showcase
    person is a regular. Train images are the same with or without regulars."""
    regular_appearances: int = 12
    people_per_image: tuple[int, int] = (1, 3)
    """Labelled people per image (the packing's capacity)."""
    distractors_per_image: tuple[int, int] = (0, 3)
    """Unlabelled people per image (fewer when they cannot be placed without heavy overlap)."""
    family_size: tuple[int, int] = (2, 4)
    """Identities per look-alike family (same coarse look, different details)."""
    min_height: int = 20
    max_height: int = 400
    height_distribution: str = "loguniform"
    """``loguniform`` (equal share per octave: as many 20-40 px as 200-400 px people) or ``uniform``."""
    image_width: int = 800
    image_height: int = 600
    num_cameras: int = 6
    backgrounds_per_camera: int = 3
    gallery_sizes: tuple[int, ...] = (50, 100)
    """CUHK protocol gallery sizes (``TestG{G}.mat``); 50 is required by the CUHK-SYSU format."""
    lookalike_fraction: float = 0.5
    """Share of each CUHK gallery's distractor images picked among images showing a look-alike."""
    occlusion_prob: float = 0.15
    """Chance that a labelled person gets an object standing in front of them."""
    clutter_per_image: tuple[int, int] = (0, 3)
    jpeg_quality: int = 90

    def __post_init__(self) -> None:
        def bad(field: str, expected: str) -> ValueError:
            return ValueError(f"synthetic config {field}={getattr(self, field)!r}: expected {expected}")

        for field in ("num_train_ids", "num_test_ids", "num_cameras", "backgrounds_per_camera"):
            if not isinstance(getattr(self, field), int) or getattr(self, field) < 1:
                raise bad(field, "a positive integer")
        if self.num_cameras > 6:
            raise bad("num_cameras", "at most 6 (PRW frame names carry one camera digit, c1..c6)")
        minimum = {
            "appearances": 2,
            "people_per_image": 1,
            "distractors_per_image": 0,
            "family_size": 1,
            "clutter_per_image": 0,
        }
        for field, low in minimum.items():
            value = getattr(self, field)
            if (
                len(value) != 2
                or not all(isinstance(v, int) for v in value)
                or not low <= value[0] <= value[1]
            ):
                raise bad(field, f"an inclusive range (low, high) of integers with {low} <= low <= high")
        if not isinstance(self.regulars, int) or not 0 <= self.regulars <= self.num_test_ids:
            raise bad("regulars", f"an integer from 0 to num_test_ids ({self.num_test_ids})")
        if not isinstance(self.regular_appearances, int) or self.regular_appearances < self.appearances[1]:
            raise bad(
                "regular_appearances",
                f"an integer of at least the most appearances of anyone else ({self.appearances[1]})",
            )
        for field in ("image_width", "image_height"):
            if not 64 <= getattr(self, field) <= MAX_IMAGE_SIDE:
                raise bad(field, f"an image side between 64 and {MAX_IMAGE_SIDE} pixels")
        if not 8 <= self.min_height < self.max_height:
            raise bad("min_height", f"8 <= min_height < max_height ({self.max_height})")
        if self.max_height > self.image_height * 0.9:
            raise bad(
                "max_height", f"at most 90% of image_height ({self.image_height}) so the tallest people fit"
            )
        if self.height_distribution not in ("loguniform", "uniform"):
            raise bad("height_distribution", "'loguniform' or 'uniform'")
        sizes = self.gallery_sizes
        if 50 not in sizes or any(g not in GALLERY_SIZES for g in sizes) or list(sizes) != sorted(set(sizes)):
            raise bad("gallery_sizes", f"ascending sizes from {GALLERY_SIZES} including 50")
        for field in ("lookalike_fraction", "occlusion_prob"):
            if not 0.0 <= getattr(self, field) <= 1.0:
                raise bad(field, "a probability in [0, 1]")
        if not 1 <= self.jpeg_quality <= 100:
            raise bad("jpeg_quality", "a JPEG quality in 1..100")


PRESETS: dict[str, SyntheticConfig] = {
    "tiny": SyntheticConfig(
        num_train_ids=10,
        num_test_ids=6,
        appearances=(2, 3),
        people_per_image=(1, 2),
        distractors_per_image=(0, 2),
        min_height=16,
        max_height=240,
        image_width=400,
        image_height=300,
        backgrounds_per_camera=1,
        gallery_sizes=(50,),
        clutter_per_image=(0, 1),
    ),
    "small": SyntheticConfig(num_train_ids=150, num_test_ids=80, gallery_sizes=(50,)),
    "demo": SyntheticConfig(num_train_ids=150, num_test_ids=80, gallery_sizes=(50,), regulars=1),
    "standard": SyntheticConfig(num_train_ids=600, num_test_ids=350, gallery_sizes=(50, 100)),
}
"""``tiny``: tests (seconds); ``small``: validation sets (a minute or two); ``demo``: ``small`` with
one regular (the demo's showcase; the same train images as ``small``); ``standard``: the benchmark."""


def resolve_config(preset: str, **overrides: object) -> SyntheticConfig:
    """The preset's config with ``overrides`` (config field names) applied and validated."""
    if preset not in PRESETS:
        raise ValueError(f"unknown synthetic preset {preset!r}; choose one of {sorted(PRESETS)}")
    fields = {f.name for f in dataclasses.fields(SyntheticConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise TypeError(f"unknown synthetic config override(s) {unknown}; valid names: {sorted(fields)}")
    values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
    return dataclasses.replace(PRESETS[preset], **values)


def random_streams(seed: int) -> dict[str, np.random.Generator]:
    """The benchmark's independent random streams, each a pure function of the seed."""
    names = ("people", "cameras", "layout", "protocol", "names")
    children = np.random.SeedSequence(seed).spawn(len(names))
    return {n: np.random.default_rng(c) for n, c in zip(names, children, strict=True)}


def population(config: SyntheticConfig, seed: int) -> tuple[list[Identity], list[Identity]]:
    """Train and test identities (disjoint families) of the benchmark with this config and seed."""
    rng = random_streams(seed)["people"]
    train = sample_population(rng, config.num_train_ids, config.family_size)
    test = sample_population(rng, config.num_test_ids, config.family_size, first_family=train[-1].family + 1)
    return train, test


@dataclass(frozen=True)
class PlannedImage:
    """One scene of the benchmark and its split (``train`` or ``test``)."""

    split: str
    scene: ScenePlan


@dataclass(frozen=True)
class BenchmarkPlan:
    """Everything the benchmark will contain, decided before drawing."""

    config: SyntheticConfig
    seed: int
    cameras: tuple[Camera, ...]
    train_ids: tuple[Identity, ...]
    test_ids: tuple[Identity, ...]
    images: tuple[PlannedImage, ...]


def sample_heights(rng: np.random.Generator, count: int, config: SyntheticConfig) -> np.ndarray:
    """Person heights in pixels (int), drawn from the config's distribution."""
    lo, hi = config.min_height, config.max_height
    loguniform = config.height_distribution == "loguniform"
    values: np.ndarray = (
        np.exp(rng.uniform(math.log(lo), math.log(hi), count)) if loguniform else rng.uniform(lo, hi, count)
    )
    return np.clip(np.round(values), lo, hi).astype(int)


def _assign_images(
    rng: np.random.Generator, num_ids: int, config: SyntheticConfig, regulars: int = 0
) -> list[tuple[int, list[int]]]:
    """Pack every identity's appearances into images: ``(camera index, identity indices)`` per image.

    An identity appears at most once per image and, while it can, in a camera it has not used
    yet; images fill evenly up to a capacity drawn from ``people_per_image``. The first
    ``regulars`` identities appear ``config.regular_appearances`` times.
    """
    counts = rng.integers(config.appearances[0], config.appearances[1] + 1, size=num_ids)
    counts[:regulars] = config.regular_appearances
    lo, hi = config.people_per_image
    n_images = max(math.ceil(counts.sum() / ((lo + hi) / 2)), config.appearances[1], int(counts.max()))
    capacity = rng.integers(lo, hi + 1, size=n_images)
    cams = rng.permutation(np.arange(n_images) % config.num_cameras)
    fill = np.zeros(n_images, dtype=int)
    members: list[list[int]] = [[] for _ in range(n_images)]
    for pid in rng.permutation(num_ids):
        used_images: list[int] = []
        used_cams = np.zeros(config.num_cameras, dtype=bool)
        for _ in range(counts[pid]):
            free = fill < capacity
            free[used_images] = False
            if not free.any():  # every image with room already shows this identity: open a new one
                capacity = np.append(capacity, rng.integers(lo, hi + 1))
                cams = np.append(cams, rng.integers(config.num_cameras))
                fill = np.append(fill, 0)
                free = np.append(free, True)
                members.append([])
            score = np.where(free, capacity - fill + 2.0 * ~used_cams[cams] + rng.random(len(fill)), -np.inf)
            k = int(np.argmax(score))
            members[k].append(int(pid))
            fill[k] += 1
            used_images.append(k)
            used_cams[cams[k]] = True
    return [(int(c), sorted(m)) for c, m in zip(cams, members, strict=True) if m]


def plan_benchmark(config: SyntheticConfig, seed: int) -> BenchmarkPlan:
    """Decide every image, person, pose, height and box of the benchmark from ``seed``.

    The test split is padded with images of unlabelled people only until every query's largest
    gallery can be filled with images that do not show its identity.
    """
    streams = random_streams(seed)
    train_ids, test_ids = population(config, seed)
    cameras = make_cameras(
        streams["cameras"], config.num_cameras, config.image_width, config.image_height, config.max_height
    )
    rng = streams["layout"]
    images: list[PlannedImage] = []
    for split, ids in (("train", train_ids), ("test", test_ids)):
        groups = _assign_images(rng, len(ids), config, regulars=config.regulars if split == "test" else 0)
        if split == "test":
            needed = config.gallery_sizes[-1] + 1  # G images that do not show the query, and the query's
            groups += [(int(rng.integers(config.num_cameras)), []) for _ in range(needed - len(groups))]
        for cam, members in groups:
            lo, hi = config.distractors_per_image
            if not members:  # a padding image still needs someone in it
                lo, hi = max(lo, 1), max(hi, 1)
            n_distractors = int(rng.integers(lo, hi + 1))
            people = [(ids[m], m) for m in members]
            people += [(sample_identity(rng, -1), UNLABELED) for _ in range(n_distractors)]
            heights = sample_heights(rng, len(people), config)
            requests = [
                PersonRequest(identity, sample_pose(rng), pid, int(h), float(rng.uniform(0.93, 1.07)))
                for (identity, pid), h in zip(people, heights, strict=True)
            ]
            clutter = int(rng.integers(config.clutter_per_image[0], config.clutter_per_image[1] + 1))
            scene = plan_scene(
                rng,
                cameras[cam],
                requests,
                config.image_width,
                config.image_height,
                config.backgrounds_per_camera,
                config.occlusion_prob,
                clutter,
            )
            images.append(PlannedImage(split, scene))
    return BenchmarkPlan(config, seed, tuple(cameras), tuple(train_ids), tuple(test_ids), tuple(images))


# ----------------------------------------------------------------------------------------------
