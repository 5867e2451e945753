"""Which of the package's modules one CLI command goes through: the count docs/architecture.md
gives for a search ("One query, end to end").

    python benchmarks/search_path.py search --index IDX --query scene.jpg --box 10,10,60,150 --top-k 3
    python benchmarks/search_path.py search --index IDX --query person.png --crop --json -

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


def main() -> None:
    ran: dict[str, str] = {}

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


if __name__ == "__main__":
    main()
