"""k-reciprocal re-ranking (``search --rerank``, ``index/reranking.py``) where a person is one box
in a photo or two: the synthetic benchmark's search protocol, plain and re-ranked, with the shipped
detector's boxes (those ``rendered_people.py evaluate`` scores behind, kept once) and with the
ground-truth boxes; and what re-ranking costs one search of an index.

    python benchmarks/reranking.py --synthetic data/synthetic-standard --index demo-output/index

Footage, where a person is many boxes: ``benchmarks/vtest_people.py score --rerank``. Both into
docs/real-footage.md. The shipped network runs on ``torch-fp32`` (the reference engine), so the
figures do not depend on the engine this CPU picks.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rendered_people import shipped_detections
from run_info import RESULTS, ROOT, commit, machine, write_results

from personsearch.data import load_dataset
from personsearch.evaluation.pipeline import ground_truth_detections, query_features, run_gallery
from personsearch.evaluation.search import evaluate_search
from personsearch.index.person_index import PersonIndex
from personsearch.index.reranking import SHORTLIST
from personsearch.models.bundle import ModelBundle

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
        "search": {"index": str(args.index), **search_latency(args.index, args.queries, args.top_k)},
    }
    print(f"wrote {write_results(args.out, results)}")


if __name__ == "__main__":
    main()
