"""RoIAlign computed one axis at a time must be torchvision's, boxes at and past every edge
included: the engines' ``sparse_roi_align`` on the detector's feature map (a shifted sample would
move every detection of a graph engine) and ``crop_boxes`` on the image (a shifted crop would
move every re-id feature)."""

from __future__ import annotations

import pytest
import torch
from torchvision.ops import roi_align

from personsearch.data.crops import crop_boxes
from personsearch.models.roi_align import sparse_roi_align


def _rois(images: int, height: int, width: int, count: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    corner = (
        torch.rand(count, 2, generator=generator) * torch.tensor([width * 16.0, height * 16.0]) * 1.2 - 30
    )
    size = torch.rand(count, 2, generator=generator) * 300
    boxes = torch.cat([corner, corner + size], dim=1)
    edges = torch.tensor(
        [
            [-20.0, -30.0, width * 16 + 90, height * 16 + 70],  # larger than the image
            [5.0, 5.0, 6.0, 6.0],  # smaller than a feature cell: the 1-cell minimum size
            # outside, above-left, beyond the one-cell margin of the bilinear rule
            [-100.0, -100.0, -40.0, -40.0],
            # outside but within that margin: clamped onto the first row and column
            [-40.0, -40.0, -10.0, -10.0],
            # across the last row and column
            [width * 16 - 1.0, height * 16 - 1.0, width * 16 + 40, height * 16 + 40],
            [0.0, 0.0, width * 16.0, height * 16.0],
        ]
    )
    boxes = torch.cat([edges, boxes])
    index = torch.randint(0, images, (len(boxes), 1), generator=generator).float()
    return torch.cat([index, boxes], dim=1)


@pytest.mark.parametrize(
    ("images", "channels", "height", "width", "size", "sampling", "scale"),
    [
        (1, 64, 38, 50, 14, 2, 1 / 16),
        (2, 16, 20, 30, 14, 2, 1 / 16),
        (3, 8, 5, 7, 7, 3, 1 / 8),
        (1, 4, 1, 1, 2, 1, 1 / 16),
    ],
)
def test_sparse_roi_align_equals_torchvision(
    images: int, channels: int, height: int, width: int, size: int, sampling: int, scale: float
) -> None:
    features = torch.randn(images, channels, height, width, generator=torch.Generator().manual_seed(0))
    rois = _rois(images, height, width, 60, seed=height)
    expected = roi_align(features, rois, (size, size), scale, sampling, aligned=False)
    got = sparse_roi_align(features, rois, size, scale, sampling)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert got[2].abs().max() == 0  # a box wholly outside the map crops nothing


def test_sparse_roi_align_hands_adaptive_sampling_to_torchvision() -> None:
    features = torch.randn(1, 4, 9, 9, generator=torch.Generator().manual_seed(1))
    rois = _rois(1, 9, 9, 10, seed=2)
    torch.testing.assert_close(
        sparse_roi_align(features, rois, 7, 1 / 16, 0),
        roi_align(features, rois, (7, 7), 1 / 16, 0, aligned=False),
    )


@pytest.mark.parametrize(
    ("height", "width", "size"), [(600, 800, (256, 128)), (1080, 1920, (256, 128)), (37, 23, (64, 32))]
)
def test_crop_boxes_is_torchvisions_roi_align_to_the_rounding(
    height: int, width: int, size: tuple[int, int]
) -> None:
    """Boxes larger and smaller than the crop, across each edge, the whole image, one pixel."""
    generator = torch.Generator().manual_seed(height)
    image = torch.randint(0, 256, (height, width, 3), dtype=torch.uint8, generator=generator)
    corner = (
        torch.rand(40, 2, generator=generator) * torch.tensor([width, height]) * 1.1
        - torch.tensor([width, height]) * 0.05
    )
    extent = torch.rand(40, 2, generator=generator) * torch.tensor([width, height]) * 0.6 + 0.3
    edges = torch.tensor(
        [
            [0.0, 0.0, width, height],
            [-5.0, -5.0, width + 5.0, height + 5.0],
            [1.2, 1.4, 2.2, 2.4],
            [width - 3.5, 0.0, width, height - 0.5],
        ]
    )
    boxes = torch.cat([edges, torch.cat([corner, corner + extent], dim=1)])
    clipped = boxes.clone()
    clipped[:, 0::2] = clipped[:, 0::2].clamp(0, width)
    clipped[:, 1::2] = clipped[:, 1::2].clamp(0, height)
    # what crop_boxes accepts
    inside = (clipped[:, 2] - clipped[:, 0] >= 1) & (clipped[:, 3] - clipped[:, 1] >= 1)
    boxes, clipped = boxes[inside], clipped[inside]
    got = crop_boxes(image.numpy(), boxes.numpy(), size)
    rois = torch.cat([torch.zeros(len(clipped), 1), clipped], dim=1)
    expected = (
        roi_align(image.permute(2, 0, 1)[None].float(), rois, size, 1.0, 2, aligned=True)
        .round()
        .clamp(0, 255)
        .to(torch.uint8)
    )
    assert got.shape == expected.shape and got.dtype == torch.uint8
    differ = (got.int() - expected.int()).abs()
    # equal but for a value rounding the other way, rarely
    assert differ.max() <= 1 and differ.float().mean() < 1e-4
