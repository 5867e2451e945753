"""k-reciprocal re-ranking (Zhong et al., "Re-ranking Person Re-identification with k-reciprocal
Encoding", CVPR 2017): a search's candidates ranked again by how much their neighbourhoods agree
with the query's.

Why: in footage a person is many boxes (a sighting's frames, other visits). Two boxes of one
person share nearest neighbours, the person's other boxes, even where their own cosine is low
(another pose, light or camera); a look-alike's neighbours are its own person's boxes. The Jaccard
distance between the two neighbourhoods, blended with the cosine distance, ranks by that. It
needs several boxes of a person in the gallery to work with: where the gallery holds each person
in a photo or two, there is little neighbourhood to agree on (docs/real-footage.md has both
measured). Comparing neighbourhoods takes N x N matrices of the candidates, so a search re-ranks
a shortlist of its best ``SHORTLIST`` boxes by cosine, not the whole index; the clustering of
``training/cluster_contrast.py`` uses the same distance between tracklets.
"""

from __future__ import annotations

import numpy as np

K1, K2 = 20, 6
"""Zhong et al.'s neighbourhood size (k1) and query expansion (k2)."""
COSINE_WEIGHT = 0.3
"""Share of the cosine distance (2 - 2 cos) in the re-ranked distance, the rest Jaccard's (lambda)."""
SHORTLIST = 400
"""Boxes, best by cosine, whose neighbourhoods a search compares: several sightings of tens of boxes."""


def neighbourhood_weights(features: np.ndarray, k1: int = K1, k2: int = K2) -> np.ndarray:
    """(N, N) k-reciprocal encoding of L2-normalised ``features``: row i weighs its k1-reciprocal
    neighbours, expanded by their own k1/2-reciprocal neighbours where two thirds of those are
    already in (Zhong et al.'s section 3.3), by ``exp(-distance)``, each row summing to 1; then
    averaged over the ``k2`` nearest rows (query expansion; 1: none). Matrix products over all
    rows at once rather than a loop over them: the same sets as the paper's per-row procedure."""
    n = len(features)
    k1, k2 = min(k1, n - 1), max(1, min(k2, n))
    dist = np.clip(2.0 - 2.0 * (features @ features.T), 0.0, None).astype(np.float32)
    rank = np.argsort(dist, axis=1, kind="stable")

    def reciprocal(k: int) -> np.ndarray:
        """(N, N) bool: j is among i's k + 1 nearest and i among j's. Rows tied with i's
        (k + 1)-th nearest all count, so that the relation is the same whichever order a sort
        puts ties in: a still camera's identical boxes, more of them than a neighbourhood holds,
        are each other's neighbours, rather than the first k + 1 of them by index being a
        neighbourhood and the rest none at all (weights of 0 / 0)."""
        near: np.ndarray = dist <= np.take_along_axis(dist, rank[:, k : k + 1], axis=1)
        np.fill_diagonal(near, True)  # each row its own nearest, float rounding or not
        both: np.ndarray = near & near.T
        return both

    mutual = reciprocal(k1).astype(np.float32)
    theirs = reciprocal(max(1, round(k1 / 2))).astype(np.float32)
    shared = theirs @ mutual.T  # [c, i]: how many of c's half-neighbourhood are i's neighbours
    joins = (mutual > 0) & (2 / 3 * theirs.sum(axis=1)[None, :] < shared.T)  # [i, c]
    members = (mutual > 0) | ((joins.astype(np.float32) @ theirs) > 0)
    weights = np.where(members, np.exp(-dist), 0.0).astype(np.float32)
    weights /= weights.sum(axis=1, keepdims=True)
    if k2 > 1:
        weights = weights[rank[:, :k2]].mean(axis=1)
    return weights


def jaccard_distance(features: np.ndarray, k1: int = K1, k2: int = K2) -> np.ndarray:
    """(N, N) k-reciprocal Jaccard distance of L2-normalised ``features`` (0: identical
    neighbourhoods, 1: disjoint). ``k1``: neighbourhood size; ``k2``: query expansion over that
    many nearest neighbours (1: none)."""
    n = len(features)
    if n == 0:
        return np.zeros((0, 0), np.float32)
    weights = neighbourhood_weights(features, k1, k2)
    # sum_l min(V_il, V_jl) for every pair, through the columns each row uses
    overlap = np.zeros((n, n), np.float32)
    for col in range(n):
        rows = np.flatnonzero(weights[:, col])
        if len(rows):
            v = weights[rows, col]
            overlap[np.ix_(rows, rows)] += np.minimum(v[:, None], v[None, :])
    return np.clip(1.0 - overlap / (2.0 - overlap), 0.0, 1.0)


def reranked_similarity(
    query: np.ndarray, gallery: np.ndarray, k1: int = K1, k2: int = K2, cosine_weight: float = COSINE_WEIGHT
) -> np.ndarray:
    """(M,) similarity of each of the L2-normalised ``gallery`` rows to ``query`` after re-ranking:
    ``1 - d / 2`` with ``d = (1 - cosine_weight) * Jaccard + cosine_weight * (2 - 2 cos)``, the
    Jaccard distance taken over the query and these rows alone (a row outside them is no
    neighbour). 1 for a copy of the query; below the cosine where neighbourhoods disagree."""
    gallery = np.asarray(gallery, dtype=np.float32).reshape(-1, len(query))
    if len(gallery) == 0:
        return np.zeros(0, np.float32)
    features = np.concatenate([np.asarray(query, dtype=np.float32)[None], gallery])
    weights = neighbourhood_weights(features, k1, k2)
    overlap = np.minimum(weights[:1], weights[1:]).sum(axis=1)  # the query's row of Jaccard's sum
    jaccard: np.ndarray = np.clip(1.0 - overlap / (2.0 - overlap), 0.0, 1.0)
    cosine: np.ndarray = np.clip(2.0 - 2.0 * (gallery @ features[0]), 0.0, None)
    distance = (1.0 - cosine_weight) * jaccard + cosine_weight * cosine
    return np.asarray(1.0 - distance / 2.0, dtype=np.float32)


def outside_similarity(cosine: np.ndarray, cosine_weight: float = COSINE_WEIGHT) -> np.ndarray:
    """``reranked_similarity`` of rows that were not among the compared ones: no shared neighbours
    (Jaccard 1), so they rank below on their cosine alone."""
    distance = (1.0 - cosine_weight) + cosine_weight * np.clip(2.0 - 2.0 * np.asarray(cosine), 0.0, None)
    return (1.0 - distance / 2.0).astype(np.float32)


def reranked_scores(query: np.ndarray, gallery: np.ndarray, shortlist: int = SHORTLIST) -> np.ndarray:
    """(M,) similarity of every gallery row as a search re-ranks them: the ``shortlist`` rows most
    similar by cosine by ``reranked_similarity``, the rest by ``outside_similarity`` (so never
    above a compared row) -- for protocols that hold the whole gallery."""
    query = np.asarray(query, dtype=np.float32)
    gallery = np.asarray(gallery, dtype=np.float32).reshape(-1, len(query))
    cosine = gallery @ query
    near = np.argsort(-cosine, kind="stable")[:shortlist]
    score = outside_similarity(cosine)
    score[near] = reranked_similarity(query, gallery[near])
    return score
