"""The ``personsearch`` command line. Each command is a thin layer over the Python API; heavy
imports (torch, faiss) happen inside commands so ``--help`` stays instant.

This module holds what the commands share: the typer ``app``, the consoles, the one error path
(``command``), the shared options and helpers, and the entry point ``main``. The commands live in
one module per concept, imported at the bottom so that they register:

    datasets.py    make-synthetic, render-people, dataset-info
    training.py    train-reid, train-detector, distill-int8
    adaptation.py  adapt, adapt-detector: learning a camera from its unlabelled footage
    evaluation.py  score, evaluate
    models.py      fetch-weights, info, models, bench-engines, export
    demo.py        demo
    indexing.py    index, reembed, index-info
    search.py      search
    serve.py       serve
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from personsearch import names

app = typer.Typer(
    name="personsearch",
    help="Find a given person in scene images and videos (detection + multi-scale re-id).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(markup=False, soft_wrap=True)
err_console = Console(stderr=True, markup=False, soft_wrap=True)
"""Without rich's markup: what they print holds paths, file names and install hints such as
``personsearch[ray]``, whose brackets markup would drop (or, as ``[/x]``, fail on); styles are
given as ``Text`` instead. Soft-wrapped: a line too long for the terminal is folded by the
terminal, not broken by rich, so a printed command, path or JSON copies and pipes whole (rich
writes 80 columns when stdout is not a terminal)."""


EXIT_CODES = {
    "bad input": 2,
    "missing file": 3,
    "bad data": 4,
    "index": 5,
}
"""Exit codes of the project's own errors (documented in the README): 2 bad input (a wrong
option value, a bad box, an unknown name, an output folder already taken), 3 a missing or
unreadable file, 4 a dataset, results or image file in the wrong format, 5 the index (damaged,
busy, or built with another model). Typer's own usage errors also exit with 2; 130 is an
interrupt."""


def _exit_code(err: BaseException) -> int:
    from personsearch.data.images import ImageReadError
    from personsearch.data.matfile import DatasetFormatError
    from personsearch.evaluation.results_file import ResultsFileError
    from personsearch.index.store import PersonIndexError

    if isinstance(err, PersonIndexError):
        return EXIT_CODES["index"]
    if isinstance(err, FileExistsError):  # an OSError, but the fix is another --out, not a file
        return EXIT_CODES["bad input"]
    if isinstance(err, FileNotFoundError):
        return EXIT_CODES["missing file"]
    if isinstance(err, DatasetFormatError | ResultsFileError | ImageReadError):
        return EXIT_CODES["bad data"]
    if isinstance(err, OSError):
        return EXIT_CODES["missing file"]
    return EXIT_CODES["bad input"]


def _fail(err: BaseException) -> NoReturn:
    """Print the error as one line (the project's messages name the file and the fix) and exit
    with its code (``EXIT_CODES``)."""
    message = str(err).strip() or type(err).__name__
    err_console.print(Text.assemble(("error:", "bold red"), " ", message), highlight=False)
    raise typer.Exit(code=_exit_code(err))


HANDLED = (ValueError, OSError, KeyError, ImportError, RuntimeError)
"""Errors a command turns into one line and an exit code instead of a traceback (the index's
errors are ValueErrors or RuntimeErrors of their own types: ``PersonIndexError`` below)."""


def _one_error_path(command: Callable[..., Any]) -> Callable[..., Any]:
    """Every command's error handling: the project's errors become ``_fail``; anything else is a
    bug and keeps its traceback."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except Exception as err:
            from personsearch.index.store import PersonIndexError  # imported late: it pulls in faiss

            if isinstance(err, (PersonIndexError, *HANDLED)):
                _fail(err)
            raise

    return run


def command(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``@app.command(name)`` with the one error path. The docstring is the help, shown as written:
    typer reads help texts as rich markup, which would drop ``[people3d]`` from an install hint."""

    def register(function: Callable[..., Any]) -> Callable[..., Any]:
        return app.command(name, help=escape(inspect.getdoc(function) or ""))(_one_error_path(function))

    return register


EngineOption = Annotated[
    str | None,
    typer.Option(
        "--engine",
        help=(
            "Inference engine: auto (default: the fastest that agrees with fp32 on this machine, "
            f"measured once and cached), {names.one_of(names.ENGINES)} (`personsearch models` says "
            "which network each runs), or reid=NAME,detector=NAME. Default from $PERSONSEARCH_ENGINE."
        ),
    ),
]
ModelOption = Annotated[
    str, typer.Option(help="Model bundle directory or saved name (default: the shipped model).")
]
"""``--model`` of the commands that run a trained model (default ``"default"``)."""
DETECTOR_NAMES = (
    f"{names.one_of(names.DETECTORS)} (bundle: the model's own; the others off-the-shelf, for real footage)"
)
DetectorOption = Annotated[str, typer.Option(help=f"Person detector: {DETECTOR_NAMES}.")]
"""``--detector`` of the commands that build an index."""
IndexDetectorOption = Annotated[
    str, typer.Option(help=f"The detector the index was built with: {DETECTOR_NAMES}.")
]
"""``--detector`` of the commands that read an index (it must be the one it was built with)."""


def _say_engines(bundle: Any) -> None:
    """One line on stderr: which engine runs each network, and why."""
    err_console.print(bundle.engine_choice.summary(), highlight=False)


def _write_json(data: object, path: Path | None) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))
    console.print(f"wrote {path}")


ConfigFile = Annotated[
    Path | None,
    typer.Option(help="YAML file of the command's settings (see configs/); flags and --set override it."),
]
SetPairs = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="KEY=VALUE, repeatable: any setting of the config, dotted for sections (optim.lr=0.02).",
    ),
]
"""The two options every training command and job shares: one config shape, read by
``training.config.load_config``."""


def _configure_logging() -> None:
    """Show the index's warnings (skipped files) on the console, and the notice that a model's
    first use on this machine times its inference engines (a pause of 30-60 s otherwise unexplained)."""
    import logging

    from rich.logging import RichHandler

    logging.basicConfig(
        level=logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False)],
    )
    logging.getLogger("personsearch.models.bundle").setLevel(logging.INFO)


MALLOC_TUNING = "glibc.malloc.mmap_threshold=4294967296:glibc.malloc.trim_threshold=17179869184"
"""glibc malloc settings that keep large tensor buffers on the heap instead of mmap/munmap on
every allocation: measured here to double re-id extraction speed (docs/performance.md)."""


def _restart_with_tuned_malloc() -> None:
    """glibc reads its tunables only at start-up, so set them and re-run this same command once.
    ``PERSONSEARCH_NO_MALLOC_TUNING=1`` (or any ``GLIBC_TUNABLES`` of your own) turns this off."""
    if (
        sys.platform != "linux"
        or "GLIBC_TUNABLES" in os.environ
        or os.environ.get("PERSONSEARCH_NO_MALLOC_TUNING")
    ):
        return
    env = dict(os.environ, GLIBC_TUNABLES=MALLOC_TUNING)
    os.execve(sys.executable, [sys.executable, "-m", "personsearch.interfaces.cli", *sys.argv[1:]], env)


def main() -> None:
    """Console-script entry point."""
    _restart_with_tuned_malloc()
    try:
        app(prog_name="personsearch")
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)


# The commands register as their modules are imported (the shared names above are defined by then).
from personsearch.interfaces.cli import (  # noqa: E402, F401
    adaptation,
    datasets,
    demo,
    evaluation,
    indexing,
    models,
    search,
    serve,
    training,
)

COMMAND_ORDER = (
    "make-synthetic",
    "render-people",
    "dataset-info",
    "score",
    "train-reid",
    "train-detector",
    "evaluate",
    "evaluate-reid",
    "fetch-weights",
    "info",
    "models",
    "bench-engines",
    "export",
    "demo",
    "index",
    "reembed",
    "adapt",
    "distill-int8",
    "adapt-detector",
    "index-info",
    "search",
    "serve",
)
"""The order ``personsearch --help`` lists the commands in: typer lists them as registered, and the
modules register theirs grouped by concept. A new command needs its place here."""
app.registered_commands.sort(key=lambda registered: COMMAND_ORDER.index(registered.name))
