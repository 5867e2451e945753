"""Re-id crop folders in the Market-1501 layout: what rendered people are written as, and what
re-id researchers keep their data in (Market-1501, DukeMTMC-reID, MSMT17 converted, ...).

A file ``0001_c3s1_000004_00.jpg`` is person 1 seen by camera 3. Market-1501's readme: person id
``0000`` marks a distractor (a box of no one to find: a wrong detection or a part of a body) and
``-1`` junk (ignored by the protocol); neither is an identity to train on. Training reads
``bounding_box_train``; evaluation reads ``query`` and ``bounding_box_test``, whose distractors
stay in the gallery as wrong answers (``read_split(..., distractors=True)``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from personsearch.data.crops import CropSet
from personsearch.data.images import read_image

TRAIN, QUERY, GALLERY = "bounding_box_train", "query", "bounding_box_test"
NAME = re.compile(r"^(-?\d+)_c(\d+)")


def is_crop_folder(root: str | Path) -> bool:
    """Whether ``root`` holds a Market-1501-layout training folder."""
    return (Path(root).expanduser() / TRAIN).is_dir()


@dataclass
class CropFolder:
    """Every crop of one split: images at the network's input size, person and camera ids."""

    crops: torch.Tensor
    """(n, 3, H, W) uint8."""
    pids: np.ndarray
    cams: np.ndarray
    paths: list[Path]


def read_split(root: str | Path, split: str, size: tuple[int, int], distractors: bool = False) -> CropFolder:
    """The crops of ``root/split`` resized to ``size`` (H, W), junk (id -1) left out, and the
    distractors (id 0) too unless ``distractors`` (a gallery: they are wrong answers to rank)."""
    folder = Path(root).expanduser() / split
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{folder}: no such folder; a Market-1501-layout root holds {TRAIN}/, {QUERY}/ and {GALLERY}/"
        )
    paths, pids, cams = [], [], []
    for path in sorted(folder.iterdir()):
        match = NAME.match(path.name)
        if path.suffix.lower() not in (".jpg", ".jpeg", ".png") or not match:
            continue
        pid = int(match.group(1))
        if pid < 0 or (pid == 0 and not distractors):
            continue
        paths.append(path)
        pids.append(pid)
        cams.append(int(match.group(2)))
    if not paths:
        raise ValueError(f"{folder}: no crop named like 0001_c1s1_000001_00.jpg (person id, camera)")
    height, width = size
    crops = torch.empty((len(paths), 3, height, width), dtype=torch.uint8)
    for k, path in enumerate(paths):
        image = read_image(path)
        crops[k] = torch.from_numpy(resize_crop(image, size)).permute(2, 0, 1)
    return CropFolder(crops, np.asarray(pids), np.asarray(cams), paths)


def resize_crop(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """An HWC crop at ``size`` (H, W): area-averaged when it shrinks, bilinear when it grows."""
    height, width = size
    shrink = image.shape[0] > height
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def train_crop_set(root: str | Path, size: tuple[int, int]) -> CropSet:
    """The training split as a ``CropSet`` (contiguous class labels)."""
    split = read_split(root, TRAIN, size)
    classes, labels = np.unique(split.pids, return_inverse=True)
    return CropSet(
        split.crops, torch.from_numpy(labels.astype(np.int64)), classes, np.full(len(labels), float(size[0]))
    )
