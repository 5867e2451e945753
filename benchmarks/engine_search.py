"""What each inference engine does to search accuracy: the check behind the engine chooser's rule.

    python benchmarks/engine_search.py          # needs data/synthetic-standard (below)

On the test split of ``--data`` (the synthetic ``standard`` benchmark by default: 350 queries,
gallery 100, people 20-400 px; ``personsearch make-synthetic data/synthetic-standard --preset
standard --seed 0`` writes it), with the bundle's two networks:

* **re-id engines** (``--reid-engines``): the detector runs once (ONNX Runtime fp32, the same
  boxes as PyTorch fp32) and every re-id engine embeds those detections, the ground-truth boxes
  and the queries;
* **detector engines** (``--detector-engines``): each finds the gallery's people and the re-id
  network embeds them on ONNX Runtime fp32 (the same features as PyTorch fp32).

Each is scored with the benchmark's protocol (detection recall / AP; search mAP and top-1 with
detections and with ground-truth boxes) and against the first engine of its list (the
reference): the mAP difference with its paired standard error over queries, and how many queries
it finds at rank 1 that the reference misses, and the reverse. The chooser's verdict on each
engine (``personsearch bench-engines``) is printed beside it. Writes
``benchmarks/results/engine_search-<cpu signature>.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from run_info import ROOT, write_per_cpu_results

from personsearch.data import load_dataset
from personsearch.evaluation.pipeline import PipelineResult, evaluate_engine, run_gallery
from personsearch.models import engine_choice, engines
from personsearch.models.bundle import ModelBundle, probe_crops

PARTS = ("detections", "gt_boxes")


def verdicts(bundle_dir: Path, reid: list[str], detector: list[str]) -> dict[str, dict[str, Any]]:
    """The chooser's agreement and verdict for each engine, per network (its timing is not kept)."""
    bundle = ModelBundle(bundle_dir, engine="torch-fp32")
    measured = engine_choice.measure_reid(
        bundle.reid_engine, reid, probe_crops(bundle.reid_config.input_size)[0]
    )
    measured += engine_choice.measure_detector(bundle.detector_engine, detector, engine_choice.check_scenes())
    return {
        f"{m.network} {m.engine}": {"accepted": m.accepted, "agreement": m.agreement, "note": m.note}
        for m in measured
    }


def scores(result: PipelineResult) -> dict[str, Any]:
    """Detection recall / AP, and per search mode its mAP, top-1 and per-query AP and top-1 hits."""
    searches = {"detections": result.search, "gt_boxes": result.search_gt}
    return {
        "detection": {"recall": result.detection.recall, "ap": result.detection.ap},
        "mAP": {part: r.mAP for part, r in searches.items()},
        "top1": {part: r.topk[1] for part, r in searches.items()},
        "per_query_ap": {part: r.ap.tolist() for part, r in searches.items()},
        "per_query_top1": {part: r.top1.tolist() for part, r in searches.items()},
    }


