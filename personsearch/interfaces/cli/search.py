"""``personsearch search``: one query against an index, printed as a table, written on request as
JSON, an HTML report or a contact sheet. At import only typer and the package's shared helpers:
the model and the index load inside the command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from personsearch.interfaces.cli import (
    EngineOption,
    IndexDetectorOption,
    ModelOption,
    _configure_logging,
    command,
    console,
)

if TYPE_CHECKING:
    from rich.table import Table

    from personsearch.index import Hit


def _parse_box(box: str | None) -> tuple[float, ...] | None:
    if box is None:
        return None
    try:
        values = tuple(float(v) for v in box.split(","))
    except ValueError:
        values = ()
    if len(values) != 4:
        raise typer.BadParameter(f"--box takes x1,y1,x2,y2 pixels, got {box!r}")
    return values


@command("search")
def search_cmd(
    index: Annotated[Path, typer.Option(help="Index directory.")],
    query: Annotated[
        Path | None,
        typer.Option(help="Query image: a person crop, a scene (with --box) or a video (with --frame)."),
    ] = None,
    sighting: Annotated[
        int | None,
        typer.Option(
            help=(
                "Query with a sighting of the index instead (every frame of a person tracked in a video; "
                "ids in --json output)."
            )
        ),
    ] = None,
    per_frame: Annotated[
        bool,
        typer.Option(
            help=(
                "One result per matching frame, instead of one per sighting "
                "(a person tracked through a video)."
            )
        ),
    ] = False,
    box: Annotated[str | None, typer.Option(help="x1,y1,x2,y2 of the person in the scene / frame.")] = None,
    frame: Annotated[int | None, typer.Option(help="Frame number when --query is a video.")] = None,
    crop: Annotated[
        bool,
        typer.Option(
            help=(
                "--query is a crop showing just the person. Without it and without --box, a person-shaped "
                "image that shows no one else is taken whole (with a note), and in any other image the "
                "one person detected is used."
            )
        ),
    ] = False,
    model: ModelOption = "default",
    top_k: Annotated[int, typer.Option(help="Number of results.")] = 10,
    source: Annotated[
        str | None, typer.Option(help="Only sources whose path contains this text (or matches this glob).")
    ] = None,
    camera: Annotated[list[str] | None, typer.Option(help="Only these cameras (repeatable).")] = None,
    time_from: Annotated[float | None, typer.Option(help="Videos: from this many seconds.")] = None,
    time_to: Annotated[float | None, typer.Option(help="Videos: up to this many seconds.")] = None,
    approximate: Annotated[
        bool | None, typer.Option(help="Approximate (IVF) or exact search; default: the index's setting.")
    ] = None,
    nprobe: Annotated[
        int | None,
        typer.Option(
            min=1,
            help=(
                "Approximate search: IVF lists to probe (default: about 8 % of them, at least 64; "
                "more is slower and closer to exact)."
            ),
        ),
    ] = None,
    rerank: Annotated[
        bool,
        typer.Option(
            help=(
                "Rank the best boxes again by how much their nearest neighbours agree with the "
                "query's (k-reciprocal re-ranking): for footage, where each person is many boxes; "
                "scores are then re-ranked similarities (docs/real-footage.md)."
            )
        ),
    ] = False,
    json_out: Annotated[
        Path | None,
        typer.Option("--json", help="Write results as JSON (docs/search-json.md); '-' prints it."),
    ] = None,
    html: Annotated[Path | None, typer.Option(help="Write an HTML report.")] = None,
    sheet: Annotated[Path | None, typer.Option(help="Write a contact-sheet PNG.")] = None,
    detector: IndexDetectorOption = "bundle",
    device: Annotated[str, typer.Option(help="cpu | cuda")] = "cpu",
    engine_name: EngineOption = None,
) -> None:
    """Find the people in an index most like a query person."""
    from personsearch.interfaces.api import PersonSearch

    _configure_logging()
    if (query is None) == (sighting is None):
        raise typer.BadParameter(
            "give exactly one query: --query IMAGE_OR_VIDEO, or --sighting ID (a person already in the index)"
        )
    parsed_box = _parse_box(box)
    time_range = (time_from, time_to) if time_from is not None or time_to is not None else None
    engine = PersonSearch.load(model, device=device, detector=detector, engine=engine_name)
    filters: dict[str, Any] = {
        "source": source,
        "camera": camera or None,
        "time_range": time_range,
        "approximate": approximate,
        "nprobe": nprobe,
        "rerank": rerank,
    }
    if sighting is not None:
        result = engine.search_sighting(index, sighting, top_k=top_k, per_frame=per_frame, **filters)
    else:
        assert query is not None
        result = engine.search(
            index, query, box=parsed_box, frame=frame, crop=crop, top_k=top_k, per_frame=per_frame, **filters
        )
    if json_out is not None and str(json_out) == "-":
        print(json.dumps(result.to_json(), indent=2))  # the note is in it: query.note
        return
    if result.query.note:
        console.print(f"note: {result.query.note}", highlight=False)
    one_source, table = _hits_table(result.hits)
    if one_source is not None:
        console.print(f"every hit in {one_source}", highlight=False)
    console.print(table)
    if json_out is not None:
        console.print(f"wrote {result.write_json(json_out)}")
    if html is not None:
        console.print(f"wrote {result.write_html(html)}")
    if sheet is not None:
        console.print(f"wrote {result.write_contact_sheet(sheet)}")


def _hits_table(hits: list[Hit]) -> tuple[str | None, Table]:
    """The ranked hits as a table, and the one source they all come from (one video, say), which
    then heads the table instead of filling a column. Video columns (frame, time, sighting) only
    where a hit has them; the short columns never wrap, and long cells fold onto more lines rather
    than end in "...": a source path is what a user opens next, and piped output is 80 columns."""
    from rich.table import Column, Table

    rows = [
        {
            "rank": str(hit.rank),
            "score": f"{hit.score:.3f}",
            "source": hit.source,
            "frame": "" if hit.frame is None else str(hit.frame),
            "time (s)": "" if hit.time is None else f"{hit.time:.2f}",
            "seen (s)": ""
            if hit.sighting is None or hit.sighting.start_time is None or hit.sighting.end_time is None
            else f"{hit.sighting.start_time:.1f}-{hit.sighting.end_time:.1f}, "
            + (f"{hit.sighting.boxes} frames" if hit.sighting.boxes != 1 else "1 frame"),
            "camera": hit.camera,
            "box": ",".join(f"{v:.0f}" for v in hit.box),
        }
        for hit in hits
    ]
    sources = {row["source"] for row in rows}
    one_source = sources.pop() if len(sources) == 1 else None
    columns = ("rank", "score", "source", "frame", "time (s)", "seen (s)", "camera", "box")
    video = ("frame", "time (s)", "seen (s)")
    names = [
        n
        for n in columns
        if not (n in video and not any(row[n] for row in rows)) and not (n == "source" and one_source)
    ]
    short = ("rank", "score", "frame", "time (s)", "box")
    table = Table(*(Column(n, no_wrap=n in short, overflow="fold") for n in names))
    for row in rows:
        table.add_row(*(row[n] for n in names))
    return one_source, table
