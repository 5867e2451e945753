"""Identity and cross-level alignment losses on hand-computed cases."""

from __future__ import annotations

import math

import pytest
import torch

from personsearch.models.losses import (
    batch_hard_triplet_loss,
    cross_level_alignment_loss,
    identity_losses,
    reid_loss,
)

LN3 = math.log(3.0)


def hand_case(temperature: float) -> list[torch.Tensor]:
    """Two samples, two classes, three levels (lowest first), logits scaled by T so z / T is simple.

    Sample 0: top softmax = [1/4, 3/4]; level 0 = [1/2, 1/2]; level 1 = [3/4, 1/4].
      KL(top || level 0) = 1/4 ln(1/2) + 3/4 ln(3/2)      = 0.130812
      KL(top || level 1) = 1/4 ln(1/3) + 3/4 ln(3)        = 0.549306
    Sample 1: every level equals the top: KL = 0.
    batchmean over 2 samples: (0.130812 + 0.549306) / 2 = 0.340059; times T^2.
    """
    t = temperature
    top = torch.tensor([[0.0, LN3], [1.0, 2.0]]) * t
    level0 = torch.tensor([[0.0, 0.0], [1.0, 2.0]]) * t
    level1 = torch.tensor([[LN3, 0.0], [1.0, 2.0]]) * t
    return [level0, level1, top]


def test_alignment_loss_matches_the_hand_computation() -> None:
    kl_sum = 0.25 * math.log(0.5) + 0.75 * math.log(1.5) + 0.5 * LN3
    assert kl_sum == pytest.approx(0.680118, abs=1e-6)
    assert cross_level_alignment_loss(hand_case(1.0), temperature=1.0).item() == pytest.approx(
        kl_sum / 2, rel=1e-5
    )
    # 3.060530
    assert cross_level_alignment_loss(hand_case(3.0), temperature=3.0).item() == pytest.approx(
        9 * kl_sum / 2, rel=1e-5
    )


def test_alignment_loss_is_zero_when_levels_agree() -> None:
    z = torch.randn(4, 7)
    assert cross_level_alignment_loss([z.clone(), z.clone(), z]).item() == pytest.approx(0.0, abs=1e-6)


def test_teacher_gets_no_gradient_from_alignment() -> None:
    levels = [z.clone().requires_grad_(True) for z in hand_case(3.0)]
    cross_level_alignment_loss(levels, temperature=3.0).backward()
    assert levels[-1].grad is None  # detached teacher
    assert levels[0].grad.abs().sum() > 0 and levels[1].grad.abs().sum() > 0


def test_identity_losses_are_cross_entropy_per_level() -> None:
    logits = [torch.tensor([[0.0, LN3]]), torch.tensor([[LN3, 0.0]])]
    losses = identity_losses(logits, torch.tensor([1]))
    # 0.287682, 1.386294
    assert [v.item() for v in losses] == pytest.approx([-math.log(0.75), -math.log(0.25)], rel=1e-6)


def test_reid_loss_per_variant() -> None:
    logits = hand_case(3.0)
    targets = torch.tensor([1, 0])
    ce = sum(identity_losses(logits, targets))
    align = cross_level_alignment_loss(logits, 3.0)
    total, parts = reid_loss({"logits": logits}, targets, "multi")
    assert total.item() == pytest.approx(ce.item()) and set(parts) == {"ce_0", "ce_1", "ce_2", "ce"}
    total, parts = reid_loss({"logits": logits}, targets, "clsa", temperature=3.0, weight=0.5)
    assert total.item() == pytest.approx(ce.item() + 0.5 * align.item()) and parts[
        "align"
    ].item() == pytest.approx(align.item())
    total, parts = reid_loss({"logits": logits[-1:]}, targets, "single")
    assert set(parts) == {"ce_0", "ce"} and total.item() == pytest.approx(
        identity_losses(logits[-1:], targets)[0].item()
    )


def test_reid_loss_refuses_mismatched_inputs() -> None:
    with pytest.raises(
        ValueError, match="variant 'single' expects the top level's logits only, got 3 levels"
    ):
        reid_loss({"logits": hand_case(1.0)}, torch.tensor([0, 1]), "single")
    with pytest.raises(ValueError, match=r"variant='pyramid'; expected one of \('single', 'multi', 'clsa', "):
        reid_loss({"logits": hand_case(1.0)}, torch.tensor([0, 1]), "pyramid")
    with pytest.raises(ValueError, match="'multi_branch' needs each branch's crops"):
        reid_loss({"logits": hand_case(1.0)}, torch.tensor([0, 1]), "multi_branch")
    with pytest.raises(ValueError, match="needs at least two levels, got 1"):
        cross_level_alignment_loss([torch.zeros(2, 3)])


def test_batch_hard_triplet_loss_by_hand() -> None:
    """Four points on a line, two identities: a=0 and b=1 are person 0, c=3 and d=7 person 1.
    Hardest positive / negative distances: a 1 / 3, b 1 / 2, c 4 / 2, d 4 / 6;
    loss = mean(softplus(1-3), softplus(1-2), softplus(4-2), softplus(4-6))."""
    features = torch.tensor([[0.0], [1.0], [3.0], [7.0]])
    targets = torch.tensor([0, 0, 1, 1])
    softplus = lambda x: math.log1p(math.exp(x))  # noqa: E731
    expected = (softplus(-2) + softplus(-1) + softplus(2) + softplus(-2)) / 4
    assert batch_hard_triplet_loss(features, targets).item() == pytest.approx(expected, rel=1e-5)
    # a lone identity has no positive: its anchor is left out, not scored against itself
    lone = batch_hard_triplet_loss(torch.tensor([[0.0], [1.0], [5.0]]), torch.tensor([0, 0, 1]))
    assert lone.item() == pytest.approx((softplus(1 - 5) + softplus(1 - 4)) / 2, rel=1e-5)
    # negatives narrowed: b may not be told apart from c, so b's nearest allowed negative is d (6)
    allowed = torch.ones(4, 4, dtype=torch.bool)
    allowed[1, 2] = False
    narrowed = batch_hard_triplet_loss(features, targets, allowed)
    assert narrowed.item() == pytest.approx(
        (softplus(-2) + softplus(1 - 6) + softplus(2) + softplus(-2)) / 4, rel=1e-5
    )


def test_reid_loss_adds_the_triplet_term_on_the_test_feature() -> None:
    """Equal embeddings on every level make the test feature the normalised embedding (each level
    normalised, concatenated, normalised again), so the term is the triplet loss of those."""
    embedding = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])
    logits = [torch.zeros(3, 2)] * 3
    targets = torch.tensor([0, 0, 1])
    plain, _ = reid_loss({"logits": logits, "embeddings": [embedding] * 3}, targets, "clsa")
    total, parts = reid_loss(
        {"logits": logits, "embeddings": [embedding] * 3}, targets, "clsa", triplet_weight=2.0
    )
    expected = batch_hard_triplet_loss(embedding, targets).item()
    assert expected > 0.1 and parts["triplet"].item() == pytest.approx(expected, rel=1e-5)
    assert total.item() == pytest.approx(plain.item() + 2.0 * expected, rel=1e-5)
