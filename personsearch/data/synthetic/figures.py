"""Drawing a person: an identity in a pose as shapes, rasterised at any height.

Figures are drawn in body units: y runs from 0 (top of the head or hat) to 1 (soles), x is centred
on the body, and the person's pixel height is the scale. Coarse attributes cover most of the body;
fine ones (logo, bag, glasses, ...) are drawn small, so they vanish when the person is small.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from personsearch.data.synthetic.drawing import (
    RGB,
    Ellipse,
    Polygon,
    Shape,
    Sprite,
    capsule,
    extent,
    rasterize,
    rect,
    shade,
    transform,
)
from personsearch.data.synthetic.identities import (
    ACCESSORY_COLORS,
    BOTTOM_COLORS,
    DETAIL_COLORS,
    HAIR_COLORS,
    LOGO_SHAPES,
    NONE,
    SKIN_TONES,
    TOP_COLORS,
    Identity,
    Pose,
)

_DARK: RGB = (28, 26, 30)
_Point = tuple[float, float]


@dataclass(frozen=True)
class Figure:
    """A person's shapes in body units, y from 0 (top) to 1 (soles), and their horizontal extent."""

    shapes: tuple[Shape, ...]
    xmin: float
    xmax: float

    def box_width(self, height: int) -> int:
        """Width in pixels of the tight box of the figure drawn ``height`` pixels tall."""
        return max(1, round((self.xmax - self.xmin) * height))

    def render(self, height: int) -> Sprite:
        """The figure drawn exactly ``height`` x ``box_width(height)`` pixels, anti-aliased."""
        return rasterize(
            self.shapes, self.xmin, 0.0, height, self.box_width(height), height, supersample_for(height)
        )


def supersample_for(height: int) -> int:
    """Supersampling factor: the drawing canvas is at least ~320 px tall, at least 2x, at most 8x."""
    return int(min(8, max(2, math.ceil(320 / max(height, 1)))))


def figure(identity: Identity, pose: Pose) -> Figure:
    """The person's shapes for this pose, normalised so the figure spans y in [0, 1]."""
    if pose.raised_arm == identity.bag_side and identity.bag == "handbag":
        pose = replace(pose, raised_arm=_other(pose.raised_arm))  # that hand carries the bag
    if pose.view in ("front", "back"):
        shapes = _front_back(identity, pose, back=pose.view == "back")
    else:
        # Drawn facing right (the camera sees the person's left side); facing left is the mirror
        # image of the person with left and right swapped.
        if pose.view == "left":
            identity = replace(identity, bag_side=_other(identity.bag_side))
            pose = replace(pose, raised_arm=_other(pose.raised_arm), arm_swing=-pose.arm_swing)
        shapes = _side(identity, pose)
        if pose.view == "left":
            shapes = transform(shapes, -1.0, 1.0, 0.0, 0.0)
    xmin, ymin, xmax, ymax = extent(shapes)
    s = 1.0 / (ymax - ymin)
    return Figure(tuple(transform(shapes, s, s, 0.0, -ymin * s)), xmin * s, xmax * s)


def _other(side: str) -> str:
    return {"left": "right", "right": "left"}.get(side, side)


@dataclass(frozen=True)
class _Palette:
    skin: RGB
    top: RGB
    bottom: RGB
    shoes: RGB
    hair: RGB
    hat: RGB
    bag: RGB
    logo: RGB


def _palette(p: Identity) -> _Palette:
    shoes = {
        "black": (26, 26, 28),
        "white": (236, 236, 236),
        "brown": (110, 66, 32),
        "red": (200, 30, 36),
        "blue": (36, 70, 200),
        "yellow": (240, 210, 30),
    }[p.shoes]
    return _Palette(
        skin=SKIN_TONES[p.skin],
        top=TOP_COLORS[p.top],
        bottom=BOTTOM_COLORS[p.bottom],
        shoes=shoes,
        hair=HAIR_COLORS[p.hair_color],
        hat=ACCESSORY_COLORS[p.hat_color],
        bag=ACCESSORY_COLORS[p.bag_color],
        logo=DETAIL_COLORS[p.logo_color],
    )


