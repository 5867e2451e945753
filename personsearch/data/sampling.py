"""RoIAlign's sampling, one axis at a time: where torchvision's ``roi_align`` samples a box and
with which bilinear weights.

torchvision's bilinear weights factor into a row weight and a column weight (its edge rules too:
a sampling point out of range in either axis contributes nothing, and clamping applies per axis),
so resampling a box is two one-axis weighted sums. Two users: the re-id crops
(``crops.crop_boxes``, on the image) and the detector's RoIAlign on its feature map
(``models.roi_align.sparse_roi_align``).
"""

from __future__ import annotations

import torch


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
