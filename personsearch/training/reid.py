"""Train the feature-pyramid re-id network on ground-truth person crops of any loader dataset."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from personsearch.data import load_dataset
from personsearch.data.crops import CropAugment, CropSet, build_crop_set, normalize_crops
from personsearch.data.reid_crops import is_crop_folder, train_crop_set
from personsearch.models.backbones import FeatureBackbone, build_backbone
from personsearch.models.losses import reid_loss
from personsearch.models.registry import registered_network
from personsearch.models.reid import test_feature
from personsearch.training.config import ReIDDataConfig, ReIDTrainConfig
from personsearch.training.guide import imagenet_guide, teacher_features
from personsearch.training.runner import resolve_device, train_component
from personsearch.training.trunk import TrunkCache


def epoch_plan(
    labels: torch.Tensor, epoch: int, config: ReIDTrainConfig, mixed_from: int | None = None
) -> list[list[int]]:
    """The batches of one epoch, a pure function of (seed, epoch) so resuming is exact.

    With ``ids_per_batch`` > 0 batches are identity-balanced: that many identities, each with
    ``batch_size // ids_per_batch`` crops (sampled with replacement when an identity has fewer).
    As plain shuffling gives one short batch when there are fewer crops than a batch, balanced
    sampling gives one batch of every identity when there are fewer than ``ids_per_batch``.
    ``mixed_from``: classes from this one on came from ``data.mix`` sets; with ``data.mix_share``
    that share of each batch's identities is theirs, cycled through as often as it takes, and an
    epoch is one pass over the main set's identities.
    """
    rng = np.random.default_rng([config.seed, epoch])
    n = len(labels)
    ids_per_batch = config.data.ids_per_batch
    if ids_per_batch <= 0:
        order = rng.permutation(n)
        return [
            order[i : i + config.batch_size].tolist()
            for i in range(0, n - config.batch_size + 1, config.batch_size)
        ] or [order.tolist()]
    per_id = max(1, config.batch_size // ids_per_batch)
    by_id = [np.flatnonzero(labels.numpy() == c) for c in range(int(labels.max()) + 1)]
    share = config.data.mix_share
    if share > 0 and mixed_from is not None and 0 < mixed_from < len(by_id):
        mixed_per_batch = min(max(1, round(share * ids_per_batch)), ids_per_batch - 1)
        main = rng.permutation(mixed_from)
        own = ids_per_batch - mixed_per_batch
        n_batches = len(main) // own
        rounds = -(-n_batches * mixed_per_batch // (len(by_id) - mixed_from))
        mixed = np.concatenate([mixed_from + rng.permutation(len(by_id) - mixed_from) for _ in range(rounds)])
        batch_ids = [
            np.concatenate(
                [main[b * own : (b + 1) * own], mixed[b * mixed_per_batch : (b + 1) * mixed_per_batch]]
            )
            for b in range(n_batches)
        ]
    else:
        ids = rng.permutation(len(by_id))
        ids_per_batch = min(ids_per_batch, len(ids))
        batch_ids = [
            ids[start : start + ids_per_batch]
            for start in range(0, len(ids) - ids_per_batch + 1, ids_per_batch)
        ]
    batches = []
    for chosen in batch_ids:
        batch: list[int] = []
        for c in chosen:
            members = by_id[c]
            batch += rng.choice(members, per_id, replace=len(members) < per_id).tolist()
        batches.append(batch)
    return batches


def training_crops(data: ReIDDataConfig, size: tuple[int, int]) -> CropSet:
    """The labelled crops of ``data.dataset`` and each ``data.mix`` set, each a re-id crop folder
    (Market-1501 layout, e.g. rendered people) or a person search benchmark whose training
    scenes' ground-truth boxes are cropped; at most ``data.max_identities`` people of each."""
    parts = []
    for root in (data.dataset, *data.mix):
        part = (
            train_crop_set(root, size)
            if is_crop_folder(root)
            else build_crop_set(load_dataset(root).train, size)
        )
        if data.max_identities and part.num_classes > data.max_identities:
            keep = part.labels < data.max_identities
            part = CropSet(
                part.crops[keep],
                part.labels[keep],
                part.pids[: data.max_identities],
                part.heights[keep.numpy()],
            )
        parts.append((root, part))
    if len(parts) == 1:
        return parts[0][1]
    offsets = np.cumsum([0] + [part.num_classes for _, part in parts[:-1]])
    return CropSet(
        torch.cat([part.crops for _, part in parts]),
        torch.cat([part.labels + int(offset) for (_, part), offset in zip(parts, offsets)]),
        np.array([f"{root}:{pid}" for root, part in parts for pid in part.pids], dtype=object),
        np.concatenate([part.heights for _, part in parts]),
    )


