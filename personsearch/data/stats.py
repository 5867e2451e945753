"""Dataset statistics: per-split counts and the person-height distribution.

The counts are the ones papers tabulate (images, boxes, labelled boxes, identities, queries), so
a freshly unpacked benchmark can be checked against docs/specs/benchmarks.md; the height distribution over
``records.HEIGHT_BUCKETS`` shows how multi-scale a dataset is (the point of CLSA).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import numpy as np

from personsearch.data.records import (
    HEIGHT_BUCKETS,
    UNLABELED,
    PersonSearchDataset,
    Query,
    Scene,
    box_heights,
    height_bucket,
)

_COUNTS = ("images", "boxes", "labelled_boxes", "identities", "queries")


def _heights(heights: np.ndarray) -> dict[str, object]:
    buckets = {name: 0 for name, _, _ in HEIGHT_BUCKETS}
    for height in heights.tolist():
        buckets[height_bucket(height)] += 1
    summary: dict[str, float | None] = {"min": None, "median": None, "max": None}
    if heights.size:
        summary = {
            "min": float(heights.min()),
            "median": float(np.median(heights)),
            "max": float(heights.max()),
        }
    return {"buckets": buckets, **summary}


def _split(images: int, boxes: np.ndarray, pids: np.ndarray, queries: int) -> dict[str, object]:
    labelled = pids[pids != UNLABELED]
    return {
        "images": images,
        "boxes": int(len(boxes)),
        "labelled_boxes": int(len(labelled)),
        "identities": int(len(np.unique(labelled))),
        "queries": queries,
        "heights": _heights(box_heights(boxes)),
    }


def _scene_split(scenes: Sequence[Scene]) -> dict[str, object]:
    boxes = np.concatenate([s.boxes for s in scenes]) if scenes else np.zeros((0, 4), np.float32)
    pids = np.concatenate([s.pids for s in scenes]) if scenes else np.zeros(0, np.int64)
    return _split(len(scenes), boxes, pids, 0)


def _query_split(queries: Sequence[Query]) -> dict[str, object]:
    boxes = np.array([q.box for q in queries], dtype=np.float32).reshape(-1, 4)
    pids = np.array([q.pid for q in queries], dtype=np.int64)
    return _split(len({q.name for q in queries}), boxes, pids, len(queries))


def dataset_statistics(ds: PersonSearchDataset) -> dict[str, object]:
    """Counts and height distribution for train, gallery, query and each query subset (JSON-ready).

    Query splits count the distinct query images as ``images`` and the query boxes as ``boxes``.
    """
    splits = {
        "train": _scene_split(ds.train),
        "gallery": _scene_split(ds.gallery),
        "query": _query_split(ds.queries),
    }
    for name, queries in ds.subsets.items():
        splits[f"query ({name})"] = _query_split(queries)
    return {
        "name": ds.name,
        "root": str(ds.root),
        "protocol": ds.protocol,
        "gallery_sizes": ds.gallery_sizes,
        "splits": splits,
    }


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Plain-text table: first column left-aligned, the others right-aligned."""
    widths = [max(len(row[c]) for row in [header, *rows]) for c in range(len(header))]

    def line(row: Sequence[str]) -> str:
        cells = [row[0].ljust(widths[0])] + [cell.rjust(width) for cell, width in zip(row[1:], widths[1:])]
        return "  ".join(cells).rstrip()

    return [line(header), *(line(row) for row in rows)]


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def format_statistics(stats: dict[str, object]) -> str:
    """The ``dataset_statistics`` result as a readable plain-text report (two tables)."""
    splits = cast("dict[str, dict[str, Any]]", stats["splits"])
    sizes = cast("list[int]", stats["gallery_sizes"])
    lines = [f"{stats['name']} ({stats['protocol']} protocol) at {stats['root']}"]
    if sizes:
        lines.append("protocol gallery sizes: " + ", ".join(str(s) for s in sizes))
    lines.append("")
    lines += _table(
        ("split", "images", "boxes", "labelled boxes", "identities", "queries"),
        [(name, *(_number(split[key]) for key in _COUNTS)) for name, split in splits.items()],
    )
    lines += ["", "person height in pixels (boxes per bucket)"]
    bucket_names = [name for name, _, _ in HEIGHT_BUCKETS]
    lines += _table(
        ("split", *bucket_names, "min", "median", "max"),
        [
            (
                name,
                *(_number(split["heights"]["buckets"][b]) for b in bucket_names),
                *(_number(split["heights"][key]) for key in ("min", "median", "max")),
            )
            for name, split in splits.items()
        ],
    )
    return "\n".join(lines)
