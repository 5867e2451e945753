"""docs/real-footage.md's figure tables."""

from __future__ import annotations

from typing import Any

from figure_tables import Rows, Source, cpu_label, num, pct, table

DOC = "docs/real-footage.md"

SIGHTINGS = Source("sightings.json", "python benchmarks/sightings.py --seed 1")
ADAPTATION_SPEED = Source("adaptation_speed.json", "python benchmarks/adaptation_speed.py")
CHECK = Source("real_footage_check.json", "python benchmarks/real_footage_check.py score")
JUDGEMENTS = Source(
    "real_footage_judgements.json",
    "python benchmarks/real_footage_check.py sheets (the hits), then a judge's marks by eye",
)
DETECTOR_ADAPTATION = Source(
    "detector_adaptation.json",
    "python benchmarks/detector_adaptation.py --video vtest.avi --adapted "
    "benchmarks/work/adapt-detector-vtest --from-s 50 --fps 5",
)
OTHER_CAMERAS = Source(
    "detector_other_cameras.json",
    "python benchmarks/detector_other_cameras.py sheets --adapted benchmarks/work/adapt-detector-vtest "
    "--film sample.mp4 --opencv-data usr/share/doc/opencv-doc/examples/data; a judge's marks; "
    "python benchmarks/detector_other_cameras.py score",
)

HELD_OUT_VTEST = Source("blind_real_held_out.json", "python benchmarks/blind_real_check.py score --held-out")
HELD_OUT_FILM = Source(
    "blind_real_film_held_out.json", "python benchmarks/blind_real_check.py score --footage film --held-out"
)
HELD_OUT_NAMES = {
    "imagenet": "ImageNet MobileNetV2, pooled features",
    "shipped": "the shipped network (drawn and rendered people)",
    "adapted": "shipped, adapted to the first part (default budget: its duration)",
    "adapted, no budget": "shipped, adapted to the first part, every epoch (--budget none)",
    "adapted, cluster contrast": "shipped, adapted to the first part by cluster contrast (default budget)",
}
HELD_OUT_SIGHTINGS = Source(
    "blind_real_held_out_sightings.json",
    "python benchmarks/blind_real_check.py score --held-out --by-sighting",
)

NETWORKS = {"shipped": "shipped (synthetic people only)", "adapted": "shipped, adapted to this video"}
MODES = {"sighting": "sightings", "frame": "per frame"}


@table("real-footage-indexing", DOC, SIGHTINGS, ADAPTATION_SPEED)
def indexing(sightings: dict[str, Any], speed: dict[str, Any]) -> Rows:
    vtest, summary = sightings["vtest"], speed["indexing"]["summary"]
    runs = [
        (
            "`sightings.py`",
            sightings["machine"],
            vtest["frames"],
            vtest["people"],
            vtest["seconds"],
            vtest["tracking_seconds"],
            vtest["sightings"],
        ),
        (
            "`adaptation_speed.py`",
            speed["machine"],
            summary["frames_processed"],
            summary["people_added"],
            summary["seconds"],
            summary["tracking_seconds"],
            None,
        ),
    ]
    rows = [
        [
            "vtest.avi, every 2nd frame, SSDLite boxes, shipped re-id",
            "frames",
            "people boxed",
            "seconds",
            "frames/s",
            "sightings",
            "tracking",
        ]
    ]
    for script, machine, frames, people, seconds, tracking, sightings_ in runs:
        rows.append(
            [
                f"{script} on {cpu_label(machine)}",
                str(frames),
                f"{people:,}",
                num(seconds),
                num(frames / seconds),
                "" if sightings_ is None else str(sightings_),
                f"{tracking:.2f} s ({100 * tracking / seconds:.1f} %)",
            ]
        )
    return rows


