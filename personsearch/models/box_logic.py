"""The detector's PyTorch box logic, faster on a CPU, with torchvision's results.

Why: once an engine runs the detector's networks (``engines.py``), what stays in PyTorch is a
quarter of a detection on a fast CPU: the input transform, the anchors, RoIAlign and its max-pool,
proposal selection, NMS and box decoding (18-20 ms of 76 ms per 800 x 600 scene on a 2-core Intel
Xeon, and 33 of 117 ms for a 1920 x 1080 camera frame, whose transform alone took 14 ms). Three of
them are replaced here by stand-ins that compute what torchvision's modules compute:

- ``InferenceTransform`` resizes before it normalises, so the normalisation runs on the
  detector's input size instead of the camera's (a 1080p frame has 3.7x more pixels), skips the
  resize when the scale is 1, and writes into the padded batch directly. Bilinear interpolation
  is affine-equivariant (its weights sum to 1), so the order changes nothing but float rounding
  (at most ~1e-6 of a normalised pixel); with no resize the output is bit-identical.
- ``CachedAnchors`` computes the anchors of a feature-map size once (every frame of a camera has
  the same size).
- ``SparseRoIPool`` computes RoIAlign as ``roi_align.sparse_roi_align`` (4-9x faster than
  torchvision's kernel, equal to it up to the order of additions).

``use_fast_box_logic`` puts them into a detector; every engine but the reference (``torch-fp32``,
torchvision's own code) and ``torch-compile`` runs with them, and the engine chooser checks each
engine's detections against the reference's as before.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import nn
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops._utils import convert_boxes_to_roi_format
from torchvision.ops.poolers import _setup_scales

from personsearch.models.roi_align import sparse_roi_align

if TYPE_CHECKING:
    from personsearch.models.detector import PersonDetector


class InferenceTransform(GeneralizedRCNNTransform):  # type: ignore[misc]  # torchvision ships no type information: its classes are Any to mypy
    """torchvision's detection input transform (normalise, resize the shorter side to
    ``min_size`` within ``max_size``, pad to a multiple of ``size_divisible``) for inference, with
    the resize first: see the module docstring. Training, targets and ``fixed_size`` go to
    torchvision's own code."""

    def __init__(self, transform: GeneralizedRCNNTransform) -> None:
        super().__init__(
            transform.min_size,
            transform.max_size,
            transform.image_mean,
            transform.image_std,
            transform.size_divisible,
            transform.fixed_size,
        )
        # in training mode torchvision's postprocess keeps boxes at the input size
        self.train(transform.training)

    def forward(
        self, images: list[torch.Tensor], targets: list[dict[str, torch.Tensor]] | None = None
    ) -> tuple[ImageList, Any]:
        if self.training or targets is not None or self.fixed_size is not None:
            return cast("tuple[ImageList, Any]", super().forward(images, targets))
        resized = []
        for image in images:
            if image.dim() != 3:
                raise ValueError(
                    f"images is expected to be a list of 3d tensors of shape [C, H, W], got {image.shape}"
                )
            if not image.is_floating_point():
                raise TypeError(
                    "Expected input images to be of floating type (in range [0, 1]), "
                    f"but found type {image.dtype} instead"
                )
            resized.append(self._resized(image))
        sizes = [(int(image.shape[-2]), int(image.shape[-1])) for image in resized]
        stride = self.size_divisible
        shape = (
            len(resized),
            max(int(image.shape[0]) for image in resized),
            math.ceil(max(h for h, _ in sizes) / stride) * stride,
            math.ceil(max(w for _, w in sizes) / stride) * stride,
        )
        batch = resized[0].new_zeros(shape)
        for out, image in zip(batch, resized, strict=True):
            mean = torch.as_tensor(self.image_mean, dtype=image.dtype, device=image.device)[:, None, None]
            std = torch.as_tensor(self.image_std, dtype=image.dtype, device=image.device)[:, None, None]
            region = out[: image.shape[0], : image.shape[1], : image.shape[2]]
            torch.sub(image, mean, out=region)  # torchvision's (image - mean) / std, in the padded batch
            region.div_(std)
        return ImageList(batch, sizes), None

    def _resized(self, image: torch.Tensor) -> torch.Tensor:
        """``image`` at the detector's input size, by torchvision's rule (its scale factor, its
        bilinear interpolation), or ``image`` itself when that scale is 1 (an exact copy)."""
        height, width = image.shape[-2:]
        scale = min(self.min_size[-1] / min(height, width), self.max_size / max(height, width))
        if scale == 1.0:
            return image
        return nn.functional.interpolate(
            image[None], scale_factor=scale, mode="bilinear", recompute_scale_factor=True, align_corners=False
        )[0]


