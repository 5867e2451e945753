"""Loose garments and long hair as geometry of their own: a skirt, the skirt of a dress or of a long
coat, and hair falling down the back.

A garment painted on the body's skin, or offset from it along the normals, follows every limb: a
skirt drawn that way is two painted thighs with a gap between them, and long hair is a patch on the
neck. Real ones hang free of what they cover, and so change a person's outline, which is what a
camera a few metres away sees first. Here each such piece is a surface of rings: every ring hugs the
outline of the posed body's slice at its height, with a margin, so the piece swings with the legs
and turns with the body without a cloth simulation. A skirt's rings never narrow going down (cloth
falls from the hips, it does not tuck between the legs); hair is a curtain over the back half of the
head, neck and shoulders.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from personsearch.data.people3d.body import REGIONS
from personsearch.data.people3d.outfit import MATERIALS, Identity, waist_and_shoulders

SEGMENTS = 28
"""Points around a skirt's ring, or across a curtain of hair."""
RINGS = 9
BAND = 0.035
"""Metres above and below a ring's height whose body vertices it hugs: chosen by their height in
the pose, so a swinging leg is inside the hem wherever it is."""


@dataclass(frozen=True)
class Piece:
    """One loose piece of an identity, fixed by its rest shape."""

    material: int
    """Index into ``outfit.MATERIALS``."""
    hugs: np.ndarray
    """The body vertices whose outline it follows (legs and hips for a skirt, head, neck and
    shoulders for hair)."""
    heights: np.ndarray
    """(rings,) each ring's height, top to bottom, metres in the rest pose's frame."""
    anchor: np.ndarray
    """The vertices at the top ring's height in the rest pose: where they are in a pose tells how
    far the piece moved (Anny's posed bodies stand lower in their frame than its rest pose)."""
    anchor_height: float
    """Their mean height at rest."""
    margin: np.ndarray
    """(rings,) metres the ring stands off the outline."""
    tube: bool
    """A closed ring (skirts) or a curtain across the back (hair)."""
    width: float = 0.0
    """A curtain's half-width, metres."""


def _at(rest: np.ndarray, mask: np.ndarray, height: float) -> np.ndarray:
    return np.flatnonzero(mask & (np.abs(rest[:, 2] - height) < BAND))


def pieces(identity: Identity, rest: np.ndarray, region: np.ndarray) -> tuple[Piece, ...]:
    """The loose pieces ``identity`` wears, on its body in the rest pose (``region``: each
    vertex's ``body.REGIONS`` index)."""
    r = {name: region == k for k, name in enumerate(REGIONS)}
    z = rest[:, 2]
    waist, _ = waist_and_shoulders(identity, rest, region)
    ankle = float(np.percentile(z[r["shin"]], 3))
    lower_body = r["torso"] | r["hips"] | r["thigh"] | r["shin"]
    out = []
    hem = identity.hem
    if identity.skirt != "none" or identity.coat:
        material = MATERIALS.index(
            "jacket" if identity.coat else ("top" if identity.skirt == "dress" else "bottom")
        )
        bottom = waist + hem * (ankle - waist)
        margin = np.linspace(0.012, 0.03 + 0.05 * identity.flare, RINGS)
        heights = np.linspace(waist, bottom, RINGS)
        anchor = _at(rest, lower_body, waist)
        out.append(
            Piece(
                material,
                np.flatnonzero(lower_body),
                heights,
                anchor,
                float(rest[anchor, 2].mean()),
                margin,
                tube=True,
            )
        )
    if identity.hair_length > 0:
        head = z[r["head"]]
        ear = float(head.min() + 0.45 * (head.max() - head.min()))
        upper_body = r["head"] | r["skin"] | r["torso"]
        x_head = rest[r["head"], 0]
        width = float(x_head.max() - x_head.min()) / 2 + 0.012
        margin = np.full(RINGS, 0.012)
        head_anchor = _at(rest, r["head"], ear)
        out.append(
            Piece(
                MATERIALS.index("hair"),
                np.flatnonzero(upper_body),
                np.linspace(ear, ear - identity.hair_length, RINGS),
                head_anchor,
                float(rest[head_anchor, 2].mean()),
                margin,
                tube=False,
                width=width,
            )
        )
    return tuple(out)


