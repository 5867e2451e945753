"""Does multi-scale matching help? Train the re-id variants ``single``, ``multi`` and ``clsa`` with
the same budget and seed on a synthetic benchmark, score each with one shared detector (search
with detections) and with ground-truth boxes, overall and by person height.

    python benchmarks/ablation.py --preset standard --epochs 20

Writes ``benchmarks/results/ablation.json`` and ``docs/ablation.png``; every stage is cached in
``--work`` so an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from run_info import ROOT, commit

from personsearch.data import load_dataset
from personsearch.data.synthetic import make_synthetic
from personsearch.evaluation.pipeline import evaluate_engine
from personsearch.models.bundle import ModelBundle
from personsearch.training.config import DetectorTrainConfig, OptimConfig, ReIDTrainConfig, to_dict
from personsearch.training.detector import train_detector
from personsearch.training.reid import train_reid


def gallery_detections(bundle: ModelBundle, dataset, cache: Path) -> list[np.ndarray]:
    """The shared detector's boxes on every gallery scene, cached as one .npz (no pickle)."""
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as data:
            return [data[f"d{i}"] for i in range(len(dataset.gallery))]
    from personsearch.data.images import read_image
    from personsearch.pipeline import PersonSearchPipeline

    pipeline = PersonSearchPipeline(bundle)
    dets = [pipeline.detect([read_image(scene.path)])[0] for scene in dataset.gallery]
    np.savez(cache, **{f"d{i}": d for i, d in enumerate(dets)})
    return dets


def plot(results: dict, out_png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, key, title in ((axes[0], "search_gt_boxes", "ground-truth boxes"), (axes[1], "search", "with detections")):
        variants = list(results["variants"])
        buckets = list(results["variants"][variants[0]][key]["by_query_height"])
        width = 0.8 / len(variants)
        for i, variant in enumerate(variants):
            scores = results["variants"][variant][key]["by_query_height"]
            values = [100 * (scores[b]["topk"]["1"] or 0) for b in buckets]
            ax.bar(np.arange(len(buckets)) + i * width, values, width, label=variant)
        ax.set_xticks(np.arange(len(buckets)) + width * (len(variants) - 1) / 2, [f"{b} px" for b in buckets])
        ax.set_title(f"top-1 by query height, {title}")
        ax.set_xlabel("query person height")
    axes[0].set_ylabel("top-1 (%)")
    axes[0].legend()
    fig.suptitle(f"synthetic '{results['preset']}' benchmark, gallery {results['gallery_size']}, seed {results['seed']}")
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="standard")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "ablation")
    parser.add_argument("--variants", nargs="+", default=["single", "multi", "clsa"])
    parser.add_argument("--epochs", type=int, default=20, help="re-id epochs, the same for every variant")
    parser.add_argument("--input", default="128x64", help="re-id input HxW")
    parser.add_argument("--backbone", default="mobilenet_v2")
    parser.add_argument("--detector-epochs", type=int, default=1)
    parser.add_argument("--detector-scenes", type=int, default=400, help="train the shared detector on this many training scenes (CPU budget)")
    parser.add_argument("--gallery-size", type=int, default=100)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "ablation.json")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "ablation.png")
    args = parser.parse_args()

    started = time.perf_counter()
    args.work.mkdir(parents=True, exist_ok=True)
    data_dir = args.work / "data"
    if not (data_dir / "synthetic.json").is_file():
        make_synthetic(data_dir, preset=args.preset, seed=args.seed)
    dataset = load_dataset(data_dir)
    timings = {"data": time.perf_counter() - started}

    det_dir = args.work / "detector"
    det_config = DetectorTrainConfig(dataset=str(data_dir), epochs=args.detector_epochs, seed=args.seed)
    t = time.perf_counter()
    if not (det_dir / "detector.safetensors").is_file():
        det_summary = train_detector(det_config, det_dir, scenes=dataset.train[: args.detector_scenes])
    else:
        det_summary = json.loads((det_dir / "detector.json").read_text())["metadata"]["summary"]
    timings["detector_train"] = time.perf_counter() - t

    height, width = (int(v) for v in args.input.split("x"))
    base = ReIDTrainConfig(
        dataset=str(data_dir),
        backbone=args.backbone,
        input_size=(height, width),
        epochs=args.epochs,
        batch_size=64,
        seed=args.seed,
        optim=OptimConfig(warmup_steps=100),
    )
    results: dict = {
        "preset": args.preset,
        "seed": args.seed,
        "gallery_size": args.gallery_size,
        "commit": commit(),
        "dataset": {"train_scenes": len(dataset.train), "gallery_scenes": len(dataset.gallery), "queries": len(dataset.queries)},
        "detector": {"config": to_dict(det_config), "train_scenes": min(args.detector_scenes, len(dataset.train)), "train": det_summary},
        "reid_budget": {k: v for k, v in to_dict(base).items() if k not in {"dataset", "variant"}},
        "variants": {},
    }
    shared_dets = None
    for variant in args.variants:
        vdir = args.work / f"reid-{variant}"
        t = time.perf_counter()
        if not (vdir / "reid.safetensors").is_file():
            summary = train_reid(replace(base, variant=variant), vdir)
        else:
            summary = json.loads((vdir / "reid.json").read_text())["metadata"]["summary"]
        for part in ("detector.json", "detector.safetensors"):
            (vdir / part).write_bytes((det_dir / part).read_bytes())
        bundle = ModelBundle(vdir)
        if shared_dets is None:
            t_det = time.perf_counter()
            shared_dets = gallery_detections(bundle, dataset, args.work / "gallery_detections.npz")
            timings["gallery_detection"] = time.perf_counter() - t_det
        result = evaluate_engine(bundle, dataset, gallery_size=args.gallery_size, detections=shared_dets)
        results["detector"]["evaluation"] = result.detection.to_dict()
        results["variants"][variant] = {
            "train": summary,
            "search": result.search.to_dict(),
            "search_gt_boxes": result.search_gt.to_dict(),
        }
        timings[f"reid_{variant}"] = time.perf_counter() - t
        print(f"== {variant}")
        print(result.format_table())
    timings["total"] = time.perf_counter() - started
    results["timings_s"] = {k: round(v, 1) for k, v in timings.items()}

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    plot(results, args.plot)
    print("\nvariant   mAP(det)  top1(det)  mAP(gt)  top1(gt)   top-1 by query height (gt boxes)")
    for variant, r in results["variants"].items():
        by = r["search_gt_boxes"]["by_query_height"]
        buckets = "  ".join(f"{b}:{100 * (s['topk']['1'] or 0):.1f}" for b, s in by.items())
        print(
            f"{variant:8s} {100 * r['search']['mAP']:8.2f} {100 * r['search']['topk']['1']:10.2f} "
            f"{100 * r['search_gt_boxes']['mAP']:8.2f} {100 * r['search_gt_boxes']['topk']['1']:9.2f}   {buckets}"
        )
    print(f"wrote {args.out} and {args.plot}")


if __name__ == "__main__":
    main()
