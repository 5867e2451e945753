"""What one rendered identity is: body shape, gait, skin, hair and clothes.

Everything is drawn from one seeded generator, so an identity is a pure function of its seed and
keeps its body and clothes in every pose, view and camera. Clothes are materials per body region
(``body.REGIONS``) with a thickness: a garment's vertices stand off the skin along their normals,
so sleeves, hems and hair show as contours rather than as paint on a mannequin. Colours follow
what people wear (mostly dark and neutral, some vivid), not a uniform hue wheel: a network that
learns real people must not be able to tell them apart by colour alone. Skirts, long coats and
long hair hang free of the body as geometry of their own (``drape``). Given photographs
(``photos.PhotoBank``), ``photo_fabrics`` adds prints and weave cut from them, drawn from the same
seed.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import cv2
import numpy as np

from personsearch.data.people3d.body import PHENOTYPES, REGIONS, Gait
from personsearch.data.people3d.photos import PhotoBank

MATERIALS = ("skin", "hair", "top", "bottom", "shoes", "jacket", "bag")
"""Material slots the renderer shades; each vertex takes one."""
PATTERNS = ("plain", "stripes", "vstripes", "checks", "print", "block")
"""How a garment's second colour is laid out (``render``'s fragment shader draws them)."""
FABRICS = ("drawn", "print", "weave")
"""What a photograph does to a material: nothing, its colours as a print, or its light and shade
as the texture of the cloth (``Fabrics``)."""
FABRIC_ODDS = {
    "top": (0.3, 0.22, 0.48),
    "bottom": (0.4, 0.06, 0.54),
    "shoes": (0.7, 0.0, 0.3),
    "jacket": (0.35, 0.1, 0.55),
    "bag": (0.4, 0.2, 0.4),
}
"""Per material, the odds of each of ``FABRICS``: prints mostly on tops and bags, as people wear
them; skin and hair stay drawn."""
FABRIC_SIZE = 128
"""Pixels on a side of one material's photograph crop."""

SKIN = ((247, 218, 196), (234, 192, 160), (214, 168, 130), (180, 132, 96), (140, 96, 66), (96, 64, 46))
HAIR = (
    (20, 16, 14),
    (44, 30, 22),
    (78, 52, 34),
    (120, 84, 50),
    (186, 150, 96),
    (150, 146, 140),
    (120, 50, 28),
)
NEUTRALS = (
    (24, 24, 26),
    (48, 48, 52),
    (90, 90, 94),
    (150, 150, 150),
    (226, 226, 222),
    (34, 40, 70),
    (196, 178, 140),
    (92, 66, 46),
    (70, 78, 56),
)
DENIM = ((46, 64, 104), (64, 90, 130), (30, 40, 66), (96, 120, 156))
SHOES = ((20, 20, 22), (235, 235, 232), (90, 60, 40), (60, 60, 64), (150, 120, 90))


def _jitter(rng: np.random.Generator, rgb: tuple[int, int, int], spread: float = 10.0) -> np.ndarray:
    return np.clip(np.asarray(rgb, np.float32) + rng.normal(0.0, spread, 3), 0, 255) / 255.0


def _garment_colour(rng: np.random.Generator) -> np.ndarray:
    """Half neutral (black, grey, white, navy, beige, brown, olive), half any hue at moderate
    saturation: roughly a street's mix."""
    if rng.random() < 0.5:
        return _jitter(rng, NEUTRALS[int(rng.integers(len(NEUTRALS)))], 8.0)
    hue = rng.random()
    saturation = rng.uniform(0.25, 0.85)
    value = rng.uniform(0.25, 0.9)
    return np.asarray(colorsys.hsv_to_rgb(hue, saturation, value), np.float32)


@dataclass(frozen=True)
class Material:
    base: np.ndarray
    """RGB in [0, 1]."""
    second: np.ndarray
    pattern: int
    """Index into ``PATTERNS``."""
    frequency: float
    """Pattern repeats per metre."""
    thickness: float
    """Metres the material stands off the skin."""


@dataclass(frozen=True)
class Identity:
    """One rendered person. ``seed`` alone determines everything else."""

    seed: int
    phenotype: np.ndarray
    """(6,) in ``body.PHENOTYPES`` order."""
    gait: Gait
    materials: tuple[Material, ...]
    """One per ``MATERIALS`` slot."""
    long_sleeves: bool
    trousers: bool
    jacket: bool
    hair: str
    """"short", "long" or "none"."""
    waist: float
    """Where the top ends, as a fraction of the way from the hips (0) to the shoulders (1)."""
    bag: str = "none"
    """"none", "backpack" (a block on the back) or "shoulder" (a bag at one hip): carried
    things are among the first cues people use to tell strangers apart, and they change a
    person's outline, which painted clothes cannot."""
    skirt: str = "none"
    """"none", "skirt" (in the bottom's colours) or "dress" (in the top's): loose geometry
    (``drape``), from the waist to ``hem``; the legs below it are bare."""
    coat: bool = False
    """A jacket that goes on below the waist as loose geometry, to ``hem``."""
    hem: float = 0.5
    """Where a skirt or coat ends, as a fraction of the way from the waist (0) to the ankles (1)."""
    flare: float = 0.5
    """How far a skirt or coat widens towards its hem, 0 to 1."""
    hair_length: float = 0.0
    """Metres that long hair falls below the ears, as loose geometry; 0 for short hair."""


