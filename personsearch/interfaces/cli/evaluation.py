"""Scores on a benchmark's test split with the standard protocols: another system's results
(``score``) or a model run here (``evaluate``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from personsearch.interfaces.cli import (
    EngineOption,
    ModelOption,
    _configure_logging,
    _say_engines,
    _write_json,
    command,
    console,
)

RerankOption = Annotated[
    bool, typer.Option(help="Rank each query's gallery by k-reciprocal re-ranking (as search --rerank).")
]


@command("score")
def score_cmd(
    dataset: Annotated[Path, typer.Option(help="Dataset root.")],
    results: Annotated[Path, typer.Option(help="Results .npz (format: docs/results-format.md).")],
    protocol: Annotated[str | None, typer.Option(help="cuhk | prw; default: the dataset's own.")] = None,
    gallery_size: Annotated[
        int, typer.Option(help="CUHK-SYSU gallery size (50..4000, -1 = whole test set).")
    ] = 100,
    det_thresh: Annotated[float, typer.Option(help="Detections below this score are ignored.")] = 0.5,
    cross_camera: Annotated[bool, typer.Option(help="PRW: only other cameras form the gallery.")] = False,
    cbgm: Annotated[bool, typer.Option(help="Context bipartite graph matching re-scoring.")] = False,
    normalise: Annotated[
        bool, typer.Option(help="L2-normalise features that are not (the protocol assumes unit length).")
    ] = False,
    rerank: RerankOption = False,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the result as JSON.")] = None,
) -> None:
    """Score another system's detections (recall / AP) and search (mAP / top-k) with the standard
    protocols."""
    from personsearch.data import load_dataset
    from personsearch.evaluation.results_file import score_results_file, score_results_file_detection

    data = load_dataset(dataset)
    if protocol is not None and protocol != data.protocol:
        raise ValueError(f"{dataset} is a {data.protocol} dataset, but --protocol {protocol} was given")
    result = score_results_file(
        data,
        results,
        gallery_size=gallery_size,
        det_thresh=det_thresh,
        cross_camera=cross_camera,
        cbgm=cbgm,
        normalise=normalise,
        rerank=rerank,
    )
    detection = score_results_file_detection(data, results, det_thresh=det_thresh)
    console.print(detection.format_table(), highlight=False)
    console.print(result.format_table(), highlight=False)
    _write_json({**result.to_dict(), "detection": detection.to_dict()}, json_out)


@command("evaluate")
def evaluate_cmd(
    dataset: Annotated[Path, typer.Option(help="Dataset root.")],
    model: ModelOption = "default",
    gallery_size: Annotated[int, typer.Option(help="CUHK-SYSU gallery size.")] = 100,
    cross_camera: Annotated[bool, typer.Option(help="PRW: only other cameras form the gallery.")] = False,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the results as JSON.")] = None,
    device: Annotated[str, typer.Option(help="cpu | cuda")] = "cpu",
    engine: EngineOption = None,
    fp32: Annotated[
        bool,
        typer.Option(
            "--fp32",
            help=(
                "Plain PyTorch fp32 (same as --engine torch-fp32): the reference to check "
                "other engines against."
            ),
        ),
    ] = False,
    rerank: RerankOption = False,
) -> None:
    """Run detector -> re-id -> protocol on a benchmark's test split, with and without detections."""
    from personsearch.data import load_dataset
    from personsearch.evaluation.pipeline import evaluate_engine
    from personsearch.interfaces.api import resolve_model
    from personsearch.models.bundle import ModelBundle

    _configure_logging()
    data = load_dataset(dataset)  # first: a wrong path fails before a first use times the engines
    engine_ = ModelBundle(resolve_model(model), device=device, engine="torch-fp32" if fp32 else engine)
    _say_engines(engine_)
    result = evaluate_engine(
        engine_, data, gallery_size=gallery_size, cross_camera=cross_camera, rerank=rerank
    )
    console.print(result.format_table(), highlight=False)
    _write_json(result.to_dict(), json_out)


@command("evaluate-reid")
def evaluate_reid_cmd(
    dataset: Annotated[
        Path,
        typer.Option(
            help="A re-id benchmark in the Market-1501 layout (query/, bounding_box_test/): "
            "Market-1501, DukeMTMC-reID, ..."
        ),
    ],
    model: ModelOption = "default",
    engine: EngineOption = None,
    rerank: RerankOption = False,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the scores as JSON.")] = None,
) -> None:
    """Score the model's re-id network on a re-id benchmark's crops with Market-1501's protocol:
    mAP and CMC top-k, the query person's same-camera images left out, distractors (person id
    0000) kept as wrong answers, junk (-1) ignored."""
    from personsearch.evaluation.reid_crops import evaluate_crop_folder
    from personsearch.interfaces.api import resolve_model
    from personsearch.models.bundle import ModelBundle

    _configure_logging()
    bundle = ModelBundle(resolve_model(model), engine=engine)
    height, width = bundle.reid_config.input_size
    # The crops are read before the first embedding, so a wrong folder fails before a first use
    # times the engines; which engines ran is said after.
    scores = evaluate_crop_folder(bundle.embed_crops, dataset, (height, width), rerank=rerank)
    _say_engines(bundle)
    console.print(
        f"{dataset}: {int(scores['queries'])} queries against {int(scores['gallery'])} gallery crops "
        f"({int(scores['distractors'])} distractors){', re-ranked' if rerank else ''}: "
        f"mAP {scores['mAP']:.1f}, top-1 {scores['top1']:.1f}, top-5 {scores['top5']:.1f}, "
        f"top-10 {scores['top10']:.1f}",
        highlight=False,
    )
    _write_json({"dataset": str(dataset), "model": str(model), "rerank": rerank, **scores}, json_out)
