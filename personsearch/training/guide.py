"""A frozen ImageNet network as a guide while a re-id network learns from drawn or rendered people.

Fine-tuned on people that a program drew, a network learns what tells those people apart and
forgets what its ImageNet start saw in real photographs; keeping a frozen ImageNet network as a
guide is the remedy of the synthetic-to-real literature (Chen et al., "Automated Synthetic-to-Real
Generalization", ICML 2020; "Contrastive Syn-to-Real Generalization", ICLR 2021).

The guide here asks for relations, not for the teacher's features themselves (the two networks'
features differ in size and meaning): for each crop of a batch, the distribution of its
similarities to the batch's crops of *other* identities (a softmax at one temperature) should be the
teacher's (KL divergence). Which other people look alike is left to the ImageNet view; pairs of one
identity are left to the re-id losses, which pull them together and would otherwise fight the
guide. The teacher sees each crop once, un-augmented, before training starts; the student sees the
augmented crop, so its relations are also asked to hold through the augmentation.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from personsearch.data.crops import normalize_crops
from personsearch.models.fast import prepare_for_inference


def teacher_features(crops: torch.Tensor, teacher: nn.Module, batch_size: int = 16) -> torch.Tensor:
    """(n, D) float32: ``teacher``'s last stage, average-pooled, centred on the crops' mean and
    L2-normalised. Centring matters: pooled post-ReLU features point one way, so any two crops'
    cosine is high and a softmax over them is nearly flat. The teacher runs channels_last in small
    batches, the fast CPU path (``models.fast``)."""
    teacher = prepare_for_inference(teacher, "cpu", compiled=False)
    parts = []
    with torch.inference_mode():
        for start in range(0, len(crops), batch_size):
            batch = normalize_crops(crops[start : start + batch_size])
            stages = teacher(batch.contiguous(memory_format=torch.channels_last))
            parts.append(next(reversed(stages.values())).mean((2, 3)).float())
    features = torch.cat(parts)
    return F.normalize(features - features.mean(0, keepdim=True), dim=1)


def relation_loss(
    student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor, temperature: float
) -> torch.Tensor:
    """KL(teacher || student) between each crop's softmax over its cosine similarities to the
    batch's crops of other identities, averaged over the crops that have any. ``student`` and
    ``teacher``: (B, D_s) and (B, D_t), L2-normalised. In fp32 even inside a mixed-precision step:
    autocast would run the products in bf16, which neither holds the mask's fp32 minimum nor the
    similarities over a temperature of 0.1 to the digits a softmax needs."""
    others = labels[:, None] != labels[None, :]
    rows = others.any(1)
    if not rows.any():
        return student.new_zeros(())
    hidden = torch.finfo(torch.float32).min
    with torch.autocast(student.device.type, enabled=False):
        s = (student.float() @ student.float().T / temperature).masked_fill(~others, hidden)[rows]
        t = (teacher.float() @ teacher.float().T / temperature).masked_fill(~others, hidden)[rows]
        target = t.softmax(1)
        return (target * (target.clamp_min(1e-12).log() - s.log_softmax(1))).sum(1).mean()


def imagenet_guide(
    features: torch.Tensor, weight: float, temperature: float
) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], dict[str, torch.Tensor]]:
    """The ``extra_loss`` of ``training.reid.train_reid``: ``weight`` times ``relation_loss``
    between the student's test features and ``features`` (``teacher_features`` of every training
    crop, indexed by the batch's crop indices)."""

    def loss(student: torch.Tensor, labels: torch.Tensor, index: torch.Tensor) -> dict[str, torch.Tensor]:
        teacher = features[index.cpu()].to(student.device)
        return {"guide": weight * relation_loss(student, teacher, labels, temperature)}

    return loss
