"""What each re-id variant of the ablation costs per crop on this CPU: the networks of
``ablation.py`` (the same input size and backbone) with random weights, timed in ONNX Runtime fp32
(the engine the product chooses for re-id on every CPU measured so far) and PyTorch fp32, batches
of 32, best of 5 after a warm-up. Weights do not change the time, so no training is needed.

    python benchmarks/reid_cost.py            # on a quiet machine: results/reid_cost-<cpu>.json
    python benchmarks/reid_cost.py --input 256x128 --variant clsa --instance-norm layer1 layer2 layer3 \
        --out benchmarks/results/reid_cost_ibn-<cpu>.json   # the shipped network with and without IBN-a

Parameters and GFLOPs per crop (machine-independent) are in ``ablation.json``'s ``cost``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from ablation import VARIANTS
from run_info import write_per_cpu_results

from personsearch.models.engines import export_reid, graph_reid
from personsearch.models.reid import ReIDConfig, build_reid


def timed(config: ReIDConfig, work: Path, batch: int, rounds: int) -> dict[str, Any]:
    """Milliseconds per crop of ``config``'s network in ONNX Runtime fp32 and PyTorch fp32; where
    the network does not export to ONNX, why (and PyTorch's time alone)."""
    network = build_reid(replace(config, num_classes=1, pretrained=None)).eval()
    x = torch.randn(batch, 3, *config.input_size, generator=torch.Generator().manual_seed(0))
    engines: dict[str, Any] = {"torch-fp32": network}
    out: dict[str, Any] = {}
    work.mkdir(parents=True, exist_ok=True)
    try:
        engines["ort-fp32"] = graph_reid(export_reid(network, work / f"{config.variant}.onnx"), "ort-fp32")
    except Exception as err:  # torch.onnx raises its own error types for unsupported operators
        out["ort-fp32_unavailable"] = str(err).splitlines()[0][:200]
    for name, run in engines.items():
        with torch.no_grad():
            run(x)  # warm-up
            best = float("inf")
            for _ in range(rounds):
                began = time.perf_counter()
                run(x)
                best = min(best, time.perf_counter() - began)
        out[f"ms_per_crop_{name}"] = 1000 * best / batch
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--input", default="128x64", help="re-id input HxW (the ablation's)")
    parser.add_argument("--backbone", default="mobilenet_v2")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--variant", action="append", choices=VARIANTS, help="only these (default: all)")
    parser.add_argument(
        "--instance-norm",
        nargs="*",
        default=[],
        metavar="STAGE",
        help="also time each variant with IBN-a in these stages (model.instance_norm), as VARIANT+ibn",
    )
    parser.add_argument("--out", type=Path, help="the results file (default: results/reid_cost-<cpu>.json)")
    args = parser.parse_args()
    height, width = (int(v) for v in args.input.split("x"))
    base = ReIDConfig(backbone=args.backbone, input_size=(height, width))
    configs = {v: replace(base, variant=v) for v in args.variant or VARIANTS}
    if args.instance_norm:
        configs |= {
            f"{v}+ibn": replace(c, instance_norm=tuple(args.instance_norm)) for v, c in configs.items()
        }
    with tempfile.TemporaryDirectory() as work:
        variants = {
            name: timed(config, Path(work) / name, args.batch, args.rounds)
            for name, config in configs.items()
        }
    for variant, figures in variants.items():
        print(f"{variant:14s} " + "  ".join(f"{k} {v}" for k, v in figures.items()), flush=True)
    path, _ = write_per_cpu_results(
        "reid_cost",
        {
            "command": " ".join(["python", "benchmarks/reid_cost.py", *sys.argv[1:]]),
            "input": args.input,
            "backbone": args.backbone,
            "batch": args.batch,
            "rounds": args.rounds,
            "instance_norm": args.instance_norm,
            "variants": variants,
        },
        out=args.out,
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
