"""Search latency of the index's vector search at 10k / 100k / 1M boxes, against brute-force numpy
over the same vectors, with recall@k of the approximate modes measured on real re-id features.

    python benchmarks/search_latency.py                       # 10k, 100k, 1M
    python benchmarks/search_latency.py --sizes 10000,100000  # fewer

Vectors. ``real``: a trained re-id model (``--bundle``, the demo's) run over every ground-truth
person crop of a synthetic benchmark (``--data``), each crop taken ``--augment`` times (random box
jitter, half of them at 1/4-1/2 resolution, half mirrored); features are cached in ``--work``.
Queries are ``--queries`` of these real features; every feature of a query's crop is kept out of
the database, so a query's neighbours are other views of its identity and other people. The
database holds the remaining real features (all of them at 10k: real only) and, past their
count, ``filler``: samples of a Gaussian with the real features' mean and covariance,
L2-normalised (a model pass over 1M crops would take hours on this CPU). The filler has the
real features' second-order statistics but no identity clusters.

Methods, each timed one query at a time (the way ``PersonIndex.search`` calls it): brute-force
numpy (the exact reference), ``VectorSearch`` exact (faiss ``IndexFlatIP``), and ``VectorSearch``
approximate (IVF) at several ``nprobe``, all through ``personsearch.index.ann``. Writes
``benchmarks/results/search_latency.json`` and prints a table last.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from run_info import ROOT, commit, machine

RESULTS = ROOT / "benchmarks" / "results" / "search_latency.json"
K = 10


class ArrayStore:
    """What ``VectorSearch`` reads of an ``IndexStore``, over an in-memory array (no SQLite, no
    thumbnails): the vector search is measured alone."""

    def __init__(self, vectors: np.ndarray, directory: Path) -> None:
        self._vectors = vectors
        self.feature_dim = vectors.shape[1]
        self.directory = directory
        self._meta: dict[str, str] = {}

    def vectors(self, rows: int | None = None) -> np.ndarray:
        return self._vectors[: len(self._vectors) if rows is None else rows]

    def meta(self, key: str) -> str | None:
        return self._meta.get(key)

    def set_meta(self, key: str, value: str) -> None:
        self._meta[key] = value


# ------------------------------------------------------------------------------------ vectors


def augmented_boxes(boxes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each box scaled by 0.9-1.1 and shifted by up to 5% of its size (same count, xyxy)."""
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    scale = rng.uniform(0.9, 1.1, len(boxes))
    cx, cy = cx + rng.uniform(-0.05, 0.05, len(boxes)) * w, cy + rng.uniform(-0.05, 0.05, len(boxes)) * h
    w, h = w * scale, h * scale
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1).astype(np.float32)


