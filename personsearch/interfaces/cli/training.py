"""Training on a labelled dataset: the two networks (``train-reid``, ``train-detector``) and the
re-id network's fine-tuning for the int8 engine (``distill-int8``). Settings come from a config
file, flags and ``--set`` pairs, read by ``training.config.load_config``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from personsearch import names
from personsearch.interfaces.cli import (
    ConfigFile,
    ModelOption,
    SetPairs,
    _configure_logging,
    command,
    console,
)

# The options both trainers take (each overrides the config file's field of the same name).
DatasetOption = Annotated[str | None, typer.Option(help="Dataset root (overrides the config).")]
BackboneOption = Annotated[
    str | None, typer.Option(help="A registered backbone (`personsearch models` lists them).")
]
PretrainedOption = Annotated[str | None, typer.Option(help="'true', 'false' or a weights file path.")]
EpochsOption = Annotated[int | None, typer.Option()]
BatchSizeOption = Annotated[int | None, typer.Option()]
SeedOption = Annotated[int | None, typer.Option()]
DeviceOption = Annotated[str | None, typer.Option(help="auto | cpu | cuda")]
FastOption = Annotated[bool | None, typer.Option(help="bf16 autocast + channels_last (CPU), AMP (CUDA).")]


def _overrides(**values: object) -> dict[str, object]:
    return {k: v for k, v in values.items() if v is not None}


@command("train-reid")
def train_reid_cmd(
    out: Annotated[Path, typer.Option(help="Model bundle directory (reid.* is written there).")],
    config: ConfigFile = None,
    dataset: DatasetOption = None,
    variant: Annotated[
        str | None,
        typer.Option(
            help=f"Re-id variant: {names.one_of(names.VARIANTS)} (`personsearch models` says what each is)."
        ),
    ] = None,
    backbone: BackboneOption = None,
    pretrained: PretrainedOption = None,
    epochs: EpochsOption = None,
    batch_size: BatchSizeOption = None,
    seed: SeedOption = None,
    device: DeviceOption = None,
    fast: FastOption = None,
    set_: SetPairs = None,
) -> None:
    """Train the feature-pyramid re-id network; resumes from OUT/train-reid/last.pt."""
    from personsearch.training.config import ReIDTrainConfig
    from personsearch.training.reid import train_reid

    network = _overrides(variant=variant, backbone=backbone, pretrained=_parse_pretrained(pretrained))
    flags = dict(dataset=dataset, epochs=epochs, batch_size=batch_size, seed=seed, device=device, fast=fast)
    _train("re-id", ReIDTrainConfig, train_reid, out, config, set_, network, flags)


@command("train-detector")
def train_detector_cmd(
    out: Annotated[Path, typer.Option(help="Model bundle directory (detector.* is written there).")],
    config: ConfigFile = None,
    dataset: DatasetOption = None,
    backbone: BackboneOption = None,
    pretrained: PretrainedOption = None,
    epochs: EpochsOption = None,
    batch_size: BatchSizeOption = None,
    seed: SeedOption = None,
    device: DeviceOption = None,
    fast: FastOption = None,
    set_: SetPairs = None,
) -> None:
    """Train the Faster R-CNN person detector; resumes from OUT/train-detector/last.pt."""
    from personsearch.training.config import DetectorTrainConfig
    from personsearch.training.detector import train_detector

    network = _overrides(backbone=backbone, pretrained=_parse_pretrained(pretrained))
    flags = dict(dataset=dataset, epochs=epochs, batch_size=batch_size, seed=seed, device=device, fast=fast)
    _train("detector", DetectorTrainConfig, train_detector, out, config, set_, network, flags)


def _train(
    what: str,
    config_cls: type,
    train: Any,
    out: Path,
    config: Path | None,
    sets: list[str] | None,
    network: dict[str, object],
    flags: dict[str, Any],
) -> None:
    """Shared body of the train commands: config file + flags + ``--set`` pairs -> training -> summary."""
    from personsearch.training.config import load_config

    dataset = flags.pop("dataset", None)
    flags = _overrides(model=network or None, data=_overrides(dataset=dataset) or None, **flags)
    summary = train(load_config(config_cls, config, sets or [], **flags), out)
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


@command("distill-int8")
def distill_int8_cmd(
    data: Annotated[
        Path,
        typer.Option(
            help="Dataset whose training split's people to fine-tune on (the model's own training data)."
        ),
    ],
    out: Annotated[Path, typer.Option(help="Bundle directory to write (then: --model OUT).")],
    model: ModelOption = "default",
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
