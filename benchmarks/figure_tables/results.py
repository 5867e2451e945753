"""docs/results.md's figure tables."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from figure_tables import Rows, Source, cpu_label, microarchitecture, num, pct, table

DOC = "docs/results.md"
RELEASE = Source("release_model.json", "python benchmarks/release_model.py")
ABLATION = Source("ablation.json", "python benchmarks/ablation.py --epochs 40 --seeds 0 1 2")
REID_COSTS = (
    Source("reid_cost-9adbcc2d45e9.json", "python benchmarks/reid_cost.py --rounds 10"),
    Source("reid_cost-5a282d6e6508.json", "python benchmarks/reid_cost.py --rounds 10"),
)
"""The Zen 3 (AVX2 only) of the ablation's AVX2 seeds, and the Zen 4 of its later seeds."""
ABLATION_RENDERED = Source(
    "ablation_rendered.json", "python benchmarks/ablation_rendered.py --root data/people3d-v3 --seeds 0 1 2"
)
DETECTOR_ABLATION = Source("detector_ablation.json", "python benchmarks/detector_ablation.py --epochs 1")
CLSA_INVESTIGATION = Source(
    "clsa_investigation.json",
    "git checkout 7157767 && python benchmarks/clsa_investigation.py --trials "
    "'clsa-lambda4:align_weight=4.0' 'clsa-T1:temperature=1.0' 'clsa-noaug:downscale_prob=0.0' "
    "'clsa-40ep:epochs=40' 'multi-40ep:variant=\"multi\",epochs=40' "
    "'single-40ep:variant=\"single\",epochs=40' (that commit's script reads its 20-epoch ablation.json; "
    "today's reads the three-seed one)",
)

SMALL = "<60"
HEIGHTS = ("<60", "60-120", "120-240", ">=240")


def _gallery(search: dict[str, Any]) -> str:
    """``"100 images per query"`` -> ``"gallery 100"``."""
    return "gallery " + str(search["settings"]["gallery"]).split()[0]


# --- the shipped default model ---------------------------------------------------------------


@table("results-release", DOC, RELEASE)
def release(results: dict[str, Any]) -> Rows:
    rows = [
        [
            "benchmark",
            "detection recall / AP",
            "recall < 60 px",
            "search mAP / top-1 (detections)",
            "mAP / top-1 (GT boxes)",
        ]
    ]
    labels = {
        "standard": "standard, test split, {gallery}, {queries} queries",
        "held_out_small": "small, seed 7 (never trained on), {gallery}, {queries} queries",
    }
    for key, label in labels.items():
        part = results[key]
        det, search, gt = part["detection"], part["search"], part["search_gt_boxes"]
        rows.append(
            [
                label.format(gallery=_gallery(search), queries=search["n_queries"]),
                f"{pct(det['recall'])} / {pct(det['ap'])}",
                pct(det["recall_by_height"][SMALL]["recall"]),
                f"{pct(search['mAP'])} / {pct(search['topk']['1'])}",
                f"{pct(gt['mAP'])} / {pct(gt['topk']['1'])}",
            ]
        )
    return rows


# --- the single / multi / clsa ablation ------------------------------------------------------


def _ablation_cells(cell: Callable[..., str]) -> list[str]:
    """mAP and top-1 with detections and with GT boxes, top-1 (GT boxes) by query height, and mAP
    (GT boxes) over gallery targets under 60 px; ``cell(boxes, *path)`` writes one figure, ``boxes``
    being ``"search"`` (detections) or ``"search_gt_boxes"``."""
    det, gt = "search", "search_gt_boxes"
    cells = [cell(det, "mAP"), cell(det, "topk", "1"), cell(gt, "mAP"), cell(gt, "topk", "1")]
    cells += [cell(gt, "by_query_height", h, "topk", "1") for h in HEIGHTS]
    cells.append(cell(gt, "by_target_height", SMALL, "mAP"))
    return cells


def _get(tree: dict[str, Any], *path: str) -> float:
    for key in path:
        tree = tree[key]
    return float(tree)  # type: ignore[arg-type]


def _per_run(run: dict[str, Any]) -> Callable[..., str]:
    return lambda boxes, *path: pct(_get(run[boxes], *path), 2)


def _mean_sd(mean: dict[str, Any], std: dict[str, Any], bold: bool = False) -> Callable[..., str]:
    """Cells of the mean over seeds ± the standard deviation; ``mean`` and ``std`` hold
    ``search`` and ``search_gt_boxes``."""

    def cell(boxes: str, *path: str) -> str:
        text = f"{pct(_get(mean[boxes], *path), 2)} ± {pct(_get(std[boxes], *path), 2)}"
        return f"**{text}**" if bold else text

    return cell


