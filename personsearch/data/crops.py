"""Person crops: the crops the re-id network sees, for search, evaluation and training.

Crops are cut with RoIAlign straight to the re-id input size, so training,
evaluation and the search index share one resampling rule. torchvision's bilinear weights factor
into a row weight and a column weight (its edge rules too: a sampling point out of range in either
axis contributes nothing, and clamping applies per axis), so resampling a box is two one-axis
weighted sums (``axis_taps``); the detector's RoIAlign on its feature map (``models.roi_align``)
uses the same.

Training keeps every labelled crop in memory as uint8 (a scene is decoded once per run, not once
per epoch), which is what makes CPU training fast.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from personsearch.data.images import clip_or_refuse, read_image
from personsearch.data.records import UNLABELED, Scene

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SAMPLING = 2
"""Bilinear samples per output pixel and axis (torchvision ``roi_align``'s ``sampling_ratio``)."""


def axis_taps(
    start: torch.Tensor, length: torch.Tensor, bins: int, grid: int, size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Along one axis of ``size`` cells (feature cells or pixels), for each of R boxes starting at
    ``start`` (in cells; torchvision's ``aligned=True`` subtracts half a cell) and ``length`` long,
    split into ``bins`` output bins of ``grid`` sampling points each: the ``2 * grid`` cell
    indices a bin's points touch and their bilinear weights, both (R, bins, 2 * grid). The weights
    are not divided by ``grid``. By torchvision's rules, computed in float32 in its order, so the
    sampling points are the same floats."""
    rois = start.shape[0]
    bin_size = (length / bins)[:, None, None]
    index = torch.arange(bins, dtype=start.dtype)[None, :, None]
    sample = torch.arange(grid, dtype=start.dtype)[None, None, :]
    pos = start[:, None, None] + index * bin_size + (sample + 0.5) * bin_size / grid  # (R, bins, grid)
    valid = ((pos >= -1.0) & (pos <= size)).to(start.dtype)
    pos = pos.clamp(min=0)
    low = pos.long()
    top = low >= size - 1
    low = torch.where(top, torch.full_like(low, size - 1), low)
    high = torch.where(top, low, low + 1)
    pos = torch.where(top, low.to(pos.dtype), pos)
    frac = pos - low.to(pos.dtype)
    cells = torch.cat([low, high], dim=2).reshape(rois, bins, 2 * grid)
    weights = torch.cat([(1 - frac) * valid, frac * valid], dim=2).reshape(rois, bins, 2 * grid)
    return cells, weights


def crop_boxes(image: np.ndarray | torch.Tensor, boxes: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """Crop and resize every xyxy box of an HxWx3 uint8 image to ``size`` (H, W).

    Returns a uint8 tensor (n, 3, H, W). Boxes are clipped to the image; a box that lies
    wholly outside it raises, naming the box, since it can only come from a bug or bad input.

    The resampling is torchvision's ``roi_align(aligned=True, sampling_ratio=2)`` on the image
    (each output pixel the mean of 2 x 2 bilinear samples: a light anti-aliasing for boxes larger
    than the crop), computed one axis at a time (``sampling.axis_taps``) as two weighted sums
    over rows, then columns, of the box's own pixels: 5-6x faster than torchvision's
    single-threaded kernel (0.3-0.8 ms a crop instead of 2-3 ms), which had made cutting the
    crops cost as much as embedding them. Only the order of additions differs, so a value
    rounds to the other neighbouring integer about once in 10^5.
    """
    if isinstance(image, np.ndarray):
        image = torch.from_numpy(np.ascontiguousarray(image))
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    if image.ndim != 3:
        raise ValueError(f"crop_boxes: expected an HxWxC image, got shape {tuple(image.shape)}")
    out_h, out_w = size
    height, width, channels = image.shape
    crops = torch.empty((len(boxes), channels, out_h, out_w), dtype=torch.uint8)
    if len(boxes) == 0:
        return crops
    clipped = torch.from_numpy(clip_or_refuse(boxes, width, height))
    rows, row_weights = axis_taps(clipped[:, 1] - 0.5, clipped[:, 3] - clipped[:, 1], out_h, SAMPLING, height)
    cols, col_weights = axis_taps(clipped[:, 0] - 0.5, clipped[:, 2] - clipped[:, 0], out_w, SAMPLING, width)
    row_weights = row_weights / SAMPLING**2  # the mean of the grid's samples
    for k in range(len(clipped)):
        top, left = int(rows[k].min()), int(cols[k].min())
        bottom, right = int(rows[k].max()) + 1, int(cols[k].max()) + 1
        window = image[top:bottom, left:right].float().reshape(bottom - top, -1)  # rows of (x, channel)
        # (out_h, w * c)
        across = F.embedding_bag(rows[k] - top, window, per_sample_weights=row_weights[k], mode="sum")
        across = (
            across.view(out_h, right - left, channels).transpose(0, 1).reshape(right - left, out_h * channels)
        )
        # (out_w, out_h * c)
        resampled = F.embedding_bag(cols[k] - left, across, per_sample_weights=col_weights[k], mode="sum")
        crops[k] = resampled.view(out_w, out_h, channels).permute(2, 1, 0).round().clamp(0, 255)
    return crops


def normalize_crops(crops: torch.Tensor) -> torch.Tensor:
    """uint8 (n, 3, H, W) -> float ImageNet-normalised, the re-id network's input."""
    mean = torch.tensor(IMAGENET_MEAN, device=crops.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=crops.device).view(1, 3, 1, 1)
    return (crops.float() / 255.0 - mean) / std


@dataclass
class CropSet:
    """Every labelled person of a training split, cropped once, with contiguous class labels."""

    crops: torch.Tensor
    """(n, 3, H, W) uint8."""
    labels: torch.Tensor
    """(n,) int64 class index in [0, num_classes)."""
    pids: np.ndarray
    """(num_classes,) the dataset pid of each class."""
    heights: np.ndarray
    """(n,) original box height in pixels (for scale-aware analysis)."""

    @property
    def num_classes(self) -> int:
        return len(self.pids)


def build_crop_set(scenes: list[Scene], size: tuple[int, int]) -> CropSet:
    """Crop every labelled box of ``scenes``; unlabelled people are not identities."""
    crops, pids, heights = [], [], []
    for scene in scenes:
        keep = scene.pids != UNLABELED
        if not keep.any():
            continue
        boxes = scene.boxes[keep]
        crops.append(crop_boxes(read_image(scene.path), boxes, size))
        pids.append(scene.pids[keep])
        heights.append(boxes[:, 3] - boxes[:, 1])
    if not crops:
        raise ValueError("the training split has no labelled person: nothing to train the re-id network on")
    all_pids = np.concatenate(pids)
    classes, labels = np.unique(all_pids, return_inverse=True)
    return CropSet(
        torch.cat(crops), torch.from_numpy(labels.astype(np.int64)), classes, np.concatenate(heights)
    )


@dataclass
class CropAugment:
    """Training augmentation of docs/specs/clsa.md section 2: flip, pad-and-random-crop, and a random
    down-scale then up-scale that simulates low-resolution people at a fixed input size."""

    flip: bool = True
    pad: int = 10
    downscale_prob: float = 0.5
    min_scale: float = 0.125
    """Smallest down-scaling factor of the crop height (0.125 turns a 256-px crop into 32 px)."""
    colour_jitter: float = 0.0
    """Style randomisation for networks trained on made-up people: each crop's brightness,
    contrast and saturation scale by up to 1 +- this, and its hue turns by up to half of it
    (0 = off, the CLSA recipe)."""
    grayscale_prob: float = 0.0
    """Probability that a crop loses its colour, so that shape and texture must carry it."""
    erase_prob: float = 0.0
    """Probability of random erasing (Zhong et al. 2020): a rectangle of 2-40 % of the crop is
    filled with noise, as an occluder would hide it."""

    def __call__(self, crops: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n, _, height, width = crops.shape
        out = crops.float()
        if self.flip:
            flip = torch.rand(n, generator=generator) < 0.5
            out[flip] = out[flip].flip(-1)
        if self.pad > 0:
            padded = torch.nn.functional.pad(out, (self.pad,) * 4, mode="replicate")
            dy = torch.randint(0, 2 * self.pad + 1, (n,), generator=generator)
            dx = torch.randint(0, 2 * self.pad + 1, (n,), generator=generator)
            out = torch.stack([padded[i, :, dy[i] : dy[i] + height, dx[i] : dx[i] + width] for i in range(n)])
        if self.downscale_prob > 0:
            chosen = torch.nonzero(torch.rand(n, generator=generator) < self.downscale_prob).flatten()
            scales = self.min_scale + (1 - self.min_scale) * torch.rand(len(chosen), generator=generator)
            for i, scale in zip(chosen.tolist(), scales.tolist()):
                small = (max(2, round(height * scale)), max(1, round(width * scale)))
                low = torch.nn.functional.interpolate(
                    out[i : i + 1], size=small, mode="bilinear", antialias=True
                )
                out[i] = torch.nn.functional.interpolate(low, size=(height, width), mode="bilinear")[0]
        out = out.clamp(0, 255)
        if self.colour_jitter > 0 or self.grayscale_prob > 0:
            out = self._restyle(out, generator)
        if self.erase_prob > 0:
            self._erase(out, generator)
        return out

    def _restyle(self, crops: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Brightness, contrast, saturation and hue per crop, batched; the hue turns in YIQ
        space (a rotation of the chroma plane), which is linear and needs no HSV round trip."""
        n = len(crops)
        spread = self.colour_jitter
        factors = (1 + spread * (2 * torch.rand(n, 3, generator=generator) - 1)).view(n, 3, 1, 1, 1)
        angles = math.pi * spread * (2 * torch.rand(n, generator=generator) - 1)  # up to +-spread/2 of a turn
        grey_out = (torch.rand(n, generator=generator) < self.grayscale_prob).view(n, 1, 1, 1)
        luma = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        out = crops * factors[:, 0]
        grey = (out * luma).sum(1, keepdim=True)
        out = grey.mean((2, 3), keepdim=True) + factors[:, 1] * (out - grey.mean((2, 3), keepdim=True))
        grey = (out * luma).sum(1, keepdim=True)
        out = grey + factors[:, 2] * (out - grey)
        to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
        cos, sin = torch.cos(angles), torch.sin(angles)
        turn = torch.zeros(n, 3, 3)
        turn[:, 0, 0] = 1
        turn[:, 1, 1], turn[:, 1, 2], turn[:, 2, 1], turn[:, 2, 2] = cos, -sin, sin, cos
        mix = torch.linalg.inv(to_yiq) @ turn @ to_yiq  # (n, 3, 3)
        out = torch.einsum("nij,njhw->nihw", mix, out)
        out = torch.where(grey_out, (out * luma).sum(1, keepdim=True).expand_as(out), out)
        return out.clamp(0, 255)

    def _erase(self, crops: torch.Tensor, generator: torch.Generator) -> None:
        n, _, height, width = crops.shape
        for i in torch.nonzero(torch.rand(n, generator=generator) < self.erase_prob).flatten().tolist():
            area = height * width * (0.02 + 0.38 * float(torch.rand(1, generator=generator)))
            aspect = math.exp(
                math.log(0.3) + (math.log(3.3) - math.log(0.3)) * float(torch.rand(1, generator=generator))
            )
            h = min(height, max(1, round(math.sqrt(area * aspect))))
            w = min(width, max(1, round(math.sqrt(area / aspect))))
            y = int(torch.randint(0, height - h + 1, (1,), generator=generator))
            x = int(torch.randint(0, width - w + 1, (1,), generator=generator))
            crops[i, :, y : y + h, x : x + w] = 255.0 * torch.rand(3, h, w, generator=generator)
