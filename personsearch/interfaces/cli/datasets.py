"""The data a model learns from and is scored on: ``make-synthetic`` and ``render-people`` write
it, ``dataset-info`` describes it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from personsearch.interfaces.cli import _write_json, command, console


@command("make-synthetic")
def make_synthetic_cmd(
    out: Annotated[Path, typer.Argument(help="Directory to write the benchmark into.")],
    preset: Annotated[str, typer.Option(help="tiny | small | demo | standard")] = "small",
    seed: Annotated[int, typer.Option(help="Random seed; the same seed writes the same benchmark.")] = 0,
    layout: Annotated[str, typer.Option(help="On-disk layout: cuhk (CUHK-SYSU) or prw (PRW).")] = "cuhk",
    people: Annotated[
        str,
        typer.Option(
            help=(
                "Who walks in the scenes: drawn (2D figures) or 3d (rendered people; needs "
                + escape("pip install 'personsearch[people3d]').")
            )
        ),
    ] = "drawn",
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            help=(
                "Processes drawing the images (the same bytes whatever the count); default: "
                "this machine's CPUs, at most 8."
            ),
        ),
    ] = None,
    overwrite: Annotated[
        bool,
        typer.Option(help="Replace a synthetic benchmark written to OUT before (it holds synthetic.json)."),
    ] = False,
) -> None:
    """Write the synthetic multi-scale person search benchmark in an official layout, with drawn
    or rendered 3D people."""
    from personsearch.data.synthetic import make_synthetic
    from personsearch.data.synthetic.generate import default_workers

    dataset = make_synthetic(
        out,
        preset=preset,
        seed=seed,
        layout=layout,
        people=people,
        workers=workers or default_workers(),
        overwrite=overwrite,
    )
    sheet = f"; contact sheet {out / 'contact_sheet.png'}" if (out / "contact_sheet.png").is_file() else ""
    console.print(
        f"wrote {out} ({layout} layout, {people} people): {len(dataset.train)} train images, "
        f"{len(dataset.gallery)} gallery images, {len(dataset.queries)} queries{sheet}"
    )


@command("render-people")
def render_people_cmd(
    out: Annotated[Path, typer.Argument(help="Directory to write the crops into (Market-1501 layout).")],
    identities: Annotated[int, typer.Option(min=1, help="Training identities.")] = 1500,
    test_identities: Annotated[
        int, typer.Option(min=0, help="Held-out identities (query/ and bounding_box_test/).")
    ] = 100,
    images: Annotated[int, typer.Option(min=1, help="Images per identity.")] = 16,
    cameras: Annotated[int, typer.Option(min=2, help="Virtual cameras (each identity is seen by 2-4).")] = 8,
    seed: Annotated[int, typer.Option(help="The same seed writes the same images.")] = 0,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Rendering processes; default: this machine's CPUs, at most 8.")
    ] = None,
    photos: Annotated[
        Path | None,
        typer.Option(help="A folder of photographs for prints and weave on clothes and for backgrounds."),
    ] = None,
    crowd: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of images with someone else passing by the person.")
    ] = 0.0,
) -> None:
    """Render 3D people (Anny bodies, dressed, walking, lit, over scenes) as a re-id training set;
    resumes a killed run. Needs the people3d extra: pip install 'personsearch[people3d]'."""
    from personsearch.data.people3d.dataset import RenderSpec, render_dataset
    from personsearch.data.synthetic.generate import default_workers

    spec = RenderSpec(
        identities=identities,
        test_identities=test_identities,
        images_per_identity=images,
        cameras=cameras,
        seed=seed,
        photos=str(photos) if photos else "",
        crowd=crowd,
    )
    summary = render_dataset(out, spec, workers=workers or default_workers())
    console.print(
        f"wrote {out}: {summary['images_rendered_now']} images now ({summary['images_per_s_now']}/s); "
        f"train with `personsearch train-reid --dataset {out}`"
    )


@command("dataset-info")
def dataset_info_cmd(
    root: Annotated[Path, typer.Argument(help="Dataset root (CUHK-SYSU or PRW layout).")],
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the statistics as JSON.")
    ] = None,
) -> None:
    """Print images / boxes / identities / queries per split and the person-height distribution."""
    from personsearch.data import load_dataset
    from personsearch.data.stats import dataset_statistics, format_statistics

    dataset = load_dataset(root)
    stats = dataset_statistics(dataset)
    console.print(format_statistics(stats), highlight=False)
    _write_json(stats, json_out)
