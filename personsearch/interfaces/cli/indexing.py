"""The persistent index: ``index`` detects and embeds people into it, ``reembed`` gives it another
model's features without detecting again, ``index-info`` describes it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from personsearch.interfaces.cli import (
    DetectorOption,
    EngineOption,
    IndexDetectorOption,
    ModelOption,
    _configure_logging,
    _say_engines,
    command,
    console,
)


@command("index")
def index_cmd(
    paths: Annotated[list[Path], typer.Argument(help="Image files, folders (recursive) and video files.")],
    index: Annotated[Path, typer.Option(help="Index directory (created if absent).")],
    model: ModelOption = "default",
    stride: Annotated[
        int | None,
        typer.Option(min=1, help="Videos: index every N-th frame (1: every frame) instead of --fps."),
    ] = None,
    fps: Annotated[
        float | None, typer.Option(help="Videos: index about this many frames per second.", show_default="5")
    ] = None,
    camera: Annotated[
        str | None, typer.Option(help="Camera label for these files (default: folder name).")
    ] = None,
    approximate: Annotated[
        bool, typer.Option(help="Make approximate (IVF) search this index's default.")
    ] = False,
    ray: Annotated[
        bool,
        typer.Option(
            help=(
                escape("Run the models on a Ray cluster (pip install 'personsearch[ray]'): a local one, ")
                + "or --ray-address / $RAY_ADDRESS."
            )
        ),
    ] = False,
    ray_address: Annotated[
        str | None,
        typer.Option(
            help="Address of the Ray cluster to join (implies --ray), e.g. ray://head:10001 or auto."
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="--ray: model copies (actors); default one per CPU of the cluster."),
    ] = None,
    ann_kind: Annotated[
        str,
        typer.Option(
            help=(
                "Approximate index: auto (ivfpq from 1M boxes), ivf (vectors in memory) or ivfpq "
                "(compact PQ codes, exact re-ranking from disk)."
            )
        ),
    ] = "auto",
    batch_size: Annotated[int, typer.Option(help="Images per detector batch.")] = 4,
    detector: DetectorOption = "bundle",
    device: Annotated[str, typer.Option(help="cpu | cuda")] = "cpu",
    engine_name: EngineOption = None,
) -> None:
    """Detect and embed every person in images and videos into a persistent index (incremental, resumable)."""
    from personsearch.index import PersonIndex
    from personsearch.index.ann import approximate_kind
    from personsearch.interfaces.api import PersonSearch

    _configure_logging()
    approximate_kind(ann_kind, 0)  # a bad value fails now, not after indexing
    engine = PersonSearch.load(model, device=device, detector=detector, engine=engine_name)
    _say_engines(engine.bundle)
    summary = engine.index(
        paths,
        index,
        stride=stride,
        fps=fps,
        camera=camera,
        batch_size=batch_size,
        ray=ray_address or ray,
        workers=workers,
    )
    if approximate:
        with PersonIndex.open(index, engine.bundle) as person_index:
            person_index.set_approximate(True, ann_kind)
    data = summary.to_json()
    console.print(
        f"{data['sources_indexed']} files indexed, {data['sources_unchanged']} unchanged, "
        f"{data['sources_skipped']} skipped; {data['frames_processed']} images/frames, "
        f"{data['people_added']} people added in {data['seconds']:.1f} s"
    )
    for skipped in data["skipped"]:
        console.print(f"  skipped {skipped['path']}: {skipped['reason']}", highlight=False)


@command("reembed")
def reembed_cmd(
    index: Annotated[Path, typer.Option(help="Index whose people to describe again.")],
    out: Annotated[Path, typer.Option(help="New index to write (or to resume).")],
    model: Annotated[
        str,
        typer.Option(help="Model whose re-id features the new index holds, e.g. the bundle `adapt` wrote."),
    ],
    detector: IndexDetectorOption = "bundle",
    device: Annotated[str, typer.Option(help="cpu | cuda")] = "cpu",
    engine_name: EngineOption = None,
) -> None:
    """Give an index another model's re-id features without detecting anyone again: each stored
    box is described by --model's re-id network and written, with its score and thumbnail, to
    --out (resumable; videos tracked again). The boxes stay those of the index's detector."""
    from personsearch.interfaces.api import PersonSearch

    _configure_logging()
    engine = PersonSearch.load(model, device=device, engine=engine_name, detector=detector)
    _say_engines(engine.bundle)
    data = engine.reembed(index, out).to_json()
    console.print(
        f"{data['sources_indexed']} files described again, {data['sources_unchanged']} already done, "
        f"{data['sources_skipped']} skipped; {data['frames_processed']} images/frames, "
        f"{data['people_added']} people in {data['seconds']:.1f} s; "
        f"search it with --model {model}" + (f" --detector {detector}" if detector != "bundle" else "")
    )
    for skipped in data["skipped"]:
        console.print(f"  skipped {skipped['path']}: {skipped['reason']}", highlight=False)


@command("index-info")
def index_info_cmd(
    index: Annotated[Path | None, typer.Argument(help="Index directory.")] = None,
    index_option: Annotated[
        Path | None, typer.Option("--index", help="The same, as the other commands take it.")
    ] = None,
) -> None:
    """Model, number of people, images and videos of an index."""
    from personsearch.index import PersonIndex

    directory = index or index_option
    if directory is None or (index is not None and index_option is not None):
        raise typer.BadParameter("give the index once: personsearch index-info DIR (or --index DIR)")
    with PersonIndex.open(directory, read_only=True) as person_index:
        console.print_json(data=person_index.stats())
