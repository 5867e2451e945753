"""docs/rendered-people.md's figure tables."""

from __future__ import annotations

from typing import Any

from figure_tables import Rows, Source, num, pct, table

EVALUATE = "python benchmarks/rendered_people.py evaluate"
FIRST = Source("rendered_people.json", EVALUATE)
SECOND = Source(
    "rendered_people_v2.json",
    EVALUATE + " --root data/people3d-3000 --out benchmarks/results/rendered_people_v2.json",
)
STANDARD = Source(
    "rendered_people_standard.json",
    EVALUATE + " --root data/people3d-3000 --model runs/people3d-v2-mixed --synthetic data/synthetic-standard"
    " --gallery-size 100 --out benchmarks/results/rendered_people_standard.json",
)
THIRD = Source(
    "rendered_people_v3.json",
    EVALUATE + " --root data/people3d-v3 --synthetic data/synthetic-standard --gallery-size 100"
    " --out benchmarks/results/rendered_people_v3.json",
)
BLIND = Source("blind_real.json", "python benchmarks/blind_real_check.py score")
BLIND_FILM = Source("blind_real_film.json", "python benchmarks/blind_real_check.py score --footage film")
BLIND_SIGHTINGS = Source(
    "blind_real_sightings.json", "python benchmarks/blind_real_check.py score --by-sighting"
)
BLIND_FILM_SIGHTINGS = Source(
    "blind_real_film_sightings.json",
    "python benchmarks/blind_real_check.py score --footage film --by-sighting",
)

NAMES = {
    "shipped default": "drawn people only (the default until rendered people)",
    "runs/people3d-finetune": "rendered v1",
    "runs/people3d-mixed": "rendered v1 + synthetic",
    "runs/people3d-mixed-style": "rendered v1 + synthetic, style randomised",
    "runs/people3d-v2-mixed": "rendered v2 (1,000 people, bags) + synthetic: the default now",
    "runs/people3d-3000-triplet": (
        "rendered v2 (3,000 people) + synthetic, batch-hard triplet, 3 epochs (not shipped)"
    ),
    "runs/people3d-3000-share": (
        "the 3,000-person network + 1 epoch with the synthetic people 6 of 16 a batch (not shipped)"
    ),
    "runs/people3d-v3-mixed": "rendered v3 (1,000 people, skirts, coats, long hair) + synthetic",
    "runs/people3d-v3-mixed-erase": "rendered v3 + synthetic, random erasing",
    "runs/people3d-v3-mixed-plain": "rendered v3 + synthetic, trained again (the control)",
    "runs/people3d-v3-mixed-ibn": "rendered v3 + synthetic, IBN-a in layer1-3",
    "runs/gpu-imagenet-long": "from ImageNet: rendered v3 + synthetic, 5,148 steps on a GPU",
    "runs/gpu-imagenet-long-ibn": "from ImageNet, IBN-a in layer1-3: the same, 5,113 steps on a GPU",
    "runs/gpu-long-style": "the GPU plain network + 400 steps here, colour jitter 0.4, grey 30 %",
    "runs/people3d-v3p-mixed": "rendered v3 with photographs and passers-by + synthetic",
    "runs/people3d-v3c-mixed": "rendered v3 with passers-by + synthetic",
    "runs/people3d-v3-mixed-guide": "rendered v3 + synthetic, ImageNet guide (weight 3)",
    "runs/people3d-v3-mixed-guide05": "rendered v3 + synthetic, ImageNet guide (weight 0.5)",
    "runs/people3d-v3-3000-mixed": "rendered v3, 3,000 people + synthetic (3 of 8 a batch), 2 epochs",
    "runs/people3d-v3-3000-mixed-4ep": "the same, 4 epochs",
    "runs/people3d-v3-mixed-mixstyle": "rendered v3 + synthetic, MixStyle after layer1 and layer2",
    "runs/people3d-v3-mixed-mixstyle1": "rendered v3 + synthetic, MixStyle after layer1",
    "runs/people3d-v3-3000-mixed-guide05": "3,000 people, 2 epochs, ImageNet guide (weight 0.5)",
}
"""The networks' names in the docs: ``train``'s ``--out`` folders, as ``evaluate --model`` got them."""


