"""Index sources: finding image and video files under the paths a user gives, and reading frames.

A source is one file, identified by its absolute path, size and modification time (the
incremental-indexing key). Images yield one frame (``frame=None``, ``time=None``); videos yield
the sampled frames with their frame number and timestamp in seconds (``frame / fps``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from personsearch.data.images import ImageReadError, check_image_size, read_image

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".mts"}
)


@dataclass(frozen=True)
class Source:
    """One image or video file to index."""

    path: Path
    """Absolute, symlink-resolved path (the same file reached two ways is one source)."""
    kind: str
    """``"image"`` or ``"video"``."""
    size: int
    mtime_ns: int
    camera: str
    """The user's camera label, or else the name of the folder holding the file."""


@dataclass(frozen=True)
class Skipped:
    """A path that was not indexed, and why."""

    path: str
    reason: str


@dataclass(frozen=True)
class Sampling:
    """Which video frames to index: every ``stride``-th frame, or about ``fps`` frames a second."""

    stride: int = 1
    fps: float | None = None

    def __post_init__(self) -> None:
        if self.stride < 1:
            raise ValueError(f"frame stride must be >= 1, got {self.stride}")
        if self.fps is not None and not self.fps > 0:
            raise ValueError(f"target fps must be > 0, got {self.fps}")

    def step(self, video_fps: float) -> int:
        """Frame step for a video recorded at ``video_fps``."""
        if self.fps is None:
            return self.stride
        return max(1, round(video_fps / self.fps))


DEFAULT_VIDEO_FPS = 5.0
"""Frames a second that ``index`` and ``adapt`` take from a video unless told otherwise: a walking
person moves about 30 cm between two such frames, close enough for the tracker to follow and
far enough that neighbouring frames are not near-copies; every frame of 25 fps footage would cost
5x the time for little more."""


def sampling_for(stride: int | None = None, fps: float | None = None) -> Sampling:
    """The frames a user asked for: ``stride`` (every N-th frame) or ``fps``, not both; neither:
    ``DEFAULT_VIDEO_FPS``."""
    if stride is not None and fps is not None:
        raise ValueError(f"give a frame stride ({stride}) or a frame rate ({fps}), not both")
    if stride is not None:
        return Sampling(stride=stride)
    return Sampling(fps=DEFAULT_VIDEO_FPS if fps is None else fps)


@dataclass
class Frame:
    """One decoded frame of a source."""

    source: Source
    frame: int | None
    """Frame number in the video (0-based); ``None`` for an image."""
    time: float | None
    """Seconds from the start of the video; ``None`` for an image."""
    image: np.ndarray
    """HxWx3 uint8 RGB."""


def source_kind(path: Path) -> str | None:
    """``"image"``, ``"video"`` or ``None`` (not a supported file) from the file extension."""
    suffix = path.suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        return "image"
    if suffix in VIDEO_EXTENSIONS:
        return "video"
    return None


def _make_source(path: Path, kind: str, camera: str | None) -> Source:
    stat = path.stat()
    return Source(
        path=path, kind=kind, size=stat.st_size, mtime_ns=stat.st_mtime_ns, camera=camera or path.parent.name
    )


def _walk(folder: Path) -> Iterator[Path]:
    """Files under ``folder`` in a stable order (sorted names, not following directory links)."""
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            yield Path(root) / name


def is_within(path: Path, roots: Sequence[Path]) -> bool:
    """Whether the resolved ``path`` lies inside one of the resolved ``roots`` (symlinks followed
    first, so a link pointing out of a root is outside it)."""
    resolved = path.resolve()
    return any(resolved == root or resolved.is_relative_to(root) for root in (r.resolve() for r in roots))


def discover(
    paths: Iterable[str | Path], camera: str | None = None, *, within: Sequence[Path] | None = None
) -> tuple[list[Source], list[Skipped]]:
    """Expand files and folders (recursively) into image and video sources, in a stable order.

    Folders contribute only files with a known image or video extension; a file named
    explicitly with another extension, or a path that does not exist, is reported as skipped.
    With ``within`` (the folders a service may index), a file whose real path is outside them
    (a symlink pointing elsewhere) is skipped and never opened.
    """
    sources: list[Source] = []
    skipped: list[Skipped] = []
    seen: set[Path] = set()

    def add(path: Path, explicit: bool) -> None:
        resolved = path.resolve()
        if within is not None and not is_within(resolved, within):
            skipped.append(
                Skipped(str(path), "resolves outside the folders this server may index (--allow-dir)")
            )
            return
        kind = source_kind(resolved)
        if kind is None:
            if explicit:
                known = ", ".join(sorted(IMAGE_EXTENSIONS | VIDEO_EXTENSIONS))
                skipped.append(
                    Skipped(str(path), f"unsupported file extension {path.suffix!r}; expected one of {known}")
                )
            return
        if resolved in seen:
            return
        seen.add(resolved)
        try:
            sources.append(_make_source(resolved, kind, camera))
        except OSError as err:
            skipped.append(Skipped(str(path), f"cannot stat file: {err}"))

    for given in paths:
        path = Path(given).expanduser()
        if path.is_dir():
            for file in _walk(path):
                add(file, explicit=False)
        elif path.is_file():
            add(path, explicit=True)
        else:
            skipped.append(Skipped(str(path), "no such file or folder"))
    return sources, skipped


