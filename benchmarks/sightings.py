"""Video as people who move: how well indexing tracks people into sightings, what it costs, and
what searching by sighting changes, measured with ground truth on synthetic walking videos and
for cost on real footage.

    python benchmarks/sightings.py                       # synthetic walks + vtest.avi if present
    python benchmarks/sightings.py --people 8 --frames 160

1. Synthetic walks (``personsearch.data.synthetic.walks``): the same cast walks past ``--cameras``
   cameras (some people twice); every video is indexed with the shipped model. Each stored box
   is matched to the ground truth (IoU >= 0.5) and scored:
   * tracking: appearances (one crossing of one person) against sightings; purity (share of
     matched boxes whose sighting's majority person is theirs); coverage (share of an
     appearance's boxes in its largest sighting); fragments per appearance;
   * search across cameras: every sighting of camera 1 is a query against the other cameras,
     (a) one frame as the query, hits per frame, (b) one frame, hits per sighting, (c) the whole
     sighting as the query, hits per sighting: top-1 (the hit shows the query person), the share
     of that person's appearances found in the top 10, and distinct appearances in the top 10.
2. Cost: tracking time against the whole indexing time (the issue's bound: 10 %), on the
   synthetic videos and on ``vtest.avi`` (PETS 2009, Debian's opencv-doc; ``--vtest PATH``) with
   the off-the-shelf SSDLite detector when its weights are installed; the longest vtest sightings
   are drawn as strips of frames (``--strips``) to judge the tracks by eye.

Writes ``benchmarks/results/sightings.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from run_info import ROOT, commit, machine, write_results

from personsearch.data.boxes import box_iou
from personsearch.data.synthetic.walks import make_walks
from personsearch.index import PersonIndex
from personsearch.interfaces.api import PersonSearch

VTEST_PLACES = (
    "/usr/share/doc/opencv-doc/examples/data/vtest.avi",
    str(Path.home() / ".cache/personsearch-ci/usr/share/doc/opencv-doc/examples/data/vtest.avi"),
)


def appearance_of(truth: dict[str, Any], pid: int, frame: int) -> int:
    """Which crossing (0, 1, ...) of person ``pid`` frame ``frame`` belongs to."""
    walks = [w for w in truth["walks"] if w["pid"] == pid]
    return next(i for i, w in enumerate(walks) if w["first_frame"] <= frame <= w["last_frame"])


def label_boxes(
    index: PersonIndex, video: Path, truth: dict[str, Any]
) -> dict[int, tuple[int, int, int, int | None]]:
    """box id -> (person, appearance, frame, sighting) for every stored box matched to a true box."""
    _, sources = index.store.list_sources(limit=10_000)
    source = next(s for s in sources if Path(s.path) == video.resolve())
    ids, frames, _, boxes = index.store.video_boxes(source.id)
    _, sightings = index.store.video_box_labels(source.id)
    out = {}
    for box_id, frame, box, sighting in zip(
        ids.tolist(), frames.tolist(), boxes, sightings.tolist(), strict=True
    ):
        people = truth["frames"][frame]
        if not people:
            continue
        overlaps = box_iou(box[None], np.array([p["box"] for p in people], dtype=np.float64))[0]
        best = int(np.argmax(overlaps))
        if overlaps[best] >= 0.5:
            pid = people[best]["pid"]
            out[box_id] = (pid, appearance_of(truth, pid, frame), frame, None if sighting < 0 else sighting)
    return out


def tracking_quality(
    labels: dict[int, tuple[int, int, int, int | None]], truth: dict[str, Any]
) -> dict[str, Any]:
    by_sighting: dict[int, Counter] = {}
    fragments: dict[tuple[int, int], Counter] = {}
    for pid, appearance, _, sighting in labels.values():
        if sighting is None:
            continue
        by_sighting.setdefault(sighting, Counter())[(pid, appearance)] += 1
        fragments.setdefault((pid, appearance), Counter())[sighting] += 1
    majority = sum(c.most_common(1)[0][1] for c in by_sighting.values())
    matched = sum(sum(c.values()) for c in by_sighting.values())
    return {
        "appearances": len(truth["walks"]),
        "appearances_detected": len(fragments),
        "sightings_with_a_person": len(by_sighting),
        "purity": majority / max(matched, 1),
        "fragments_per_appearance": float(np.mean([len(s) for s in fragments.values()]))
        if fragments
        else None,
        "appearances_in_one_sighting": sum(len(s) == 1 for s in fragments.values()) / max(len(fragments), 1),
        "coverage": sum(s.most_common(1)[0][1] for s in fragments.values())
        / max(sum(sum(s.values()) for s in fragments.values()), 1),
    }


def search_evidence(
    index: PersonIndex, labels: dict[str, dict[int, tuple]], query_camera: str, k: int = 10
) -> dict[str, Any]:
    """Cross-camera search from every sighting of ``query_camera`` (see module docstring)."""
    all_labels = {box: lab for per_video in labels.values() for box, lab in per_video.items()}
    queries: dict[int, tuple[int, int]] = {}  # sighting -> (pid, its best box)
    for _pid, _, _, sighting in labels[query_camera].values():
        if sighting is not None and sighting not in queries:
            info = index.sighting(sighting)
            if info.best_box in labels[query_camera]:
                queries[sighting] = (labels[query_camera][info.best_box][0], info.best_box)
    others = [cam for cam in labels if cam != query_camera]
    targets: Counter[int] = Counter()  # (pid) -> appearances in other cameras
    for cam in others:
        for pid, _appearance in {(lab[0], lab[1]) for lab in labels[cam].values()}:
            targets[pid] += 1
    modes = {
        "frame query, per-frame hits": ("frame", True),
        "frame query, sighting hits": ("frame", False),
        "sighting query, sighting hits": ("sighting", False),
    }
    out = {}
    for name, (query_kind, per_frame) in modes.items():
        top1, recall, distinct = [], [], []
        for sighting, (pid, best_box) in queries.items():
            if targets[pid] == 0:
                continue
            feature = (
                index.sighting_feature(sighting) if query_kind == "sighting" else index.feature(best_box)
            )
            hits = index.search(feature, k, camera=others, per_frame=per_frame)
            found = [all_labels.get(h.box_id) for h in hits]
            top1.append(bool(found and found[0] is not None and found[0][0] == pid))
            cam_of = {h.box_id: h.camera for h in hits}
            right = {
                (cam_of[h.box_id], f[1])
                for h, f in zip(hits, found, strict=True)
                if f is not None and f[0] == pid
            }
            recall.append(len(right) / targets[pid])
            distinct.append(
                len(
                    {
                        (cam_of[h.box_id], f[0], f[1]) if f is not None else ("?", h.box_id)
                        for h, f in zip(hits, found, strict=True)
                    }
                )
            )
        out[name] = {
            "queries": len(top1),
            "top1": float(np.mean(top1)),
            f"appearance_recall@{k}": float(np.mean(recall)),
            f"distinct_appearances@{k}": float(np.mean(distinct)),
        }
    return out


def strips(index: PersonIndex, out_png: Path, rows: int = 10, frames: int = 8) -> None:
    """The longest sightings of the index's first video, one row each: ``frames`` thumbnails
    spread over the sighting (to check by eye whether a track stays on one person)."""
    import cv2

    from personsearch.data.images import decode_image

    source = index.store.list_sources()[1][0]
    _, linked = index.store.video_box_labels(source.id)
    sizes = Counter(linked[linked >= 0].tolist())
    lines = []
    for sighting, _count in sizes.most_common(rows):
        members = index.store.sighting_boxes(sighting)
        picks = [members[round(j)] for j in np.linspace(0, len(members) - 1, frames)]
        lines.append(
            np.hstack(
                [cv2.resize(decode_image(index.store.thumbnail(b), "thumbnail"), (48, 96)) for b in picks]
            )
        )
    cv2.imwrite(str(out_png), cv2.cvtColor(np.vstack(lines), cv2.COLOR_RGB2BGR))


def index_videos(engine: PersonSearch, videos: list[Path], index_dir: Path, **options: Any) -> dict[str, Any]:
    shutil.rmtree(index_dir, ignore_errors=True)
    summary = engine.index(videos, index_dir, progress=False, **options)
    return {
        "seconds": summary.seconds,
        "tracking_seconds": summary.tracking_seconds,
        "frames": summary.frames_processed,
        "people": summary.people_added,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "sightings")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cameras", type=int, default=3)
    parser.add_argument("--people", type=int, default=6)
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument(
        "--vtest", type=Path, default=None, help="vtest.avi (default: Debian's opencv-doc copy, if installed)"
    )
    parser.add_argument("--vtest-stride", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "sightings.json")
    parser.add_argument(
        "--strips",
        type=Path,
        default=ROOT / "docs" / "real-footage-sightings.png",
        help="the longest vtest sightings, 8 frames each",
    )
    args = parser.parse_args()

    engine = PersonSearch.load()
    results: dict[str, Any] = {
        "commit": commit(),
        "machine": machine(),
        "model": engine.bundle.model_id,
        "engine": str(engine.bundle.engine_choice),
    }
    shutil.rmtree(args.work / "walks", ignore_errors=True)
    videos = make_walks(
        args.work / "walks", seed=args.seed, cameras=args.cameras, people=args.people, frames=args.frames
    )
    results["synthetic"] = {
        "seed": args.seed,
        "cameras": args.cameras,
        "people": args.people,
        "frames_per_video": args.frames,
    }
    # every frame, as the tracker was tuned
    results["synthetic"]["indexing"] = index_videos(engine, videos, args.work / "walks-index", stride=1)
    with PersonIndex.open(args.work / "walks-index") as index:
        labels = {}
        quality = {}
        for video in videos:
            truth = json.loads(video.with_suffix(".json").read_text())
            labels[video.parent.name] = label_boxes(index, video, truth)
            quality[video.parent.name] = tracking_quality(labels[video.parent.name], truth)
        results["synthetic"]["tracking"] = quality
        results["synthetic"]["search"] = search_evidence(index, labels, videos[0].parent.name)

    vtest = args.vtest or next((Path(p) for p in VTEST_PLACES if Path(p).is_file()), None)
    if vtest is not None and vtest.is_file():
        detector = "ssdlite" if os.environ.get("PERSONSEARCH_NO_SSDLITE") is None else "bundle"
        try:
            real = PersonSearch.load(detector=detector)
        except (FileNotFoundError, OSError, ValueError):
            detector, real = "bundle", engine
        run: dict[str, Any] | None  # None for a missing vtest in the summary loop below
        run = index_videos(real, [vtest], args.work / "vtest-index", stride=args.vtest_stride)
        with PersonIndex.open(args.work / "vtest-index") as index:
            run["sightings"] = index.store.summary()["sightings"]
            strips(index, args.strips)
        results["vtest"] = {"path": str(vtest), "detector": detector, "stride": args.vtest_stride, **run}

    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_results(args.out, results)
    print(
        f"\nmachine: {results['machine']['cpu']}, {results['machine']['cpu_capability']}; "
        f"model {results['model']}"
    )
    print("\ntracking (synthetic walks, ground truth)")
    print(
        f"{'camera':8s} {'appearances':>11s} {'sightings':>9s} {'purity':>7s} {'coverage':>8s} "
        f"{'fragments':>9s} {'in one':>7s}"
    )
    for cam, q in results["synthetic"]["tracking"].items():
        print(
            f"{cam:8s} {q['appearances']:11d} {q['sightings_with_a_person']:9d} "
            f"{q['purity']:7.3f} {q['coverage']:8.3f} {q['fragments_per_appearance'] or 0:9.2f} "
            f"{q['appearances_in_one_sighting']:7.2f}"
        )
    print("\ncross-camera search from every sighting of the first camera")
    for mode, s in results["synthetic"]["search"].items():
        print(
            f"{mode:32s} queries {s['queries']:3d}  top-1 {s['top1']:.3f}  "
            f"appearance recall@10 {s['appearance_recall@10']:.3f}  "
            f"distinct appearances in top 10 {s['distinct_appearances@10']:.1f}"
        )
    print("\ncost of tracking")
    for name, run in (("synthetic", results["synthetic"]["indexing"]), ("vtest", results.get("vtest"))):
        if run:
            print(
                f"{name:10s} {run['frames']:5d} frames {run['people']:5d} boxes  indexing "
                f"{run['seconds']:7.1f} s  tracking {run['tracking_seconds']:.3f} s "
                f"({100 * run['tracking_seconds'] / run['seconds']:.2f} %)"
            )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
