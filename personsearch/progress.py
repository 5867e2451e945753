"""The progress bar of the project's long jobs (indexing, training, evaluation galleries).

One look for all of them: what, a bar, done of total (in ``unit`` where given), time spent and
the estimate of what is left. On stderr, so that a command's output (``--json -``, a table) stays
clean when piped. Disabled, it draws nothing and costs nothing.
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def job_progress(enabled: bool = True, unit: str = "") -> Progress:
    """A rich progress bar for a job whose tasks count ``unit`` (frames, steps, scenes)."""
    columns: list[ProgressColumn | str] = [
        TextColumn("{task.description}", style="bold", markup=False),  # file names as they are
        BarColumn(),
        MofNCompleteColumn(),
    ]
    if unit:
        columns.append(TextColumn(unit))
    columns += [TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn()]
    return Progress(*columns, console=Console(stderr=True), disable=not enabled, transient=False)
