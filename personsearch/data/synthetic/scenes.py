"""Cameras, procedural backgrounds, scene objects, person placement and scene rendering.

Each camera has a background style (street, plaza, park, corridor, campus, market), a ground
plane seen in perspective (a horizon and a scale: a person whose feet are ``d`` pixels below the
horizon is about ``scale * d`` pixels tall), and its own illumination: colour cast, brightness,
light direction, optical blur and sensor noise. A scene is laid out first (``plan_scene``: where
every person and object stands and how much of each person stays visible) and drawn afterwards
(``render_scene``), so annotations never depend on pixels.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from personsearch.data.synthetic.drawing import (
    RGB,
    Ellipse,
    Polygon,
    Shape,
    composite,
    darken,
    extent,
    rasterize,
    rect,
    shade,
)
from personsearch.data.synthetic.people import Identity, Pose, figure, supersample_for

STYLES = ("street", "plaza", "park", "corridor", "campus", "market")

OBJECTS_BY_STYLE: dict[str, tuple[str, ...]] = {
    "street": ("car", "pole", "bin", "sign", "bench", "tree"),
    "plaza": ("planter", "bench", "pole", "bin", "bush"),
    "park": ("bush", "bench", "tree", "bin"),
    "corridor": ("pillar", "bin", "sign", "bench"),
    "campus": ("bush", "railing", "bench", "tree", "bin"),
    "market": ("sign", "planter", "bin", "railing", "car"),
}
"""Scene objects each background style uses, for clutter and for occluding people."""

_CASTS: tuple[tuple[float, float, float], ...] = (
    (1.08, 1.0, 0.86),  # warm sunlight
    (0.9, 0.98, 1.1),  # cool shade / overcast
    (0.95, 1.05, 0.9),  # fluorescent green
    (1.0, 1.0, 1.0),  # neutral
    (1.06, 0.96, 1.02),  # sodium-ish magenta
    (0.92, 0.95, 1.0),  # dim blue evening
)


@dataclass(frozen=True)
class Camera:
    """One fixed camera: background style, ground-plane geometry and illumination."""

    cam: int
    """1-based camera id."""
    style: str
    horizon: float
    """Image row of the horizon (pixels)."""
    scale: float
    """Person height in pixels per pixel that the feet lie below the horizon."""
    vanish_x: float
    gain: tuple[float, float, float]
    """Per-channel colour cast times brightness, applied to the whole image."""
    light: float
    """Light direction in [-1, 1]: people and objects are brighter on the +x side when positive."""
    blur: float
    """Gaussian blur sigma (pixels) of the optics."""
    noise: float
    """Sensor noise standard deviation (grey levels)."""
    seed: int
    """Seed of the camera's background textures."""

    def foot_row(self, height: float, stature: float) -> float:
        """Row where a person drawn ``height`` px tall stands (``stature`` ~1: their real height)."""
        return self.horizon + height / (self.scale * stature)

    def units_to_pixels(self, base_row: float) -> float:
        """Pixels per person-height unit for something standing on ``base_row``."""
        return self.scale * max(base_row - self.horizon, 1.0)


def make_cameras(rng: np.random.Generator, count: int, width: int, height: int, max_person: int) -> list[Camera]:
    """``count`` cameras, cycling through the styles, each fitting a ``max_person`` px tall person."""
    cameras = []
    for i in range(count):
        horizon = float(rng.uniform(0.12, 0.42) * height)
        floor = height - 1.0 - horizon
        if floor <= max_person * 0.25:
            raise ValueError(f"image height {height} leaves no room for people of {max_person} px")
        cast = np.asarray(_CASTS[int(rng.integers(len(_CASTS)))]) * np.exp(rng.normal(0.0, 0.04, 3))
        gain = cast * rng.uniform(0.78, 1.12)  # colour cast times brightness
        cameras.append(
            Camera(
                cam=i + 1,
                style=STYLES[i % len(STYLES)],
                horizon=horizon,
                scale=max_person / (floor * 0.93),  # the tallest person, at the shortest stature, still fits
                vanish_x=float(rng.uniform(0.3, 0.7) * width),
                gain=(float(gain[0]), float(gain[1]), float(gain[2])),
                light=float(rng.uniform(-1.0, 1.0)),
                blur=float(rng.uniform(0.35, 0.85)),
                noise=float(rng.uniform(1.5, 4.5)),
                seed=int(rng.integers(2**31)),
            )
        )
    return cameras


