"""README.md's figure tables."""

from __future__ import annotations

from typing import Any

from figure_tables import Rows, Source, num, short_cpu, table

SIGHTINGS = Source("sightings.json", "python benchmarks/sightings.py --seed 1")
ADAPTATION = Source("adaptation.json", "python benchmarks/adaptation.py")
ADAPTATION_UNBUDGETED = Source(
    "adaptation_unbudgeted.json",
    "python benchmarks/adaptation.py --budget none --out benchmarks/results/adaptation_unbudgeted.json",
)
ADAPTATION_CLUSTER_CONTRAST = Source(
    "adaptation_cluster_contrast.json",
    "python benchmarks/adaptation.py --budget none --learner cluster_contrast --work "
    "benchmarks/work/adaptation-cc --out benchmarks/results/adaptation_cluster_contrast.json",
)
_LATER = (
    "python benchmarks/adaptation.py --scored later --people 24 --look-alikes 2 3 --max-person 120 "
    "--queries every-camera"
)
ADAPTATION_LATER = (
    Source("adaptation_later.json", f"{_LATER} --out benchmarks/results/adaptation_later.json"),
    Source(
        "adaptation_later_cluster_contrast.json",
        f"{_LATER} --learner cluster_contrast "
        "--out benchmarks/results/adaptation_later_cluster_contrast.json",
    ),
    Source(
        "adaptation_later_trunk.json",
        f"{_LATER} --set trunk.frozen=stem,layer1 --out benchmarks/results/adaptation_later_trunk.json",
    ),
)
_MEMORY = f"{_LATER} --learner cluster_contrast --budget none --epochs 2"
ADAPTATION_MEMORY = (
    Source("adaptation_memory_full.json", f"{_MEMORY} --out benchmarks/results/adaptation_memory_full.json"),
    Source(
        "adaptation_memory_no_camera.json",
        f"{_MEMORY} --set camera_weight=0 --out benchmarks/results/adaptation_memory_no_camera.json",
    ),
    Source(
        "adaptation_memory_none.json",
        f"{_MEMORY} --set camera_weight=0 --set memory_weight=0 "
        "--out benchmarks/results/adaptation_memory_none.json",
    ),
)
DISTRIBUTED = Source("distributed_indexing.json", "python benchmarks/distributed_indexing.py")
SEARCH_WHOLE = Source("search_whole.json", "python benchmarks/search_whole.py")


@table("readme-sightings", "README.md", SIGHTINGS)
def sightings(results: dict[str, Any]) -> Rows:
    synthetic = results["synthetic"]
    frames, sightings_ = (
        synthetic["search"]["frame query, per-frame hits"],
        synthetic["search"]["frame query, sighting hits"],
    )
    tracking = synthetic["tracking"].values()
    purity = [c["purity"] for c in tracking]
    fragments = [c["fragments_per_appearance"] for c in tracking]
    whole = [c["appearances_in_one_sighting"] for c in tracking]
    videos = (
        f"{synthetic['cameras']} cameras x {synthetic['people']} people, "
        f"{synthetic['frames_per_video']} frames each"
    )
    return [
        [videos, "per-frame hits", "sighting hits"],
        [
            f"cross-camera top-1 ({frames['queries']} queries, one frame each)",
            num(frames["top1"], 3),
            num(sightings_["top1"], 3),
        ],
        [
            "share of the person's appearances found in the top 10",
            num(frames["appearance_recall@10"], 3),
            num(sightings_["appearance_recall@10"], 3),
        ],
        [
            "distinct appearances among the top 10",
            num(frames["distinct_appearances@10"]),
            num(sightings_["distinct_appearances@10"]),
        ],
        [
            "tracking purity (boxes whose sighting's majority person is theirs), per camera",
            "",
            f"{min(purity):.2f}-{max(purity):.2f}",
        ],
        [
            "sightings per appearance (fragmentation), per camera",
            "",
            f"{min(fragments):.1f}-{max(fragments):.1f}",
        ],
        [
            "appearances tracked as one sighting, per camera",
            "",
            f"{100 * min(whole):.0f}-{100 * max(whole):.0f} %",
        ],
        [
            "tracking's share of indexing time: these videos / vtest.avi (SSDLite boxes)",
            "",
            f"{_share(synthetic['indexing'])} / {_share(results['vtest'])}",
        ],
    ]


