"""The ablation's five re-id variants again, on rendered people (``benchmarks/ablation.py`` is the
synthetic one): does the ranking of ``single``, ``multi``, ``clsa``, ``image_pyramid`` and
``multi_branch`` hold on people with real human shape and shading?

    python benchmarks/rendered_people.py render --root data/people3d-v3 --identities 1000
    python benchmarks/ablation_rendered.py --root data/people3d-v3 --seeds 0

* Training: the synthetic ablation's recipe as its results file records it (``reid_budget`` of
  ``benchmarks/results/ablation.json``: ImageNet start, the same optimiser, augmentation and
  input size), on the rendered people's training split, ``--epochs`` passes (the same for every
  variant). Resumable: each run keeps its checkpoint in ``--work``.
* Test: the rendered set's held-out people (Market-1501 protocol: a query's own camera left out
  of its gallery). Rendered crops show every person at full size, so each test image is shown at
  a height a street camera would give (drawn once per image, the same for every network: a
  quarter of the images in each of the ablation's height bands), downsampled to that height and
  brought back to the network's input size, the way a small person's box is cut from a scene.
  Scored overall and by query height, and at full size.
* The fused baselines: every fusion is scored (``multi_branch`` also routed: each image to its
  height band's branch); the variant's row takes the fusion its synthetic run of the same seed
  chose on validation (``fuse_chosen`` in ablation.json; ``mean`` where it has none). There is no
  rendered validation split, so nothing here is chosen on the test split.

Writes ``benchmarks/results/ablation_rendered.json``: ``variants.<v>.per_seed.<seed>`` each run,
``variants.<v>.mean`` / ``std`` over seeds. Runs already in the file are kept when the data,
recipe and epochs are the same, so seeds can be added one session at a time.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from ablation import DESIGNS, FUSED, VARIANTS, budget_config, level_features, mean_std
from run_info import RESULTS, ROOT, commit, machine, write_results

from personsearch.data.records import HEIGHT_BUCKETS, height_bucket
from personsearch.data.reid_crops import GALLERY, QUERY, CropFolder, read_split
from personsearch.evaluation.reid_crops import STREET_HEIGHTS, at_heights, market_scores, street_heights
from personsearch.models.bundle import build_component, read_component
from personsearch.models.reid import FUSIONS, ReIDConfig, embed_crops, route_weights
from personsearch.training.reid import train_reid


def score(
    query: CropFolder, gallery: CropFolder, q: np.ndarray, g: np.ndarray, q_heights: np.ndarray
) -> dict[str, Any]:
    """Market-1501 scores overall and for the queries of each height band (against the whole gallery)."""
    out: dict[str, Any] = market_scores(q, query.pids, query.cams, g, gallery.pids, gallery.cams)
    buckets = np.array([height_bucket(h) for h in q_heights])
    out["by_query_height"] = {}
    for band, _, _ in HEIGHT_BUCKETS:
        pick = buckets == band
        out["by_query_height"][band] = {
            **market_scores(q[pick], query.pids[pick], query.cams[pick], g, gallery.pids, gallery.cams),
            "queries_in_band": int(pick.sum()),
        }
    return out


def evaluate(vdir: Path, query: CropFolder, gallery: CropFolder, fuse_chosen: str | None) -> dict[str, Any]:
    """One trained run's test scores: at street heights (each fusion of a fused baseline) and at full size."""
    config: ReIDConfig = read_component(vdir, "reid")[0]
    q_heights, g_heights = street_heights(len(query.pids), 1), street_heights(len(gallery.pids), 2)
    q_crops, g_crops = (
        at_heights(query.crops, q_heights, config.input_size),
        at_heights(gallery.crops, g_heights, config.input_size),
    )
    full = (
        at_heights(c, np.full(len(c), STREET_HEIGHTS[1]), config.input_size)
        for c in (query.crops, gallery.crops)
    )
    fusions = {}
    for fuse in FUSIONS if config.variant in FUSED else (config.fuse,):
        network = build_component(vdir, "reid", replace(config, fuse=fuse))
        q, g = embed_crops(network, q_crops), embed_crops(network, g_crops)
        fusions[fuse] = score(query, gallery, q, g, q_heights)
        if config.variant == "multi_branch" and fuse == "concat":  # routed: a slice of concat
            streams = len(config.bands) + 1
            fusions["route"] = score(
                query,
                gallery,
                level_features(q, streams, route_weights(q_heights, config.bands)),
                level_features(g, streams, route_weights(g_heights, config.bands)),
                q_heights,
            )
    used = fuse_chosen if fuse_chosen in fusions else next(iter(fusions))
    network = build_component(vdir, "reid", replace(config, fuse=used if used in FUSIONS else config.fuse))
    q_full, g_full = (embed_crops(network, c) for c in full)
    return {
        "street_heights": fusions[used],
        "full_size": market_scores(q_full, query.pids, query.cams, g_full, gallery.pids, gallery.cams),
        "fuse_used": used,
        **({"fusions": fusions} if len(fusions) > 1 else {}),
        "design": DESIGNS.get(config.variant, 1),
        "train": json.loads((vdir / "reid.json").read_text())["metadata"]["summary"],
        "machine": machine(),
    }


