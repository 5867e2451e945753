"""Train the feature-pyramid re-id network on ground-truth person crops of any loader dataset."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from personsearch.data import load_dataset
from personsearch.data.crops import CropAugment, CropSet, build_crop_set, normalize_crops
from personsearch.models.bundle import save_component
from personsearch.models.losses import reid_loss
from personsearch.models.reid import ReIDConfig, build_reid
from personsearch.training.config import ReIDTrainConfig, to_dict
from personsearch.training.runner import Trainer, distributed_context, resolve_device, sgd_for


def reid_model_config(config: ReIDTrainConfig, num_classes: int) -> ReIDConfig:
    """The network part of a training config."""
    kwargs: dict[str, Any] = dict(
        backbone=config.backbone,
        pretrained=config.pretrained,
        embed_dim=config.embed_dim,
        num_classes=num_classes,
        variant=config.variant,
        input_size=tuple(config.input_size),
    )
    if config.levels:
        kwargs["levels"] = tuple(config.levels)
    return ReIDConfig(**kwargs)


def epoch_plan(labels: torch.Tensor, epoch: int, config: ReIDTrainConfig) -> list[list[int]]:
    """The batches of one epoch, a pure function of (seed, epoch) so resuming is exact.

    With ``ids_per_batch`` > 0 batches are identity-balanced: that many identities, each with
    ``batch_size // ids_per_batch`` crops (sampled with replacement when an identity has fewer).
    """
    rng = np.random.default_rng([config.seed, epoch])
    n = len(labels)
    if config.ids_per_batch <= 0:
        order = rng.permutation(n)
        return [order[i : i + config.batch_size].tolist() for i in range(0, n - config.batch_size + 1, config.batch_size)] or [order.tolist()]
    per_id = max(1, config.batch_size // config.ids_per_batch)
    by_id = [np.flatnonzero(labels.numpy() == c) for c in range(int(labels.max()) + 1)]
    ids = rng.permutation(len(by_id))
    batches = []
    for start in range(0, len(ids) - config.ids_per_batch + 1, config.ids_per_batch):
        batch: list[int] = []
        for c in ids[start : start + config.ids_per_batch]:
            members = by_id[c]
            batch += rng.choice(members, per_id, replace=len(members) < per_id).tolist()
        batches.append(batch)
    return batches


def train_reid(
    config: ReIDTrainConfig, out_dir: str | Path, *, progress: bool = True, crop_set: CropSet | None = None
) -> dict[str, Any]:
    """Train per ``config``; writes checkpoints and metrics to ``out_dir/train-reid`` and the
    final network to ``out_dir/reid.*`` (a model-bundle component). Returns a summary."""
    out_dir = Path(out_dir)
    torch.manual_seed(config.seed)
    device = resolve_device(config.device)
    if crop_set is None:
        dataset = load_dataset(config.dataset)
        crop_set = build_crop_set(dataset.train, tuple(config.input_size))
    model_config = reid_model_config(config, crop_set.num_classes)
    model = build_reid(model_config)
    if config.fast:
        model = model.to(memory_format=torch.channels_last)
    optimizer = sgd_for(model, config.optim, lambda name: name.startswith("backbone."))
    augment = CropAugment(config.flip, config.pad, config.downscale_prob, config.min_downscale)

    def load_batch(indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.as_tensor(indices)
        generator = torch.Generator().manual_seed(hash((config.seed, *indices[:4])) & 0x7FFFFFFF)
        images = normalize_crops(augment(crop_set.crops[index], generator))
        if config.fast:
            images = images.contiguous(memory_format=torch.channels_last)
        return images.to(device), crop_set.labels[index].to(device)

    def step(net: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float], int]:
        images, labels = batch
        outputs = net(images)
        loss, parts = reid_loss(outputs, labels, config.variant, config.temperature, config.align_weight)
        return loss, {k: v.item() if torch.is_tensor(v) else float(v) for k, v in parts.items()}, len(labels)

    trainer = Trainer(
        model=model,
        optimizer=optimizer,
        optim=config.optim,
        out_dir=out_dir / "train-reid",
        epochs=config.epochs,
        device=device,
        fast=config.fast,
        checkpoint_every=config.checkpoint_every,
        config=to_dict(config),
        progress=progress,
        description=f"re-id {config.variant}",
    )
    summary = trainer.fit(lambda e: epoch_plan(crop_set.labels, e, config), load_batch, step)
    summary.update(num_classes=crop_set.num_classes, num_crops=len(crop_set.labels))
    model.eval()
    if distributed_context()[0] == 0:  # one writer under torchrun
        save_component(out_dir, "reid", model, model_config, {"train": to_dict(config), "summary": summary})
    return summary
