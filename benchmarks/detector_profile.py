"""Where the detector's time goes under ONNX Runtime, part by part and operator by operator.

    python benchmarks/detector_profile.py                       # the shipped detector
    python benchmarks/detector_profile.py --bundle models/mine

On one probe scene (``engine_choice.probe_set``: 800x600, people 20-400 px) the detector's three
ONNX parts (``engines.export_detector``: trunk, RPN head, C4 box head on the test-time proposals'
crops) are timed against the same modules in PyTorch fp32 (best of ``--calls``), with their FLOPs
and GFLOP/s, and the engines' RoIAlign + max-pool (``box_logic.SparseRoIPool``) against
torchvision's; then ONNX Runtime's profiler splits the box head by operator type. This is what
says whether a faster engine can still help: parts near the CPU's peak cannot get much faster in
fp32.
Writes ``benchmarks/results/detector_profile-<cpu signature>.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import collections
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from engines import best_time, count_flops, peak_gflops
from run_info import write_per_cpu_results

from personsearch.interfaces.api import SHIPPED_MODEL
from personsearch.models import box_logic, engine_choice, engines
from personsearch.models.bundle import ModelBundle
from personsearch.models.detector import image_tensors


def operator_split(path: Path, feeds: dict[str, np.ndarray], calls: int) -> dict[str, float]:
    """Milliseconds per call of each operator type of the ONNX graph at ``path``."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = torch.get_num_threads(), 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.enable_profiling = True
    with tempfile.TemporaryDirectory() as tmp:
        options.profile_file_prefix = str(Path(tmp) / "profile")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        for _ in range(calls):
            session.run(None, feeds)
        events = json.loads(Path(session.end_profiling()).read_text())
    per_op: collections.Counter[str] = collections.Counter()
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            per_op[event["args"]["op_name"]] += event["dur"] / 1000 / calls
    return dict(per_op.most_common())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bundle", type=Path, default=SHIPPED_MODEL)
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    detector = ModelBundle(args.bundle, engine="torch-fp32").detector_network.eval()
    scenes, _ = engine_choice.probe_set((256, 128))
    (image,) = image_tensors(scenes[:1])
    with torch.no_grad():
        batched, _ = detector.transform([image])
        features = detector.backbone(batched.tensors)
        proposals, _ = detector.rpn(batched, features)
    feature = next(iter(features.values()))
    pool = detector.roi_heads.box_roi_pool
    sparse = box_logic.SparseRoIPool(pool)
    sizes = [tuple(batched.tensors.shape[-2:])]
    with torch.no_grad():
        crops = pool(features, proposals, sizes)
        roi_align = {
            "rois": len(proposals[0]),
            "torchvision_ms": best_time(lambda: pool(features, proposals, sizes), args.calls) * 1000,
            "sparse_ms": best_time(lambda: sparse(features, proposals, sizes), args.calls) * 1000,
            "max_abs_diff": float((sparse(features, proposals, sizes) - crops).abs().max()),
        }
    body = detector.backbone.body
    modules = {
        "trunk": (engines._TrunkOutput(body, body.out_stages[-1]), (batched.tensors,)),
        "RPN head": (engines._RpnHeadOutputs(detector.rpn.head), (feature,)),
        f"C4 box head, {len(crops)} RoIs": (detector.roi_heads.box_head, (crops,)),
    }
    signature = engines.cpu_signature()
    peak, peak_note = peak_gflops(signature, torch.get_num_threads())
    parts: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        paths = engines.export_detector(detector, tmp)
        for (name, (module, inputs)), path in zip(modules.items(), paths, strict=False):
            session = engines.OrtModule(path)
            flops = count_flops(lambda m=module, x=inputs: m(*x))
            torch_s = best_time(lambda m=module, x=inputs: m(*x), args.calls)
            ort_s = best_time(lambda s=session, x=inputs: s.run(*x), args.calls)
            parts[name] = {
                "gflop": flops / 1e9,
                "torch_ms": torch_s * 1000,
                "ort_ms": ort_s * 1000,
                "ort_gflops": flops / ort_s / 1e9,
            }
        operators = operator_split(paths[2], {"input": crops.contiguous().numpy()}, args.calls)

    out, results = write_per_cpu_results(
        "detector_profile",
        {
            "bundle": str(args.bundle),
            "input": list(batched.tensors.shape),
            "peak_gflops": peak,
            "peak_note": peak_note,
            "parts": parts,
            "roi_align_and_max_pool": roi_align,
            "box_head_operators_ms": operators,
        },
        args.out,
        signature=signature,
    )
    print(
        f"{signature['cpu']} ({signature['torch_capability']}), {torch.get_num_threads()} threads, "
        f"fp32 peak {peak:.0f} GFLOP/s; input {list(batched.tensors.shape)}"
    )
    print(
        f"{'part':34s} {'GFLOP':>6s} {'torch ms':>9s} {'ORT ms':>8s} {'x':>5s} "
        f"{'ORT GFLOP/s':>12s} {'% peak':>7s}"
    )
    for name, row in parts.items():
        print(
            f"{name:34s} {row['gflop']:6.2f} {row['torch_ms']:9.1f} {row['ort_ms']:8.1f} "
            f"{row['torch_ms'] / row['ort_ms']:5.2f} {row['ort_gflops']:12.1f} "
            f"{100 * row['ort_gflops'] / peak:6.1f}%"
        )
    print(
        f"RoIAlign + max-pool, {roi_align['rois']} RoIs: torchvision {roi_align['torchvision_ms']:.1f} ms, "
        f"engines' sparse_roi_align {roi_align['sparse_ms']:.1f} ms "
        f"(max difference {roi_align['max_abs_diff']:.1e})"
    )
    total = sum(operators.values())
    print(
        "Box head by operator (ONNX Runtime profiler): "
        + ", ".join(f"{op} {ms:.1f} ms ({100 * ms / total:.0f} %)" for op, ms in list(operators.items())[:5])
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