def _name(model: str) -> str:
    return NAMES.get(model, model)


def _scores(results: dict[str, Any], default: str = NAMES["shipped default"]) -> Rows:
    """``default``: what "shipped default" was when the file was written."""
    with_synthetic = results.get("synthetic") is not None
    header = ["re-id network", "rendered test mAP / top-1"]
    if with_synthetic:
        header += ["synthetic, detections: mAP / top-1", "synthetic, GT boxes: mAP / top-1"]
    rows = [[*header, "scored at"]]
    for model, scores in results["scores"].items():
        test = scores["rendered_test"]
        cells = [
            default if model == "shipped default" else _name(model),
            f"{num(test['mAP'])} / {num(test['top1'])}",
        ]
        if with_synthetic:
            search, gt_boxes = scores["synthetic"]["search"], scores["synthetic"]["search_gt_boxes"]
            cells += [
                f"{num(100 * search['mAP'])} / {num(100 * search['topk']['1'])}",
                f"{num(100 * gt_boxes['mAP'])} / {num(100 * gt_boxes['topk']['1'])}",
            ]
        rows.append([*cells, str(scores.get("commit", results["commit"]))[:7]])
    return rows


for _name_of_table, _source in (
    ("rendered-people-v1", FIRST),
    ("rendered-people-v2", SECOND),
    ("rendered-people-standard", STANDARD),
):  # files written while "shipped default" was the drawn-only network
    table(_name_of_table, "docs/rendered-people.md", _source)(_scores)


@table("rendered-people-v3", "docs/rendered-people.md", THIRD)
def third_set(results: dict[str, Any]) -> Rows:
    return _scores(results, default=f"the default: {NAMES['runs/people3d-v2-mixed'].split(':')[0]}")


@table("rendered-people-render", "docs/rendered-people.md", FIRST, SECOND, THIRD)
def render_rate(*results: dict[str, Any]) -> Rows:
    rows = [
        [
            "set",
            "renderer version",
            "people (+ held out)",
            "images rendered in the run",
            "seconds",
            "images/s",
            "processes",
        ]
    ]
    for result in results:
        data = result["data"]
        render = data["render"]
        spec = render["spec"]
        rows.append(
            [
                f"`{data['root'].rsplit('/', 1)[-1]}`",
                str(render["generator_version"]),
                f"{spec['identities']:,} (+ {spec['test_identities']})",
                f"{render['images_rendered_now']:,}",
                num(render["seconds_now"], 0),
                num(render["images_per_s_now"]),
                str(render["workers"]),
            ]
        )
    return rows


BLIND_NAMES = {
    "imagenet": "ImageNet MobileNetV2, pooled features",
    "shipped": f"the default at the check: {NAMES['runs/people3d-v2-mixed'].split(':')[0]}",
}
"""The blind checks' fixed network names in the docs (``shipped`` is the default of the results
file's commit: rendered v2 since f3d221d; earlier rounds are in the files' git history); the
others are named by the bundle ``sheets --model NAME=BUNDLE`` gave, as ``train`` wrote it."""


def _blind_name(results: dict[str, Any], model: str) -> str:
    """A blind check's network as the docs name it: fixed names, else by the bundle it was given."""
    bundle = (results.get("networks") or {}).get(model, {}).get("bundle", "")
    return BLIND_NAMES.get(model) or NAMES.get(bundle, model)


def _blind_rows(results: dict[str, Any]) -> Rows:
    rows = [["re-id network", "queries", "top-1 precision", "top-10 precision"]]
    by_precision = sorted(results["scores"].items(), key=lambda item: -item[1]["top10_precision"])
    for model, scores in by_precision:
        rows.append(
            [
                _blind_name(results, model),
                str(scores["queries"]),
                num(scores["top1_precision"]),
                num(scores["top10_precision"]),
            ]
        )
    return rows


