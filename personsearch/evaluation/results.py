"""Typed results of the search and detection protocols, with per-height-bucket breakdowns.

Every result converts to plain JSON types (``to_dict``) and back (``from_dict``), and prints as
a plain-text table (``format_table``; ``table_rows`` gives the same cells for rich tables).
Metrics are fractions in [0, 1]; tables show them as percentages.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from personsearch.data.records import HEIGHT_BUCKETS, height_bucket

TOPK: tuple[int, ...] = (1, 5, 10)
"""The k of the top-k accuracies every search result reports."""


@dataclass
class BucketScore:
    """mAP and top-k over the queries of one height bucket (``None`` when it has none)."""

    n_queries: int
    mAP: float | None
    topk: dict[int, float | None]

    @classmethod
    def over(cls, ap: np.ndarray, hits: dict[int, np.ndarray]) -> BucketScore:
        """Mean AP and top-k of the given per-query values."""
        n = len(ap)
        return cls(
            n_queries=n,
            mAP=float(np.mean(ap)) if n else None,
            topk={k: (float(np.mean(v)) if n else None) for k, v in hits.items()},
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_queries": self.n_queries,
            "mAP": self.mAP,
            "topk": {str(k): v for k, v in self.topk.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BucketScore:
        return cls(int(data["n_queries"]), data["mAP"], {int(k): v for k, v in data["topk"].items()})


@dataclass
class ExcludedQuery:
    """A query left out of the mean, and why (e.g. a PRW pid seen in no other gallery frame)."""

    index: int
    """Position in the evaluated query list."""
    name: str
    pid: int
    reason: str


def query_height_buckets(
    heights: np.ndarray, ap: np.ndarray, hits: dict[int, np.ndarray]
) -> dict[str, BucketScore]:
    """Per-query scores grouped by the query box height (records.HEIGHT_BUCKETS)."""
    names = np.array([height_bucket(float(h)) for h in heights], dtype=object)
    return {
        name: BucketScore.over(ap[names == name], {k: v[names == name] for k, v in hits.items()})
        for name, _, _ in HEIGHT_BUCKETS
    }


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def _format_rows(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
        for r in [header, *rows]
    ]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def _describe(settings: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in settings.items())


@dataclass
class SearchResult:
    """Outcome of a search protocol: overall, per query, and per query / target height bucket.

    ``by_target_height[b]`` re-scores every query counting only its gallery targets whose GT box
    height is in bucket ``b`` (see ``search.evaluate_search``); ``by_query_height[b]`` averages the
    queries whose own box height is in ``b``.
    """

    mAP: float
    topk: dict[int, float]
    n_queries: int
    """Queries in the mean (excluded ones are not)."""
    query_index: np.ndarray
    """(n,) position of each scored query in the evaluated query list."""
    ap: np.ndarray
    """(n,) recall-corrected AP per scored query."""
    hits: dict[int, np.ndarray]
    """k -> (n,) 0/1: whether the query's top-k held a correctly localised target."""
    count_gt: np.ndarray
    """(n,) gallery images holding the query's target."""
    count_tp: np.ndarray
    """(n,) of those, the ones where a kept detection localised the target."""
    query_height: np.ndarray
    """(n,) query box height in pixels."""
    by_query_height: dict[str, BucketScore]
    by_target_height: dict[str, BucketScore]
    excluded: list[ExcludedQuery] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def top1(self) -> np.ndarray:
        """(n,) per-query top-1 hits."""
        return self.hits[1]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only (lists, floats, ints, strings, None)."""
        return {
            "mAP": self.mAP,
            "topk": {str(k): v for k, v in self.topk.items()},
            "n_queries": self.n_queries,
            "per_query": {
                "query_index": self.query_index.tolist(),
                "ap": self.ap.tolist(),
                "hits": {str(k): v.tolist() for k, v in self.hits.items()},
                "count_gt": self.count_gt.tolist(),
                "count_tp": self.count_tp.tolist(),
                "query_height": self.query_height.tolist(),
            },
            "by_query_height": {b: s.to_dict() for b, s in self.by_query_height.items()},
            "by_target_height": {b: s.to_dict() for b, s in self.by_target_height.items()},
            "excluded": [vars(e).copy() for e in self.excluded],
            "settings": dict(self.settings),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchResult:
        """Inverse of ``to_dict``."""
        per = data["per_query"]
        return cls(
            mAP=float(data["mAP"]),
            topk={int(k): float(v) for k, v in data["topk"].items()},
            n_queries=int(data["n_queries"]),
            query_index=np.asarray(per["query_index"], dtype=np.int64),
            ap=np.asarray(per["ap"], dtype=np.float64),
            hits={int(k): np.asarray(v, dtype=np.int64) for k, v in per["hits"].items()},
            count_gt=np.asarray(per["count_gt"], dtype=np.int64),
            count_tp=np.asarray(per["count_tp"], dtype=np.int64),
            query_height=np.asarray(per["query_height"], dtype=np.float64),
            by_query_height={b: BucketScore.from_dict(s) for b, s in data["by_query_height"].items()},
            by_target_height={b: BucketScore.from_dict(s) for b, s in data["by_target_height"].items()},
            excluded=[ExcludedQuery(**e) for e in data["excluded"]],
            settings=dict(data["settings"]),
        )

    def table_rows(self) -> tuple[list[str], list[list[str]]]:
        """Header and rows (overall, then each query-height and target-height bucket)."""
        ks = sorted(self.topk)
        header = ["", "queries", "mAP", *(f"top-{k}" for k in ks)]
        overall = BucketScore(self.n_queries, self.mAP, dict(self.topk))
        labelled = [("all", overall)]
        labelled += [(f"query height {b}", s) for b, s in self.by_query_height.items()]
        labelled += [(f"target height {b}", s) for b, s in self.by_target_height.items()]
        rows = [
            [label, str(s.n_queries), _pct(s.mAP), *(_pct(s.topk.get(k)) for k in ks)]
            for label, s in labelled
        ]
        return header, rows

    def format_table(self) -> str:
        """Readable plain-text table, with the settings above and exclusions below."""
        text = f"Search ({_describe(self.settings)})\n" + _format_rows(*self.table_rows())
        if self.excluded:
            reasons: dict[str, int] = {}
            for e in self.excluded:
                reasons[e.reason] = reasons.get(e.reason, 0) + 1
            text += f"\nExcluded {len(self.excluded)} queries from the mean: " + "; ".join(
                f"{reason} ({n})" for reason, n in reasons.items()
            )
        return text


@dataclass
class BucketRecall:
    """Detection recall over the GT boxes of one height bucket (``None`` when it has none)."""

    count_gt: int
    count_tp: int

    @property
    def recall(self) -> float | None:
        return self.count_tp / self.count_gt if self.count_gt else None


@dataclass
class DetectionResult:
    """Outcome of the detection protocol (docs/specs/benchmarks.md section 3.4)."""

    recall: float
    ap: float | None
    """sklearn average precision times recall (the protocol's correction); ``None`` with
    ``labeled_only``, where matches to unlabelled people would count as false positives."""
    count_gt: int
    count_tp: int
    n_images: int
    """Gallery images scored (with ``labeled_only``, images without labelled people are not)."""
    recall_by_height: dict[str, BucketRecall]
    """Recall of the GT boxes by their height bucket."""
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only."""
        return {
            "recall": self.recall,
            "ap": self.ap,
            "count_gt": self.count_gt,
            "count_tp": self.count_tp,
            "n_images": self.n_images,
            "recall_by_height": {
                b: {"count_gt": r.count_gt, "count_tp": r.count_tp, "recall": r.recall}
                for b, r in self.recall_by_height.items()
            },
            "settings": dict(self.settings),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DetectionResult:
        """Inverse of ``to_dict``."""
        return cls(
            recall=float(data["recall"]),
            ap=None if data["ap"] is None else float(data["ap"]),
            count_gt=int(data["count_gt"]),
            count_tp=int(data["count_tp"]),
            n_images=int(data["n_images"]),
            recall_by_height={
                b: BucketRecall(int(r["count_gt"]), int(r["count_tp"]))
                for b, r in data["recall_by_height"].items()
            },
            settings=dict(data["settings"]),
        )

    def table_rows(self) -> tuple[list[str], list[list[str]]]:
        """Header and rows: overall recall and AP, then recall per GT-height bucket."""
        header = ["", "GT boxes", "recall", "AP"]
        rows = [["all", str(self.count_gt), _pct(self.recall), _pct(self.ap)]]
        rows += [
            [f"height {b}", str(r.count_gt), _pct(r.recall), ""] for b, r in self.recall_by_height.items()
        ]
        return header, rows

    def format_table(self) -> str:
        """Readable plain-text table with the settings above it."""
        return f"Detection ({_describe(self.settings)})\n" + _format_rows(*self.table_rows())
