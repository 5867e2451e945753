"""Every inference engine against plain fp32 eager PyTorch, on this machine: re-id extraction,
detection, and the whole detect -> crop -> embed pipeline, with achieved GFLOP/s against the CPU's
fp32 peak and each engine's agreement with fp32.

    python benchmarks/engines.py --bundle demo-output/model
    # PyTorch as on an AVX2-only CPU:
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/engines.py ...

Cases: the pyramid re-id network (MobileNetV2 and ResNet-50, 256 x 128 crops, batch 32), the C4
detector (MobileNetV2 and ResNet-50, 800 x 600 scenes) and, with ``--bundle``, the bundle's own
two networks on real crops and scenes of the synthetic benchmark (the accuracy rule of
``personsearch.models.engine_choice`` is meaningful only for trained weights: random-weight rows
are marked "speed only") and the whole pipeline (scene images/s) with the engines ``auto`` picks.

Timing: ``--rounds`` rounds; in each, every engine is timed (best of a few calls) in an order
reversed every other round, and the figure reported is the median over rounds of (engine rate /
fp32 rate in the same round), so load from other jobs cancels out. Writes
``benchmarks/results/engines-<cpu signature>.json`` and prints a table last.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from run_info import ROOT, write_per_cpu_results

from personsearch.models import engine_choice, engines
from personsearch.models.detector import image_tensors
from personsearch.models.engines import cpu_signature
from personsearch.models.machine import cpuinfo_field

ENGINES = engines.AUTO_CANDIDATES
"""Every engine ``auto`` measures, the reference first."""


def flop_per_cycle(signature: dict[str, Any]) -> tuple[int, str]:
    """fp32 FLOP per cycle and core: two FMA units (Zen 3/4/5, Intel big cores) x the lanes each
    computes per cycle x 2 (multiply and add). AVX-512 kernels have 16 fp32 lanes, except on AMD
    Zen 4 (family 25 with AVX-512), whose FMA units are 256 bits wide and take a 512-bit
    instruction in two halves: 8 lanes per cycle, as with AVX2 (measured: its best matrix product
    reached 102-114 % of that peak in two runs, `cpu_peak-5a282d6e6508.json`; counted with 16 lanes, the Zen 4
    runs of 2026-12-01/02 put fp32 engines at half their real share). Zen 5's desktop and server
    parts have 512-bit units; its mobile parts do not, which ``cpu_peak.py`` shows as a rate
    far below this peak."""
    lanes = 16 if signature["torch_capability"].startswith("AVX512") else 8
    units = f"2 FMA x {lanes} lanes"
    if lanes == 16 and cpuinfo_field("vendor_id") == "AuthenticAMD" and cpuinfo_field("cpu family") == "25":
        lanes, units = 8, "2 FMA x 8 lanes: Zen 4 runs AVX-512 on 256-bit units"
    return 2 * lanes * 2, units


def peak_gflops(signature: dict[str, Any], threads: int) -> tuple[float, str]:
    """fp32 peak of the cores used: threads x the clock /proc/cpuinfo reports x ``flop_per_cycle``."""
    mhz = float(cpuinfo_field("cpu MHz") or 0.0)
    per_cycle, units = flop_per_cycle(signature)
    return (
        threads * mhz / 1000 * per_cycle,
        f"{threads} cores x {mhz / 1000:.2f} GHz x {per_cycle} FLOP/cycle ({units})",
    )


def count_flops(run: Callable[..., Any]) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        run()
    return float(counter.get_total_flops())


def best_time(run: Callable[..., Any], calls: int) -> float:
    run()
    best = float("inf")
    for _ in range(calls):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def time_engines(
    runs: dict[str, Callable[..., Any]], items: int, rounds: int, calls: int
) -> dict[str, dict[str, float]]:
    """Per engine: median items/s, and median over rounds of the ratio to torch-fp32 in the same round."""
    rates: dict[str, list[float]] = {name: [] for name in runs}
    ratios: dict[str, list[float]] = {name: [] for name in runs}
    order = list(runs)
    for r in range(rounds):
        this = {name: items / best_time(runs[name], calls) for name in (order if r % 2 == 0 else order[::-1])}
        for name, rate in this.items():
            rates[name].append(rate)
            ratios[name].append(rate / this[engines.REFERENCE])
    return {
        name: {"per_s": statistics.median(rates[name]), "x_fp32": statistics.median(ratios[name])}
        for name in runs
    }


def reid_case(
    name: str,
    model: torch.nn.Module,
    crops: torch.Tensor,
    calibration: np.ndarray,
    trained: bool,
    args: argparse.Namespace,
    work: Path,
) -> dict[str, Any]:
    batch = crops[:32]
    runners, agreement, notes = {}, {}, {}
    reference = None
    for engine in engine_choice.for_network(ENGINES, "reid"):
        why = engines.unavailable(engine)
        if why:
            notes[engine] = why
            continue
        run = engines.reid_runner(model, engine, torch.device("cpu"), work / name, lambda: calibration)
        features = run(crops).float().numpy()
        reference = features if reference is None else reference
        agreement[engine] = engine_choice.feature_agreement(reference, features)
        runners[engine] = lambda r=run: r(batch)
    timing = time_engines(runners, len(batch), args.rounds, args.calls)
    flops = count_flops(lambda: model.eval()(batch)) / len(batch)
    return {
        "case": name,
        "unit": "crops",
        "input": list(batch.shape[1:]),
        "trained": trained,
        "flops_per_item": flops,
        "engines": {
            e: {
                **timing[e],
                "agreement": agreement[e],
                "accepted": engine_choice.features_agree(agreement[e]),
            }
            for e in runners
        },
        "unavailable": notes,
    }


def detector_case(
    name: str,
    model: torch.nn.Module,
    scenes: list[np.ndarray],
    trained: bool,
    args: argparse.Namespace,
    work: Path,
) -> dict[str, Any]:
    """Timed on the first of ``scenes``; agreement on the chooser's crowded check scenes for a
    trained detector (about a hundred boxes), on ``scenes`` for random weights (speed only)."""
    tensors = image_tensors(scenes)
    checked = image_tensors(engine_choice.check_scenes()) if trained else tensors
    runners, agreement, notes = {}, {}, {}
    reference = None
    for engine in engine_choice.for_network(ENGINES, "detector"):
        why = engines.unavailable(engine)
        if why:
            notes[engine] = why
            continue
        run = engines.detector_runner(
            model, engine, torch.device("cpu"), work / name, engine_choice.calibration_scenes
        )
        dets = [engines.as_detections(run([scene]))[0] for scene in checked]
        reference = dets if reference is None else reference
        agreement[engine] = engine_choice.detection_agreement(reference, dets)
        runners[engine] = lambda r=run: r(tensors[:1])
    timing = time_engines(runners, 1, args.rounds, max(1, args.calls // 2))
    flops = count_flops(lambda: model.eval()(tensors[:1]))
    return {
        "case": name,
        "unit": "scenes",
        "input": list(tensors[0].shape),
        "trained": trained,
        "flops_per_item": flops,
        "engines": {
            e: {
                **timing[e],
                "agreement": agreement[e],
                "accepted": engine_choice.detections_agree(agreement[e]),
            }
            for e in runners
        },
        "unavailable": notes,
    }


def pipeline_case(bundle_dir: Path, scenes: list[np.ndarray], args: argparse.Namespace) -> dict[str, Any]:
    """Scene images/s of detect -> crop -> embed with fp32 everywhere and with the auto choice."""
    from personsearch.models.bundle import ModelBundle

    fp32 = ModelBundle(bundle_dir, engine="torch-fp32")
    auto = ModelBundle(bundle_dir, engine="auto")

    def index_all(bundle: ModelBundle) -> None:
        for image in scenes:
            dets = bundle.detect([image])[0]
            if len(dets):
                bundle.embed(image, dets[:, :4])

    timing = time_engines(
        {engines.REFERENCE: lambda: index_all(fp32), "auto": lambda: index_all(auto)},
        len(scenes),
        args.rounds,
        1,
    )
    return {
        "case": "pipeline (detect + embed, scene images)",
        "unit": "scenes",
        "auto_choice": auto.engine_choice.summary(),
        "engines": timing,
    }


def table(results: dict[str, Any]) -> str:
    peak = results["peak_gflops"]
    lines = [
        f"machine: {results['signature']['cpu']} ({results['signature']['torch_capability']}, "
        f"native bf16: {results['signature']['native_bf16']}), {results['threads']} threads, "
        f"fp32 peak {peak:.0f} GFLOP/s ({results['peak_note']})",
        f"{'case':42s} {'engine':14s} {'per s':>8s} {'x fp32':>7s} {'GFLOP/s':>8s} "
        f"{'% peak':>7s}  agreement with fp32",
    ]
    for case in results["cases"]:
        for engine, row in case["engines"].items():
            gflops = row["per_s"] * case.get("flops_per_item", 0) / 1e9
            agree = row.get("agreement")
            if agree:
                shown = ", ".join(f"{k} {v:.3f}" for k, v in agree.items() if k != "boxes")
                verdict = ("ok" if row["accepted"] else "REFUSED") if case.get("trained") else "speed only"
                agree = f"{verdict}: {shown}"
            lines.append(
                f"{case['case'][:42]:42s} {engine:14s} {row['per_s']:8.1f} "
                f"{row['x_fp32']:7.2f} {(f'{gflops:8.1f}' if gflops else '       -')} "
                f"{(f'{100 * gflops / peak:6.1f}%' if gflops else '      -')}  "
                f"{agree or case.get('auto_choice', '')}"
            )
        for engine, why in case.get("unavailable", {}).items():
            lines.append(f"{case['case'][:42]:42s} {engine:14s} unavailable: {why}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--bundle",
        type=Path,
        default=ROOT / "demo-output" / "model",
        help="trained bundle for the accuracy rows and the pipeline (skipped when absent)",
    )
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=3, help="timed calls per engine per round (best kept)")
    parser.add_argument(
        "--only", default="", help="comma-separated case prefixes (reid, detector, bundle, pipeline)"
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from personsearch.data.crops import normalize_crops
    from personsearch.models.bundle import ModelBundle
    from personsearch.models.detector import DetectorConfig, build_detector
    from personsearch.models.reid import ReIDConfig, build_reid

    signature = cpu_signature()
    peak, note = peak_gflops(signature, args.threads)
    wanted = [p for p in args.only.split(",") if p]
    keep = lambda name: not wanted or any(name.startswith(p) for p in wanted)  # noqa: E731
    scenes, crops_256 = engine_choice.probe_set((256, 128))
    cases = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for arch in ("mobilenet_v2", "resnet50"):
            if keep(f"reid-{arch}"):
                model = build_reid(ReIDConfig(num_classes=100, backbone=arch, pretrained=None)).eval()
                cases.append(
                    reid_case(
                        f"reid-{arch} 256x128 random weights",
                        model,
                        normalize_crops(crops_256[:64]),
                        normalize_crops(crops_256[64:]).numpy(),
                        False,
                        args,
                        work,
                    )
                )
                print(cases[-1]["case"], "done", flush=True)
            if keep(f"detector-{arch}"):
                model = build_detector(DetectorConfig(backbone=arch, pretrained=None)).eval()
                cases.append(
                    detector_case(
                        f"detector-{arch} C4 800x600 random weights", model, scenes, False, args, work
                    )
                )
                print(cases[-1]["case"], "done", flush=True)
        if args.bundle and (args.bundle / "reid.json").is_file():
            bundle = ModelBundle(args.bundle, engine="torch-fp32")
            size = tuple(bundle.reid_config.input_size)
            _, crops = engine_choice.probe_set(size)
            if keep("bundle"):
                cases.append(
                    reid_case(
                        f"bundle re-id {bundle.reid_config.backbone} {size[0]}x{size[1]}",
                        bundle.reid_network,
                        normalize_crops(crops[:64]),
                        normalize_crops(crops[64:]).numpy(),
                        True,
                        args,
                        work,
                    )
                )
                cases.append(
                    detector_case(
                        f"bundle detector {bundle.detector_config.backbone} 800x600",
                        bundle.detector_network,
                        scenes,
                        True,
                        args,
                        work,
                    )
                )
                print("bundle cases done", flush=True)
            if keep("pipeline"):
                cases.append(
                    pipeline_case(args.bundle, engine_choice.probe_set((256, 128), scenes=8)[0], args)
                )
    out, results = write_per_cpu_results(
        "engines",
        {
            "threads": args.threads,
            "peak_gflops": peak,
            "peak_note": note,
            "rounds": args.rounds,
            "cases": cases,
        },
        args.out,
        signature=signature,
    )
    print(table(results))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