@table("real-footage-by-eye", DOC, CHECK)
def by_eye(check: dict[str, Any]) -> Rows:
    rows = [
        [
            f"re-id network ({check['queries']} queries, SSDLite boxes)",
            "mode",
            "top-1 precision",
            "top-10 precision",
            "could not tell",
        ]
    ]
    for network, label in NETWORKS.items():
        for mode, mode_label in MODES.items():
            cell = check["precision"][f"{network}/{mode}"]
            top10 = num(cell["top10"], 2)
            if (network, mode) == ("adapted", "sighting"):
                top10 = f"**{top10}**"
            rows.append([label, mode_label, num(cell["top1"], 2), top10, num(cell["unsure"], 2)])
    return rows


@table("real-footage-by-query", DOC, JUDGEMENTS)
def by_query(judged: dict[str, Any]) -> Rows:
    columns = [(network, mode) for mode in MODES for network in NETWORKS]
    rows = [["query (frame: who)", *(f"{network}, {MODES[mode]}" for network, mode in columns)]]
    for query in judged["queries"]:
        cells = []
        for network, mode in columns:
            marks = query["rows"][f"{network}/{mode}"]
            unsure = marks.count("?")
            cells.append(f"{marks.count('1')}" + (f" ({unsure} ?)" if unsure else ""))
        rows.append([f"{query['frame']}: {query['person']}", *cells])
    return rows


@table("real-footage-detector-adaptation", DOC, DETECTOR_ADAPTATION)
def detector_adaptation(results: dict[str, Any]) -> Rows:
    held = results["held_out"]
    rows = [
        [
            f"detector (threshold 0.5), {held['frames']} held-out frames",
            "pseudo-labelled people found",
            "extra boxes",
            "boxes on unconfirmed detections",
        ]
    ]
    for name, scores in results["detectors"].items():
        found = (
            f"{scores['found']:,} "
            f"({pct(scores['found'] / scores['truth'])} %{', by construction' if name == 'SSDLite' else ''})"
        )
        cells = [name, found, f"{scores['extra']:,}", f"{scores['ignored']:,}"]
        if name == "adapted":
            cells = [f"**{c}**" for c in cells[:3]] + cells[3:]
        rows.append(cells)
    return rows


@table("real-footage-detector-by-eye", DOC, DETECTOR_ADAPTATION)
def detector_by_eye(results: dict[str, Any]) -> Rows:
    judged = results["by_eye"]
    frames = ", ".join(str(f) for f in judged["frames"])
    rows = [
        [f"detector, held-out frames {frames} by eye", f"people boxed (of {judged['people']})", "extra boxes"]
    ]
    for name, marks in judged["detectors"].items():
        rows.append([name, str(marks["found"]), str(marks["extra"])])
    return rows


@table("real-footage-synthetic-check", DOC, DETECTOR_ADAPTATION)
def synthetic_check(results: dict[str, Any]) -> Rows:
    check = results["synthetic_check"]
    adapted, shipped = check["adapted"], check["shipped"]
    rows = [
        [
            "detector, demo benchmark (seed 7, gallery 50)",
            "detection recall",
            "AP",
            "search mAP",
            "search top-1",
        ]
    ]
    rows.append(
        [
            "adapted to vtest.avi",
            pct(adapted["detection_recall"]),
            pct(adapted["detection_ap"]),
            pct(adapted["search"]["mAP"]),
            pct(adapted["search"]["topk"]["1"]),
        ]
    )
    rows.append(
        [
            "synthetic-only (shipped), as `personsearch demo` scored it (copied into the file)",
            pct(shipped["detection_recall"]),
            pct(shipped["detection_ap"]),
            pct(shipped["search"]["mAP"]),
            pct(shipped["search"]["top1"]),
        ]
    )
    return rows


@table("real-footage-other-cameras", DOC, OTHER_CAMERAS)
def other_cameras(results: dict[str, Any]) -> Rows:
    labels = {
        "1906 film": "1906 film, {n} frames",
        "photographs with people": "photographs with people, {n}",
        "photographs without people": "photographs of an empty street, {n}",
    }
    detectors = {
        "shipped": "synthetic-only (shipped)",
        "adapted": "adapted to vtest.avi",
        "SSDLite": "SSDLite",
    }
    rows = [["images", "people", *(f"{label}: found / extra" for label in detectors.values())]]
    for group, by_detector in results["table"].items():
        first = next(iter(by_detector.values()))
        cells = [f"{by_detector[d]['found']} / {by_detector[d]['extra']}" for d in detectors]
        rows.append([labels[group].format(n=first["images"]), str(first["people"]), *cells])
    return rows


