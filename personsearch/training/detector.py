"""Fine-tune the person detector (Faster R-CNN C4 with the paper's changes) on any loader dataset.

Every annotated person is a detection target, labelled or not: the detector must find people
the re-id network has never seen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from personsearch.data import load_dataset
from personsearch.data.images import read_image
from personsearch.data.records import Scene
from personsearch.models.machine import native_bf16
from personsearch.models.registry import registered_network
from personsearch.training.config import DetectorTrainConfig
from personsearch.training.runner import resolve_device, train_component


def scene_target(scene: Scene, flip: bool, width: int) -> dict[str, torch.Tensor]:
    """Detection target of one scene: every person box, class 1 (person)."""
    boxes = scene.boxes.copy()
    if flip:
        boxes[:, [0, 2]] = width - boxes[:, [2, 0]]
    return {"boxes": torch.from_numpy(boxes), "labels": torch.ones(len(boxes), dtype=torch.int64)}


def channels_last_pays(device: torch.device) -> bool:
    """Whether the detector trains in channels_last: on CPUs where bf16 autocast runs (native
    bf16). Per training step (``benchmarks/speed.py --only train``) bf16 in contiguous tensors
    gained nothing over fp32 on an Intel Xeon with AMX, while in channels_last it ran 1.22x the
    contiguous bf16 step for the MobileNetV2 C4 detector and 2.3x for ResNet-50 (1.09x and 1.05x
    on a Zen 5). In fp32 the gain was mixed (1.11x / 1.13x on that Xeon; 1.13x / 0.93x with
    PyTorch's AVX2 kernels, emulated there), so fp32 training keeps contiguous tensors; GPUs are
    unmeasured and keep them too."""
    return device.type == "cpu" and native_bf16(device)


def train_detector(
    config: DetectorTrainConfig,
    out_dir: str | Path,
    *,
    progress: bool = True,
    scenes: list[Scene] | None = None,
    init: dict[str, torch.Tensor] | None = None,
) -> dict[str, Any]:
    """Train per ``config``; checkpoints and metrics go to ``out_dir/train-detector`` and the
    final network to ``out_dir/detector.*`` (a model-bundle component). Returns a summary.
    ``scenes``: train on these instead of the config's dataset; ``init``: start from these
    weights (fine-tuning) instead of the backbone's ImageNet weights."""
    out_dir = Path(out_dir)
    torch.manual_seed(config.seed)
    device = resolve_device(config.device)
    if scenes is None:
        scenes = load_dataset(config.data.dataset).train
    scenes = [s for s in scenes if len(s.boxes)]
    if not scenes:
        raise ValueError("the training split has no annotated person: nothing to train the detector on")
    # None: weights follow
    model = registered_network(config.model if init is None else replace(config.model, pretrained=None))
    if init is not None:
        model.load_state_dict(init)
    if config.fast and channels_last_pays(device):
        model = model.to(memory_format=torch.channels_last)  # images follow the first convolution's layout

    def plan(epoch: int) -> list[list[tuple[int, bool]]]:
        """Batches of (scene index, horizontal flip), a pure function of (seed, epoch)."""
        rng = np.random.default_rng([config.seed, epoch])
        order = rng.permutation(len(scenes)).tolist()
        flips = (rng.random(len(scenes)) < 0.5) & config.data.flip
        items = list(zip(order, flips.tolist()))
        return [items[i : i + config.batch_size] for i in range(0, len(items), config.batch_size)]

    def load_batch(
        items: Sequence[tuple[int, bool]],
    ) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
        images, targets = [], []
        for i, flip in items:
            image = read_image(scenes[i].path)
            if flip:
                image = np.ascontiguousarray(image[:, ::-1])
            images.append(torch.from_numpy(image).permute(2, 0, 1).float().div(255).to(device))
            targets.append(
                {k: v.to(device) for k, v in scene_target(scenes[i], flip, image.shape[1]).items()}
            )
        return images, targets

    def step(net: torch.nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, float], int]:
        images, targets = batch
        losses = net(images, targets)
        return sum(losses.values()), {k: v.item() for k, v in losses.items()}, len(images)

    return train_component(
        "detector",
        model,
        config.model,
        config,
        out_dir,
        epoch_batches=plan,
        load_batch=load_batch,
        step_fn=step,
        progress=progress,
        description="detector",
    )
