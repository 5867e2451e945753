"""OpenVINO against ONNX Runtime on the shipped model's ONNX parts, on this machine: the evidence
for where each runtime wins (#10 asks to keep both only if each wins somewhere).

    pip install openvino          # or the personsearch[openvino] extra
    python benchmarks/openvino_vs_ort.py --bundle personsearch/assets/default
    python benchmarks/openvino_vs_ort.py --precision bf16      # the ov-bf16 engine (native bf16 CPUs)

Both runtimes run the very same ONNX files the engines use: the detector's trunk on one
800 x 600 scene (resized to 600 x 800 as the detector does), its RPN head on that scene's feature
map, its C4 box head on the crops of its 300 proposals (the test proposal count), the re-id network
on a batch of 32 probe crops in fp32, and the int8 QDQ graphs of ``ort-int8`` (the re-id network)
and ``ort-int8-head`` (the box head), which OpenVINO reads as its own int8. Where ``nncf`` is
installed, a last row pits OpenVINO's own int8 quantisation of the re-id network (NNCF's
post-training defaults, the same calibration crops) against ``ort-int8``. OpenVINO runs at
``--precision`` (``f32`` by default: it would otherwise pick bf16 by itself on CPUs that have it),
with the same thread count, latency mode.
Timing: best of ``--calls`` calls per round, rounds in alternating order, median over rounds of the
OpenVINO / ONNX Runtime speed ratio. Also reported: what share of a whole detection each part is
(the rest is PyTorch: anchors, proposals, RoIAlign, NMS) and the int8 re-id network's agreement
with fp32 PyTorch by the engine chooser's rule (the box head's is ``int8_box_head.py``'s). Writes
``benchmarks/results/openvino_vs_ort-<cpu signature>[-bf16].json`` and prints a table.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from engines import best_time
from run_info import ROOT, write_per_cpu_results

from personsearch.data.crops import normalize_crops
from personsearch.models import box_logic, engine_choice, engines
from personsearch.models.bundle import ModelBundle
from personsearch.models.detector import image_tensors


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bundle", type=Path, default=ROOT / "personsearch" / "assets" / "default")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument(
        "--precision",
        default="f32",
        help="OpenVINO's inference precision: f32, or bf16 (the ov-bf16 engine; native bf16 CPUs)",
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    try:
        import openvino as ov
    except ImportError:
        raise SystemExit("this benchmark compares OpenVINO with ONNX Runtime: pip install openvino") from None
    torch.set_num_threads(args.threads)
    bundle = ModelBundle(args.bundle, engine="torch-fp32")
    scenes, _ = engine_choice.probe_set((256, 128))
    _, crops = engine_choice.probe_set(tuple(bundle.reid_config.input_size))
    check = normalize_crops(crops[: engine_choice.TIMED_CROPS * 2])
    calibration = normalize_crops(crops[engine_choice.TIMED_CROPS * 2 :]).numpy()
    core = ov.Core()
    config = {
        "INFERENCE_NUM_THREADS": args.threads,
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_PRECISION_HINT": args.precision,
    }

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        detector = bundle.detector_network.eval()
        trunk, rpn, head = engines.export_detector(detector, work)
        reid = engines.export_reid(bundle.reid_network, work / "reid-fp32.onnx")
        reid_int8 = engines.quantize_reid_int8(reid, work / "reid-int8.onnx", calibration)
        head_int8 = engines.quantize_box_head_int8(
            detector, [trunk, rpn, head], work, engine_choice.calibration_scenes
        )

        # Every part's input exactly as the detector builds it for one probe scene, with the
        # test-time proposal count of RoIs.
        (image,) = image_tensors(scenes[:1])
        with torch.no_grad():
            batched, _ = detector.transform([image])
            trunk_in = batched.tensors.numpy()
            features = detector.backbone(batched.tensors)
            proposals, _ = detector.rpn(batched, features)
            crops = box_logic.SparseRoIPool(detector.roi_heads.box_roi_pool)(
                features, proposals, [tuple(batched.tensors.shape[-2:])]
            )
        feature_in = next(iter(features.values())).numpy()
        rois = len(proposals[0])
        head_in = crops.contiguous().numpy()
        crops_in = np.ascontiguousarray(check[: engine_choice.TIMED_CROPS].numpy())

        with torch.no_grad():
            whole = best_time(lambda: detector([image]), args.calls)
            reference = bundle.reid_network.eval()(check).numpy()

        parts = [
            ("detector trunk", trunk, [trunk_in], 1),
            ("detector RPN head", rpn, [feature_in], 1),
            (f"detector C4 box head, {rois} RoIs", head, [head_in], 1),
            (f"detector C4 box head int8 (QDQ), {rois} RoIs", head_int8, [head_in], 1),
            ("re-id fp32, 32 crops", reid, [crops_in], len(crops_in)),
            ("re-id int8 (QDQ), 32 crops", reid_int8, [crops_in], len(crops_in)),
        ]
        own: dict[str, Any] = {}  # part -> the model OpenVINO runs instead of the ONNX file
        try:
            import nncf
        except ImportError:
            print("nncf is not installed: no row for OpenVINO's own int8 quantisation (pip install nncf)")
        else:
            # OpenVINO's own post-training int8 (NNCF's defaults) against ONNX Runtime's engine int8,
            # both calibrated on the same crops.
            name = "re-id int8, ORT QDQ vs OV NNCF"
            parts.append((name, reid_int8, [crops_in], len(crops_in)))
            samples = [calibration[i : i + 1] for i in range(len(calibration))]
            own[name] = nncf.quantize(
                core.read_model(str(reid)), nncf.Dataset(samples), subset_size=len(samples)
            )
        rows = []
        for name, path, inputs, items in parts:
            session = engines.ort_session(path, args.threads, spin=True)
            compiled = core.compile_model(own.get(name, str(path)), "CPU", config)
            feeds = dict(zip([i.name for i in session.get_inputs()], inputs, strict=True))
            runs = {
                "ort": lambda s=session, f=feeds: s.run(None, f),
                "openvino": lambda c=compiled, x=inputs: c(x),
            }
            out_ort, out_ov = runs["ort"]()[0], np.asarray(runs["openvino"]()[0])
            times: dict[str, list[float]] = {k: [] for k in runs}
            ratios = []
            for r in range(args.rounds):
                this = {
                    k: best_time(runs[k], args.calls)
                    for k in (list(runs) if r % 2 == 0 else list(runs)[::-1])
                }
                for k, v in this.items():
                    times[k].append(v)
                ratios.append(this["ort"] / this["openvino"])
            row: dict[str, Any] = {
                "part": name,
                "input": [list(x.shape) for x in inputs],
                "ort_ms": 1000 * statistics.median(times["ort"]),
                "openvino_ms": 1000 * statistics.median(times["openvino"]),
                "openvino_speed_vs_ort": statistics.median(ratios),
                "max_abs_diff": float(np.abs(out_ort - out_ov).max()),
                "items": items,
            }
            if name.startswith("detector"):
                row["share_of_detection_fp32_torch"] = row["ort_ms"] / (1000 * whole)
            if name.startswith("re-id int8"):
                full_ort = engines.ort_session(path, args.threads, spin=True).run(
                    None, {"input": check.numpy()}
                )[0]
                full_ov = np.asarray(compiled(check.numpy())[0])
                row["agreement_ort"] = engine_choice.feature_agreement(reference, full_ort)
                row["agreement_openvino"] = engine_choice.feature_agreement(reference, full_ov)
                row["accepted_ort"] = engine_choice.features_agree(row["agreement_ort"])
                row["accepted_openvino"] = engine_choice.features_agree(row["agreement_openvino"])
            rows.append(row)
            print(name, "done", flush=True)

    suffix = "" if args.precision == "f32" else f"-{args.precision}"
    out, results = write_per_cpu_results(
        "openvino_vs_ort",
        {
            "openvino": ov.__version__,
            "openvino_precision": args.precision,
            "threads": args.threads,
            "rounds": args.rounds,
            "detection_torch_fp32_ms": 1000 * whole,
            "parts": rows,
        },
        args.out,
        suffix=suffix,
    )
    signature = results["signature"]
    print(
        f"{signature['cpu']} ({signature['torch_capability']}), {args.threads} threads, "
        f"OpenVINO {ov.__version__} ({args.precision}); "
        f"whole detection in PyTorch fp32: {1000 * whole:.0f} ms"
    )
    print(f"{'part':42s} {'ORT ms':>8s} {'OV ms':>8s} {'OV speed':>9s}  notes")
    for row in rows:
        notes = f"max |diff| {row['max_abs_diff']:.1e}"
        if "share_of_detection_fp32_torch" in row:
            notes += (
                f"; ORT part = {100 * row['share_of_detection_fp32_torch']:.0f} % of a PyTorch fp32 detection"
            )
        if "agreement_ort" in row:
            notes += (
                f"; vs fp32: ORT cos min {row['agreement_ort']['cos_min']:.3f} "
                f"({'ok' if row['accepted_ort'] else 'refused'}), "
                f"OV cos min {row['agreement_openvino']['cos_min']:.3f} "
                f"({'ok' if row['accepted_openvino'] else 'refused'})"
            )
        print(
            f"{row['part']:42s} {row['ort_ms']:8.1f} {row['openvino_ms']:8.1f} "
            f"{row['openvino_speed_vs_ort']:8.2f}x  {notes}"
        )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
