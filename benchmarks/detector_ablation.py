"""The paper's detector changes, each switched off alone: what does each one buy?

    python benchmarks/detector_ablation.py --epochs 1

CLSA changes Faster R-CNN in three ways for training (docs/specs/clsa.md section 1), and one for
deployment; no public code measures them one by one. Each variant here is the release detector
recipe (``configs/detector_mobilenet_v2_release.yaml``: MobileNetV2 C4, the ``standard``
synthetic benchmark, seed 0) with one change undone, trained for the same budget from the same
ImageNet weights and seed:

* ``paper``: every change on (RoIAlign 14 x 14 + 2 x 2 max-pool, frozen stem, proposals of every size);
* ``roialign7``: the crop resized straight to 7 x 7 (torchvision's RoIAlign default), no max-pool;
* ``train_stem``: the stem fine-tuned with the rest instead of frozen;
* ``min_size16``: proposals under 16 px (wide or tall) dropped before the RPN's NMS, as in the
  original Faster R-CNN (its ``min_size`` of 16 at the input scale);
* deployment, evaluation only, on the ``paper`` network, instead of every detection scored above
  0.5: ``fixed_top``, a fixed number of detections per scene (the training scenes' mean person
  count, rounded up) whatever their score; ``top100``, torchvision's test default (up to 100
  per scene scored above 0.05), which the original Faster R-CNN's evaluation also keeps. Every
  kept box enters the search gallery (the protocol's 0.5 detection threshold is lowered to 0).

Every detector is scored on the test gallery with the detection protocol (recall and AP, overall
and for people under 60 px) and, paired with the shipped re-id network, with the search protocol
(CUHK-SYSU style, gallery 100), so a change is judged by what it does to search, not only to boxes.
Training resumes from checkpoints in ``--work``; scores are cached there. Variants already in
``--out`` from an earlier session (whose ``--work`` is gone) are kept, not retrained, when that
file was made with the same recipe, budget, data and gallery size; so one CPU session at a time
can add the rows still missing. Writes ``benchmarks/results/detector_ablation.json`` and prints
a table.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from ablation import summary
from run_info import ROOT, commit, machine, write_results

from personsearch.data import load_dataset
from personsearch.data.synthetic import make_synthetic
from personsearch.evaluation.pipeline import evaluate_engine
from personsearch.models.bundle import ModelBundle
from personsearch.training.config import DetectorTrainConfig, load_config, to_dict
from personsearch.training.detector import train_detector

SWITCHES: dict[str, dict[str, Any]] = {
    "paper": {},
    "roialign7": {"roi_size": 7, "roi_max_pool": False},
    "train_stem": {"freeze_stem": False},
    "min_size16": {"min_proposal_size": 16.0},
}
"""Variant -> the ``DetectorConfig`` settings it changes from the release recipe."""


def train_variant(name: str, base: DetectorTrainConfig, work: Path) -> Path:
    """Train (or resume) one variant; returns its folder, a model bundle once the shipped re-id
    network is copied beside the detector."""
    vdir = work / name
    if not (vdir / "detector.safetensors").is_file():
        vdir.mkdir(parents=True, exist_ok=True)
        train_detector(replace(base, model=replace(base.model, **SWITCHES[name])), vdir)
    return vdir


def with_reid(
    vdir: Path, reid: Path, detector_changes: dict[str, Any] | None = None, target: Path | None = None
) -> Path:
    """A bundle folder: ``vdir``'s detector (its deployment settings changed by
    ``detector_changes``) and the shipped re-id network."""
    target = target or vdir
    target.mkdir(parents=True, exist_ok=True)
    for part in ("reid.json", "reid.safetensors"):
        shutil.copyfile(reid / part, target / part)
    if target != vdir:
        shutil.copyfile(vdir / "detector.safetensors", target / "detector.safetensors")
    meta = json.loads((vdir / "detector.json").read_text())
    meta["config"].update(detector_changes or {})
    (target / "detector.json").write_text(json.dumps(meta, indent=1))
    return target


def score(bundle_dir: Path, dataset, gallery_size: int, det_thresh: float) -> dict[str, Any]:
    cached = bundle_dir / "scores.json"
    if cached.is_file():
        return json.loads(cached.read_text())
    started = time.perf_counter()
    result = evaluate_engine(
        ModelBundle(bundle_dir, engine="torch-fp32"),
        dataset,
        gallery_size=gallery_size,
        det_thresh=det_thresh,
        progress=False,
    )
    out = summary(result.to_dict())
    train_summary = json.loads((bundle_dir / "detector.json").read_text()).get("metadata", {}).get("summary")
    out.update(train=train_summary, machine=machine(), seconds=round(time.perf_counter() - started, 1))
    cached.write_text(json.dumps(out, indent=1))
    return out


def earlier_variants(path: Path, results: dict[str, Any]) -> tuple[dict[str, Any], float]:
    """The variants (and the seconds spent) of an earlier results file made with the same
    recipe, budget, data and gallery size; nothing when anything differs."""
    if not path.is_file():
        return {}, 0.0
    old = json.loads(path.read_text())
    differ = [k for k in ("recipe", "budget", "data", "gallery_size") if old.get(k) != results[k]]
    if differ:
        print(
            f"note: {path} was made with another {', '.join(differ)}: its variants are not reused "
            "(this run overwrites it)",
            flush=True,
        )
        return {}, 0.0
    machine_then = old.get("machine")
    kept = {
        name: {"machine": machine_then, **r} if "machine" not in r else r
        for name, r in old.get("variants", {}).items()
    }
    results["switches"] = {**old.get("switches", {}), **results["switches"]}
    return kept, float(old.get("timings_s", {}).get("total", 0.0))


def row(name: str, r: dict[str, Any]) -> str:
    det, search = r["detection"], r["search"]
    small = det["recall_by_height"].get("<60", {}).get("recall")
    small_top1 = search.get("by_query_height", {}).get("<60", {}).get("topk", {}).get("1")
    return (
        f"{name:12s} {100 * det['recall']:7.2f} {100 * (small or 0):9.2f} {100 * (det['ap'] or 0):7.2f}"
        f" {100 * search['mAP']:7.2f} {100 * search['topk']['1']:7.2f} {100 * (small_top1 or 0):9.2f}"
    )


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
    parser.add_argument(
        "--recipe", type=Path, default=ROOT / "configs" / "detector_mobilenet_v2_release.yaml"
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=1,
        help="training epochs, the same for every variant (the stored results: 1)",
    )
    parser.add_argument("--variants", nargs="+", default=list(SWITCHES), choices=list(SWITCHES))
    parser.add_argument(
        "--deployments",
        nargs="*",
        default=["fixed_top", "top100"],
        choices=["fixed_top", "top100"],
        help="deployment rules scored on the paper network",
    )
    parser.add_argument(
        "--reid",
        type=Path,
        default=ROOT / "personsearch" / "assets" / "default",
        help="bundle whose re-id network every detector is paired with",
    )
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "detector_ablation")
    parser.add_argument("--gallery-size", type=int, default=100)
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results" / "detector_ablation.json"
    )
    args = parser.parse_args()

    started = time.perf_counter()
    if not (args.data / "synthetic.json").is_file():
        make_synthetic(args.data, preset="standard", seed=0)
    dataset = load_dataset(args.data)
    base = load_config(DetectorTrainConfig, args.recipe, data={"dataset": str(args.data)}, epochs=args.epochs)
    budget = {k: v for k, v in to_dict(base).items() if k != "model"}  # what every variant shares
    budget["data"].pop("dataset")
    people_per_scene = math.ceil(float(np.mean([len(s.boxes) for s in dataset.train])))
    results: dict[str, Any] = {
        "benchmark": "detector_ablation",
        "commit": commit(),
        "machine": machine(),
        "recipe": str(args.recipe.relative_to(ROOT))
        if args.recipe.is_relative_to(ROOT)
        else str(args.recipe),
        "budget": budget,
        "data": {
            "preset": "standard",
            "seed": 0,
            "train_scenes": len(dataset.train),
            "gallery_scenes": len(dataset.gallery),
            "queries": len(dataset.queries),
        },
        "gallery_size": args.gallery_size,
        "switches": {name: SWITCHES[name] for name in args.variants},
        "variants": {},
    }

    earlier, earlier_seconds = earlier_variants(args.out, results)
    results["variants"].update(earlier)

    def write() -> None:
        results["timings_s"] = {"total": round(earlier_seconds + time.perf_counter() - started, 1)}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_results(args.out, results)

    for name in args.variants:
        t = time.perf_counter()
        wanted = [name] + (args.deployments if name == "paper" else [])
        if all(n in earlier and not (args.work / n / "scores.json").is_file() for n in wanted):
            print(f"== {name}: kept from {args.out}\n{row(name, earlier[name])}", flush=True)
            continue
        vdir = with_reid(train_variant(name, base, args.work), args.reid)
        results["variants"][name] = score(vdir, dataset, args.gallery_size, det_thresh=0.5)
        print(
            f"== {name} ({time.perf_counter() - t:.0f} s)\n{row(name, results['variants'][name])}", flush=True
        )
        write()
        if name == "paper":
            deployments = {
                "fixed_top": {"score_thresh": 0.0, "detections_per_img": people_per_scene},
                "top100": {"score_thresh": 0.05, "detections_per_img": 100},
            }
            for deployed in args.deployments:
                bundle = with_reid(vdir, args.reid, deployments[deployed], target=args.work / deployed)
                results["variants"][deployed] = dict(
                    score(bundle, dataset, args.gallery_size, det_thresh=0.0),
                    deployment=deployments[deployed],
                )
                write()

    print(
        f"\n{'variant':12s} {'recall':>7s} {'rec <60':>9s} {'AP':>7s} {'mAP':>7s} "
        f"{'top-1':>7s} {'top-1 <60':>9s}"
    )
    for name, r in results["variants"].items():
        print(row(name, r))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
