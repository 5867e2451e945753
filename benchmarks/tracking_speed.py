"""How long tracking takes on long videos, against the indexing it follows.

    python benchmarks/tracking_speed.py                  # 10 min and 1 h of footage at 2 frames/s

benchmarks/sightings.py times tracking on short real and synthetic videos; this script checks
that it stays cheap when a video is long and busy. It simulates a camera's stream of stored
detections (people arriving every 4 s on average and staying 20-60 s, walking across, each with
a 768-d re-id feature around their own prototype, noise 0.5 per dimension), times ``track`` on
it, and sets that against the time indexing those frames takes at a measured rate
(``--index-fps``, default 5.0 frames/s: vtest.avi with SSDLite and the shipped re-id on 2 cores,
398 frames in 77 s, benchmarks/results/sightings.json; busier frames index slower, which only
shrinks the share). Writes ``benchmarks/results/tracking_speed.json``.
"""

from __future__ import annotations

import argparse
import time

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
    args = parser.parse_args()
    rows = []
    for minutes in args.minutes:
        frames, times, boxes, features, people = simulated_stream(minutes, args.fps)
        started = time.perf_counter()
        labels = track(frames, times, boxes, features)
        seconds = time.perf_counter() - started
        indexing = len(np.unique(frames)) / args.index_fps
        rows.append(
            {
                "minutes": minutes,
                "detections": len(frames),
                "people": people,
                "tracks": int(labels.max()) + 1,
                "tracking_s": seconds,
                "indexing_s_at_index_fps": indexing,
                "share": seconds / indexing,
            }
        )
    out = ROOT / "benchmarks" / "results" / "tracking_speed.json"
    write_results(
        out,
        {
            "commit": commit(),
            "machine": machine(),
            "fps": args.fps,
            "index_fps": args.index_fps,
            "runs": rows,
        },
    )
    print(
        f"{'footage':>8s} {'detections':>10s} {'people':>6s} {'tracks':>6s} {'tracking s':>10s} "
        f"{'indexing s':>10s} {'share':>7s}"
    )
    for r in rows:
        print(
            f"{r['minutes']:6.0f} m {r['detections']:10d} {r['people']:6d} {r['tracks']:6d} "
            f"{r['tracking_s']:10.1f} {r['indexing_s_at_index_fps']:10.0f} {100 * r['share']:6.2f} %"
        )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