for _name_of_table, _source in (
    ("rendered-people-blind", BLIND),
    ("rendered-people-blind-film", BLIND_FILM),
    ("rendered-people-blind-sightings", BLIND_SIGHTINGS),
    ("rendered-people-blind-film-sightings", BLIND_FILM_SIGHTINGS),
):  # one table per footage and hit kind, all drawn alike
    table(_name_of_table, "docs/rendered-people.md", _source)(_blind_rows)


def _scored_on_v3(name: str) -> Source:
    """``rendered_people_NAME.json``: networks scored on the version 3 test people and the
    synthetic ``standard`` benchmark, as every experiment since IBN-a was."""
    return Source(
        f"rendered_people_{name}.json",
        EVALUATE + " --root data/people3d-v3 --synthetic data/synthetic-standard --gallery-size 100"
        f" --out benchmarks/results/rendered_people_{name}.json",
    )


IBN = _scored_on_v3("ibn")


table("rendered-people-ibn", "docs/rendered-people.md", IBN)(third_set)  # drawn alike


def _round_sources(round_: str) -> tuple[Source, Source, Source]:
    """A named round's results files: vtest.avi by frame, by sighting, the film by frame."""
    score = "python benchmarks/blind_real_check.py score"
    return (
        Source(f"blind_real_{round_}.json", f"{score} --round {round_}"),
        Source(f"blind_real_{round_}_sightings.json", f"{score} --round {round_} --by-sighting"),
        Source(f"blind_real_film_{round_}.json", f"{score} --footage film --round {round_}"),
    )


def _precisions(result: dict[str, Any], model: str) -> str:
    row = result["scores"][model]
    return f"{num(row['top1_precision'])} / {num(row['top10_precision'])}"


def _blind_round_rows(*results: dict[str, Any]) -> Rows:
    """One row per network: top-1 / top-10 precision per footage and hit kind, and by sighting the
    other visits it found of those any network found (``blind_real_check.other_visits``). The
    results: vtest.avi by frame (left out by a round that did not judge it), by sighting, the film."""
    *by_frame, by_sighting, film = results
    header = ["re-id network"] + ["vtest.avi by frame: top-1 / top-10"] * len(by_frame)
    header += ["vtest.avi by sighting: top-1 / top-10", "other visits in the top 10"]
    rows = [[*header, "1906 film by frame: top-1 / top-10"]]
    for model, scores in sorted(by_sighting["scores"].items(), key=lambda item: -item[1]["top10_precision"]):
        rows.append(
            [
                _blind_name(by_sighting, model),
                *(_precisions(frame, model) for frame in by_frame),
                _precisions(by_sighting, model),
                f"{scores['other_visits']} of {scores['other_visits_pooled']}",
                _precisions(film, model),
            ]
        )
    return rows


table("rendered-people-blind-ibn", "docs/rendered-people.md", *_round_sources("ibn"))(_blind_round_rows)

GPU = _scored_on_v3("gpu")
table("rendered-people-gpu", "docs/rendered-people.md", GPU)(third_set)  # drawn alike
table("rendered-people-blind-gpu", "docs/rendered-people.md", *_round_sources("gpu"))(_blind_round_rows)


_STYLE = _round_sources("style")[1:]  # round style judged vtest.avi by sighting and the film only
table("rendered-people-blind-style", "docs/rendered-people.md", *_STYLE)(_blind_round_rows)

PHOTOS = _scored_on_v3("photos")
table("rendered-people-photos", "docs/rendered-people.md", PHOTOS)(third_set)  # drawn alike
_PHOTOS_ROUND = _round_sources("photos")[1:]  # vtest.avi by sighting and the film, as round style
table("rendered-people-blind-photos", "docs/rendered-people.md", *_PHOTOS_ROUND)(_blind_round_rows)