@dataclass(frozen=True)
class VideoInfo:
    fps: float
    frame_count: int
    """As the container reports it (may be approximate); used for progress estimates only."""
    width: int
    height: int


def _open_video(path: Path, max_pixels: int | None) -> tuple[cv2.VideoCapture, VideoInfo]:
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        capture.release()
        raise ImageReadError(
            f"{path}: OpenCV cannot open this video (corrupt, or a codec FFmpeg lacks); "
            "re-encode it, e.g. to H.264 .mp4"
        )
    info = VideoInfo(
        fps=float(capture.get(cv2.CAP_PROP_FPS) or 0.0),
        frame_count=max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)),
        width=int(capture.get(cv2.CAP_PROP_FRAME_WIDTH) or 0),
        height=int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0),
    )
    try:
        if not (info.fps > 0 and np.isfinite(info.fps)):
            raise ImageReadError(
                f"{path}: the video reports no frame rate ({info.fps}), so frame times are unknown; "
                "re-encode it with a fixed frame rate"
            )
        check_image_size(info.width, info.height, path, max_pixels)
    except ImageReadError:
        capture.release()
        raise
    return capture, info


def video_info(path: str | Path, *, max_pixels: int | None = None) -> VideoInfo:
    """Frame rate, frame count and size of a video (``ImageReadError`` if it cannot be opened)."""
    capture, info = _open_video(Path(path), max_pixels)
    capture.release()
    return info


def _to_rgb(bgr: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


def iter_frames(
    source: Source,
    *,
    start_frame: int = 0,
    sampling: Sampling = Sampling(),
    max_pixels: int | None = None,
    stop_frame: int | None = None,
    seek: bool = False,
) -> Iterator[Frame]:
    """Decode the source's frames to index: the image itself, or every video frame whose number
    is a multiple of the sampling step, at least ``start_frame`` (to resume a video) and below
    ``stop_frame`` (when given: one slice of a video, as distributed indexing hands out).

    ``seek``: reach ``start_frame`` with OpenCV's seek instead of reading every frame before it
    (what a worker given a late slice of a long video wants; FFmpeg seeks exactly, decoding
    from the previous key frame). Raises ``ImageReadError`` before yielding anything if the
    file cannot be read at all. A video whose data ends early (truncated file) simply ends at
    its last decodable frame.
    """
    if source.kind == "image":
        image = read_image(source.path, max_pixels=max_pixels)
        yield Frame(source, None, None, image)
        return
    capture, info = _open_video(source.path, max_pixels)
    try:
        step = sampling.step(info.fps)
        first = -(-start_frame // step) * step  # first multiple of step >= start_frame
        number = 0
        if seek and first > 0:
            capture.set(cv2.CAP_PROP_POS_FRAMES, first)
            number = first
        # Otherwise sequential grab() rather than seeking: exact frame numbers with every codec.
        while number < first and capture.grab():
            number += 1
        decoded_any = False
        while number >= first and (stop_frame is None or number < stop_frame):
            if number % step == 0:
                ok, bgr = capture.read()
                if not ok:
                    break
                decoded_any = True
                yield Frame(source, number, number / info.fps, _to_rgb(bgr))
            elif not capture.grab():
                break
            number += 1
        if not decoded_any and start_frame == 0:
            raise ImageReadError(
                f"{source.path}: the video opened but no frame could be decoded; the file is corrupt or empty"
            )
    finally:
        capture.release()


def planned_frames(
    source: Source, *, start_frame: int, sampling: Sampling, max_pixels: int | None = None
) -> int:
    """About how many frames ``iter_frames`` will yield (progress bars); 0 if unknown."""
    if source.kind == "image":
        return 1
    try:
        info = video_info(source.path, max_pixels=max_pixels)
    except ImageReadError:
        return 0
    step = sampling.step(info.fps)
    first = -(-start_frame // step) * step
    return max(0, -(-(info.frame_count - first) // step))


def read_frame(path: str | Path, frame: int | None = None, *, max_pixels: int | None = None) -> np.ndarray:
    """One frame as HxWx3 uint8 RGB: the image itself (``frame=None``) or frame ``frame`` of a video.

    Video frames are reached with OpenCV's seek, so looking up a late frame of a long video for
    a query or a report does not decode everything before it.
    """
    path = Path(path)
    if frame is None:
        if source_kind(path) == "video":
            raise ValueError(f"{path} is a video: give the frame number to read")
        return read_image(path, max_pixels=max_pixels)
    if frame < 0:
        raise ValueError(f"{path}: frame number must be >= 0, got {frame}")
    capture, info = _open_video(path, max_pixels)
    try:
        if frame > 0:
            capture.set(cv2.CAP_PROP_POS_FRAMES, frame)
        ok, bgr = capture.read()
    finally:
        capture.release()
    if not ok:
        raise ImageReadError(
            f"{path}: cannot decode frame {frame} (the video reports {info.frame_count} frames)"
        )
    return _to_rgb(bgr)
