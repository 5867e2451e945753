"""The ImageNet guide (training/guide.py): a term that keeps a re-id network's sense of which
other people look alike close to a frozen ImageNet network's while it learns from drawn people."""

from __future__ import annotations

import csv
import json
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from model_testkit import mobilenet_weights_or_skip, rendered_folder

from personsearch.training.guide import imagenet_guide, relation_loss, teacher_features

ROOT = Path(__file__).resolve().parents[1]


def _people(n: int = 12, dim: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n, dim, generator=generator), dim=1), torch.arange(n) // 3


def test_relations_that_agree_cost_nothing_and_shuffled_ones_cost_more():
    features, labels = _people()
    assert relation_loss(features, features, labels, 0.1).item() == pytest.approx(0.0, abs=1e-6)
    rotated = features @ torch.linalg.qr(torch.randn(8, 8, generator=torch.Generator().manual_seed(1)))[0]
    assert relation_loss(rotated, features, labels, 0.1).item() == pytest.approx(0.0, abs=1e-5)
    shuffled = features[torch.randperm(len(features), generator=torch.Generator().manual_seed(2))]
    assert relation_loss(shuffled, features, labels, 0.1) > 0.1


def test_the_loss_is_fp32_inside_a_mixed_precision_step():
    """Training runs under bf16 autocast on CPUs with native bf16 (and on GPUs): the products
    must not fall to bf16, which failed the fp32 mask outright (the step crashed there)."""
    teacher, labels = _people()
    student = F.normalize(teacher + 0.3 * _people(seed=3)[0], dim=1)
    plain = relation_loss(student, teacher, labels, 0.1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = relation_loss(student.bfloat16(), teacher, labels, 0.1)
    assert mixed.dtype == torch.float32
    assert mixed.item() == pytest.approx(plain.item(), rel=0.05)  # the student's bf16 rounding only


def test_only_other_people_count():
    teacher, labels = _people()
    student = teacher.clone()
    student[1] = student[0]  # two crops of one person made one: their relations to others move
    assert relation_loss(student, teacher, labels, 0.1) > 0
    one = torch.zeros(len(teacher), dtype=torch.long)  # a batch of one person has no relations to others
    assert relation_loss(student, teacher, one, 0.1).item() == 0.0


def test_teacher_features_are_centred_and_unit_length():
    class Offset(torch.nn.Module):
        """A stand-in backbone: the crops subsampled, plus a constant every crop shares."""

        def __init__(self, offset: float) -> None:
            super().__init__()
            self.offset = offset

        def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
            return OrderedDict(layer4=x[:, :, ::8, ::8] + self.offset)

    crops = torch.randint(
        0, 256, (10, 3, 32, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(4)
    )
    plain = teacher_features(crops, Offset(0.0), batch_size=3)
    shifted = teacher_features(crops, Offset(5.0), batch_size=4)
    assert torch.allclose(plain.norm(dim=1), torch.ones(10), atol=1e-5)
    assert torch.allclose(plain, shifted, atol=1e-5)  # what all crops share says nothing of which look alike


def test_the_guide_reads_the_batch_by_crop_index():
    features, labels = _people()
    guide = imagenet_guide(features, 2.0, 0.1)
    order = torch.arange(len(features)).flip(0)
    assert guide(features[order], labels[order], order)["guide"].item() == pytest.approx(0.0, abs=1e-6)
    assert guide(features, labels[order], order)["guide"] > 0


def test_training_with_the_guide_keeps_relations_closer_to_imagenet(monkeypatch, tmp_path):
    mobilenet_weights_or_skip()
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    from rendered_people import DEFAULT, train_rendered

    from personsearch.data.crops import normalize_crops
    from personsearch.data.reid_crops import train_crop_set
    from personsearch.models.backbones import build_backbone
    from personsearch.models.bundle import load_component

    rendered_folder(tmp_path / "rendered", people=16, shots=4)
    gaps = {}
    for weight in (0.0, 20.0):
        run = tmp_path / f"guide-{weight}"
        train_rendered(
            tmp_path / "rendered", run, DEFAULT, [], device="cpu", identities=0, epochs=4, guide=weight
        )
        with (run / "train-reid" / "metrics.csv").open() as f:
            rows = list(csv.DictReader(f))
        assert ("guide" in rows[-1]) == (weight > 0)
        metadata = json.loads((run / "reid.json").read_text())["metadata"]
        assert metadata["train"]["guide"]["weight"] == weight
        assert ("guide_teacher_seconds" in metadata["summary"]) == (weight > 0)

        network, config, _ = load_component(run, "reid")
        crops = train_crop_set(tmp_path / "rendered", config.input_size)
        with torch.no_grad():
            student = network.eval()(normalize_crops(crops.crops), torch.full((len(crops.labels),), 256.0))
        teacher = teacher_features(crops.crops, build_backbone("mobilenet_v2", pretrained=True))
        gaps[weight] = relation_loss(student, teacher, crops.labels, 0.1).item()
    assert gaps[20.0] < gaps[0.0]