def against(row: dict[str, Any], reference: dict[str, Any]) -> dict[str, Any]:
    """Paired differences over the same queries: mAP (with its standard error), top-1 lost / gained."""
    out = {}
    for part in PARTS:
        ap = np.array(row["per_query_ap"][part]) - np.array(reference["per_query_ap"][part])
        hit, ref_hit = np.array(row["per_query_top1"][part]), np.array(reference["per_query_top1"][part])
        out[part] = {
            "mAP_difference": float(ap.mean()),
            "mAP_difference_se": float(ap.std(ddof=1) / np.sqrt(len(ap))),
            "queries_top1_lost": int(np.sum(ref_hit > hit)),
            "queries_top1_gained": int(np.sum(ref_hit < hit)),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bundle", type=Path, default=ROOT / "personsearch" / "assets" / "default")
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "synthetic-standard")
    parser.add_argument("--reid-engines", default="torch-fp32,ort-fp32,torch-bf16,ov-bf16,ort-int8")
    parser.add_argument("--detector-engines", default="ort-fp32,ov-bf16-head,ort-int8-head,torch-bf16")
    parser.add_argument("--gallery-size", type=int, default=100)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    wanted = {
        "reid": [n for n in args.reid_engines.split(",") if n],
        "detector": [n for n in args.detector_engines.split(",") if n],
    }
    unavailable = {
        (network, n): engines.unavailable(engines.engine_for(n, network))
        for network, names in wanted.items()
        for n in names
    }
    runnable = {
        network: [n for n in names if unavailable[network, n] is None] for network, names in wanted.items()
    }
    dataset = load_dataset(args.data)
    chooser = verdicts(args.bundle, runnable["reid"], runnable["detector"])

    # The re-id rows share ONNX Runtime fp32 detections; the detector row of that same engine is the
    # same evaluation as the ONNX Runtime fp32 re-id row, so each evaluation runs once.
    detections, _, _ = run_gallery(
        ModelBundle(args.bundle, engine="ort-fp32"), dataset.gallery, progress=False
    )
    evaluated: dict[str, dict[str, Any]] = {}

    def evaluate(reid: str, detector: str) -> dict[str, Any]:
        engine = f"reid={reid},detector={detector}"
        if engine not in evaluated:
            started = time.perf_counter()
            shared = detections if detector == "ort-fp32" else None
            result = evaluate_engine(
                ModelBundle(args.bundle, engine=engine),
                dataset,
                gallery_size=args.gallery_size,
                detections=shared,
                progress=False,
            )
            evaluated[engine] = {**scores(result), "seconds": round(time.perf_counter() - started, 1)}
        return evaluated[engine]

    rows: dict[str, dict[str, Any]] = {"reid": {}, "detector": {}}
    for name in runnable["reid"]:
        rows["reid"][name] = {**evaluate(name, "ort-fp32"), "chooser": chooser.get(f"reid {name}")}
        print(f"re-id {name} done", flush=True)
    for name in runnable["detector"]:
        rows["detector"][name] = {**evaluate("ort-fp32", name), "chooser": chooser.get(f"detector {name}")}
        print(f"detector {name} done", flush=True)
    for network, table in rows.items():
        if table:
            reference = table[runnable[network][0]]
            for row in table.values():
                row["vs_reference"] = against(row, reference)

    out, results = write_per_cpu_results(
        "engine_search",
        {
            "bundle": str(args.bundle),
            "data": str(args.data),
            "gallery_size": args.gallery_size,
            "queries": len(dataset.queries),
            "threads": torch.get_num_threads(),
            "unavailable": {f"{network} {n}": why for (network, n), why in unavailable.items() if why},
            "engines": rows,
        },
        args.out,
    )
    signature = results["signature"]

    print(
        f"{signature['cpu']} ({signature['torch_capability']}), {args.data}, "
        f"{len(dataset.queries)} queries, gallery {args.gallery_size}"
    )
    for network, table in rows.items():
        if not table:
            continue
        reference = runnable[network][0]
        print(
            f"\n{network + ' engine':16s} {'chooser':9s} {'recall / AP':14s} "
            f"{'mAP / top-1, detections':24s} {'ground-truth boxes':19s} mAP diff (se); "
            f"top-1 lost / gained vs {reference}: det | gt"
        )
        for name, row in table.items():
            verdict = "accepted" if (row["chooser"] or {}).get("accepted") else "refused"
            det = f"{100 * row['detection']['recall']:.2f} / {100 * (row['detection']['ap'] or 0):.2f}"
            d = f"{100 * row['mAP']['detections']:.2f} / {100 * row['top1']['detections']:.2f}"
            g = f"{100 * row['mAP']['gt_boxes']:.2f} / {100 * row['top1']['gt_boxes']:.2f}"
            v = row["vs_reference"]
            diffs = " | ".join(
                f"{100 * v[p]['mAP_difference']:+.2f} ({100 * v[p]['mAP_difference_se']:.2f}); "
                f"{v[p]['queries_top1_lost']} / {v[p]['queries_top1_gained']}"
                for p in PARTS
            )
            print(f"{name:16s} {verdict:9s} {det:14s} {d:24s} {g:19s} {diffs}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