def _share(run: dict[str, Any]) -> str:
    return f"{100 * run['tracking_seconds'] / run['seconds']:.2f} %"


@table("readme-adaptation", "README.md", ADAPTATION, ADAPTATION_UNBUDGETED, ADAPTATION_CLUSTER_CONTRAST)
def adaptation(*results: dict[str, Any]) -> Rows:
    return _adaptation_rows(results)


@table("readme-adaptation-later", "README.md", *ADAPTATION_LATER)
def adaptation_later(*results: dict[str, Any]) -> Rows:
    return _adaptation_rows(results)


@table("readme-adaptation-memory", "README.md", *ADAPTATION_MEMORY)
def adaptation_memory(*results: dict[str, Any]) -> Rows:
    return _adaptation_rows(results)


def _adaptation_rows(results: tuple[dict[str, Any], ...]) -> Rows:
    """One row per start and run: scores before and after, and what the run did and took."""
    rows = [
        [
            "start",
            "learner",
            "time budget",
            "appearance mAP before",
            "after adapting",
            "frame mAP before",
            "after",
            "tracklets",
            "steps per round (frame mAP after it)",
            "seconds",
        ]
    ]
    labels = {"imagenet": "ImageNet weights (untrained re-id heads)", "shipped": "the shipped network"}
    for result in results:
        learner = result.get("learner", "association").replace("_", " ")
        if result.get("settings"):
            learner += f" ({', '.join(result['settings'])})"
        for key in ("imagenet", "shipped"):
            model = result["models"][key]
            rounds = len(model["classes_per_round"])
            label = f"{labels[key]}, {rounds} round{'s' if rounds > 1 else ''}"
            budget = model.get("budget", "none")
            budget_text = "none (every epoch)"
            if budget != "none":
                budget_text = f"{budget}: {num(model['budget_s'], 0)} s"
            before, after = model["before"], model["after"]
            rows.append(
                [
                    label,
                    learner,
                    budget_text,
                    num(before["appearance_mAP"], 3),
                    num(after["appearance_mAP"], 3),
                    num(before["frame_mAP"], 3),
                    num(after["frame_mAP"], 3),
                    str(model["tracklets"]),
                    _per_round(model),
                    num(model["adapt_seconds"], 0),
                ]
            )
    return rows


def _per_round(model: dict[str, Any]) -> str:
    """Each round's training steps, with its network's frame mAP where the run scored every round
    (``per_round``; older results files hold the steps alone)."""
    if "per_round" in model:
        return " / ".join(f"{r['steps']} ({num(r['frame_mAP'], 3)})" for r in model["per_round"])
    return " / ".join(str(n) for n in model.get("steps_per_round", [])) or "-"


@table("readme-distributed", "README.md", DISTRIBUTED)
def distributed(results: dict[str, Any]) -> Rows:
    runs = {run["mode"]: run for run in results["runs"]}
    single = runs["single process"]
    ray = [runs["Ray, 1 actor"], runs["Ray, 2 actors"]]
    return [
        [
            f"indexing {results['images']} scenes, shipped model",
            "images/s",
            "vs one process",
            "driver commit share",
        ],
        [
            "one process (2 threads)",
            num(single["images_per_s"], 2),
            "1.00x",
            f"{100 * single['commit_share']:.1f} %",
        ],
        [
            "Ray, 1 actor / 2 actors",
            " / ".join(num(r["images_per_s"], 2) for r in ray),
            " / ".join(f"{r['ratio_to_single_process']:.2f}x" for r in ray),
            " / ".join(f"{100 * r['commit_share']:.1f} %" for r in ray),
        ],
    ]


