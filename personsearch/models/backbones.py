"""Backbones as named feature stages (timm's ``features_only`` idea, torchvision's networks).

Every backbone is cut into the same five stages, so the detector and the re-id network name
what they use instead of indexing layers:

    stage    ResNet-50                      MobileNetV2                  stride
    stem     conv1, bn1, relu, maxpool      features[0]                  4 / 2
    layer1   layer1 (256 ch)                features[1:4]   (24 ch)      4
    layer2   layer2 (512 ch)                features[4:7]   (32 ch)      8
    layer3   layer3 (1024 ch)               features[7:14]  (96 ch)      16
    layer4   layer4 (2048 ch)               features[14:19] (1280 ch)    32

``layer3`` is where the C4 detector runs its RPN and RoI crop; ``layer2..layer4`` are the
re-id pyramid levels (docs/specs/clsa.md: 512/1024/2048 and 32/96/1280 channels).

``instance_norm`` stages get IBN-Net-a's instance-batch normalisation (Pan et al., ECCV 2018):
the first normalisation of each of their blocks normalises half its channels per image. Instance
statistics remove an image's colour and contrast style, one of the ways drawn or rendered
training people differ from real ones; the other half keeps batch statistics and the content
they carry. IBN-Net-a puts it in every stage but the last.

``mix_style`` stages get MixStyle (Zhou et al., "Domain Generalization with MixStyle", ICLR
2021) after them while the network trains: with probability 1/2 a batch's feature maps swap part
of their per-image channel statistics (mean and standard deviation, the "style") with another
image of the batch, mixed by a Beta(0.1, 0.1) weight, so that the layers above see styles between
those of the training people (drawn, rendered) rather than only theirs. It has no weights and
does nothing at inference, so a network trained with it loads and runs as one trained without.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import torch
from torch import nn
from torchvision.models import mobilenet_v2, resnet50
from torchvision.ops import FrozenBatchNorm2d

from personsearch.models.weights import load_state_dict_file, resolve_weights

logger = logging.getLogger(__name__)

STAGES = ("stem", "layer1", "layer2", "layer3", "layer4")

Pretrained = str | Path | bool | None
"""True: the backbone's registered ImageNet weights; a path: that state-dict file; False: random
initialisation, with a warning (training from scratch); None: random initialisation without a
warning, for a caller that loads trained weights right after."""


@dataclass(frozen=True)
class BackboneArch:
    """How to build one backbone from torchvision and cut it into ``STAGES``."""

    make: Callable[[type[nn.Module]], nn.Module]
    """The torchvision classification network, given its normalisation layer."""
    stages: Callable[[nn.Module], list[nn.Module]]
    """Its modules for ``STAGES``, in order (the classifier is dropped)."""
    strides: tuple[int, ...]
    weights: str | None
    """Key in ``personsearch.models.weights.WEIGHTS``; None when no pretrained file exists."""


def _resnet_stages(net: nn.Module) -> list[nn.Module]:
    # nn.Module.__getattr__ is typed Tensor | Module; these children are all modules
    stem = nn.Sequential(
        OrderedDict(
            conv1=cast(nn.Module, net.conv1),
            bn1=cast(nn.Module, net.bn1),
            relu=cast(nn.Module, net.relu),
            maxpool=cast(nn.Module, net.maxpool),
        )
    )
    return [
        stem,
        cast(nn.Module, net.layer1),
        cast(nn.Module, net.layer2),
        cast(nn.Module, net.layer3),
        cast(nn.Module, net.layer4),
    ]


def _mobilenet_stages(net: nn.Module) -> list[nn.Module]:
    f = cast(nn.Sequential, net.features)
    return [f[0], f[1:4], f[4:7], f[7:14], f[14:19]]


ARCHS: dict[str, BackboneArch] = {
    "resnet50": BackboneArch(
        lambda norm: resnet50(norm_layer=norm), _resnet_stages, (4, 4, 8, 16, 32), "resnet50.imagenet"
    ),
    "mobilenet_v2": BackboneArch(
        lambda norm: mobilenet_v2(norm_layer=norm),
        _mobilenet_stages,
        (2, 4, 8, 16, 32),
        "mobilenet_v2.imagenet",
    ),
    "mobilenet_v2_tiny": BackboneArch(
        lambda norm: mobilenet_v2(width_mult=0.25, norm_layer=norm),
        _mobilenet_stages,
        (2, 4, 8, 16, 32),
        None,
    ),
}
"""``mobilenet_v2_tiny`` (width 0.25, no pretrained weights) exists for fast tests."""


MIX_PROBABILITY = 0.5
MIX_ALPHA = 0.1
"""MixStyle's batch probability and Beta(alpha, alpha) mixing weight: the paper's for re-id."""


def mix_styles(x: torch.Tensor) -> torch.Tensor:
    """MixStyle on feature maps ``x`` (B, C, H, W), drawn from torch's random state: with
    probability ``MIX_PROBABILITY`` each image's per-channel mean and standard deviation are
    replaced by their mix with those of a random other image of the batch (the statistics are
    not differentiated through, as in the paper); otherwise ``x`` unchanged."""
    if len(x) < 2 or float(torch.rand(())) >= MIX_PROBABILITY:
        return x
    mean = x.mean(dim=(2, 3), keepdim=True).detach()
    std = (x.var(dim=(2, 3), keepdim=True) + 1e-6).sqrt().detach()
    weight = torch.distributions.Beta(MIX_ALPHA, MIX_ALPHA).sample((len(x), 1, 1, 1)).to(x)
    other = torch.randperm(len(x), device=x.device)
    mixed_mean = weight * mean + (1 - weight) * mean[other]
    mixed_std = weight * std + (1 - weight) * std[other]
    return (x - mean) / std * mixed_std + mixed_mean


def _out_channels(stage: nn.Module) -> int:
    """Channels a stage emits: those of its last convolution (every stage here ends with one)."""
    return [m for m in stage.modules() if isinstance(m, nn.Conv2d)][-1].out_channels


class FeatureBackbone(nn.Module):
    """Named stages run in order; ``forward`` returns the ``out_stages`` outputs as an OrderedDict.

    Stages listed in ``frozen_stages`` get ``requires_grad=False`` and stay in eval mode when the
    model trains, so neither their weights nor their BatchNorm statistics ever change. Inside
    ``fed_above(stage)``, ``forward`` takes that stage's output instead of an image: a trainer
    that froze the stages up to it runs them once per crop instead of once per step. Outputs
    of ``mix_style`` stages go through ``mix_styles`` in training mode (see the module docstring).
    """

    def __init__(
        self,
        stages: Sequence[tuple[str, nn.Module, int]],
        out_stages: Sequence[str],
        frozen_stages: Sequence[str] = (),
        mix_style: Sequence[str] = (),
    ) -> None:
        super().__init__()
        names = [name for name, _, _ in stages]
        for name, module, _ in stages:
            self.add_module(name, module)
        unknown = sorted((set(out_stages) | set(frozen_stages) | set(mix_style)) - set(names))
        if unknown or not out_stages:
            raise ValueError(
                f"stages {unknown} requested, out_stages {list(out_stages)}; this backbone has stages {names}"
            )
        self.mix_style = tuple(mix_style)
        self.stage_names = names
        self.out_stages = tuple(out_stages)
        self.strides = {name: stride for name, _, stride in stages}
        self.channels = {name: _out_channels(module) for name, module, _ in stages}
        self.frozen_stages: tuple[str, ...] = ()
        self.freeze(frozen_stages)
        self._last = max(names.index(s) for s in self.out_stages)
        self._entry = 0  # the first stage forward runs (fed_above)

    def freeze(self, stages: Sequence[str]) -> None:
        """Freeze ``stages`` too (see the class docstring)."""
        unknown = sorted(set(stages) - set(self.stage_names))
        if unknown:
            raise ValueError(f"cannot freeze stages {unknown}; this backbone has stages {self.stage_names}")
        for name in stages:
            getattr(self, name).requires_grad_(False).eval()
        self.frozen_stages = tuple(dict.fromkeys((*self.frozen_stages, *stages)))

    def run_through(self, x: torch.Tensor, stage: str) -> torch.Tensor:
        """The output of ``stage`` for images ``x`` (every stage from the first up to it)."""
        for name in self.stage_names[: self.stage_names.index(stage) + 1]:
            x = getattr(self, name)(x)
        return x

    @contextmanager
    def fed_above(self, stage: str | None) -> Iterator[None]:
        """Within it ``forward`` takes ``stage``'s output and runs only the stages above it
        (None: images again, as outside). A returned stage may not lie at or below ``stage``."""
        entry = 0 if stage is None else self.stage_names.index(stage) + 1
        skipped = [s for s in self.out_stages if self.stage_names.index(s) < entry]
        if skipped:
            raise ValueError(f"stages {skipped} are returned, so the input cannot come from above {stage!r}")
        before, self._entry = self._entry, entry
        try:
            yield
        finally:
            self._entry = before

    @property
    def out_channels(self) -> dict[str, int]:
        """Channels of each returned stage."""
        return {s: self.channels[s] for s in self.out_stages}

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        out: OrderedDict[str, torch.Tensor] = OrderedDict()
        for name in self.stage_names[self._entry : self._last + 1]:
            x = getattr(self, name)(x)
            if self.training and name in self.mix_style:
                x = mix_styles(x)
            if name in self.out_stages:
                out[name] = x
        return out

    def train(self, mode: bool = True) -> FeatureBackbone:
        super().train(mode)
        for name in self.frozen_stages:
            getattr(self, name).eval()
        return self

    def split(self, at: str) -> tuple[FeatureBackbone, nn.Sequential]:
        """(trunk returning stage ``at``, the later stages as one Sequential): the C4 detector's
        feature extractor and box head. Modules are shared, not copied."""
        if at not in self.stage_names:
            raise ValueError(f"cannot split at {at!r}; stages are {self.stage_names}")
        cut = self.stage_names.index(at) + 1
        for kind, listed in (("frozen", self.frozen_stages), ("mixed in style", self.mix_style)):
            in_head = sorted(set(listed) & set(self.stage_names[cut:]))
            if in_head:
                raise ValueError(f"stages {in_head} are {kind} but would be in the head after {at!r}")
        trunk = FeatureBackbone(
            [(n, getattr(self, n), self.strides[n]) for n in self.stage_names[:cut]],
            (at,),
            self.frozen_stages,
            self.mix_style,
        )
        head = nn.Sequential(OrderedDict((n, getattr(self, n)) for n in self.stage_names[cut:]))
        return trunk, head


class InstanceBatchNorm(nn.Module):
    """IBN-Net's IBN layer: the first half of the channels (``instance_channels``)
    instance-normalised (affine), the rest batch-normalised."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.instance_channels = channels // 2
        self.IN = nn.InstanceNorm2d(self.instance_channels, affine=True)
        self.BN = nn.BatchNorm2d(channels - self.instance_channels)

    @classmethod
    def replacing(cls, bn: nn.BatchNorm2d) -> InstanceBatchNorm:
        """An IBN layer taking over ``bn``'s affine weights (both halves) and its running
        statistics (the batch half): a pretrained network keeps its scale and shift per channel."""
        ibn = cls(bn.num_features)
        h = ibn.instance_channels
        with torch.no_grad():
            cast(torch.Tensor, ibn.IN.weight).copy_(bn.weight[:h])
            cast(torch.Tensor, ibn.IN.bias).copy_(bn.bias[:h])
            ibn.BN.weight.copy_(bn.weight[h:])
            ibn.BN.bias.copy_(bn.bias[h:])
            cast(torch.Tensor, ibn.BN.running_mean).copy_(cast(torch.Tensor, bn.running_mean)[h:])
            cast(torch.Tensor, ibn.BN.running_var).copy_(cast(torch.Tensor, bn.running_var)[h:])
        return ibn.to(bn.weight.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = torch.split(x, [self.instance_channels, x.shape[1] - self.instance_channels], dim=1)
        return torch.cat([self.IN(a), self.BN(b)], dim=1)


def add_instance_norm(backbone: FeatureBackbone, stages: Sequence[str]) -> int:
    """Replace, in place, the first BatchNorm2d of each block of the named stages (Sequentials of
    residual blocks) with an ``InstanceBatchNorm`` that takes over its weights: IBN-a on a built,
    possibly trained, backbone. Returns how many layers were replaced."""
    unknown = sorted(set(stages) - set(backbone.stage_names[1:]))
    if unknown:
        raise ValueError(f"instance_norm stages {unknown}: expected stages of {backbone.stage_names[1:]}")
    replaced = 0
    for stage in stages:
        for block in cast(nn.Module, getattr(backbone, stage)).children():
            first = next((n for n, m in block.named_modules() if type(m) is nn.BatchNorm2d), None)
            if first is None:
                continue
            parent_name, _, attr = first.rpartition(".")
            parent = block.get_submodule(parent_name) if parent_name else block
            bn = cast(nn.BatchNorm2d, block.get_submodule(first))
            setattr(parent, attr, InstanceBatchNorm.replacing(bn))
            replaced += 1
    return replaced


def load_pretrained(net: nn.Module, path: Path, arch: str) -> None:
    """Load an ImageNet state dict into the full torchvision network, every key matched."""
    state = load_state_dict_file(path)
    missing, unexpected = net.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"{path}: not torchvision {arch} weights: {len(missing)} missing keys {missing[:4]}, "
            f"{len(unexpected)} unexpected keys {unexpected[:4]}"
        )