# ----------------------------------------------------------------------------------------------
# scene objects, in person-height units with the base centre at (0, 0) and y growing downwards


@dataclass(frozen=True)
class SceneObject:
    """A placed object: ``kind`` and ``variant`` fix its shapes; it stands on ``base`` (row)."""

    kind: str
    variant: int
    center: float
    base: float
    scale: float
    """Pixels per person-height unit."""

    def shapes(self) -> tuple[Shape, ...]:
        """The object's shapes in its own units."""
        return object_shapes(self.kind, self.variant)

    def box(self) -> tuple[float, float, float, float]:
        """Pixel bounding box (x1, y1, x2, y2); it may extend past the image."""
        x0, y0, x1, y1 = extent(self.shapes())
        return (self.center + x0 * self.scale, self.base + y0 * self.scale, self.center + x1 * self.scale, self.base + y1 * self.scale)


_WOOD = ((120, 80, 46), (90, 90, 96), (60, 96, 60), (150, 110, 70))
_PAINT = ((180, 30, 30), (30, 70, 160), (230, 230, 230), (40, 40, 44), (220, 180, 30), (90, 140, 90))
_GREENS = ((46, 110, 50), (70, 130, 44), (34, 86, 48))


OBJECT_KINDS = tuple(sorted({kind for kinds in OBJECTS_BY_STYLE.values() for kind in kinds}))


@functools.lru_cache(maxsize=256)
def object_shapes(kind: str, variant: int) -> tuple[Shape, ...]:
    """Shapes of a scene object; ``variant`` picks its colours."""
    return tuple(_object_shapes(kind, variant))


