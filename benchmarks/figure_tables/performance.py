"""docs/performance.md's figure tables."""

from __future__ import annotations

import re
from typing import Any

from figure_tables import Rows, Source, num, short_cpu, table

DOC = "docs/performance.md"
ENGINES_COMMAND = "python benchmarks/engines.py --bundle personsearch/assets/default"

# The latest engines revision measured on each CPU kind (the "Every signature" table names them all).
XEON = "8d46878a3e25"
"""Intel Xeon with AMX (Emerald Rapids, family 6 model 207), engines revision 8."""
XEON_REV7 = "2fae6af81ceb"
"""The Xeon (family and model not recorded) at engines revision 7."""
ZEN4 = "5a282d6e6508"
"""AMD EPYC Zen 4 (by its flags), engines revision 8."""
ZEN3 = "9adbcc2d45e9"
"""AMD EPYC, AVX2 only (Zen 3: family 25 model 1 in blind_real.json of the same signature), revision 8."""
ZEN3_SLOW = "3546ecc485ec"
"""The same AVX2 host at revision 7, in a slow hour."""


def engines_source(signature: str) -> Source:
    return Source(f"engines-{signature}.json", ENGINES_COMMAND)


def cpu_peak_source(signature: str) -> Source:
    return Source(f"cpu_peak-{signature}.json", "python benchmarks/cpu_peak.py")


# --- reading an engines file ----------------------------------------------------------------

SHIPPED_REID = "bundle re-id mobilenet_v2 256x128"
SHIPPED_DETECTOR = "bundle detector mobilenet_v2 800x600"
REID_MOBILENET = "reid-mobilenet_v2 256x128 random weights"
REID_RESNET = "reid-resnet50 256x128 random weights"
DETECTOR_MOBILENET = "detector-mobilenet_v2 C4 800x600 random weights"
DETECTOR_RESNET = "detector-resnet50 C4 800x600 random weights"
PIPELINE = "pipeline (detect + embed, scene images)"

ENGINE_LABELS = {
    "torch-fp32": "torch fp32",
    "torch-fp32-cl": "fp32 channels_last",
    "torch-bf16": "torch bf16",
    "ort-fp32": "ORT fp32",
    "ort-int8": "ORT int8",
    "ort-int8-head": "int8 box head",
    "ov-bf16": "OpenVINO bf16",
    "ov-bf16-head": "OpenVINO bf16 box head",
}
COLUMNS: dict[str, tuple[str, ...]] = {
    "fp32 channels_last": ("torch-fp32-cl",),
    "torch bf16": ("torch-bf16",),
    "ORT fp32": ("ort-fp32",),
    "ORT int8 / int8 box head": ("ort-int8", "ort-int8-head"),
    "OpenVINO bf16": ("ov-bf16",),
    "OpenVINO bf16 box head": ("ov-bf16-head",),
}
"""The engines tables' columns after the reference, each with the engines it holds."""
FP32_ENGINES = ("torch-fp32", "torch-fp32-cl", "ort-fp32")


