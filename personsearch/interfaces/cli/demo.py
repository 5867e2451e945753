"""``personsearch demo``: the whole system in one command (``interfaces/demo.py`` does the work)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from personsearch.interfaces.cli import _configure_logging, command, console


@command("demo")
def demo_cmd(
    out: Annotated[Path, typer.Option(help="Directory for the data, model, index and report.")] = Path(
        "demo-output"
    ),
    preset: Annotated[str, typer.Option(help="Synthetic preset: tiny | small | demo | standard.")] = "demo",
    seed: Annotated[
        int,
        typer.Option(
            help=(
                "Seed of the benchmark (and of the training with --train); "
                "the shipped model was trained on seed 0."
            )
        ),
    ] = 7,
    train: Annotated[
        bool,
        typer.Option(
            help=(
                "Train a compact detector and re-id network here (minutes) instead of "
                "using the shipped model."
            )
        ),
    ] = False,
    model: Annotated[
        str, typer.Option(help="Model to search with when not training: bundle directory or saved name.")
    ] = "default",
) -> None:
    """The whole system on the embedded synthetic benchmark: data, index, scores by person height,
    search report."""
    from personsearch.interfaces.demo import DemoSettings, run_demo

    _configure_logging()
    run_demo(out, DemoSettings(preset=preset, seed=seed, train=train, model=model), console=console)
