"""Photographs as a source of real texture: prints and weave on clothes, backgrounds behind people.

Without them a rendered person wears only drawn patterns (stripes, checks, blocks) on flat cloth
and stands in front of procedural scenes, while a real camera sees fabric with grain, folds and
prints, and clutter behind everyone. A folder of photographs (licence-clean; the one the project
uses is Debian's desktop wallpapers, docs/rendered-people.md) is cut into crops. Which photograph
and which part of it is a function of the caller's generator, so a person keeps the same print in
every image and a camera the same backgrounds.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from personsearch.data.images import read_image

SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
LONG_SIDE = 1024
"""Photographs are kept at most this many pixels on their long side: crops are small, and a
bank of a hundred wallpapers stays a few hundred MB per process."""


def photo_digest(folder: str | Path) -> tuple[list[str], str]:
    """The photographs under ``folder`` (recursively; names relative to it, in name order) and a
    sha256 over every file's name and bytes, without decoding them: what a rendered set records.
    A missing folder, or one without photographs, is an error naming it."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"photo folder {folder} does not exist: give a folder of .jpg, .png or .webp photographs"
        )
    paths = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
    if not paths:
        raise ValueError(f"{folder} holds no photographs (.jpg, .jpeg, .png, .webp), searched recursively")
    names = [p.relative_to(folder).as_posix() for p in paths]
    digest = hashlib.sha256()
    for name, path in zip(names, paths):
        digest.update(name.encode() + b"\0" + path.read_bytes())
    return names, digest.hexdigest()


@dataclass(frozen=True)
class PhotoBank:
    """The photographs of one folder, in name order, each RGB uint8 at most ``LONG_SIDE`` long."""

    names: tuple[str, ...]
    images: tuple[np.ndarray, ...]
    digest: str
    """``photo_digest``'s sha256 of the folder."""

    @classmethod
    def load(cls, folder: str | Path) -> PhotoBank:
        names, digest = photo_digest(folder)
        images = []
        for name in names:
            image = read_image(Path(folder) / name)
            scale = LONG_SIDE / max(image.shape[:2])
            if scale < 1:
                image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            images.append(np.ascontiguousarray(image))
        return cls(tuple(names), tuple(images), digest)

    def crop(
        self, rng: np.random.Generator, size: tuple[int, int], scale: tuple[float, float] = (0.2, 0.7)
    ) -> np.ndarray:
        """A (H, W, 3) uint8 crop of one photograph at ``size`` (H, W): a window of ``scale`` of the
        photograph's height (or less where the photograph is narrow), flipped half the time."""
        photo = self.images[int(rng.integers(len(self.images)))]
        height, width = photo.shape[:2]
        crop_h = max(2, round(rng.uniform(*scale) * height))
        crop_w = max(2, min(width, round(crop_h * size[1] / size[0])))
        crop_h = max(2, min(crop_h, round(crop_w * size[0] / size[1])))
        y = int(rng.integers(0, height - crop_h + 1))
        x = int(rng.integers(0, width - crop_w + 1))
        out = cv2.resize(
            photo[y : y + crop_h, x : x + crop_w], (size[1], size[0]), interpolation=cv2.INTER_AREA
        )
        return np.ascontiguousarray(out[:, ::-1] if rng.random() < 0.5 else out)
