"""This machine as personsearch sees it: the device a model runs on, what the CPU computes natively,
and the folder personsearch keeps its files in (weights, saved models, engine files).

Loading a model asks these three questions before anything else, and the answers decide which
engine runs it (``engines.signature_for``) and whether mixed precision pays (``fast.autocast_for``),
so they sit below both.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import torch

CACHE_ENV = "PERSONSEARCH_CACHE"
"""personsearch's own folder (default ``~/.cache/personsearch``): ``weights``, ``models`` (saved
bundles) and ``engines`` (exported files and engine choices, per model) inside it."""


def cache_root() -> Path:
    """personsearch's own folder: ``$PERSONSEARCH_CACHE``, default ``~/.cache/personsearch``."""
    root = os.environ.get(CACHE_ENV)
    return Path(root) if root else Path.home() / ".cache" / "personsearch"


def checked_device(name: str | torch.device) -> torch.device:
    """``name`` as a device of this machine: ``cpu``, or ``cuda`` / ``cuda:N`` where PyTorch sees
    that GPU. Anything else is a ValueError saying what to pass, instead of PyTorch's error from
    deep inside a model's first call (or its list of twenty device types)."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(f"device {str(name)!r}: expected cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device {str(name)!r}: expected cpu, cuda or cuda:N")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(name)!r}: PyTorch sees no CUDA GPU on this machine; use cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(
            f"device {str(name)!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s), "
            f"cuda:0 to cuda:{torch.cuda.device_count() - 1}"
        )
    return device


def native_bf16(device: str | torch.device = "cpu") -> bool:
    """Whether ``device`` computes bf16 natively: a CUDA GPU with bf16, or a CPU whose PyTorch
    kernels run at AVX-512 level on a core with AVX-512 BF16 or AMX. ``ATEN_CPU_CAPABILITY=avx2``
    (PyTorch's own switch) makes this False, which is how an AVX2-only machine is emulated."""
    device = torch.device(device)
    if device.type == "cuda":
        # Not PyTorch's default, which also counts GPUs that can only emulate bf16 (compute
        # capability below 8, before Ampere): those run fp16 autocast, with a GradScaler in training.
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type != "cpu":
        return False
    capability = torch.backends.cpu.get_cpu_capability()
    return capability.startswith("AVX512") and (
        torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    )


def cpuinfo_field(name: str) -> str:
    """The first value of ``name`` in ``/proc/cpuinfo`` ("" where there is none, or no such file).
    Not cached: fields such as ``cpu MHz`` change while a process runs."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return ""
    for line in lines:
        key, sep, value = line.partition(":")
        if sep and key.strip() == name:
            return value.strip()
    return ""


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as the kernel reports them (``/proc/cpuinfo``; empty elsewhere)."""
    return frozenset(cpuinfo_field("flags").split())
