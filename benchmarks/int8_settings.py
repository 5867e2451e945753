"""Static int8 quantisation settings of the shipped re-id network, on this machine: which of ONNX
Runtime's remedies for CPUs without VNNI (where its u8 x s8 kernels can saturate) keeps the
features close enough to fp32 for the engine chooser to accept int8, and at what speed.

    python benchmarks/int8_settings.py --bundle personsearch/assets/default

Settings: the ``ort-int8`` engine's own (``engines.quantize_reid_int8``: 7-bit s8 weights, the
backbone only, min-max calibration on the chooser's 64 calibration crops); full 8-bit s8 weights
on those crops and on all 236 other probe crops; ``reduce_range`` (7-bit weights); u8
weights (the u8 x u8 kernel, no saturation); u8 weights with moving-average and entropy
calibration; the first convolution left in fp32 with s8 and with u8 weights; and, for CPUs with
VNNI (no saturation), the engine's graph with full 8-bit weights, with the first convolution in
fp32, with it and the first depthwise convolution in fp32 (mixed precision on the two layers that
cost most), and with every convolution in fp32, so that only the residual additions (and the
tensors into them) are int8: the floor of any layer-by-layer mixed precision. Every setting
quantises the same ONNX export and is scored by the chooser's rule
(``personsearch.models.engine_choice.features_agree``) against fp32 PyTorch, on the chooser's 64
check crops and on 512 crops of the people of another synthetic benchmark (``small``, seed 7).
Timing on a batch of 32 crops: ``--rounds`` rounds in alternating order, each setting's speed as
the median ratio to PyTorch fp32 eager in the same round (ONNX Runtime fp32 alongside). Writes
``benchmarks/results/int8_settings-<cpu signature>.json`` and prints a table.

    python benchmarks/int8_settings.py --layer-scan

instead quantises one backbone convolution at a time (8-bit s8 weights, everything else fp32,
accuracy only) and writes each layer's cost, 1 - cosine median on both crop sets, to
``benchmarks/results/int8_layer_scan-<cpu signature>.json``: where mixed precision could help.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from engines import time_engines
from run_info import ROOT, write_per_cpu_results

from personsearch.data.crops import normalize_crops
from personsearch.models import engine_choice, engines
from personsearch.models.bundle import CHECK_CROPS, load_component

STEM = "/backbone/stem/stem.0/Conv"
"""The first convolution of the exported MobileNetV2 re-id network: the layer whose quantisation
costs most on an AVX2 CPU (an exploratory scan quantising all but one layer at a time: leaving
it in fp32 raised the check crops' cosine min from 0.78 to 0.91, no other layer above 0.79)."""
FIRST_DEPTHWISE = "/backbone/layer1/layer1.1/conv/conv.0/conv.0.0/Conv"
"""The first depthwise convolution: with the stem, the layer whose quantisation costs most with
8-bit weights on a VNNI CPU (``--layer-scan`` on a Zen 5: 1 - cosine median 0.012 for it, 0.006
for the stem and for the next block's two, 0.004-0.0057 for every other layer).
Leaving only it in fp32 is worse than quantising it (the quantisation boundary moves to the stem's
unclipped output), so the two go together."""
SETTINGS: dict[str, dict[str, Any]] = {
    "ort-int8 engine (7-bit s8, heads fp32)": {"calibration": "small", "engine": True},
    "s8 weights, 64 crops": {"calibration": "small"},
    "s8 weights, 236 crops": {},
    "s8 7-bit weights (reduce_range)": {"reduce_range": True},
    "u8 weights": {"weights": "uint8"},
    "u8 weights, moving-average calibration": {
        "weights": "uint8",
        "extra_options": {"CalibMovingAverage": True},
    },
    "u8 weights, entropy calibration": {"weights": "uint8", "method": "entropy"},
    "s8 weights, stem in fp32": {"keep_fp32": [STEM]},
    "u8 weights, stem in fp32": {"weights": "uint8", "keep_fp32": [STEM]},
    "8-bit s8 weights, heads fp32 (VNNI)": {"calibration": "small", "heads_fp32": True},
    "8-bit s8 weights, heads + stem fp32 (VNNI)": {
        "calibration": "small",
        "heads_fp32": True,
        "keep_fp32": [STEM],
    },
    "8-bit s8, heads + stem + 1st depthwise fp32": {
        "calibration": "small",
        "heads_fp32": True,
        "keep_fp32": [STEM, FIRST_DEPTHWISE],
    },
    "every convolution fp32 (residual adds int8)": {
        "calibration": "small",
        "heads_fp32": True,
        "all_convolutions_fp32": True,
    },
}


def people_crops(seed: int, count: int, size: tuple[int, int]) -> torch.Tensor:
    """``count`` crops of the people of the ``small`` synthetic benchmark drawn with ``seed``."""
    from personsearch.data.crops import crop_boxes
    from personsearch.data.synthetic.plan import plan_benchmark, resolve_config
    from personsearch.data.synthetic.scenes import render_scene

    parts, total = [], 0
    for planned in plan_benchmark(resolve_config("small"), seed).images:
        boxes = np.array([p.box for p in planned.scene.people], dtype=np.float32).reshape(-1, 4)
        if len(boxes):
            parts.append(crop_boxes(render_scene(planned.scene), boxes, size))
            total += len(boxes)
        if total >= count:
            break
    return torch.cat(parts)[:count]


def quantize(fp32: Path, out: Path, calibration: np.ndarray, setting: dict[str, Any]) -> Path:
    if setting.get("engine"):
        return engines.quantize_reid_int8(fp32, out, calibration)
    options = {
        k: v
        for k, v in setting.items()
        if k in ("weights", "reduce_range", "extra_options", "method", "keep_fp32")
    }
    if setting.get("heads_fp32"):
        options["keep_fp32"] = [*engines.reid_int8_excluded(fp32), *setting.get("keep_fp32", [])]
    if setting.get("all_convolutions_fp32"):
        import onnx

        options["keep_fp32"] = [
            *options["keep_fp32"],
            *(node.name for node in onnx.load(str(fp32)).graph.node if node.op_type == "Conv"),
        ]
    return engines.quantize_int8(fp32, out, calibration, **options)


def layer_scan(
    fp32: Path,
    calibration: np.ndarray,
    reference: dict[str, np.ndarray],
    crops: dict[str, torch.Tensor],
    work: Path,
) -> dict[str, Any]:
    """Each backbone convolution quantised alone (8-bit s8 weights, every other layer and the
    heads in fp32): its agreement with fp32 on each crop set, and 1 - cosine median."""
    import onnx

    heads = engines.reid_int8_excluded(fp32)
    convolutions = [
        node.name
        for node in onnx.load(str(fp32)).graph.node
        if node.op_type == "Conv" and node.name not in heads
    ]
    layers: dict[str, Any] = {}
    for i, layer in enumerate(convolutions):
        others = [name for name in convolutions if name != layer]
        run = engines.graph_reid(
            engines.quantize_int8(fp32, work / "layer.onnx", calibration, keep_fp32=[*heads, *others])
        )
        agreement = {
            part: engine_choice.feature_agreement(reference[part], run(x).numpy())
            for part, x in crops.items()
        }
        layers[layer] = {
            "agreement": agreement,
            "cost": {part: 1 - a["cos_median"] for part, a in agreement.items()},
        }
        print(f"{i:3d} {layer:60s} 1 - cos median {layers[layer]['cost']['held_out']:.5f}", flush=True)
    return layers


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bundle", type=Path, default=ROOT / "personsearch" / "assets" / "default")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=4)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--layer-scan", action="store_true", help="quantise one convolution at a time instead (accuracy only)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    network, config, _ = load_component(args.bundle, "reid")
    network.eval()
    _, crops = engine_choice.probe_set(tuple(config.input_size), crops=1000)  # all 300
    check, held_out = (
        normalize_crops(crops[:CHECK_CROPS]),
        normalize_crops(people_crops(7, 512, tuple(config.input_size))),
    )
    calibration = {
        "small": normalize_crops(crops[CHECK_CROPS:128]).numpy(),
        "big": normalize_crops(crops[CHECK_CROPS:]).numpy(),
    }
    batch = check[:32]
    with torch.no_grad():
        reference = {"check": network(check).numpy(), "held_out": network(held_out).numpy()}

    if args.layer_scan:
        with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
            fp32 = engines.export_reid(network, Path(tmp) / "reid-fp32.onnx")
            layers = layer_scan(
                fp32, calibration["small"], reference, {"check": check, "held_out": held_out}, Path(tmp)
            )
        out, _ = write_per_cpu_results(
            "int8_layer_scan", {"bundle": str(args.bundle), "layers": layers}, args.out
        )
        print(f"wrote {out}")
        return

    rows: dict[str, dict[str, Any]] = {}
    runners: dict[str, Callable[..., Any]] = {engines.REFERENCE: lambda: network(batch)}
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        fp32 = engines.export_reid(network, Path(tmp) / "reid-fp32.onnx")
        candidates = {"ort-fp32": fp32}
        for i, (name, setting) in enumerate(SETTINGS.items()):
            candidates[name] = quantize(
                fp32, Path(tmp) / f"int8-{i}.onnx", calibration[setting.get("calibration", "big")], setting
            )
            print(name, "quantised", flush=True)
        for name, path in candidates.items():
            run = engines.graph_reid(path)
            agreement = {
                part: engine_choice.feature_agreement(reference[part], run(x).numpy())
                for part, x in (("check", check), ("held_out", held_out))
            }
            rows[name] = {
                "agreement": agreement,
                "accepted": all(engine_choice.features_agree(a) for a in agreement.values()),
            }
            runners[name] = lambda r=run: r(batch)
        timing = time_engines(runners, len(batch), args.rounds, args.calls)
    for name in rows:
        rows[name].update(timing[name], x_ort_fp32=timing[name]["per_s"] / timing["ort-fp32"]["per_s"])

    out, results = write_per_cpu_results(
        "int8_settings",
        {
            "bundle": str(args.bundle),
            "threads": args.threads,
            "rounds": args.rounds,
            "torch_fp32_per_s": timing[engines.REFERENCE]["per_s"],
            "rule": {
                "cos_median": engine_choice.COSINE_MEDIAN,
                "cos_min": engine_choice.COSINE_MIN,
                "nn_same": engine_choice.NEIGHBOUR_AGREEMENT,
            },
            "settings": rows,
        },
        args.out,
    )
    signature = results["signature"]
    print(
        f"{signature['cpu']} ({signature['torch_capability']}, "
        f"flags {' '.join(signature.get('flags', []))}), {args.threads} threads"
    )
    print(f"PyTorch fp32 eager: {timing[engines.REFERENCE]['per_s']:.1f} crops/s")
    print(
        f"{'setting':44s} {'x fp32':>7s} {'x ORT':>6s}  {'cos med / min / NN (check)':28s} "
        f"{'(512 other people)':24s} verdict"
    )
    for name, row in rows.items():
        a, b = row["agreement"]["check"], row["agreement"]["held_out"]
        print(
            f"{name:44s} {row['x_fp32']:6.2f}x {row['x_ort_fp32']:5.2f}x  "
            f"{a['cos_median']:.3f} / {a['cos_min']:.3f} / {a['nn_same']:.2f}"
            f"{'':10s} {b['cos_median']:.3f} / {b['cos_min']:.3f} / {b['nn_same']:.2f}   "
            f"{'accepted' if row['accepted'] else 'refused'}"
        )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
