"""The hand-labelled vtest.avi re-id benchmark (``benchmarks/vtest_people.py``), which
docs/real-footage.md quotes: sightings are linked only where a link is unambiguous (so one label
holds for every box), and "other visits" leaves the query person's nearby sightings out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def vtest_people(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import vtest_people

    return vtest_people


def test_strict_sightings_link_clear_overlaps_and_break_at_a_crossing_or_a_missed_frame(
    vtest_people: Any,
) -> None:
    stride = vtest_people.STRIDE
    frame_of, boxes = [], []

    def box(frame: int, x: float) -> None:
        frame_of.append(frame)
        boxes.append([x, 100.0, x + 40.0, 200.0])

    for k in range(4):  # two people walking towards each other, far apart at first
        box(k * stride, 100 + 5 * k)
        box(k * stride, 400 - 5 * k)
    box(4 * stride, 120)  # then both overlap one spot: neither link is clear
    box(4 * stride, 125)
    box(6 * stride, 600)  # a third person, seen once
    box(9 * stride, 600)  # and again after missed frames: another sighting
    tracks = sorted(
        (
            sorted(int(i) for i in t)
            for t in vtest_people.strict_sightings(np.asarray(frame_of), np.asarray(boxes))
        ),
        key=lambda t: t[0],
    )
    assert tracks == [[0, 2, 4, 6], [1, 3, 5, 7], [8], [9], [10], [11]]


def test_other_visits_leave_the_query_persons_near_sightings_out_of_its_gallery(vtest_people: Any) -> None:
    gap = vtest_people.GAP
    # sightings: 0 (query, person 0), 1 (person 0 right after: a broken track), 2 (person 0 after
    # the gap), 3 (person 1); one box each, features made so that the broken track ranks first
    spans = np.asarray([[0, 10], [12, 20], [20 + gap + 5, 90 + gap], [0, 50]])
    features = np.asarray([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    pid, sighting, query = np.asarray([0, 0, 0, 1]), np.arange(4), np.asarray([0])
    every, visits = (
        vtest_people.summary(vtest_people.per_query(features, query, pid, sighting, spans, other_visits=v), 1)
        for v in (False, True)
    )
    assert every["top1"] == 100.0  # the broken track is a right hit
    assert visits["top1"] == 0.0  # without it, person 1 outranks the later visit
    assert visits["mAP"] == pytest.approx(50.0)
    assert visits["queries"] == 1.0


def test_labels_naming_a_sighting_twice_or_an_unknown_one_are_refused(vtest_people: Any) -> None:
    found = {"sightings": {"S001": {}, "S002": {}}}
    assert vtest_people.labelled(found, {"people": {"P01": ["S001"], "P02": ["S002"]}}) == {
        "S001": "P01",
        "S002": "P02",
    }
    with pytest.raises(SystemExit, match="both P01 and P02"):
        vtest_people.labelled(found, {"people": {"P01": ["S001"], "P02": ["S001"]}})
    with pytest.raises(SystemExit, match="S003"):
        vtest_people.labelled(found, {"people": {"P01": ["S003"]}})


def test_the_gain_interval_is_paired_by_query(vtest_people: Any) -> None:
    baseline = np.asarray([10.0, 90.0, 50.0, 30.0])
    assert vtest_people.paired_interval(baseline + 5.0, baseline) == pytest.approx([5.0, 5.0])
    low, high = vtest_people.paired_interval(baseline + np.asarray([10.0, -10.0, 10.0, -10.0]), baseline)
    assert low < 0.0 < high  # as many queries lost as won: no gain to claim


def test_a_re_ranked_score_ranks_as_search_rerank_without_the_query_sighting(vtest_people: Any) -> None:
    """``score --rerank``: the look-alike gallery of tests/test_reranking.py, each box its own
    sighting and the query a sighting of its own: by cosine the look-alike comes first, re-ranked
    all ten of the query's person lead; a copy of the query in its own sighting is no hit and no
    neighbour."""
    from tests.test_reranking import _look_alike_gallery

    query, gallery, people = _look_alike_gallery()
    features = np.concatenate([query[None], query[None], gallery])
    pid = np.r_[0, 0, people]
    sighting = np.r_[0, 0, np.arange(1, len(gallery) + 1)]
    spans = np.stack([np.arange(len(gallery) + 1) * 1000, np.arange(len(gallery) + 1) * 1000 + 10], axis=1)
    plain, reranked = (
        vtest_people.summary(
            vtest_people.per_query(
                features, np.asarray([0]), pid, sighting, spans, other_visits=False, rerank=r
            ),
            1,
        )
        for r in (False, True)
    )
    assert plain["top1"] == 0.0 and plain["mAP"] < 95.0
    assert reranked["top1"] == 100.0 and reranked["mAP"] == pytest.approx(100.0)
