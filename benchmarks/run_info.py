"""What every benchmark records beside its figures: the repository root, the commit and the
machine (CPU, memory, library versions, load), so a result can be traced and compared."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def commit() -> str:
    """The repository's HEAD commit (``unknown`` outside a git checkout). ``$PERSONSEARCH_COMMIT``,
    when set, wins: a lent GPU machine runs a copy of the working tree whose ``.git`` can be the
    session's first commit, not the one whose files it holds, so the caller names it."""
    if os.environ.get("PERSONSEARCH_COMMIT"):
        return os.environ["PERSONSEARCH_COMMIT"]
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine(signature: dict[str, Any] | None = None) -> dict[str, Any]:
    """CPU (model, the vector extensions that decide kernel speed, PyTorch's kernel level), core
    count, memory, library versions and the load average: what the figures depend on.
    ``cpu_signature`` is the digest the engine cache and the per-CPU results files are named by
    (of ``signature`` when the caller has already taken it)."""
    import faiss
    import torch

    from personsearch.models.engines import cpu_signature, signature_digest
    from personsearch.models.machine import cpuinfo_field

    signature = signature or cpu_signature()
    try:
        mem_gb: float | None = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (OSError, ValueError):
        mem_gb = None
    return {
        "cpu": signature["cpu"],
        # A virtual machine often names its CPU only "AMD EPYC": the vendor, family and model tell
        # a Zen 4 (family 25, model 17) from a Zen 3 (25, 1) or a Zen 5 (26), whose peaks differ.
        "cpu_vendor": cpuinfo_field("vendor_id"),
        "cpu_family": cpuinfo_field("cpu family"),
        "cpu_model": cpuinfo_field("model"),
        "cpu_mhz": cpuinfo_field("cpu MHz"),
        "cpu_flags": signature["flags"],
        "cpu_capability": signature["torch_capability"],
        "native_bf16": signature["native_bf16"],
        "cpu_signature": signature_digest(signature),
        "cores": os.cpu_count(),
        "memory_gb": mem_gb,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": signature["onnxruntime"],
        "openvino": signature["openvino"],
        "faiss": faiss.__version__,
        "load_average": list(os.getloadavg()),
    }


def write_results(path: Path, results: dict[str, Any], default: Callable[[Any], Any] | None = None) -> Path:
    """Write a benchmark's results as JSON atomically (a temporary file renamed over ``path``), so
    a benchmark killed while writing leaves the previous results whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(results, indent=2, default=default))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def per_cpu_path(benchmark: str, signature: dict[str, Any] | None = None, suffix: str = "") -> Path:
    """``benchmarks/results/<benchmark>-<signature digest><suffix>.json``: where a benchmark whose
    figures hold for one CPU (its ``cpu_signature``, or ``signature``) keeps them."""
    from personsearch.models.engines import cpu_signature, signature_digest

    return RESULTS / f"{benchmark}-{signature_digest(signature or cpu_signature())}{suffix}.json"


def write_per_cpu_results(
    benchmark: str,
    fields: dict[str, Any],
    out: Path | None = None,
    signature: dict[str, Any] | None = None,
    suffix: str = "",
) -> tuple[Path, dict[str, Any]]:
    """Write the results of a benchmark whose figures hold for one CPU: its name, the commit, the
    machine and the CPU signature (``cpu_signature``, or ``signature`` when the benchmark already
    took it), then ``fields``; to ``out``, or by default to
    ``benchmarks/results/<benchmark>-<signature digest><suffix>.json``, one file per CPU, library
    versions and engines revision. Returns the path and the results as written."""
    from personsearch.models.engines import cpu_signature

    signature = signature or cpu_signature()
    results = {
        "benchmark": benchmark,
        "commit": commit(),
        "machine": machine(signature),
        "signature": signature,
        **fields,
    }
    path = out or per_cpu_path(benchmark, signature, suffix)
    return write_results(path, results), results
