"""k-reciprocal re-ranking: a person seen in many boxes outranks a look-alike nearer by cosine, and
a search of an index re-ranks as the plain function over its gallery does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from personsearch.index import ann, reranking
from personsearch.index.ann import VectorSearch
from personsearch.index.person_index import PersonIndex
from personsearch.index.reranking import (
    SHORTLIST,
    outside_similarity,
    reranked_scores,
    reranked_similarity,
)
from personsearch.index.store import IndexStore
from tests.test_index import _store_with_vectors


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def reranked_order(
    query: np.ndarray, gallery: np.ndarray, shortlist: int = SHORTLIST
) -> tuple[np.ndarray, np.ndarray]:
    """Every gallery row, best first by ``reranked_scores``, and its score: the ranking a
    re-ranked search of an index of ``gallery`` must give."""
    score = reranked_scores(query, gallery, shortlist)
    order = np.argsort(-score, kind="stable")
    return order, score[order]


def _look_alike_gallery(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Query person 0 (10 boxes, each moderately like the query), four other people of 25 boxes,
    and one box of person 1 that looks more like the query than any of person 0's."""
    rng = np.random.default_rng(seed)
    dim = 64
    centres = _unit(rng.normal(size=(5, dim)))
    query = _unit(centres[0] + 0.9 * _unit(rng.normal(size=dim)))
    own = _unit(centres[0] + 0.5 * _unit(rng.normal(size=(10, dim))))
    others = [_unit(c + 0.4 * _unit(rng.normal(size=(25, dim)))) for c in centres[1:]]
    others[0][0] = _unit(centres[1] + 1.3 * query)
    pid = np.r_[np.zeros(10, int), np.repeat(np.arange(1, 5), 25)]
    return query, np.concatenate([own, *others]), pid


def test_a_person_in_many_boxes_outranks_a_look_alike_nearer_by_cosine() -> None:
    query, gallery, pid = _look_alike_gallery()
    by_cosine = np.argsort(-(gallery @ query), kind="stable")
    assert pid[by_cosine[0]] == 1  # the look-alike first...
    order, scores = reranked_order(query, gallery)
    assert pid[order[:10]].tolist() == [0] * 10  # ...and after re-ranking all ten of person 0 first
    assert np.all(np.diff(scores) <= 0) and sorted(order.tolist()) == list(range(len(gallery)))
    assert reranked_similarity(query, query[None])[0] == pytest.approx(1.0, abs=1e-6)


def test_a_still_cameras_identical_boxes_re_rank_to_finite_scores_first() -> None:
    """More identical features than a neighbourhood holds (a person standing still before a
    still camera: the same crop frame after frame) tie at distance 0; they are each other's
    neighbours, so the scores are numbers, the copies of the query first, the others after, and
    the copies' Jaccard distance to each other is 0."""
    query, gallery, _ = _look_alike_gallery(seed=2)
    still = np.repeat(query[None], 3 * reranking.K1, axis=0)
    order, scores = reranked_order(query, np.concatenate([gallery, still]))
    assert np.isfinite(scores).all()
    assert set(order[: len(still)].tolist()) == set(range(len(gallery), len(gallery) + len(still)))
    for k2 in (1, reranking.K2):  # without query expansion (cluster contrast's small sets) too
        weights = reranking.neighbourhood_weights(np.concatenate([still, gallery]), k2=k2)
        assert np.isfinite(weights).all() and np.allclose(weights.sum(axis=1), 1.0, atol=1e-5)
        distance = reranking.jaccard_distance(np.concatenate([still, gallery]), k2=k2)
        assert np.isfinite(distance).all()
        assert np.allclose(distance[: len(still), : len(still)], 0.0, atol=1e-6)


def test_rows_beyond_the_shortlist_rank_below_every_compared_row_by_their_cosine() -> None:
    query, gallery, _ = _look_alike_gallery(seed=1)
    order, scores = reranked_order(query, gallery, shortlist=30)
    cosine = gallery @ query
    near = set(np.argsort(-cosine, kind="stable")[:30].tolist())
    assert set(order[:30].tolist()) == near
    np.testing.assert_allclose(scores[30:], outside_similarity(cosine[order[30:]]), rtol=1e-6)
    assert np.all(np.diff(cosine[order[30:]]) <= 0)


