"""Procedural identities: coarse and fine attributes, and poses.

An identity is seen at two levels. Coarse attributes (clothing colours and cut, build, skin tone)
cover most of the body and survive at 20-30 px; they are shared by a whole *family* of look-alike
identities. Fine attributes (chest logo, bag, shoes, hair, hat, glasses, scarf, belt) are small
relative to the body, differ between family members, and average away when a person is only a few
dozen pixels tall. Matching look-alikes therefore needs the fine detail that only large people
show: the multi-scale question the benchmark exists to ask. How an identity is drawn:
``figures.py``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypedDict, TypeVar

import numpy as np

from personsearch.data.synthetic.drawing import RGB

TOP_COLORS: dict[str, RGB] = {
    "red": (196, 42, 42),
    "navy": (36, 46, 98),
    "white": (232, 232, 226),
    "black": (32, 32, 34),
    "grey": (128, 128, 132),
    "green": (44, 128, 62),
    "yellow": (222, 196, 52),
    "sky": (112, 168, 218),
    "orange": (228, 120, 40),
    "purple": (108, 58, 140),
    "beige": (200, 180, 140),
    "pink": (228, 140, 170),
}
BOTTOM_COLORS: dict[str, RGB] = {
    "black": (30, 30, 32),
    "denim": (52, 76, 122),
    "grey": (104, 104, 110),
    "khaki": (178, 160, 116),
    "brown": (100, 70, 46),
    "white": (222, 222, 216),
    "olive": (86, 96, 50),
    "navy": (30, 36, 72),
}
SKIN_TONES: tuple[RGB, ...] = (
    (250, 218, 190),
    (232, 188, 150),
    (198, 148, 108),
    (150, 102, 70),
    (98, 66, 46),
)
HAIR_TONES: dict[str, dict[str, RGB]] = {
    "dark": {"black": (24, 20, 20), "dark brown": (60, 40, 28), "brown": (98, 62, 36)},
    "light": {"blond": (214, 184, 110), "ash": (168, 142, 100), "grey": (172, 172, 172)},
}
"""A family shares the hair tone (visible even when small); members differ in the exact shade."""
HAIR_COLORS: dict[str, RGB] = {name: rgb for shades in HAIR_TONES.values() for name, rgb in shades.items()}
DETAIL_COLORS: dict[str, RGB] = {
    "red": (220, 30, 40),
    "blue": (30, 80, 220),
    "green": (30, 170, 60),
    "yellow": (250, 220, 30),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
    "orange": (250, 130, 20),
    "magenta": (220, 40, 190),
    "cyan": (40, 200, 220),
    "brown": (120, 72, 36),
}
ACCESSORY_COLORS: dict[str, RGB] = {
    "black": (30, 30, 32),
    "charcoal": (72, 72, 76),
    "navy": (36, 42, 84),
    "brown": (98, 64, 40),
    "tan": (172, 142, 100),
    "olive": (82, 90, 52),
    "maroon": (112, 36, 44),
    "slate": (92, 106, 124),
}
"""Muted colours of the larger accessories (bags, hats, scarves, belts): they blend into the clothing
when small."""
BUILDS: tuple[float, ...] = (0.88, 1.0, 1.12, 1.26)
"""Width multipliers of the body (the coarse height-to-width ratio)."""
LOGO_SHAPES = ("circle", "square", "triangle", "star", "diamond", "cross", "ring", "bars")
BAGS = ("none", "backpack", "shoulder", "handbag")
HAIR_STYLES = ("short", "long", "ponytail", "bun", "buzz")
HATS = ("none", "cap", "beanie")
GLASSES = ("none", "clear", "dark")
VIEWS = ("front", "back", "left", "right")
"""``left``/``right``: side views, walking towards the image's left/right."""

T = TypeVar("T")
NONE = "none"


@dataclass(frozen=True)
class Identity:
    """Everything that makes one person look like themselves, in every image."""

    family: int
    """Look-alike family: identities of one family share every coarse attribute."""
    # coarse
    top: str
    sleeves: str
    bottom: str
    bottom_type: str
    build: float
    skin: int
    hair_tone: str
    # fine
    logo: str
    logo_color: str
    bag: str
    bag_color: str
    bag_side: str
    shoes: str
    hair: str
    hair_color: str
    hat: str
    hat_color: str
    glasses: str
    scarf: str
    belt: str

    def coarse(self) -> tuple[str, str, str, str, float, int, str]:
        """The attributes a family shares."""
        return (self.top, self.sleeves, self.bottom, self.bottom_type, self.build, self.skin, self.hair_tone)

    def details(
        self,
    ) -> tuple[
        tuple[str, str] | str,
        tuple[str, str, str] | str,
        str,
        tuple[str, str],
        tuple[str, str] | str,
        str,
        str,
        str,
    ]:
        """One entry per fine attribute group; colours of absent items are ignored."""
        return (
            (self.logo, self.logo_color) if self.logo != NONE else NONE,
            (self.bag, self.bag_color, self.bag_side) if self.bag != NONE else NONE,
            self.shoes,
            (self.hair, self.hair_color),
            (self.hat, self.hat_color) if self.hat != NONE else NONE,
            self.glasses,
            self.scarf,
            self.belt,
        )


