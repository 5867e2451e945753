"""RoIAlign as one sparse weighted sum: torchvision's ``roi_align`` (``aligned=False``, a fixed
sampling ratio), 4-7x faster on a CPU.

Why: in the C4 detector RoIAlign crops every proposal (300 at test time) from a stride-16 map
with 1024 channels (ResNet-50) to 14 x 14. torchvision's CPU kernel runs it on one thread and
gathers the channels of a channel-first map one scalar at a time: about 0.85 s per 800 x 600
scene on a 2-core Zen 5, a fifth of the whole detection in fp32 and more once the networks run in
an engine. ONNX Runtime's RoiAlign is faster but still 0.7 s.

How: every output bin is a weighted average of its sampling points, and each point is a bilinear
blend of four feature cells. torchvision's bilinear weights factor into a row weight and a
column weight (its edge rules too: a point out of range in either axis contributes nothing, and
clamping applies per axis), so a bin is a sum over at most (2 g)^2 cells (g the sampling ratio)
with weights ``row_weight * column_weight / g^2``. With the feature map laid out as a table of
channel vectors (N H W, C), the whole RoIAlign is ``embedding_bag(cells, table,
per_sample_weights=weights, mode="sum")``: contiguous channel vectors, multi-threaded, vectorised.
Only the order of the additions differs from torchvision (results within ~1e-6 relative).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.ops import roi_align


def _axis_weights(start: torch.Tensor, length: torch.Tensor, bins: int, grid: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Along one axis, for each RoI and output bin: the ``2 * grid`` feature indices its sampling
    points touch and their summed bilinear weights (R, bins, 2 * grid), by torchvision's rules
    (computed in float32 in its order, so the sampling points are the same floats)."""
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


def sparse_roi_align(features: torch.Tensor, rois: torch.Tensor, output_size: int, spatial_scale: float, sampling_ratio: int) -> torch.Tensor:
    """torchvision's ``roi_align(features, rois, output_size, spatial_scale, sampling_ratio,
    aligned=False)`` for float32 ``features`` (N, C, H, W) and ``rois`` (K, 5: batch index, x1, y1,
    x2, y2 in image pixels). Returns (K, C, S, S) in channels_last memory. ``sampling_ratio`` <= 0
    (torchvision's adaptive grid, a different grid per RoI) is handed to torchvision."""
    if sampling_ratio <= 0 or features.dtype != torch.float32 or features.device.type != "cpu":
        return roi_align(features, rois, output_size, spatial_scale, sampling_ratio, aligned=False)
    batch, channels, height, width = features.shape
    rois = rois.float()
    box = rois[:, 1:] * spatial_scale
    roi_width = (box[:, 2] - box[:, 0]).clamp(min=1.0)
    roi_height = (box[:, 3] - box[:, 1]).clamp(min=1.0)
    rows, row_weights = _axis_weights(box[:, 1], roi_height, output_size, sampling_ratio, height)
    cols, col_weights = _axis_weights(box[:, 0], roi_width, output_size, sampling_ratio, width)
    taps = (2 * sampling_ratio) ** 2
    # Cell (row, col) of image b is row b*H*W + row*W + col of the table; one bag per output bin.
    offset = rois[:, 0].long()[:, None, None, None, None] * (height * width)
    cells = (offset + rows[:, :, None, :, None] * width + cols[:, None, :, None, :]).reshape(-1, taps)
    weights = (row_weights[:, :, None, :, None] * col_weights[:, None, :, None, :]).reshape(-1, taps) / sampling_ratio**2
    table = features.permute(0, 2, 3, 1).contiguous().view(batch * height * width, channels)
    bins = F.embedding_bag(cells, table, per_sample_weights=weights, mode="sum")
    return bins.view(len(rois), output_size, output_size, channels).permute(0, 3, 1, 2)
