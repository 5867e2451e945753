"""What quantisation-aware distillation buys the int8 re-id engine: a distilled bundle against
the one it was distilled from, by the engine chooser's rule and by search accuracy.

    personsearch distill-int8 --data data/synthetic-standard --out runs/int8      # ~25 min on 2 cores
    python benchmarks/int8_distill.py --student runs/int8

For the original (teacher) and the distilled (student) re-id network: int8 (the ``ort-int8``
engine's graph, ``engines.quantize_reid_int8``) against the network's own fp32 features, on the
chooser's 64 check crops and on 512 crops of the people of another synthetic benchmark (``small``,
seed 7, never trained on); the student's fp32 features against the teacher's; and CUHK-SYSU
search scores on ``--data``'s test split with ground-truth boxes and with one shared set of
detections (the teacher's detector on ONNX Runtime fp32), for each network on ONNX Runtime fp32
and int8. Writes ``benchmarks/results/int8_distill.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch
from int8_settings import people_crops
from run_info import ROOT, commit, machine, write_results

from personsearch.data import load_dataset
from personsearch.data.crops import normalize_crops
from personsearch.evaluation.pipeline import evaluate_engine, run_gallery
from personsearch.models import engine_choice
from personsearch.models.bundle import ModelBundle, load_component, probe_crops, read_component
from personsearch.training.int8_distill import features, int8_agreement


def agreements(
    bundle: Path, crops: dict[str, torch.Tensor], calibration: Any
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The bundle's int8 against its own fp32 on each set of crops, and its fp32 features."""
    network, _, _ = load_component(bundle, "reid")
    int8 = int8_agreement(network, calibration, crops)
    reference = {name: features(network, x) for name, x in crops.items()}
    return {
        "int8_vs_own_fp32": int8,
        "accepted": all(engine_choice.features_agree(a) for a in int8.values()),
    }, reference


def summary(search: dict[str, Any]) -> dict[str, Any]:
    """A search result without its per-query lists (the scores and their breakdowns by height)."""
    return {k: v for k, v in search.items() if k != "per_query"}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--teacher", type=Path, default=ROOT / "personsearch" / "assets" / "default")
    parser.add_argument("--student", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "synthetic-standard")
    parser.add_argument("--gallery-size", type=int, default=100)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "int8_distill.json")
    args = parser.parse_args()

    config, _ = read_component(args.teacher, "reid")
    check, calibration_crops = probe_crops(config.input_size)
    crops = {"check": check, "held_out": normalize_crops(people_crops(7, 512, tuple(config.input_size)))}
    calibration = calibration_crops.numpy()
    rows: dict[str, Any] = {}
    teacher_rows, teacher_features = agreements(args.teacher, crops, calibration)
    student_rows, student_features = agreements(args.student, crops, calibration)
    student_rows["fp32_vs_teacher_fp32"] = {
        name: engine_choice.feature_agreement(teacher_features[name].numpy(), student_features[name].numpy())
        for name in crops
    }
    rows = {"teacher": teacher_rows, "student": student_rows}

    dataset = load_dataset(args.data)
    started = time.perf_counter()
    detections, _, _ = run_gallery(
        ModelBundle(args.teacher, engine="ort-fp32"), dataset.gallery, progress=False
    )
    detect_s = time.perf_counter() - started
    search: dict[str, Any] = {}
    for label, bundle in (("teacher", args.teacher), ("student", args.student)):
        for engine in ("ort-fp32", "ort-int8"):
            result = evaluate_engine(
                ModelBundle(bundle, engine=f"reid={engine},detector=ort-fp32"),
                dataset,
                gallery_size=args.gallery_size,
                detections=detections,
                progress=False,
            )
            search[f"{label} {engine}"] = {
                part: summary(r.to_dict())
                for part, r in (("detections", result.search), ("gt_boxes", result.search_gt))
            }
            print(f"{label} {engine}: done", flush=True)

    results = {
        "benchmark": "int8_distill",
        "commit": commit(),
        "machine": machine(),
        "teacher": str(args.teacher),
        "student": str(args.student),
        "distillation": json.loads((args.student / "reid.json").read_text())["metadata"].get(
            "int8_distillation"
        ),
        "rule": {
            "cos_median": engine_choice.COSINE_MEDIAN,
            "cos_min": engine_choice.COSINE_MIN,
            "nn_same": engine_choice.NEIGHBOUR_AGREEMENT,
        },
        "agreement": rows,
        "data": str(args.data),
        "gallery_size": args.gallery_size,
        "detect_s": round(detect_s, 1),
        "search": search,
    }
    write_results(args.out, results)

    def cells(a: dict[str, float]) -> str:
        return f"{a['cos_median']:.3f} / {a['cos_min']:.3f} / {a['nn_same']:.2f}"

    print(f"{'cosine median / min / same NN':34s} {'check crops':22s} 512 other people")
    for label in ("teacher", "student"):
        a = rows[label]["int8_vs_own_fp32"]
        print(
            f"{label + ' int8 vs its fp32':34s} {cells(a['check']):22s} {cells(a['held_out'])}   "
            f"{'accepted' if rows[label]['accepted'] else 'refused'}"
        )
    a = rows["student"]["fp32_vs_teacher_fp32"]
    print(f"{'student fp32 vs teacher fp32':34s} {cells(a['check']):22s} {cells(a['held_out'])}")
    print(
        f"\nsearch on {args.data} (gallery {args.gallery_size}): mAP / top-1, detections | ground-truth boxes"
    )
    for name, r in search.items():
        d, g = r["detections"], r["gt_boxes"]
        print(
            f"{name:22s} {100 * d['mAP']:.1f} / {100 * d['topk']['1']:.1f} | "
            f"{100 * g['mAP']:.1f} / {100 * g['topk']['1']:.1f}"
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