def real_features(bundle_dir: Path, data: Path, augment: int, work: Path, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Features of every ground-truth crop (``augment`` views each) and the crop each came from;
    cached in ``work`` per bundle, data and view count."""
    cache = work / f"real-features-{bundle_dir.name}-{data.name}-x{augment}.npz"
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as saved:
            return saved["features"], saved["crop"]
    import torch
    from torch.nn import functional as F

    from personsearch.data import load_dataset
    from personsearch.data.crops import crop_boxes
    from personsearch.data.images import read_image
    from personsearch.models.bundle import ModelBundle

    bundle = ModelBundle(bundle_dir, batch_size=64)
    size = tuple(bundle.reid_config.input_size)
    dataset = load_dataset(data)
    rng = np.random.default_rng(seed)
    features, crop_ids, next_crop = [], [], 0
    started = time.perf_counter()
    for scene in dataset.train + dataset.gallery:
        if len(scene.boxes) == 0:
            continue
        image = read_image(scene.path)
        views = []
        for view in range(augment):
            crops = crop_boxes(image, augmented_boxes(scene.boxes, rng) if view else scene.boxes, size)
            if view % 2 == 1:  # low resolution, as far-away people look
                factor = rng.uniform(0.25, 0.5)
                small = F.interpolate(crops.float(), scale_factor=factor, mode="bilinear", antialias=True)
                crops = F.interpolate(small, size=size, mode="bilinear").round().clamp(0, 255).to(torch.uint8)
            if (view // 2) % 2 == 1:
                crops = crops.flip(-1)
            views.append(crops)
        features.append(bundle.embed_crops(torch.cat(views)))
        crop_ids.append(np.tile(np.arange(next_crop, next_crop + len(scene.boxes)), augment))
        next_crop += len(scene.boxes)
    result = np.concatenate(features), np.concatenate(crop_ids).astype(np.int64)
    print(f"real features: {len(result[0])} from {next_crop} crops x {augment} views in {time.perf_counter() - started:.0f} s", flush=True)
    work.mkdir(parents=True, exist_ok=True)
    np.savez(cache, features=result[0], crop=result[1])
    return result


def gaussian_filler(real: np.ndarray, count: int, seed: int, chunk: int = 65_536) -> np.ndarray:
    """``count`` unit vectors drawn from a Gaussian with ``real``'s mean and covariance."""
    mean = real.mean(axis=0, dtype=np.float64)
    cov = np.cov(real, rowvar=False) + 1e-6 * np.eye(real.shape[1])
    factor = np.linalg.cholesky(cov).astype(np.float32)
    rng = np.random.default_rng(seed)
    out = np.empty((count, real.shape[1]), dtype=np.float32)
    for start in range(0, count, chunk):
        n = min(chunk, count - start)
        block = rng.standard_normal((n, real.shape[1]), dtype=np.float32) @ factor.T + mean.astype(np.float32)
        out[start : start + n] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


# ------------------------------------------------------------------------------------ measuring


def brute_force(db: np.ndarray, query: np.ndarray, k: int) -> np.ndarray:
    """Exact top-k row ids by inner product with numpy (the reference)."""
    scores = db @ query
    top = np.argpartition(-scores, k - 1)[:k]
    return top[np.argsort(-scores[top], kind="stable")]


def timed(search, queries: np.ndarray, warmup: int = 3) -> tuple[list[np.ndarray], list[float]]:
    for q in queries[:warmup]:
        search(q)
    found, seconds = [], []
    for q in queries:
        started = time.perf_counter()
        ids = search(q)
        seconds.append(time.perf_counter() - started)
        found.append(np.asarray(ids))
    return found, seconds


def recall_at_k(found: list[np.ndarray], truth: list[np.ndarray], k: int) -> float:
    return float(np.mean([len(set(f[:k].tolist()) & set(t[:k].tolist())) / k for f, t in zip(found, truth)]))


def summary(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)), "mean_ms": float(ms.mean())}


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def run_size(db: np.ndarray, queries: np.ndarray, nprobes: list[int], work: Path) -> dict[str, Any]:
    from personsearch.index.ann import VectorSearch

    rows = len(db)
    methods: dict[str, Any] = {}
    truth, seconds = timed(lambda q: brute_force(db, q, K), queries)
    methods["numpy brute force"] = {**summary(seconds), "recall_at_10": 1.0, "exact": True}
    print(f"  {rows}: numpy {methods['numpy brute force']['p50_ms']:.1f} ms", flush=True)
    with tempfile.TemporaryDirectory(prefix="search-latency-", dir=work) as tmp:
        search = VectorSearch(ArrayStore(db, Path(tmp)))
        started = time.perf_counter()
        search.search(queries[0], K, rows)  # fills the flat index
        build = time.perf_counter() - started
        found, seconds = timed(lambda q: search.search(q, K, rows).ids, queries)
        methods["exact (faiss IndexFlatIP)"] = {**summary(seconds), "recall_at_10": recall_at_k(found, truth, K), "exact": True, "build_s": build}
        search._flat = None  # free its copy of the vectors before the IVF makes another
        print(f"  {rows}: exact {methods['exact (faiss IndexFlatIP)']['p50_ms']:.1f} ms", flush=True)
        started = time.perf_counter()
        index = search.update_ivf(rows)
        build = time.perf_counter() - started
        for nprobe in nprobes:
            if nprobe > index.nlist:
                continue
            found, seconds = timed(lambda q: search.search(q, K, rows, approximate=True, nprobe=nprobe).ids, queries)
            name = f"IVF nlist={index.nlist} nprobe={nprobe}"
            methods[name] = {**summary(seconds), "recall_at_10": recall_at_k(found, truth, K), "exact": False, "build_s": build, "nprobe": nprobe}
            print(f"  {rows}: {name} {methods[name]['p50_ms']:.2f} ms recall {methods[name]['recall_at_10']:.3f}", flush=True)
        search._ivf = None
    return {"rows": rows, "methods": methods, "peak_rss_gb": peak_rss_gb()}


