"""Training configurations: dataclasses that read from and write to YAML.

Both networks' configs have one shape, as SeqNet's has:

    model:  {...}   # the network's switches, stored in the bundle (DetectorConfig / ReIDConfig)
    data:   {...}   # dataset root and augmentation
    optim:  {...}   # SGD, warm-up, step decay
    epochs: 10      # and the run: batch_size, seed, fast, device, checkpoint_every

Every setting a user may change is a typed field with the paper's default, so a YAML file in
``configs/`` names only what differs, a typo is an error instead of a silent default, and every
setting is reachable from the command line (``--set model.variant=multi``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

from personsearch.config import from_dict, to_dict
from personsearch.models.backbones import STAGES
from personsearch.models.detector import DetectorConfig
from personsearch.models.reid import ReIDConfig

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")

__all__ = [
    "DataConfig",
    "DetectorTrainConfig",
    "GuideConfig",
    "OptimConfig",
    "ReIDDataConfig",
    "ReIDTrainConfig",
    "from_dict",
    "load_config",
    "parse_overrides",
    "save_config",
    "to_dict",
]


@dataclass
class OptimConfig:
    """SGD with warm-up then step decay (docs/specs/clsa.md section 2)."""

    lr: float = 0.01
    """Learning rate of new layers."""
    backbone_lr: float = 0.001
    """Learning rate of pre-trained backbone layers."""
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_steps: int = 100
    milestones: tuple[float, ...] = (0.7, 0.9)
    """Fractions of the total steps at which the learning rate is divided by 10."""
    full_rate_steps: int | None = None
    """A run of more steps than this trains at its rates times ``full_rate_steps / steps``, so
    that however long a budget lets it run it changes the weights about as much; None: every run
    at its rates. For fine-tuning on noisy labels (``adapt``'s pseudo-labels): the rate that a
    short run needs makes a long one overfit them."""


@dataclass
class DataConfig:
    """Where the training scenes come from."""

    dataset: str = ""
    """Dataset root: CUHK-SYSU, PRW or a synthetic benchmark (the loader tells them apart); for
    re-id training also a crop folder in the Market-1501 layout (rendered people)."""
    flip: bool = True
    """Random horizontal flips."""


@dataclass
class ReIDDataConfig(DataConfig):
    """The training crops and their augmentation (docs/specs/clsa.md section 2)."""

    pad: int = 10
    """Pad-and-random-crop margin in pixels."""
    downscale_prob: float = 0.5
    """Probability of the random down- then up-scaling that simulates small people."""
    min_downscale: float = 0.125
    """Smallest down-scaling factor."""
    colour_jitter: float = 0.0
    """Style randomisation (``data.crops.CropAugment``): brightness, contrast and saturation
    by up to 1 +- this, hue by up to half of it; 0 keeps the CLSA recipe."""
    grayscale_prob: float = 0.0
    """Probability of dropping a crop's colour."""
    erase_prob: float = 0.0
    """Probability of random erasing."""
    ids_per_batch: int = 0
    """Identity-balanced sampling: this many identities per batch (0 = plain shuffling)."""
    mix: tuple[str, ...] = ()
    """More training sets whose identities join ``dataset``'s, e.g. rendered people with a
    synthetic benchmark; people of different sets are never one identity."""
    max_identities: int = 0
    """Use only the first N identities of each set (0: all): on a CPU's budget, more passes
    over fewer people learn faster."""
    mix_share: float = 0.0
    """With ``mix`` and ``ids_per_batch``: the share of each batch's identities taken from the
    ``mix`` sets (0: as many as their identities' share of all); e.g. to keep a large rendered
    set from drowning the people of a benchmark that must hold."""


@dataclass
class GuideConfig:
    """A frozen ImageNet network guiding the re-id network's relations (training/guide.py)."""

    weight: float = 0.0
    """The guide term's weight beside the re-id losses; 0 = no guide (the paper's training)."""
    temperature: float = 0.1
    """Softmax temperature over cosine similarities, the same for teacher and student."""
    teacher: str = "mobilenet_v2"
    """The teacher: this backbone architecture with its ImageNet weights (models/weights.py)."""


@dataclass
class TrunkConfig:
    """The backbone's lowest stages kept as the starting network has them, and their outputs
    cached (training/trunk.py): a fine-tune that passes each crop many times (a camera's few
    hundred tracklet crops) stops paying the costliest, full-resolution stages at every step."""

    frozen: tuple[str, ...] = ()
    """Backbone stages from ``stem`` up (e.g. ``stem,layer1``), below the lowest pyramid level;
    () = every stage trains (the paper's training)."""
    views: int = 4
    """Augmented views of each crop whose frozen-stage outputs are kept; each batch draws one per
    crop, so the augmentation keeps its distribution with this many samples of it per crop."""
    cache_mb: int = 2048
    """Memory for kept views; beyond it, views are computed for their batch and dropped."""

    def __post_init__(self) -> None:
        if isinstance(self.frozen, str):  # --set trunk.frozen=stem,layer1
            self.frozen = tuple(s.strip() for s in self.frozen.split(",") if s.strip())
        self.frozen = tuple(self.frozen)
        if self.frozen != STAGES[: len(self.frozen)] or self.views < 1 or self.cache_mb < 0:
            raise ValueError(
                f"TrunkConfig: frozen={self.frozen} must be the lowest stages in order (stem, layer1, ...), "
                f"views={self.views} >= 1, cache_mb={self.cache_mb} >= 0"
            )


@dataclass
class ReIDTrainConfig:
    """Everything ``personsearch train-reid`` needs, in the shape every training config has:
    ``model`` (the network, as stored in the bundle), ``data``, ``optim``, and the run."""

    model: ReIDConfig = field(default_factory=ReIDConfig)
    """Every re-id switch (models/reid.py); ``num_classes`` comes from the training data."""
    data: ReIDDataConfig = field(default_factory=ReIDDataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    guide: GuideConfig = field(default_factory=GuideConfig)
    trunk: TrunkConfig = field(default_factory=TrunkConfig)
    epochs: int = 10
    batch_size: int = 64
    seed: int = 0
    fast: bool = True
    """bf16 autocast + channels_last on CPU (where bf16 is native), AMP on CUDA."""
    device: str = "auto"
    checkpoint_every: int = 200
    """Steps between resumable checkpoints (one is always written at the end of each epoch)."""


@dataclass
class DetectorTrainConfig:
    """Everything ``personsearch train-detector`` needs, in the same shape as ``ReIDTrainConfig``."""

    model: DetectorConfig = field(
        default_factory=lambda: DetectorConfig(
            rpn_pre_nms_top_n=(2000, 1000), rpn_post_nms_top_n=(512, 300), head_stride=2
        )
    )
    """Every detector switch (models/detector.py). The training default keeps fewer RPN
    proposals and runs the box head at the backbone's stride: 3x cheaper on a CPU."""
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(
        default_factory=lambda: OptimConfig(lr=0.01, backbone_lr=0.01, weight_decay=1e-4)
    )
    epochs: int = 6
    batch_size: int = 2
    seed: int = 0
    fast: bool = False
    """bf16 autocast (in channels_last where bf16 is native, ``training.detector.channels_last_pays``)
    speeds the MobileNetV2 detector's training step up 1.21x at most over fp32 (an Intel Xeon with
    AMX; no gain measured on a Zen 5 before channels_last), so it is off; the ResNet-50 recipes turn it on
    (2.2x over fp32 on that Xeon)."""
    device: str = "auto"
    checkpoint_every: int = 100


def parse_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """Command-line ``--set`` pairs as a nested dict, as SeqNet's ``opts``: a dotted key names a
    setting inside a section (``optim.lr=0.02``, ``model.anchor_sizes=[16,32,64]``); the value is
    read as YAML, so numbers, booleans, lists and strings need no extra quoting."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip() or any(not part for part in key.strip().split(".")):
            raise ValueError(
                f"--set {pair!r}: expected KEY=VALUE with a dotted KEY, e.g. --set optim.lr=0.02"
            )
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError as err:
            raise ValueError(f"--set {pair!r}: the value is not valid YAML ({err})") from err
        *sections, name = key.strip().split(".")
        node = out
        for section in sections:
            node = node.setdefault(section, {})
            if not isinstance(node, dict):
                raise ValueError(f"--set {pair!r}: {section!r} was already set to a value, not a section")
        node[name] = value
    return out


def load_config(
    cls: type[T], path: str | Path | None = None, sets: Sequence[str] = (), **overrides: Any
) -> T:
    """Read a YAML config file (optional), apply non-None ``overrides`` (the named flags), then
    the ``--set`` pairs ``sets``: every setting, nested ones included, is reachable from the
    command line, and an unknown one is an error naming it."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file {path} not found; the shipped configs are in configs/")
        try:
            loaded = yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            raise ValueError(f"{path}: not valid YAML ({err})") from err
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: expected a mapping of settings, found {type(loaded).__name__}")
        data.update(loaded)
    _merge(data, {k: v for k, v in overrides.items() if v is not None})
    _merge(data, parse_overrides(sets))
    return from_dict(cls, data, str(path) if path else cls.__name__)


def _merge(base: dict[str, Any], update: dict[str, Any]) -> None:
    """Recursive dict update: nested settings override one key at a time."""
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def save_config(config: Any, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
