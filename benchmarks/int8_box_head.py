"""The detector's box head in int8 (``ort-int8-head``), by weight grid, on this machine: which
grid keeps the boxes of the shipped detector within the engine chooser's rule, and at what speed.

    python benchmarks/int8_box_head.py --bundle personsearch/assets/default

Grids: s8 weights on the full 8-bit grid (what the engine uses; before engines revision 8 only
where the CPU has VNNI), s8 on a 7-bit grid (the re-id engine's remedy for ONNX Runtime's
saturating u8 x s8 kernel on AVX2) and u8 weights (the u8 x u8 kernel, no saturation: what the
engine used without VNNI before revision 8). Each quantises the same exported
head, calibrated as the engine does it (``engines.box_head_inputs`` on
``engine_choice.calibration_scenes``), and the trunk and RPN head stay on ONNX Runtime fp32.
Boxes are compared with PyTorch fp32 on the chooser's 12 crowded check scenes
(``engine_choice.detection_agreement``); timing on the first ``TIMED_SCENES`` of them, ``--rounds``
rounds in alternating order, each as the median ratio to PyTorch fp32 in the same round (ONNX
Runtime fp32 alongside). A grid's agreement is close across CPUs but not identical (the 8-bit s8
head matched 99.1 % of the boxes on a Zen 5 and 98.3 % on an Intel Xeon with AMX: one box), which
is why the engine chooser checks it on every machine; its speed differs more. Writes
``benchmarks/results/int8_box_head-<cpu signature>.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from engines import time_engines
from run_info import ROOT, write_per_cpu_results

from personsearch.models import engine_choice, engines
from personsearch.models.bundle import load_component
from personsearch.models.detector import image_tensors

GRIDS: dict[str, dict[str, Any]] = {
    "s8, 8-bit (the engine's)": {"weights": "int8"},
    "s8, 7-bit": {"weights": "int8", "reduce_range": True},
    "u8": {"weights": "uint8"},
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bundle", type=Path, default=ROOT / "personsearch" / "assets" / "default")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    detector, _, _ = load_component(args.bundle, "detector")
    detector.eval()
    scenes = image_tensors(engine_choice.check_scenes())
    timed = scenes[: engine_choice.TIMED_SCENES]
    reference_run = engines.torch_detector(detector, engines.REFERENCE, torch.device("cpu"))
    with torch.no_grad():
        reference = [engines.as_detections(reference_run([scene]))[0] for scene in scenes]

    rows: dict[str, dict[str, Any]] = {}
    runners: dict[str, Callable[..., Any]] = {engines.REFERENCE: lambda: reference_run(timed)}
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        parts = engines.export_detector(detector, tmp)
        calibration = engines.box_head_inputs(detector, parts, engine_choice.calibration_scenes())
        heads = {"ort-fp32": parts[2]}
        for i, (name, grid) in enumerate(GRIDS.items()):
            heads[name] = engines.quantize_int8(parts[2], Path(tmp) / f"head-{i}.onnx", calibration, **grid)
        for name, head in heads.items():
            run = engines.graph_detect(detector, [parts[0], parts[1], head])
            agreement = engine_choice.detection_agreement(
                reference, [engines.as_detections(run([scene]))[0] for scene in scenes]
            )
            rows[name] = {"agreement": agreement, "accepted": engine_choice.detections_agree(agreement)}
            runners[name] = lambda r=run: r(timed)
        timing = time_engines(runners, len(timed), args.rounds, args.calls)
    for name in rows:
        rows[name].update(timing[name], x_ort_fp32=timing[name]["per_s"] / timing["ort-fp32"]["per_s"])

    out, results = write_per_cpu_results(
        "int8_box_head",
        {
            "bundle": str(args.bundle),
            "threads": args.threads,
            "rounds": args.rounds,
            "calibration_crops": len(calibration),
            "torch_fp32_per_s": timing[engines.REFERENCE]["per_s"],
            "rule": {"matched": engine_choice.BOX_MATCHED, "iou": engine_choice.BOX_IOU},
            "grids": rows,
        },
        args.out,
    )
    signature = results["signature"]
    print(
        f"{signature['cpu']} ({signature['torch_capability']}, "
        f"flags {' '.join(signature.get('flags', []))}), {args.threads} threads"
    )
    print(
        f"PyTorch fp32 eager: {timing[engines.REFERENCE]['per_s']:.2f} scenes/s; "
        f"head calibrated on {len(calibration)} RoI crops"
    )
    print(
        f"{'box head':24s} {'x fp32':>7s} {'x ORT':>6s}  {'matched':>8s} {'count':>6s} "
        f"{'shift px':>8s}  verdict"
    )
    for name, row in rows.items():
        a = row["agreement"]
        print(
            f"{name:24s} {row['x_fp32']:6.2f}x {row['x_ort_fp32']:5.2f}x  "
            f"{100 * a['matched']:7.1f}% {a['count_ratio']:6.3f} {a['max_shift_px']:8.2f}  "
            f"{'accepted' if row['accepted'] else 'refused'}"
        )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