GUIDE = _scored_on_v3("guide")
table("rendered-people-guide", "docs/rendered-people.md", GUIDE)(third_set)  # drawn alike
table("rendered-people-guide-weak", "docs/rendered-people.md", _scored_on_v3("guide_weak"))(third_set)
MORE_PEOPLE = Source(
    "rendered_people_3000.json",
    EVALUATE + " --root data/people3d-v3-3000 --synthetic data/synthetic-standard --gallery-size 100"
    " --model runs/people3d-v3-mixed-plain --model runs/people3d-v3-3000-mixed"
    " --model runs/people3d-v3-3000-mixed-4ep --out benchmarks/results/rendered_people_3000.json",
)
table("rendered-people-3000", "docs/rendered-people.md", MORE_PEOPLE)(third_set)  # its own test people
MIX_STYLE = Source(
    "rendered_people_mixstyle.json",
    EVALUATE + " --root data/people3d-v3 --synthetic data/synthetic-standard --gallery-size 100"
    " --model runs/people3d-v3-mixed-plain --model runs/people3d-v3-mixed-mixstyle"
    " --model runs/people3d-v3-mixed-mixstyle1 --out benchmarks/results/rendered_people_mixstyle.json",
)
table("rendered-people-mixstyle", "docs/rendered-people.md", MIX_STYLE)(third_set)
_GUIDE_ROUND = _round_sources("guide")[1:]  # vtest.avi by sighting and the film, as round photos
table("rendered-people-blind-guide", "docs/rendered-people.md", *_GUIDE_ROUND)(_blind_round_rows)


@table(
    "rendered-people-ibn-cost",
    "docs/rendered-people.md",
    Source("reid_cost_ibn-5a282d6e6508.json", "python benchmarks/reid_cost.py --input 256x128"),
)
def ibn_cost(results: dict[str, Any]) -> Rows:
    rows = [
        ["re-id network (256x128 crops, batches of 32)", "ONNX Runtime fp32, ms per crop", "PyTorch fp32"]
    ]
    names = {"clsa": "the default's (clsa)", "clsa+ibn": "the same with IBN-a in layer1-3"}
    for variant, figures in results["variants"].items():
        rows.append(
            [
                names.get(variant, variant),
                num(figures["ms_per_crop_ort-fp32"], 2),
                num(figures["ms_per_crop_torch-fp32"], 2),
            ]
        )
    return rows


@table(
    "rendered-people-speed",
    "docs/rendered-people.md",
    Source("rendered_people_speed-5a282d6e6508.json", "python benchmarks/rendered_people.py speed"),
)
def render_speed(results: dict[str, Any]) -> Rows:
    rows = [["renderer version", "processes", "images", "seconds", "images/s"]]
    for label, run in results["runs"].items():
        rows.append(
            [
                str(results["generator_version"]),
                label.split()[0],
                f"{run['images']:,}",
                num(run["wall_s"]),
                num(run["images_per_s"]),
            ]
        )
    return rows


@table(
    "rendered-people-speed-photos",
    "docs/rendered-people.md",
    Source("rendered_people_speed-9adbcc2d45e9.json", "python benchmarks/rendered_people.py speed"),
    Source(
        "rendered_people_speed-9adbcc2d45e9-photos.json",
        "python benchmarks/rendered_people.py speed --photos data/photos --crowd 0.2",
    ),
)
def render_speed_photos(*results: dict[str, Any]) -> Rows:
    """The rate without and with photographs and passers-by, on one CPU."""
    rows = [["photographs, passers-by", "processes", "images", "seconds", "images/s"]]
    for result in results:
        spec = result["spec"]
        options = f"yes, {num(100 * spec['crowd'], 0)} %" if spec.get("photos") else "no"
        rows.extend([options, *row[1:]] for row in render_speed(result)[1:])
    return rows


SCENES = Source("rendered_scenes.json", "python benchmarks/rendered_scenes.py score")
SCENE_ROWS = {
    "shipped": "the shipped detector",
    "ssdlite_detector": "SSDLite (trained on real photographs)",
    "finetuned": "the shipped detector tuned on drawn + rendered scenes",
}
PEOPLE = {"drawn": "drawn", "3d": "rendered 3D"}


