"""Box geometry: float32 (or float64) xyxy pixels compared with each other, for the protocols,
non-maximum suppression and tracking. Where a box meets an image (clipped, refused, cut out) is
``data/images.py``.
"""

from __future__ import annotations

import numpy as np


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