def _limb(
    joints: tuple[tuple[float, float], ...], radii: tuple[float, ...], colours: tuple[RGB, ...]
) -> list[Shape]:
    """A chain of capsules, drawn from the far end so each segment's joint covers the next."""
    out: list[Shape] = []
    for i in reversed(range(len(joints) - 1)):
        out += capsule(joints[i], joints[i + 1], radii[i], radii[i + 1], colours[i])
    return out


def _arm(
    shoulder: _Point, elbow: _Point, wrist: _Point, p: Identity, c: _Palette, b: float, factor: float = 1.0
) -> list[Shape]:
    """Arm with sleeve and hand; ``factor`` darkens the far arm of a side view."""
    skin, top = shade(c.skin, factor), shade(c.top, factor)
    r = (0.027 * b**0.5, 0.022 * b**0.5, 0.019)
    out = _limb((shoulder, elbow, wrist), r, (skin, skin))
    if p.sleeves == "long":
        cuff = (elbow[0] + 0.85 * (wrist[0] - elbow[0]), elbow[1] + 0.85 * (wrist[1] - elbow[1]))
        out += _limb((shoulder, elbow, cuff), (r[0] * 1.12, r[1] * 1.12, r[2] * 1.15), (top, top))
    else:
        sleeve_end = (
            shoulder[0] + 0.55 * (elbow[0] - shoulder[0]),
            shoulder[1] + 0.55 * (elbow[1] - shoulder[1]),
        )
        out += capsule(shoulder, sleeve_end, r[0] * 1.18, r[0] * 1.1, top)
    dx, dy = wrist[0] - elbow[0], wrist[1] - elbow[1]
    n = math.hypot(dx, dy) or 1.0
    out.append(Ellipse(wrist[0] + 0.018 * dx / n, wrist[1] + 0.018 * dy / n, 0.02, 0.021, skin))
    return out


def _leg(
    hip: _Point,
    knee: _Point,
    ankle: _Point,
    p: Identity,
    c: _Palette,
    b: float,
    shoe: Ellipse,
    factor: float = 1.0,
) -> list[Shape]:
    """Leg in trousers, shorts or bare under a skirt, with its shoe."""
    skin, cloth = shade(c.skin, factor), shade(c.bottom, factor)
    thigh = cloth if p.bottom_type in ("trousers", "shorts") else skin
    shin = cloth if p.bottom_type == "trousers" else skin
    width = 1.15 if p.bottom_type == "shorts" else 1.0
    out = _limb((hip, knee, ankle), (0.037 * b**0.5, 0.028 * b**0.5, 0.021), (thigh, shin))
    if p.bottom_type == "shorts":
        out += capsule(
            hip,
            (hip[0] + 0.75 * (knee[0] - hip[0]), hip[1] + 0.75 * (knee[1] - hip[1])),
            0.037 * b**0.5 * width,
            0.031 * b**0.5 * width,
            cloth,
        )
    return out + [replace(shoe, color=shade(c.shoes, factor))]


def _logo(shape: str, cx: float, cy: float, r: float, colour: RGB, ground: RGB) -> list[Shape]:
    """A small chest logo of the given shape, about ``2 r`` across."""
    if shape == "circle":
        return [Ellipse(cx, cy, r, r, colour)]
    if shape == "ring":
        return [Ellipse(cx, cy, r, r, colour), Ellipse(cx, cy, r * 0.5, r * 0.5, ground)]
    if shape == "square":
        return [rect(cx - r * 0.85, cy - r * 0.85, cx + r * 0.85, cy + r * 0.85, colour)]
    if shape == "triangle":
        return [Polygon(((cx, cy - r), (cx + r, cy + r * 0.8), (cx - r, cy + r * 0.8)), colour)]
    if shape == "diamond":
        return [Polygon(((cx, cy - r), (cx + r * 0.8, cy), (cx, cy + r), (cx - r * 0.8, cy)), colour)]
    if shape == "cross":
        t = r * 0.35
        return [rect(cx - r, cy - t, cx + r, cy + t, colour), rect(cx - t, cy - r, cx + t, cy + r, colour)]
    if shape == "bars":
        t = r * 0.3
        return [
            rect(cx - r, cy - r + k * 2.5 * t, cx + r, cy - r + k * 2.5 * t + t * 1.2, colour)
            for k in range(3)
        ]
    if shape == "star":
        pts = []
        for k in range(10):
            a = -math.pi / 2 + k * math.pi / 5
            rr = r if k % 2 == 0 else r * 0.45
            pts.append((cx + rr * math.cos(a), cy + rr * math.sin(a)))
        return [Polygon(tuple(pts), colour)]
    raise ValueError(f"unknown logo shape {shape!r}; expected one of {LOGO_SHAPES}")


