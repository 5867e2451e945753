"""The speed targets' GPU row: what one GPU does with the shipped pair and the paper's ResNet-50
pair, mixed precision against fp32, end to end in scene images/s.

    PYTHONPATH=. python3 benchmarks/gpu_row.py              # on a machine with a CUDA GPU
    python benchmarks/gpu_row.py --device cpu --scenes 4   # the same steps on this CPU: a check of the script

Engines: PyTorch fp32 (the reference) and the GPU's mixed precision (engine ``torch-bf16``: bf16
autocast, fp16 on GPUs before Ampere). Cases, each timed in ``--rounds`` rounds alternating the two
engines, ratios to fp32 in the same round (``engines.time_engines``):

- the shipped pair indexing ``--scenes`` crowded 800 x 600 probe scenes (detect, crop, embed, as
  ``personsearch index`` does), one scene per detector call and 8 (the indexer's batch);
- each network alone: detector scenes/s at batch 1 and 8, re-id crops/s at batch 32, for the
  shipped networks and for the paper's ResNet-50 ones (random weights: speed only).

Agreement of mixed precision with fp32 on the shipped pair, by the engine chooser's rule: boxes on
its 12 crowded check scenes, features of its 64 probe crops; then what ``--engine auto`` picks on
the device, measured afresh (its table). SeqNet reports 11.5 frames/s for its
whole pipeline on one GPU. It imports no index, web or ONNX code, so it runs on a bare PyTorch
image with ``PYTHONPATH=.``. Writes ``benchmarks/results/gpu_row-<device name>.json`` on a GPU
(``--out`` anywhere) and prints a table.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from engines import time_engines
from run_info import RESULTS, ROOT, commit, machine, write_results

from personsearch.data.crops import normalize_crops
from personsearch.models import engine_choice, engines
from personsearch.models.bundle import ModelBundle
from personsearch.models.detector import DetectorConfig, build_detector, image_tensors
from personsearch.models.fast import autocast_dtype
from personsearch.models.machine import CACHE_ENV
from personsearch.models.reid import ReIDConfig, build_reid

SHIPPED = ROOT / "personsearch" / "assets" / "default"
MIXED = "torch-bf16"
INDEX_BATCH = 8
"""Frames per detector call when ``personsearch index`` runs (its ``batch_size`` default)."""


def indexing(bundle: ModelBundle, scenes: list[np.ndarray], batch: int) -> Callable[[], None]:
    """Detect, crop and embed every scene, ``batch`` scenes per detector call."""

    def run() -> None:
        for start in range(0, len(scenes), batch):
            chunk = scenes[start : start + batch]
            for image, dets in zip(chunk, bundle.detect(chunk), strict=True):
                if len(dets):
                    bundle.embed(image, dets[:, :4])

    return run


def network_cases(
    label: str,
    detector: torch.nn.Module,
    reid: torch.nn.Module,
    scenes: list[np.ndarray],
    crops: torch.Tensor,
    device: torch.device,
    args: argparse.Namespace,
) -> list[dict[str, Any]]:
    """Detector scenes/s (batch 1 and ``INDEX_BATCH``) and re-id crops/s (batch 32) on both engines."""
    tensors = image_tensors(scenes)
    with tempfile.TemporaryDirectory() as work:
        detect = {
            e: engines.detector_runner(detector, e, device, Path(work)) for e in (engines.REFERENCE, MIXED)
        }
        embed = {
            e: engines.reid_runner(reid, e, device, Path(work), lambda: np.zeros(0))
            for e in (engines.REFERENCE, MIXED)
        }
        cases = []
        for batch in (1, INDEX_BATCH):
            chunks = [tensors[k : k + batch] for k in range(0, len(tensors), batch)]
            runs: dict[str, Callable[..., Any]] = {
                e: (lambda run=run, chunks=chunks: [engines.as_detections(run(chunk)) for chunk in chunks])
                for e, run in detect.items()
            }
            cases.append(
                {
                    "case": f"{label} detector, {batch} scene(s) per call",
                    "unit": "scenes",
                    "engines": time_engines(runs, len(tensors), args.rounds, args.calls),
                }
            )
        batch32 = crops[:32]
        runs = {e: (lambda run=run: run(batch32)) for e, run in embed.items()}
        cases.append(
            {
                "case": f"{label} re-id, 32 crops per call",
                "unit": "crops",
                "engines": time_engines(runs, len(batch32), args.rounds, args.calls),
            }
        )
    return cases


def random_resnet50_pair() -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    return build_detector(DetectorConfig(backbone="resnet50", pretrained=None)).eval(), build_reid(
        ReIDConfig(num_classes=100, backbone="resnet50", pretrained=None)
    ).eval()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda")
    parser.add_argument(
        "--bundle", type=Path, default=SHIPPED, help="the trained pair (default: the shipped model)"
    )
    parser.add_argument("--scenes", type=int, default=32, help="crowded probe scenes indexed per timed call")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=2, help="timed calls per engine per round (best kept)")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="results file (default on a GPU: benchmarks/results/gpu_row-<device>.json)",
    )
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(
            "no CUDA GPU here; --device cpu runs the same steps on the CPU as a check of the script"
        )
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"

    scenes = engine_choice.crowded_scenes(engine_choice.PROBE_SEED + 4, args.scenes)
    check = engine_choice.check_scenes()
    fp32, mixed = (ModelBundle(args.bundle, device=str(device), engine=e) for e in (engines.REFERENCE, MIXED))
    _, crops = engine_choice.probe_set(tuple(fp32.reid_config.input_size))
    agreement = {
        "detections": engine_choice.detection_agreement(fp32.detect(check), mixed.detect(check)),
        "features": engine_choice.feature_agreement(
            fp32.embed_crops(crops[:64]), mixed.embed_crops(crops[:64])
        ),
    }
    cases: list[dict[str, Any]] = []
    for batch in (1, INDEX_BATCH):
        runs = {engines.REFERENCE: indexing(fp32, scenes, batch), MIXED: indexing(mixed, scenes, batch)}
        cases.append(
            {
                "case": f"shipped pair, indexing, {batch} scene(s) per detector call",
                "unit": "scenes",
                "engines": time_engines(runs, len(scenes), args.rounds, args.calls),
            }
        )
        print(cases[-1]["case"], "done", flush=True)
    probe = normalize_crops(crops)
    cases += network_cases("shipped", fp32.detector_network, fp32.reid_network, scenes, probe, device, args)
    print("shipped networks done", flush=True)
    cases += network_cases("ResNet-50 (random weights)", *random_resnet50_pair(), scenes, probe, device, args)

    print(
        f"\n{name}: PyTorch {torch.__version__}, mixed precision = {autocast_dtype(device)} autocast; "
        f"{args.rounds} rounds"
    )
    print(f"{'case':62s} {'fp32 /s':>9s} {'mixed /s':>9s} {'x fp32':>7s}")
    for case in cases:
        ref, mix = case["engines"][engines.REFERENCE], case["engines"][MIXED]
        print(f"{case['case']:62s} {ref['per_s']:9.1f} {mix['per_s']:9.1f} {mix['x_fp32']:7.2f}")
    verdict = (
        "agrees"
        if engine_choice.detections_agree(agreement["detections"])
        and engine_choice.features_agree(agreement["features"])
        else "does NOT agree"
    )
    print(f"mixed precision {verdict} with fp32 by the engine chooser's rule: {agreement}")
    with tempfile.TemporaryDirectory() as cache:  # what `--engine auto` picks on this device, measured afresh
        os.environ[CACHE_ENV] = cache  # the script ends here: nothing else reads the cache after it
        auto = ModelBundle(args.bundle, device=str(device), engine="auto").engine_choice
    print(auto.table())
    print(auto.summary())
    print("SeqNet (its paper): 11.5 frames/s for the whole pipeline on one GPU")

    out = args.out or (
        RESULTS / f"gpu_row-{re.sub(r'[^A-Za-z0-9]+', '-', name).strip('-').lower()}.json"
        if device.type == "cuda"
        else None
    )
    if out is not None:
        results = {
            "benchmark": "gpu_row",
            "commit": commit(),
            "command": "python benchmarks/gpu_row.py " + " ".join(sys.argv[1:]),
            "machine": machine(),  # the host's CPU feeds the GPU: the scenes are drawn and cropped there
            "device": name,
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "mixed_precision": str(autocast_dtype(device)),
            "scenes": args.scenes,
            "rounds": args.rounds,
            "agreement": agreement,
            "auto_choice": auto.to_json(),
            "cases": cases,
        }
        if device.type == "cuda":
            results["max_memory_allocated_gb"] = torch.cuda.max_memory_allocated(device) / 2**30
        print(f"wrote {write_results(out, results)}")


if __name__ == "__main__":
    main()
