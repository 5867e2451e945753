"""Search latency and memory of the index's vector search from 10k to 10M boxes, against exact
search over the same vectors, with recall@k of the approximate modes on real re-id features.

    python benchmarks/search_latency.py                                # 10k, 100k, 1M
    python benchmarks/search_latency.py --sizes 1000000,10000000       # the compact index at 10M

Vectors. ``real``: a trained re-id model (``--bundle``, the demo's) run over every ground-truth
person crop of a synthetic benchmark (``--data``), each crop taken ``--augment`` times (random box
jitter, half of them at 1/4-1/2 resolution, half mirrored); features are cached in ``--work``.
Queries are ``--queries`` of these real features; every feature of a query's crop is kept out of
the database, so a query's neighbours are other views of its identity and other people. The
database holds the remaining real features (all of them at 10k: real only) and, past their
count, ``filler``: samples of a Gaussian with the real features' mean and covariance,
L2-normalised (a model pass over 1M crops would take hours on this CPU). The filler has the
real features' second-order statistics but no identity clusters.

The database lives in a file (``--work``/``db-*.f32``, written in chunks, float32 like an
index's ``vectors.f32``) and is memory-mapped: at 10M boxes it is 31 GB, more than this machine's
memory. Exact neighbours (the recall reference) come from one chunked pass over the file for all
queries at once; its time per query is reported as the numpy reference.

Methods, each timed one query at a time (the way ``PersonIndex.search`` calls it), all through
``personsearch.index.ann``: exact (faiss ``IndexFlatIP``, an in-memory copy; only where it fits
``ann.EXACT_MEMORY_BYTES``), approximate IVF-Flat (also an in-memory copy; same limit) and the
compact IVF-PQ (``ann.pq_bytes`` bytes per box in memory, the best ``ann.rerank_count(k)``
candidates re-scored with exact features read from the memory-mapped file) at several
``nprobe``. Memory: the process's resident anonymous and file-backed pages while searching the
compact index, read from /proc after the file's pages are unmapped from the process (so pages
touched while building do not count), with the process's baseline before any index (Python,
numpy, faiss, and the torch/ONNX Runtime libraries the real features needed) recorded apart. Writes
``benchmarks/results/search_latency.json`` and prints a table last.
"""

from __future__ import annotations

import argparse
import json
import mmap
import resource
import tempfile
import time
from pathlib import Path
from typing import Any, cast

import numpy as np
from run_info import ROOT, commit, machine, write_results

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

    def vector_rows(self, ids: np.ndarray, rows: int) -> np.ndarray:
        return np.asarray(self._vectors[np.asarray(ids)])

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


