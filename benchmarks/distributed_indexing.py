"""Indexing throughput on Ray (local mode) against a single-process run, and what the driver costs.

    python benchmarks/distributed_indexing.py                        # 64 scenes of the demo's data
    python benchmarks/distributed_indexing.py --images 32 --workers 1,2

Each run indexes the same ``--images`` gallery scenes of a synthetic benchmark (``--data``) into a
fresh index with the shipped model: first in one process (the reference: PyTorch/ONNX Runtime use
every core), then with Ray Data actor pools of each ``--workers`` size (one CPU and one model copy
per actor, engines chosen per actor as on a cluster node). Reported: scene images per second,
the ratio to the single process, the driver's commit time (writing vectors, fsync, one SQLite
transaction per unit: the serial part), Ray's start-up, and whether the index equals the
single-process one. Writes ``benchmarks/results/distributed_indexing.json``; prints a table last.
"""

from __future__ import annotations

import argparse
import functools
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from run_info import ROOT, commit, machine, write_results

RESULTS = ROOT / "benchmarks" / "results" / "distributed_indexing.json"


def content(directory: Path) -> list[tuple]:
    """Every box of an index (source path, corners, feature), in a canonical order, read through
    the store's typed reads (nothing outside ``store.py`` touches the database)."""
    from personsearch.index.store import IndexStore

    store = IndexStore.open(directory)
    try:
        rows = store.committed_rows()
        vectors = np.array(store.vectors(rows))
        boxes = [store.get_box(box_id) for box_id, _, _ in store.box_rows(0, rows)]
    finally:
        store.close()
    return sorted((b.source, *b.box, vectors[b.box_id]) for b in boxes)


def same_index(a: list[tuple], b: list[tuple]) -> dict[str, Any]:
    if len(a) != len(b) or any(x[0] != y[0] for x, y in zip(a, b)):
        return {"same_boxes": False, "boxes": [len(a), len(b)]}
    box = max(max(abs(x[i] - y[i]) for i in range(1, 5)) for x, y in zip(a, b))
    cosine = min(float(np.dot(x[5], y[5])) for x, y in zip(a, b))
    return {"same_boxes": box < 0.01, "max_box_diff_px": box, "min_feature_cosine": cosine, "boxes": len(a)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "synthetic-small-seed7")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    import ray

    from personsearch.data import load_dataset
    from personsearch.index import PersonIndex
    from personsearch.index.distributed import RaySettings, load_engine
    from personsearch.interfaces.api import SHIPPED_MODEL
    from personsearch.models.bundle import ModelBundle

    scenes = [s.path for s in load_dataset(args.data).gallery[: args.images]]
    bundle = ModelBundle(SHIPPED_MODEL)
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        with PersonIndex.open(Path(tmp) / "single", bundle, create=True) as index:
            index.add_paths(scenes[:4], progress=False)  # warm-up: first-call costs off the clock
        with PersonIndex.open(Path(tmp) / "single", bundle) as index:
            summary = index.add_paths(scenes, progress=False, batch_size=args.batch_size)
        reference = content(Path(tmp) / "single")
        runs.append(
            {
                "mode": "single process",
                "workers": 0,
                **summary.to_json(),
                "images_per_s": (summary.frames_processed) / summary.seconds,
            }
        )
        print(runs[-1], flush=True)
        started = time.perf_counter()
        ray.init(include_dashboard=False, log_to_driver=False)
        ray_start = time.perf_counter() - started
        factory = functools.partial(load_engine, str(SHIPPED_MODEL))
        for workers in (int(w) for w in args.workers.split(",")):
            directory = Path(tmp) / f"ray-{workers}"
            with PersonIndex.open(directory, bundle, create=True) as index:
                summary = index.add_paths(
                    scenes,
                    progress=False,
                    batch_size=args.batch_size,
                    ray=RaySettings(workers=workers),
                    engine_factory=factory,
                )
            runs.append(
                {
                    "mode": f"Ray, {workers} actor{'s' if workers > 1 else ''}",
                    "workers": workers,
                    **summary.to_json(),
                    "images_per_s": summary.frames_processed / summary.seconds,
                    "equal_to_single_process": same_index(reference, content(directory)),
                }
            )
            print(runs[-1], flush=True)
        ray.shutdown()
    for run in runs:
        run.pop("skipped", None)
        run["ratio_to_single_process"] = run["images_per_s"] / runs[0]["images_per_s"]
        run["commit_share"] = run["commit_seconds"] / run["seconds"]
        run["commit_ms_per_image"] = 1000 * run["commit_seconds"] / max(1, run["frames_processed"])
    result: dict[str, Any] = {
        "benchmark": "distributed_indexing",
        "commit": commit(),
        "machine": machine(),
        "images": len(scenes),
        "data": str(args.data),
        "ray_version": ray.__version__,
        "ray_start_s": ray_start,
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_results(args.out, result, default=float)
    lines = [
        f"indexing {len(scenes)} scenes with the shipped model ({result['machine']['cpu']}, "
        f"{result['machine']['cores']} cores); Ray start-up {ray_start:.1f} s (not counted)",
        "| run | images/s | vs single process | seconds | driver commit s (share) | "
        "commit ms/image | index equal |",
        "|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        equal = run.get("equal_to_single_process")
        eq = (
            "reference"
            if equal is None
            else ("yes" if equal["same_boxes"] else "NO")
            + (f" (cos >= {equal['min_feature_cosine']:.5f})" if equal.get("same_boxes") else "")
        )
        lines.append(
            f"| {run['mode']} | {run['images_per_s']:.2f} | {run['ratio_to_single_process']:.2f}x | "
            f"{run['seconds']:.1f} | {run['commit_seconds']:.2f} ({100 * run['commit_share']:.1f} %) | "
            f"{run['commit_ms_per_image']:.1f} | {eq} |"
        )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
