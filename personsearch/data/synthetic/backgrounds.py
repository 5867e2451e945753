"""What a camera sees without people: procedural backgrounds per style, and scene objects
(cars, benches, trees, ...) that clutter the view and occlude people."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import cast

import numpy as np
from PIL import Image, ImageDraw

from personsearch.data.synthetic.cameras import STYLES, Camera
from personsearch.data.synthetic.drawing import RGB, Ellipse, Polygon, Shape, extent, rect, shade

OBJECTS_BY_STYLE: dict[str, tuple[str, ...]] = {
    "street": ("car", "pole", "bin", "sign", "bench", "tree"),
    "plaza": ("planter", "bench", "pole", "bin", "bush"),
    "park": ("bush", "bench", "tree", "bin"),
    "corridor": ("pillar", "bin", "sign", "bench"),
    "campus": ("bush", "railing", "bench", "tree", "bin"),
    "market": ("sign", "planter", "bin", "railing", "car"),
}
"""Scene objects each background style uses, for clutter and for occluding people."""

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
        return (
            self.center + x0 * self.scale,
            self.base + y0 * self.scale,
            self.center + x1 * self.scale,
            self.base + y1 * self.scale,
        )


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
        legs: list[Shape] = [rect(x - 0.02, -0.14, x + 0.02, 0.0, metal) for x in (-0.4, 0.4)]
        return legs + [
            rect(-0.46, -0.15, 0.46, -0.115, wood),
            rect(-0.46, -0.3, 0.46, -0.215, wood),
            rect(-0.43, -0.215, -0.4, -0.14, metal),
            rect(0.4, -0.215, 0.43, -0.14, metal),
        ]
    if kind == "planter":
        leaves = [
            Ellipse(x, -0.3, 0.14, 0.11, shade(green, f)) for x, f in ((-0.2, 0.9), (0.0, 1.0), (0.2, 0.9))
        ]
        return leaves + [
            rect(-0.32, -0.26, 0.32, 0.0, wood),
            rect(-0.33, -0.27, 0.33, -0.235, shade(wood, 0.8)),
        ]
    if kind == "bin":
        return [
            rect(-0.11, -0.34, 0.11, 0.0, paint),
            rect(-0.125, -0.37, 0.125, -0.33, shade(paint, 0.7)),
            rect(-0.06, -0.27, 0.06, -0.25, shade(paint, 0.6)),
        ]
    if kind == "pole":
        return [
            rect(-0.02, -2.2, 0.02, 0.0, metal),
            rect(-0.045, -0.12, 0.045, 0.0, metal),
            Ellipse(0.0, -2.22, 0.09, 0.05, (240, 236, 200)),
        ]
    if kind == "pillar":
        return [
            rect(-0.16, -4.0, 0.16, 0.0, (190, 186, 176)),
            rect(0.06, -4.0, 0.16, 0.0, (160, 156, 148)),
            rect(-0.18, -0.08, 0.18, 0.0, (120, 118, 112)),
        ]
    if kind == "tree":
        return [rect(-0.05, -1.3, 0.05, 0.0, (92, 64, 40))] + [
            Ellipse(x, y, r, r * 0.9, shade(green, f))
            for x, y, r, f in ((-0.25, -1.55, 0.38, 0.85), (0.25, -1.6, 0.36, 0.95), (0.0, -1.95, 0.42, 1.05))
        ]
    if kind == "bush":
        return [
            Ellipse(x, y, r, r * 0.8, shade(green, f))
            for x, y, r, f in ((-0.25, -0.2, 0.22, 0.85), (0.22, -0.2, 0.24, 0.95), (0.0, -0.32, 0.26, 1.1))
        ]
    if kind == "sign":
        return [
            rect(-0.22, -0.45, -0.19, 0.0, metal),
            rect(0.19, -0.45, 0.22, 0.0, metal),
            rect(-0.28, -0.82, 0.28, -0.42, paint),
            rect(-0.22, -0.74, 0.22, -0.66, (245, 245, 240)),
            rect(-0.22, -0.6, 0.1, -0.54, (245, 245, 240)),
        ]
    if kind == "railing":
        posts: list[Shape] = [
            rect(x - 0.015, -0.58, x + 0.015, 0.0, metal) for x in np.linspace(-0.8, 0.8, 7)
        ]
        return posts + [rect(-0.82, -0.6, 0.82, -0.55, metal), rect(-0.82, -0.32, 0.82, -0.29, metal)]
    if kind == "car":
        glass = (120, 150, 170)
        return [
            Polygon(
                (
                    (-1.2, -0.12),
                    (-1.18, -0.42),
                    (-0.62, -0.46),
                    (-0.4, -0.74),
                    (0.42, -0.74),
                    (0.7, -0.46),
                    (1.18, -0.4),
                    (1.2, -0.12),
                ),
                paint,
            ),
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
    big = Image.fromarray(small).resize(
        ((width // cell + 2) * cell, (height // cell + 2) * cell), Image.Resampling.BICUBIC
    )
    return np.asarray(big)[:height, :width]


def _ground_coords(
    camera: Camera, height: int, width: int, supersample: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Ground-plane coordinates (across, depth) of every (sub)pixel centre.

    Across = (x - vanish_x) / d and depth = 1 / d, with d the rows below the horizon: the
    perspective of a flat floor seen by a level camera. Rows above the horizon get d = 0.5.
    """
    ys = (np.arange(height * supersample, dtype=np.float32) + 0.5) / supersample
    xs = (np.arange(width * supersample, dtype=np.float32) + 0.5) / supersample
    d = np.maximum(ys - camera.horizon, 0.5)[:, None]
    return (xs[None, :] - camera.vanish_x) / d, np.broadcast_to(1.0 / d, (len(ys), len(xs)))