@table("results-ablation", DOC, ABLATION)
def ablation(results: dict[str, Any]) -> Rows:
    header = [
        "variant",
        "mAP (det)",
        "top-1 (det)",
        "mAP (GT)",
        "top-1 (GT)",
        "query < 60 px",
        "60-120",
        "120-240",
        ">= 240",
    ]
    rows = [[*header, "mAP, targets < 60 px", "trained on, minutes"]]
    variants = results["variants"]
    for name, variant in variants.items():
        for seed, run in variant["per_seed"].items():
            trained = f"{run['machine']['cpu_capability']}, {run['train']['seconds'] / 60:.0f}"
            rows.append([f"{name}, seed {seed}", *_ablation_cells(_per_run(run)), trained])
    for name, variant in variants.items():
        if len(variant["seeds"]) < 2:
            continue  # one seed: its row above is all there is
        std = {boxes: variant[f"{boxes}_std"] for boxes in ("search", "search_gt_boxes")}
        rows.append(
            [f"**{name}**, mean ± sd", *_ablation_cells(_mean_sd(variant, std, bold=name == "clsa")), ""]
        )
    for name, variant in variants.items():
        if "weighted" in variant:
            cells = _ablation_cells(_mean_sd(variant["weighted"], variant["weighted_std"]))
            rows.append([f"{name}, levels weighted on validation, mean ± sd", *cells, ""])
    return rows


@table("results-ablation-cost", DOC, ABLATION, *REID_COSTS)
def ablation_cost(results: dict[str, Any], *timings: dict[str, Any]) -> Rows:
    """Each variant's accuracy beside its cost per crop (the paper's baselines included), the
    milliseconds on each CPU timed, in the order of the header."""
    cpus = " / ".join(microarchitecture(t["machine"]) or cpu_label(t["machine"]) for t in timings)
    rows = [
        [
            "variant",
            "seeds",
            "top-1 (det)",
            "top-1 (GT)",
            "top-1 (GT), query < 60 px",
            "parameters (M)",
            "GFLOPs per crop",
            f"ms per crop, ORT fp32 ({cpus})",
            f"ms per crop, PyTorch fp32 ({cpus})",
            "training, minutes",
            "fusion (chosen on validation)",
        ]
    ]
    for name, variant in results["variants"].items():
        cost = variant["cost"]
        ms = [t["variants"][name] for t in timings]
        std = {boxes: variant[f"{boxes}_std"] for boxes in ("search", "search_gt_boxes")}
        cell = _mean_sd(variant, std) if len(variant["seeds"]) > 1 else _per_run(variant)
        chosen = sorted({run["fuse_chosen"] for run in variant["per_seed"].values() if "fuse_chosen" in run})
        rows.append(
            [
                name,
                str(len(variant["seeds"])),
                cell("search", "topk", "1"),
                cell("search_gt_boxes", "topk", "1"),
                cell("search_gt_boxes", "by_query_height", SMALL, "topk", "1"),
                num(cost["parameters_m"], 2),
                num(cost["gflops_per_crop"], 3),
                " / ".join(num(m["ms_per_crop_ort-fp32"], 2) for m in ms)
                if all("ms_per_crop_ort-fp32" in m for m in ms)
                else "does not export",
                " / ".join(num(m["ms_per_crop_torch-fp32"], 2) for m in ms),
                num(cost["train_seconds"] / 60, 0),
                " / ".join(chosen),
            ]
        )
    return rows


@table("results-ablation-rendered", DOC, ABLATION_RENDERED)
def ablation_rendered(results: dict[str, Any]) -> Rows:
    """The five variants on held-out rendered people shown at street heights (the file's figures
    are already percentages)."""
    rows = [
        [
            "variant",
            "mAP",
            "top-1",
            "query < 60 px",
            "60-120",
            "120-240",
            ">= 240",
            "top-1, full size",
            "fusion",
            "trained, minutes",
        ]
    ]

    def cells(
        street: dict[str, Any], full: dict[str, Any], sd: tuple[dict[str, Any], dict[str, Any]] | None
    ) -> list[str]:
        def cell(tree: dict[str, Any], sd_tree: dict[str, Any] | None, *path: str) -> str:
            text = num(_get(tree, *path), 1)
            return text if sd_tree is None else f"{text} ± {num(_get(sd_tree, *path), 1)}"

        s_sd, f_sd = sd if sd else (None, None)
        out = [cell(street, s_sd, "mAP"), cell(street, s_sd, "top1")]
        out += [cell(street, s_sd, "by_query_height", h, "top1") for h in HEIGHTS]
        return [*out, cell(full, f_sd, "top1")]

    variants = results["variants"]
    for name, variant in variants.items():
        for seed, run in variant["per_seed"].items():
            minutes = num(run["train"]["seconds"] / 60, 0)
            rows.append(
                [
                    f"{name}, seed {seed}",
                    *cells(run["street_heights"], run["full_size"], None),
                    run["fuse_used"],
                    minutes,
                ]
            )
    for name, variant in variants.items():
        mean, std = variant["mean"], variant["std"]
        row = cells(mean["street_heights"], mean["full_size"], (std["street_heights"], std["full_size"]))
        rows.append([f"**{name}**, mean ± sd", *row, "", ""])
    return rows