def _object_shapes(kind: str, variant: int) -> list[Shape]:
    wood, paint, green = _WOOD[variant % 4], _PAINT[variant % 6], _GREENS[variant % 3]
    metal = (70, 72, 78)
    if kind == "bench":
        legs = [rect(x - 0.02, -0.14, x + 0.02, 0.0, metal) for x in (-0.4, 0.4)]
        return legs + [
            rect(-0.46, -0.15, 0.46, -0.115, wood),
            rect(-0.46, -0.3, 0.46, -0.215, wood),
            rect(-0.43, -0.215, -0.4, -0.14, metal),
            rect(0.4, -0.215, 0.43, -0.14, metal),
        ]
    if kind == "planter":
        leaves = [Ellipse(x, -0.3, 0.14, 0.11, shade(green, f)) for x, f in ((-0.2, 0.9), (0.0, 1.0), (0.2, 0.9))]
        return leaves + [rect(-0.32, -0.26, 0.32, 0.0, wood), rect(-0.33, -0.27, 0.33, -0.235, shade(wood, 0.8))]
    if kind == "bin":
        return [rect(-0.11, -0.34, 0.11, 0.0, paint), rect(-0.125, -0.37, 0.125, -0.33, shade(paint, 0.7)), rect(-0.06, -0.27, 0.06, -0.25, shade(paint, 0.6))]
    if kind == "pole":
        return [rect(-0.02, -2.2, 0.02, 0.0, metal), rect(-0.045, -0.12, 0.045, 0.0, metal), Ellipse(0.0, -2.22, 0.09, 0.05, (240, 236, 200))]
    if kind == "pillar":
        return [rect(-0.16, -4.0, 0.16, 0.0, (190, 186, 176)), rect(0.06, -4.0, 0.16, 0.0, (160, 156, 148)), rect(-0.18, -0.08, 0.18, 0.0, (120, 118, 112))]
    if kind == "tree":
        return [rect(-0.05, -1.3, 0.05, 0.0, (92, 64, 40))] + [
            Ellipse(x, y, r, r * 0.9, shade(green, f)) for x, y, r, f in ((-0.25, -1.55, 0.38, 0.85), (0.25, -1.6, 0.36, 0.95), (0.0, -1.95, 0.42, 1.05))
        ]
    if kind == "bush":
        return [Ellipse(x, y, r, r * 0.8, shade(green, f)) for x, y, r, f in ((-0.25, -0.2, 0.22, 0.85), (0.22, -0.2, 0.24, 0.95), (0.0, -0.32, 0.26, 1.1))]
    if kind == "sign":
        return [
            rect(-0.22, -0.45, -0.19, 0.0, metal),
            rect(0.19, -0.45, 0.22, 0.0, metal),
            rect(-0.28, -0.82, 0.28, -0.42, paint),
            rect(-0.22, -0.74, 0.22, -0.66, (245, 245, 240)),
            rect(-0.22, -0.6, 0.1, -0.54, (245, 245, 240)),
        ]
    if kind == "railing":
        posts = [rect(x - 0.015, -0.58, x + 0.015, 0.0, metal) for x in np.linspace(-0.8, 0.8, 7)]
        return posts + [rect(-0.82, -0.6, 0.82, -0.55, metal), rect(-0.82, -0.32, 0.82, -0.29, metal)]
    if kind == "car":
        glass = (120, 150, 170)
        return [
            Polygon(((-1.2, -0.12), (-1.18, -0.42), (-0.62, -0.46), (-0.4, -0.74), (0.42, -0.74), (0.7, -0.46), (1.18, -0.4), (1.2, -0.12)), paint),
            Polygon(((-0.52, -0.47), (-0.36, -0.68), (-0.04, -0.68), (-0.04, -0.47)), glass),
            Polygon(((0.02, -0.47), (0.02, -0.68), (0.38, -0.68), (0.6, -0.47)), glass),
            rect(-1.2, -0.2, 1.2, -0.12, shade(paint, 0.6)),
            Ellipse(-0.72, -0.14, 0.15, 0.14, (24, 24, 26)),
            Ellipse(0.72, -0.14, 0.15, 0.14, (24, 24, 26)),
            Ellipse(-0.72, -0.14, 0.07, 0.065, (150, 150, 156)),
            Ellipse(0.72, -0.14, 0.07, 0.065, (150, 150, 156)),
        ]
    raise ValueError(f"unknown scene object {kind!r}; expected one of {OBJECT_KINDS}")


# ----------------------------------------------------------------------------------------------
# backgrounds


