"""The engines' box logic must be torchvision's: the input transform (bit-identical when no resize
is needed, within float rounding otherwise), the cached anchors (identical), and a whole detector
with all three stand-ins gives the boxes of torchvision's code."""

from __future__ import annotations

import copy

import pytest
import torch
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.transform import GeneralizedRCNNTransform

from personsearch.models.box_logic import CachedAnchors, InferenceTransform, SparseRoIPool, use_fast_box_logic
from personsearch.models.detector import DetectorConfig, build_detector


def _transform() -> GeneralizedRCNNTransform:
    return GeneralizedRCNNTransform(600, 1000, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]).eval()


def _image(height: int, width: int, seed: int) -> torch.Tensor:
    return (
        torch.randint(0, 256, (3, height, width), generator=torch.Generator().manual_seed(seed))
        .float()
        .div(255)
    )


def test_transform_is_torchvisions_bit_for_bit_when_no_resize_is_needed() -> None:
    reference, fast = _transform(), InferenceTransform(_transform()).eval()
    image = _image(600, 800, 0)  # shorter side already 600: scale 1, padded to 608 x 800
    expected, _ = reference([image])
    got, _ = fast([image])
    assert got.image_sizes == expected.image_sizes == [(600, 800)]
    assert got.tensors.shape == expected.tensors.shape == (1, 3, 608, 800)
    assert torch.equal(got.tensors, expected.tensors)


@pytest.mark.parametrize(("sizes"), [[(1080, 1920)], [(300, 500)], [(480, 640), (720, 1280)]])
def test_transform_resizes_first_with_torchvisions_sizes_and_values(sizes: list[tuple[int, int]]) -> None:
    """Camera frames (downscaled), small images (upscaled), a batch of two sizes (padded with 0)."""
    reference, fast = _transform(), InferenceTransform(_transform()).eval()
    images = [_image(h, w, seed) for seed, (h, w) in enumerate(sizes)]
    expected, _ = reference(images)
    got, _ = fast(images)
    assert got.image_sizes == expected.image_sizes
    assert got.tensors.shape == expected.tensors.shape
    torch.testing.assert_close(got.tensors, expected.tensors, atol=1e-5, rtol=0)


def test_transform_rejects_what_torchvisions_rejects_and_hands_training_to_it() -> None:
    fast = InferenceTransform(_transform()).eval()
    with pytest.raises(TypeError, match="floating type"):
        fast([torch.zeros(3, 20, 20, dtype=torch.uint8)])
    with pytest.raises(ValueError, match="3d tensors"):
        fast([torch.zeros(20, 20)])
    target = {"boxes": torch.tensor([[10.0, 20.0, 100.0, 200.0]])}
    _, targets = fast.train()([_image(300, 400, 1)], [target])
    assert targets is not None
    torch.testing.assert_close(targets[0]["boxes"], target["boxes"] * 2)  # 300 -> 600: boxes follow


def test_cached_anchors_are_torchvisions_and_computed_once_per_size() -> None:
    generator = AnchorGenerator(sizes=((16, 32, 64),), aspect_ratios=((1.0, 2.0),))
    cached = CachedAnchors(copy.deepcopy(generator), max_sizes=2)
    calls = []
    cached.generator.register_forward_hook(lambda *_: calls.append(1))
    for height, width, images in ((608, 800, 1), (608, 800, 2), (576, 1024, 1), (608, 800, 1)):
        batch = ImageList(torch.zeros(images, 3, height, width), [(height, width)] * images)
        features = [torch.zeros(images, 8, height // 16, width // 16)]
        expected = generator(batch, features)
        got = cached(batch, features)
        assert len(got) == images
        for e, g in zip(expected, got, strict=True):
            assert torch.equal(e, g)
    assert len(calls) == 2  # 608 x 800 once for both batch sizes, 576 x 1024 once
    assert cached.num_anchors_per_location() == generator.num_anchors_per_location()
    for size in (32, 48, 64):  # bounded: a stream of new sizes does not grow the cache
        cached(
            ImageList(torch.zeros(1, 3, size, size), [(size, size)]),
            [torch.zeros(1, 8, size // 16, size // 16)],
        )
    assert len(cached._anchors) <= 2


def test_detector_with_fast_box_logic_gives_torchvisions_detections() -> None:
    torch.manual_seed(0)
    config = DetectorConfig(
        backbone="mobilenet_v2_tiny",
        pretrained=False,
        min_size=160,
        max_size=224,
        score_thresh=0.0,
        detections_per_img=50,
    )
    model = build_detector(config).eval()
    fast = use_fast_box_logic(copy.deepcopy(model))
    assert isinstance(fast.transform, InferenceTransform) and isinstance(
        fast.roi_heads.box_roi_pool, SparseRoIPool
    )
    # idempotent
    assert use_fast_box_logic(fast) is fast and isinstance(
        fast.rpn.anchor_generator.generator, AnchorGenerator
    )
    images = [_image(120, 160, 5), _image(300, 200, 6)]  # one upscaled (scale 4/3), one downscaled
    with torch.no_grad():
        expected, got = model(images), fast(images)
    for e, g in zip(expected, got, strict=True):
        assert len(e["boxes"]) > 0
        torch.testing.assert_close(g["boxes"], e["boxes"], atol=1e-3, rtol=1e-4)
        torch.testing.assert_close(g["scores"], e["scores"], atol=1e-4, rtol=1e-4)
