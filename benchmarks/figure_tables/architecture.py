"""docs/architecture.md's figure tables."""

from __future__ import annotations

from typing import Any

from figure_tables import Rows, Source, table

PATH = Source("search_path.json", "python benchmarks/search_path.py --record LABEL search ...")


@table("architecture-search-path", "docs/architecture.md", PATH)
def search_path(results: dict[str, Any]) -> Rows:
    rows = [["search", "modules whose code ran", "modules imported", "which ran"]]
    for label, run in results["runs"].items():
        rows.append(
            [
                f"{label}: `{run['command'].removeprefix('python benchmarks/search_path.py ')}`",
                str(len(run["ran"])),
                str(run["imported"]),
                ", ".join(f"`{m}`" for m in run["ran"]),
            ]
        )
    return rows
