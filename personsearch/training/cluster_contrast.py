"""Pseudo-identities by clustering tracklets, learned against a memory of proxies.

The unsupervised re-id recipe that leads the literature: cluster contrast (Dai et al., "Cluster
Contrast for Unsupervised Person Re-Identification", ACCV 2022) with camera-aware proxies (Wang
et al., "Camera-aware Proxies for Unsupervised Person Re-Identification", AAAI 2021), here over
tracklets instead of single crops, because a tracklet is a free must-link:

1. **Features**: each tracklet's mean test feature under the current network.
2. **Distances**: k-reciprocal Jaccard distances between tracklets (``index/reranking.py``, the
   distance a search re-ranks by): two tracklets are close when their neighbourhoods agree,
   which is far more robust than one cosine.
3. **Clusters**: DBSCAN on those distances; a cluster is one pseudo-identity, a tracklet in no
   cluster is its own. Cannot-links: two tracklets seen at the same time in one video are two
   people, so a cluster holding both is split (``split_cannot_links``).
4. **Memory**: a proxy per pseudo-identity and one per (pseudo-identity, camera), initialised
   from the features and moved toward each batch's features (momentum). The loss pulls a crop's
   feature to its identity's proxy against the other identities' (ClusterNCE), and to its
   identity's proxy in its own camera against the other identities' proxies in that camera
   (intra-camera: what a camera's light and angle change, the other camera's proxies do not
   see). It is added to the CLSA losses of ``train_reid``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from sklearn.cluster import DBSCAN
from torch.nn import functional as F

from personsearch.index.reranking import jaccard_distance


def split_cannot_links(labels: np.ndarray, together: np.ndarray, features: np.ndarray) -> np.ndarray:
    """``labels`` with every cluster that holds two tracklets seen at the same time (``together``,
    (N, N) bool) split: members, nearest the cluster's mean first, join the first part holding
    nothing they were seen with, or start a new one. Labels are renumbered 0..K-1."""
    out = np.empty_like(labels)
    next_label = 0
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        centre = features[members].mean(axis=0)
        parts: list[list[int]] = []
        for m in members[np.argsort(-(features[members] @ centre), kind="stable")].tolist():
            for part in parts:
                if not together[m, part].any():
                    part.append(m)
                    break
            else:
                parts.append([m])
        for part in parts:
            out[part] = next_label
            next_label += 1
    return out


def neighbourhood_size(tracklets: int) -> int:
    """k1 of the Jaccard distance for this many tracklets: a tenth of them, from 4 to 20. The
    literature's 20-30 is for tens of thousands of crops; over a few dozen tracklets (a person
    has a handful) a neighbourhood of 20 spans most people, every distance shrinks and DBSCAN
    makes one cluster (seen on synthetic walks: 33 tracklets of 8 people, k1 = 20, one cluster,
    which the cannot-links then cut into 8 classes of mixed people; k1 = 4: 20 classes, 19 of
    them one person's)."""
    return min(20, max(4, tracklets // 10))


def cluster_tracklets(
    features: np.ndarray,
    together: np.ndarray,
    eps: float = 0.6,
    min_samples: int = 2,
    k1: int | None = None,
    k2: int | None = None,
) -> np.ndarray:
    """Pseudo-identity of every tracklet: DBSCAN over k-reciprocal Jaccard distances of the
    tracklets' mean features, each unclustered tracklet its own identity, cannot-links split.
    ``k1`` defaults to ``neighbourhood_size``, ``k2`` (query expansion) to a third of it."""
    if len(features) < 2:
        return np.zeros(len(features), np.int64)
    k1 = neighbourhood_size(len(features)) if k1 is None else k1
    k2 = max(1, k1 // 3) if k2 is None else k2
    distance = jaccard_distance(features, k1, k2)
    raw = DBSCAN(eps=eps, min_samples=min_samples, metric="precomputed").fit_predict(distance)
    alone = raw < 0
    raw[alone] = raw.max() + 1 + np.arange(int(alone.sum()))
    return split_cannot_links(raw, together, features).astype(np.int64)


class ProxyMemory:
    """One proxy per class and one per (class, camera), L2-normalised, moved toward the features
    of each batch by ``momentum`` (the share of the old proxy kept)."""

    def __init__(
        self,
        features: np.ndarray,
        labels: np.ndarray,
        cameras: Sequence[str],
        temperature: float = 0.05,
        momentum: float = 0.2,
        memory_weight: float = 1.0,
        camera_weight: float = 0.5,
        rows: np.ndarray | None = None,
    ) -> None:
        """From the crops' class ``labels`` (0..C-1) and ``cameras``, and the ``features`` of the
        crops ``rows`` (default: of every crop; each class and camera needs one at least)."""
        self.temperature, self.momentum = temperature, momentum
        self.memory_weight, self.camera_weight = memory_weight, camera_weight
        feats = torch.as_tensor(features, dtype=torch.float32)
        labels_t = torch.as_tensor(labels, dtype=torch.int64)
        cams, cam_index = np.unique(np.asarray(cameras), return_inverse=True)
        self.crop_camera = torch.as_tensor(cam_index, dtype=torch.int64)
        shown = torch.arange(len(labels_t)) if rows is None else torch.as_tensor(rows, dtype=torch.int64)
        classes = int(labels_t.max()) + 1
        self.classes = F.normalize(
            torch.zeros(classes, feats.shape[1]).index_add_(0, labels_t[shown], feats), dim=1
        )
        key = labels_t * len(cams) + self.crop_camera
        keys, proxy_of_crop = torch.unique(key, return_inverse=True)
        self.proxy_of_crop = proxy_of_crop
        self.proxy_camera = keys % len(cams)
        self.proxies = F.normalize(
            torch.zeros(len(keys), feats.shape[1]).index_add_(0, proxy_of_crop[shown], feats), dim=1
        )

    def loss(
        self, features: torch.Tensor, labels: torch.Tensor, crops: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """``{"memory": ClusterNCE, "memory_camera": intra-camera NCE}`` of a batch's test
        ``features`` (normalised here), its ``labels`` and the crops' indices; then the proxies
        move toward the batch (no gradient flows into the memory)."""
        f = F.normalize(features, dim=1)
        classes, proxies = self.classes.to(f.device), self.proxies.to(f.device)
        nce = F.cross_entropy(f @ classes.T / self.temperature, labels)
        own_proxy = self.proxy_of_crop[crops.cpu()].to(f.device)
        camera = self.crop_camera[crops.cpu()].to(f.device)
        logits = f @ proxies.T / self.temperature
        other_camera = self.proxy_camera.to(f.device)[None, :] != camera[:, None]
        intra = F.cross_entropy(logits.masked_fill(other_camera, -1e4), own_proxy)
        self._update(f.detach().cpu(), labels.cpu(), own_proxy.cpu())
        return {"memory": self.memory_weight * nce, "memory_camera": self.camera_weight * intra}

    @torch.no_grad()
    def _update(self, f: torch.Tensor, labels: torch.Tensor, own_proxy: torch.Tensor) -> None:
        # new tables, not in-place writes: this step's loss still holds the old ones for backward
        self.classes = self._moved(self.classes, f, labels)
        self.proxies = self._moved(self.proxies, f, own_proxy)

    def _moved(self, table: torch.Tensor, f: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        table = table.clone()
        for i in torch.unique(index).tolist():
            mean = f[index == i].mean(0)
            table[i] = F.normalize(self.momentum * table[i] + (1 - self.momentum) * mean, dim=0)
        return table
