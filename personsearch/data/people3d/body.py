"""Bodies: the Anny parametric human (shape by six phenotype controls), posed by a procedural walk.

Anny's frame: z up, x to the person's left, -y forward (the toes point to -y); metres. Its pose
parameters are per-bone 4x4 rotations in world-aligned bone frames (``local-ref``), so a hip
swinging forward is a rotation about x, whatever the body's shape. Its own walk-cycle file drives
IK targets this rig does not have, so the gait here is procedural: hips, knees, arms and elbows
as sinusoids of one phase, which is what a camera a few metres away resolves.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

INSTALL_HINT = "pip install 'personsearch[people3d]'"
PHENOTYPES = ("gender", "age", "muscle", "weight", "height", "proportions")
"""Anny's phenotype controls, each in [0, 1] (gender 0 = male, 1 = female; age 0.5 is an
adolescent, about 2/3 a young adult)."""

REGIONS = ("skin", "head", "torso", "upper_arm", "forearm", "hand", "hips", "thigh", "shin", "foot")
"""Body regions by each vertex's most weighted bone; outfits dress regions."""


def _region_of_bone(label: str) -> str:
    name = label.split(".")[0]
    if name in ("head", "eye", "jaw", "tongue") or name.startswith(("eye", "tongue", "jaw")):
        return "head"
    if name.startswith("neck"):
        return "skin"
    if name.startswith(("spine", "clavicle", "shoulder", "breast")):
        return "torso"
    if name.startswith("upperarm"):
        return "upper_arm"
    if name.startswith("lowerarm"):
        return "forearm"
    if name.startswith(("wrist", "finger", "metacarpal", "thumb")):
        return "hand"
    if name.startswith(("pelvis", "root")):
        return "hips"
    if name.startswith("upperleg"):
        return "thigh"
    if name.startswith("lowerleg"):
        return "shin"
    if name.startswith(("foot", "toe")):
        return "foot"
    return "skin"


def require_installed() -> None:
    """Fail at once, naming the fix, where rendering people would fail later: without the
    ``people3d`` extra (Anny and moderngl)."""
    import importlib.util

    missing = [name for name in ("anny", "moderngl") if importlib.util.find_spec(name) is None]
    if missing:
        raise ImportError(f"rendering people needs {' and '.join(missing)}: {INSTALL_HINT}")


@functools.cache
def body_model() -> Any:
    """The Anny full-body model in float32, loaded once per process. Its first load on a machine
    builds caches (about 0.8 GB in ~/.cache/anny, and a compiled kernel in ~/.cache/warp) and takes
    a minute or two; later loads take under a second."""
    try:
        import anny
    except ImportError as err:
        raise ImportError(f"rendered people need the Anny body model: {INSTALL_HINT}") from err
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = anny.Anny().float().eval()
    return model


@dataclass(frozen=True)
class Topology:
    """What every body shares: triangles and each vertex's region."""

    triangles: np.ndarray
    """(T, 3) int32 vertex indices."""
    region: np.ndarray
    """(V,) int index into ``REGIONS``."""
    bone_labels: tuple[str, ...]


@functools.cache
def topology() -> Topology:
    model = body_model()
    labels = tuple(model.bone_labels)
    weights = model.vertex_bone_weights.numpy()
    bones = model.vertex_bone_indices.numpy()
    dominant = bones[np.arange(len(bones)), weights.argmax(1)]
    region_of = np.array([REGIONS.index(_region_of_bone(label)) for label in labels])
    return Topology(model.get_triangular_faces().numpy().astype(np.int32), region_of[dominant], labels)


def _rotation(axis: str, degrees: float) -> np.ndarray:
    a = math.radians(degrees)
    c, s = math.cos(a), math.sin(a)
    i, j = {"x": (1, 2), "y": (2, 0), "z": (0, 1)}[axis]
    r = np.eye(4)
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r


@dataclass(frozen=True)
class Gait:
    """A person's way of walking (part of their identity) and where in the cycle they are."""

    stride: float = 22.0
    """Hip swing amplitude, degrees (0: standing)."""
    arm_swing: float = 14.0
    arm_out: float = 36.0
    """How far the arms are lowered from Anny's A-pose (about 40 hangs them straight down)."""
    elbow: float = 12.0


def walk_pose(gait: Gait, phase: float) -> dict[str, np.ndarray]:
    """Per-bone 4x4 rotations (Anny's ``local-ref``) of a walk at ``phase`` in [0, 1)."""
    swing = math.sin(2 * math.pi * phase)
    pose: dict[str, np.ndarray] = {}
    for side, sign in (("L", 1.0), ("R", -1.0)):
        hip = -gait.stride * swing * sign  # negative about x: the thigh swings forward (-y)
        knee = (
            gait.stride * 1.6 * max(0.0, math.sin(2 * math.pi * phase + (0.0 if sign > 0 else math.pi) - 0.6))
        )
        pose[f"upperleg01.{side}"] = _rotation("x", hip)
        pose[f"lowerleg01.{side}"] = _rotation("x", knee)
        arm = gait.arm_swing * swing * sign  # the arm swings against its leg
        pose[f"upperarm01.{side}"] = _rotation("x", arm) @ _rotation("y", gait.arm_out * sign)
        pose[f"lowerarm01.{side}"] = _rotation("x", -gait.elbow - max(0.0, -arm) * 0.6)
    return pose


def posed_vertices(
    phenotypes: np.ndarray, poses: list[dict[str, np.ndarray]]
) -> tuple[np.ndarray, np.ndarray]:
    """Rest and posed vertices, (B, V, 3) float32 each, for B bodies (``phenotypes`` (B, 6) in
    ``PHENOTYPES`` order) in B poses; batched, since one call of 32 costs about as much as
    three of one."""
    model = body_model()
    labels = topology().bone_labels
    batch = len(poses)
    params = torch.eye(4).repeat(batch, len(labels), 1, 1)
    for b, pose in enumerate(poses):
        for bone, matrix in pose.items():
            params[b, labels.index(bone)] = torch.from_numpy(matrix).float()
    with torch.no_grad():
        out = model(
            pose_parameters=params,
            phenotype_kwargs=torch.as_tensor(phenotypes, dtype=torch.float32).reshape(batch, len(PHENOTYPES)),
        )
    return out["rest_vertices"].expand(batch, -1, -1).numpy(), out["vertices"].numpy()


def vertex_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Area-weighted unit normals of one mesh's vertices."""
    v = torch.from_numpy(vertices)
    t = torch.from_numpy(triangles.astype(np.int64))
    face = torch.linalg.cross(v[t[:, 1]] - v[t[:, 0]], v[t[:, 2]] - v[t[:, 0]])
    normals = torch.zeros_like(v).index_add_(0, t.reshape(-1), face.repeat_interleave(3, 0))
    return torch.nn.functional.normalize(normals, dim=1).numpy()