def real_features(
    bundle_dir: Path, data: Path, augment: int, work: Path, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
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
    print(
        f"real features: {len(result[0])} from {next_crop} crops x {augment} views in "
        f"{time.perf_counter() - started:.0f} s",
        flush=True,
    )
    work.mkdir(parents=True, exist_ok=True)
    np.savez(cache, features=result[0], crop=result[1])
    return result


def gaussian_chunks(real: np.ndarray, count: int, seed: int, chunk: int = 65_536):
    """``count`` unit vectors drawn from a Gaussian with ``real``'s mean and covariance, in chunks."""
    mean = real.mean(axis=0, dtype=np.float64).astype(np.float32)
    cov = np.cov(real, rowvar=False) + 1e-6 * np.eye(real.shape[1])
    factor = np.linalg.cholesky(cov).astype(np.float32)
    rng = np.random.default_rng(seed)
    for start in range(0, count, chunk):
        block = (
            rng.standard_normal((min(chunk, count - start), real.shape[1]), dtype=np.float32) @ factor.T
            + mean
        )
        yield block / np.linalg.norm(block, axis=1, keepdims=True)


def write_database(path: Path, real: np.ndarray, rows: int, seed: int) -> np.memmap:
    """The ``rows``-row database file: the real features first, then filler; reused when a file
    with the same recipe exists (``path`` + ``.json``)."""
    recipe: dict[str, Any] = {
        "rows": rows,
        "real": int(min(len(real), rows)),
        "real_digest": float(real[:, :8].sum()),
        "seed": seed,
    }
    marker = path.with_suffix(".json")
    if not (path.is_file() and marker.is_file() and json.loads(marker.read_text()) == recipe):
        started = time.perf_counter()
        with open(path, "wb") as f:
            f.write(np.ascontiguousarray(real[:rows], np.float32).tobytes())
            for block in gaussian_chunks(real, rows - recipe["real"], seed + 1):
                f.write(block.tobytes())
        marker.write_text(json.dumps(recipe))
        print(f"wrote {rows:,} vectors to {path} in {time.perf_counter() - started:.0f} s", flush=True)
    return np.memmap(path, dtype=np.float32, mode="r", shape=(rows, real.shape[1]))


def exact_truth(
    db: np.ndarray, queries: np.ndarray, k: int, chunk: int = 1 << 18
) -> tuple[list[np.ndarray], float]:
    """Exact top-k of every query by one chunked pass over ``db``, and the seconds per query."""
    started = time.perf_counter()
    best_s = np.full((len(queries), 0), -np.inf, np.float32)
    best_i = np.zeros((len(queries), 0), np.int64)
    for start in range(0, len(db), chunk):
        scores = queries @ np.asarray(db[start : start + chunk]).T
        ids = np.broadcast_to(np.arange(start, start + scores.shape[1]), scores.shape)
        all_s, all_i = np.concatenate([best_s, scores], axis=1), np.concatenate([best_i, ids], axis=1)
        top = np.argpartition(-all_s, k - 1, axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(all_s, top, 1), np.take_along_axis(all_i, top, 1)
    order = np.argsort(-best_s, axis=1, kind="stable")
    return list(np.take_along_axis(best_i, order, 1)), (time.perf_counter() - started) / len(queries)


def drop_resident(array: np.ndarray) -> None:
    """Unmap the pages of a memory-mapped array from this process (they stay in the page cache),
    so the resident size measured next counts only what searching touches again."""
    if isinstance(array, np.memmap) and getattr(array, "_mmap", None) is not None:
        array._mmap.madvise(mmap.MADV_DONTNEED)  # type: ignore[attr-defined]  # np.memmap's mmap object is private: not in numpy's stubs


def resident_gb() -> dict[str, float]:
    """Resident anonymous and file-backed memory of this process (GB), from /proc."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(("RssAnon:", "RssFile:")):
            fields[line.split(":")[0]] = int(line.split()[1]) / 2**20
    return {"anon_gb": fields.get("RssAnon", float("nan")), "file_gb": fields.get("RssFile", float("nan"))}


# ------------------------------------------------------------------------------------ measuring


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
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "mean_ms": float(ms.mean()),
    }


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def run_size(
    db: np.ndarray, queries: np.ndarray, nprobes: list[int], work: Path, kinds: list[str], reranks: list[int]
) -> dict[str, Any]:
    from personsearch.index import ann
    from personsearch.index.ann import VectorSearch

    rows = len(db)
    methods: dict[str, Any] = {}
    truth, per_query = exact_truth(db, queries, K)
    methods["numpy exact (one pass for all queries)"] = {
        "p50_ms": per_query * 1000,
        "p95_ms": per_query * 1000,
        "mean_ms": per_query * 1000,
        "recall_at_10": 1.0,
        "exact": True,
    }
    print(f"  {rows:,}: exact reference pass {per_query * 1000:.1f} ms per query", flush=True)
    with tempfile.TemporaryDirectory(prefix="search-latency-", dir=work) as tmp:
        store = ArrayStore(db, Path(tmp))
        search = VectorSearch(store)
        if search.fits_in_memory(rows):
            started = time.perf_counter()
            search.search(queries[0], K, rows)  # fills the flat index
            build = time.perf_counter() - started
            found, seconds = timed(lambda q: search.search(q, K, rows).ids, queries)
            methods["exact (faiss IndexFlatIP)"] = {
                **summary(seconds),
                "recall_at_10": recall_at_k(found, truth, K),
                "exact": True,
                "build_s": build,
            }
            print(f"  {rows:,}: exact {methods['exact (faiss IndexFlatIP)']['p50_ms']:.1f} ms", flush=True)
        search.forget()  # free its copy of the vectors before the next index
        for kind in kinds:
            if kind == "ivf" and not search.fits_in_memory(rows):
                continue  # an IVF-Flat holds a full copy: the same limit as exact
            started = time.perf_counter()
            index = search.update(kind, rows)
            build = time.perf_counter() - started
            drop_resident(db)  # pages touched while building do not count
            memory = {}
            for rerank in reranks if kind == "ivfpq" else [0]:
                ann.RERANK_MIN = rerank or ann.RERANK_MIN
                for nprobe in nprobes:
                    if nprobe > index.nlist:
                        continue
                    found, seconds = timed(
                        lambda q, nprobe=nprobe, kind=kind: (
                            search.search(q, K, rows, approximate=True, nprobe=nprobe, kind=kind).ids
                        ),
                        queries,
                    )
                    label = f"{'IVF-PQ' if kind == 'ivfpq' else 'IVF'} nlist={index.nlist}" + (
                        f" PQ{ann.pq_bytes(db.shape[1])} rerank={ann.rerank_count(K)}"
                        if kind == "ivfpq"
                        else ""
                    )
                    name = f"{label} nprobe={nprobe}"
                    memory = resident_gb()
                    methods[name] = {
                        **summary(seconds),
                        "recall_at_10": recall_at_k(found, truth, K),
                        "exact": False,
                        "build_s": build,
                        "nprobe": nprobe,
                        "resident_while_searching": memory,
                    }
                    print(
                        f"  {rows:,}: {name} {methods[name]['p50_ms']:.2f} ms recall "
                        f"{methods[name]['recall_at_10']:.3f} resident {memory}",
                        flush=True,
                    )
            search.forget()
    return {"rows": rows, "methods": methods, "peak_rss_gb": peak_rss_gb()}


def table(results: dict[str, Any]) -> str:
    head = (
        f"{'boxes':>9s}  {'method':52s} {'p50 ms':>8s} {'p95 ms':>8s} {'recall@10':>9s} {'build s':>8s} "
        f"{'resident GB':>12s}"
    )
    lines = [head, "-" * len(head)]
    for size in results["sizes"]:
        for name, m in size["methods"].items():
            build = f"{m['build_s']:.1f}" if "build_s" in m else ""
            res = m.get("resident_while_searching")
            resident = f"{res['anon_gb'] + res['file_gb']:.2f}" if res else ""
            lines.append(
                f"{size['rows']:>9d}  {name:52s} {m['p50_ms']:>8.2f} {m['p95_ms']:>8.2f} "
                f"{m['recall_at_10']:>9.3f} {build:>8s} {resident:>12s}"
            )
    lines.append(
        f"{results['settings']['queries']} queries of real features, k={K}; "
        "recall against numpy brute force on the same vectors"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--nprobe", default="8,16,32,64,128", help="IVF nprobe values to measure")
    parser.add_argument(
        "--augment", type=int, default=16, help="views per ground-truth crop for the real features"
    )
    parser.add_argument("--kinds", default="ivf,ivfpq", help="approximate index kinds to measure")
    parser.add_argument(
        "--rerank",
        default=None,
        help="IVF-PQ: candidates re-scored exactly, several comma-separated (default: ann.RERANK_MIN)",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=Path("demo-output/data"),
        help="a synthetic benchmark (`personsearch demo` writes one)",
    )
    parser.add_argument(
        "--bundle",
        type=Path,
        default=None,
        help="a trained bundle (its re-id network); default: the shipped model",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "search_latency")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    if args.bundle is None:
        from personsearch.interfaces.api import SHIPPED_MODEL

        args.bundle = SHIPPED_MODEL
    for path, what in (
        (args.bundle / "reid.json", "a trained bundle (--bundle)"),
        (args.data, "a synthetic benchmark (--data)"),
    ):
        if not path.exists():
            parser.error(
                f"{path} not found: {what} is needed for real features; `personsearch demo` makes both"
            )
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
    db = write_database(args.work / f"db-{largest}.f32", real, largest, args.seed)
    baseline = resident_gb()
    from personsearch.index import ann

    reranks = [int(r) for r in args.rerank.split(",")] if args.rerank else [ann.RERANK_MIN]
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
            "rerank": reranks,
        },
        "sizes": [],
    }
    nprobes = [int(n) for n in args.nprobe.split(",")]
    for size in sizes:
        view = np.memmap(cast(str, db.filename), dtype=np.float32, mode="r", shape=(size, db.shape[1]))
        record = run_size(view, queries, nprobes, args.work, args.kinds.split(","), reranks)
        record["real_rows"] = int(min(len(real), size))
        results["sizes"].append(record)
    results["seconds"] = time.perf_counter() - started
    results["baseline_resident"] = baseline
    results["machine"]["load_average_end"] = list(__import__("os").getloadavg())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_results(args.out, results)
    print(f"\nwrote {args.out} ({results['seconds']:.0f} s, peak RSS {peak_rss_gb():.1f} GB)\n")
    print(table(results))


if __name__ == "__main__":
    main()
