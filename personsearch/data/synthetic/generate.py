"""The synthetic benchmark as a whole: presets, planning, protocol records and writing to disk.

Generation has two stages. ``plan_benchmark`` decides everything (identities, which images each
identity appears in and at what height, every box) from the seed alone; ``make_synthetic`` turns
the plan into a ``PersonSearchDataset`` in the CUHK-SYSU or PRW layout, draws the images and
writes the annotation files with ``personsearch.data.writers``, so the ordinary loaders and
protocols run on it unchanged. Four independent random streams (people, cameras, layout,
protocol) keep e.g. the cameras unchanged when only the number of identities is overridden.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import shutil
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from personsearch.data.cuhk_sysu import GALLERY_SIZES, IMAGE_DIR
from personsearch.data.prw import FRAME_DIR
from personsearch.data.records import UNLABELED, GalleryItem, PersonSearchDataset, Query, Scene
from personsearch.data.stats import dataset_statistics
from personsearch.data.synthetic.people import Identity, sample_identity, sample_population, sample_pose
from personsearch.data.synthetic.scenes import Camera, PersonRequest, ScenePlan, make_cameras, plan_scene, render_scene

log = logging.getLogger(__name__)

GENERATOR_VERSION = "1"
"""Bumped whenever the same seed and preset would produce different annotations or pixels."""

LAYOUTS = ("cuhk", "prw")
HARD_VISIBILITY = 0.7
"""A person with less of their box visible than this is flagged ``hard`` and avoided as a query."""
MAX_IMAGE_SIDE = 4096


@dataclass(frozen=True)
class SyntheticConfig:
    """Size and difficulty of a synthetic benchmark. Ranges are inclusive ``(low, high)`` pairs."""

    num_train_ids: int
    num_test_ids: int
    appearances: tuple[int, int] = (3, 6)
    """Images each identity appears in."""
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
        minimum = {"appearances": 2, "people_per_image": 1, "distractors_per_image": 0, "family_size": 1, "clutter_per_image": 0}
        for field, low in minimum.items():
            value = getattr(self, field)
            if len(value) != 2 or not all(isinstance(v, int) for v in value) or not low <= value[0] <= value[1]:
                raise bad(field, f"an inclusive range (low, high) of integers with {low} <= low <= high")
        for field in ("image_width", "image_height"):
            if not 64 <= getattr(self, field) <= MAX_IMAGE_SIDE:
                raise bad(field, f"an image side between 64 and {MAX_IMAGE_SIDE} pixels")
        if not 8 <= self.min_height < self.max_height:
            raise bad("min_height", f"8 <= min_height < max_height ({self.max_height})")
        if self.max_height > self.image_height * 0.9:
            raise bad("max_height", f"at most 90% of image_height ({self.image_height}) so the tallest people fit")
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
    "standard": SyntheticConfig(num_train_ids=600, num_test_ids=350, gallery_sizes=(50, 100)),
}
"""``tiny``: tests (seconds); ``small``: the demo (a minute or two); ``standard``: the benchmark."""


def resolve_config(preset: str, **overrides: object) -> SyntheticConfig:
    """The preset's config with ``overrides`` (config field names) applied and validated."""
    if preset not in PRESETS:
        raise ValueError(f"unknown synthetic preset {preset!r}; choose one of {sorted(PRESETS)}")
    fields = {f.name for f in dataclasses.fields(SyntheticConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise TypeError(f"unknown synthetic config override(s) {unknown}; valid names: {sorted(fields)}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
    return dataclasses.replace(PRESETS[preset], **values)


# ----------------------------------------------------------------------------------------------
# planning


def _streams(seed: int) -> dict[str, np.random.Generator]:
    names = ("people", "cameras", "layout", "protocol", "names")
    children = np.random.SeedSequence(seed).spawn(len(names))
    return {n: np.random.default_rng(c) for n, c in zip(names, children, strict=True)}


def population(config: SyntheticConfig, seed: int) -> tuple[list[Identity], list[Identity]]:
    """Train and test identities (disjoint families) of the benchmark with this config and seed."""
    rng = _streams(seed)["people"]
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
    values = np.exp(rng.uniform(math.log(lo), math.log(hi), count)) if loguniform else rng.uniform(lo, hi, count)
    return np.clip(np.round(values), lo, hi).astype(int)


def _assign_images(rng: np.random.Generator, num_ids: int, config: SyntheticConfig) -> list[tuple[int, list[int]]]:
    """Pack every identity's appearances into images: ``(camera index, identity indices)`` per image.

    An identity appears at most once per image and, while it can, in a camera it has not used
    yet; images fill evenly up to a capacity drawn from ``people_per_image``.
    """
    counts = rng.integers(config.appearances[0], config.appearances[1] + 1, size=num_ids)
    lo, hi = config.people_per_image
    n_images = max(math.ceil(counts.sum() / ((lo + hi) / 2)), config.appearances[1])
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
    streams = _streams(seed)
    train_ids, test_ids = population(config, seed)
    cameras = make_cameras(streams["cameras"], config.num_cameras, config.image_width, config.image_height, config.max_height)
    rng = streams["layout"]
    images: list[PlannedImage] = []
    for split, ids in (("train", train_ids), ("test", test_ids)):
        groups = _assign_images(rng, len(ids), config)
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
                rng, cameras[cam], requests, config.image_width, config.image_height, config.backgrounds_per_camera, config.occlusion_prob, clutter
            )
            images.append(PlannedImage(split, scene))
    return BenchmarkPlan(config, seed, tuple(cameras), tuple(train_ids), tuple(test_ids), tuple(images))


# ----------------------------------------------------------------------------------------------
# records


@dataclass(frozen=True)
class _Appearance:
    """Where a test identity appears: image and person index, drawn height, visibility, camera."""

    image: int
    person: int
    height: int
    visible: float
    cam: int


def image_names(plan: BenchmarkPlan, layout: str) -> list[str]:
    """File name of each planned image: CUHK ``s{n}.jpg`` with train and test interleaved, PRW
    ``c{cam}s1_{frame:06d}.jpg``."""
    rng = _streams(plan.seed)["names"]
    if layout == "cuhk":
        numbers = rng.permutation(len(plan.images)) + 1
        return [f"s{n}.jpg" for n in numbers]
    names = [""] * len(plan.images)
    by_cam: dict[int, list[int]] = defaultdict(list)
    for i, image in enumerate(plan.images):
        by_cam[image.scene.camera.cam].append(i)
    for cam, indices in by_cam.items():
        for frame, i in enumerate(rng.permutation(indices)):
            names[int(i)] = f"c{cam}s1_{(frame + 1) * 25:06d}.jpg"
    return names


def _height_targets(rng: np.random.Generator, count: int, config: SyntheticConfig) -> np.ndarray:
    """``count`` query heights evenly covering the height range (in the config's scale), shuffled."""
    q = (rng.permutation(count) + 0.5) / max(count, 1)
    lo, hi = config.min_height, config.max_height
    if config.height_distribution == "loguniform":
        return np.exp(math.log(lo) + q * (math.log(hi) - math.log(lo)))
    return lo + q * (hi - lo)


def _pick_query(options: list[_Appearance], target: float) -> _Appearance:
    """The well-visible appearance whose height is closest (in log scale) to ``target``."""
    clear = [a for a in options if a.visible >= HARD_VISIBILITY] or options
    return min(clear, key=lambda a: (abs(math.log(a.height / target)), a.image, a.person))


def _distractor_order(rng: np.random.Generator, lookalike: list[int], others: list[int], fraction: float, count: int) -> list[int]:
    """``count`` distractor images, each drawn from the look-alike images with probability ``fraction``."""
    look, rest = list(rng.permutation(lookalike)), list(rng.permutation(others))
    order: list[int] = []
    while len(order) < count and (look or rest):
        take_look = bool(look) and (not rest or rng.random() < fraction)
        order.append(int((look if take_look else rest).pop()))
    return order


def build_dataset(plan: BenchmarkPlan, root: Path, layout: str) -> PersonSearchDataset:
    """The ``PersonSearchDataset`` that ``make_synthetic`` writes for ``plan`` under ``root``.

    CUHK: train pids 1..N in identity order, test query ``i`` has pid ``i + 1`` and galleries of
    every configured size (targets first, never the query's own image), cam 0, hard flags. PRW:
    test pids follow the train pids, one query per test identity and camera, unlabelled = UNLABELED.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {LAYOUTS}")
    rng = _streams(plan.seed)["protocol"]
    config = plan.config
    names = image_names(plan, layout)
    image_dir = root / (IMAGE_DIR if layout == "cuhk" else FRAME_DIR)
    n_train = len(plan.train_ids)
    test_offset = 0 if layout == "cuhk" else n_train

    scenes: list[Scene] = []
    appearances: dict[int, list[_Appearance]] = defaultdict(list)
    for i, image in enumerate(plan.images):
        people = image.scene.people
        offset = 1 if image.split == "train" else 1 + test_offset
        pids = [p.pid + offset if p.pid >= 0 else UNLABELED for p in people]
        if image.split == "test":
            for j, p in enumerate(people):
                if p.pid >= 0:
                    appearances[p.pid].append(_Appearance(i, j, p.height, p.visible, image.scene.camera.cam))
        scenes.append(
            Scene(
                names[i],
                image_dir / names[i],
                np.asarray([p.box for p in people], dtype=np.float32),
                pids,
                0 if layout == "cuhk" else image.scene.camera.cam,
                np.asarray([p.visible < HARD_VISIBILITY for p in people]) if layout == "cuhk" else None,
            )
        )

    queries: list[Query] = []
    if layout == "cuhk":
        test_images = [i for i, im in enumerate(plan.images) if im.split == "test"]
        targets = _height_targets(rng, len(plan.test_ids), config)
        family_images: dict[int, set[int]] = defaultdict(set)
        for m, identity in enumerate(plan.test_ids):
            family_images[identity.family].update(a.image for a in appearances[m])
        for m, identity in enumerate(plan.test_ids):
            query = _pick_query(appearances[m], float(targets[m]))
            shown = {a.image for a in appearances[m]}
            target_items = [
                GalleryItem(names[a.image], scenes[a.image].boxes[a.person].copy())
                for a in (appearances[m][k] for k in rng.permutation(len(appearances[m])))
                if a.image != query.image
            ]
            lookalike = sorted(family_images[identity.family] - shown)
            others = [i for i in test_images if i not in shown and i not in family_images[identity.family]]
            need = config.gallery_sizes[-1] - len(target_items)
            # always enough: plan_benchmark pads the test split to at least G + 1 images
            order = _distractor_order(rng, lookalike, others, config.lookalike_fraction, need)
            galleries = {g: target_items + [GalleryItem(names[i], None) for i in order[: g - len(target_items)]] for g in config.gallery_sizes}
            q_scene = scenes[query.image]
            queries.append(Query(q_scene.name, q_scene.path, q_scene.boxes[query.person].copy(), m + 1, 0, galleries))
    else:
        pairs = [(m, cam) for m in range(len(plan.test_ids)) for cam in sorted({a.cam for a in appearances[m]})]
        targets = _height_targets(rng, len(pairs), config)
        for (m, cam), target in zip(pairs, targets, strict=True):
            query = _pick_query([a for a in appearances[m] if a.cam == cam], float(target))
            q_scene = scenes[query.image]
            queries.append(Query(q_scene.name, q_scene.path, q_scene.boxes[query.person].copy(), m + 1 + test_offset, cam))

    train = sorted((s for s, im in zip(scenes, plan.images, strict=True) if im.split == "train"), key=lambda s: s.name)
    gallery = sorted((s for s, im in zip(scenes, plan.images, strict=True) if im.split == "test"), key=lambda s: s.name)
    return PersonSearchDataset("synthetic", root, "cuhk" if layout == "cuhk" else "prw", train, gallery, queries)


# ----------------------------------------------------------------------------------------------
# writing


def _render_to(job: tuple[ScenePlan, Path, int]) -> None:
    scene, path, quality = job
    Image.fromarray(render_scene(scene)).save(path, format="JPEG", quality=quality)


def _prepare_root(root: Path, overwrite: bool) -> None:
    marker = root / "synthetic.json"
    if root.exists() and not root.is_dir():
        raise FileExistsError(f"{root} is a file; make_synthetic needs a folder to write the benchmark into")
    if root.exists() and any(root.iterdir()):
        if not overwrite or not marker.is_file():
            raise FileExistsError(
                f"{root} is not empty; make_synthetic writes a whole benchmark into an empty folder: "
                "choose a new folder, or pass overwrite=True to replace a synthetic benchmark written "
                "there before (a folder holding synthetic.json)"
            )
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)


def make_synthetic(
    out: str | Path,
    preset: str = "small",
    seed: int = 0,
    layout: str = "cuhk",
    *,
    workers: int = 1,
    overwrite: bool = False,
    **overrides: object,
) -> PersonSearchDataset:
    """Generate the benchmark under ``out`` and return the records written there.

    ``overrides`` replace preset fields (``num_train_ids=..., min_height=..., ...``). ``workers`` > 1
    draws images in that many processes (same bytes). Also writes ``contact_sheet.png`` (look-alike
    identities at several scales) and ``synthetic.json`` (preset, seed, version, counts).
    """
    from personsearch.data.synthetic.contact_sheet import make_contact_sheet
    from personsearch.data.writers import write_cuhk_sysu, write_prw

    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {LAYOUTS}")
    if workers < 1:
        raise ValueError(f"workers={workers}: expected 1 (draw in this process) or more processes")
    config = resolve_config(preset, **overrides)
    root = Path(out).expanduser().resolve()
    _prepare_root(root, overwrite)
    info = {
        "generator": "personsearch.data.synthetic",
        "version": GENERATOR_VERSION,
        "preset": preset,
        "seed": seed,
        "layout": layout,
        "overrides": {k: list(v) if isinstance(v, tuple) else v for k, v in overrides.items()},
        "config": dataclasses.asdict(config),
        "complete": False,
    }
    (root / "synthetic.json").write_text(json.dumps(info, indent=2) + "\n")

    start = time.perf_counter()
    plan = plan_benchmark(config, seed)
    dataset = build_dataset(plan, root, layout)
    image_dir = root / (IMAGE_DIR if layout == "cuhk" else FRAME_DIR)
    jobs = [(image.scene, image_dir / name, config.jpeg_quality) for image, name in zip(plan.images, image_names(plan, layout), strict=True)]
    jobs[0][1].parent.mkdir(parents=True, exist_ok=True)
    log.info("planned %d images in %.1fs; drawing them", len(jobs), time.perf_counter() - start)
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(_render_to, jobs, chunksize=8))
    else:
        for k, job in enumerate(jobs, start=1):
            _render_to(job)
            if k % 200 == 0:
                log.info("drew %d/%d images (%.1fs)", k, len(jobs), time.perf_counter() - start)
    (write_cuhk_sysu if layout == "cuhk" else write_prw)(dataset, root)
    make_contact_sheet(root / "contact_sheet.png", seed, preset, **overrides)
    info.update(complete=True, counts=dataset_statistics(dataset)["splits"])
    (root / "synthetic.json").write_text(json.dumps(info, indent=2) + "\n")
    log.info("wrote %s in %.1fs", root, time.perf_counter() - start)
    return dataset
