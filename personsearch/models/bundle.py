"""A trained detector + re-id pair saved as one directory, and the search engine built on it.

Layout of a bundle directory (weights kept apart from code, never pickled):

    detector.safetensors   detector.json    (network config + training metadata)
    reid.safetensors       reid.json

``model_id`` is a digest of both weight files: an index records it and refuses another model.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from personsearch.config import from_dict
from personsearch.data.crops import crop_boxes, normalize_crops
from personsearch.models import engine_choice, engines
from personsearch.models.detector import DetectorConfig, build_detector, image_tensors
from personsearch.models.external_detectors import build_external_detector
from personsearch.models.machine import cache_root, checked_device
from personsearch.models.reid import ReIDConfig, build_reid

log = logging.getLogger(__name__)

COMPONENTS: dict[str, tuple[type, Any]] = {
    "detector": (DetectorConfig, build_detector),
    "reid": (ReIDConfig, build_reid),
}


def model_home() -> Path:
    """Where named bundles live: ``$PERSONSEARCH_CACHE/models`` (default ``~/.cache/personsearch/models``)."""
    return cache_root() / "models"


def saved_model_dir(name: str) -> Path:
    """Where the model saved under ``name`` lives (``model_home() / name``); a name that is not a
    plain file name (a path, a dot file) is refused."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", name):
        raise ValueError(
            f"model name {name!r}: use a plain name such as 'demo' (letters, digits, '_', '-', '.')"
        )
    return model_home() / name


DEFAULT_MODEL = "default"
"""The name of the model shipped with the package (``personsearch/assets/default``)."""
SHIPPED_MODEL = Path(__file__).resolve().parents[1] / "assets" / "default"
"""The shipped model's bundle directory (package data)."""


def is_bundle(directory: str | Path) -> bool:
    """Whether ``directory`` holds a model bundle (its re-id network's ``reid.json``)."""
    return (Path(directory) / "reid.json").is_file()


def resolve_model(model: str | Path | None = None) -> Path:
    """A bundle directory given by path, or by the name it was saved under with ``save_as``;
    ``default`` (or None) is the shipped model unless a model was saved under that name."""
    model = DEFAULT_MODEL if model is None else model
    path = Path(model)
    if is_bundle(path):
        return path
    named = model_home() / str(model)
    if is_bundle(named):
        return named
    if str(model) == DEFAULT_MODEL and is_bundle(SHIPPED_MODEL):
        return SHIPPED_MODEL
    known = sorted(p.name for p in model_home().glob("*") if is_bundle(p)) if model_home().is_dir() else []
    raise FileNotFoundError(
        f"no model bundle at {path} and no saved model named {model!r} in {model_home()} "
        f"(saved: {known or 'none'}); use the shipped model (--model default), or train one with "
        "`personsearch demo --train` or `personsearch train-detector/train-reid --out DIR`"
    )


FORMAT_VERSION = 1
ENGINE_ENV = "PERSONSEARCH_ENGINE"
"""Default engine when none is passed: ``auto`` (measure), an engine name, or ``reid=..,detector=..``."""
CHECK_CROPS = 64
"""Probe crops the engine choice compares against fp32 (int8 calibration uses the next 64)."""


def _config_from_json(cls: type, data: Any, where: Path) -> Any:
    """The component's config from its JSON, with the loader training configs use: a key this
    version does not know is an error naming it, never silently dropped. The backbone starts
    from random weights, silently: the bundle's own weights replace them."""
    if not isinstance(data, dict):
        raise ValueError(
            f"{where}: 'config' must be an object of {cls.__name__} settings, got {type(data).__name__}"
        )
    try:
        return from_dict(cls, {**data, "pretrained": None}, str(where))
    except ValueError as err:
        raise ValueError(
            f"{err}. The bundle was written by another version of personsearch, or edited: "
            "use that version, or retrain."
        ) from err


