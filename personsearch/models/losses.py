"""Re-id training losses: identity classification on every pyramid level and the cross-level
semantic alignment (CLSA) term, in which the top level's class distribution teaches every lower one.

    L_align = T^2 * sum_{l < top} KL( softmax(z_top / T) || softmax(z_l / T) ),  teacher detached
    L       = sum_l CE(z_l, y) + lambda * L_align        (``clsa``; ``multi`` drops L_align)

The T^2 factor keeps the term's gradient scale independent of T (Hinton et al.'s distillation).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
from torch.nn import functional as F

from personsearch.models.reid import VARIANTS


def identity_losses(logits_per_level: Sequence[torch.Tensor], targets: torch.Tensor) -> list[torch.Tensor]:
    """Softmax cross-entropy of each level's logits (B, K) against identity labels (B,)."""
    return [F.cross_entropy(z.float(), targets) for z in logits_per_level]


def cross_level_alignment_loss(logits_per_level: Sequence[torch.Tensor], temperature: float = 3.0) -> torch.Tensor:
    """``T^2 * sum_{l < top} KL(p_top || p_l)`` with ``p = softmax(z / T)``, batch-mean KL.

    The top level (last) is the teacher and receives no gradient from this term.
    """
    if len(logits_per_level) < 2:
        raise ValueError(f"the alignment loss needs at least two levels, got {len(logits_per_level)}")
    if temperature <= 0:
        raise ValueError(f"temperature={temperature}: must be positive")
    *lower, top = (z.float() for z in logits_per_level)
    teacher = F.log_softmax(top.detach() / temperature, dim=1)
    # sum() starts from 0, so mypy sees Tensor | int; ``lower`` is never empty here
    kl = cast(torch.Tensor, sum(F.kl_div(F.log_softmax(z / temperature, dim=1), teacher, reduction="batchmean", log_target=True) for z in lower))
    return temperature**2 * kl


def reid_loss(
    outputs: dict[str, list[torch.Tensor]],
    targets: torch.Tensor,
    variant: str,
    temperature: float = 3.0,
    weight: float = 1.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Total training loss of a ``PyramidReID`` train-mode output, and its named parts for logging
    (``ce_<i>`` per level from the lowest, ``ce``, and ``align`` for ``clsa``)."""
    if variant not in VARIANTS:
        raise ValueError(f"variant={variant!r}; expected one of {VARIANTS}")
    logits = outputs["logits"]
    if variant == "single" and len(logits) != 1:
        raise ValueError(f"variant 'single' expects the top level's logits only, got {len(logits)} levels")
    ce = identity_losses(logits, targets)
    parts = {f"ce_{i}": loss.detach() for i, loss in enumerate(ce)}
    total = cast(torch.Tensor, sum(ce))  # a Tensor: there is at least one level
    parts["ce"] = total.detach()
    if variant == "clsa":
        align = cross_level_alignment_loss(logits, temperature)
        parts["align"] = align.detach()
        total = total + weight * align
    return total, parts
