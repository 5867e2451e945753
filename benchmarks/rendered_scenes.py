"""The shipped model, and an off-the-shelf detector trained on real people, on the synthetic
benchmark with drawn people and with rendered 3D people in the same places (#34).

    python benchmarks/rendered_scenes.py

Both benchmarks are the ``standard`` preset, seed 0: one plan (who appears where, at what height,
behind what), with drawn figures (``data/synthetic-standard``, what the shipped networks trained
on) or rendered people (``data/synthetic3d-standard``, ``make-synthetic --people 3d``, written here
when missing; needs the ``people3d`` extra). Each is scored by the CUHK-SYSU protocol (gallery
100) with

* ``shipped``: the default bundle as it ships (its detector and re-id network);
* ``ssdlite_detector``: the shipped re-id network behind SSDLite MobileNetV2, a pedestrian detector
  trained on real photographs (``personsearch fetch-weights ssdlite_mobilenet_v2.pedestrian``).

How the drawn-trained networks fare on rendered people is how far the rendered scenes are from
what they learned; how the real-trained detector fares on each says which people look more like
real ones to a network that has seen only real people. Both on ``ort-fp32``, the reference
engine, so the figures do not depend on this CPU's engine choice.

Writes ``benchmarks/results/rendered_scenes.json`` (``runs.<people>.<row>``: detection recall
and AP, search mAP / top-1 with detections and with ground-truth boxes, seconds).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from run_info import RESULTS, ROOT, commit, machine, write_results

DATA = {"drawn": ROOT / "data" / "synthetic-standard", "3d": ROOT / "data" / "synthetic3d-standard"}
ROWS = {"shipped": "bundle", "ssdlite_detector": "ssdlite"}
"""Row name: the detector ``ModelBundle`` is given (the shipped re-id network in both)."""
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


def score(root: Path, detector: str) -> dict[str, Any]:
    from personsearch.data import load_dataset
    from personsearch.evaluation.pipeline import evaluate_engine
    from personsearch.models.bundle import SHIPPED_MODEL, ModelBundle

    started = time.perf_counter()
    bundle = ModelBundle(SHIPPED_MODEL, engine=ENGINE, detector=detector)
    result = evaluate_engine(bundle, load_dataset(root), gallery_size=GALLERY, progress=False)
    print(result.format_table(), flush=True)
    full = result.to_dict()
    return {
        "detection": {k: full["detection"][k] for k in ("recall", "ap", "count_gt", "recall_by_height")},
        "search": {k: full["search"][k] for k in ("mAP", "topk", "n_queries", "by_query_height")},
        "search_gt_boxes": {k: full["search_gt_boxes"][k] for k in ("mAP", "topk", "by_query_height")},
        "seconds": round(time.perf_counter() - started, 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="processes writing a missing benchmark")
    parser.add_argument("--out", type=Path, default=RESULTS / "rendered_scenes.json")
    args = parser.parse_args(argv)

    roots = {people: ensure_data(people, args.workers) for people in DATA}
    runs: dict[str, dict[str, Any]] = {}
    for people, root in roots.items():
        runs[people] = {}
        for row, detector in ROWS.items():
            print(f"== {people} people, {row}", flush=True)
            runs[people][row] = score(root, detector)
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
