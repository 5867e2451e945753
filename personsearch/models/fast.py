"""The fast inference/training path: channels_last memory layout, mixed precision, BatchNorm folded
into the convolutions, and (opt-in) graph compilation.

On CPU, bf16 autocast uses the AVX-512 BF16 units (about twice the fp32 matmul throughput on the
machines this was measured on) and channels_last lets oneDNN run convolutions without layout
reorders. On CUDA, autocast uses bf16 where the GPU supports it, since the training loop has no
loss scaler, and fp16 otherwise.

For inference, every BatchNorm right after a convolution is folded into that convolution's weights
and bias (exact up to rounding). In eager bf16 an unfolded BatchNorm costs more than its
arithmetic: its fp32 statistics promote the bf16 activations to fp32, so each one adds a multiply,
an add and two dtype copies of the whole feature map (a quarter of the ResNet-50 detector's time).

Compilation (``torch.compile`` with inductor, weights frozen as constants) folds BatchNorm into
the convolutions, fuses the elementwise work and pre-packs the weights; on the 2-core CPU of
docs/performance.md it made bf16 inference 1.5-2.5x faster again. It costs a one-off compile on
the first call of each new input-shape family (tens of seconds; cached on disk by inductor), so it
pays off for indexing many images, not for one query: it is off unless asked for, by argument or
by ``PERSONSEARCH_COMPILE=1``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights
from torchvision.models.detection.generalized_rcnn import GeneralizedRCNN
from torchvision.models.resnet import BasicBlock, Bottleneck
from torchvision.ops import FrozenBatchNorm2d

COMPILE_ENV = "PERSONSEARCH_COMPILE"
"""Set to ``1`` to compile models in ``prepare_for_inference`` (fast path only) by default."""


def compile_requested() -> bool:
    """Whether ``$PERSONSEARCH_COMPILE`` asks for compiled inference."""
    return os.environ.get(COMPILE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def compiled_parts(model: nn.Module) -> list[nn.Module]:
    """The submodules worth compiling: a detector's convolutional trunk and box head (the rest is
    data-dependent box bookkeeping that would only break the graph), or the whole network."""
    if isinstance(model, GeneralizedRCNN):
        return [model.backbone, model.roi_heads.box_head]
    return [model]


def compile_for_inference(model: nn.Module) -> nn.Module:
    """Compile ``model`` in place for inference with frozen weights (returns it).

    Parameters become constants of the compiled graph (inductor ``freezing``, used under
    ``torch.no_grad()``), so the weights must not change afterwards. Module structure and
    ``state_dict`` keys stay as they are. A batch or image size unlike the first one triggers one
    more compile, after which that dimension is treated as dynamic.
    """
    if next(model.parameters(), torch.empty(0)).device.type == "cpu" and not (shutil.which(os.environ.get("CXX", "g++")) or shutil.which("clang++")):
        raise RuntimeError(
            "compiled inference needs a C++ compiler (inductor builds its CPU kernels with it): "
            "install g++ (Debian: apt-get install g++), or unset PERSONSEARCH_COMPILE / pass compiled=False"
        )
    for part in compiled_parts(model):
        part.compile(options={"freezing": True})
    return model


def _conv_bn_pairs(module: nn.Module) -> list[tuple[str, str]]:
    """Names of (convolution, normalisation) children whose output feeds straight into the
    second: neighbours in a Sequential, and ResNet blocks' ``convN`` -> ``bnN``."""
    if isinstance(module, nn.Sequential):
        names = list(module._modules)
        return list(zip(names, names[1:]))
    if isinstance(module, (BasicBlock, Bottleneck)):
        return [(f"conv{i}", f"bn{i}") for i in (1, 2, 3) if hasattr(module, f"conv{i}")]
    return []


def fold_batchnorm(model: nn.Module) -> int:
    """Fold every eval-mode BatchNorm2d / FrozenBatchNorm2d that directly follows a Conv2d into the
    convolution (the BatchNorm becomes ``nn.Identity``), in place; returns how many were folded.

    For inference only: the folded model computes the same function but has other parameters
    (and ``state_dict`` keys), so it must not be trained or saved afterwards."""
    folded = 0
    for module in list(model.modules()):
        for conv_name, bn_name in _conv_bn_pairs(module):
            conv, bn = getattr(module, conv_name), getattr(module, bn_name)
            if not (isinstance(conv, nn.Conv2d) and isinstance(bn, (nn.BatchNorm2d, FrozenBatchNorm2d))):
                continue
            if bn.training or bn.running_mean is None:
                continue  # batch statistics: nothing constant to fold
            weight, bias = fuse_conv_bn_weights(conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias)
            fused = nn.Conv2d(
                conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation, conv.groups,
                bias=True, padding_mode=conv.padding_mode, device=weight.device, dtype=weight.dtype,
            )
            fused.weight, fused.bias = weight, bias
            setattr(module, conv_name, fused)
            setattr(module, bn_name, nn.Identity())
            folded += 1
    return folded


def prepare_for_inference(model: nn.Module, device: str | torch.device, fast: bool = True, compiled: bool | None = None) -> nn.Module:
    """Move ``model`` to ``device`` in eval mode; with ``fast`` also fold BatchNorm into the
    convolutions, switch to channels_last, and compile when ``compiled`` (default:
    ``$PERSONSEARCH_COMPILE``). Returns the model, which is then for inference only."""
    model = model.to(torch.device(device)).eval()
    if fast:
        with torch.no_grad():
            fold_batchnorm(model)
        model = model.to(memory_format=torch.channels_last)
        if compiled if compiled is not None else compile_requested():
            compile_for_inference(model)
    return model


def autocast_dtype(device: str | torch.device) -> torch.dtype:
    """The mixed-precision dtype used on ``device``: bf16, or fp16 on GPUs without bf16."""
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


@contextlib.contextmanager
def autocast_for(device: str | torch.device, enabled: bool = True) -> Iterator[None]:
    """Mixed precision on ``device`` (CPU: bf16; CUDA: bf16 or fp16) when ``enabled``, else a no-op."""
    device = torch.device(device)
    if not enabled or device.type not in ("cpu", "cuda"):
        yield
        return
    with torch.autocast(device.type, dtype=autocast_dtype(device)):
        yield
