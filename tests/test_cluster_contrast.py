"""Clustering tracklets into pseudo-identities, and the memory of proxies learned against."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from personsearch.index.reranking import jaccard_distance
from personsearch.training.adapt import seen_together
from personsearch.training.cluster_contrast import (
    ProxyMemory,
    cluster_tracklets,
    split_cannot_links,
)


def people(n_people: int, per_person: int, noise: float, seed: int = 0, dim: int = 16) -> np.ndarray:
    """``per_person`` noisy unit features around each of ``n_people`` random unit centres."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_people, dim))
    x = np.repeat(centres, per_person, axis=0) + noise * rng.standard_normal((n_people * per_person, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_jaccard_distance_is_small_within_a_person_and_large_between() -> None:
    features = people(4, 5, 0.15)
    d = jaccard_distance(features, k1=6, k2=2)
    same = np.repeat(np.arange(4), 5)[:, None] == np.repeat(np.arange(4), 5)[None, :]
    assert d.shape == (20, 20) and np.allclose(np.diag(d), 0.0, atol=1e-6)
    assert np.allclose(d, d.T, atol=1e-6)
    assert d[same & ~np.eye(20, dtype=bool)].max() < d[~same].min()


def test_tracklets_cluster_by_person_and_two_seen_together_never_share_a_label() -> None:
    features = people(3, 4, 0.1, seed=1)
    spans = [(f"cam{i % 2}.avi", 100 * i, 100 * i + 50) for i in range(12)]  # none together
    labels = cluster_tracklets(features, seen_together(spans), eps=0.6, min_samples=2, k1=5, k2=2)
    assert [len(set(labels[p * 4 : p * 4 + 4].tolist())) for p in range(3)] == [1, 1, 1]
    assert len(set(labels.tolist())) == 3
    # the first two tracklets of person 0 are in one video at the same time: two people
    spans[1] = (spans[0][0], 10, 40)
    labels = cluster_tracklets(features, seen_together(spans), eps=0.6, min_samples=2, k1=5, k2=2)
    assert labels[0] != labels[1]
    assert len(set(labels[:4].tolist())) == 2 and len(set(labels.tolist())) == 4


def test_splitting_keeps_nearest_members_together_and_numbers_labels_densely() -> None:
    features = np.array([[1, 0], [0.99, 0.14], [0.9, 0.43], [0, 1]], np.float32)
    together = np.zeros((4, 4), bool)
    together[0, 1] = together[1, 0] = True
    labels = split_cannot_links(np.array([5, 5, 5, 9]), together, features)
    # 1 is nearest the cluster's mean and starts the first part; 0, seen with 1, starts a
    # second; 2 joins the first part it may; 9's cluster is untouched
    assert labels.tolist() == [1, 0, 0, 2]


def test_the_memory_pulls_features_to_their_proxy_within_their_camera_and_moves_toward_them() -> None:
    # two classes, each seen by two cameras
    features = np.array([[1, 0, 0], [1, 0.1, 0], [0, 1, 0], [0, 1, 0.1]], np.float32)
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    memory = ProxyMemory(features, np.array([0, 0, 1, 1]), ["a", "b", "a", "b"], momentum=0.5)
    assert memory.classes.shape == (2, 3) and memory.proxies.shape == (4, 3)
    crops = torch.tensor([0, 2])
    right = memory.loss(torch.from_numpy(features[[0, 2]]), torch.tensor([0, 1]), crops)
    memory = ProxyMemory(features, np.array([0, 0, 1, 1]), ["a", "b", "a", "b"], momentum=0.5)
    wrong = memory.loss(torch.from_numpy(features[[2, 0]]), torch.tensor([0, 1]), crops)
    assert right["memory"] < wrong["memory"] and right["memory_camera"] < wrong["memory_camera"]
    # the class proxy moved halfway toward the (wrong) feature it was shown
    before = torch.nn.functional.normalize(torch.tensor(features[0] + features[1]), dim=0)
    expected = torch.nn.functional.normalize(0.5 * before + 0.5 * torch.tensor(features[2]), dim=0)
    torch.testing.assert_close(memory.classes[0], expected)
    # gradients reach the features, not the memory
    f = torch.from_numpy(features[[0, 2]]).requires_grad_()
    sum(memory.loss(f, torch.tensor([0, 1]), crops).values()).backward()
    assert f.grad is not None and f.grad.abs().sum() > 0
    # the two terms' weights (the memory ablation's settings) scale each term alone
    weighted = ProxyMemory(
        features,
        np.array([0, 0, 1, 1]),
        ["a", "b", "a", "b"],
        momentum=0.5,
        memory_weight=2.0,
        camera_weight=0.0,
    ).loss(torch.from_numpy(features[[2, 0]]), torch.tensor([0, 1]), crops)
    torch.testing.assert_close(weighted["memory"], 2 * wrong["memory"])
    assert weighted["memory_camera"] == 0
    # proxies from the features of some crops only (a few per tracklet): every crop keeps its
    # class and camera proxy
    some = ProxyMemory(features[[0, 3]], np.array([0, 0, 1, 1]), ["a", "b", "a", "b"], rows=np.array([0, 3]))
    torch.testing.assert_close(some.classes, torch.from_numpy(features[[0, 3]]))
    assert some.proxies.shape == (4, 3) and some.proxy_of_crop.tolist() == [0, 1, 2, 3]


def test_adapting_with_cluster_contrast_clusters_every_round_and_trains_the_memory(tmp_path: Path) -> None:
    """The whole learner through ``adapt``: every round clusters the tracklets (never joining two
    seen at the same time) and trains with the memory's terms, and the result is a usable bundle.
    Whether it learns better is measured by benchmarks/adaptation.py (from ImageNet weights;
    clustering a random network's features, as this tiny start would, is noise: the held-out
    score moved between 0.33 and 0.49 from 0.42 with the thread count)."""
    from test_adapt import adapt_tiny, tiny_start_and_index

    from personsearch.models.bundle import ModelBundle
    from personsearch.training.adapt import AdaptConfig

    start, _ = tiny_start_and_index(tmp_path)
    result = adapt_tiny(tmp_path, start, learner="cluster_contrast", epochs=8, rounds=2)
    assert len(result["rounds"]) == 2 and all(r["classes"] <= result["tracklets"] for r in result["rounds"])
    for round_dir in ("round1", "round2"):  # the memory's terms were trained on, every round
        header = (
            next((tmp_path / "adapted" / "rounds" / round_dir).rglob("metrics.csv"))
            .read_text()
            .splitlines()[0]
        )
        assert "memory" in header.split(",") and "memory_camera" in header.split(","), header
    # the pseudo-identities never join two tracklets seen at the same time
    from personsearch.index import PersonIndex
    from personsearch.training.adapt import find_tracklets

    with PersonIndex.open(tmp_path / "index") as index:
        tracklets = find_tracklets(index, AdaptConfig(min_boxes=6))
    together = seen_together([(t.path, t.frames[0], t.frames[-1]) for t in tracklets])
    for r in result["rounds"]:
        labels = np.array(r["labels"])
        assert len(labels) == len(tracklets) and not (together & (labels[:, None] == labels[None, :])).any()
    ModelBundle(tmp_path / "adapted", engine="torch-fp32")
    assert "tracklets clustered into identities" in (tmp_path / "adapted" / "MODEL_CARD.md").read_text()


def test_an_unknown_learner_is_refused_with_the_choices() -> None:
    import pytest

    from personsearch.training.adapt import AdaptConfig

    with pytest.raises(ValueError, match="association, cluster_contrast"):
        AdaptConfig(learner="kmeans")


def test_a_few_tracklets_are_not_swallowed_by_one_neighbourhood() -> None:
    """Thirty tracklets of ten people: with the literature's k1 = 20 (for tens of thousands of
    crops) every neighbourhood spans most people and the people merge; the default k1 scales
    with the tracklet count and keeps them apart."""
    features = people(10, 3, 0.2, seed=4)
    together = np.zeros((30, 30), bool)
    truth = np.repeat(np.arange(10), 3)

    def pure(labels: np.ndarray) -> int:
        return sum(len(set(truth[labels == c].tolist())) == 1 for c in np.unique(labels))

    default = cluster_tracklets(features, together)
    wide = cluster_tracklets(features, together, k1=20, k2=6)
    assert pure(default) == len(np.unique(default)) == 10  # the ten people, each alone
    assert len(np.unique(wide)) == 1  # everyone one "person"