def scene_rows(*results: dict[str, Any]) -> Rows:
    """Each benchmark (drawn or rendered people) with each detector, the shipped re-id network
    behind all of them."""
    rows = [
        [
            "people",
            "detector",
            "detection recall / AP",
            "search mAP / top-1",
            "ground-truth boxes: mAP / top-1",
        ]
    ]
    for people, label in PEOPLE.items():
        for result in results:
            for row, run in result["runs"].get(people, {}).items():
                rows.append(
                    [
                        label,
                        SCENE_ROWS[row],
                        f"{pct(run['detection']['recall'])} / {pct(run['detection']['ap'])}",
                        f"{pct(run['search']['mAP'])} / {pct(run['search']['topk']['1'])}",
                        f"{pct(run['search_gt_boxes']['mAP'])} / {pct(run['search_gt_boxes']['topk']['1'])}",
                    ]
                )
    return rows


table(
    "rendered-scenes",
    "docs/rendered-people.md",
    SCENES,
    Source(
        "rendered_scenes_finetuned.json",
        "python benchmarks/rendered_scenes.py score --rows finetuned "
        "--out benchmarks/results/rendered_scenes_finetuned.json",
    ),
)(scene_rows)


def _detector_check(footage: str) -> Source:
    name = f"detector_rendered_scenes_{footage}.json"
    return Source(
        name,
        "python benchmarks/detector_adaptation.py --video VIDEO --adapted runs/detector-rendered-scenes "
        f"--name 'rendered scenes' --from-s 0 --out benchmarks/results/{name}",
    )


@table(
    "rendered-scenes-real",
    "docs/rendered-people.md",
    _detector_check("vtest"),
    _detector_check("film"),
)
def rendered_scenes_real(*results: dict[str, Any]) -> Rows:
    """Each detector against the people SSDLite and HOG agree on and tracking confirms, on footage
    none of them learned from."""
    rows = [["footage", "frames", "detector", "people found (of pseudo truth)", "recall", "extra boxes"]]
    for result, footage in zip(results, ("vtest.avi", "the 1906 street film"), strict=True):
        for name, totals in result["detectors"].items():
            label = "the shipped detector" if name.startswith("synthetic-only") else name
            if name == result.get("adapted_name"):
                label = "the shipped detector tuned on drawn + rendered scenes"
            rows.append(
                [
                    footage,
                    str(result["held_out"]["frames"]),
                    label,
                    f"{totals['found']} of {totals['truth']}",
                    pct(totals["found"] / max(totals["truth"], 1)),
                    str(totals["extra"]),
                ]
            )
    return rows


@table(
    "rendered-scenes-networks",
    "docs/rendered-people.md",
    Source(
        "rendered_people_scenes.json",
        "python benchmarks/rendered_people.py evaluate --root data/people3d-v3 --synthetic "
        "data/synthetic3d-standard --gallery-size 100 --model ... --out "
        "benchmarks/results/rendered_people_scenes.json",
    ),
    Source("vtest_people.json", "python benchmarks/vtest_people.py score --model ..."),
)
def scene_networks(scenes: dict[str, Any], vtest: dict[str, Any]) -> Rows:
    """Re-id networks on rendered crops, on the benchmark of rendered people in scenes, and on
    vtest.avi's people labelled by hand: does ranking by the rendered scenes follow the real
    camera's?"""
    rows = _scores(scenes, default=f"the default: {NAMES['runs/people3d-v2-mixed'].split(':')[0]}")
    rows[0] = [
        "re-id network",
        "rendered crops mAP / top-1",
        "rendered scenes, detections: mAP / top-1",
        "rendered scenes, GT boxes: mAP / top-1",
        "vtest.avi labelled people mAP",
        "scored at",
    ]
    short = {path: name for name, path in vtest["networks"].items()}
    for row, model in zip(rows[1:], scenes["scores"], strict=True):
        name = "shipped" if model == "shipped default" else short.get(model)
        real = vtest["scores"].get(name, {}).get("all") if name else None
        row.insert(4, num(real["mAP"]) if real else "-")
    return rows