def build_backbone(
    name: str,
    pretrained: Pretrained = True,
    *,
    out_stages: Sequence[str] = ("layer4",),
    frozen_stages: Sequence[str] = (),
    frozen_bn: bool = False,
    instance_norm: Sequence[str] = (),
    mix_style: Sequence[str] = (),
) -> FeatureBackbone:
    """A ``FeatureBackbone`` of architecture ``name`` (see ``ARCHS``), with IBN-a in the
    ``instance_norm`` stages (after the pretrained weights are loaded, which they take over) and
    MixStyle after the ``mix_style`` stages in training.

    ``frozen_bn`` uses torchvision's FrozenBatchNorm2d (detection practice: batches of 1-2
    images are too small for batch statistics); otherwise BatchNorm trains (re-id practice).
    """
    if name not in ARCHS:
        raise ValueError(f"unknown backbone {name!r}; available: {', '.join(sorted(ARCHS))}")
    arch = ARCHS[name]
    net = arch.make(FrozenBatchNorm2d if frozen_bn else nn.BatchNorm2d)
    if pretrained is True:
        if arch.weights is None:
            raise ValueError(
                f"backbone {name!r} has no pretrained weights; pass pretrained=False (or a weights file)"
            )
        load_pretrained(net, resolve_weights(arch.weights), name)
    elif isinstance(pretrained, (str, Path)):
        load_pretrained(net, Path(pretrained).expanduser(), name)
    elif pretrained is False:
        logger.warning(
            "backbone %s: pretrained=False, so it starts from RANDOM weights and trains FROM SCRATCH; "
            "expect far lower accuracy than with ImageNet weights (see `personsearch fetch-weights`)",
            name,
        )
    stages = [
        (stage, module, stride) for stage, module, stride in zip(STAGES, arch.stages(net), arch.strides)
    ]
    if instance_norm and frozen_bn:
        raise ValueError(f"instance_norm={list(instance_norm)} needs trainable BatchNorm, not frozen_bn")
    backbone = FeatureBackbone(stages, out_stages, frozen_stages, mix_style)
    add_instance_norm(backbone, instance_norm)
    return backbone