@table("real-footage-held-out", DOC, HELD_OUT_VTEST, HELD_OUT_SIGHTINGS, HELD_OUT_FILM)
def held_out(*results: dict[str, Any]) -> Rows:
    rows = [
        [
            "re-id network",
            "vtest.avi by frame: top-1 / top-10 precision",
            "vtest.avi by sighting",
            "1906 film by frame",
        ]
    ]
    for model in HELD_OUT_NAMES:
        cells = []
        for result in results:
            scores = result["scores"].get(model)
            if scores is None:
                cells.append("-")
                continue
            top1, top10 = num(scores["top1_precision"]), num(scores["top10_precision"])
            cells.append(f"{top1} / {top10} ({scores['queries']} queries)")
        if any(cell != "-" for cell in cells):  # else: a network of an earlier round only
            rows.append([HELD_OUT_NAMES[model], *cells])
    return rows


PEOPLE_SCORE = "python benchmarks/vtest_people.py score"
PEOPLE = Source(
    "vtest_people.json",
    PEOPLE_SCORE + " --model control=runs/people3d-v3-mixed-plain --model passers-by=runs/people3d-v3c-mixed"
    " --model photos=runs/people3d-v3p-mixed --model guide3=runs/people3d-v3-mixed-guide"
    " --model guide0.5=runs/people3d-v3-mixed-guide05 --model v3-3000=runs/people3d-v3-3000-mixed"
    " --model v3-3000-4ep=runs/people3d-v3-3000-mixed-4ep --model mixstyle=runs/people3d-v3-mixed-mixstyle"
    " --model mixstyle1=runs/people3d-v3-mixed-mixstyle1"
    " --model v3-3000-guide0.5=runs/people3d-v3-3000-mixed-guide05",
)
PEOPLE_HELD_OUT = Source(
    "vtest_people_held_out.json",
    PEOPLE_SCORE + " --held-out --model adapted=runs/adapt15/default --model 'adapted, cluster contrast'="
    "runs/adapt15/cc --model 'adapted, warm-up scaled'=runs/adapt15/default-warm --model 'adapted, cluster"
    " contrast, warm-up scaled'=runs/adapt15/cc-warm --model 'adapted, 10x budget'=runs/adapt15/default-10x"
    " --model 'adapted, cluster contrast, 10x budget'=runs/adapt15/cc-10x --model 'adapted, guide 1, 10x"
    " budget'=runs/adapt15/guide1-10x --model 'adapted, guide 3, 10x budget'=runs/adapt15/guide3-10x"
    " --model 'adapted, rounds costed'=runs/adapt16/default"
    " --model 'adapted, frozen trunk'=runs/adapt16/trunk --model 'adapted, rates 0.01'=runs/adapt17/lr3"
    " --model 'adapted, rates 0.03'=runs/adapt17/lr10 --model 'adapted, batch 32'=runs/adapt17/bs32"
    " --model 'adapted, batch 32, rates 0.01'=runs/adapt17/bs32lr3 --model 'adapted, batch 32, rates 0.01,"
    " 10x budget'=runs/adapt17/bs32lr3-10x --model 'adapted, batch 32, rates by length'="
    "runs/adapt17/default --model 'adapted, batch 32, rates by length, 10x budget'=runs/adapt17/default-10x"
    " --model 'adapted, batch 32, rates by length, round 1'=runs/adapt17/default/rounds/round1"
    " --camera-statistics",
)
PEOPLE_NAMES = {
    "imagenet": HELD_OUT_NAMES["imagenet"],
    "shipped": HELD_OUT_NAMES["shipped"],
    "adapted": "shipped, adapted to frames 0-399, default budget (40 s), warm-up of 20 steps",
    "adapted, cluster contrast": "the same by cluster contrast",
    "adapted, warm-up scaled": "shipped, adapted to frames 0-399, default budget, warm-up scaled to the run",
    "adapted, cluster contrast, warm-up scaled": "the same by cluster contrast",
    "adapted, 10x budget": "shipped, adapted to frames 0-399, --budget 10x (every step)",
    "adapted, cluster contrast, 10x budget": "the same by cluster contrast",
    "adapted, guide 1, 10x budget": "shipped, adapted, --budget 10x, ImageNet guide weight 1",
    "adapted, guide 3, 10x budget": "the same, guide weight 3",
    "adapted, rounds costed": "shipped, adapted, default budget, rounds costed with their passes",
    "adapted, frozen trunk": "the same, stem and layer1 frozen and cached (trunk.frozen)",
    "adapted, rates 0.01": "shipped, adapted, default budget, batch 64, rates 0.01 / 0.001",
    "adapted, rates 0.03": "the same at rates 0.03 / 0.003",
    "adapted, batch 32": "shipped, adapted, default budget, batch 32, rates 0.003 / 0.0003 (as before)",
    "adapted, batch 32, rates 0.01": "shipped, adapted, default budget, batch 32, rates 0.01 / 0.001",
    "adapted, batch 32, rates 0.01, 10x budget": "the same, --budget 10x (every step, rates not scaled)",
    "adapted, batch 32, rates by length": "shipped, adapted, default budget, batch 32 at rates 0.01 / 0.001 "
    "scaled down beyond 40 steps a round (the defaults now)",
    "adapted, batch 32, rates by length, 10x budget": "the same, --budget 10x (every step, rates scaled)",
    "adapted, batch 32, rates by length, round 1": "the defaults' run above, its network after round 1 of 2",
    "shipped, centred": "shipped, no training: features centred on frames 0-399's mean feature",
    "shipped, whitened": "shipped, no training: features whitened by frames 0-399's (64 dimensions)",
    "shipped, AdaBN": "shipped, no training: BatchNorm statistics measured again on frames 0-399 (AdaBN)",
}
PEOPLE_RERANKED = Source("vtest_people_reranked.json", PEOPLE_SCORE + " --rerank")
PEOPLE_HELD_OUT_RERANKED = Source(
    "vtest_people_held_out_reranked.json",
    PEOPLE_SCORE + " --held-out --rerank --model 'adapted, batch 32, rates by length'=runs/adapt17/default",
)
RERANKING = Source(
    "reranking_synthetic.json",
    "python benchmarks/reranking.py --synthetic data/synthetic-standard --index demo-output/index",
)
RERANKED_NAMES = {
    "adapted, batch 32, rates by length": "shipped, adapted to frames 0-399 (default budget)",
}


