"""Does multi-scale matching help? Train the re-id variants ``single``, ``multi`` and ``clsa``, and
the paper's two baselines ``image_pyramid`` and ``multi_branch`` (``models.reid``), with the same
budget over several seeds, score each with one shared detector (search with detections)
and with ground-truth boxes, overall, by person height and level by level, and follow each
run's learning curve on a validation benchmark that the test split never sees.

    pip install -e '.[bench]'        # matplotlib, for the plots
    python benchmarks/ablation.py --epochs 40 --seeds 0 1 2

* Training data: the synthetic ``standard`` benchmark, seed 0 (``--data``, generated if absent).
* Validation: a ``small`` benchmark of another seed (``--val-seed``, default 3: its identities are
  new), scored with ground-truth boxes every ``--curve-every`` epochs (the learning curves), and
  used to choose per-level weights of the test feature (the follow-up below found that the
  weak lowest level, given a third of the vote by plain concatenation, drags the ranking down).
  The weights are chosen on validation only, then applied once to the test split.
* Shared detector: the shipped default model's (``--detector``), so the variants differ in re-id
  only.
* The two baselines fuse their scales' or branches' embeddings by mean or by concatenation;
  ``multi_branch`` may also route each box to its height band's branch (the box's slice of the
  concatenated features, ``models.reid.route_weights``: the product's crops carry no height, the
  benchmark's boxes do). Every fusion is scored, and the one with the better validation mAP is
  the variant's result (``fusions`` holds all).
* Cost of each variant (``variants.<v>.cost``): parameters and GFLOPs per crop of the network
  at ``--input``, and training seconds (mean over seeds, on the machines each run records);
  milliseconds per crop are per CPU, from ``benchmarks/reid_cost.py``.

Writes ``benchmarks/results/ablation.json`` (``variants.<variant>.{search,search_gt_boxes}``
hold the mean over seeds, ``..._std`` the standard deviation, ``per_seed`` each run, ``cost`` the
cost) and the plots ``docs/ablation.png``, ``docs/ablation_curves.png`` and
``docs/ablation_cost.png``. Every run is cached in ``--work``, and training resumes from its
last checkpoint, so an interrupted run continues where it stopped.
Runs already in ``--out`` from an earlier session (whose ``--work`` folder is gone) are kept, not
retrained, when the budget, data, validation set and detector are the same: seeds can be added
one session at a time, unless the variant's design has changed since (``DESIGNS``). Each run
records the machine it trained on.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from run_info import ROOT, commit, machine, write_results

from personsearch.data import load_dataset
from personsearch.data.crops import crop_boxes, normalize_crops
from personsearch.data.images import read_image
from personsearch.data.synthetic import make_synthetic
from personsearch.evaluation.detection import evaluate_detection
from personsearch.evaluation.pipeline import (
    gallery_detections,
    ground_truth_detections,
    query_features,
    run_gallery,
)
from personsearch.evaluation.search import evaluate_search
from personsearch.models.bundle import ModelBundle
from personsearch.models.reid import FUSIONS, PyramidReID, ReIDConfig, build_reid, route_weights
from personsearch.training.config import OptimConfig, ReIDDataConfig, ReIDTrainConfig, from_dict, to_dict
from personsearch.training.reid import train_reid

VARIANTS = ("single", "multi", "clsa", "image_pyramid", "multi_branch")
FUSED = ("image_pyramid", "multi_branch")
"""The baselines whose test feature fuses several embeddings (``ReIDConfig.fuse``)."""
WEIGHT_GRID = (0.0, 0.25, 0.5, 0.75, 1.0)
DESIGNS = {"multi_branch": 2}
"""Each variant's design revision (1 where absent), recorded with every run: a run of an older
design is not reused. multi_branch 2: one identity classifier shared by the branches, and routing
by box height among the test-time fusions (1 had a classifier per branch and fused only)."""


Weights = tuple[float, ...] | np.ndarray
"""Level (stream) weights: one per level for every feature, or an (N, levels) array, a row per
feature (``route_weights``: each box to its height band's branch)."""


def routed(boxes: np.ndarray, bands: Sequence[float] | None, weights: Weights | None) -> Weights | None:
    """Each box to its height band's branch when ``bands`` are given, else ``weights``."""
    return weights if bands is None else route_weights(boxes[:, 3] - boxes[:, 1], bands)


def level_features(feats: np.ndarray, num_levels: int, weights: Weights | None = None) -> np.ndarray:
    """Re-weight the levels of concatenated test features: each level's slice re-normalised,
    scaled by its weight, concatenated and normalised again. ``weights`` of all ones is the
    plain concatenation; a one-hot vector scores one level alone."""
    if weights is None or num_levels == 1:
        return feats
    dim = feats.shape[1] // num_levels
    w_rows = np.broadcast_to(np.asarray(weights, np.float32), (len(feats), num_levels))
    parts = []
    for i in range(num_levels):
        part = feats[:, i * dim : (i + 1) * dim]
        parts.append(
            w_rows[:, i : i + 1] * part / np.maximum(np.linalg.norm(part, axis=1, keepdims=True), 1e-12)
        )
    out = np.concatenate(parts, axis=1)
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def summary(result: dict[str, Any]) -> dict[str, Any]:
    """A ``SearchResult.to_dict()`` without its per-query lists (the file stays readable); of a
    dict holding several results (``PipelineResult.to_dict()``), each one's."""
    return {
        k: summary(v) if isinstance(v, dict) else v
        for k, v in result.items()
        if k not in {"per_query", "excluded"}
    }


class Validation:
    """The validation benchmark's ground-truth crops, cut once, scored against a network in a
    few seconds: the learning curves and the level weights come from here, never from the test split."""

    def __init__(self, data_dir: Path, size: tuple[int, int], gallery_size: int) -> None:
        self.dataset = load_dataset(data_dir)
        self.gallery_size = gallery_size
        self.gallery_crops = [crop_boxes(read_image(s.path), s.boxes, size) for s in self.dataset.gallery]
        self.query_crops = torch.cat(
            [crop_boxes(read_image(q.path), q.box[None], size) for q in self.dataset.queries]
        )
        self.gt = ground_truth_detections(self.dataset.gallery)

    @torch.no_grad()
    def features(self, model: torch.nn.Module) -> tuple[list[np.ndarray], np.ndarray]:
        model.eval()
        counts = [len(c) for c in self.gallery_crops]
        crops = torch.cat([*self.gallery_crops, self.query_crops])
        feats = np.concatenate(
            [model(normalize_crops(crops[i : i + 256])).float().numpy() for i in range(0, len(crops), 256)]
        )
        gallery = np.split(feats[: sum(counts)], np.cumsum(counts)[:-1])
        return gallery, feats[sum(counts) :]

    def score(
        self,
        gallery: list[np.ndarray],
        queries: np.ndarray,
        num_levels: int,
        weights: tuple[float, ...] | None = None,
        bands: Sequence[float] | None = None,
    ) -> dict[str, float]:
        """mAP and top-1 of the features, levels re-weighted by ``weights`` or, given ``bands``,
        each box routed to its height band's branch."""
        g = [
            level_features(f, num_levels, routed(boxes, bands, weights)) for f, boxes in zip(gallery, self.gt)
        ]
        query_boxes = np.stack([q.box for q in self.dataset.queries])
        result = evaluate_search(
            self.dataset,
            self.gt,
            g,
            level_features(queries, num_levels, routed(query_boxes, bands, weights)),
            gallery_size=self.gallery_size,
        )
        return {"mAP": result.mAP, "top1": result.topk[1]}

    def curve_point(self, model: torch.nn.Module, levels: list[str]) -> dict[str, dict[str, float]]:
        gallery, queries = self.features(model)
        point = {"concat": self.score(gallery, queries, len(levels))}
        if len(levels) > 1:
            for i, level in enumerate(levels):
                point[level] = self.score(
                    gallery, queries, len(levels), tuple(float(j == i) for j in range(len(levels)))
                )
        return point

    def best_weights(
        self, model: torch.nn.Module, num_levels: int
    ) -> tuple[tuple[float, ...], dict[str, float]]:
        """The level weights (a grid, top level fixed at 1) with the best validation mAP."""
        gallery, queries = self.features(model)
        best: tuple[tuple[float, ...], dict[str, float]] | None = None
        for lower in itertools.product(WEIGHT_GRID, repeat=num_levels - 1):
            weights = (*lower, 1.0)
            scores = self.score(gallery, queries, num_levels, weights)
            if best is None or scores["mAP"] > best[1]["mAP"]:
                best = (weights, scores)
        assert best is not None
        return best


def sectioned(settings: dict[str, Any]) -> dict[str, Any]:
    """Re-id settings in the training config's shape: keys of the earlier flat shape (results
    files before the one config shape: ``variant``, ``flip``) moved into their section
    (``model.variant``, ``data.flip``); nested sections pass as they are. The flat shape's empty
    ``levels`` meant the network's default, as a missing key does now."""
    model_keys = {f.name for f in fields(ReIDConfig)}
    data_keys = {f.name for f in fields(ReIDDataConfig)}
    out: dict[str, Any] = {}
    for key, value in settings.items():
        section = "model" if key in model_keys else "data" if key in data_keys else None
        if key == "levels" and not value:
            continue
        if section is not None:
            out.setdefault(section, {})[key] = value
        elif isinstance(value, dict):
            out.setdefault(key, {}).update(value)
        else:
            out[key] = value
    return out


def budget_config(
    budget: dict[str, Any], settings: dict[str, Any] | None = None, where: str = "reid_budget"
) -> ReIDTrainConfig:
    """The training config of a results file's ``reid_budget`` (either shape), with ``settings``
    (a trial's changes, either shape) applied over it."""
    base = from_dict(ReIDTrainConfig, sectioned(budget), where)
    return from_dict(ReIDTrainConfig, sectioned(settings or {}), where, base=base)


def budget_of(config: ReIDTrainConfig) -> dict[str, Any]:
    """What every variant and seed of the ablation shares: the config without the dataset, the
    variant and the seed."""
    budget = to_dict(config)
    budget["data"].pop("dataset")
    budget["model"].pop("variant")
    budget["model"].pop("num_classes")
    budget.pop("seed")
    return budget


def run_one(
    variant: str, seed: int, base: ReIDTrainConfig, work: Path, val: Validation, curve_every: int
) -> Path:
    """Train (or resume) one variant/seed, recording its validation curve; returns its folder."""
    vdir = work / f"reid-{variant}-s{seed}"
    curve_path = vdir / "curve.json"
    curve: dict[str, Any] = json.loads(curve_path.read_text()) if curve_path.is_file() else {}
    config = replace(base, model=replace(base.model, variant=variant), seed=seed)

    def on_epoch_end(epochs_done: int, model: torch.nn.Module) -> None:
        if epochs_done % curve_every and epochs_done != config.epochs:
            return
        curve[str(epochs_done)] = val.curve_point(model, list(cast(PyramidReID, model).levels))
        curve_path.write_text(json.dumps(curve, indent=1))

    if not (vdir / "reid.safetensors").is_file():
        vdir.mkdir(parents=True, exist_ok=True)
        train_reid(config, vdir, on_epoch_end=on_epoch_end)
    return vdir


def fused_copy(vdir: Path, fuse: str) -> Path:
    """A bundle of ``vdir``'s weights whose test feature fuses by ``fuse`` (a test-time choice)."""
    out = vdir / f"fuse-{fuse}"
    out.mkdir(exist_ok=True)
    for part in ("detector.json", "detector.safetensors", "reid.safetensors"):
        (out / part).write_bytes((vdir / part).read_bytes())
    description = json.loads((vdir / "reid.json").read_text())
    description["config"]["fuse"] = fuse
    (out / "reid.json").write_text(json.dumps(description, indent=1))
    return out


def evaluate_run(
    vdir: Path, detector: Path, dataset, shared_dets: list[np.ndarray], val: Validation, gallery_size: int
) -> dict[str, Any]:
    """Test-split scores of one trained run: with detections and ground-truth boxes, each level
    alone, and with the level weights chosen on validation; for the fused baselines, each fusion,
    the one chosen on validation giving the run's result."""
    cached = vdir / "scores.json"
    if cached.is_file():
        return cast("dict[str, Any]", json.loads(cached.read_text()))
    for part in ("detector.json", "detector.safetensors"):
        (vdir / part).write_bytes((detector / part).read_bytes())
    bundle = ModelBundle(vdir, engine="torch-fp32")
    config = bundle.reid_config
    if config.variant in FUSED:
        fusions = {}
        for fuse in FUSIONS:
            fused = ModelBundle(fused_copy(vdir, fuse), engine="torch-fp32")
            dets, search = searcher(fused, dataset, shared_dets, gallery_size)
            val_features = val.features(fused.reid_network)
            fusions[fuse] = {**scores(dataset, dets, search), "val": val.score(*val_features, 1)}
            if config.variant == "multi_branch" and fuse == "concat":  # routed: a slice of concat
                fusions["route"] = {
                    **scores(dataset, dets, search, config.bands),
                    "val": val.score(*val_features, config.streams, bands=config.bands),
                }
        chosen = max(fusions, key=lambda fuse: fusions[fuse]["val"]["mAP"])
        out = {k: v for k, v in fusions[chosen].items() if k != "val"}
        out["fusions"] = {
            fuse: {k: v for k, v in f.items() if k != "detection"} for fuse, f in fusions.items()
        }
        out["fuse_chosen"] = chosen
    else:
        dets, search = searcher(bundle, dataset, shared_dets, gallery_size)
        out = scores(dataset, dets, search)
        if len(bundle.reid_config.used_levels) > 1:
            out.update(weighted_levels(bundle, search, val))
    out["design"] = DESIGNS.get(config.variant, 1)
    out["train"] = json.loads((vdir / "reid.json").read_text())["metadata"]["summary"]
    out["machine"] = machine()
    out["curve"] = json.loads((vdir / "curve.json").read_text()) if (vdir / "curve.json").is_file() else {}
    cached.write_text(json.dumps(out, indent=1))
    return out


def searcher(
    bundle: ModelBundle, dataset, shared_dets: list[np.ndarray], gallery_size: int
) -> tuple[list[np.ndarray], Callable[..., dict[str, Any]]]:
    """The bundle's gallery and query features, and a function scoring them (levels re-weighted)."""
    n = len(bundle.reid_config.used_levels)
    dets, feats, gt_feats = run_gallery(bundle, dataset.gallery, detections=shared_dets, progress=False)
    queries = query_features(bundle, dataset.queries)
    gt = ground_truth_detections(dataset.gallery)

    query_boxes = np.stack([q.box for q in dataset.queries])

    def search(
        gt_boxes: bool, weights: tuple[float, ...] | None = None, bands: Sequence[float] | None = None
    ) -> dict[str, Any]:
        boxes = gt if gt_boxes else dets
        streams = n if bands is None else len(bands) + 1  # routing: the branches of concat features
        return summary(
            evaluate_search(
                dataset,
                boxes,
                [
                    level_features(x, streams, routed(b, bands, weights))
                    for x, b in zip(gt_feats if gt_boxes else feats, boxes)
                ],
                level_features(queries, streams, routed(query_boxes, bands, weights)),
                gallery_size=gallery_size,
            ).to_dict()
        )

    return dets, search


def scores(
    dataset,
    dets: list[np.ndarray],
    search: Callable[..., dict[str, Any]],
    bands: Sequence[float] | None = None,
) -> dict[str, Any]:
    """Search with the shared detections and with ground-truth boxes (each box routed to its
    height band's branch, given ``bands``), and the detection scores."""
    return {
        "search": search(False, bands=bands),
        "search_gt_boxes": search(True, bands=bands),
        "detection": evaluate_detection(dataset, dets).to_dict(),
    }


def weighted_levels(
    bundle: ModelBundle, search: Callable[..., dict[str, Any]], val: Validation
) -> dict[str, Any]:
    """Each level alone (ground-truth boxes), and the level weights chosen on validation."""
    levels = list(bundle.reid_config.used_levels)
    n = len(levels)
    weights, val_scores = val.best_weights(bundle.reid_network, n)
    return {
        "levels_gt_boxes": {
            level: search(True, tuple(float(j == i) for j in range(n))) for i, level in enumerate(levels)
        },
        "val_weights": {
            "weights": dict(zip(levels, weights, strict=True)),
            "val": val_scores,
            "val_concat": val.score(*val.features(bundle.reid_network), n),
        },
        "weighted": {"search": search(False, weights), "search_gt_boxes": search(True, weights)},
    }


def architecture_cost(config: ReIDConfig) -> dict[str, float]:
    """Parameters (identity classifiers left out: training only) and GFLOPs per crop of the
    network ``config`` describes, in eval mode at its input size (PyTorch's FLOP counter: 2 per
    multiply-add)."""
    from torch.utils.flop_counter import FlopCounterMode

    network = build_reid(replace(config, num_classes=1, pretrained=None)).eval()
    params = sum(p.numel() for name, p in network.named_parameters() if ".classifier." not in name)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        network(torch.zeros(1, 3, *config.input_size))
    return {"parameters_m": params / 1e6, "gflops_per_crop": counter.get_total_flops() / 1e9}


def earlier_runs(path: Path, results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``variant -> seed -> run`` of an earlier results file made with the same budget, data,
    validation set and detector (each run given the detector's evaluation and, when it predates
    per-run machines, the file's machine); empty when anything differs."""
    if not path.is_file():
        return {}
    old = json.loads(path.read_text())
    keys = ("preset", "data_seed", "gallery_size", "validation")
    differ = [k for k in keys if old.get(k) != results[k]]
    differ += (
        ["detector"] if old.get("detector", {}).get("sha256_12") != results["detector"]["sha256_12"] else []
    )
    differ += (
        ["reid_budget"]
        if budget_of(budget_config(old.get("reid_budget", {}))) != results["reid_budget"]
        else []
    )
    if differ:
        print(
            f"note: {path} was made with another {', '.join(differ)}: its runs are not reused "
            "(this run overwrites it)",
            flush=True,
        )
        return {}
    detection = old["detector"].get("evaluation")
    out = {
        variant: {
            seed: {"machine": old.get("machine"), **run, "detection": detection}
            for seed, run in entry.get("per_seed", {}).items()
            if run.get("design", 1) == DESIGNS.get(variant, 1)
        }
        for variant, entry in old.get("variants", {}).items()
    }
    for variant, entry in old.get("variants", {}).items():
        if stale := sorted(set(entry.get("per_seed", {})) - set(out[variant])):
            print(f"note: {variant} seeds {stale} were an older design of it: not reused", flush=True)
    return out


def mean_std(values: list[Any]) -> tuple[Any, Any]:
    """Mean and sample standard deviation of the numeric leaves of equally shaped dicts (None
    where a bucket is empty in any run)."""
    first = values[0]
    if isinstance(first, dict):
        pairs = {
            k: mean_std([v[k] for v in values])
            for k in first
            if all(isinstance(v, dict) and k in v for v in values)
        }
        return {k: p[0] for k, p in pairs.items()}, {k: p[1] for k, p in pairs.items()}
    if isinstance(first, bool) or not all(isinstance(v, (int, float)) for v in values):
        return (first if all(v == first for v in values) else None), None
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0


def plot_cost(results: dict, out_png: Path) -> None:
    """Top-1 (GT boxes and with detections) against GFLOPs per crop: each variant a point, its
    bar the spread over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, key, title in (
        (axes[0], "search_gt_boxes", "ground-truth boxes"),
        (axes[1], "search", "with detections"),
    ):
        for i, (variant, entry) in enumerate(results["variants"].items()):
            if "cost" not in entry:
                continue
            x = entry["cost"]["gflops_per_crop"]
            y, sd = 100 * entry[key]["topk"]["1"], 100 * (entry[f"{key}_std"]["topk"]["1"] or 0)
            ax.errorbar([x], [y], yerr=[sd], fmt="o", capsize=4, color=f"C{i}", label=variant)
            ax.annotate(
                f"{variant} ({len(entry['seeds'])})", (x, y), textcoords="offset points", xytext=(6, 4)
            )
        ax.set_xscale("log")
        ax.set_xlabel("GFLOPs per crop (log)")
        ax.set_title(f"top-1, {title}")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("top-1 (%), mean ± sd over seeds (n seeds)")
    fig.suptitle("accuracy against cost per crop, synthetic 'standard' benchmark")
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)


def plot(results: dict, out_png: Path, curves_png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = list(results["variants"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, key, title in (
        (axes[0], "search_gt_boxes", "ground-truth boxes"),
        (axes[1], "search", "with detections"),
    ):
        buckets = list(results["variants"][variants[0]][key]["by_query_height"])
        width = 0.8 / len(variants)
        for i, variant in enumerate(variants):
            mean = results["variants"][variant][key]["by_query_height"]
            std = results["variants"][variant][f"{key}_std"]["by_query_height"]
            values = [100 * (mean[b]["topk"]["1"] or 0) for b in buckets]
            errors = [100 * (std[b]["topk"]["1"] or 0) for b in buckets]
            ax.bar(np.arange(len(buckets)) + i * width, values, width, yerr=errors, capsize=3, label=variant)
        ax.set_xticks(np.arange(len(buckets)) + width * (len(variants) - 1) / 2, [f"{b} px" for b in buckets])
        ax.set_title(f"top-1 by query height, {title}")
        ax.set_xlabel("query person height")
    axes[0].set_ylabel("top-1 (%), mean ± sd over seeds")
    axes[0].legend()
    fig.suptitle(
        f"synthetic 'standard' benchmark, gallery {results['gallery_size']}, "
        f"{results['reid_budget']['epochs']} epochs"
    )
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for variant in variants:
        for seed, run in results["variants"][variant]["per_seed"].items():
            epochs = sorted(int(e) for e in run["curve"])
            for ax, metric in zip(axes, ("mAP", "top1"), strict=True):
                first = seed == next(iter(results["variants"][variant]["per_seed"]))
                ax.plot(
                    epochs,
                    [100 * run["curve"][str(e)]["concat"][metric] for e in epochs],
                    color=f"C{variants.index(variant)}",
                    alpha=0.8,
                    label=variant if first else None,
                )
    for ax, metric in zip(axes, ("mAP", "top-1"), strict=True):
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"validation {metric} (%)")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle(
        f"learning curves on the validation benchmark (small, seed {results['validation']['seed']}, "
        "GT boxes), one line per seed"
    )
    fig.tight_layout()
    fig.savefig(curves_png, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=ROOT / "data" / "synthetic-standard",
        help="the standard benchmark, seed 0 (generated if absent)",
    )
    parser.add_argument("--val-seed", type=int, default=3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds")
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "ablation")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--epochs", type=int, default=40, help="re-id epochs, the same for every variant")
    parser.add_argument("--curve-every", type=int, default=5, help="validation point every N epochs")
    parser.add_argument("--input", default="128x64", help="re-id input HxW")
    parser.add_argument("--backbone", default="mobilenet_v2")
    parser.add_argument(
        "--detector",
        type=Path,
        default=ROOT / "personsearch" / "assets" / "default",
        help="bundle folder whose detector all variants share",
    )
    parser.add_argument("--gallery-size", type=int, default=100)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "ablation.json")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "ablation.png")
    parser.add_argument("--curves", type=Path, default=ROOT / "docs" / "ablation_curves.png")
    parser.add_argument("--cost-plot", type=Path, default=ROOT / "docs" / "ablation_cost.png")
    args = parser.parse_args()
    try:  # the plots are written after every run: fail now, not after the first hour of training
        import matplotlib  # noqa: F401
    except ImportError:
        raise SystemExit("the ablation plots need matplotlib: pip install -e '.[bench]'") from None

    started = time.perf_counter()
    args.work.mkdir(parents=True, exist_ok=True)
    if not (args.data / "synthetic.json").is_file() or not json.loads(
        (args.data / "synthetic.json").read_text()
    ).get("complete", True):  # absent, or an interrupted generation
        make_synthetic(args.data, preset="standard", seed=0, overwrite=True)
    dataset = load_dataset(args.data)
    val_dir = args.work / f"val-small-seed{args.val_seed}"
    if not (val_dir / "synthetic.json").is_file():
        make_synthetic(val_dir, preset="small", seed=args.val_seed, overwrite=True)
    height, width = (int(v) for v in args.input.split("x"))
    val = Validation(val_dir, (height, width), gallery_size=50)

    digest = hashlib.sha256((args.detector / "detector.safetensors").read_bytes()).hexdigest()[:12]
    shared_dets = gallery_detections(
        lambda: ModelBundle(args.detector), dataset.gallery, args.work / f"gallery_detections-{digest}.npz"
    )
    base = ReIDTrainConfig(
        model=ReIDConfig(backbone=args.backbone, input_size=(height, width)),
        data=ReIDDataConfig(dataset=str(args.data)),
        epochs=args.epochs,
        batch_size=64,
        optim=OptimConfig(warmup_steps=100),
    )
    results: dict[str, Any] = {
        "preset": "standard",
        "data_seed": 0,
        "seeds": args.seeds,
        "gallery_size": args.gallery_size,
        "commit": commit(),
        "machine": machine(),
        "data": str(args.data.relative_to(ROOT)) if args.data.is_relative_to(ROOT) else str(args.data),
        "dataset": {
            "train_scenes": len(dataset.train),
            "gallery_scenes": len(dataset.gallery),
            "queries": len(dataset.queries),
        },
        "validation": {
            "preset": "small",
            "seed": args.val_seed,
            "gallery_size": 50,
            "queries": len(val.dataset.queries),
        },
        "detector": {
            "bundle": str(args.detector.relative_to(ROOT))
            if args.detector.is_relative_to(ROOT)
            else str(args.detector),
            "sha256_12": digest,
        },
        "reid_budget": budget_of(base),
        "variants": {},
    }
    earlier = earlier_runs(args.out, results)
    # what earlier sessions measured, of every variant and seed, is in every write of the file
    runs: dict[str, dict[str, Any]] = {v: {} for v in VARIANTS if v in args.variants or earlier.get(v)}
    costs = {v: architecture_cost(replace(base.model, variant=v)) for v in VARIANTS}
    for variant in runs:
        for seed in sorted({*map(str, args.seeds), *earlier.get(variant, {})}, key=int):
            scores = args.work / f"reid-{variant}-s{seed}" / "scores.json"
            if scores.is_file():
                runs[variant][seed] = json.loads(scores.read_text())
            elif seed in earlier.get(variant, {}):
                runs[variant][seed] = earlier[variant][seed]
    earlier_seconds = (
        json.loads(args.out.read_text()).get("timings_s", {}).get("total", 0.0) if earlier else 0.0
    )

    def write() -> None:
        """The file as it stands: written after every run, so an interrupted session keeps what it
        measured."""
        results["detector"]["evaluation"] = next(r["detection"] for v in runs.values() for r in v.values())
        results["seeds"] = sorted({*args.seeds, *(int(s) for v in runs.values() for s in v)})
        results["complete"] = all(set(map(str, args.seeds)) <= set(runs.get(v, {})) for v in VARIANTS)
        for variant, per_seed in runs.items():
            if not per_seed:
                continue
            entry: dict[str, Any] = {"seeds": [int(s) for s in per_seed]}
            keys = [
                k
                for k in ("search", "search_gt_boxes", "levels_gt_boxes", "weighted")
                if all(k in r for r in per_seed.values())
            ]
            for key in keys:
                entry[key], entry[f"{key}_std"] = mean_std([r[key] for r in per_seed.values()])
            train_seconds = [r["train"]["seconds"] for r in per_seed.values()]
            entry["cost"] = {
                **costs[variant],
                "train_seconds": float(np.mean(train_seconds)),
                "train_seconds_by_seed": dict(zip(per_seed, train_seconds, strict=True)),
            }
            entry["per_seed"] = {
                seed: {k: v for k, v in r.items() if k != "detection"} for seed, r in per_seed.items()
            }
            results["variants"][variant] = entry
        # the wall time of every session that added runs: a re-run that only redraws adds seconds,
        # not hours lost
        results["timings_s"] = {"total": round(earlier_seconds + time.perf_counter() - started, 1)}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_results(args.out, results)
        plot(results, args.plot, args.curves)
        plot_cost(results, args.cost_plot)

    if any(runs.values()):
        write()  # at once: this session's file holds what earlier ones measured
    for seed in args.seeds:  # seed-major: an interrupted run leaves every variant equally sampled
        for variant in args.variants:
            t = time.perf_counter()
            if str(seed) in runs[variant]:
                print(
                    f"== {variant} seed {seed}: kept from {args.out.name} or {args.work} "
                    f"(trained on {runs[variant][str(seed)]['machine'].get('cpu_capability')})",
                    flush=True,
                )
                continue
            vdir = run_one(variant, seed, base, args.work, val, args.curve_every)
            runs[variant][str(seed)] = evaluate_run(
                vdir, args.detector, dataset, shared_dets, val, args.gallery_size
            )
            s = runs[variant][str(seed)]
            print(
                f"== {variant} seed {seed} ({time.perf_counter() - t:.0f} s): "
                f"det mAP {100 * s['search']['mAP']:.2f} top-1 {100 * s['search']['topk']['1']:.2f}; "
                f"GT mAP {100 * s['search_gt_boxes']['mAP']:.2f} top-1 "
                f"{100 * s['search_gt_boxes']['topk']['1']:.2f}",
                flush=True,
            )
            write()
    write()  # also when every run was kept from the results file: the plots and the table below

    print(f"\n{len(args.seeds)} seeds, mean ± sd (percent)")
    print(
        f"{'variant':10s} {'mAP det':>13s} {'top-1 det':>13s} {'mAP GT':>13s} {'top-1 GT':>13s} "
        f"{'top-1 GT q<60':>14s}"
    )
    for variant, r in results["variants"].items():

        def cell(key: str, path: tuple[str, ...], entry: dict = r) -> str:
            m, s = entry[key], entry[f"{key}_std"]
            for p in path:
                m, s = m[p], s[p]
            return f"{100 * (m or 0):6.2f} ± {100 * (s or 0):4.2f}"

        print(
            f"{variant:10s} {cell('search', ('mAP',))} {cell('search', ('topk', '1'))} "
            f"{cell('search_gt_boxes', ('mAP',))} {cell('search_gt_boxes', ('topk', '1'))} "
            f"{cell('search_gt_boxes', ('by_query_height', '<60', 'topk', '1'))}"
        )
        if "weighted" in r:
            entry = {**r["weighted"], **{f"{k}_std": v for k, v in r["weighted_std"].items()}}
            print(
                f"{variant + ' w':10s} {cell('search', ('mAP',), entry)} "
                f"{cell('search', ('topk', '1'), entry)} {cell('search_gt_boxes', ('mAP',), entry)} "
                f"{cell('search_gt_boxes', ('topk', '1'), entry)} "
                f"{cell('search_gt_boxes', ('by_query_height', '<60', 'topk', '1'), entry)}"
            )
    print(f"wrote {args.out}, {args.plot} and {args.curves}")


if __name__ == "__main__":
    main()
