"""Rendered people in the synthetic benchmark's scenes: ``make-synthetic --people 3d``.

The benchmark's plan (``synthetic.plan``) decides who appears in which image, at what height,
where their feet stand and what stands in front of them; here each of those people is a rendered
3D person (``dataset.PersonPainter``) instead of a drawn figure, in the same cameras, backgrounds,
occluders, shadows, colour casts, blur and noise. A rendered person's width depends on their
body, clothes, gait and heading, which only the render knows, so each box keeps its planned
height, feet and centre and takes the render's own width, and how much of each person stays
visible is counted again. Boxes are the renders' exact extents; the annotation files are written
after the images (``synthetic.generate.make_synthetic``).

Who is who: the plan's train person ``m`` and test person ``m`` are each one rendered identity,
the same in every image they appear in; every unlabelled passer-by is a person of their own. The
plan's look-alike families mean nothing here (each rendered identity is drawn on its own), so a
gallery's "look-alike" distractor images are simply other people's.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from personsearch.data.people3d import body, outfit
from personsearch.data.people3d.dataset import process_painter
from personsearch.data.synthetic.drawing import Sprite
from personsearch.data.synthetic.plan import BenchmarkPlan, PlannedImage
from personsearch.data.synthetic.scenes import ScenePlan, render_scene, visible_fractions

SALT = 0x5CE2E
"""Separates the seeds of scene people from those of ``render-people``'s identities."""
SPLIT_CODES = {"train": 0, "test": 1}


def identity_seed(seed: int, split: str, pid: int) -> int:
    """The rendered identity of the plan's person ``pid`` of ``split`` in the benchmark of ``seed``."""
    return int(np.random.SeedSequence([seed, SALT, SPLIT_CODES[split], pid]).generate_state(1)[0])


def _sprite(cutout: np.ndarray, width: int, height: int) -> Sprite:
    """A premultiplied RGBA cutout resized to the box (area-averaged when shrinking)."""
    shrink = height <= cutout.shape[0]
    resized = cv2.resize(
        cutout, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    )
    return Sprite(np.ascontiguousarray(resized[..., :3]), resized[..., 3] / 255.0)


def place_people(
    seed: int, cameras: int, index: int, planned: PlannedImage, single_thread: bool = False
) -> tuple[ScenePlan, list[Sprite]]:
    """Image ``index`` of the benchmark of ``seed`` with rendered people: its final plan (each box
    the render's extent, visibility counted again) and each person's sprite, for
    ``synthetic.scenes.render_scene``."""
    painter = process_painter(seed, cameras, single_thread=single_thread)
    scene = planned.scene
    people, sprites = [], []
    for j, placed in enumerate(scene.people):
        key = (
            identity_seed(seed, planned.split, placed.pid)
            if placed.pid >= 0
            else int(np.random.SeedSequence([seed, SALT, 2, index, j]).generate_state(1)[0])
        )
        rng = np.random.default_rng([seed, SALT, 3, index, j])
        cutout = painter.cutout(outfit.make_identity(key), scene.camera.cam - 1, rng)
        height = placed.height
        width = min(max(1, round(cutout.shape[1] * height / cutout.shape[0])), scene.width)
        left = min(max(round(placed.left + placed.width / 2 - width / 2), 0), scene.width - width)
        people.append(dataclasses.replace(placed, left=left, width=width))
        sprites.append(_sprite(cutout, width, height))
    visible = visible_fractions(people, scene.objects, scene.width, scene.height)
    final = dataclasses.replace(
        scene,
        people=tuple(dataclasses.replace(p, visible=v) for p, v in zip(people, visible, strict=True)),
    )
    return final, sprites


def _render_to(job: tuple[int, int, int, PlannedImage, Path, int, bool]) -> ScenePlan:
    seed, cameras, index, planned, path, quality, single_thread = job
    final, sprites = place_people(seed, cameras, index, planned, single_thread)
    Image.fromarray(render_scene(final, sprites)).save(path, format="JPEG", quality=quality)
    return final


def render_benchmark(plan: BenchmarkPlan, paths: list[Path], workers: int = 1) -> BenchmarkPlan:
    """Write every planned image with rendered people to its path (JPEG at the plan's quality);
    returns the plan with each scene's final boxes and visibility, from which the annotations are
    written. The same plan writes the same bytes whatever ``workers`` is."""
    jobs = [
        (plan.seed, plan.config.num_cameras, i, image, path, plan.config.jpeg_quality, workers > 1)
        for i, (image, path) in enumerate(zip(plan.images, paths, strict=True))
    ]
    if workers <= 1:
        scenes = [_render_to(job) for job in jobs]
    else:
        body.topology()  # builds Anny's caches here, once, before the workers read them
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            scenes = pool.map(_render_to, jobs, chunksize=8)
    images = tuple(PlannedImage(im.split, s) for im, s in zip(plan.images, scenes, strict=True))
    return dataclasses.replace(plan, images=images)