def _people_rows(results: dict[str, Any]) -> Rows:
    from figure_tables.rendered_people import NAMES

    rows = [
        [
            "re-id network",
            "every other sighting: mAP / top-1",
            "mAP gain over shipped, 95 % interval",
            "other visits: mAP / top-1",
            "mAP gain, 95 % interval",
        ]
    ]

    def gain(scores: dict[str, Any]) -> str:
        interval = scores.get("mAP_gain_over_shipped_95")
        return "-" if interval is None else f"{num(interval[0])} to {num(interval[1])}"

    for name, scores in results["scores"].items():
        where = results["networks"].get(name, "")
        label = PEOPLE_NAMES.get(name) or NAMES.get(where) or name
        every, visits = scores["all"], scores["other visits"]
        rows.append(
            [
                label,
                f"{num(every['mAP'])} / {num(every['top1'])}",
                gain(every),
                f"{num(visits['mAP'])} / {num(visits['top1'])}",
                gain(visits),
            ]
        )
    first = results["scores"]["shipped"]
    rows.append(
        [
            "queries (of the labelled sightings)",
            f"{int(first['all']['queries'])} of {results['labels']['sightings']}",
            "",
            str(int(first["other visits"]["queries"])),
            "",
        ]
    )
    return rows


@table("real-footage-people", DOC, PEOPLE)
def people(results: dict[str, Any]) -> Rows:
    return _people_rows(results)


