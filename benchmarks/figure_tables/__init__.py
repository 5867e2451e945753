"""The registry of the documents' figure tables (``benchmarks/doc_tables.py`` writes them): each table
is a function from its results files' JSON to rows of cells, registered with the document that
holds it and the command that writes its files. One module per document; importing this package
registers them all."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Rows = list[list[str]]
"""A table: the header row, then the body rows, each a list of cells (markdown)."""


@dataclass(frozen=True)
class Source:
    """A results file a table reads and the command that writes it (for files older than the
    ``command`` field of ``run_info.write_results``; a file's own ``command`` wins)."""

    file: str
    """Name under ``benchmarks/results``."""
    command: str


@dataclass(frozen=True)
class Table:
    name: str
    doc: str
    """The document holding it, relative to the repository root."""
    sources: tuple[Source, ...]
    rows: Callable[..., Rows]
    """Called with each source's parsed JSON, in ``sources`` order."""


TABLES: dict[str, Table] = {}


def table(name: str, doc: str, *sources: Source) -> Callable[[Callable[..., Rows]], Callable[..., Rows]]:
    """Register a table function: ``@table("readme-sightings", "README.md", Source(...))``."""

    def register(fn: Callable[..., Rows]) -> Callable[..., Rows]:
        if name in TABLES:
            raise ValueError(f"table {name!r} is registered twice")
        TABLES[name] = Table(name, doc, sources, fn)
        return fn

    return register


# --- how cells are written ------------------------------------------------------------------


def num(value: float, digits: int = 1) -> str:
    return f"{value:.{digits}f}"


def pct(share: float, digits: int = 1) -> str:
    """A share in [0, 1] as a percentage."""
    return f"{100 * share:.{digits}f}"


def cpu_label(machine: dict[str, Any] | None) -> str:
    """The CPU as far as the file proves it: vendor family and model name the microarchitecture
    (a virtual machine often calls every AMD server CPU "AMD EPYC"); files older than those
    fields name the vector level only."""
    if not machine:
        return "CPU not recorded"
    name = str(machine.get("cpu") or "CPU")
    cores = machine.get("cores")
    family, model = machine.get("cpu_family"), machine.get("cpu_model")
    flags = machine.get("cpu_flags")
    if family is not None and model is not None:
        arch = microarchitecture(machine)
        what = f"{arch}, family {family} model {model}" if arch else f"family {family} model {model}"
    elif flags is not None and "AMD" in name and "avx512_bf16" in flags and "avx_vnni" not in flags:
        what = "Zen 4 by its flags (AVX-512 BF16 without AVX-VNNI)"
    else:
        level = machine.get("cpu_capability")
        what = f"{level}, family and model not recorded" if level else "family and model not recorded"
    return f"{name} ({what}), {cores} cores" if cores else f"{name} ({what})"


def microarchitecture(machine: dict[str, Any]) -> str:
    """The microarchitecture a results file's vendor, family and model name ("Zen 4"); "" when
    they are not recorded or not known here."""
    family, model = machine.get("cpu_family"), machine.get("cpu_model")
    if family is None or model is None:
        return ""
    return _microarchitecture(str(machine.get("cpu_vendor")), int(family), int(model))


def _microarchitecture(vendor: str, family: int, model: int) -> str:
    if vendor == "AuthenticAMD":
        if family == 26:
            return "Zen 5"
        if family == 25:
            return "Zen 4" if 0x10 <= model <= 0x1F or 0x60 <= model <= 0x7F or model >= 0xA0 else "Zen 3"
        if family == 23:
            return "Zen 2" if model >= 0x30 else "Zen / Zen+"
    if vendor == "GenuineIntel" and family == 6:
        return INTEL_SERVER_MODELS.get(model, "")
    return ""


INTEL_SERVER_MODELS = {
    0x55: "Skylake / Cascade Lake",
    0x6A: "Ice Lake",
    0x8F: "Sapphire Rapids",
    0xCF: "Emerald Rapids",
    0xAD: "Granite Rapids",
}
"""Family 6 Xeon models by Intel's model number: the ones a cloud machine is likely to be."""


def short_cpu(machine: dict[str, Any]) -> str:
    """The CPU in a few words, claiming no more than ``cpu_label`` does: the
    microarchitecture where family and model name it, and the vector level that decides kernel speed."""
    name = str(machine.get("cpu", "CPU"))
    base = "Intel Xeon" if "Xeon" in name else "AMD EPYC" if "EPYC" in name else name
    zen = re.search(r"\bZen \d\b", cpu_label(machine))
    arch = zen.group(0) if zen else microarchitecture(machine)
    if arch:
        base = f"{base} {arch}"
    flags = machine.get("cpu_flags") or []
    if "amx_bf16" in flags:
        vector = "AMX"
    elif "avx512_bf16" in flags:
        vector = "AVX-512 BF16"
    elif machine.get("cpu_capability") == "AVX2":
        vector = "AVX2 only"
    else:
        vector = str(machine.get("cpu_capability", ""))
    return f"{base}, {vector}" if vector else base


from figure_tables import (  # noqa: E402,F401  (each module registers its document's tables)
    architecture,
    performance,
    performance_log,
    readme,
    real_footage,
    rendered_people,
    results,
    scaling,
    web,
)