def _value_noise(rng: np.random.Generator, height: int, width: int, cell: int) -> np.ndarray:
    """Smooth noise in about [-1, 1] with features ``cell`` pixels wide."""
    small = rng.uniform(-1.0, 1.0, (height // cell + 2, width // cell + 2)).astype(np.float32)
    big = Image.fromarray(small).resize(((width // cell + 2) * cell, (height // cell + 2) * cell), Image.Resampling.BICUBIC)
    return np.asarray(big)[:height, :width]


def _ground_coords(camera: Camera, height: int, width: int, supersample: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Ground-plane coordinates (across, depth) of every (sub)pixel centre.

    Across = (x - vanish_x) / d and depth = 1 / d, with d the rows below the horizon: the
    perspective of a flat floor seen by a level camera. Rows above the horizon get d = 0.5.
    """
    ys = (np.arange(height * supersample, dtype=np.float32) + 0.5) / supersample
    xs = (np.arange(width * supersample, dtype=np.float32) + 0.5) / supersample
    d = np.maximum(ys - camera.horizon, 0.5)[:, None]
    return (xs[None, :] - camera.vanish_x) / d, np.broadcast_to(1.0 / d, (len(ys), len(xs)))


def _tiles(camera: Camera, height: int, width: int, across: float, depth: float, colours: tuple[RGB, RGB], grout: RGB, checker: bool) -> np.ndarray:
    """A perspective tiled floor, drawn at 2x and averaged down; tiles under ~4 px fade to their mean."""
    ss = 2
    u, v = _ground_coords(camera, height, width, ss)
    fu, fv = u * across, v * (depth * width)
    iu, iv = np.floor(fu), np.floor(fv)
    a, b, g = (np.asarray(c, np.float32) for c in (*colours, grout))
    pick = ((iu + iv) % 2 == 0) if checker else np.zeros(iu.shape, dtype=bool)
    lines = ((fu - iu) < 0.05) | ((fv - iv) < 0.075)
    img = np.where(lines[..., None], g, np.where(pick[..., None], a, b))
    img = img.reshape(height, ss, width, ss, 3).mean(axis=(1, 3))
    d = np.maximum(np.arange(height, dtype=np.float32) + 0.5 - camera.horizon, 0.5)[:, None, None]
    tile_px = np.minimum(d / across, d * d / (depth * width))
    fade = np.clip(tile_px / 4.0 - 0.5, 0.0, 1.0)
    mean = ((a + b) / 2 if checker else b) * 0.85 + g * 0.15
    return img * fade + mean * (1 - fade)


def _sky(height: int, width: int, top: RGB, bottom: RGB) -> np.ndarray:
    t = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    return np.broadcast_to(np.asarray(top, np.float32) * (1 - t) + np.asarray(bottom, np.float32) * t, (height, width, 3)).copy()


def _buildings(
    draw: ImageDraw.ImageDraw, rng: np.random.Generator, width: int, horizon: float, top_range: tuple[float, float], facades: tuple[RGB, ...], shops: bool
) -> None:
    """A row of facades standing on the horizon, with windows (and shop fronts and awnings)."""
    x = -float(rng.uniform(0, 60))
    base = horizon + 4
    while x < width:
        w = float(rng.uniform(90, 230))
        top = max(2.0, horizon - float(rng.uniform(*top_range)))
        facade = facades[int(rng.integers(len(facades)))]
        facade = shade(facade, float(rng.uniform(0.85, 1.1)))
        draw.rectangle([x, top, x + w, base], fill=facade)
        window = shade((90, 110, 130), float(rng.uniform(0.7, 1.3)))
        ww, wh = float(rng.uniform(10, 18)), float(rng.uniform(12, 22))
        gx, gy = ww + float(rng.uniform(8, 16)), wh + float(rng.uniform(10, 18))
        ground_floor = base - (50 if shops else 25)
        for wy in np.arange(top + 10, ground_floor - wh, gy):
            for wx in np.arange(x + 8, x + w - ww - 4, gx):
                draw.rectangle([wx, wy, wx + ww, wy + wh], fill=window)
        if shops:
            awning = _PAINT[int(rng.integers(len(_PAINT)))]
            draw.rectangle([x + 6, base - 40, x + w - 6, base], fill=(60, 70, 80))
            for k, sx in enumerate(np.arange(x + 2, x + w - 2, 14)):
                draw.polygon([(sx, base - 58), (sx + 14, base - 58), (sx + 16, base - 44), (sx + 2, base - 44)], fill=awning if k % 2 == 0 else (236, 236, 230))
        else:
            draw.rectangle([x + w * 0.4, base - 22, x + w * 0.4 + 14, base], fill=shade(facade, 0.5))
        x += w + float(rng.uniform(0, 12))


def _trees(draw: ImageDraw.ImageDraw, rng: np.random.Generator, width: int, horizon: float, count: int) -> None:
    for _ in range(count):
        cx, r = float(rng.uniform(-20, width + 20)), float(rng.uniform(18, 60))
        cy = horizon - r * float(rng.uniform(0.4, 1.6))
        draw.rectangle([cx - r * 0.08, cy, cx + r * 0.08, horizon + 3], fill=(80, 60, 40))
        leaves = shade(_GREENS[int(rng.integers(3))], float(rng.uniform(0.7, 1.2)))
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=leaves)


@functools.lru_cache(maxsize=64)
def background(camera: Camera, variant: int, width: int, height: int) -> np.ndarray:
    """The camera's background number ``variant``: float32 HxWx3 (treat as read-only)."""
    rng = np.random.default_rng([camera.seed, variant])
    hz = camera.horizon
    sky = _sky(height, width, shade((150, 185, 225), rng.uniform(0.85, 1.1)), (215, 222, 228))
    upper = Image.fromarray(sky.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(upper)
    style = camera.style
    if style == "street":
        facades = ((168, 150, 130), (190, 186, 178), (140, 120, 110), (210, 200, 170))
        _buildings(draw, rng, width, hz, (120, 320), facades, False)
        floor = _tiles(camera, height, width, 4.0, 5.0, ((150, 150, 150), (162, 160, 156)), (120, 120, 120), False)
    elif style == "plaza":
        _trees(draw, rng, width, hz, 10)
        _buildings(draw, rng, width, hz, (40, 110), ((220, 214, 200), (180, 190, 200)), False)
        floor = _tiles(camera, height, width, 2.5, 3.0, ((196, 190, 176), (150, 136, 120)), (130, 124, 116), True)
    elif style == "park":
        _trees(draw, rng, width, hz, 40)
        grass = np.asarray(shade((88, 140, 62), rng.uniform(0.8, 1.1)), np.float32)
        n = _value_noise(rng, height, width, 6)[..., None]
        floor = grass * (1.0 + 0.12 * n)
        u, _ = _ground_coords(camera, height, width)
        path = np.abs(u - rng.uniform(-0.2, 0.2)) < 0.35
        floor = np.where(path[..., None], np.asarray((190, 174, 140), np.float32) * (1.0 + 0.08 * n), floor)
    elif style == "corridor":
        wall = shade((214, 206, 190), rng.uniform(0.8, 1.05))
        draw.rectangle([0, 0, width, hz + 4], fill=wall)
        draw.rectangle([0, 0, width, min(40, hz * 0.3)], fill=shade(wall, 0.7))
        for x in np.arange(rng.uniform(0, 80), width, rng.uniform(70, 140)):
            draw.rectangle([x, 0, x + 6, hz + 4], fill=shade(wall, 0.85))
        for _ in range(4):
            x, w = rng.uniform(0, width - 60), rng.uniform(30, 60)
            colour = _PAINT[int(rng.integers(len(_PAINT)))]
            draw.rectangle([x, hz - w * 1.6, x + w, hz - w * 0.3], fill=colour)
        floor = _tiles(camera, height, width, 3.0, 4.0, ((210, 210, 206), (176, 178, 184)), (150, 150, 150), True)
    elif style == "campus":
        brick, mortar = shade((160, 80, 60), rng.uniform(0.85, 1.1)), (200, 190, 180)
        top = max(0.0, hz - rng.uniform(120, 260))
        draw.rectangle([0, top, width, hz + 4], fill=mortar)
        for k, y in enumerate(np.arange(top, hz + 4, 12)):
            for x in np.arange(-(k % 2) * 14, width, 28):
                draw.rectangle([x + 1, y + 1, x + 26, y + 10], fill=shade(brick, 0.9 + 0.2 * ((x * 7 + y) % 3) / 3))
        floor = _tiles(camera, height, width, 6.0, 8.0, ((170, 110, 90), (150, 96, 80)), (110, 100, 96), True)
    elif style == "market":
        _buildings(draw, rng, width, hz, (90, 220), ((230, 220, 200), (200, 170, 150), (170, 190, 170)), True)
        concrete = np.asarray((168, 166, 160), np.float32) * (1 + 0.06 * _value_noise(rng, height, width, 4)[..., None])
        lines = _tiles(camera, height, width, 1.0, 1.5, ((0, 0, 0), (0, 0, 0)), (255, 255, 255), False)
        floor = np.where(lines[..., :1] > 128, concrete * 0.82, concrete)
    else:
        raise ValueError(f"unknown camera style {style!r}; expected one of {STYLES}")
    img = np.asarray(upper, np.float32)
    ground = (np.arange(height) > hz)[:, None, None]
    img = np.where(ground, floor, img)
    img *= 1.0 + 0.04 * _value_noise(rng, height, width, 3)[..., None]
    img.setflags(write=False)
    return img


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
            raise ValueError(f"a person {req.height} px tall and {w} px wide does not fit a {width}x{height} image")
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
            obj = SceneObject(kind, int(rng.integers(12)), p.left + p.width * (0.5 + float(offset)), base, camera.units_to_pixels(base))
            if _occlusion(p.box, obj.box()) >= 0.1 and not hides_too_much(obj, 0.5):
                objects.append(obj)
                break
    floor = height - camera.horizon
    for _ in range(clutter):
        base = float(rng.uniform(camera.horizon + 0.05 * floor, camera.horizon + 0.75 * floor))
        obj = SceneObject(kinds[int(rng.integers(len(kinds)))], int(rng.integers(12)), float(rng.uniform(0, width)), base, camera.units_to_pixels(base))
        if not hides_too_much(obj, 0.2):
            objects.append(obj)

    visible = _visibility(placed, objects, width, height)
    people_out = tuple(PersonPlacement(p.identity, p.pose, p.pid, p.left, p.top, p.width, p.height, v) for p, v in zip(placed, visible, strict=True))
    return ScenePlan(camera, int(rng.integers(variants)), people_out, tuple(objects), float(rng.uniform(0.88, 1.12)), int(rng.integers(2**31)), width, height)


def _visibility(people: list[PersonPlacement], objects: list[SceneObject], width: int, height: int) -> list[float]:
    """Visible fraction of each person's box, painting boxes far to near on a 4-pixel grid."""
    cell = 4
    owner = np.full((height // cell + 1, width // cell + 1), -1, dtype=np.int32)
    items = [(p.foot, 0, i, p.box) for i, p in enumerate(people)]
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


def render_scene(plan: ScenePlan) -> np.ndarray:
    """Draw a planned scene: HxWx3 uint8 RGB."""
    cam = plan.camera
    canvas = background(cam, plan.variant, plan.width, plan.height).copy()
    items: list[tuple[float, int, int]] = [(p.foot, 0, i) for i, p in enumerate(plan.people)]
    items += [(o.base, 1, i) for i, o in enumerate(plan.objects)]
    for _, kind, i in sorted(items):
        if kind == 0:
            p = plan.people[i]
            fig = figure(p.identity, p.pose)
            _shadow(canvas, p.left - fig.xmin * p.height, p.foot, 0.15 * p.identity.build * p.height, 0.025 * p.height)
            sprite = fig.render(p.height)
            composite(canvas, sprite, p.left, p.top, _lighting(p.height, p.width, cam.light))
        else:
            o = plan.objects[i]
            x0, y0, x1, y1 = extent(o.shapes())
            w, h = max(int(np.ceil((x1 - x0) * o.scale)), 1), max(int(np.ceil((y1 - y0) * o.scale)), 1)
            sprite = rasterize(o.shapes(), x0, y0, o.scale, w, h, supersample_for(h))
            composite(canvas, sprite, int(round(o.center + x0 * o.scale)), int(round(o.base + y0 * o.scale)), _lighting(h, w, cam.light))
    canvas *= np.asarray(cam.gain, np.float32) * plan.exposure
    img = Image.fromarray(canvas.clip(0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(cam.blur))
    rng = np.random.default_rng(plan.seed)
    noisy = np.asarray(img, np.float32) + rng.standard_normal(canvas.shape, dtype=np.float32) * cam.noise
    return noisy.clip(0, 255).astype(np.uint8)