@table("real-footage-people-held-out", DOC, PEOPLE_HELD_OUT)
def people_held_out(results: dict[str, Any]) -> Rows:
    return _people_rows(results)


def _reranked_rows(results: dict[str, Any]) -> Rows:
    """Each network plain and re-ranked: mAP / top-1 / top-10 on every other sighting and on other
    visits, and the mAP gain over the shipped network's plain row."""
    rows = [
        [
            "re-id network",
            "ranking",
            "every other sighting: mAP / top-1 / top-10",
            "mAP gain over shipped, 95 % interval",
            "other visits: mAP / top-1 / top-10",
            "mAP gain, 95 % interval",
        ]
    ]

    def cells(scores: dict[str, Any]) -> list[str]:
        interval = scores.get("mAP_gain_over_shipped_95")
        return [
            f"{num(scores['mAP'])} / {num(scores['top1'])} / {num(scores['top10'])}",
            "-" if interval is None else f"{num(interval[0])} to {num(interval[1])}",
        ]

    for name, scores in results["scores"].items():
        network = name.removesuffix(", re-ranked")
        label = RERANKED_NAMES.get(network) or PEOPLE_NAMES.get(network) or network
        ranking = "re-ranked (search --rerank)" if name.endswith(", re-ranked") else "cosine"
        rows.append(
            [
                label if ranking == "cosine" else "",
                ranking,
                *cells(scores["all"]),
                *cells(scores["other visits"]),
            ]
        )
    return rows


table("real-footage-people-reranked", DOC, PEOPLE_RERANKED)(_reranked_rows)
table("real-footage-people-held-out-reranked", DOC, PEOPLE_HELD_OUT_RERANKED)(_reranked_rows)


@table("real-footage-reranking-synthetic", DOC, RERANKING)
def reranking_synthetic(results: dict[str, Any]) -> Rows:
    rows = [["boxes", "ranking", "mAP", "top-1", "top-5", "top-10", "scoring time (s)"]]
    for name, scores in results["synthetic"]["scores"].items():
        boxes = name.removesuffix(", re-ranked")
        rows.append(
            [
                "the shipped detector's" if boxes == "detections" else "ground truth",
                "re-ranked" if name.endswith(", re-ranked") else "cosine",
                num(scores["mAP"]),
                num(scores["top1"]),
                num(scores["top5"]),
                num(scores["top10"]),
                num(scores["seconds"]),
            ]
        )
    return rows


@table("real-footage-reranking-footage", DOC, RERANKING)
def reranking_footage(results: dict[str, Any]) -> Rows:
    footage = results["footage"]
    rows = [["query against the other cameras'", "ranking", "mAP", "top-1", "queries"]]
    for level, what in (
        ("frame", f"a frame, against every frame ({footage['frames']} frames)"),
        ("appearance", f"an appearance's mean feature ({footage['appearances']} appearances)"),
    ):
        for ranking in ("cosine", "re-ranked"):
            scores = footage[ranking]
            rows.append(
                [
                    what if ranking == "cosine" else "",
                    ranking,
                    pct(scores[f"{level}_mAP"]),
                    pct(scores[f"{level}_top1"]),
                    str(scores[f"{level}_queries"]),
                ]
            )
    return rows


@table("real-footage-reranking-crops", DOC, RERANKING)
def reranking_crops(results: dict[str, Any]) -> Rows:
    crops = results["crops"]
    rows = [["ranking", "mAP", "top-1", "top-5", "top-10", "queries", "gallery crops"]]
    for ranking in ("cosine", "re-ranked"):
        scores = crops[ranking]
        rows.append(
            [
                ranking,
                *(num(scores[key]) for key in ("mAP", "top1", "top5", "top10")),
                str(int(scores["queries"])),
                str(int(scores["gallery"])),
            ]
        )
    return rows
