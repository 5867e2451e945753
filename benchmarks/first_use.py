"""How long a model's first use on a machine takes: the one-off engine measurement a user waits
through before their first `index`, `evaluate`, `serve` or demo.

    python benchmarks/first_use.py                          # the shipped model, 2 runs
    python benchmarks/first_use.py --bundle models/mine --runs 3

Each run is a fresh process, as a user's command is: glibc's malloc tuned as the CLI tunes it, an
empty engine cache (a temporary ``PERSONSEARCH_CACHE``), and the model loaded with
``--engine auto``. It times three phases: drawing the synthetic probe material (the re-id probe
crops, the 12 crowded check scenes and the int8 calibration scenes), the engine measurement
itself (``ModelBundle`` with nothing cached: every candidate timed, agreement checked fastest
first until one agrees, the int8 graphs quantised), and loading the model again with the choice
cached (what every later command pays). docs/performance.md's first-use table comes from here.
Writes ``benchmarks/results/first_use-<cpu signature>.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from run_info import ROOT, write_per_cpu_results

from personsearch.interfaces.api import SHIPPED_MODEL
from personsearch.interfaces.cli import MALLOC_TUNING

PHASES = ("probe material", "engine measurement", "load with the choice cached")


def child(bundle: str) -> dict[str, Any]:
    """One first use, in this (fresh) process: seconds per phase and what was chosen."""
    from personsearch.models import engine_choice
    from personsearch.models.bundle import ModelBundle, read_component

    reid_config, _ = read_component(bundle, "reid")
    start = time.perf_counter()
    engine_choice.probe_set(tuple(reid_config.input_size))
    engine_choice.check_scenes()
    engine_choice.calibration_scenes()
    drawn = time.perf_counter()
    first = ModelBundle(bundle, engine="auto")
    measured = time.perf_counter()
    ModelBundle(bundle, engine="auto")
    loaded = time.perf_counter()
    measurements = first.engine_choice.measurements
    return {
        "seconds": dict(zip(PHASES, (drawn - start, measured - drawn, loaded - measured), strict=True)),
        "chosen": {"reid": first.engine_choice.reid, "detector": first.engine_choice.detector},
        "timed": sum(1 for m in measurements if m.per_s),
        "checked": sum(1 for m in measurements if m.per_s and m.checked),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--bundle", default=str(SHIPPED_MODEL), help="model bundle directory (default: the shipped model)"
    )
    parser.add_argument(
        "--runs", type=int, default=2, help="fresh processes, each with an empty engine cache"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.bundle)))
        return

    runs = []
    for number in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="first-use-") as cache:
            env = dict(os.environ, PERSONSEARCH_CACHE=cache, GLIBC_TUNABLES=MALLOC_TUNING)
            start = time.perf_counter()
            done = subprocess.run(
                [sys.executable, __file__, "--child", "--bundle", args.bundle],
                env=env,
                capture_output=True,
                text=True,
                cwd=ROOT,
            )
            wall = time.perf_counter() - start
        if done.returncode != 0:
            sys.exit(f"run {number + 1} failed:\n{done.stderr[-3000:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        result["process_wall_s"] = wall
        runs.append(result)
        print(
            f"run {number + 1}: "
            + ", ".join(f"{k} {v:.1f} s" for k, v in result["seconds"].items())
            + f"; process {wall:.1f} s",
            flush=True,
        )

    medians = {phase: statistics.median(r["seconds"][phase] for r in runs) for phase in PHASES}
    wall = statistics.median(r["process_wall_s"] for r in runs)
    print(
        f"\nfirst use of {args.bundle}, median of {len(runs)} fresh processes "
        "(empty engine cache, tuned malloc):"
    )
    print(f"{'phase':<30} {'seconds':>8}")
    for phase, seconds in medians.items():
        print(f"{phase:<30} {seconds:8.1f}")
    print(f"{'whole process (imports too)':<30} {wall:8.1f}")
    # each run's own: a choice that differs between fresh processes is a timing tie
    for k, run in enumerate(runs, 1):
        print(
            f"run {k} chose: detector {run['chosen']['detector']}, re-id {run['chosen']['reid']}; "
            f"{run['timed']} engines timed, {run['checked']} checked"
        )
    fields = {
        "bundle": args.bundle,
        "child_glibc_tunables": MALLOC_TUNING,
        "runs": runs,
        "median_seconds": medians,
        "median_process_wall_s": wall,
    }
    # named by this process's signature, beside engines.py's
    path, _ = write_per_cpu_results("first_use", fields)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