def _sections(piece: Piece, vertices: np.ndarray) -> np.ndarray:
    """(rings, 5): centre x, centre y, radius x, radius y and height of each ring: the outline
    of the hugged vertices within ``BAND`` of its height (the nearest 8 where fewer are), for a
    tube the smallest ellipse of the box's proportions that holds them all."""
    hugged = vertices[piece.hugs]
    out = np.empty((len(piece.heights), 5), np.float32)
    shift = float(vertices[piece.anchor, 2].mean()) - piece.anchor_height
    for k, height in enumerate(piece.heights + shift):
        distance = np.abs(hugged[:, 2] - height)
        near = distance < BAND
        v = hugged[near] if near.sum() >= 8 else hugged[np.argsort(distance)[:8]]
        low, high = v[:, :2].min(0), v[:, :2].max(0)
        centre, radii = (low + high) / 2, np.maximum((high - low) / 2, 1e-3)
        if piece.tube:  # the ellipse through the box's sides cuts its corners: grow it round them
            radii *= max(1.0, float(np.sqrt((((v[:, :2] - centre) / radii) ** 2).sum(1).max())))
        out[k] = [*centre, *radii, height]
    if piece.tube:  # cloth falls from the hips: no ring narrower than the one above it
        out[:, 2] = np.maximum.accumulate(out[:, 2])
        out[:, 3] = np.maximum.accumulate(out[:, 3])
    return out


def _surface(piece: Piece, vertices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rings * SEGMENTS, 3) points and unit normals of ``piece`` hung on ``vertices``."""
    s = _sections(piece, vertices)
    cx, cy, rx, ry, z = (s[:, k : k + 1] for k in range(5))
    m = piece.margin[:, None]
    if piece.tube:
        angle = np.linspace(0, 2 * np.pi, SEGMENTS, endpoint=False)[None]
        x = cx + (rx + m) * np.cos(angle)
        y = cy + (ry + m) * np.sin(angle)
        normal = np.stack([np.cos(angle) / (rx + m), np.sin(angle) / (ry + m)], -1)
    else:  # across the back (+y), over the band's outline where it is wider than the hair
        across = np.linspace(-1.0, 1.0, SEGMENTS)[None]
        x = np.broadcast_to(cx + across * piece.width, (len(s), SEGMENTS))
        inside = np.clip(1 - ((x - cx) / rx) ** 2, 0.0, 1.0)
        y = cy + ry * np.sqrt(inside) + m
        normal = np.stack([(x - cx) / rx**2, (y - cy) / np.maximum(ry, 1e-3) ** 2], -1)
    normal = np.concatenate([normal, np.zeros_like(normal[..., :1])], -1)
    normal /= np.maximum(np.linalg.norm(normal, axis=-1, keepdims=True), 1e-9)
    points = np.stack([x, y, np.broadcast_to(z, x.shape)], -1)
    return points.reshape(-1, 3).astype(np.float32), normal.reshape(-1, 3).astype(np.float32)


def _triangles(tube: bool, offset: int) -> np.ndarray:
    quads = []
    columns = SEGMENTS if tube else SEGMENTS - 1
    for i in range(RINGS - 1):
        for j in range(columns):
            a, b = i * SEGMENTS + j, i * SEGMENTS + (j + 1) % SEGMENTS
            c, d = a + SEGMENTS, b + SEGMENTS
            quads += [(a, b, c), (b, d, c)]
    return np.asarray(quads, np.int32) + offset


def mesh(
    worn: tuple[Piece, ...], rest: np.ndarray, posed: np.ndarray, first_vertex: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The pieces hung on one posed body: vertices, normals, rest positions (where the
    renderer's patterns are drawn from, so a pattern sticks to the cloth), material slots and
    triangles numbered from ``first_vertex`` (the body's vertex count, to append them to it)."""
    parts: list[tuple[np.ndarray, ...]] = []
    count = first_vertex
    for piece in worn:
        points, normals = _surface(piece, posed)
        at_rest, _ = _surface(piece, rest)
        slots = np.full(len(points), piece.material, np.int32)
        parts.append((points, normals, at_rest, slots, _triangles(piece.tube, count)))
        count += len(points)
    if not parts:
        return (
            np.zeros((0, 3), np.float32),
            np.zeros((0, 3), np.float32),
            np.zeros((0, 3), np.float32),
            np.zeros(0, np.int32),
            np.zeros((0, 3), np.int32),
        )
    vertices, normals, at_rest, slots, triangles = (np.concatenate(p) for p in zip(*parts))
    return vertices, normals, at_rest, slots, triangles