def table(results: dict[str, Any]) -> str:
    head = f"{'boxes':>9s}  {'method':34s} {'p50 ms':>8s} {'p95 ms':>8s} {'recall@10':>9s} {'build s':>8s}"
    lines = [head, "-" * len(head)]
    for size in results["sizes"]:
        for name, m in size["methods"].items():
            build = f"{m['build_s']:.1f}" if "build_s" in m else ""
            lines.append(f"{size['rows']:>9d}  {name:34s} {m['p50_ms']:>8.2f} {m['p95_ms']:>8.2f} {m['recall_at_10']:>9.3f} {build:>8s}")
    lines.append(f"{results['settings']['queries']} queries of real features, k={K}; recall against numpy brute force on the same vectors")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--nprobe", default="8,16,32,64,128", help="IVF nprobe values to measure")
    parser.add_argument("--augment", type=int, default=16, help="views per ground-truth crop for the real features")
    parser.add_argument("--data", type=Path, default=Path("demo-output/data"))
    parser.add_argument("--bundle", type=Path, default=Path("demo-output/model"), help="a trained bundle (its re-id network)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "search_latency")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    for path, what in ((args.bundle / "reid.json", "a trained bundle (--bundle)"), (args.data, "a synthetic benchmark (--data)")):
        if not path.exists():
            parser.error(f"{path} not found: {what} is needed for real features; `personsearch demo` makes both")
    args.work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    features, crop = real_features(args.bundle, args.data, args.augment, args.work, args.seed)
    rng = np.random.default_rng(args.seed)
    query_crops = rng.choice(np.unique(crop), size=args.queries, replace=False)
    held_out = np.isin(crop, query_crops)
    first_view = np.unique(crop[held_out], return_index=True)[1]
    queries = np.ascontiguousarray(features[held_out][first_view])
    real = features[~held_out][rng.permutation(int((~held_out).sum()))]
    largest = sizes[-1]
    db = np.empty((largest, features.shape[1]), dtype=np.float32)
    db[: min(len(real), largest)] = real[:largest]
    if largest > len(real):
        db[len(real) :] = gaussian_filler(real, largest - len(real), args.seed + 1)
    results: dict[str, Any] = {
        "commit": commit(),
        "machine": machine(),
        "settings": {
            "k": K,
            "queries": len(queries),
            "bundle": str(args.bundle),
            "data": str(args.data),
            "augment": args.augment,
            "real_features_total": len(features),
            "real_crops": int(len(np.unique(crop))),
            "real_in_database": int(min(len(real), largest)),
            "feature_dim": int(features.shape[1]),
            "filler": "unit-normalised Gaussian samples with the real features' mean and covariance",
            "seed": args.seed,
        },
        "sizes": [],
    }
    nprobes = [int(n) for n in args.nprobe.split(",")]
    for size in sizes:
        view = db[:size]
        record = run_size(view, queries, nprobes, args.work)
        record["real_rows"] = int(min(len(real), size))
        results["sizes"].append(record)
    results["seconds"] = time.perf_counter() - started
    results["machine"]["load_average_end"] = list(__import__("os").getloadavg())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {args.out} ({results['seconds']:.0f} s, peak RSS {peak_rss_gb():.1f} GB)\n")
    print(table(results))


if __name__ == "__main__":
    main()
