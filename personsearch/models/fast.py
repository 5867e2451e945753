"""The fast PyTorch path: channels_last memory layout, mixed precision where the hardware has it,
and (opt-in) graph compilation.

On CPU, bf16 autocast is used only where the CPU computes bf16 natively (AVX-512 BF16 or AMX):
there it has about twice the fp32 matmul throughput. Elsewhere (AVX2-only CPUs: most Intel
consumer parts, AMD before Zen 4) PyTorch emulates bf16 and runs 6-10x *slower* than fp32, so
``autocast_for`` is a no-op there and the fast path is fp32 + channels_last. On CUDA, autocast
uses bf16 where the GPU supports it and fp16 otherwise (training then scales the loss:
``grad_scaler_for``).

Compilation (``torch.compile`` with inductor, weights frozen as constants) folds BatchNorm into
the convolutions, fuses the elementwise work and pre-packs the weights; on a 2-core AVX-512 BF16
CPU it made bf16 inference 1.5-2.5x faster again (docs/performance-log.md, "Earlier figures").
It costs a one-off compile on the first call of each new input-shape family (tens of seconds;
cached on disk by inductor), so it pays off for indexing many images, not for one query: it is
off unless asked for, by argument or by ``PERSONSEARCH_COMPILE=1``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator

import torch
from torch import nn
from torchvision.models.detection.generalized_rcnn import GeneralizedRCNN

from personsearch.models.machine import native_bf16

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


def cpp_compiler() -> str | None:
    """The C++ compiler inductor would build CPU kernels with (``$CXX``, g++ or clang++), if any."""
    return shutil.which(os.environ.get("CXX", "g++")) or shutil.which("clang++")


def compile_for_inference(model: nn.Module) -> nn.Module:
    """Compile ``model`` in place for inference with frozen weights (returns it).

    Parameters become constants of the compiled graph (inductor ``freezing``, used under
    ``torch.no_grad()``), so the weights must not change afterwards. Module structure and
    ``state_dict`` keys stay as they are. A batch or image size unlike the first one triggers one
    more compile, after which that dimension is treated as dynamic.
    """
    if next(model.parameters(), torch.empty(0)).device.type == "cpu" and cpp_compiler() is None:
        raise RuntimeError(
            "compiled inference needs a C++ compiler (inductor builds its CPU kernels with it): "
            "install g++ (Debian: apt-get install g++), or unset PERSONSEARCH_COMPILE / pass compiled=False"
        )
    for part in compiled_parts(model):
        part.compile(options={"freezing": True})
    return model


def prepare_for_inference(
    model: nn.Module, device: str | torch.device, fast: bool = True, compiled: bool | None = None
) -> nn.Module:
    """Move ``model`` to ``device`` in eval mode; with ``fast`` also to channels_last, and compiled
    when ``compiled`` (default: ``$PERSONSEARCH_COMPILE``). Returns the model."""
    model = model.to(torch.device(device)).eval()
    if fast:
        model = model.to(memory_format=torch.channels_last)
        if compiled if compiled is not None else compile_requested():
            compile_for_inference(model)
    return model


def autocast_dtype(device: str | torch.device) -> torch.dtype:
    """The mixed-precision dtype used on ``device``: bf16, or fp16 on GPUs without bf16."""
    device = torch.device(device)
    if device.type == "cuda" and not native_bf16(device):
        return torch.float16
    return torch.bfloat16


@contextlib.contextmanager
def autocast_for(device: str | torch.device, enabled: bool = True) -> Iterator[None]:
    """Mixed precision on ``device`` (CPU: bf16; CUDA: bf16 or fp16) when ``enabled`` and the
    hardware computes it natively (``native_bf16``; CUDA fp16 always), else a no-op."""
    device = torch.device(device)
    if (
        not enabled
        or device.type not in ("cpu", "cuda")
        or (device.type == "cpu" and not native_bf16(device))
    ):
        yield
        return
    with torch.autocast(device.type, dtype=autocast_dtype(device)):
        yield


def grad_scaler_for(device: str | torch.device, enabled: bool = True) -> torch.amp.GradScaler:
    """A loss scaler that is active only for fp16 autocast (CUDA without bf16): fp16 gradients
    underflow without one; bf16 and fp32 need none."""
    device = torch.device(device)
    active = enabled and device.type == "cuda" and autocast_dtype(device) == torch.float16
    return torch.amp.GradScaler(device.type if device.type == "cuda" else "cpu", enabled=active)
