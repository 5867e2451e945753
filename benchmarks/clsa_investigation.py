"""Why does (or doesn't) cross-level alignment help? Follow-up to ``ablation.py``, on its cached
data and models.

1. Per-level evaluation: every trained variant scored (ground-truth boxes) with each pyramid
   level's embedding alone and with the concatenation, overall and for small people. Shows what
   each level contributes and whether alignment made the lower levels better matchers.
2. Trials: ``clsa`` retrained with other alignment settings (``name:key=value,...`` over the
   ablation's re-id budget), scored the same way with the ablation's shared detections.

    python benchmarks/clsa_investigation.py            # after benchmarks/ablation.py

Writes ``benchmarks/results/clsa_investigation.json`` and prints a table last.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from ablation import budget_config, gallery_detections
from run_info import ROOT, commit, write_results

from personsearch.data import load_dataset
from personsearch.evaluation.pipeline import (
    evaluate_engine,
    ground_truth_detections,
    query_features,
    run_gallery,
)
from personsearch.evaluation.search import evaluate_search
from personsearch.models.bundle import ModelBundle
from personsearch.training.reid import train_reid

SMALL = "<60"


def parse_trial(text: str) -> tuple[str, dict[str, Any]]:
    """``clsa-l4:align_weight=4,temperature=3`` -> ("clsa-l4", {...}) with numbers parsed."""
    name, _, settings = text.partition(":")
    overrides: dict[str, Any] = {"variant": "clsa"}
    for item in filter(None, settings.split(",")):
        key, _, value = item.partition("=")
        overrides[key.strip()] = json.loads(value)
    return name, overrides


def scores(result: dict[str, Any]) -> dict[str, float]:
    """mAP and top-1 (percent) overall, for small queries and for small gallery targets, from a
    ``SearchResult.to_dict()``."""
    return {
        "mAP": 100 * result["mAP"],
        "top1": 100 * result["topk"]["1"],
        "mAP_query<60": 100 * result["by_query_height"][SMALL]["mAP"],
        "top1_query<60": 100 * (result["by_query_height"][SMALL]["topk"]["1"] or 0),
        "mAP_target<60": 100 * result["by_target_height"][SMALL]["mAP"],
    }


def per_level(bundle: ModelBundle, dataset, gallery_size: int) -> dict[str, dict[str, float]]:
    """GT-box search scored with each level's slice of the feature and with all of them."""
    gt = ground_truth_detections(dataset.gallery)
    _, gallery, _ = run_gallery(
        bundle, dataset.gallery, detections=gt, progress=False, embed_ground_truth=False
    )
    queries = query_features(bundle, dataset.queries)
    levels = list(bundle.reid_config.used_levels)
    dim = bundle.reid_config.embed_dim

    def part(feats: np.ndarray, index: int) -> np.ndarray:
        sliced = feats[:, index * dim : (index + 1) * dim]
        return sliced / np.maximum(np.linalg.norm(sliced, axis=1, keepdims=True), 1e-12)

    choices = {"concat": (gallery, queries)}
    if len(levels) > 1:
        for i, level in enumerate(levels):
            choices[level] = ([part(g, i) for g in gallery], part(queries, i))
    return {
        name: scores(evaluate_search(dataset, gt, g, q, gallery_size=gallery_size).to_dict())
        for name, (g, q) in choices.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "ablation")
    parser.add_argument("--ablation", type=Path, default=ROOT / "benchmarks" / "results" / "ablation.json")
    parser.add_argument(
        "--trials", nargs="*", default=["clsa-lambda4:align_weight=4.0", "clsa-T1:temperature=1.0"]
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results" / "clsa_investigation.json"
    )
    args = parser.parse_args()
    if not args.ablation.is_file():
        parser.error(f"{args.ablation} not found: run benchmarks/ablation.py first")
    ablation = json.loads(args.ablation.read_text())
    data_dir = ROOT / ablation.get("data", "data/synthetic-standard")
    dataset = load_dataset(data_dir)
    gallery_size = ablation["gallery_size"]
    det_dir = ROOT / ablation["detector"]["bundle"]  # the detector every variant shares
    results: dict[str, Any] = {
        "commit": commit(),
        "gallery_size": gallery_size,
        "budget": ablation["reid_budget"],
        "models": {},
    }

    models: dict[str, dict[str, Any]] = {v: {"settings": {"variant": v}} for v in ablation["variants"]}
    for text in args.trials:
        name, overrides = parse_trial(text)
        models[name] = {"settings": overrides}
    for name, model in models.items():
        # the ablation's seed-0 runs
        vdir = args.work / (f"reid-{name}-s0" if name in ablation["variants"] else f"reid-{name}")
        started = time.perf_counter()
        if not (vdir / "reid.safetensors").is_file():
            config = budget_config(
                ablation["reid_budget"],
                {**model["settings"], "dataset": str(data_dir), "seed": 0},
                where=name,
            )
            train_reid(config, vdir)
        for part_name in ("detector.json", "detector.safetensors"):
            (vdir / part_name).write_bytes((det_dir / part_name).read_bytes())
        bundle = ModelBundle(vdir)
        if name in ablation["variants"]:
            with_detections = ablation["variants"][name]["per_seed"]["0"]["search"]
        else:
            dets = gallery_detections(
                det_dir, dataset, args.work / f"gallery_detections-{ablation['detector']['sha256_12']}.npz"
            )
            with_detections = evaluate_engine(
                bundle, dataset, gallery_size=gallery_size, detections=dets, progress=False
            ).search.to_dict()
        model["search"] = {"with_detections": scores(with_detections)}
        model["levels_gt_boxes"] = per_level(bundle, dataset, gallery_size)
        model["seconds"] = round(time.perf_counter() - started, 1)
        results["models"][name] = model
        print(f"== {name}: {json.dumps(model['levels_gt_boxes']['concat'])}", flush=True)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_results(args.out, results)
    head = (
        f"{'model':16s} {'features':8s} {'mAP':>6s} {'top-1':>6s} {'mAP q<60':>9s} {'top-1 q<60':>10s} "
        f"{'mAP t<60':>9s}   (ground-truth boxes)"
    )
    print("\n" + head + "\n" + "-" * len(head))
    for name, model in results["models"].items():
        for features, s in model["levels_gt_boxes"].items():
            print(
                f"{name:16s} {features:8s} {s['mAP']:6.2f} {s['top1']:6.2f} {s['mAP_query<60']:9.2f} "
                f"{s['top1_query<60']:10.2f} {s['mAP_target<60']:9.2f}"
            )
    print("\nwith detections (shared detector):")
    for name, model in results["models"].items():
        s = model["search"]["with_detections"]
        print(f"{name:16s} mAP {s['mAP']:6.2f}  top-1 {s['top1']:6.2f}  top-1 q<60 {s['top1_query<60']:6.2f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
