"""docs/web.md's figure tables."""

from __future__ import annotations

from typing import Any

from figure_tables import Rows, Source, num, table

LOAD = Source("service_load.json", "python benchmarks/service_load.py")


@table("web-load", "docs/web.md", LOAD)
def load(results: dict[str, Any]) -> Rows:
    reference = results["reference_in_process"]
    rows = [
        [
            f"clients ({results['boxes']:,} boxes, {results['seconds']:.0f} s each)",
            "searches answered",
            "searches/s",
            "p50 ms",
            "p99 ms",
            "p50 / in-process",
            "503 (queue full)",
            "failed",
            "server peak RSS MB",
        ],
        [
            "in-process reference (`PersonIndex.search`, no HTTP)",
            "",
            "",
            num(reference["p50_ms"]),
            num(reference["p99_ms"]),
            "1.0x",
            "",
            "",
            "",
        ],
    ]
    rows += [
        [
            str(level["clients"]),
            f"{level['answered']:,}",
            num(level["per_second"]),
            num(level["p50_ms"]),
            num(level["p99_ms"]),
            f"{level['p50_ms'] / reference['p50_ms']:.1f}x",
            str(level["busy_503"]),
            str(level["failed"]),
            num(level["server_peak_rss_mb"], 0),
        ]
        for level in results["levels"]
    ]
    return rows