def make_identity(seed: int) -> Identity:
    rng = np.random.default_rng([seed, 0x3D])
    female = rng.random() < 0.5
    phenotype = np.array(
        [
            np.clip(rng.normal(0.85 if female else 0.15, 0.12), 0, 1),  # gender
            rng.uniform(0.6, 1.0),  # age: young adult and older
            np.clip(rng.normal(0.5, 0.15), 0, 1),  # muscle
            np.clip(rng.normal(0.45, 0.18), 0, 1),  # weight
            np.clip(rng.normal(0.5, 0.18), 0, 1),  # height
            np.clip(rng.normal(0.5, 0.15), 0, 1),  # proportions
        ],
        np.float32,
    )
    assert len(phenotype) == len(PHENOTYPES)
    skin = _jitter(rng, SKIN[int(rng.integers(len(SKIN)))], 6.0)
    hair_colour = _jitter(rng, HAIR[int(rng.integers(len(HAIR)))], 6.0)
    top, top_second = _garment_colour(rng), _garment_colour(rng)
    bottom = (
        _jitter(rng, DENIM[int(rng.integers(len(DENIM)))], 6.0)
        if rng.random() < 0.35
        else _garment_colour(rng)
    )
    jacket = rng.random() < 0.3
    top_pattern = int(rng.choice(len(PATTERNS), p=[0.5, 0.12, 0.05, 0.1, 0.13, 0.1]))
    materials = (
        Material(skin, skin * 0.8, 0, 0.0, 0.0),
        Material(hair_colour, hair_colour * 0.7, 0, 0.0, float(rng.uniform(0.008, 0.025))),
        Material(top, top_second, top_pattern, float(rng.uniform(8, 30)), float(rng.uniform(0.006, 0.014))),
        Material(
            bottom,
            bottom * 0.75,
            int(rng.choice([0, 3], p=[0.9, 0.1])),
            float(rng.uniform(10, 25)),
            float(rng.uniform(0.005, 0.012)),
        ),
        Material(_jitter(rng, SHOES[int(rng.integers(len(SHOES)))], 8.0), skin, 0, 0.0, 0.012),
        Material(
            _garment_colour(rng),
            top,
            int(rng.choice([0, 1], p=[0.85, 0.15])),
            float(rng.uniform(6, 14)),
            float(rng.uniform(0.016, 0.026)),
        ),
    )
    gait = Gait(
        stride=float(rng.uniform(16, 28)),
        arm_swing=float(rng.uniform(6, 20)),
        arm_out=float(rng.uniform(39, 44)),
        elbow=float(rng.uniform(4, 16)),
    )
    hair = str(rng.choice(["short", "long", "none"], p=[0.45, 0.5, 0.05] if female else [0.85, 0.08, 0.07]))
    long_sleeves = bool(rng.random() < 0.55 or jacket)
    trousers = bool(rng.random() < 0.75)
    waist = float(rng.uniform(0.05, 0.25))
    # drawn last, so every other trait of a seed is what it was before bags existed
    bag = str(rng.choice(["none", "backpack", "shoulder"], p=[0.55, 0.3, 0.15]))
    bag_colour = (
        _jitter(rng, NEUTRALS[int(rng.integers(len(NEUTRALS)))], 8.0)
        if rng.random() < 0.6
        else _garment_colour(rng)
    )
    bag_thickness = float(rng.uniform(0.07, 0.12) if bag == "backpack" else rng.uniform(0.05, 0.08))
    # loose geometry (generator version 3), drawn after everything above for the same reason
    skirt = str(rng.choice(["none", "skirt", "dress"], p=[0.6, 0.28, 0.12] if female else [1.0, 0.0, 0.0]))
    coat = bool(jacket and rng.random() < 0.45)
    hem = float(rng.uniform(0.35, 0.55) if coat else rng.uniform(0.3, 0.75))
    flare = float(rng.uniform(0.0, 1.0))
    hair_length = float(rng.uniform(0.08, 0.35)) if hair == "long" else 0.0
    return Identity(
        seed=seed,
        phenotype=phenotype,
        gait=gait,
        materials=(*materials, Material(bag_colour, bag_colour * 0.6, 0, 0.0, bag_thickness)),
        long_sleeves=long_sleeves,
        trousers=trousers,
        jacket=jacket,
        hair=hair,
        waist=waist,
        bag=bag,
        skirt=skirt,
        coat=coat,
        hem=hem,
        flare=flare,
        hair_length=hair_length,
    )


