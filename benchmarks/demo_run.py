"""What `personsearch demo` prints and how long it takes, as a user meets it: a fresh process with
an empty cache (so the one-off engine measurement is included), the README's own command.

    python benchmarks/demo_run.py                  # the machine's own engine choice, then ONNX Runtime fp32
    python benchmarks/demo_run.py --engines auto   # only the machine's own choice

Each run is ``personsearch demo --out TMP`` in a new process with ``PERSONSEARCH_CACHE`` pointing
at an empty folder; ``--engines`` lists what ``PERSONSEARCH_ENGINE`` is set to per run (``auto``:
unset, the engine chooser decides; ``ort-fp32``: both networks in ONNX Runtime fp32, the reference
every reduced-precision engine is checked against). Records the demo's own summary
(``demo.json``: detection recall/AP, search mAP/top-1 with detections and with ground-truth boxes,
the showcase's right hits, stage times), the wall time of the whole command and the engines it ran.
Writes ``benchmarks/results/demo-<cpu signature>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from run_info import write_per_cpu_results

ENGINE_LINE = "engines: "


def run(engine: str) -> dict[str, Any]:
    cli = shutil.which("personsearch", path=str(Path(sys.executable).parent)) or "personsearch"
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "PERSONSEARCH_CACHE": str(Path(tmp) / "cache")}
        env.pop("PERSONSEARCH_ENGINE", None)
        if engine != "auto":
            env["PERSONSEARCH_ENGINE"] = engine
        began = time.perf_counter()
        done = subprocess.run(
            [cli, "demo", "--out", str(Path(tmp) / "out")],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.perf_counter() - began
        if done.returncode != 0:
            raise SystemExit(
                f"personsearch demo failed ({engine}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            )
        summary = json.loads((Path(tmp) / "out" / "demo.json").read_text())
    engines_line = next(
        (line.strip() for line in done.stdout.splitlines() if line.strip().startswith(ENGINE_LINE)), None
    )
    keep = (
        "detection_recall",
        "detection_ap",
        "search_mAP",
        "search_top1",
        "gt_boxes_mAP",
        "gt_boxes_top1",
        "indexed_people",
        "report_hits_correct",
        "report_hits",
        "first_correct_rank",
        "timings_s",
    )
    return {
        "engine_setting": engine,
        "engines": engines_line,
        "wall_s": round(wall, 1),
        **{k: summary[k] for k in keep},
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--engines",
        default="auto,ort-fp32",
        help="PERSONSEARCH_ENGINE per run, comma-separated (auto: the machine's own choice)",
    )
    args = parser.parse_args()
    runs = []
    for engine in args.engines.split(","):
        runs.append(run(engine))
        print(json.dumps(runs[-1]))
    command = "python benchmarks/demo_run.py" + (
        "" if args.engines == "auto,ort-fp32" else f" --engines {args.engines}"
    )
    path, _ = write_per_cpu_results(
        "demo", {"command": command, "date": time.strftime("%Y-%m-%d"), "runs": runs}
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