def _tiles(
    camera: Camera,
    height: int,
    width: int,
    across: float,
    depth: float,
    colours: tuple[RGB, RGB],
    grout: RGB,
    checker: bool,
) -> np.ndarray:
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
    return cast(np.ndarray, img * fade + mean * (1 - fade))


def _sky(height: int, width: int, top: RGB, bottom: RGB) -> np.ndarray:
    t = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    return np.broadcast_to(
        np.asarray(top, np.float32) * (1 - t) + np.asarray(bottom, np.float32) * t, (height, width, 3)
    ).copy()


def _buildings(
    draw: ImageDraw.ImageDraw,
    rng: np.random.Generator,
    width: int,
    horizon: float,
    top_range: tuple[float, float],
    facades: tuple[RGB, ...],
    shops: bool,
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
                draw.polygon(
                    [(sx, base - 58), (sx + 14, base - 58), (sx + 16, base - 44), (sx + 2, base - 44)],
                    fill=awning if k % 2 == 0 else (236, 236, 230),
                )
        else:
            draw.rectangle([x + w * 0.4, base - 22, x + w * 0.4 + 14, base], fill=shade(facade, 0.5))
        x += w + float(rng.uniform(0, 12))


def _trees(
    draw: ImageDraw.ImageDraw, rng: np.random.Generator, width: int, horizon: float, count: int
) -> None:
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
        floor = _tiles(
            camera, height, width, 4.0, 5.0, ((150, 150, 150), (162, 160, 156)), (120, 120, 120), False
        )
    elif style == "plaza":
        _trees(draw, rng, width, hz, 10)
        _buildings(draw, rng, width, hz, (40, 110), ((220, 214, 200), (180, 190, 200)), False)
        floor = _tiles(
            camera, height, width, 2.5, 3.0, ((196, 190, 176), (150, 136, 120)), (130, 124, 116), True
        )
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
        floor = _tiles(
            camera, height, width, 3.0, 4.0, ((210, 210, 206), (176, 178, 184)), (150, 150, 150), True
        )
    elif style == "campus":
        brick, mortar = shade((160, 80, 60), rng.uniform(0.85, 1.1)), (200, 190, 180)
        top = max(0.0, hz - rng.uniform(120, 260))
        draw.rectangle([0, top, width, hz + 4], fill=mortar)
        for k, y in enumerate(np.arange(top, hz + 4, 12)):
            for x in np.arange(-(k % 2) * 14, width, 28).tolist():
                draw.rectangle(
                    [x + 1, y + 1, x + 26, y + 10], fill=shade(brick, 0.9 + 0.2 * ((x * 7 + y) % 3) / 3)
                )
        floor = _tiles(camera, height, width, 6.0, 8.0, ((170, 110, 90), (150, 96, 80)), (110, 100, 96), True)
    elif style == "market":
        _buildings(draw, rng, width, hz, (90, 220), ((230, 220, 200), (200, 170, 150), (170, 190, 170)), True)
        concrete = np.asarray((168, 166, 160), np.float32) * (
            1 + 0.06 * _value_noise(rng, height, width, 4)[..., None]
        )
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
