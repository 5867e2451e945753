"""k-reciprocal re-ranking (``search --rerank``, ``index/reranking.py``) with ground truth: where a
person is one box in a photo or two, the synthetic benchmark's search protocol, plain and
re-ranked, with the shipped detector's boxes (those ``rendered_people.py evaluate`` scores behind,
kept once) and with the ground-truth boxes; where a person is many boxes, synthetic walking videos
(``footage_scores``) and a re-id crop folder (``crop_scores``: held-out rendered people, several
images per person and camera, as in Market-1501); and what re-ranking costs one search of an
index.

    python benchmarks/reranking.py --synthetic data/synthetic-standard --crops data/people3d-v3 \
        --index demo-output/index

Real footage: ``benchmarks/vtest_people.py score --rerank``. Both into
docs/real-footage.md. The shipped network runs on ``torch-fp32`` (the reference engine), so the
figures do not depend on the engine this CPU picks.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from adaptation import score
from rendered_people import shipped_detections
from run_info import RESULTS, ROOT, commit, machine, write_results

from personsearch.data import load_dataset
from personsearch.data.synthetic.walks import appearance_crops, make_walks
from personsearch.evaluation.pipeline import ground_truth_detections, query_features, run_gallery
from personsearch.evaluation.reid_crops import evaluate_crop_folder
from personsearch.evaluation.search import evaluate_search
from personsearch.index.person_index import PersonIndex
from personsearch.index.reranking import SHORTLIST
from personsearch.models.bundle import ModelBundle, load_component, read_component

SHIPPED = ROOT / "personsearch" / "assets" / "default"


def protocol_scores(dataset_root: Path, gallery_size: int) -> dict[str, Any]:
    """mAP and top-k (in %) of the synthetic search protocol, with the shipped detector's boxes and
    with ground truth, plain and re-ranked, and the seconds the scoring took."""
    data = load_dataset(dataset_root)
    bundle = ModelBundle(SHIPPED, engine="torch-fp32")
    shared = shipped_detections(dataset_root, data.gallery)
    dets, feats, gt_feats = run_gallery(bundle, data.gallery, detections=shared, progress=False)
    queries = query_features(bundle, data.queries)
    boxes = {"detections": (dets, feats), "ground truth": (ground_truth_detections(data.gallery), gt_feats)}
    out: dict[str, Any] = {}
    for name, (gallery_dets, gallery_feats) in boxes.items():
        for rerank in (False, True):
            began = time.perf_counter()
            result = evaluate_search(
                data, gallery_dets, gallery_feats, queries, gallery_size=gallery_size, rerank=rerank
            )
            row = f"{name}, re-ranked" if rerank else name
            out[row] = {
                "mAP": 100 * result.mAP,
                **{f"top{k}": 100 * v for k, v in result.topk.items()},
                "queries": result.n_queries,
                "seconds": round(time.perf_counter() - began, 1),
            }
            print(row, {k: round(v, 1) for k, v in out[row].items()}, flush=True)
    return out


def footage_scores(work: Path, seed: int) -> dict[str, Any]:
    """Cross-camera retrieval on synthetic walking videos with ground truth (``adaptation.py``'s
    later-footage setting: 3 cameras, 24 people in look-alike families of 2-3, every appearance a
    query against the other cameras'), the shipped network, plain and re-ranked: a frame against
    every frame (a person is many boxes, as in an index of footage) and an appearance's mean
    feature against the others' (one per person and camera, as photos are)."""
    reid_config, _ = read_component(SHIPPED, "reid")
    model, _, _ = load_component(SHIPPED, "reid")
    shutil.rmtree(work, ignore_errors=True)
    walks = make_walks(
        work, seed=seed, frames=120, cameras=3, people=24, fps=10.0, max_person=120, look_alikes=(2, 3)
    )
    crops, owners, keys = appearance_crops(walks, tuple(reid_config.input_size))
    out: dict[str, Any] = {"seed": seed, "appearances": len(keys), "frames": len(owners)}
    for name, rerank in (("cosine", False), ("re-ranked", True)):
        began = time.perf_counter()
        out[name] = score(model, crops, owners, keys, every_camera=True, rerank=rerank)
        out[name]["seconds"] = round(time.perf_counter() - began, 1)
        print(name, {k: round(v, 3) for k, v in out[name].items()}, flush=True)
    return out


def crop_scores(root: Path) -> dict[str, Any]:
    """``personsearch evaluate-reid``'s scores of the shipped network on the re-id crop folder at
    ``root`` (Market-1501's protocol), plain and re-ranked."""
    bundle = ModelBundle(SHIPPED, engine="torch-fp32")
    height, width = bundle.reid_config.input_size
    out: dict[str, Any] = {"root": str(root)}
    for name, rerank in (("cosine", False), ("re-ranked", True)):
        out[name] = evaluate_crop_folder(bundle.embed_crops, root, (height, width), rerank=rerank)
        print(name, {k: round(v, 1) for k, v in out[name].items()}, flush=True)
    return out


def search_latency(index_dir: Path, queries: int, top_k: int) -> dict[str, Any]:
    """Median and 90th-percentile milliseconds of one search of ``index_dir``, plain and re-ranked,
    the queries being the features of evenly spread indexed boxes (each search's own box left in)."""
    with PersonIndex.open(index_dir, read_only=True) as index:
        rows = index.count()
        picks = np.linspace(0, rows - 1, min(queries, rows)).astype(int)
        features = [index.feature(int(b)) for b in picks]
        index.search(features[0], top_k)  # the flat copy is built on first use
        out: dict[str, Any] = {"boxes": rows, "queries": len(features), "top_k": top_k}
        for name, rerank in (("plain", False), ("re-ranked", True)):
            taken = []
            for feature in features:
                began = time.perf_counter()
                index.search(feature, top_k, rerank=rerank)
                taken.append(1000 * (time.perf_counter() - began))
            out[name] = {
                "median_ms": round(statistics.median(taken), 2),
                "p90_ms": round(float(np.percentile(taken, 90)), 2),
            }
            print(name, out[name], flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--synthetic", type=Path, default=ROOT / "data" / "synthetic-standard")
    parser.add_argument("--gallery-size", type=int, default=100)
    parser.add_argument("--walks-seed", type=int, default=11, help="synthetic walking videos scored")
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "reranking")
    parser.add_argument(
        "--crops", type=Path, default=ROOT / "data" / "people3d-v3", help="re-id crop folder, Market layout"
    )
    parser.add_argument("--index", type=Path, default=ROOT / "demo-output" / "index")
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--out", type=Path, default=RESULTS / "reranking_synthetic.json")
    args = parser.parse_args()
    results = {
        "benchmark": "reranking",
        "commit": commit(),
        "command": "python benchmarks/reranking.py " + shlex.join(sys.argv[1:]),
        "machine": machine(),
        "protocol": __doc__,
        "shortlist": SHORTLIST,
        "synthetic": {
            "root": str(args.synthetic),
            "gallery_size": args.gallery_size,
            "scores": protocol_scores(args.synthetic, args.gallery_size),
        },
        "footage": footage_scores(args.work, args.walks_seed),
        "crops": crop_scores(args.crops),
        "search": {"index": str(args.index), **search_latency(args.index, args.queries, args.top_k)},
    }
    print(f"wrote {write_results(args.out, results)}")


if __name__ == "__main__":
    main()
