"""Which of the package's modules one CLI command goes through: the count docs/architecture.md
gives for a search ("One query, end to end").

    python benchmarks/search_path.py search --index IDX --query scene.jpg --box 10,10,60,150 --top-k 3
    python benchmarks/search_path.py search --index IDX --query person.png --crop --json -
    python benchmarks/search_path.py --record box search ...   # also into results/search_path.json

``--record LABEL`` (first) keeps the count under LABEL in ``benchmarks/results/search_path.json``,
beside the other labels' (docs/architecture.md's table reads it).

    python benchmarks/search_path.py --cut-person demo-output/data person.png

writes the crop query of the table's runs: the tallest query person of the demo's benchmark, cut
from its scene by the ground-truth box.

The arguments are the ``personsearch`` command's own. The command runs in this process under a
profiler (set ``PERSONSEARCH_NO_MALLOC_TUNING=1``: the CLI would otherwise re-run itself with
glibc's malloc tuned, out of the profiler's sight), then stderr gets the number of package modules
imported and the list of those whose functions *ran*: called outside import time (not beneath any
module body), with the first function called in each. What ran is the path a reader follows to
understand the command; importing a module only to reach a name in it does not count.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from run_info import ROOT as REPOSITORY
from run_info import commit, machine, write_results

import personsearch

ROOT = str(Path(personsearch.__file__).parent)
CO_OPTIMIZED = 0x1
"""Set on a function's code object, never on a module or class body's."""


def under_import(frame: FrameType) -> bool:
    """Whether ``frame`` runs beneath a module body (an import), this script's own aside."""
    caller = frame.f_back
    while caller is not None:
        if caller.f_code.co_name == "<module>" and caller.f_code.co_filename != __file__:
            return True
        caller = caller.f_back
    return False


RESULTS = REPOSITORY / "benchmarks" / "results" / "search_path.json"


def record(label: str, arguments: list[str], imported: int, ran: list[str]) -> None:
    """Keep this run under ``label`` in ``RESULTS``, the other labels' runs as they were."""
    import json

    runs = json.loads(RESULTS.read_text())["runs"] if RESULTS.exists() else {}
    runs[label] = {
        "command": "python benchmarks/search_path.py " + " ".join(arguments),
        "imported": imported,
        "ran": ran,
    }
    write_results(
        RESULTS, {"benchmark": "search_path", "commit": commit(), "machine": machine(), "runs": runs}
    )


def cut_person(dataset: str, out: str) -> None:
    """Write the tallest query person of the benchmark at ``dataset``, cut by its box, to ``out``."""
    import cv2

    from personsearch.data import load_dataset
    from personsearch.data.images import crop_box, read_image

    query = max(load_dataset(dataset).queries, key=lambda q: q.box[3] - q.box[1])
    cv2.imwrite(out, cv2.cvtColor(crop_box(read_image(query.path), query.box), cv2.COLOR_RGB2BGR))
    print(f"wrote {out}: {query.name} in {query.path.name}, box {query.box.tolist()}", file=sys.stderr)


def main() -> None:
    if sys.argv[1:2] == ["--cut-person"]:
        cut_person(sys.argv[2], sys.argv[3])
        return
    ran: dict[str, str] = {}
    label = None
    if sys.argv[1:2] == ["--record"]:
        label = sys.argv[2]
        del sys.argv[1:3]
    arguments = sys.argv[1:]

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        code = frame.f_code
        if (
            event == "call"
            and code.co_filename.startswith(ROOT)
            and code.co_flags & CO_OPTIMIZED
            and code.co_filename not in ran
            and not under_import(frame)
        ):
            ran[code.co_filename] = code.co_name

    sys.setprofile(profile)
    threading.setprofile(profile)
    from personsearch.interfaces.cli import main as cli_main

    sys.argv = ["personsearch", *sys.argv[1:]]
    try:
        cli_main()
    except SystemExit:
        pass
    finally:
        sys.setprofile(None)
        threading.setprofile(None)  # type: ignore[arg-type]  # typeshed omits None, which clears it
        imported = [
            module.__file__
            for module in list(sys.modules.values())
            if getattr(module, "__file__", None) and str(module.__file__).startswith(ROOT)
        ]
        print(f"{len(imported)} imported; {len(ran)} ran:", file=sys.stderr)
        for path, function in sorted(ran.items()):
            print(f"   {os.path.relpath(path, ROOT)} {function}", file=sys.stderr)
        if label is not None:
            record(label, arguments, len(imported), sorted(os.path.relpath(p, ROOT) for p in ran))


if __name__ == "__main__":
    main()