def save_component(
    out_dir: str | Path, name: str, model: torch.nn.Module, config: Any, metadata: dict[str, Any]
) -> None:
    """Write one network of a bundle: ``name.safetensors`` and ``name.json``."""
    if name not in COMPONENTS:
        raise ValueError(f"unknown bundle component {name!r}; expected one of {sorted(COMPONENTS)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(out_dir / f"{name}.safetensors"))
    config_dict = json.loads(json.dumps(dataclasses.asdict(config), default=str))
    description = {
        "format_version": FORMAT_VERSION,
        "component": name,
        "config": config_dict,
        "metadata": metadata,
    }
    (out_dir / f"{name}.json").write_text(json.dumps(description, indent=2, default=str))


def require_component(bundle_dir: Path, name: str) -> tuple[Path, Path]:
    """The two files of one network of a bundle (``name.json``, ``name.safetensors``), refused
    with how to make them when one is missing."""
    meta_path, weights_path = bundle_dir / f"{name}.json", bundle_dir / f"{name}.safetensors"
    for path in (meta_path, weights_path):
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} not found: a model bundle needs {name}.json and {name}.safetensors (written by "
                f"`personsearch train-{'detector' if name == 'detector' else 'reid'} --out {bundle_dir}`)"
            )
    return meta_path, weights_path


def read_component(bundle_dir: str | Path, name: str) -> tuple[Any, dict[str, Any]]:
    """The config and metadata of one network of a bundle, checked, without building it."""
    meta_path, _ = require_component(Path(bundle_dir), name)
    try:
        description = json.loads(meta_path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{meta_path}: not valid JSON ({err})") from err
    if description.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{meta_path}: bundle format {description.get('format_version')}, "
            f"this version reads {FORMAT_VERSION}"
        )
    cls, _ = COMPONENTS[name]
    return _config_from_json(cls, description.get("config"), meta_path), description.get("metadata", {})


def build_component(bundle_dir: str | Path, name: str, config: Any) -> torch.nn.Module:
    """One network of a bundle built from its ``config`` (as ``read_component`` gives it) and its
    weights (eval mode, CPU)."""
    meta_path, weights_path = require_component(Path(bundle_dir), name)
    model: torch.nn.Module = COMPONENTS[name][1](config)
    try:
        state = load_file(str(weights_path))
    except Exception as err:  # safetensors raises its own error types for corrupt headers
        raise ValueError(f"{weights_path}: not a readable safetensors file ({err})") from err
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"{weights_path} does not match its config in {meta_path}: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}"
        )
    return model.eval()


def load_component(bundle_dir: str | Path, name: str) -> tuple[torch.nn.Module, Any, dict[str, Any]]:
    """Rebuild one network of a bundle from its config and weights (eval mode, CPU)."""
    config, metadata = read_component(bundle_dir, name)
    return build_component(bundle_dir, name, config), config, metadata