# --- the paper's detector changes ------------------------------------------------------------

DETECTOR_ROWS = {
    "paper": (
        "`paper`: every change on (RoIAlign 14 + max-pool, frozen stem, all-size proposals, score > 0.5)"
    ),
    "roialign7": "`roialign7`: RoIAlign straight to 7 x 7, no max-pool",
    "train_stem": "`train_stem`: the stem fine-tuned with the rest instead of frozen",
    "min_size16": "`min_size16`: proposals under 16 px dropped",
    "fixed_top": "deployment `fixed_top`: the best {per_image} boxes per scene, any score",
    "top100": "deployment `top100`: up to {per_image} per scene above {thresh} (torchvision's default)",
}


@table("results-detector-ablation", DOC, DETECTOR_ABLATION)
def detector_ablation(results: dict[str, Any]) -> Rows:
    header = [
        "detector",
        "recall",
        "recall < 60 px",
        "AP",
        "search mAP / top-1",
        "top-1, queries < 60 px",
        "mAP, targets < 60 px",
        "mAP / top-1, GT boxes",
    ]
    rows = [header]
    for key, label in DETECTOR_ROWS.items():
        variant = results["variants"][key]
        det, search, gt = variant["detection"], variant["search"], variant["search_gt_boxes"]
        deployment = variant.get("deployment", {})
        rows.append(
            [
                label.format(
                    per_image=deployment.get("detections_per_img"), thresh=deployment.get("score_thresh")
                ),
                pct(det["recall"]),
                pct(det["recall_by_height"][SMALL]["recall"]),
                pct(det["ap"]),
                f"{pct(search['mAP'])} / {pct(search['topk']['1'])}",
                pct(search["by_query_height"][SMALL]["topk"]["1"]),
                pct(search["by_target_height"][SMALL]["mAP"]),
                f"{pct(gt['mAP'])} / {pct(gt['topk']['1'])}",
            ]
        )
    return rows


# --- the 20-epoch follow-up ------------------------------------------------------------------

CLSA_ROWS = (
    ("single", "single (20 epochs)", "layer4"),
    ("multi", "multi", None),
    ("clsa", "clsa (T 3, lambda 1)", None),
    ("clsa-lambda4", "clsa, lambda 4", None),
    ("clsa-T1", "clsa, T 1", "concat only"),
    ("clsa-noaug", "clsa, no scale augmentation", "concat only"),
    ("clsa-40ep", "clsa, 40 epochs", None),
    ("multi-40ep", "multi, 40 epochs", None),
    ("single-40ep", "single, 40 epochs", "layer4"),
)
"""(model, label, how its rows are written): a ``single`` model's one level is its ``layer4``;
``concat only`` leaves its levels out; ``None`` gives the concatenation and each level alone."""

CLSA_SCORES = ("mAP", "top1", "mAP_query<60", "top1_query<60", "mAP_target<60")
BEST = {
    ("multi", "layer4", "mAP"),
    ("multi", "layer4", "top1"),
    ("clsa-40ep", "layer3", "mAP"),
    ("clsa-40ep", "layer3", "top1"),
}
"""Figures the text discusses (a level alone beating the concatenation), in bold."""


@table("results-clsa-investigation", DOC, CLSA_INVESTIGATION)
def clsa_investigation(results: dict[str, Any]) -> Rows:
    header = ["model", "test feature", "mAP", "top-1", "mAP q < 60", "top-1 q < 60", "mAP t < 60"]
    rows = [[*header, "with detections: mAP / top-1 / top-1 q < 60"]]
    for key, label, kind in CLSA_ROWS:
        model = results["models"][key]
        levels = model["levels_gt_boxes"]
        det = model["search"]["with_detections"]
        detections = f"{num(det['mAP'], 2)} / {num(det['top1'], 2)} / {num(det['top1_query<60'], 2)}"
        rows.append(
            [
                label,
                kind if kind == "layer4" else "concat",
                *(num(levels["concat"][s], 2) for s in CLSA_SCORES),
                detections,
            ]
        )
        if kind is None:
            names = [name for name in levels if name != "concat"]
            cells = []
            for score in CLSA_SCORES:
                figures = (num(levels[name][score], 2) for name in names)
                cells.append(
                    " / ".join(
                        f"**{f}**" if (key, name, score) in BEST else f for name, f in zip(names, figures)
                    )
                )
            rows.append([label.split(" (")[0], " / ".join(names) + " alone", *cells, ""])
    return rows
