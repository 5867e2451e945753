"""Box geometry with one clipping policy, used wherever a box meets an image.

Boxes are float32 xyxy pixels. A box is clipped to the image; one left with less than 1 pixel of
width or height inside it is not a person anyone can see, so it is dropped (detections) or
refused with an error naming it (a box a user or a dataset gave).
"""

from __future__ import annotations

import numpy as np

MIN_SIDE = 1.0
"""Smallest width and height (pixels) a box keeps inside the image."""


def clip_boxes(boxes: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Clip xyxy boxes to a ``width`` x ``height`` image; returns the clipped (n, 4) boxes and
    which ones keep at least ``MIN_SIDE`` pixels each way."""
    clipped = np.asarray(boxes, dtype=np.float32).reshape(-1, 4).copy()
    clipped[:, [0, 2]] = clipped[:, [0, 2]].clip(0, width)
    clipped[:, [1, 3]] = clipped[:, [1, 3]].clip(0, height)
    keep = (clipped[:, 2] - clipped[:, 0] >= MIN_SIDE) & (clipped[:, 3] - clipped[:, 1] >= MIN_SIDE)
    return clipped, keep


def clip_or_refuse(boxes: np.ndarray, width: int, height: int, what: str = "box") -> np.ndarray:
    """Clipped boxes; a box with no area inside the image raises, naming it."""
    clipped, keep = clip_boxes(boxes, width, height)
    if not keep.all():
        bad = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)[np.flatnonzero(~keep)[0]].tolist()
        raise ValueError(
            f"{what} {bad} has no area inside the {width}x{height} image; boxes are [x1, y1, x2, y2] pixels"
        )
    return clipped


def crop_box(image: np.ndarray, box: np.ndarray | tuple[float, ...]) -> np.ndarray:
    """The pixels of an xyxy box (clipped to the image; at least 1 x 1), e.g. for a thumbnail."""
    height, width = image.shape[:2]
    x1, y1 = int(np.floor(max(0.0, float(box[0])))), int(np.floor(max(0.0, float(box[1]))))
    x2, y2 = int(np.ceil(min(float(width), float(box[2])))), int(np.ceil(min(float(height), float(box[3]))))
    x1, y1 = min(x1, width - 1), min(y1, height - 1)
    return np.ascontiguousarray(image[y1 : max(y2, y1 + 1), x1 : max(x2, x1 + 1)])


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of xyxy boxes ``a`` (n, 4) and ``b`` (m, 4) -> (n, m), in float64.

    Continuous coordinates without the +1 of VOC-era code, as the Python protocols compute it.
    Done in numpy float64 (not torchvision's float32 ``box_iou``) so a pair sitting exactly on
    an IoU threshold compares the same way every time.
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / union, 0.0)
    return iou