def probe_crops(input_size: tuple[int, int] | list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The engine choice's probe crops as network inputs, split as it uses them: the first
    ``CHECK_CROPS`` are compared against fp32, the rest calibrate int8. Quantisation-aware
    distillation calibrates on the same crops, so its simulation sees the engine's ranges."""
    _, crops = engine_choice.probe_set((int(input_size[0]), int(input_size[1])))
    crops = normalize_crops(crops)
    return crops[:CHECK_CROPS], crops[CHECK_CROPS:]


def _digest(*paths: Path) -> str:
    h = hashlib.sha256()
    for path in paths:
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


def parse_engine(engine: str) -> tuple[str, str] | None:
    """``auto`` -> None (measure); ``NAME`` -> that engine for both networks (an engine for one
    network runs the other on its stand-in, ``engines.engine_for``); ``reid=NAME,detector=NAME``
    -> one each."""
    engine = engine.strip()
    if engine == "auto":
        return None
    if "=" not in engine:
        return engines.engine_for(engine, "reid"), engines.engine_for(engine, "detector")
    parts = dict(item.split("=", 1) for item in engine.split(",") if "=" in item)
    unknown = sorted(set(parts) - {"reid", "detector"})
    if unknown:
        raise ValueError(
            f"engine {engine!r}: unknown part(s) {unknown}; write e.g. reid=ort-int8,detector=ort-fp32"
        )
    return parts.get("reid", engines.REFERENCE), parts.get("detector", engines.REFERENCE)


class ModelBundle:
    """Detector + re-id network ready for inference: the engine the index and the API use.

    ``engine`` picks the runtime (``personsearch.models.engines``): ``auto`` (default) measures
    the candidates once on this machine and keeps the fastest one that agrees with fp32
    (``engine_choice.py``; cached), a name forces one. ``detector="bundle"`` uses the bundle's
    own detector; an off-the-shelf one (``"hog"``, ``"ssdlite"``:
    ``personsearch.models.external_detectors``) can replace it, e.g. on real footage when the
    bundle was trained on synthetic people. Its name is appended to ``model_id`` so an index
    never mixes detectors.

    Loading builds only what a query of a person crop or box needs: the re-id config and the
    re-id runner. The detector (its config, network and runner) is built when a scene is first
    detected, and the PyTorch re-id network when its runner needs it (to export it once, or to run
    it in PyTorch): a search whose re-id runs from the cached ONNX file builds neither. The
    engines are measured only on a model's first use on a machine (``measure_engines``, cached).
    """

    def __init__(
        self,
        bundle_dir: str | Path,
        device: str = "cpu",
        engine: str | None = None,
        batch_size: int = 32,
        detector: str = "bundle",
    ) -> None:
        engine = engine or os.environ.get(ENGINE_ENV, "auto")
        self.engine_request = engine
        """What was asked: ``auto`` or an engine spec (``parse_engine``); a copy elsewhere asks the same."""
        self.detector_name = detector
        self.path = Path(bundle_dir)
        self.device = checked_device(device)
        self.batch_size = batch_size
        self._built: dict[str, Any] = {}
        self._build_lock = threading.RLock()
        self.external_detector = None if detector == "bundle" else build_external_detector(detector)
        require_component(self.path, "detector")
        self.reid_config, self.reid_metadata = read_component(self.path, "reid")
        self.weights_id = _digest(self.path / "detector.safetensors", self.path / "reid.safetensors")
        self.model_id = self.weights_id + (f":{detector}" if self.external_detector is not None else "")
        self.engine_choice = self._choose(engine)
        self._reid = self.reid_engine(self.engine_choice.reid)
        if self.external_detector is None:
            engines.runnable(self.engine_choice.detector, "detector", self.device)  # refused now, not later
        with torch.no_grad():
            probe = torch.zeros(1, 3, *self.reid_config.input_size)
            self.feature_dim = int(self._reid(probe).shape[1])

    def _once(self, key: str, build: Callable[[], Any]) -> Any:
        """``build()`` on the first call for ``key``, its result after: under a lock, so that
        threads sharing the bundle (the server's) build a network and its runner once."""
        with self._build_lock:
            if key not in self._built:
                self._built[key] = build()
            return self._built[key]

    def _component(self, name: str) -> tuple[torch.nn.Module, Any, dict[str, Any]]:
        return cast(
            "tuple[torch.nn.Module, Any, dict[str, Any]]",
            self._once(name, lambda: load_component(self.path, name)),
        )

    @property
    def detector_network(self) -> torch.nn.Module:
        """The bundle's detector in PyTorch (eval mode, CPU), built on first use."""
        return self._component("detector")[0]

    @property
    def detector_config(self) -> Any:
        return self._component("detector")[1]

    @property
    def detector_metadata(self) -> dict[str, Any]:
        return self._component("detector")[2]

    @property
    def reid_network(self) -> torch.nn.Module:
        """The re-id network in PyTorch (eval mode, CPU), built on first use."""
        return cast(
            torch.nn.Module, self._once("reid", lambda: build_component(self.path, "reid", self.reid_config))
        )

    @property
    def _detect(self) -> engines.DetectRun:
        return cast(
            "engines.DetectRun",
            self._once("detect", lambda: self.detector_engine(self.engine_choice.detector)),
        )

    @property
    def engine_dir(self) -> Path:
        """Where this model's exported ONNX files and engine choices are cached."""
        return cache_root() / "engines" / self.weights_id

    def reid_engine(self, name: str) -> engines.ReIDRun:
        """A runner of the re-id network on engine ``name``."""
        return engines.reid_runner(
            lambda: self.reid_network, name, self.device, self.engine_dir, self.calibration_inputs
        )

    def detector_engine(self, name: str) -> engines.DetectRun:
        """A runner of the bundle's detector on engine ``name``."""
        return engines.detector_runner(
            lambda: self.detector_network,
            name,
            self.device,
            self.engine_dir,
            engine_choice.calibration_scenes,
        )

    def calibration_inputs(self) -> np.ndarray:
        """int8 calibration inputs: probe crops other than those the agreement check uses."""
        return probe_crops(self.reid_config.input_size)[1].numpy()

    def _choose(self, engine: str) -> engines.EngineChoice:
        forced = parse_engine(engine)
        if forced is not None:
            return engines.EngineChoice(
                reid=forced[0], detector=forced[1], signature=engines.signature_for(self.device)
            )
        cached = engines.load_cached_choice(self.engine_dir, self.device)
        if cached is not None:
            return cached
        log.info(
            "first use of this model on this machine: timing its inference engines once "
            "(about 30-60 s; cached in %s)",
            self.engine_dir,
        )
        return self.measure_engines(lazy=True)

    def measure_engines(
        self, candidates: tuple[str, ...] = engines.AUTO_CANDIDATES, save: bool = True, lazy: bool = False
    ) -> engines.EngineChoice:
        """Time every candidate on the probe set, keep the fastest that agrees with fp32 for each
        network, and (``save``) cache the choice for this machine. ``lazy`` (a first use) checks
        agreement only until the fastest agreeing engine is found; otherwise every engine is
        checked, for the full table of ``personsearch bench-engines``."""
        _, crops = engine_choice.probe_set(tuple(self.reid_config.input_size))
        device = str(self.device)
        measurements = engine_choice.measure_reid(
            self.reid_engine, candidates, normalize_crops(crops[:CHECK_CROPS]), device, lazy
        )
        if self.external_detector is None:
            measurements += engine_choice.measure_detector(
                self.detector_engine, candidates, engine_choice.check_scenes(), device, lazy
            )
        choice = engines.EngineChoice(
            reid=engine_choice.pick(measurements, "reid"),
            detector=engine_choice.pick(measurements, "detector"),
            measurements=measurements,
            signature=engines.signature_for(self.device),
        )
        if save:
            engines.save_choice(self.engine_dir, choice)
        return choice

    @torch.no_grad()
    def detect(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Person boxes of each HxWx3 uint8 image: (n, 5) float32 ``[x1, y1, x2, y2, score]``."""
        if self.external_detector is not None:
            return self.external_detector.detect(images)
        return engines.as_detections(self._detect(image_tensors(images)))

    @torch.no_grad()
    def embed(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """L2-normalised re-id features (n, D) of the xyxy ``boxes`` in one image."""
        crops = crop_boxes(
            image, np.asarray(boxes, dtype=np.float32)[:, :4], tuple(self.reid_config.input_size)
        )
        return self.embed_crops(crops)

    @torch.no_grad()
    def embed_crops(self, crops: torch.Tensor) -> np.ndarray:
        """Features of uint8 crops (n, 3, H, W) already at the re-id input size."""
        out = np.zeros((len(crops), self.feature_dim), dtype=np.float32)
        for start in range(0, len(crops), self.batch_size):
            feats = self._reid(normalize_crops(crops[start : start + self.batch_size]))
            out[start : start + len(feats)] = torch.nn.functional.normalize(feats.float(), dim=1).numpy()
        return out
