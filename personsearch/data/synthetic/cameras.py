"""Cameras: a background style, a ground plane seen in perspective and illumination.

A person whose feet are ``d`` pixels below a camera's horizon is about ``scale * d`` pixels tall;
each camera also has its own colour cast, brightness, light direction, optical blur and noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STYLES = ("street", "plaza", "park", "corridor", "campus", "market")


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


def make_cameras(
    rng: np.random.Generator, count: int, width: int, height: int, max_person: int
) -> list[Camera]:
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
