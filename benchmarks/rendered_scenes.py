"""The shipped model, and an off-the-shelf detector trained on real people, on the synthetic
benchmark with drawn people and with rendered 3D people in the same places (#34).

    python benchmarks/rendered_scenes.py score
    python benchmarks/rendered_scenes.py finetune                 # the shipped detector on both (resumable)
    python benchmarks/rendered_scenes.py score --rows finetuned \
        --out benchmarks/results/rendered_scenes_finetuned.json

Both benchmarks are the ``standard`` preset, seed 0: one plan (who appears where, at what height,
behind what), with drawn figures (``data/synthetic-standard``, the scenes the shipped detector
trained on, and its re-id network on their crops and on rendered crops) or rendered people
(``data/synthetic3d-standard``, ``make-synthetic --people 3d``, written here when missing; needs
the ``people3d`` extra). Each is scored by the CUHK-SYSU protocol (gallery 100) with

* ``shipped``: the default bundle as it ships (its detector and re-id network);
* ``ssdlite_detector``: the shipped re-id network behind SSDLite MobileNetV2, a pedestrian detector
  trained on real photographs (``personsearch fetch-weights ssdlite_mobilenet_v2.pedestrian``);
* ``finetuned``: the shipped re-id network behind the shipped detector fine-tuned (``finetune``,
  into ``runs/detector-rendered-scenes``) on ``--scenes`` training scenes of each benchmark (400:
  800 scenes, 400 steps of 2), drawn and rendered, from its own weights, with ``adapt-detector``'s
  optimiser (``AdaptDetectorConfig``), ``--epochs`` passes. Whether it finds real people better:
  ``detector_adaptation.py --adapted runs/detector-rendered-scenes --name "rendered scenes"`` on
  footage it never saw.

How the shipped detector fares on rendered people says how far scenes of them are from the
drawn ones it learned; how the real-trained detector fares on each says which people look more
like real ones to a network that has seen only real people. Both on ``ort-fp32``, the reference
engine, so the figures do not depend on this CPU's engine choice. ``--sheet FILE`` also draws six
of each benchmark's gallery images, with their boxes, side by side.

Writes ``benchmarks/results/rendered_scenes.json`` (``runs.<people>.<row>``: detection recall
and AP, search mAP / top-1 with detections and with ground-truth boxes, seconds).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from run_info import RESULTS, ROOT, commit, machine, write_results

if TYPE_CHECKING:
    from personsearch.data import PersonSearchDataset

DATA = {"drawn": ROOT / "data" / "synthetic-standard", "3d": ROOT / "data" / "synthetic3d-standard"}
FINETUNED = ROOT / "runs" / "detector-rendered-scenes"
ROWS = {"shipped": "bundle", "ssdlite_detector": "ssdlite", "finetuned": "bundle"}
"""Row name: the detector ``ModelBundle`` is given (the shipped re-id network in each)."""
ENGINE = "ort-fp32"
GALLERY = 100


def ensure_data(people: str, workers: int) -> Path:
    """The ``standard`` seed-0 benchmark with these people, written when missing or incomplete."""
    from personsearch.data.synthetic import make_synthetic

    root = DATA[people]
    info = root / "synthetic.json"
    if info.is_file() and json.loads(info.read_text()).get("complete"):
        return root
    make_synthetic(root, preset="standard", seed=0, people=people, workers=workers, overwrite=True)
    return root


def finetune(epochs: int, per_benchmark: int) -> Path:
    """The shipped detector fine-tuned on ``per_benchmark`` training scenes of each benchmark
    (drawn and rendered, drawn at random with the recipe's seed; 0: all) into ``FINETUNED``, a
    bundle with the shipped re-id network, by adapt-detector's recipe (``finetune_detector``);
    resumes from its checkpoints."""
    import dataclasses

    import numpy as np

    from personsearch.data import load_dataset
    from personsearch.models.bundle import SHIPPED_MODEL
    from personsearch.training.adapt_detector import AdaptDetectorConfig, finetune_detector

    recipe = dataclasses.replace(AdaptDetectorConfig(), epochs=epochs)
    rng = np.random.default_rng(recipe.seed)
    scenes = []
    for root in DATA.values():
        train = load_dataset(root).train
        take = len(train) if per_benchmark <= 0 else min(per_benchmark, len(train))
        scenes += [train[i] for i in sorted(rng.choice(len(train), size=take, replace=False))]
    finetune_detector(SHIPPED_MODEL, scenes, FINETUNED, recipe, dataset=DATA["3d"])
    return FINETUNED


def score(dataset: PersonSearchDataset, row: str) -> dict[str, Any]:
    from personsearch.evaluation.pipeline import evaluate_engine
    from personsearch.models.bundle import SHIPPED_MODEL, ModelBundle

    started = time.perf_counter()
    where = FINETUNED if row == "finetuned" else SHIPPED_MODEL
    bundle = ModelBundle(where, engine=ENGINE, detector=ROWS[row])
    result = evaluate_engine(bundle, dataset, gallery_size=GALLERY, progress=False)
    print(result.format_table(), flush=True)
    full = result.to_dict()
    return {
        "detection": {k: full["detection"][k] for k in ("recall", "ap", "count_gt", "recall_by_height")},
        "search": {k: full["search"][k] for k in ("mAP", "topk", "n_queries", "by_query_height")},
        "search_gt_boxes": {k: full["search_gt_boxes"][k] for k in ("mAP", "topk", "by_query_height")},
        "seconds": round(time.perf_counter() - started, 1),
    }


def draw_sheet(roots: dict[str, Path], out: Path, count: int = 3) -> None:
    """``count`` gallery images of each benchmark in a row (the same scenes: one plan), boxes
    drawn, at half size, drawn people above rendered ones."""
    from PIL import Image, ImageDraw

    from personsearch.data import load_dataset

    datasets = {people: load_dataset(root) for people, root in roots.items()}
    first = next(iter(datasets.values()))
    picks = sorted(first.gallery, key=lambda s: -len(s.boxes))[:count]
    tiles = []
    for dataset in datasets.values():
        scenes = {s.name: s for s in dataset.gallery}
        row = []
        for pick in picks:
            scene = scenes[pick.name]
            image = Image.open(scene.path).convert("RGB")
            draw = ImageDraw.Draw(image)
            for box in scene.boxes:
                draw.rectangle([float(v) for v in box], outline=(255, 40, 40), width=2)
            row.append(image.resize((image.width // 2, image.height // 2)))
        tiles.append(row)
    width, height = tiles[0][0].size
    sheet = Image.new("RGB", (width * count, height * len(tiles)))
    for r, row in enumerate(tiles):
        for c, tile in enumerate(row):
            sheet.paste(tile, (c * width, r * height))
    sheet.save(out, quality=88)


def _training(bundle: Path) -> dict[str, Any]:
    """What the fine-tuned detector's training recorded (its config and summary)."""
    meta = json.loads((bundle / "detector.json").read_text())
    return {"bundle": str(bundle.relative_to(ROOT)), **meta.get("metadata", {})}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=("score", "finetune"))
    parser.add_argument("--workers", type=int, default=2, help="processes writing a missing benchmark")
    parser.add_argument("--epochs", type=int, default=1, help="finetune: passes over its scenes")
    parser.add_argument(
        "--scenes", type=int, default=400, help="finetune: training scenes from each benchmark (0: all)"
    )
    parser.add_argument(
        "--rows", default="shipped,ssdlite_detector", help=f"score: comma-separated, of {sorted(ROWS)}"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "rendered_scenes.json")
    parser.add_argument("--sheet", type=Path, help="also draw six gallery images of each benchmark here")
    args = parser.parse_args(argv)

    from personsearch.data import load_dataset

    roots = {people: ensure_data(people, args.workers) for people in DATA}
    if args.stage == "finetune":
        print(f"wrote {finetune(args.epochs, args.scenes)}")
        return
    if args.sheet:
        draw_sheet(roots, args.sheet)
    rows = args.rows.split(",")
    if unknown := sorted(set(rows) - set(ROWS)):
        parser.error(f"unknown rows {unknown}; choose from {sorted(ROWS)}")
    runs: dict[str, dict[str, Any]] = {}
    for people, root in roots.items():
        runs[people] = {}
        dataset = load_dataset(root)  # once for every row
        for row in rows:
            print(f"== {people} people, {row}", flush=True)
            runs[people][row] = score(dataset, row)
    data: dict[str, dict[str, Any]] = {}
    for people, root in roots.items():
        info = json.loads((root / "synthetic.json").read_text())
        info.pop("config", None)
        data[people] = {"root": str(root.relative_to(ROOT)), **info}
    results = {
        "benchmark": "rendered_scenes",
        "command": "python benchmarks/rendered_scenes.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "commit": commit(),
        "machine": machine(),
        "data": data,
        "engine": ENGINE,
        "finetuned": _training(FINETUNED) if "finetuned" in rows else None,
        "gallery_size": GALLERY,
        "runs": runs,
    }
    write_results(args.out, results)
    for people, rows in runs.items():
        for row, r in rows.items():
            print(
                f"{people:5s} {row:16s} recall {r['detection']['recall']:.3f} AP {r['detection']['ap']:.3f} "
                f"search mAP {r['search']['mAP']:.3f} top-1 {r['search']['topk']['1']:.3f} "
                f"GT mAP {r['search_gt_boxes']['mAP']:.3f} top-1 {r['search_gt_boxes']['topk']['1']:.3f}"
            )


if __name__ == "__main__":
    main()