def _glasses(kind: str, centres: list[tuple[float, float]], skin: RGB) -> list[Shape]:
    out: list[Shape] = []
    for x, y in centres:
        out.append(Ellipse(x, y, 0.0135, 0.0115, _DARK))
        if kind == "clear":
            out.append(Ellipse(x, y, 0.009, 0.0075, shade(skin, 1.12)))
            out.append(Ellipse(x, y, 0.0045, 0.0045, _DARK))
    return out


def _front_back(p: Identity, pose: Pose, back: bool) -> list[Shape]:
    """A person seen from the front or the back (the person's left is at +x from the front)."""
    c, b = _palette(p), p.build
    left = -1.0 if back else 1.0  # x sign of the person's left side
    sw, ww, hw = 0.112 * b, 0.086 * b, 0.09 * b  # shoulder, waist, hip half-widths
    cy, rx, ry = 0.068, 0.052, 0.066  # head centre y and radii
    s = pose.stride
    out: list[Shape] = []

    # legs: in a frontal view walking shows as a little spread and one foreshortened leg
    for side in (-1.0, 1.0):
        hip = (side * 0.047 * b, 0.48)
        lift = 0.03 * abs(s) if (side * left > 0) == (s > 0) else 0.0
        ankle = (side * (0.059 * b + 0.01 * abs(s)), 0.955 - lift)
        knee = ((hip[0] + ankle[0]) / 2 + side * 0.004, (hip[1] + ankle[1]) / 2)
        shoe = Ellipse(ankle[0] + side * 0.004, ankle[1] + 0.02, 0.03, 0.024, c.shoes)
        out += _leg(hip, knee, ankle, p, c, b, shoe)
    if p.bottom_type == "skirt":
        out.append(Polygon(((-hw, 0.46), (hw, 0.46), (hw * 1.45, 0.69), (-hw * 1.45, 0.69)), c.bottom))

    # arms, as joints; a raised arm's forearm goes behind the torso when seen from the back
    arms: dict[str, tuple[_Point, _Point, _Point]] = {}
    for person_side in ("left", "right"):
        side = left if person_side == "left" else -left
        shoulder = (side * (sw - 0.02), 0.19)
        if pose.raised_arm == person_side:
            arms[person_side] = (shoulder, (side * (sw + 0.004), 0.33), (side * (sw - 0.045), 0.235))
        else:
            swing = pose.arm_swing if person_side == "left" else -pose.arm_swing
            shorten = 0.04 * max(swing, 0.0) + 0.015 * max(-swing, 0.0)
            arms[person_side] = (
                shoulder,
                (side * (sw + 0.006), 0.325),
                (side * (sw + 0.012), 0.45 - shorten),
            )
    if back and pose.raised_arm in arms:
        out += _arm(*arms[pose.raised_arm], p, c, b)

    if p.hair == "long" and not back:  # falls behind the neck and shoulders
        out.append(Ellipse(0.0, 0.12, rx * 1.25, 0.09, c.hair))
    out.append(rect(-0.022, 0.115, 0.022, 0.17, c.skin))  # neck
    out.append(
        Polygon(
            (
                (-sw, 0.195),
                (-sw + 0.028, 0.163),
                (sw - 0.028, 0.163),
                (sw, 0.195),
                (ww, 0.42),
                (hw, 0.5),
                (-hw, 0.5),
                (-ww, 0.42),
            ),
            c.top,
        )
    )
    if p.belt != NONE:
        out.append(rect(-hw * 1.02, 0.471, hw * 1.02, 0.485, ACCESSORY_COLORS[p.belt]))
        if not back:
            out.append(rect(-0.009, 0.469, 0.009, 0.487, (200, 190, 120)))
    if p.logo != NONE and not back:
        out += _logo(p.logo, left * 0.042 * b, 0.245, 0.021, c.logo, c.top)
    if p.hair == "long" and back:
        out.append(Ellipse(0.0, 0.135, rx * 1.15, 0.095, c.hair))

    bag_x = left if p.bag_side == "left" else -left
    if p.bag == "backpack":
        if back:
            out += [
                Ellipse(0.0, 0.215, 0.066 * b, 0.026, c.bag),
                rect(-0.066 * b, 0.215, 0.066 * b, 0.35, c.bag),
                rect(-0.045 * b, 0.295, 0.045 * b, 0.337, shade(c.bag, 0.75)),
            ]
        else:
            for side in (-1.0, 1.0):
                out.append(
                    Polygon(
                        (
                            (side * 0.062 * b, 0.165),
                            (side * 0.08 * b, 0.165),
                            (side * 0.072 * b, 0.33),
                            (side * 0.056 * b, 0.33),
                        ),
                        c.bag,
                    )
                )
    elif p.bag == "shoulder":
        strap = shade(c.bag, 0.7)
        out.append(
            Polygon(
                (
                    (-bag_x * 0.075 * b, 0.163),
                    (-bag_x * 0.06 * b, 0.163),
                    (bag_x * (hw + 0.02), 0.43),
                    (bag_x * (hw + 0.005), 0.43),
                ),
                strap,
            )
        )

    for person_side in ("left", "right"):
        if not (back and pose.raised_arm == person_side):
            out += _arm(*arms[person_side], p, c, b)
        wrist = arms[person_side][2]
        if pose.raised_arm == person_side and not back:
            out.append(rect(wrist[0] - 0.012, wrist[1] - 0.03, wrist[0] + 0.012, wrist[1] + 0.005, _DARK))
    if p.bag == "shoulder":
        x = bag_x * (hw + 0.014)
        out.append(rect(x - 0.037, 0.43, x + 0.037, 0.5, c.bag))
    elif p.bag == "handbag":
        wx, wy = arms[p.bag_side][2]
        out += [
            Ellipse(wx, wy + 0.03, 0.018, 0.018, shade(c.bag, 0.7)),
            Ellipse(wx, wy + 0.03, 0.011, 0.011, c.top),
            Polygon(
                (
                    (wx - 0.03, wy + 0.045),
                    (wx + 0.03, wy + 0.045),
                    (wx + 0.034, wy + 0.1),
                    (wx - 0.034, wy + 0.1),
                ),
                c.bag,
            ),
        ]

    if p.scarf != NONE:
        scarf = ACCESSORY_COLORS[p.scarf]
        out.append(rect(-0.04, 0.145, 0.04, 0.172, scarf))
        if not back:
            out.append(rect(left * 0.012, 0.165, left * 0.034, 0.265, scarf))
    out += _head_front_back(p, c, back, cy, rx, ry)
    return out


