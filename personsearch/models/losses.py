"""Re-id training losses: identity classification on every pyramid level and the cross-level
semantic alignment (CLSA) term, in which the top level's class distribution teaches every lower one.

    L_align = T^2 * sum_{l < top} KL( softmax(z_top / T) || softmax(z_l / T) ),  teacher detached
    L       = sum_l CE(z_l, y) + lambda * L_align        (``clsa``; ``multi`` drops L_align)

The T^2 factor keeps the term's gradient scale independent of T (Hinton et al.'s distillation).
An optional batch-hard soft-margin triplet term on the test feature (Hermans, Beyer and Leibe,
"In Defense of the Triplet Loss", 2017) joins with ``triplet_weight``:

    L_tri = mean_a log(1 + exp(max_p d(a, p) - min_n d(a, n)))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
from torch.nn import functional as F

from personsearch.models.reid import VARIANTS, test_feature


def identity_losses(
    logits_per_level: Sequence[torch.Tensor],
    targets: torch.Tensor,
    routes: Sequence[torch.Tensor] | None = None,
) -> list[torch.Tensor]:
    """Softmax cross-entropy of each level's logits (B, K) against identity labels (B,); with
    ``routes`` (a bool mask (B,) per level: ``multi_branch``'s branches), each level's over its
    own crops only (zero, with a gradient of zero, when the batch has none)."""
    if routes is None:
        return [F.cross_entropy(z.float(), targets) for z in logits_per_level]
    return [
        F.cross_entropy(z[mask].float(), targets[mask]) if bool(mask.any()) else z.sum() * 0.0
        for z, mask in zip(logits_per_level, routes, strict=True)
    ]


def cross_level_alignment_loss(
    logits_per_level: Sequence[torch.Tensor], temperature: float = 3.0
) -> torch.Tensor:
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
    kl = cast(
        torch.Tensor,
        sum(
            F.kl_div(F.log_softmax(z / temperature, dim=1), teacher, reduction="batchmean", log_target=True)
            for z in lower
        ),
    )
    return temperature**2 * kl


def batch_hard_triplet_loss(
    features: torch.Tensor, targets: torch.Tensor, negatives: torch.Tensor | None = None
) -> torch.Tensor:
    """Soft-margin batch-hard triplet loss of features (B, D) with identity labels (B,): each
    anchor's farthest same-identity sample against its nearest other-identity one, in Euclidean
    distance. ``negatives`` (B, B, bool) narrows who may be a negative (default: every other
    identity). Anchors without a positive or a negative in the batch are left out; 0 when none is left."""
    features = features.float()
    distance = torch.cdist(features, features).clamp_min(1e-12)
    same = targets[:, None] == targets[None, :]
    eye = torch.eye(len(targets), dtype=torch.bool, device=targets.device)
    positive = same & ~eye
    negative = ~same if negatives is None else ~same & negatives
    usable = positive.any(1) & negative.any(1)
    if not usable.any():
        return distance.sum() * 0.0  # keeps the graph: a batch of one identity still backpropagates
    hardest_positive = distance.masked_fill(~positive, float("-inf")).amax(1)
    hardest_negative = distance.masked_fill(~negative, float("inf")).amin(1)
    return F.softplus(hardest_positive - hardest_negative)[usable].mean()


def reid_loss(
    outputs: dict[str, list[torch.Tensor]],
    targets: torch.Tensor,
    variant: str,
    temperature: float = 3.0,
    weight: float = 1.0,
    triplet_weight: float = 0.0,
    negatives: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Total training loss of a ``PyramidReID`` train-mode output, and its named parts for logging
    (``ce_<i>`` per level from the lowest, ``ce``, ``align`` for ``clsa``, ``triplet`` when
    ``triplet_weight`` > 0, on the embeddings' test feature; ``negatives`` as in
    ``batch_hard_triplet_loss``)."""
    if variant not in VARIANTS:
        raise ValueError(f"variant={variant!r}; expected one of {VARIANTS}")
    logits = outputs["logits"]
    if variant in ("single", "image_pyramid") and len(logits) != 1:
        raise ValueError(f"variant {variant!r} expects the top level's logits only, got {len(logits)} levels")
    routes = outputs.get("routes")
    if variant == "multi_branch" and routes is None:
        raise ValueError(
            "variant 'multi_branch' needs each branch's crops ('routes' of the network's output)"
        )
    ce = identity_losses(logits, targets, routes)
    parts = {f"ce_{i}": loss.detach() for i, loss in enumerate(ce)}
    total = cast(torch.Tensor, sum(ce))  # a Tensor: there is at least one level
    parts["ce"] = total.detach()
    if variant == "clsa":
        align = cross_level_alignment_loss(logits, temperature)
        parts["align"] = align.detach()
        total = total + weight * align
    if triplet_weight > 0:
        triplet = batch_hard_triplet_loss(test_feature(outputs["embeddings"]), targets, negatives)
        parts["triplet"] = triplet.detach()
        total = total + triplet_weight * triplet
    return total, parts