def synthetic_fusion(ablation: dict[str, Any], variant: str, seed: str) -> str | None:
    """The fusion the synthetic ablation's validation chose for this variant and seed."""
    run = ablation["variants"].get(variant, {}).get("per_seed", {}).get(seed, {})
    chosen = run.get("fuse_chosen")
    return str(chosen) if chosen else None


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", type=Path, default=ROOT / "data" / "people3d-v3", help="rendered people")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--epochs", type=int, default=4, help="passes over the rendered training split")
    parser.add_argument(
        "--ablation", type=Path, default=RESULTS / "ablation.json", help="the recipe's source"
    )
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "ablation_rendered")
    parser.add_argument("--out", type=Path, default=RESULTS / "ablation_rendered.json")
    args = parser.parse_args()

    ablation = json.loads(args.ablation.read_text())
    base = budget_config(ablation["reid_budget"])
    base = replace(base, data=replace(base.data, dataset=str(args.root)), epochs=args.epochs)
    render = json.loads((args.root / "people3d.json").read_text())
    setting = {
        "data": {"render": render["spec"], "generator_version": render["generator_version"]},
        "reid_budget": ablation["reid_budget"],
        "epochs": args.epochs,
    }
    earlier = json.loads(args.out.read_text()) if args.out.is_file() else {}
    kept = earlier.get("setting") == setting
    runs: dict[str, dict[str, Any]] = {
        v: dict(earlier["variants"][v]["per_seed"]) if kept and v in earlier.get("variants", {}) else {}
        for v in VARIANTS
    }
    query, gallery = (read_split(args.root, split, (256, 128)) for split in (QUERY, GALLERY))
    results: dict[str, Any] = {
        "benchmark": "ablation_rendered",
        "commit": commit(),
        "command": "python benchmarks/ablation_rendered.py " + " ".join(sys.argv[1:]),
        "machine": machine(),
        "setting": setting,
        "test": {
            "queries": len(query.pids),
            "gallery": len(gallery.pids),
            "heights": STREET_HEIGHTS,
            "bands": [name for name, _, _ in HEIGHT_BUCKETS],
        },
        "protocol": (
            "Market-1501 (a query's own camera left out of its gallery), mAP and CMC in %; "
            "street_heights: every test image shown at a height drawn once per image (a quarter "
            "per band); full_size: at the rendered size"
        ),
        "variants": {},
    }

    def write() -> None:
        for variant, per_seed in runs.items():
            if per_seed:
                mean, std = mean_std(
                    [{k: r[k] for k in ("street_heights", "full_size")} for r in per_seed.values()]
                )
                results["variants"][variant] = {
                    "seeds": sorted(map(int, per_seed)),
                    "mean": mean,
                    "std": std,
                    "per_seed": per_seed,
                }
        write_results(args.out, results)

    for seed in args.seeds:  # seed-major, as the synthetic ablation
        for variant in args.variants:
            if str(seed) in runs[variant]:
                print(f"== {variant} seed {seed}: kept from {args.out.name}", flush=True)
                continue
            began = time.perf_counter()
            vdir = args.work / f"reid-{variant}-s{seed}"
            if not (vdir / "reid.safetensors").is_file():
                vdir.mkdir(parents=True, exist_ok=True)
                train_reid(replace(base, model=replace(base.model, variant=variant), seed=seed), vdir)
            run = evaluate(vdir, query, gallery, synthetic_fusion(ablation, variant, str(seed)))
            runs[variant][str(seed)] = run
            street = run["street_heights"]
            print(
                f"== {variant} seed {seed} ({time.perf_counter() - began:.0f} s): street heights mAP "
                f"{street['mAP']:.1f} top-1 {street['top1']:.1f}, < 60 px top-1 "
                f"{street['by_query_height']['<60']['top1']:.1f}; "
                f"full size top-1 {run['full_size']['top1']:.1f}",
                flush=True,
            )
            write()
    write()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
