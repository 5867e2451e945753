"""Vector shapes drawn anti-aliased, and alpha compositing onto a scene.

People and scene objects are lists of shapes in their own units. Drawing them on a canvas
``supersample`` times larger and averaging each block of pixels down (``Image.reduce``) gives each
output pixel the mean colour of the area it covers. A detail smaller than a pixel therefore blends
into its surroundings instead of flickering, which is how a real camera loses the details of small,
distant people.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class Polygon:
    """A filled polygon; ``points`` are (x, y) pairs in shape units."""

    points: tuple[tuple[float, float], ...]
    color: RGB


@dataclass(frozen=True)
class Ellipse:
    """A filled axis-aligned ellipse: centre (cx, cy) and radii (rx, ry) in shape units."""

    cx: float
    cy: float
    rx: float
    ry: float
    color: RGB


Shape = Polygon | Ellipse


def rect(x0: float, y0: float, x1: float, y1: float, color: RGB) -> Polygon:
    """An axis-aligned filled rectangle."""
    return Polygon(((x0, y0), (x1, y0), (x1, y1), (x0, y1)), color)


def capsule(
    p0: tuple[float, float], p1: tuple[float, float], r0: float, r1: float, color: RGB
) -> list[Shape]:
    """A tapered limb segment from ``p0`` (radius ``r0``) to ``p1`` (radius ``r1``) with round ends."""
    dx, dy = p1[0] - p0[0], p1[1] - p0[1]
    length = math.hypot(dx, dy) or 1e-9
    nx, ny = -dy / length, dx / length
    quad = Polygon(
        (
            (p0[0] + nx * r0, p0[1] + ny * r0),
            (p1[0] + nx * r1, p1[1] + ny * r1),
            (p1[0] - nx * r1, p1[1] - ny * r1),
            (p0[0] - nx * r0, p0[1] - ny * r0),
        ),
        color,
    )
    return [Ellipse(p0[0], p0[1], r0, r0, color), quad, Ellipse(p1[0], p1[1], r1, r1, color)]


def shade(color: RGB, factor: float) -> RGB:
    """The colour scaled by ``factor`` (darker below 1), clipped to 0..255."""
    r, g, b = (int(min(255, max(0, round(c * factor)))) for c in color)
    return r, g, b


def extent(shapes: Sequence[Shape]) -> tuple[float, float, float, float]:
    """Bounding box ``(xmin, ymin, xmax, ymax)`` of the shapes, in shape units."""
    xs: list[float] = []
    ys: list[float] = []
    for s in shapes:
        if isinstance(s, Polygon):
            xs.extend(p[0] for p in s.points)
            ys.extend(p[1] for p in s.points)
        else:
            xs.extend((s.cx - s.rx, s.cx + s.rx))
            ys.extend((s.cy - s.ry, s.cy + s.ry))
    if not xs:
        raise ValueError("cannot take the extent of an empty shape list")
    return min(xs), min(ys), max(xs), max(ys)


def transform(shapes: Sequence[Shape], scale_x: float, scale_y: float, dx: float, dy: float) -> list[Shape]:
    """Shapes mapped by ``(x, y) -> (x * scale_x + dx, y * scale_y + dy)``; a negative ``scale_x`` mirrors."""
    out: list[Shape] = []
    for s in shapes:
        if isinstance(s, Polygon):
            out.append(Polygon(tuple((x * scale_x + dx, y * scale_y + dy) for x, y in s.points), s.color))
        else:
            out.append(
                Ellipse(
                    s.cx * scale_x + dx,
                    s.cy * scale_y + dy,
                    s.rx * abs(scale_x),
                    s.ry * abs(scale_y),
                    s.color,
                )
            )
    return out


@dataclass
class Sprite:
    """A drawn layer: colour premultiplied by coverage (float32 0..255, HxWx3) and coverage (HxW, 0..1)."""

    rgb: np.ndarray
    alpha: np.ndarray


def rasterize(
    shapes: Sequence[Shape], x0: float, y0: float, scale: float, width: int, height: int, supersample: int
) -> Sprite:
    """Draw ``shapes`` into a ``width`` x ``height`` sprite, anti-aliased.

    Shape point (x, y) lands at pixel ``((x - x0) * scale, (y - y0) * scale)``. Later shapes cover
    earlier ones. Drawing on a black canvas makes the block average the premultiplied colour.
    """
    if width <= 0 or height <= 0 or supersample < 1:
        raise ValueError(f"bad sprite size {width}x{height} (supersample {supersample})")
    k = scale * supersample
    colour = Image.new("RGB", (width * supersample, height * supersample))
    cover = Image.new("L", colour.size)
    draw_c, draw_a = ImageDraw.Draw(colour), ImageDraw.Draw(cover)
    for s in shapes:
        if isinstance(s, Polygon):
            pts = [((x - x0) * k, (y - y0) * k) for x, y in s.points]
            draw_c.polygon(pts, fill=s.color)
            draw_a.polygon(pts, fill=255)
        else:
            box = [
                (s.cx - s.rx - x0) * k,
                (s.cy - s.ry - y0) * k,
                (s.cx + s.rx - x0) * k,
                (s.cy + s.ry - y0) * k,
            ]
            if box[2] - box[0] < 0.5 or box[3] - box[1] < 0.5:
                continue  # below a canvas pixel: contributes nothing after averaging
            draw_c.ellipse(box, fill=s.color)
            draw_a.ellipse(box, fill=255)
    if supersample > 1:
        colour, cover = colour.reduce(supersample), cover.reduce(supersample)
    return Sprite(np.asarray(colour, dtype=np.float32), np.asarray(cover, dtype=np.float32) / 255.0)


def _overlap(
    canvas: np.ndarray, sprite: Sprite, left: int, top: int
) -> tuple[tuple[slice, slice], tuple[slice, slice]] | None:
    """Canvas and sprite slices of the part of a sprite at (left, top) that lies on the canvas."""
    h, w = sprite.alpha.shape
    ch, cw = canvas.shape[:2]
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + h, ch), min(left + w, cw)
    if y0 >= y1 or x0 >= x1:
        return None
    return (slice(y0, y1), slice(x0, x1)), (slice(y0 - top, y1 - top), slice(x0 - left, x1 - left))


def composite(
    canvas: np.ndarray, sprite: Sprite, left: int, top: int, gain: np.ndarray | None = None
) -> None:
    """Blend ``sprite`` over the float32 HxWx3 ``canvas`` in place with its top-left at (left, top).

    Parts outside the canvas are dropped. ``gain`` (broadcastable to the sprite's HxWx3, e.g. a
    lighting gradient) scales the sprite's colour first.
    """
    overlap = _overlap(canvas, sprite, left, top)
    if overlap is None:
        return
    (cy, cx), (sy, sx) = overlap
    rgb = sprite.rgb[sy, sx] if gain is None else (sprite.rgb * gain)[sy, sx]
    region = canvas[cy, cx]
    region *= 1.0 - sprite.alpha[sy, sx, None]
    region += rgb


def darken(canvas: np.ndarray, sprite: Sprite, left: int, top: int, strength: float) -> None:
    """Multiply the canvas by ``1 - strength * alpha`` under the sprite (soft shadows)."""
    overlap = _overlap(canvas, sprite, left, top)
    if overlap is None:
        return
    (cy, cx), (sy, sx) = overlap
    canvas[cy, cx] *= 1.0 - strength * sprite.alpha[sy, sx, None]