def detail_difference(a: Identity, b: Identity) -> int:
    """How many fine attribute groups differ between two identities."""
    return sum(x != y for x, y in zip(a.details(), b.details(), strict=True))


@dataclass(frozen=True)
class Pose:
    """One appearance's body configuration."""

    view: str
    stride: float
    """Walking phase in [-1, 1]: how far the legs are apart (0: standing)."""
    arm_swing: float
    """Arm swing in [-1, 1]; positive swings the person's left arm forward."""
    raised_arm: str
    """``none``, ``left`` or ``right``: that forearm is bent up (holding a phone)."""


def _pick(rng: np.random.Generator, options: Sequence[T], p: Sequence[float] | None = None) -> T:
    return options[int(rng.choice(len(options), p=p))]


def _contrasting(rng: np.random.Generator, against: RGB, min_distance: float = 90.0) -> str:
    names = [n for n, c in DETAIL_COLORS.items() if math.dist(c, against) >= min_distance]
    return _pick(rng, names)


class CoarseLook(TypedDict):
    """The coarse attributes of an ``Identity``: what a look-alike family shares."""

    top: str
    sleeves: str
    bottom: str
    bottom_type: str
    build: float
    skin: int
    hair_tone: str


def sample_coarse(rng: np.random.Generator) -> CoarseLook:
    """Coarse attributes of a new family."""
    return {
        "top": _pick(rng, list(TOP_COLORS)),
        "sleeves": _pick(rng, ("long", "short")),
        "bottom": _pick(rng, list(BOTTOM_COLORS)),
        "bottom_type": _pick(rng, ("trousers", "shorts", "skirt"), p=(0.6, 0.2, 0.2)),
        "build": float(_pick(rng, BUILDS)),
        "skin": int(rng.integers(len(SKIN_TONES))),
        "hair_tone": _pick(rng, list(HAIR_TONES), p=(0.75, 0.25)),
    }


def sample_identity(rng: np.random.Generator, family: int, coarse: CoarseLook | None = None) -> Identity:
    """A new identity; with ``coarse`` given it joins that family's look."""
    coarse = sample_coarse(rng) if coarse is None else coarse
    scarves = list(ACCESSORY_COLORS)
    return Identity(
        family=family,
        **coarse,
        logo=_pick(rng, (NONE, *LOGO_SHAPES), p=[0.12] + [0.88 / len(LOGO_SHAPES)] * len(LOGO_SHAPES)),
        logo_color=_contrasting(rng, TOP_COLORS[coarse["top"]]),
        bag=_pick(rng, BAGS, p=(0.3, 0.3, 0.2, 0.2)),
        bag_color=_pick(rng, list(ACCESSORY_COLORS)),
        bag_side=_pick(rng, ("left", "right")),
        shoes=_pick(rng, ("black", "white", "brown", "red", "blue", "yellow")),
        hair=_pick(rng, HAIR_STYLES),
        hair_color=_pick(rng, list(HAIR_TONES[coarse["hair_tone"]])),
        hat=_pick(rng, HATS, p=(0.6, 0.25, 0.15)),
        hat_color=_pick(rng, list(ACCESSORY_COLORS)),
        glasses=_pick(rng, GLASSES, p=(0.55, 0.25, 0.2)),
        scarf=_pick(rng, (NONE, *scarves), p=[0.6] + [0.4 / len(scarves)] * len(scarves)),
        belt=_pick(rng, (NONE, "black", "brown", "tan", "charcoal"), p=(0.5, 0.2, 0.15, 0.1, 0.05)),
    )


def sample_population(
    rng: np.random.Generator,
    count: int,
    family_size: tuple[int, int],
    first_family: int = 0,
    min_detail_difference: int = 3,
) -> list[Identity]:
    """``count`` identities grouped into look-alike families of ``family_size`` (inclusive range).

    Families have distinct coarse looks; members of a family differ in at least
    ``min_detail_difference`` fine attribute groups, so some difference shows in every view.
    """
    people: list[Identity] = []
    used_looks: set[tuple[object, ...]] = set()
    family = first_family
    while len(people) < count:
        size = min(int(rng.integers(family_size[0], family_size[1] + 1)), count - len(people))
        coarse = sample_coarse(rng)
        for _attempt in range(100):  # a repeat is accepted only once the looks run out
            if tuple(coarse.values()) not in used_looks:
                break
            coarse = sample_coarse(rng)
        used_looks.add(tuple(coarse.values()))
        members: list[Identity] = []
        for _ in range(size):
            for _attempt in range(200):
                candidate = sample_identity(rng, family, coarse)
                if all(detail_difference(candidate, m) >= min_detail_difference for m in members):
                    break
            else:
                raise RuntimeError(
                    f"could not make {size} look-alikes that differ in {min_detail_difference} details"
                )
            members.append(candidate)
        people.extend(members)
        family += 1
    return people


def sample_pose(rng: np.random.Generator) -> Pose:
    """A random view, walking phase and arm configuration."""
    stride = 0.0 if rng.random() < 0.25 else float(rng.uniform(-1.0, 1.0))
    return Pose(
        view=_pick(rng, VIEWS, p=(0.34, 0.3, 0.18, 0.18)),
        stride=stride,
        arm_swing=float(-stride * rng.uniform(0.5, 1.0)),
        raised_arm=_pick(rng, ("none", "left", "right"), p=(0.8, 0.1, 0.1)),
    )