def mix_classes_from(crop_set: CropSet, data: ReIDDataConfig) -> int | None:
    """Where the ``data.mix`` sets' classes begin in a set ``training_crops`` made (it names each
    class ``root:pid``, the main set's first); None without mix sets."""
    if not data.mix:
        return None
    return sum(str(pid).startswith(f"{data.dataset}:") for pid in crop_set.pids)


def crop_augment(data: ReIDDataConfig) -> CropAugment:
    """The training augmentation ``data`` asks for."""
    return CropAugment(
        data.flip,
        data.pad,
        data.downscale_prob,
        data.min_downscale,
        data.colour_jitter,
        data.grayscale_prob,
        data.erase_prob,
    )


def train_reid(
    config: ReIDTrainConfig,
    out_dir: str | Path,
    *,
    progress: bool = True,
    crop_set: CropSet | None = None,
    on_epoch_end: Callable[[int, torch.nn.Module], None] | None = None,
    init: dict[str, torch.Tensor] | None = None,
    rivals: torch.Tensor | None = None,
    deadline: float | None = None,
    on_step: Callable[[int, int], None] | None = None,
    extra_loss: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], dict[str, torch.Tensor]] | None = None,
    trunk_cache: TrunkCache | None = None,
) -> dict[str, Any]:
    """Train per ``config``; writes checkpoints and metrics to ``out_dir/train-reid`` and the
    final network to ``out_dir/reid.*`` (a model-bundle component). Returns a summary.
    ``on_epoch_end(epochs_done, model)`` runs after each epoch (learning curves). ``init``: start
    from these weights (a state dict of the same architecture; its identity classifiers, sized
    for other identities, are left out), e.g. to fine-tune a trained network on new footage.
    ``rivals`` (classes x classes, bool): the classes each class's samples are told apart from;
    the others' logits are masked out of every level's softmax (per-camera discrimination of
    tracklets: two cameras' tracklets are never negatives of each other, they may be one person).
    ``deadline``: a ``time.monotonic()`` instant to finish by; ``on_step(steps done, planned)``
    after each step (``runner.Trainer``). ``extra_loss(test features, labels, crop indices)``:
    more loss terms, added to the re-id losses (a memory of proxies, training/cluster_contrast.py);
    ``config.guide`` adds the ImageNet guide's (training/guide.py). With ``config.trunk.frozen``
    the lowest stages stay as ``init`` has them and steps draw their outputs from a
    ``training/trunk.TrunkCache``: ``trunk_cache``, one made for ``crop_set`` by an earlier run
    over the same crops with the same frozen weights (``adapt``'s rounds), or a new one."""
    out_dir = Path(out_dir)
    torch.manual_seed(config.seed)
    device = resolve_device(config.device)
    if crop_set is None:
        crop_set = training_crops(config.data, config.model.input_size)
    model_config = replace(config.model, num_classes=crop_set.num_classes)
    if init is None:
        model = registered_network(model_config)
    else:  # the random start the backbone warns about is overwritten at once
        backbones_log = logging.getLogger("personsearch.models.backbones")
        level = backbones_log.level
        backbones_log.setLevel(logging.ERROR)
        try:
            model = registered_network(model_config)
        finally:
            backbones_log.setLevel(level)
    if init is not None:
        missing, unexpected = model.load_state_dict(
            {k: v for k, v in init.items() if ".classifier." not in k}, strict=False
        )
        if unexpected or any(".classifier." not in k for k in missing):
            raise ValueError(
                f"initial re-id weights do not fit a {model_config.backbone} network with levels "
                f"{model_config.used_levels}: missing {missing}, unexpected {unexpected}"
            )
    if config.fast:
        model = model.to(memory_format=torch.channels_last)
    data = config.data
    augment = crop_augment(data)

    heights = torch.as_tensor(crop_set.heights, dtype=torch.float32)
    mixed_from = mix_classes_from(crop_set, data)
    extra_losses = [extra_loss] if extra_loss is not None else []
    summary_extra: dict[str, Any] = {"num_classes": crop_set.num_classes, "num_crops": len(crop_set.labels)}
    trunk = None
    if config.trunk.frozen:
        if model_config.variant == "image_pyramid":
            raise ValueError(
                "trunk.frozen: an image_pyramid network rescales its input, so no stage output can be kept"
            )
        backbone = cast(FeatureBackbone, model.backbone)
        backbone.freeze(config.trunk.frozen)
        trunk = trunk_cache or TrunkCache(crop_set.crops, augment, config.trunk, config.seed)
    if config.guide.weight > 0:
        began = time.perf_counter()
        teacher = teacher_features(crop_set.crops, build_backbone(config.guide.teacher, pretrained=True))
        summary_extra["guide_teacher_seconds"] = round(time.perf_counter() - began, 1)
        extra_losses.append(imagenet_guide(teacher, config.guide.weight, config.guide.temperature))

    def load_batch(indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        index = torch.as_tensor(indices)
        generator = torch.Generator().manual_seed(hash((config.seed, *indices[:4])) & 0x7FFFFFFF)
        if trunk is not None:  # the frozen stages' outputs: the network is fed above them
            images = trunk.batch(backbone, index, generator, config.fast)
        else:
            images = normalize_crops(augment(crop_set.crops[index], generator))
        if config.fast:
            images = images.contiguous(memory_format=torch.channels_last)
        return images.to(device), crop_set.labels[index].to(device), heights[index].to(device), index

    def step(
        net: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, float], int]:
        images, labels, crop_heights, index = batch
        outputs = net(images, crop_heights)  # the heights route multi_branch's crops; others ignore them
        negatives = None
        if rivals is not None:
            told_apart = rivals.to(labels.device)[labels]
            outputs = {
                **outputs,
                "logits": [logit.masked_fill(~told_apart, -1e4) for logit in outputs["logits"]],
            }
            negatives = told_apart[:, labels]  # the triplet term's negatives: rivals only, as for the softmax
        loss, parts = reid_loss(
            outputs,
            labels,
            model_config.variant,
            model_config.temperature,
            model_config.align_weight,
            model_config.triplet_weight,
            negatives,
        )
        if extra_losses:
            searched = test_feature(outputs["embeddings"])  # the feature a search compares
            for extra in extra_losses:
                for name, term in extra(searched, labels, index).items():
                    loss, parts[name] = loss + term, term.detach()
        return loss, {k: v.item() if torch.is_tensor(v) else float(v) for k, v in parts.items()}, len(labels)

    def epoch_end_on_images(epochs_done: int, net: torch.nn.Module) -> None:
        """``on_epoch_end`` sees the network as a user does: fed images, not kept stage outputs."""
        assert on_epoch_end is not None
        with cast(FeatureBackbone, net.backbone).fed_above(None):
            on_epoch_end(epochs_done, net)

    with backbone.fed_above(trunk.top) if trunk is not None else nullcontext():
        summary = train_component(
            "reid",
            model,
            model_config,
            config,
            out_dir,
            epoch_batches=lambda e: epoch_plan(crop_set.labels, e, config, mixed_from),
            load_batch=load_batch,
            step_fn=step,
            progress=progress,
            description=f"re-id {model_config.variant}",
            summary_extra=summary_extra,
            on_epoch_end=on_epoch_end if trunk is None or on_epoch_end is None else epoch_end_on_images,
            on_step=on_step,
            deadline=deadline,
        )
    if trunk is not None:
        summary.update(trunk_views_computed=trunk.computed, trunk_views_kept=trunk.kept)
    return summary
