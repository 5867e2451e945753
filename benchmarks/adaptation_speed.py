"""What learning a camera costs: ``personsearch adapt`` on real footage, timed step by step, and
the time per hour of footage that follows.

    python benchmarks/adaptation_speed.py                 # vtest.avi from Debian's opencv-doc
    python benchmarks/adaptation_speed.py --video my.mp4 --stride 5

The video is indexed first (SSDLite boxes, every ``--stride``-th frame; timed, but indexing is a
cost a user pays anyway), then the shipped re-id network adapts to its tracklets with the default
settings (``AdaptConfig``: tracklets of >= 8 boxes, at most 16 crops each, 2 rounds of 8 epochs,
shortened to fit the default time budget: the footage's own duration).
Under the budget adapting takes at most the footage's duration by construction; what grows with
busier footage (more tracklets, more crops) is the share of the budget the fixed steps take and
the share of the planned training that fits. The hour figures are this footage's rates scaled to
an hour of equally busy footage: a linear extrapolation, printed as such. Writes
``benchmarks/results/adaptation_speed.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

from run_info import ROOT, commit, machine, write_results
from sightings import VTEST_PLACES

WORK = ROOT / "benchmarks" / "work" / "adaptation-speed"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--video", type=Path, default=None, help="default: vtest.avi where opencv-doc puts it"
    )
    parser.add_argument(
        "--stride", type=int, default=2, help="index every n-th frame (vtest.avi is 10 frames/s)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "adaptation_speed.json")
    args = parser.parse_args()
    video = args.video or next((Path(p) for p in VTEST_PLACES if Path(p).is_file()), None)
    if video is None or not video.is_file():
        sys.exit("vtest.avi not found: see docs/real-footage.md for where to get it, or pass --video PATH")

    from personsearch.interfaces.api import SHIPPED_MODEL, PersonSearch
    from personsearch.training.adapt import adapt

    shutil.rmtree(WORK, ignore_errors=True)
    began = time.perf_counter()
    summary = PersonSearch.load(detector="ssdlite").index(
        [video], WORK / "index", stride=args.stride, progress=False
    )
    indexing_s = time.perf_counter() - began
    result = adapt(WORK / "index", SHIPPED_MODEL, WORK / "adapted", progress=False)
    seconds, footage_s = result["seconds"], result["footage_s"]
    crops = result["rounds"][0]["crops"]
    per_hour = 3600.0 / footage_s
    report = {
        "benchmark": "adaptation_speed",
        "commit": commit(),
        "machine": machine(),
        "video": str(video),
        "stride": args.stride,
        "footage_s": footage_s,
        "indexing": {"seconds": indexing_s, "summary": json.loads(json.dumps(asdict(summary), default=str))},
        "tracklets": result["tracklets"],
        "crops": crops,
        "classes_per_round": [r["classes"] for r in result["rounds"]],
        "seconds": seconds,
        "per_hour_of_equally_busy_footage": {
            "adapt_s": seconds["total"] * per_hour,
            "tracklets": result["tracklets"] * per_hour,
            "indexing_s": indexing_s * per_hour,
        },
        "budget_s": result["budget_s"],
        "stopped_by_budget": result["stopped_by_budget"],
        "steps_per_round": [r["train"]["steps"] for r in result["rounds"]],
        "planned_steps_per_round": [r["train"].get("planned_steps") for r in result["rounds"]],
        "training_crops_per_s": sum(r["train"]["steps"] for r in result["rounds"])
        * result["config"]["batch_size"]
        / sum(r["train"]["seconds"] for r in result["rounds"]),
    }
    write_results(args.out, report)
    print(
        f"{video.name}: {footage_s:.1f} s of footage, every {args.stride}th frame indexed with SSDLite "
        f"in {indexing_s:.0f} s"
    )
    print(f"{'step':34s} {'seconds':>8s} {'per hour of footage':>20s}")
    steps = [("find tracklets", seconds["tracklets"]), (f"crop {crops} crops", seconds["crops"])]
    steps += [
        (f"round {k + 1} ({c} classes)", s)
        for k, (c, s) in enumerate(zip(report["classes_per_round"], seconds["rounds"], strict=True))
    ]
    for name, s in [
        *steps,
        ("adaptation in all", seconds["total"]),
        ("indexing (for comparison)", indexing_s),
    ]:
        print(f"{name:34s} {s:8.1f} {s * per_hour / 60:16.0f} min")
    print(
        f"{result['tracklets']} tracklets ({result['tracklets'] * per_hour:.0f} per hour at this density); "
        f"training {report['training_crops_per_s']:.0f} crops/s"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