@table("readme-10m", "README.md", SEARCH_WHOLE)
def search_10m(results: dict[str, Any]) -> Rows:
    content, search = results["content"], results["search"]
    identity = search["identity_precision_at_10"]
    rows = [
        [
            f"{content['rows'] / 1e6:.0f}M boxes in {content['sightings']:,} sightings, whole search "
            "(rows, filters, thumbnails), a fresh process",
            "p50",
            "p99",
            "recall@10 vs exact",
            "right person in top 10, vs exact search",
        ]
    ]
    for key, label in (
        ("all", "one hit per sighting (the default)"),
        ("filtered", "filtered (10 of 100 cameras, a time range)"),
    ):
        m = search[key]
        rows.append(
            [
                label,
                f"{m['p50_ms']:.0f} ms",
                f"{m['p99_ms']:.0f} ms",
                num(m["recall_at_10"], 2),
                f"{100 * identity[key]['search']:.1f} % vs {100 * identity[key]['exact']:.1f} %",
            ]
        )
    rows.append(
        [
            f"**peak resident memory of the search process: {search['peak_resident_gb']:.1f} GB**",
            "",
            "",
            "",
            "",
        ]
    )
    return rows


DEMO = Source("demo-9adbcc2d45e9.json", "python benchmarks/demo_run.py")
"""The AMD EPYC Zen 3 (AVX2 only)."""
DEMO_XEON = Source("demo-8d46878a3e25.json", "python benchmarks/demo_run.py")
"""The Intel Xeon with AMX (Emerald Rapids)."""


@table("readme-demo", "README.md", DEMO, DEMO_XEON)
def demo(*runs_by_cpu: dict[str, Any]) -> Rows:
    rows = [
        [
            "CPU",
            "engines (fresh process, empty cache)",
            "detection recall / AP",
            "search mAP / top-1",
            "GT boxes mAP / top-1",
            "showcase: right hits of 10",
            "demo's own clock",
            "whole command",
        ]
    ]
    for results in runs_by_cpu:
        rows += [[short_cpu(results["machine"]), *demo_cells(run)] for run in results["runs"]]
    return rows


def demo_cells(run: dict[str, Any]) -> list[str]:
    """One ``demo_run.py`` run: the engines it ran, then what the demo printed and its times."""
    setting = (
        "the machine's own choice"
        if run["engine_setting"] == "auto"
        else f"`PERSONSEARCH_ENGINE={run['engine_setting']}`"
    )
    chosen = run["engines"].removeprefix("engines: ").split(";")[0] if run["engines"] else "?"
    return [
        f"{setting}: {chosen}",
        f"{num(100 * run['detection_recall'])} / {num(100 * run['detection_ap'])}",
        f"{num(100 * run['search_mAP'])} / {num(100 * run['search_top1'], 2)}",
        f"{num(100 * run['gt_boxes_mAP'])} / {num(100 * run['gt_boxes_top1'], 2)}",
        f"{run['report_hits_correct']} of {run['report_hits']}",
        f"{run['timings_s']['total']:.0f} s",
        f"{run['wall_s']:.0f} s",
    ]


TRACKING = Source("tracking_speed.json", "python benchmarks/tracking_speed.py --video vtest.avi")


@table("readme-tracking-speed", "README.md", TRACKING)
def tracking_speed(results: dict[str, Any]) -> Rows:
    header = [
        "footage (2 frames/s)",
        "detections",
        "sightings",
        "tracking s",
        "indexing s",
        "tracking's share",
    ]
    return [header] + [
        [
            f"{run['minutes']:.0f} min",
            f"{run['detections']:,}",
            f"{run['tracks']:,}",
            num(run["tracking_s"]),
            num(run["indexing_s_at_index_fps"], 0),
            f"{100 * run['share']:.2f} %",
        ]
        for run in results["runs"]
    ]