def _hair_colour(p: Identity, c: _Palette) -> RGB:
    """Hair colour as drawn: a buzz cut lets the skin show through."""
    if p.hair != "buzz":
        return c.hair
    r, g, b = ((h + s) // 2 for h, s in zip(c.hair, c.skin, strict=True))
    return r, g, b


def _head_front_back(p: Identity, c: _Palette, back: bool, cy: float, rx: float, ry: float) -> list[Shape]:
    out: list[Shape] = []
    buzz = p.hair == "buzz"
    hair = _hair_colour(p, c)
    if p.hair == "bun":
        out.append(Ellipse(0.0, cy - ry * 1.02, 0.026, 0.022, c.hair))
    if back:
        out.append(Ellipse(-rx * 0.98, cy + 0.012, 0.01, 0.014, c.skin))  # ears
        out.append(Ellipse(rx * 0.98, cy + 0.012, 0.01, 0.014, c.skin))
        out.append(Ellipse(0.0, cy - 0.004, rx * 1.04, ry * 1.0, hair))
        if p.hair == "ponytail":
            out += [
                Ellipse(0.0, cy + 0.065, 0.02, 0.05, c.hair),
                rect(-0.012, cy + 0.02, 0.012, cy + 0.03, _DARK),
            ]
    else:
        out.append(Ellipse(0.0, cy - 0.006, rx * 1.05, ry * (0.9 if buzz else 1.0), hair))
        out.append(Ellipse(0.0, cy + 0.01, rx * 0.93, ry * 0.88, c.skin))
        eyes = [(-0.019, cy + 0.012), (0.019, cy + 0.012)]
        out += [Ellipse(x, y, 0.0055, 0.0045, _DARK) for x, y in eyes]
        out.append(rect(-0.012, cy + 0.04, 0.012, cy + 0.046, shade(c.skin, 0.72)))  # mouth
        if p.glasses != NONE:
            out += _glasses(p.glasses, eyes, c.skin) + [rect(-0.007, cy + 0.009, 0.007, cy + 0.013, _DARK)]
    if p.hat == "cap":
        out.append(Ellipse(0.0, cy - 0.035, rx * 1.08, ry * 0.58, c.hat))
        if not back:
            out.append(Ellipse(0.0, cy - 0.006, rx * 1.18, 0.01, shade(c.hat, 0.8)))
    elif p.hat == "beanie":
        out += [
            Ellipse(0.0, cy - 0.035, rx * 1.08, ry * 0.62, c.hat),
            rect(-rx * 1.08, cy - 0.02, rx * 1.08, cy - 0.002, shade(c.hat, 0.78)),
        ]
    return out


def _side(p: Identity, pose: Pose) -> list[Shape]:
    """A person walking towards +x: the camera sees the person's left side (the near side)."""
    c, b = _palette(p), p.build
    far = 0.82  # shading of the far limbs
    s = pose.stride
    near_bag = p.bag_side == "left"
    out: list[Shape] = []

    def arm_joints(swing: float, raised: bool) -> tuple[_Point, _Point, _Point]:
        shoulder = (0.0, 0.195)
        elbow = (shoulder[0] + 0.145 * math.sin(swing), shoulder[1] + 0.145 * math.cos(swing))
        fore = 2.3 if raised else swing + 0.25 * abs(swing) + 0.1
        length = 0.12 if raised else 0.135
        return shoulder, elbow, (elbow[0] + length * math.sin(fore), elbow[1] + length * math.cos(fore))

    def leg(theta: float, factor: float) -> list[Shape]:
        hip = (0.0, 0.48)
        knee = (0.25 * math.sin(theta), 0.48 + 0.25 * math.cos(theta))
        shin = theta - 0.35 * abs(s) if theta < 0 else theta * 0.6
        ankle = (knee[0] + 0.24 * math.sin(shin), knee[1] + 0.24 * math.cos(shin))
        shoe = Ellipse(ankle[0] + 0.026, ankle[1] + 0.022, 0.046, 0.022, c.shoes)
        return _leg(hip, knee, ankle, p, c, b, shoe, factor)

    near_arm = arm_joints(0.5 * pose.arm_swing, pose.raised_arm == "left")
    far_arm = arm_joints(-0.5 * pose.arm_swing, pose.raised_arm == "right")
    hand_bag = []
    if p.bag == "handbag":
        wx, wy = (near_arm if near_bag else far_arm)[2]
        hand_bag = [
            Polygon(
                (
                    (wx - 0.026, wy + 0.035),
                    (wx + 0.026, wy + 0.035),
                    (wx + 0.03, wy + 0.095),
                    (wx - 0.03, wy + 0.095),
                ),
                c.bag if near_bag else shade(c.bag, far),
            )
        ]

    out += _arm(*far_arm, p, c, b, far)
    if not near_bag:
        out += hand_bag
        if p.bag == "shoulder":
            out.append(rect(-0.08, 0.42, -0.012, 0.49, shade(c.bag, far)))
    out += leg(-0.34 * s, far)
    out += leg(0.34 * s, 1.0)
    if p.bottom_type == "skirt":
        out.append(
            Polygon(((-0.05 * b, 0.46), (0.048 * b, 0.46), (0.078 * b, 0.69), (-0.082 * b, 0.69)), c.bottom)
        )
    out.append(rect(-0.015, 0.115, 0.022, 0.17, c.skin))  # neck
    out.append(
        Polygon(
            (
                (-0.05 * b, 0.185),
                (-0.035 * b, 0.163),
                (0.03 * b, 0.163),
                (0.048 * b, 0.2),
                (0.052 * b, 0.3),
                (0.045 * b, 0.42),
                (0.05 * b, 0.5),
                (-0.05 * b, 0.5),
                (-0.048 * b, 0.42),
                (-0.055 * b, 0.28),
            ),
            c.top,
        )
    )
    if p.belt != NONE:
        out.append(rect(-0.052 * b, 0.471, 0.052 * b, 0.485, ACCESSORY_COLORS[p.belt]))
    if p.hair == "long":
        out.append(Ellipse(-0.03, 0.125, 0.036, 0.085, c.hair))
    if p.bag == "backpack":
        x0, x1 = -0.05 * b - 0.072, -0.044 * b
        out += [
            Ellipse((x0 + x1) / 2, 0.205, (x1 - x0) / 2, 0.025, c.bag),
            rect(x0, 0.205, x1, 0.37, c.bag),
            Polygon(((-0.01, 0.165), (0.008, 0.165), (0.03 * b, 0.33), (0.014 * b, 0.33)), shade(c.bag, 0.8)),
        ]
    if p.bag == "shoulder" and near_bag:
        out += [
            Polygon(((-0.04, 0.165), (-0.025, 0.165), (0.02, 0.42), (0.005, 0.42)), shade(c.bag, 0.7)),
            rect(-0.022, 0.42, 0.052, 0.49, c.bag),
        ]
    out += _arm(*near_arm, p, c, b)
    if near_bag:
        out += hand_bag
    if pose.raised_arm == "left":
        wx, wy = near_arm[2]
        out.append(rect(wx - 0.008, wy - 0.03, wx + 0.016, wy + 0.004, _DARK))
    if p.scarf != NONE:
        scarf = ACCESSORY_COLORS[p.scarf]
        out += [
            Polygon(((-0.022, 0.145), (0.026, 0.145), (0.03, 0.172), (-0.026, 0.172)), scarf),
            rect(0.018, 0.165, 0.036, 0.26, scarf),
        ]
    out += _head_side(p, c)
    return out


def _head_side(p: Identity, c: _Palette) -> list[Shape]:
    cx, cy, rx, ry = 0.008, 0.068, 0.05, 0.066
    buzz = p.hair == "buzz"
    hair = _hair_colour(p, c)
    out: list[Shape] = []
    if p.hair == "ponytail":
        out.append(Ellipse(cx - rx - 0.008, cy + 0.025, 0.02, 0.045, c.hair))
    if p.hair == "bun":
        out.append(Ellipse(cx - rx * 0.65, cy - ry * 0.8, 0.024, 0.022, c.hair))
    out += [
        Ellipse(cx + 0.004, cy, rx * 1.02, ry, c.skin),
        Ellipse(cx - 0.01, cy - 0.008, rx * 0.98, ry * (0.88 if buzz else 0.95), hair),
        Ellipse(cx + 0.016, cy + 0.014, rx * 0.78, ry * 0.8, c.skin),
        Ellipse(cx + rx * 0.98, cy + 0.014, 0.011, 0.012, c.skin),  # nose
        Ellipse(cx - 0.006, cy + 0.012, 0.009, 0.013, shade(c.skin, 0.85)),  # ear
        Ellipse(cx + 0.03, cy + 0.01, 0.0055, 0.0045, _DARK),  # eye
        rect(cx + 0.024, cy + 0.04, cx + 0.046, cy + 0.045, shade(c.skin, 0.72)),  # mouth
    ]
    if p.glasses != NONE:
        out += [rect(cx - 0.004, cy + 0.006, cx + 0.024, cy + 0.01, _DARK)]
        out += _glasses(p.glasses, [(cx + 0.032, cy + 0.01)], c.skin)
    if p.hat == "cap":
        out += [
            Ellipse(cx - 0.004, cy - 0.035, rx * 1.06, ry * 0.56, c.hat),
            Polygon(
                (
                    (cx + rx * 0.5, cy - 0.024),
                    (cx + rx + 0.046, cy - 0.014),
                    (cx + rx + 0.04, cy - 0.003),
                    (cx + rx * 0.5, cy - 0.006),
                ),
                shade(c.hat, 0.8),
            ),
        ]
    elif p.hat == "beanie":
        out += [
            Ellipse(cx - 0.004, cy - 0.035, rx * 1.08, ry * 0.62, c.hat),
            rect(cx - rx * 1.08, cy - 0.02, cx + rx * 1.0, cy - 0.002, shade(c.hat, 0.78)),
        ]
    return out
