"""The whole search at 10 million boxes: a real index on disk (SQLite rows and sightings, a JPEG
thumbnail per box, memory-mapped float32 vectors, the compact IVF-PQ), searched by a fresh
process exactly as the product searches (``PersonIndex.search``: filter masks from the columnar
row table, IVF-PQ, exact re-ranking from the memory-mapped file, one hit per sighting, the hits'
rows, thumbnails and sighting strips from SQLite), with its latency, recall@10 against exact
search over the same rows and filters, and that process's peak resident memory.

    python benchmarks/search_whole.py --rows 10000000      # builds (~50 GB), searches, removes
    python benchmarks/search_whole.py --rows 200000 --work /tmp/w --out /tmp/r.json   # a quick look

What is in the index (written to the results file as ``content``):

* **People**: every ground-truth person of a synthetic benchmark (``--data``), each crop seen in
  ``--augment`` views (box jitter, low resolution, mirroring: ``search_latency.real_features``)
  through the shipped model (``--bundle``). ``--queries`` crops are held out: a query is one
  view of a held-out crop, so its neighbours are other people and other crops of its identity.
* **Sightings**: a sighting is one crop walking past a camera for 20-60 sampled frames. Its boxes
  carry the crop's views in turn; the first time a (crop, view) feature is stored it is stored as
  the model gave it (``content.real_rows`` counts those rows), every later box of that view is the
  same feature plus Gaussian noise of ``--noise`` times the spread of the crop's views (per
  dimension, the median over crops), re-normalised: frame-to-frame change, so a sighting is a
  tight cluster of near-duplicates, as a tracked person is. People reappear: there are more
  sightings than crops.
* **Rows**: videos of ``--boxes-per-video`` boxes, ``--cameras`` cameras, frames sampled at 5 per
  second, about four sightings at a time; each box keeps its crop's box and the crop's real
  thumbnail (the indexer's ``make_thumbnail``), so SQLite holds real-sized JPEGs. Source files
  are not on disk (a search never reads them).

The build is resumable (one committed video at a time; the IVF-PQ is built by the product's
``set_approximate``); exact neighbours for every query and filter come from one chunked pass over
the vectors file (in the build process), then a new process opens the index read-only and
searches: ``--queries`` queries per setting after a warm-up, timed one at a time, p50/p95/p99;
recall@10 from ``per_frame=True`` searches (the box-level ranking exact search also gives); peak
resident memory from the kernel (``VmHWM``), which counts the memory-mapped vector pages the
search touched. Writes ``benchmarks/results/search_whole.json``, then removes the index (``--keep``
keeps it): at 10M rows it fills most of a disk, and one left behind once left CI no room to install.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, cast

import numpy as np
from run_info import ROOT, commit, machine, write_results
from search_latency import exact_truth, real_features

RESULTS = ROOT / "benchmarks" / "results" / "search_whole.json"
K = 10
TRUTH_ROWS = 640
"""Exact rows kept per query: the best rows of the K best sightings are among them (a sighting
has at most 60 rows, so fewer than 9 x 60 rows outrank the 10th sighting's best)."""
FPS = 5.0
FILTER_CAMERAS = 10
"""The filtered setting keeps this many cameras and the first half of each video's time."""


# ------------------------------------------------------------------------------------ content


def thumbnails(data: Path) -> list[bytes]:
    """The real thumbnail of every ground-truth crop, in ``real_features``' crop order."""
    from personsearch.data import load_dataset
    from personsearch.data.images import read_image
    from personsearch.index.indexer import make_thumbnail

    out: list[bytes] = []
    dataset = load_dataset(data)
    for scene in dataset.train + dataset.gallery:
        if len(scene.boxes):
            image = read_image(scene.path)
            out.extend(make_thumbnail(image, box) for box in scene.boxes)
    return out


def crop_boxes_of(data: Path) -> np.ndarray:
    """(crops, 4) xyxy box of every ground-truth crop, in ``real_features``' crop order."""
    from personsearch.data import load_dataset

    dataset = load_dataset(data)
    return np.concatenate([s.boxes[:, :4] for s in dataset.train + dataset.gallery if len(s.boxes)]).astype(
        np.float32
    )


class Plan:
    """Which crop and view every row of the index carries, and whether it is stored as the model
    gave it: fixed by the seed, so a resumed build writes the same rows."""

    def __init__(self, crop_of_view: np.ndarray, augment: int, rows: int, queries: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        crops = int(crop_of_view.max()) + 1
        order = rng.permutation(crops)
        self.query_crops = np.sort(order[:queries])
        people = order[queries:]
        lengths = rng.integers(20, 61, size=rows // 20 + 1)
        lengths = lengths[: int(np.searchsorted(np.cumsum(lengths), rows)) + 1]
        lengths[-1] -= int(lengths.sum()) - rows
        self.sighting_lengths = lengths
        self.sighting_crop = people[np.arange(len(lengths)) % len(people)]
        row_sighting = np.repeat(np.arange(len(lengths)), lengths)
        within = np.arange(rows) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        self.crop = self.sighting_crop[row_sighting]
        self.view = within % augment
        key = self.crop.astype(np.int64) * augment + self.view
        _, first = np.unique(key, return_index=True)
        self.real = np.zeros(rows, bool)
        self.real[first] = True
        self.row_sighting = row_sighting
        self.within = within


def view_rows(crop_of_view: np.ndarray, augment: int) -> np.ndarray:
    """(crops, augment) row of ``real_features``' output holding each crop's each view."""
    crops = int(crop_of_view.max()) + 1
    table = np.full((crops, augment), -1, np.int64)
    seen = np.zeros(crops, np.int64)
    for row, crop in enumerate(crop_of_view):
        table[crop, seen[crop]] = row
        seen[crop] += 1
    return table


def view_spread(features: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Per dimension, the median over crops of the standard deviation of a crop's views."""
    return np.median(features[table].std(axis=1), axis=0).astype(np.float32)


# ------------------------------------------------------------------------------------ build


def build(args: argparse.Namespace, content: dict[str, Any]) -> dict[str, Any]:
    """Write (or finish) the index in ``args.work / 'index'``; returns build timings."""
    from personsearch.index import PersonIndex
    from personsearch.index.sources import Source
    from personsearch.index.store import BoxRow, IndexStore, SourceUpdate
    from personsearch.index.tracking import Sighting
    from personsearch.models.bundle import ModelBundle

    features, crop_of_view = real_features(args.bundle, args.data, args.augment, args.work)
    table = view_rows(crop_of_view, args.augment)
    spread = view_spread(features, table)
    plan = Plan(crop_of_view, args.augment, args.rows, args.queries, args.seed)
    jpegs = thumbnails(args.data)
    boxes = crop_boxes_of(args.data)
    content.update(
        real_features=len(features),
        crops=len(table),
        query_crops=len(plan.query_crops),
        sightings=len(plan.sighting_lengths),
        real_rows=int(plan.real.sum()),
        noise=args.noise,
        mean_thumbnail_bytes=float(
            np.mean([len(jpegs[c]) for c in plan.crop[:: max(1, args.rows // 100_000)]])
        ),
    )
    directory = args.work / f"index-{args.rows}"
    timings: dict[str, float] = {}
    started = time.perf_counter()
    if IndexStore.exists(directory):
        store = IndexStore.open(directory)
    else:
        bundle = ModelBundle(args.bundle)
        store = IndexStore.create(directory, bundle.model_id, int(features.shape[1]))
    store.acquire_writer()
    try:
        videos = -(-args.rows // args.boxes_per_video)
        done = store.committed_rows() // args.boxes_per_video
        for v in range(done, videos):
            rows = np.arange(v * args.boxes_per_video, min(args.rows, (v + 1) * args.boxes_per_video))
            camera = f"cam{v % args.cameras:03d}"
            source = Source(Path(f"/bench/{camera}/video{v:05d}.mp4"), "video", 1 << 30, 0, camera)
            rng = np.random.default_rng([args.seed, v])
            vectors = features[table[plan.crop[rows], plan.view[rows]]]
            noisy = ~plan.real[rows]
            vectors[noisy] += (
                args.noise * spread * rng.standard_normal((int(noisy.sum()), vectors.shape[1]), np.float32)
            )
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            # sightings overlap about four at a time: each starts a quarter of the previous one's
            # length after it (video-local numbering)
            sightings = np.unique(plan.row_sighting[rows])
            starts = np.concatenate([[0], np.cumsum(plan.sighting_lengths[sightings][:-1] // 4)])
            start_of = dict(zip(sightings.tolist(), starts.tolist(), strict=True))
            frames = np.array([start_of[s] for s in plan.row_sighting[rows]]) + plan.within[rows]
            box_rows = [
                BoxRow(source, int(f), float(f) / FPS, boxes[c], 0.9, jpegs[c])
                for f, c in zip(frames.tolist(), plan.crop[rows].tolist(), strict=True)
            ]
            store.commit_batch(box_rows, vectors, [SourceUpdate(source, int(frames.max()) + 1, True)])
            state = store.source_state(source.path)
            assert state is not None
            tracks = []
            for s in sightings.tolist():
                ids = rows[plan.row_sighting[rows] == s]
                f = frames[plan.row_sighting[rows] == s]
                tracks.append(
                    Sighting(
                        tuple(ids.tolist()),
                        int(f.min()),
                        int(f.max()),
                        f.min() / FPS,
                        f.max() / FPS,
                        int(ids[0]),
                    )
                )
            store.write_sightings(state.id, tracks)
            if v % 50 == 0:
                print(f"video {v + 1}/{videos} ({time.perf_counter() - started:.0f} s)", flush=True)
    finally:
        store.release_writer()
        store.close()
    timings["rows_s"] = time.perf_counter() - started
    started = time.perf_counter()
    with PersonIndex.open(directory) as index:
        index.set_approximate(True, "ivfpq")
    timings["ivfpq_s"] = time.perf_counter() - started
    return timings


def query_set(args: argparse.Namespace) -> np.ndarray:
    """One view (the unaugmented one) of every held-out crop: the queries."""
    features, crop_of_view = real_features(args.bundle, args.data, args.augment, args.work)
    plan = Plan(crop_of_view, args.augment, args.rows, args.queries, args.seed)
    return features[view_rows(crop_of_view, args.augment)[plan.query_crops, 0]]


def real_share_of_truth(args: argparse.Namespace, exact: np.ndarray) -> float:
    """The share of the exact top-K rows stored as the model gave them (not noised copies)."""
    _, crop_of_view = real_features(args.bundle, args.data, args.augment, args.work)
    real = Plan(crop_of_view, args.augment, args.rows, args.queries, args.seed).real
    return float(real[exact].mean())


def filtered_rows(directory: Path) -> np.ndarray:
    """Mask of the rows the filtered setting keeps (the same ``Filters`` the search applies)."""
    from personsearch.index.person_index import Filters, RowTable
    from personsearch.index.store import IndexStore

    store = IndexStore.open(directory)
    try:
        rows = RowTable(store)
        rows.refresh()
        mask = rows.mask(Filters(**filter_settings()))
        assert mask is not None
        return mask
    finally:
        store.close()


def filter_settings() -> dict[str, Any]:
    """The filtered setting: ``FILTER_CAMERAS`` cameras, the first 200 s of each video."""
    return {"camera": [f"cam{c:03d}" for c in range(FILTER_CAMERAS)], "time_range": (0.0, 200.0)}


def truth(args: argparse.Namespace, queries: np.ndarray) -> dict[str, np.ndarray]:
    """Exact K best rows and K best sightings (by their best row) of every query, over all rows
    and over the filtered rows (cached)."""
    path = args.work / f"truth-{args.rows}.npz"
    if path.is_file():
        with np.load(path) as saved:
            return {k: saved[k] for k in saved.files}
    directory = args.work / f"index-{args.rows}"
    from personsearch.index.person_index import RowTable
    from personsearch.index.store import IndexStore

    store = IndexStore.open(directory)
    try:
        vectors = store.vectors()
        mask = filtered_rows(directory)
        table = RowTable(store)
        table.refresh()
        out = {"filtered_rows": np.array(int(mask.sum()))}
        for name, ids in (
            ("all", np.stack(exact_truth(vectors, queries, TRUTH_ROWS)[0])),
            ("filtered", masked_truth(vectors, queries, mask)),
        ):
            out[name] = ids[:, :K]
            out[f"{name}_sightings"] = np.stack([first_groups(table.sighting_of[row], K) for row in ids])
    finally:
        store.close()
    np.savez(path, **cast("dict[str, Any]", out))
    return out


def first_groups(groups: np.ndarray, k: int) -> np.ndarray:
    """The first ``k`` distinct values of ``groups``, in order of first appearance."""
    _, first = np.unique(groups, return_index=True)
    return groups[np.sort(first)[:k]]


def masked_truth(
    vectors: np.ndarray, queries: np.ndarray, mask: np.ndarray, chunk: int = 1 << 18
) -> np.ndarray:
    """Exact ``TRUTH_ROWS`` best ids of every query among the rows of ``mask``, in one chunked pass."""
    best_s = np.full((len(queries), 0), -np.inf, np.float32)
    best_i = np.zeros((len(queries), 0), np.int64)
    for start in range(0, len(vectors), chunk):
        ids = start + np.flatnonzero(mask[start : start + chunk])
        if len(ids) == 0:
            continue
        scores = queries @ np.asarray(vectors[ids]).T
        all_s = np.concatenate([best_s, scores], axis=1)
        all_i = np.concatenate([best_i, np.broadcast_to(ids, scores.shape)], axis=1)
        top = np.argpartition(-all_s, min(TRUTH_ROWS, all_s.shape[1]) - 1, axis=1)[:, :TRUTH_ROWS]
        best_s, best_i = np.take_along_axis(all_s, top, 1), np.take_along_axis(all_i, top, 1)
    order = np.argsort(-best_s, axis=1, kind="stable")
    return np.take_along_axis(best_i, order, 1)


# ------------------------------------------------------------------------------------ search


def search_process(args: argparse.Namespace) -> dict[str, Any]:
    """In a fresh process: open the index read-only and search it as the product does."""
    from personsearch.index import PersonIndex

    queries = np.load(args.work / f"queries-{args.rows}.npy")
    with np.load(args.work / f"truth-{args.rows}.npz") as saved:
        exact = {k: saved[k] for k in saved.files}
    out: dict[str, Any] = {}
    started = time.perf_counter()
    index = PersonIndex.open(args.work / f"index-{args.rows}", read_only=True)
    out["open_s"] = time.perf_counter() - started
    started = time.perf_counter()
    first = index.search(queries[0], K)
    out["first_query_s"] = time.perf_counter() - started  # loads the IVF-PQ and the row table
    out["first_query_hits"] = len(first)
    settings = {"all": {}, "filtered": filter_settings()}
    hit_rows: dict[str, np.ndarray] = {}
    for name, filters in settings.items():
        for per_frame in (False, True):
            t = time.perf_counter()  # the first search of a setting: a new filter's mask is built
            index.search(queries[-1], K, per_frame=per_frame, **filters)
            first_ms = 1000 * (time.perf_counter() - t)
            for q in queries[:5]:  # warm-up
                index.search(q, K, per_frame=per_frame, **filters)
            seconds, found, sightings, thumbs = [], [], [], 0
            for q in queries:
                t = time.perf_counter()
                hits = index.search(q, K, per_frame=per_frame, **filters)
                seconds.append(time.perf_counter() - t)
                found.append([h.box_id for h in hits])
                sightings.append([h.sighting.id if h.sighting else -1 - h.box_id for h in hits])
                thumbs += sum(bool(h.thumbnail_jpeg) + len(h.sighting_thumbnails) for h in hits)
            ms = np.array(seconds) * 1000
            entry: dict[str, Any] = {
                "queries": len(queries),
                "first_ms": first_ms,
                "p50_ms": float(np.percentile(ms, 50)),
                "p95_ms": float(np.percentile(ms, 95)),
                "p99_ms": float(np.percentile(ms, 99)),
                "max_ms": float(ms.max()),
                "mean_hits": float(np.mean([len(f) for f in found])),
                "thumbnails_returned": thumbs,
            }
            if per_frame:  # boxes against the exact K best boxes
                truth_ids, got = exact[name], found
            else:  # sightings against the exact K best sightings (each by its best box)
                truth_ids, got = exact[f"{name}_sightings"], sightings
            entry["recall_at_10"] = float(
                np.mean([len(set(f) & set(t.tolist())) / K for f, t in zip(got, truth_ids, strict=True)])
            )
            key = f"{name}{'_per_frame' if per_frame else ''}"
            out[key] = entry
            hit_rows[key] = np.array([f + [-1] * (K - len(f)) for f in found], np.int64)
    index.close()
    np.savez(args.work / f"found-{args.rows}.npz", **cast("dict[str, Any]", hit_rows))
    status = Path("/proc/self/status").read_text().splitlines()
    field = {
        line.split(":")[0]: int(line.split()[1]) for line in status if line.startswith(("VmHWM", "VmRSS"))
    }
    out["peak_resident_gb"] = field["VmHWM"] / 2**20
    out["resident_at_end_gb"] = field["VmRSS"] / 2**20
    return out


def identity_precision(args: argparse.Namespace, exact: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Top-10 precision by identity (the share of hits showing the query's person, over queries of
    a labelled person): the search's hits (``found-*.npz``) against exact search's. With many
    near-equal candidates the exact top 10 is partly a matter of noise; who is in it is not."""
    from personsearch.data import load_dataset

    _, crop_of_view = real_features(args.bundle, args.data, args.augment, args.work)
    plan = Plan(crop_of_view, args.augment, args.rows, args.queries, args.seed)
    dataset = load_dataset(args.data)
    pids = np.concatenate(
        [
            np.where(s.pids >= 0, s.pids + split * 1_000_000, -1)
            for split, scenes in enumerate((dataset.train, dataset.gallery))
            for s in scenes
            if len(s.boxes)
        ]
    )
    person = pids[plan.query_crops]
    labelled = person >= 0
    with np.load(args.work / f"found-{args.rows}.npz") as saved:
        found = {k: saved[k] for k in saved.files}
    # a sighting shows one crop: its first box's
    import sqlite3

    wanted = np.unique(np.concatenate([exact["all_sightings"].ravel(), exact["filtered_sightings"].ravel()]))
    with sqlite3.connect(args.work / f"index-{args.rows}" / "index.sqlite") as db:
        first_box = dict(
            db.execute(
                f"SELECT id, best_box FROM sightings WHERE id IN ({','.join(map(str, wanted.tolist()))})"
            )
        )
    box_of = np.vectorize(first_box.__getitem__, otypes=[np.int64])
    exact_rows = {
        "all_per_frame": plan.crop[exact["all"]],
        "filtered_per_frame": plan.crop[exact["filtered"]],
        "all": plan.crop[box_of(exact["all_sightings"])],
        "filtered": plan.crop[box_of(exact["filtered_sightings"])],
    }
    out = {}
    for key, crops in exact_rows.items():
        hits = np.where(found[key] >= 0, pids[plan.crop[np.maximum(found[key], 0)]], -2)
        right = hits[labelled] == person[labelled, None]
        exact_right = pids[crops][labelled] == person[labelled, None]
        out[key] = {
            "search": float(right.mean()),
            "exact": float(exact_right.mean()),
            "queries": int(labelled.sum()),
        }
    return out


def disk_bytes(directory: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in sorted(directory.iterdir()) if p.is_file()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--bundle", type=Path, default=ROOT / "personsearch" / "assets" / "default")
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "synthetic-standard")
    parser.add_argument("--augment", type=int, default=8, help="views per ground-truth crop")
    parser.add_argument("--queries", type=int, default=400, help="held-out crops, one query each")
    parser.add_argument("--noise", type=float, default=0.5, help="frame-to-frame noise, in view spreads")
    parser.add_argument("--boxes-per-video", type=int, default=10_000)
    parser.add_argument("--cameras", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "search_whole")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--build-only",
        action="store_true",
        help="build the index and the exact neighbours, then stop (time the search on a quiet machine)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the index in --work after searching (removed by default)"
    )
    parser.add_argument("--search-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.search_only:  # the fresh search process: its result on stdout's last line
        print(json.dumps(search_process(args)))
        return
    if not (args.data / "synthetic.json").is_file():
        raise SystemExit(
            f"{args.data}: no synthetic benchmark; make it with personsearch synthetic --preset standard"
        )
    args.work.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(args.work).free
    content: dict[str, Any] = {"rows": args.rows}
    started = time.perf_counter()
    built = args.work / f"build-{args.rows}.json"  # a finished build's timings: a rerun only searches
    if built.is_file():
        content, build_s = json.loads(built.read_text()).values()
    else:
        build_s = build(args, content)
        built.write_text(json.dumps({"content": content, "build_s": build_s}))
    queries = query_set(args)
    np.save(
        args.work / f"queries-{args.rows}.npy", queries
    )  # what the search process reads: nothing else of the build
    t = time.perf_counter()
    exact = truth(args, queries)
    truth_s = time.perf_counter() - t
    content["filtered_rows"] = int(exact["filtered_rows"])
    content["exact_top10_real_share"] = real_share_of_truth(args, exact["all"])
    if args.build_only:
        print(f"built in {time.perf_counter() - started:.0f} s: {json.dumps(content)}")
        return
    searched = subprocess.run(
        [sys.executable, __file__, *sys.argv[1:], "--search-only"], capture_output=True, text=True
    )
    if searched.returncode:
        raise SystemExit(f"the search process failed:\n{searched.stderr[-4000:]}")
    search = json.loads(searched.stdout.strip().splitlines()[-1])
    search["identity_precision_at_10"] = identity_precision(args, exact)
    results = {
        "commit": commit(),
        "command": "python benchmarks/search_whole.py " + " ".join(sys.argv[1:]),
        "machine": machine(),
        "content": content,
        "build": {
            **build_s,
            "exact_truth_s": truth_s,
            "disk_bytes": disk_bytes(args.work / f"index-{args.rows}"),
            "free_disk_before_gb": free / 2**30,
        },
        "search": search,
        "seconds": time.perf_counter() - started,
    }
    write_results(args.out, results)
    print(json.dumps(results, indent=1))
    if not args.keep:
        index = args.work / f"index-{args.rows}"
        shutil.rmtree(index)
        size = sum(results["build"]["disk_bytes"].values()) / 2**30
        print(f"removed {index} ({size:.1f} GB); --keep keeps it")


if __name__ == "__main__":
    main()
