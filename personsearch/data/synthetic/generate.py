"""Writing a synthetic benchmark: the plan as protocol records, images and annotation files.

Generation has two stages. ``plan_benchmark`` (``plan.py``) decides everything from the seed
alone; ``make_synthetic`` turns the plan into a ``PersonSearchDataset`` in the CUHK-SYSU or PRW
layout (queries, galleries, look-alike distractors), draws the images and writes the annotation
files with ``personsearch.data.writers``, so the ordinary loaders and protocols run on it
unchanged.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shutil
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
from PIL import Image

from personsearch.data.cuhk_sysu import IMAGE_DIR
from personsearch.data.prw import FRAME_DIR
from personsearch.data.records import UNLABELED, GalleryItem, PersonSearchDataset, Query, Scene
from personsearch.data.stats import dataset_statistics
from personsearch.data.synthetic.contact_sheet import make_contact_sheet, query_sheet
from personsearch.data.synthetic.plan import (
    GENERATOR_VERSION,
    BenchmarkPlan,
    SyntheticConfig,
    plan_benchmark,
    random_streams,
    resolve_config,
)
from personsearch.data.synthetic.scenes import ScenePlan, render_scene

log = logging.getLogger(__name__)

LAYOUTS = ("cuhk", "prw")
PEOPLE = ("drawn", "3d")
"""Who walks in the scenes: the drawn figures (``figures.py``), or rendered 3D people
(``personsearch.data.people3d.scenes``; needs the ``people3d`` extra)."""
HARD_VISIBILITY = 0.7
"""A person with less of their box visible than this is flagged ``hard`` and avoided as a query."""


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
    rng = random_streams(plan.seed)["names"]
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


def _distractor_order(
    rng: np.random.Generator, lookalike: list[int], others: list[int], fraction: float, count: int
) -> list[int]:
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
    rng = random_streams(plan.seed)["protocol"]
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
                np.asarray(pids, dtype=np.int64),
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
            galleries = {
                g: target_items + [GalleryItem(names[i], None) for i in order[: g - len(target_items)]]
                for g in config.gallery_sizes
            }
            q_scene = scenes[query.image]
            queries.append(
                Query(q_scene.name, q_scene.path, q_scene.boxes[query.person].copy(), m + 1, 0, galleries)
            )
    else:
        pairs = [
            (m, cam) for m in range(len(plan.test_ids)) for cam in sorted({a.cam for a in appearances[m]})
        ]
        targets = _height_targets(rng, len(pairs), config)
        for (m, cam), target in zip(pairs, targets, strict=True):
            query = _pick_query([a for a in appearances[m] if a.cam == cam], float(target))
            q_scene = scenes[query.image]
            queries.append(
                Query(
                    q_scene.name, q_scene.path, q_scene.boxes[query.person].copy(), m + 1 + test_offset, cam
                )
            )

    train = sorted(
        (s for s, im in zip(scenes, plan.images, strict=True) if im.split == "train"), key=lambda s: s.name
    )
    gallery = sorted(
        (s for s, im in zip(scenes, plan.images, strict=True) if im.split == "test"), key=lambda s: s.name
    )
    return PersonSearchDataset(
        "synthetic", root, "cuhk" if layout == "cuhk" else "prw", train, gallery, queries
    )


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
                "choose a new folder, or replace a synthetic benchmark written there before (a folder "
                "holding synthetic.json) with --overwrite (overwrite=True in Python)"
            )
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)


def default_workers(most: int = 8) -> int:
    """Processes to draw a benchmark's images in: the CPUs this process may use, at most
    ``most`` (drawing is CPU-bound and the images are the same bytes whatever the count)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(most, cpus))


def make_synthetic(
    out: str | Path,
    preset: str = "small",
    seed: int = 0,
    layout: str = "cuhk",
    *,
    people: str = "drawn",
    workers: int = 1,
    overwrite: bool = False,
    **overrides: object,
) -> PersonSearchDataset:
    """Generate the benchmark under ``out`` and return the records written there.

    ``overrides`` replace preset fields (``num_train_ids=..., min_height=..., ...``). ``workers`` > 1
    draws images in that many processes (same bytes). ``people``: one of ``PEOPLE``; rendered
    people take the plan's places, heights and occluders with their own widths. Also writes
    ``synthetic.json`` (preset, seed, version, people, counts) and ``contact_sheet.png``: for
    drawn people look-alike identities at several scales, for rendered ones (CUHK layout) the
    first queries beside their appearances.
    """
    from personsearch.data.writers import write_cuhk_sysu, write_prw

    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {LAYOUTS}")
    if workers < 1:
        raise ValueError(f"workers={workers}: expected 1 (draw in this process) or more processes")
    if people not in PEOPLE:
        raise ValueError(f"unknown people {people!r}; choose one of {PEOPLE}")
    if people == "3d":  # before anything is written
        from personsearch.data.people3d.body import require_installed

        require_installed()
    config = resolve_config(preset, **overrides)
    root = Path(out).expanduser().resolve()
    _prepare_root(root, overwrite)
    info = {
        "generator": "personsearch.data.synthetic",
        "version": GENERATOR_VERSION,
        "preset": preset,
        "seed": seed,
        "layout": layout,
        "people": people,
        "overrides": {k: list(v) if isinstance(v, tuple) else v for k, v in overrides.items()},
        "config": dataclasses.asdict(config),
        "complete": False,
    }
    (root / "synthetic.json").write_text(json.dumps(info, indent=2) + "\n")

    start = time.perf_counter()
    plan = plan_benchmark(config, seed)
    image_dir = root / (IMAGE_DIR if layout == "cuhk" else FRAME_DIR)
    paths = [image_dir / name for name in image_names(plan, layout)]
    image_dir.mkdir(parents=True, exist_ok=True)
    log.info("planned %d images in %.1fs; drawing them", len(paths), time.perf_counter() - start)
    if people == "3d":
        from personsearch.data.people3d.dataset import GENERATOR_VERSION as PEOPLE3D_VERSION
        from personsearch.data.people3d.scenes import render_benchmark

        info["people3d_version"] = PEOPLE3D_VERSION
        plan = render_benchmark(plan, paths, workers)
    else:
        jobs = [
            (image.scene, path, config.jpeg_quality) for image, path in zip(plan.images, paths, strict=True)
        ]
        if workers > 1:
            with ProcessPoolExecutor(workers) as pool:
                list(pool.map(_render_to, jobs, chunksize=8))
        else:
            for k, job in enumerate(jobs, start=1):
                _render_to(job)
                if k % 200 == 0:
                    log.info("drew %d/%d images (%.1fs)", k, len(jobs), time.perf_counter() - start)
    dataset = build_dataset(plan, root, layout)
    (write_cuhk_sysu if layout == "cuhk" else write_prw)(dataset, root)
    if people == "drawn":
        make_contact_sheet(root / "contact_sheet.png", seed, preset, **cast("dict[str, Any]", overrides))
    elif layout == "cuhk":  # rendered people: no families to draw, so each query across its images
        query_sheet(dataset, root / "contact_sheet.png")
    info.update(complete=True, counts=dataset_statistics(dataset)["splits"])
    (root / "synthetic.json").write_text(json.dumps(info, indent=2) + "\n")
    log.info("wrote %s in %.1fs", root, time.perf_counter() - start)
    return dataset
