"""Carrying rendered crops to a lent GPU (``benchmarks/carry_crops.py``): what is unpacked there
must be the same training set, every crop under its own name (the name is the label), in the
Market-1501 layout the product's loader reads, and close to the rendered pixels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from personsearch.data.reid_crops import train_crop_set

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def carry_crops(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import carry_crops

    return carry_crops


def _crop_folder(root: Path) -> list[str]:
    rng = np.random.default_rng(0)
    (root / "bounding_box_train").mkdir(parents=True)
    names = []
    for person in (1, 2, 3):
        for shot in range(3):
            # smooth colour fields, as rendered people on backgrounds are, plus a little noise
            base = rng.integers(40, 215, size=3)
            ramp = np.linspace(-30, 30, 64)[:, None, None]
            image = np.clip(base + ramp + rng.normal(0, 3, size=(64, 32, 3)), 0, 255).astype(np.uint8)
            name = f"{person:04d}_c{shot + 1}s1_{shot:06d}_00"
            Image.fromarray(image).save(root / "bounding_box_train" / f"{name}.jpg", quality=92)
            names.append(name)
    (root / "people3d.json").write_text(json.dumps({"generator_version": 3}))
    return names


def test_packed_crops_unpack_to_the_same_training_set(carry_crops, tmp_path):
    names = _crop_folder(tmp_path / "rendered")
    carry_crops.pack(tmp_path / "rendered", tmp_path / "carry", parts=2, quality=85, workers=1)
    parts = sorted((tmp_path / "carry").iterdir())
    assert [p.name for p in parts] == ["part1", "part2"]
    assert all(any(p.glob("*.webp")) for p in parts)

    carry_crops.unpack(parts, tmp_path / "there", workers=1)
    unpacked = sorted(p.stem for p in (tmp_path / "there" / "bounding_box_train").glob("*.png"))
    assert unpacked == sorted(names)
    info = json.loads((tmp_path / "there" / "people3d.json").read_text())
    assert info["generator_version"] == 3 and info["carried"]["quality"] == 85  # the lossy step is on record

    here = train_crop_set(tmp_path / "rendered", (64, 32))
    there = train_crop_set(tmp_path / "there", (64, 32))
    assert there.labels.tolist() == here.labels.tolist() and list(there.pids) == list(here.pids)
    error = (there.crops.float() - here.crops.float()).abs().mean()
    assert error < 4.0, f"WebP changed the crops by {error:.1f} grey levels on average"


def test_pack_refuses_a_folder_without_crops(carry_crops, tmp_path):
    (tmp_path / "empty" / "bounding_box_train").mkdir(parents=True)
    with pytest.raises(SystemExit, match="no .jpg crops"):
        carry_crops.pack(tmp_path / "empty", tmp_path / "carry", parts=2, quality=85, workers=1)