class CachedAnchors(nn.Module):
    """An ``AnchorGenerator`` whose anchors are computed once per (image size, feature-map sizes);
    at most ``max_sizes`` sizes are kept."""

    def __init__(self, generator: AnchorGenerator, max_sizes: int = 8) -> None:
        super().__init__()
        self.generator = generator
        self.max_sizes = max_sizes
        self._anchors: dict[tuple[Any, ...], torch.Tensor] = {}
        self.train(generator.training)

    def num_anchors_per_location(self) -> list[int]:
        return cast("list[int]", self.generator.num_anchors_per_location())

    def forward(self, image_list: ImageList, feature_maps: list[torch.Tensor]) -> list[torch.Tensor]:
        first = feature_maps[0]
        key = (
            tuple(image_list.tensors.shape[-2:]),
            tuple(tuple(f.shape[-2:]) for f in feature_maps),
            first.dtype,
            first.device,
        )
        anchors = self._anchors.get(key)
        if anchors is None:
            if len(self._anchors) >= self.max_sizes:
                self._anchors.clear()
            # The anchors depend on the sizes only, and are the same for every image of a batch.
            anchors = self.generator(
                ImageList(image_list.tensors[:1], image_list.image_sizes[:1]), feature_maps
            )[0]
            self._anchors[key] = anchors
        return [anchors] * len(image_list.image_sizes)


class SparseRoIPool(nn.Module):
    """Stands in for the detector's RoI pool (``detector.RoICropPool``: RoIAlign to the crop size,
    then its optional 2 x 2 max-pool): the same crops, RoIAlign computed by ``sparse_roi_align``
    (4-9x faster than torchvision's kernel, equal up to the order of additions)."""

    def __init__(self, pool: nn.Module) -> None:
        super().__init__()
        self.roi_pool = pool
        self.train(pool.training)

    def forward(
        self, x: dict[str, torch.Tensor], boxes: list[torch.Tensor], image_shapes: list[tuple[int, int]]
    ) -> torch.Tensor:
        pool = self.roi_pool
        (name,) = cast("list[str]", pool.featmap_names)
        features = x[name]
        if pool.scales is None or pool.map_levels is None:  # inferred once and kept, as torchvision does
            pool.scales, pool.map_levels = _setup_scales(
                [features], image_shapes, pool.canonical_scale, pool.canonical_level
            )
        scales = cast("list[float]", pool.scales)
        size = cast("tuple[int, int]", pool.output_size)
        if size[0] != size[1]:
            return cast(torch.Tensor, pool(x, boxes, image_shapes))
        crops = sparse_roi_align(
            features.float(),
            convert_boxes_to_roi_format(boxes),
            size[0],
            scales[0],
            int(cast(int, pool.sampling_ratio)),
        )
        return cast(torch.Tensor, getattr(pool, "pool", nn.Identity())(crops))


def use_fast_box_logic(detector: PersonDetector) -> PersonDetector:
    """``detector`` (in place) with the stand-ins of this module for its transform, anchors and
    RoI pool; meant for inference on a CPU."""
    detector.transform = InferenceTransform(detector.transform)
    if not isinstance(detector.rpn.anchor_generator, CachedAnchors):
        detector.rpn.anchor_generator = cast(AnchorGenerator, CachedAnchors(detector.rpn.anchor_generator))
    heads = detector.roi_heads
    if not isinstance(heads.box_roi_pool, SparseRoIPool):
        heads.box_roi_pool = cast(MultiScaleRoIAlign, SparseRoIPool(heads.box_roi_pool))
    return detector
