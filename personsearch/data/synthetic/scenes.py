"""Scenes: where every person and object stands (``plan_scene``) and the drawn image
(``render_scene``). A scene is laid out first (how much of each person stays visible included) and
drawn afterwards, so annotations never depend on pixels. Cameras: ``cameras.py``; backgrounds
and objects: ``backgrounds.py``; people: ``identities.py`` and ``figures.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from personsearch.data.synthetic.backgrounds import OBJECTS_BY_STYLE, SceneObject, background
from personsearch.data.synthetic.cameras import Camera
from personsearch.data.synthetic.drawing import Ellipse, Sprite, composite, darken, extent, rasterize
from personsearch.data.synthetic.figures import figure, supersample_for
from personsearch.data.synthetic.identities import Identity, Pose

# ----------------------------------------------------------------------------------------------
# layout


@dataclass(frozen=True)
class PersonPlacement:
    """One person in a scene: who, in which pose, and the exact pixel box their figure fills."""

    identity: Identity
    pose: Pose
    pid: int
    """Identity index within its split, or ``-1`` for an unlabelled distractor."""
    left: int
    top: int
    width: int
    height: int
    visible: float
    """Estimated fraction of the box not hidden by people or objects in front."""

    @property
    def foot(self) -> int:
        return self.top + self.height

    @property
    def box(self) -> tuple[int, int, int, int]:
        return self.left, self.top, self.left + self.width, self.top + self.height


@dataclass(frozen=True)
class ScenePlan:
    """Everything needed to draw one image, fixed before any pixel is drawn."""

    camera: Camera
    variant: int
    people: tuple[PersonPlacement, ...]
    objects: tuple[SceneObject, ...]
    exposure: float
    seed: int
    width: int
    height: int


@dataclass(frozen=True)
class PersonRequest:
    """A person to place: identity, pose, drawn height, whether they are labelled (pid >= 0)."""

    identity: Identity
    pose: Pose
    pid: int
    height: int
    stature: float


def _occlusion(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Fraction of box ``a`` that box ``b`` covers."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    return iw * ih / max((a[2] - a[0]) * (a[3] - a[1]), 1e-9)


def plan_scene(
    rng: np.random.Generator,
    camera: Camera,
    people: list[PersonRequest],
    width: int,
    height: int,
    variants: int,
    occlusion_prob: float,
    clutter: int,
) -> ScenePlan:
    """Lay out one scene: feet on the ground plane, little overlap between people, occluders.

    Labelled people are always placed (at the least crowded of several positions); an unlabelled
    distractor that only fits behind or in front of someone is dropped. With probability
    ``occlusion_prob`` a labelled person gets an object standing just in front of them.
    """
    placed: list[PersonPlacement] = []
    for req in sorted(people, key=lambda r: (r.pid < 0, -r.height)):
        w = figure(req.identity, req.pose).box_width(req.height)
        if w > width or req.height > height:
            raise ValueError(
                f"a person {req.height} px tall and {w} px wide does not fit a {width}x{height} image"
            )
        foot = int(round(min(max(camera.foot_row(req.height, req.stature), req.height), height)))
        top = foot - req.height
        best, best_cost = 0, np.inf
        for left in rng.integers(0, width - w + 1, size=12):
            box = (int(left), top, int(left) + w, foot)
            if any(box == p.box for p in placed):
                continue  # two identical boxes would make box-matched labels ambiguous
            cost = max((max(_occlusion(box, p.box), _occlusion(p.box, box)) for p in placed), default=0.0)
            if cost < best_cost:
                best, best_cost = int(left), cost
        if best_cost == np.inf and req.pid >= 0:
            taken = {p.left for p in placed if (p.top, p.width, p.height) == (top, w, req.height)}
            best, best_cost = next(x for x in range(width - w + 1) if x not in taken), 1.0
        if best_cost == np.inf or (req.pid < 0 and best_cost > 0.3):
            continue
        placed.append(PersonPlacement(req.identity, req.pose, req.pid, best, top, w, req.height, 1.0))

    kinds = OBJECTS_BY_STYLE[camera.style]
    objects: list[SceneObject] = []
    labelled = [p for p in placed if p.pid >= 0]

    def hides_too_much(obj: SceneObject, limit: float) -> bool:
        return any(_occlusion(q.box, obj.box()) > limit for q in labelled if q.foot <= obj.base)

    for p in labelled:
        if rng.random() >= occlusion_prob:
            continue
        for _attempt in range(6):  # an object just in front that hides 10-50% of the person
            base = p.foot + float(rng.uniform(0.02, 0.15)) * p.height
            kind = kinds[int(rng.integers(len(kinds)))]
            tall = kind in ("pole", "pillar", "tree")
            offset = rng.uniform(0.2, 0.5) * rng.choice((-1, 1)) if tall else rng.uniform(-0.5, 0.5)
            obj = SceneObject(
                kind,
                int(rng.integers(12)),
                p.left + p.width * (0.5 + float(offset)),
                base,
                camera.units_to_pixels(base),
            )
            if _occlusion(p.box, obj.box()) >= 0.1 and not hides_too_much(obj, 0.5):
                objects.append(obj)
                break
    floor = height - camera.horizon
    for _ in range(clutter):
        base = float(rng.uniform(camera.horizon + 0.05 * floor, camera.horizon + 0.75 * floor))
        obj = SceneObject(
            kinds[int(rng.integers(len(kinds)))],
            int(rng.integers(12)),
            float(rng.uniform(0, width)),
            base,
            camera.units_to_pixels(base),
        )
        if not hides_too_much(obj, 0.2):
            objects.append(obj)

    visible = visible_fractions(placed, objects, width, height)
    people_out = tuple(
        PersonPlacement(p.identity, p.pose, p.pid, p.left, p.top, p.width, p.height, v)
        for p, v in zip(placed, visible, strict=True)
    )
    return ScenePlan(
        camera,
        int(rng.integers(variants)),
        people_out,
        tuple(objects),
        float(rng.uniform(0.88, 1.12)),
        int(rng.integers(2**31)),
        width,
        height,
    )


def visible_fractions(
    people: Sequence[PersonPlacement], objects: Sequence[SceneObject], width: int, height: int
) -> list[float]:
    """Visible fraction of each person's box, painting boxes far to near on a 4-pixel grid."""
    cell = 4
    owner = np.full((height // cell + 1, width // cell + 1), -1, dtype=np.int32)
    items: list[tuple[float, int, int, tuple[float, float, float, float]]] = [
        (p.foot, 0, i, p.box) for i, p in enumerate(people)
    ]
    items += [(o.base, 1, -2, o.box()) for o in objects]
    for _, _, idx, (x1, y1, x2, y2) in sorted(items, key=lambda t: (t[0], t[1])):
        r0, r1 = max(int(y1 // cell), 0), max(int(np.ceil(y2 / cell)), 0)
        c0, c1 = max(int(x1 // cell), 0), max(int(np.ceil(x2 / cell)), 0)
        owner[r0:r1, c0:c1] = idx
    out = []
    for i, p in enumerate(people):
        x1, y1, x2, y2 = p.box
        region = owner[y1 // cell : int(np.ceil(y2 / cell)), x1 // cell : int(np.ceil(x2 / cell))]
        out.append(float(np.count_nonzero(region == i)) / max(region.size, 1))
    return out


# ----------------------------------------------------------------------------------------------
# rendering


def _lighting(height: int, width: int, light: float) -> np.ndarray:
    """Shading of a body lit from one side and from above: HxWx1 gains around 1."""
    x = np.linspace(-1.0, 1.0, width, dtype=np.float32)[None, :, None]
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    return (1.0 + 0.16 * light * x) * (1.04 - 0.1 * y)


def _shadow(canvas: np.ndarray, centre: float, foot: float, rx: float, ry: float) -> None:
    """A soft contact shadow: a dark ellipse on the ground around the feet."""
    rx, ry = max(rx, 1.0), max(ry, 0.75)
    w, h = int(np.ceil(2 * rx)), int(np.ceil(2 * ry))
    sprite = rasterize([Ellipse(rx, ry, rx, ry, (0, 0, 0))], 0.0, 0.0, 1.0, w, h, 4)
    darken(canvas, sprite, int(round(centre - rx)), int(round(foot - ry)), 0.35)


def render_scene(plan: ScenePlan, people: Sequence[Sprite] | None = None) -> np.ndarray:
    """Draw a planned scene: HxWx3 uint8 RGB. ``people``: each placed person's own sprite, of
    their box's size and already lit (rendered 3D people), in place of their drawn figure."""
    cam = plan.camera
    canvas = background(cam, plan.variant, plan.width, plan.height).copy()
    items: list[tuple[float, int, int]] = [(p.foot, 0, i) for i, p in enumerate(plan.people)]
    items += [(o.base, 1, i) for i, o in enumerate(plan.objects)]
    for _, kind, i in sorted(items):
        if kind == 0:
            p = plan.people[i]
            if people is not None:
                _shadow(canvas, p.left + p.width / 2, p.foot, 0.15 * p.height, 0.025 * p.height)
                composite(canvas, people[i], p.left, p.top)
                continue
            fig = figure(p.identity, p.pose)
            _shadow(
                canvas,
                p.left - fig.xmin * p.height,
                p.foot,
                0.15 * p.identity.build * p.height,
                0.025 * p.height,
            )
            sprite = fig.render(p.height)
            composite(canvas, sprite, p.left, p.top, _lighting(p.height, p.width, cam.light))
        else:
            o = plan.objects[i]
            x0, y0, x1, y1 = extent(o.shapes())
            w, h = max(int(np.ceil((x1 - x0) * o.scale)), 1), max(int(np.ceil((y1 - y0) * o.scale)), 1)
            sprite = rasterize(o.shapes(), x0, y0, o.scale, w, h, supersample_for(h))
            composite(
                canvas,
                sprite,
                int(round(o.center + x0 * o.scale)),
                int(round(o.base + y0 * o.scale)),
                _lighting(h, w, cam.light),
            )
    canvas *= np.asarray(cam.gain, np.float32) * plan.exposure
    img = Image.fromarray(canvas.clip(0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(cam.blur))
    rng = np.random.default_rng(plan.seed)
    noisy = np.asarray(img, np.float32) + rng.standard_normal(canvas.shape, dtype=np.float32) * cam.noise
    return noisy.clip(0, 255).astype(np.uint8)
