"""The blind real-footage check's other-visit count (``benchmarks/blind_real_check.py``), which
docs/rendered-people.md quotes: only right hits from a sighting at least ``gap`` frames away from
the query's count, each sighting once per query, out of what any network found."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_other_visits_count_right_hits_from_separate_sightings_pooled_over_networks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    from blind_real_check import other_visits

    def hit(sighting: int, first: int, last: int) -> dict[str, object]:
        return {"frame": first, "box": [0, 0, 1, 1], "sighting": sighting, "sighting_frames": [first, last]}

    query = {"frame": 100, "box": [0, 0, 1, 1], "sighting": 0, "sighting_frames": [90, 120]}
    later, earlier, near, overlapping = hit(1, 200, 260), hit(2, 0, 30), hit(3, 150, 160), hit(4, 110, 300)
    rows = {"A": [later, earlier, near, overlapping] + [hit(9, 500, 510)] * 6, "B": [later] + [near] * 9}
    hits = {"gap": 50, "queries": {"q01": query}, "hits": {"q01": rows}}
    key = {"q01": {"A": "net-a", "B": "net-b"}}
    # A: the later and earlier visits right, the near one (30 frames on) and the overlapping one
    # right but not separate visits, the rest wrong; B: the later visit right, once
    marks = {"q01": {"A": "1111000000", "B": "1000000000"}}
    assert other_visits(hits, key, marks) == {
        "net-a": {"other_visits": 2, "other_visits_pooled": 2},
        "net-b": {"other_visits": 1, "other_visits_pooled": 2},
    }
    # a wrong mark is no visit, and a network that found none still gets its row
    assert other_visits(hits, key, {"q01": {"A": "0000000000", "B": "1000000000"}})["net-a"] == {
        "other_visits": 0,
        "other_visits_pooled": 1,
    }
