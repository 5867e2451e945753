"""docs/scaling.md's figure tables."""

from __future__ import annotations

import re
from typing import Any

from figure_tables import Rows, Source, num, pct, table

DOC = "docs/scaling.md"
DISTRIBUTED = Source("distributed_indexing.json", "python benchmarks/distributed_indexing.py")
SEARCH_10M = Source(
    "search_latency_10m.json",
    "python benchmarks/search_latency.py --sizes 10000000 --kinds ivfpq --rerank 100,200,400 --nprobe "
    "64,128,256,512 --data data/synthetic-small-seed7 (its search_latency.json, renamed)",
)
SEARCH_1M = Source(
    "search_latency.json",
    "python benchmarks/search_latency.py --nprobe 16,32,64,128,256 --data data/synthetic-small-seed7",
)

NODE_CORES = 16
"""Cores per node in the projection (the cluster commands in the document start 16 CPUs a node)."""
PROJECTED_NODES = (1, 10, 50)
DEFAULT_RERANK = 200
"""``personsearch.index.ann.RERANK_MIN``: the default re-rank count (k = 10)."""


def _default_nprobe(nlist: int) -> int:
    """``personsearch.index.ann``'s default probe count for ``nlist`` lists."""
    return min(nlist, max(64, nlist // 12))


@table("scaling-distributed", DOC, DISTRIBUTED)
def distributed(results: dict[str, Any]) -> Rows:
    rows = [
        [
            "run",
            "scene images/s",
            "vs single process",
            "images timed",
            "boxes added",
            "seconds",
            "driver commit s (share)",
            "commit ms/image",
            "index equal",
        ]
    ]
    for run in results["runs"]:
        equal = run.get("equal_to_single_process")
        if run["workers"] == 0:
            label = "single process (2 threads; first 4 scenes indexed before the clock as warm-up)"
            same = "reference"
        else:
            label = f"{run['mode']} (1 CPU each)"
            same = (
                "yes" if equal["same_boxes"] else "**no**"
            ) + f" (min feature cosine {equal['min_feature_cosine']:.7f})"
        rows.append(
            [
                label,
                num(run["images_per_s"], 2),
                f"{run['ratio_to_single_process']:.2f}x",
                str(run["frames_processed"]),
                str(run["people_added"]),
                num(run["seconds"], 1),
                f"{run['commit_seconds']:.2f} ({pct(run['commit_share'])} %)",
                num(run["commit_ms_per_image"], 2),
                same,
            ]
        )
    return rows


@table("scaling-projection", DOC, DISTRIBUTED)
def projection(results: dict[str, Any]) -> Rows:
    """Arithmetic on the measured run, not a measurement: actors at the 1-actor rate per core, and
    the driver's commit time per image of the slowest Ray run."""
    ray = [run for run in results["runs"] if run["workers"] > 0]
    per_core = next(run for run in ray if run["workers"] == 1)["images_per_s"]
    commit_ms = max(run["commit_ms_per_image"] for run in ray)
    ceiling = 1000 / commit_ms
    rows = [
        [
            f"nodes x cores (projected, not measured: {per_core:.2f} images/s per actor core, "
            f"{commit_ms:.2f} ms of driver commit per image)",
            "images/s the actors could deliver",
            "driver commit load at that rate",
            "bottleneck",
        ]
    ]
    for nodes in PROJECTED_NODES:
        rate = nodes * NODE_CORES * per_core
        load = rate / ceiling
        bottleneck = "compute" if load < 1 else f"the committer (at most {ceiling:,.0f} images/s)"
        rows.append([f"{nodes} x {NODE_CORES}", f"{rate:,.0f}", f"{pct(load, 0)} %", bottleneck])
    rows.append(
        [
            f"one committer's ceiling: {ceiling / (NODE_CORES * per_core):.0f} x {NODE_CORES}",
            f"{ceiling:,.0f}",
            "100 %",
            "",
        ]
    )
    return rows


def _ivfpq(name: str) -> tuple[int, int, int]:
    """(nlist, re-rank, nprobe) of an IVF-PQ method's name."""
    match = re.fullmatch(r"IVF-PQ nlist=(\d+) PQ\d+ rerank=(\d+) nprobe=(\d+)", name)
    if match is None:
        raise ValueError(f"not an IVF-PQ method: {name!r}")
    nlist, rerank, nprobe = (int(g) for g in match.groups())
    return nlist, rerank, nprobe


@table("scaling-10m", DOC, SEARCH_10M)
def search_10m(results: dict[str, Any]) -> Rows:
    size = max(results["sizes"], key=lambda s: s["rows"])
    methods = size["methods"]
    pq = sorted((_ivfpq(name), m) for name, m in methods.items() if name.startswith("IVF-PQ"))
    nlist = pq[0][0][0]
    measured = sorted({nprobe for (_, _, nprobe), _ in pq})
    nearest = min(measured, key=lambda n: abs(n - _default_nprobe(nlist)))
    exact = methods["numpy exact (one pass for all queries)"]
    filler = size["rows"] - size["real_rows"]
    rows = [
        [
            f"{size['rows'] / 1e6:.0f}M boxes (768-d: {size['real_rows']:,} real features, "
            f"{filler:,} Gaussian filler), vector search only (no SQLite rows, filters or thumbnails)",
            "p50 ms",
            "p95 ms",
            "recall@10",
            "resident while searching, anon + file GB",
        ],
        [
            f"exact reference: numpy, one pass over the file for all {results['settings']['queries']} "
            "queries (time per query)",
            num(exact["p50_ms"], 0),
            "",
            num(exact["recall_at_10"], 3),
            "",
        ],
    ]
    for (_, rerank, nprobe), m in pq:
        label = f"IVF-PQ ({nlist:,} lists, PQ96), re-rank {rerank}, nprobe {nprobe}"
        resident = m["resident_while_searching"]
        cells = [
            num(m["p50_ms"], 1),
            num(m["p95_ms"], 1),
            num(m["recall_at_10"], 3),
            f"{resident['anon_gb']:.2f} + {resident['file_gb']:.2f}",
        ]
        if rerank == DEFAULT_RERANK and nprobe == nearest:
            label += (
                f" (nearest the defaults: re-rank {DEFAULT_RERANK}, "
                f"nprobe {_default_nprobe(nlist)} = lists / 12)"
            )
            label, cells = f"**{label}**", [f"**{c}**" for c in cells]
        rows.append([label, *cells])
    rows.append(
        [
            "peak resident of the whole run (`ru_maxrss`: writing the vector file, "
            "the exact reference pass and the index build in the same process)",
            "",
            "",
            "",
            f"**{size['peak_rss_gb']:.1f} GB**",
        ]
    )
    return rows


@table("scaling-1m", DOC, SEARCH_1M)
def search_1m(results: dict[str, Any]) -> Rows:
    size = next(s for s in results["sizes"] if s["rows"] == 1_000_000)
    methods = size["methods"]

    def joined(prefix: str) -> tuple[str, list[dict[str, Any]]]:
        found = sorted(
            ((m["nprobe"], name, m) for name, m in methods.items() if name.startswith(prefix)),
            key=lambda t: t[0],
        )
        nlist = re.search(r"nlist=(\d+)", found[0][1])
        assert nlist is not None
        return f"{int(nlist.group(1)):,} lists, nprobe " + " / ".join(str(n) for n, _, _ in found), [
            m for _, _, m in found
        ]

    def row(label: str, ms: list[dict[str, Any]]) -> list[str]:
        return [
            label,
            " / ".join(num(m["p50_ms"], 1) for m in ms),
            " / ".join(num(m["p95_ms"], 1) for m in ms),
            " / ".join(num(m["recall_at_10"], 3) for m in ms),
        ]

    flat = methods["exact (faiss IndexFlatIP)"]
    ivf_label, ivf = joined("IVF nlist=")
    pq_label, pq = joined("IVF-PQ ")
    rerank = re.search(r"rerank=(\d+)", next(name for name in methods if name.startswith("IVF-PQ ")))
    assert rerank is not None
    return [
        [
            f"{size['rows'] / 1e6:.0f}M boxes (768-d: {size['real_rows']:,} real features, "
            "the rest Gaussian filler)",
            "p50 ms",
            "p95 ms",
            "recall@10",
        ],
        [
            "exact, faiss flat (in-memory copy, 3 GB)",
            num(flat["p50_ms"], 0),
            num(flat["p95_ms"], 0),
            num(flat["recall_at_10"], 3),
        ],
        row(f"IVF-Flat, {ivf_label}", ivf),
        row(f"IVF-PQ, PQ96, re-rank {rerank.group(1)}, {pq_label}", pq),
    ]


SEARCH_WHOLE = Source("search_whole.json", "python benchmarks/search_whole.py")


@table("scaling-10m-whole", DOC, SEARCH_WHOLE)
def search_whole(results: dict[str, Any]) -> Rows:
    content, build, search = results["content"], results["build"], results["search"]
    identity = search["identity_precision_at_10"]
    gib = sum(build["disk_bytes"].values()) / 2**30
    rows = [
        [
            f"{content['rows'] / 1e6:.0f}M boxes, the whole search (`PersonIndex.search` in a fresh "
            f"read-only process, {search['all']['queries']} queries, top 10)",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "first search of the setting, ms",
            "recall@10 vs exact",
            f"right person in the top 10 ({identity['all']['queries']} queries), search / exact",
        ]
    ]
    settings = {
        "all": "default: one hit per sighting, with its row, thumbnail and sighting strip",
        "all_per_frame": "per frame: every matching box (`per_frame=True`)",
        "filtered": (
            f"filtered ({content['filtered_rows'] / content['rows']:.0%} of rows: 10 of 100 cameras, "
            "first 200 s of each video), one hit per sighting"
        ),
        "filtered_per_frame": "filtered, per frame",
    }
    for key, label in settings.items():
        m, who = search[key], identity[key]
        rows.append(
            [
                label,
                num(m["p50_ms"], 1),
                num(m["p95_ms"], 1),
                num(m["p99_ms"], 1),
                num(m["first_ms"], 0),
                num(m["recall_at_10"], 3),
                f"{100 * who['search']:.1f} % / {100 * who['exact']:.1f} %",
            ]
        )
    blank = ["", "", "", "", "", ""]
    rows += [
        [
            "first search after opening (reads the row table from SQLite and the IVF-PQ from disk): "
            f"{search['first_query_s']:.1f} s",
            *blank,
        ],
        [f"**peak resident memory of the search process: {search['peak_resident_gb']:.2f} GB**", *blank],
        [
            f"build: rows, thumbnails and sightings {build['rows_s'] / 60:.0f} min, IVF-PQ "
            f"{build['ivfpq_s'] / 60:.0f} min; {gib:.1f} GB on disk",
            *blank,
        ],
    ]
    return rows