def test_an_index_search_re_ranks_as_the_function_over_its_gallery(tmp_path: Path) -> None:
    query, gallery, _ = _look_alike_gallery(seed=2)
    _store_with_vectors(tmp_path / "idx", gallery, ["north", "south"])
    with PersonIndex.open(tmp_path / "idx") as index:
        hits = index.search(query, 12, rerank=True, per_frame=True)
        plain = index.search(query, 12, per_frame=True)
    order, scores = reranked_order(query, gallery)
    assert [h.box_id for h in hits] == order[:12].tolist()
    np.testing.assert_allclose([h.score for h in hits], scores[:12], rtol=1e-5)
    assert [h.box_id for h in plain] != [h.box_id for h in hits]


def test_a_grouped_re_ranked_search_fills_k_groups_beyond_the_shortlist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shortlist holding fewer than k sightings: the next best sightings follow, each once,
    below every re-ranked one."""
    rng = np.random.default_rng(4)
    groups = np.repeat(np.arange(30), 20)  # 30 people x 20 frames
    vectors = _unit(_unit(rng.normal(size=(30, 32)))[groups] + 0.1 * rng.normal(size=(600, 32)))
    _store_with_vectors(tmp_path / "idx", vectors, ["cam"])
    monkeypatch.setattr(ann, "SHORTLIST", 60)  # about 3 people's frames
    assert reranking.SHORTLIST == 400  # the product's own value is untouched
    store = IndexStore.open(tmp_path / "idx")
    try:
        found = VectorSearch(store, persist=False).search(
            vectors[5], 10, len(vectors), groups=groups, rerank=True
        )
    finally:
        store.close()
    assert len(found.ids) == 10 and len(set(groups[found.ids].tolist())) == 10
    assert groups[found.ids[0]] == 0 and np.all(np.diff(found.scores) <= 0)


def test_the_search_protocol_scores_a_re_ranked_search_of_each_gallery() -> None:
    """One detection per gallery image, the look-alike gallery above: by cosine the query's first
    hit is the look-alike; re-ranked (the protocol as ``search --rerank`` ranks) all ten targets
    lead."""
    from personsearch.data.records import GalleryItem, PersonSearchDataset, Query, Scene
    from personsearch.evaluation.search import evaluate_search

    query, gallery, pid = _look_alike_gallery()
    box = np.array([[0, 0, 40, 100]], np.float32)
    root = Path("/nonexistent")
    scenes = [Scene(f"g{i:03d}.jpg", root / f"g{i:03d}.jpg", box, [int(p) + 1], 0) for i, p in enumerate(pid)]
    items = [GalleryItem(s.name, box[0] if p == 0 else None) for s, p in zip(scenes, pid, strict=True)]
    scenes.append(Scene("q.jpg", root / "q.jpg", box, [1], 0))
    the_query = Query("q.jpg", root / "q.jpg", box[0], 1, galleries={len(items): items})
    data = PersonSearchDataset("look-alikes", root, "cuhk", [], scenes, [the_query])
    dets = [np.array([[0, 0, 40, 100, 0.9]], np.float32)] * len(scenes)
    feats = [g[None] for g in gallery] + [query[None]]
    plain = evaluate_search(data, dets, feats, query[None], gallery_size=len(items))
    reranked = evaluate_search(data, dets, feats, query[None], gallery_size=len(items), rerank=True)
    assert plain.topk[1] == 0.0 and reranked.topk[1] == 1.0
    assert reranked.mAP == pytest.approx(1.0) and plain.mAP < 0.95
    assert reranked.settings["rerank"] is True
    with pytest.raises(ValueError, match="choose one"):
        evaluate_search(data, dets, feats, query[None], gallery_size=len(items), rerank=True, cbgm=True)


def test_an_approximate_index_re_ranks_the_same_shortlist_when_it_probes_every_list(tmp_path: Path) -> None:
    """A large index searches approximately (IVF); re-ranking reads the shortlist's exact vectors
    back, so with every list probed it ranks as the exact index does."""
    rng = np.random.default_rng(5)
    groups = np.repeat(np.arange(ann.MIN_IVF_ROWS // 32), 32)  # people of 32 frames each
    centres = _unit(rng.normal(size=(groups.max() + 1, 32)))
    vectors = _unit(centres[groups] + 0.3 * rng.normal(size=(len(groups), 32)) / np.sqrt(32) * 4)
    _store_with_vectors(tmp_path / "idx", vectors, ["cam"])
    with PersonIndex.open(tmp_path / "idx") as index:
        exact = index.search(vectors[100], 10, rerank=True, per_frame=True, approximate=False)
        index.set_approximate(True, kind="ivf")
        nlist = ann.default_nlist(len(vectors))
        approximate = index.search(vectors[100], 10, rerank=True, per_frame=True, nprobe=nlist)
    assert [h.box_id for h in approximate] == [h.box_id for h in exact]
    np.testing.assert_allclose([h.score for h in approximate], [h.score for h in exact], rtol=1e-5)