def waist_and_shoulders(identity: Identity, rest: np.ndarray, region: np.ndarray) -> tuple[float, float]:
    """Heights in the rest pose where ``identity``'s top ends and where the shoulders are."""
    z = rest[:, 2]
    hips_top = float(np.percentile(z[region == REGIONS.index("hips")], 90))
    shoulders = float(np.percentile(z[region == REGIONS.index("torso")], 97))
    return hips_top + identity.waist * (shoulders - hips_top) * 0.5, shoulders


def vertex_materials(identity: Identity, rest: np.ndarray, region: np.ndarray) -> np.ndarray:
    """The ``MATERIALS`` slot of each vertex of ``identity``'s body in its rest pose."""
    slot = {name: k for k, name in enumerate(MATERIALS)}
    r = {name: region == k for k, name in enumerate(REGIONS)}
    x, y, z = rest[:, 0], rest[:, 1], rest[:, 2]
    out = np.full(len(rest), slot["skin"], np.int32)

    waist_z, shoulders = waist_and_shoulders(identity, rest, region)
    upper = slot["jacket"] if identity.jacket else slot["top"]
    out[r["torso"] & (z >= waist_z)] = upper
    out[r["upper_arm"]] = upper
    if identity.long_sleeves:
        out[r["forearm"]] = upper
    if identity.jacket:  # open at the front: the shirt shows in a strip down the chest
        out[r["torso"] & (z >= waist_z) & (np.abs(x) < 0.05) & (y < np.median(y[r["torso"]]))] = slot["top"]
    below_waist = (r["torso"] & (z < waist_z)) | r["hips"] | r["thigh"]
    out[below_waist] = slot["top" if identity.skirt == "dress" else "bottom"]
    if identity.trousers and identity.skirt == "none":
        out[r["shin"]] = slot["bottom"]
    out[r["foot"]] = slot["shoes"]

    if identity.hair != "none":
        head = r["head"]
        head_z = z[head]
        low, top = float(head_z.min()), float(head_z.max())
        centre_y = float(np.median(y[head]))
        rel = (z - low) / max(top - low, 1e-6)
        back = y > centre_y + 0.01
        out[head & ((rel > 0.78) | (back & (rel > 0.25)))] = slot["hair"]
        if identity.hair == "long":  # down the back of the neck to the shoulder blades
            out[(r["skin"] | r["torso"] | head) & back & (z > shoulders - 0.12) & (np.abs(x) < 0.11)] = slot[
                "hair"
            ]
    torso_back = r["torso"] & (y > np.median(y[r["torso"]]) + 0.02)
    if identity.bag == "backpack":  # a block between the shoulder blades and the waist
        out[torso_back & (np.abs(x) < 0.13) & (z > waist_z + 0.04) & (z < shoulders - 0.06)] = slot["bag"]
    elif identity.bag == "shoulder":  # a bag hanging at one hip, on the side the seed picks
        side = 1.0 if identity.seed % 2 else -1.0
        hip_z = float(np.percentile(z[r["hips"]], 60))
        out[(r["hips"] | r["torso"]) & (side * x > 0.1) & (np.abs(z - hip_z) < 0.12)] = slot["bag"]
    return out


@dataclass(frozen=True)
class Fabrics:
    """Photographs on one identity's clothes, fixed per identity like its colours."""

    mode: np.ndarray
    """(len(MATERIALS),) index into ``FABRICS``."""
    scale: np.ndarray
    """(len(MATERIALS),) repeats of the crop per metre of the body."""
    pixels: np.ndarray
    """(len(MATERIALS), FABRIC_SIZE, FABRIC_SIZE, 3) uint8: a print's colours, or a weave's light
    and shade as grey centred on 128 (the shader doubles it and multiplies the colour)."""


def photo_fabrics(identity: Identity, bank: PhotoBank) -> Fabrics:
    """Which of ``identity``'s materials wear a photograph, and which crop: a function of its seed
    and the bank alone."""
    rng = np.random.default_rng([identity.seed, 0xFAB])
    mode = np.zeros(len(MATERIALS), np.int32)
    scale = np.ones(len(MATERIALS), np.float32)
    pixels = np.full((len(MATERIALS), FABRIC_SIZE, FABRIC_SIZE, 3), 128, np.uint8)
    for slot, odds in FABRIC_ODDS.items():
        k = MATERIALS.index(slot)
        mode[k] = int(rng.choice(len(FABRICS), p=odds))
        crop = bank.crop(rng, (FABRIC_SIZE, FABRIC_SIZE), scale=(0.08, 0.5))
        if FABRICS[mode[k]] == "print":
            scale[k] = rng.uniform(1.2, 4.0)  # a crop spans 25-80 cm
            pixels[k] = crop
        elif FABRICS[mode[k]] == "weave":
            scale[k] = rng.uniform(3.0, 14.0)
            grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY).astype(np.float32)
            contrast = rng.uniform(0.08, 0.3)
            shade = 1 + contrast * np.clip((grey - grey.mean()) / (grey.std() + 1e-3), -2.5, 2.5)
            pixels[k] = np.clip(127.5 * shade + 0.5, 0, 255).astype(np.uint8)[..., None]
    return Fabrics(mode, scale, pixels)