def cases(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {case["case"]: case for case in results["cases"]}


def chosen(results: dict[str, Any]) -> dict[str, str]:
    """The engines ``auto`` ran the pipeline with, as the file's pipeline case names them:
    {"detector": ..., "re-id": ...}."""
    text = cases(results)[PIPELINE]["auto_choice"]
    return dict(re.findall(r"(detector|re-id) ([\w-]+) \(", text))


def sig3(value: float) -> str:
    """Three significant digits, trailing zeros kept (1.60, 52.0, 0.807; 139 and up whole)."""
    digits = 0 if value >= 100 else 1 if value >= 10 else 2 if value >= 1 else 3
    return f"{value:.{digits}f}"


def ratio(x: float) -> str:
    return f"{sig3(x)}x"


def rate(per_s: float) -> str:
    return sig3(per_s)


def peak_share(results: dict[str, Any], case: dict[str, Any], engine: str) -> float:
    """An engine's achieved GFLOP/s as a share of the file's nominal fp32 peak."""
    return gflops(case, engine) / results["peak_gflops"]


def gflops(case: dict[str, Any], engine: str) -> float:
    return case["engines"][engine]["per_s"] * case["flops_per_item"] / 1e9


def agreement(entry: dict[str, Any]) -> str:
    """An engine's agreement with fp32 as the chooser's rule reads it; "" where it is exact."""
    a = entry.get("agreement") or {}
    if "cos_median" in a:
        if a["cos_min"] >= 0.9999 and a["nn_same"] == 1.0:
            return ""
        return f"{a['cos_median']:.3f} / {a['cos_min']:.3f}, NN {100 * a['nn_same']:.0f} %"
    if "matched" in a:
        if a["matched"] == 1.0 and a["count_ratio"] == 1.0 and a["max_shift_px"] < 0.01:
            return ""
        return f"{100 * a['matched']:.1f} %, {a['max_shift_px']:.2g} px"
    return ""


def fastest(case: dict[str, Any], among: tuple[str, ...] | None = None) -> str:
    engines = {e: v for e, v in case["engines"].items() if among is None or e in among}
    return max(engines, key=lambda e: engines[e]["x_fp32"])


def revision(results: dict[str, Any]) -> str:
    rev = (results.get("signature") or {}).get("engines_revision")
    return f"revision {rev}" if rev is not None else "before engines revisions"


# --- the engines tables: one run on one CPU ----------------------------------------------------


def engines_rows(results: dict[str, Any]) -> Rows:
    by_case = cases(results)
    picked = chosen(results)
    present = {e for case in results["cases"] for e in case["engines"]}
    columns = {label: engines for label, engines in COLUMNS.items() if present & set(engines)}
    rows = [
        [
            f"case ({revision(results)}, {results['rounds']} rounds, {results['threads']} threads)",
            f"torch fp32 (% of {results['peak_gflops']:.0f} GFLOP/s)",
            *columns,
        ]
    ]
    shipped = {SHIPPED_REID: picked.get("re-id"), SHIPPED_DETECTOR: picked.get("detector")}
    boxes = int(by_case[SHIPPED_DETECTOR]["engines"]["torch-fp32"]["agreement"]["boxes"])
    labels = {
        SHIPPED_REID: "**shipped re-id** (crops/s)",
        REID_MOBILENET: "re-id MobileNetV2, random weights",
        REID_RESNET: "re-id ResNet-50, random weights",
        SHIPPED_DETECTOR: f"**shipped detector** (scenes/s; {boxes} probe boxes)",
        DETECTOR_MOBILENET: "detector MobileNetV2 C4, random weights",
        DETECTOR_RESNET: "detector ResNet-50 C4, random weights",
    }
    for key, label in labels.items():
        case = by_case[key]
        reference = case["engines"]["torch-fp32"]
        row = [label, f"{rate(reference['per_s'])} ({pct_of_peak(results, case, 'torch-fp32')})"]
        best = fastest(case)
        for engines in columns.values():
            engine = next((e for e in engines if e in case["engines"]), None)
            if engine is None:
                row.append("")
                continue
            entry = case["engines"][engine]
            bold = engine == shipped[key] if key in shipped else engine == best
            cell = f"**{ratio(entry['x_fp32'])}**" if bold else ratio(entry["x_fp32"])
            if engine == "ort-fp32":
                cell += f" ({pct_of_peak(results, case, engine)})"
            if key in shipped:
                if engine == shipped[key]:
                    cell += " chosen"
                elif not entry["accepted"]:
                    cell += " refused"
                if agreement(entry):
                    cell += f" ({agreement(entry)})"
            row.append(cell)
        rows.append(row)
    pipeline = by_case[PIPELINE]["engines"]
    detector = picked.get("detector", "")
    pipeline_row = [
        f"pipeline, scene images/s (`auto`: detector `{detector}`, re-id `{picked.get('re-id', '')}`)",
        rate(pipeline["torch-fp32"]["per_s"]),
    ]
    pipeline_row += [
        f"**{ratio(pipeline['auto']['x_fp32'])}**" if detector in engines else ""
        for engines in columns.values()
    ]
    rows.append(pipeline_row)
    return rows


def pct_of_peak(results: dict[str, Any], case: dict[str, Any], engine: str) -> str:
    return f"{100 * peak_share(results, case, engine):.0f} %"


@table("performance-engines-xeon", DOC, engines_source(XEON))
def engines_xeon(results: dict[str, Any]) -> Rows:
    return engines_rows(results)


@table("performance-engines-zen4", DOC, engines_source(ZEN4))
def engines_zen4(results: dict[str, Any]) -> Rows:
    return engines_rows(results)


@table("performance-engines-zen3", DOC, engines_source(ZEN3))
def engines_zen3(results: dict[str, Any]) -> Rows:
    return engines_rows(results)


# --- where the targets stand: the latest run on each CPU kind -----------------------------------


@table(
    "performance-targets",
    DOC,
    engines_source(ZEN3),
    engines_source(ZEN4),
    engines_source(XEON),
    cpu_peak_source(ZEN3),
    cpu_peak_source(ZEN4),
    cpu_peak_source(XEON),
)
def targets(
    zen3: dict[str, Any],
    zen4: dict[str, Any],
    xeon: dict[str, Any],
    peak3: dict[str, Any],
    peak4: dict[str, Any],
    peak_xeon: dict[str, Any],
) -> Rows:
    runs = [(zen3, peak3), (zen4, peak4), (xeon, peak_xeon)]
    rows = [["target", *(f"{short_cpu(r['machine'])}, {revision(r)}" for r, _ in runs)]]
    row_fns = [
        ("never slower than fp32 (the reference is always a candidate)", never_slower),
        (
            "re-id MobileNetV2 pyramid 256x128 (AVX2: >= 2.5x in fp32; native bf16: keep >= 4x)",
            reid_mobilenet,
        ),
        ("re-id ResNet-50 pyramid 256x128, random weights (same targets)", reid_resnet),
        ("re-id int8 under the accuracy rule (AVX2: >= 5x; native bf16: >= 6x)", reid_int8),
        ("detector, shipped MobileNetV2 C4 (>= 2x)", detector_shipped),
        (
            "detector ResNet-50 C4 without opt-in compilation, random weights (native bf16: >= 2x)",
            detector_resnet,
        ),
        ("whole pipeline, scene images/s (AVX2: >= 2.5x)", pipeline_target),
        ("fp32 engines at >= 70 % of the fp32 peak (AVX2)", fp32_peak),
    ]
    for label, fn in row_fns:
        rows.append([label, *(fn(r, p) for r, p in runs)])
    return rows


def verdict(met: bool) -> str:
    return "met" if met else "**not met**"


def native_bf16(results: dict[str, Any]) -> bool:
    return bool(results["machine"].get("native_bf16"))


def never_slower(results: dict[str, Any], _peak: dict[str, Any] | None) -> str:
    by_case, picked = cases(results), chosen(results)
    xs = [
        by_case[SHIPPED_REID]["engines"][picked["re-id"]]["x_fp32"],
        by_case[SHIPPED_DETECTOR]["engines"][picked["detector"]]["x_fp32"],
        by_case[PIPELINE]["engines"]["auto"]["x_fp32"],
    ]
    return verdict(min(xs) >= 1.0)


def reid_mobilenet(results: dict[str, Any], _peak: dict[str, Any] | None) -> str:
    by_case, engine = cases(results), chosen(results)["re-id"]
    x = by_case[SHIPPED_REID]["engines"][engine]["x_fp32"]
    met = x >= (4.0 if native_bf16(results) else 2.5) and (native_bf16(results) or engine in FP32_ENGINES)
    random = by_case[REID_MOBILENET]["engines"][engine]["x_fp32"]
    return f"{verdict(met)}: **{ratio(x)}** {ENGINE_LABELS[engine]} (random weights {ratio(random)})"


def reid_resnet(results: dict[str, Any], peak: dict[str, Any] | None) -> str:
    case = cases(results)[REID_RESNET]
    engines = case["engines"]
    if native_bf16(results):
        best = fastest(case, tuple(e for e in engines if e != "ort-int8"))
        text = (
            f"{verdict(engines[best]['x_fp32'] >= 4.0)}: **{ratio(engines[best]['x_fp32'])}** "
            f"{ENGINE_LABELS[best]}"
        )
        return text + f", ORT fp32 {ratio(engines['ort-fp32']['x_fp32'])}"
    best = fastest(case, FP32_ENGINES)
    text = (
        f"{verdict(engines[best]['x_fp32'] >= 2.5)}: {ratio(engines[best]['x_fp32'])} {ENGINE_LABELS[best]}"
    )
    if peak is not None:
        ort, torch = gflops(case, "ort-fp32"), gflops(case, "torch-fp32")
        text += (
            f", which runs it at {ort:.0f} GFLOP/s, "
            f"{100 * ort / peak['best_gflops']:.0f} % of the best fp32 matrix product "
            f"on these cores ({peak['best_gflops']:.0f}): "
            f"2.5x PyTorch's {torch:.0f} would be {2.5 * torch:.0f}"
        )
    if "ort-int8" in engines:
        text += f"; ORT int8 {ratio(engines['ort-int8']['x_fp32'])} (speed only)"
    return text


def reid_int8(results: dict[str, Any], _peak: dict[str, Any] | None) -> str:
    entry = cases(results)[SHIPPED_REID]["engines"]["ort-int8"]
    met = entry["accepted"] and entry["x_fp32"] >= (6.0 if native_bf16(results) else 5.0)
    state = "accepted" if entry["accepted"] else "refused"
    return f"{verdict(met)}: {ratio(entry['x_fp32'])}, {state} ({agreement(entry)})"


def detector_shipped(results: dict[str, Any], _peak: dict[str, Any] | None) -> str:
    engines, engine = cases(results)[SHIPPED_DETECTOR]["engines"], chosen(results)["detector"]
    x = engines[engine]["x_fp32"]
    return (
        f"{verdict(x >= 2.0)}: **{ratio(x)}** {ENGINE_LABELS[engine]} "
        f"(ORT fp32 {ratio(engines['ort-fp32']['x_fp32'])})"
    )


def detector_resnet(results: dict[str, Any], _peak: dict[str, Any] | None) -> str:
    case = cases(results)[DETECTOR_RESNET]
    best = fastest(case)
    x = case["engines"][best]["x_fp32"]
    text = f"{ratio(x)} {ENGINE_LABELS[best]}, ORT fp32 {ratio(case['engines']['ort-fp32']['x_fp32'])}"
    return f"{verdict(x >= 2.0)}: {text}" if native_bf16(results) else f"no target: {text}"


def pipeline_target(results: dict[str, Any], _peak: dict[str, Any] | None) -> str:
    engines = cases(results)[PIPELINE]["engines"]
    x = engines["auto"]["x_fp32"]
    text = (
        f"**{ratio(x)}** ({rate(engines['auto']['per_s'])} scenes/s against "
        f"{rate(engines['torch-fp32']['per_s'])})"
    )
    return text if native_bf16(results) else f"{verdict(x >= 2.5)}: {text}"


def fp32_peak(results: dict[str, Any], peak: dict[str, Any] | None) -> str:
    by_case = cases(results)
    parts = {
        "ResNet-50 re-id": by_case[REID_RESNET],
        "ResNet-50 detector": by_case[DETECTOR_RESNET],
        "shipped re-id": by_case[SHIPPED_REID],
        "shipped detector": by_case[SHIPPED_DETECTOR],
    }
    shares = {name: peak_share(results, case, "ort-fp32") for name, case in parts.items()}
    text = f"ORT fp32, of the nominal {results['peak_gflops']:.0f} GFLOP/s: " + ", ".join(
        f"{name} {pct(share)}" for name, share in shares.items()
    )
    if peak is not None:
        best = peak["best_gflops"]
        text += f"; of the {best:.0f} its cores reach in a matrix product: " + ", ".join(
            pct(gflops(case, "ort-fp32") / best) for case in parts.values()
        )
    return text if native_bf16(results) else f"{verdict(min(shares.values()) >= 0.7)} (nominal peak): {text}"


def pct(share: float) -> str:
    return f"{100 * share:.0f} %"


# --- where a scene's time goes ------------------------------------------------------------------

PROFILE_COMMAND = "python benchmarks/detector_profile.py"
GLUE_COMMAND = "python benchmarks/glue.py"


@table(
    "performance-detector-profile",
    DOC,
    Source(f"detector_profile-{XEON}.json", PROFILE_COMMAND),
    Source(f"detector_profile-{ZEN3_SLOW}.json", PROFILE_COMMAND),
    Source(f"detector_profile-{ZEN4}.json", PROFILE_COMMAND),
)
def detector_profile(*runs: dict[str, Any]) -> Rows:
    first = runs[0]["parts"]
    rows = [
        [
            "part",
            "GFLOP",
            *(f"{short_cpu(r['machine'])}, {revision(r)}: PyTorch / ONNX Runtime (% of peak)" for r in runs),
        ]
    ]
    for part in first:
        cells = []
        for r in runs:
            p = r["parts"][part]
            cells.append(
                f"{ms(p['torch_ms'])} / {ms(p['ort_ms'])} ms ({pct(p['ort_gflops'] / r['peak_gflops'])})"
            )
        rows.append([part, num(first[part]["gflop"], 2), *cells])
    rois = runs[0]["roi_align_and_max_pool"]["rois"]
    rows.append(
        [
            f"RoIAlign 14 x 14 + 2 x 2 max-pool, {rois} RoIs: torchvision / ours",
            "",
            *(
                f"{ms(r['roi_align_and_max_pool']['torchvision_ms'])} / "
                f"{ms(r['roi_align_and_max_pool']['sparse_ms'])} ms"
                for r in runs
            ),
        ]
    )
    return rows


def ms(value: float) -> str:
    return sig3(value)


@table(
    "performance-glue",
    DOC,
    Source(f"glue-{XEON}.json", GLUE_COMMAND),
    Source(f"glue-{ZEN3_SLOW}.json", GLUE_COMMAND),
    Source(f"glue-{ZEN4}.json", GLUE_COMMAND),
)
def glue(*runs: dict[str, Any]) -> Rows:
    rows = [
        [
            "step, scene size",
            *(
                f"{short_cpu(r['machine'])}, {revision(r)} (`{r['detector_engine']}`, "
                f"`{r['reid_engine']}`): torchvision / ours ms, x"
                for r in runs
            ),
        ]
    ]
    sizes = list(runs[0]["sizes"])
    for step in ("transform", "crops of the people found", "indexing step: detect, crop, embed"):
        for size in sizes:
            cells = []
            for r in runs:
                s = r["sizes"][size]["steps"][step]
                x = f"**{s['x']:.2f}**" if step.startswith("indexing") else f"{s['x']:.1f}"
                cells.append(f"{ms(s['torchvision_ms'])} / {ms(s['ours_ms'])}, {x}")
            rows.append(
                [f"{'input transform' if step == 'transform' else step}, {size.replace('x', ' x ')}", *cells]
            )
    return rows


# --- a model's first use ----------------------------------------------------------------------


@table(
    "performance-first-use",
    DOC,
    Source(f"first_use-{XEON}.json", "python benchmarks/first_use.py --runs 3"),
    Source(f"first_use-{XEON_REV7}.json", "python benchmarks/first_use.py --runs 3"),
    Source(f"first_use-{ZEN4}.json", "python benchmarks/first_use.py"),
    Source(f"first_use-{ZEN3}.json", "python benchmarks/first_use.py"),
    Source(f"first_use-{ZEN3_SLOW}.json", "python benchmarks/first_use.py"),
)
def first_use(*runs: dict[str, Any]) -> Rows:
    rows = [
        [
            "CPU (median of fresh processes)",
            "probe material",
            "engine measurement",
            "whole process",
            "later loads, choice cached",
            "chosen (detector, re-id)",
        ]
    ]
    for r in runs:
        median = r["median_seconds"]
        choices = sorted({f"`{run['chosen']['detector']}`, `{run['chosen']['reid']}`" for run in r["runs"]})
        rows.append(
            [
                f"{short_cpu(r['machine'])}, {revision(r)} ({len(r['runs'])} runs)",
                f"{median['probe material']:.1f} s",
                f"{median['engine measurement']:.1f} s",
                f"{r['median_process_wall_s']:.0f} s",
                f"{median['load with the choice cached']:.1f} s",
                "; ".join(choices),
            ]
        )
    return rows


# --- training speed ---------------------------------------------------------------------------

TRAIN_CASES = {
    "train re-id MobileNetV2 128x64 b64": "re-id MobileNetV2 128x64, batch 64",
    "train re-id MobileNetV2 256x128 b32": "re-id MobileNetV2 256x128, batch 32",
    "train re-id ResNet-50 256x128 b32": "re-id ResNet-50 256x128, batch 32",
    "train detector MobileNetV2 C4 600px b2": "detector MobileNetV2 C4, 600 px, batch 2",
    "train detector ResNet-50 C4 600px b2": "detector ResNet-50 C4, 600 px, batch 2",
}


def training_rows(results: dict[str, Any], variants: dict[str, str]) -> Rows:
    rows = [["training step (images/s)", "plain PyTorch", *variants.values()]]
    for case in results["sections"]["train"]:
        measured = case["variants"]
        row = [TRAIN_CASES[case["name"]], sig3(measured["reference"]["median"])]
        best = max((v for v in variants if v in measured), key=lambda v: measured[v]["speedup"])
        for variant in variants:
            if variant not in measured:
                row.append("")
                continue
            cell = f"{sig3(measured[variant]['median'])} ({measured[variant]['speedup']:.2f}x)"
            row.append(f"**{cell}**" if variant == best else cell)
        rows.append(row)
    return rows


BF16_VARIANTS = {
    "fp32": "fp32",
    "fp32+channels_last": "fp32, channels_last",
    "fast": "fast (bf16 autocast)",
    "fast+channels_last": "fast, channels_last",
}


@table(
    "performance-training-xeon",
    DOC,
    Source(
        f"speed-train-{XEON}.json",
        "python benchmarks/speed.py --only train --data demo-output/data --out "
        f"benchmarks/results/speed-train-{XEON}.json",
    ),
)
def training_xeon(results: dict[str, Any]) -> Rows:
    return training_rows(results, BF16_VARIANTS)


@table(
    "performance-training-zen3",
    DOC,
    Source(
        f"speed-train-{ZEN3}.json",
        f"python benchmarks/speed.py --only train --out benchmarks/results/speed-train-{ZEN3}.json",
    ),
)
def training_zen3(results: dict[str, Any]) -> Rows:
    return training_rows(
        results,
        {
            "fp32": "fp32",
            "fp32+channels_last": "fp32, channels_last",
            "fast": "fast (fp32 here)",
            "fast+channels_last": "fast, channels_last",
        },
    )


@table(
    "performance-training-zen4",
    DOC,
    Source(
        f"speed-train-{ZEN4}.json",
        f"python benchmarks/speed.py --only train --out benchmarks/results/speed-train-{ZEN4}.json",
    ),
)
def training_zen4(results: dict[str, Any]) -> Rows:
    return training_rows(results, BF16_VARIANTS)


# --- search latency ---------------------------------------------------------------------------


@table(
    "performance-search-latency",
    DOC,
    Source(
        "search_latency.json",
        "python benchmarks/search_latency.py --data data/synthetic-small-seed7 --nprobe 16,32,64,128,256",
    ),
)
def search_latency(results: dict[str, Any]) -> Rows:
    nprobe = 64
    rerank = results["settings"]["rerank"][0]
    rows = [
        [
            "boxes",
            "exact, faiss flat (p50)",
            f"IVF-Flat nprobe {nprobe} (p50 / recall@10)",
            f"IVF-PQ + re-rank {rerank}, nprobe {nprobe} (p50 / recall@10)",
        ]
    ]
    for size in results["sizes"]:
        methods = size["methods"]
        flat = next(m for name, m in methods.items() if name.startswith("exact"))
        ivf_name = next(
            name for name in methods if name.startswith("IVF nlist=") and name.endswith(f"nprobe={nprobe}")
        )
        ivfpq = next(
            m
            for name, m in methods.items()
            if name.startswith("IVF-PQ") and name.endswith(f"nprobe={nprobe}")
        )
        lists = int(re.search(r"nlist=(\d+)", ivf_name).group(1))  # type: ignore[union-attr]
        ivf = methods[ivf_name]
        rows.append(
            [
                boxes(size["rows"]),
                f"{ms(flat['p50_ms'])} ms",
                f"{ms(ivf['p50_ms'])} ms / {ivf['recall_at_10']:.3f} ({lists:,} lists)",
                f"{ms(ivfpq['p50_ms'])} ms / {ivfpq['recall_at_10']:.3f}",
            ]
        )
    return rows


def boxes(rows: int) -> str:
    return f"{rows // 1_000_000}M" if rows >= 1_000_000 else f"{rows // 1000}k"


GPU_ROW = Source("gpu_row-nvidia-h200.json", "PYTHONPATH=. python3 benchmarks/gpu_row.py")


@table("performance-gpu-row", DOC, GPU_ROW)
def gpu_row(results: dict[str, Any]) -> Rows:
    """fp32 against the GPU's mixed precision, per case: scenes or crops a second."""
    mixed = f"{results['mixed_precision'].removeprefix('torch.')} autocast"
    rows = [["case", "fp32 per s", f"{mixed} per s", "x fp32"]]
    for case in results["cases"]:
        fp32, mix = case["engines"]["torch-fp32"], case["engines"]["torch-bf16"]
        unit = case["unit"]
        rows.append(
            [
                case["case"],
                f"{num(fp32['per_s'])} {unit}",
                f"{num(mix['per_s'])} {unit}",
                num(mix["x_fp32"], 2),
            ]
        )
    return rows


@table("performance-gpu-choice", DOC, GPU_ROW)
def gpu_choice(results: dict[str, Any]) -> Rows:
    """What ``--engine auto`` measured and picked on the GPU (the CPU engines are not candidates)."""
    rows = [["network", "engine", "per s", "verdict"]]
    choice = results["auto_choice"]
    for m in choice["measurements"]:
        if m["per_s"] is None:
            continue
        verdict = "CHOSEN" if choice[m["network"]] == m["engine"] else ("agrees" if m["accepted"] else "")
        rows.append([m["network"], m["engine"], num(m["per_s"]), verdict or m["note"]])
    return rows
