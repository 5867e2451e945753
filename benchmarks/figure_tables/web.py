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
            "503 (busy)",
            "503 p99 ms",
            "failed",
            "CPU server / clients (cores)",
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
            "" if level["busy_503"] == 0 else num(level["refusal_p99_ms"]),
            str(level["failed"]),
            f"{level['server_cores_busy']:.2f} / {level['client_cores_busy']:.2f}",
            num(level["server_peak_rss_mb"], 0),
        ]
        for level in results["levels"]
    ]
    return rows


@table("web-overload", "docs/web.md", LOAD)
def overload(results: dict[str, Any]) -> Rows:
    t = results["targets"]
    return [
        ["under overload", "measured", "target", "held"],
        [
            f"searches/s answered at {t['overload_clients']} clients, share of the peak "
            f"({t['peak_clients']} clients)",
            f"{t['rate_share']:.0%}",
            ">= 90 %",
            "yes" if t["rate_share"] >= 0.9 else "no",
        ],
        [
            "p99 of a refusal (503)",
            f"{num(t['refusal_p99_ms'])} ms",
            "<= 20 ms",
            "yes" if t["refusal_p99_ms"] <= 20 else "no",
        ],
        [
            "answered searches' p99, against the peak's",
            f"{t['p99_ratio']:.1f}x",
            "<= 3x",
            "yes" if t["p99_ratio"] <= 3 else "no",
        ],
    ]
