"""How long tracking takes on long videos, against the indexing it follows.

    python benchmarks/tracking_speed.py --video vtest.avi   # a real stream: 10 min and 1 h at 2 frames/s
    python benchmarks/tracking_speed.py                     # a simulated one

benchmarks/sightings.py times tracking on short real videos; this script checks that it stays
cheap when a video is long and busy.

With ``--video``, the stream is real: the video is indexed here (2 frames/s, SSDLite, the shipped
re-id; timed, which gives the indexing rate the tracking is set against), and its stored boxes
and features are repeated end to end, each repeat shifted in time, until the stream is as long
as asked. The people, their density and their features are the video's; only their number of
comings and goings is multiplied. Without it the stream is simulated (people arriving every
4 s on average and staying 20-60 s, walking across, each with a 768-d re-id feature around their
own prototype, noise 0.5 per dimension) and the indexing rate is ``--index-fps``.
Writes ``benchmarks/results/tracking_speed.json``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from run_info import ROOT, commit, machine, write_results

from personsearch.index.tracking import track


def simulated_stream(
    minutes: float, fps: float, seed: int = 0, dim: int = 768
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Frames, times, boxes and features of a busy camera's detections, and the number of people."""
    rng = np.random.default_rng(seed)
    rows: list[tuple[int, float, tuple[float, ...], int]] = []
    protos: list[np.ndarray] = []
    active: list[list[float]] = []  # [person, x, y, dx, last frame]
    for frame in range(int(minutes * 60 * fps)):
        if rng.random() < 1 / (4 * fps):
            protos.append(rng.standard_normal(dim))
            active.append(
                [
                    len(protos) - 1,
                    rng.uniform(0, 1800),
                    rng.uniform(100, 900),
                    rng.uniform(-30, 30),
                    frame + rng.uniform(20, 60) * fps,
                ]
            )
        active = [a for a in active if a[4] > frame]
        for a in active:
            a[1] += a[3]
            rows.append((frame, frame / fps, (a[1], a[2], a[1] + 40, a[2] + 100), int(a[0])))
    features = np.stack([protos[r[3]] + 0.5 * rng.standard_normal(dim) for r in rows]).astype(np.float32)
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    return (
        np.array([r[0] for r in rows]),
        np.array([r[1] for r in rows]),
        np.array([r[2] for r in rows]),
        features,
        len(protos),
    )


def real_stream(
    video: Path, work: Path, fps: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float, int]:
    """Frames, times, boxes and features ``video``'s indexing stored, the indexing's seconds
    and the number of frames it indexed."""
    from personsearch.index.store import IndexStore
    from personsearch.interfaces.api import PersonSearch

    engine = PersonSearch.load(detector="ssdlite")
    summary = engine.index([video], work / "index", fps=fps, progress=False)
    store = IndexStore.open(work / "index")
    try:
        ((source_id, _, _),) = store.complete_sources()
        ids, frames, times, boxes = store.video_boxes(source_id)
        features = np.asarray(store.vectors()[ids], dtype=np.float32)
    finally:
        store.close()
    # the indexing's own time, without tracking (what this benchmark times separately)
    return (
        frames,
        times,
        boxes,
        features,
        summary.seconds - summary.tracking_seconds,
        summary.frames_processed,
    )


def repeated(
    stream: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], minutes: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """``stream`` repeated end to end (frames and times shifted) to cover ``minutes``; and how
    many repeats that took."""
    frames, times, boxes, features = stream
    span_frames, span_s = int(frames.max()) + 1, float(np.nanmax(times)) + 1.0
    repeats = max(1, int(np.ceil(minutes * 60 / span_s)))
    return (
        np.concatenate([frames + k * span_frames for k in range(repeats)]),
        np.concatenate([times + k * span_s for k in range(repeats)]),
        np.tile(boxes, (repeats, 1)),
        np.tile(features, (repeats, 1)),
        repeats,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, nargs="+", default=[10, 60])
    parser.add_argument("--fps", type=float, default=2.0, help="sampled frames per second of the stream")
    parser.add_argument(
        "--index-fps",
        type=float,
        default=5.0,
        help="frames per second indexing processes (to compare against)",
    )
    parser.add_argument("--video", type=Path, help="a real video: its indexed detections are the stream")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "tracking_speed.json")
    args = parser.parse_args()
    header: dict[str, object] = {"stream": "simulated"}
    real = None
    index_fps = args.index_fps
    if args.video is not None:
        with tempfile.TemporaryDirectory() as work:
            *real, indexing_s, indexed_frames = real_stream(args.video, Path(work), args.fps)
        index_fps = indexed_frames / indexing_s
        header = {
            "stream": "real",
            "video": args.video.name,
            "video_detections": len(real[0]),
            "video_frames_indexed": indexed_frames,
            "video_indexing_s": indexing_s,
            "detector": "ssdlite",
        }
    rows = []
    for minutes in args.minutes:
        if real is not None:
            frames, times, boxes, features, repeats = repeated((real[0], real[1], real[2], real[3]), minutes)
            people: dict[str, int] = {"repeats": repeats}
        else:
            frames, times, boxes, features, count = simulated_stream(minutes, args.fps)
            people = {"people": count}
        started = time.perf_counter()
        labels = track(frames, times, boxes, features)
        seconds = time.perf_counter() - started
        indexing = len(np.unique(frames)) / index_fps
        rows.append(
            {
                "minutes": minutes,
                "detections": len(frames),
                **people,
                "tracks": int(labels.max()) + 1,
                "tracking_s": seconds,
                "indexing_s_at_index_fps": indexing,
                "share": seconds / indexing,
            }
        )
    out = args.out
    write_results(
        out,
        {
            "commit": commit(),
            "machine": machine(),
            **header,
            "fps": args.fps,
            "index_fps": index_fps,
            "runs": rows,
        },
    )
    print(
        f"{'footage':>8s} {'detections':>10s} {'people':>6s} {'tracks':>6s} {'tracking s':>10s} "
        f"{'indexing s':>10s} {'share':>7s}"
    )
    for r in rows:
        print(
            f"{r['minutes']:6.0f} m {r['detections']:10d} {r.get('people', -1):6d} {r['tracks']:6d} "
            f"{r['tracking_s']:10.1f} {r['indexing_s_at_index_fps']:10.0f} {100 * r['share']:6.2f} %"
        )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
