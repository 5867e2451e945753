"""Learning a camera from its own unlabelled footage: the re-id network from the people tracked
through it (``adapt``), the detector from the boxes two off-the-shelf detectors agree on
(``adapt-detector``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from personsearch.interfaces.cli import (
    ConfigFile,
    DetectorOption,
    SetPairs,
    _configure_logging,
    _fail,
    command,
    console,
)


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
    learner: Annotated[
        str | None,
        typer.Option(
            help=(
                "association: tracklets are identities, associated across cameras between rounds; "
                "cluster_contrast: tracklets clustered into identities every round, trained with a "
                "memory of class and per-camera proxies (better from --from-imagenet)."
            ),
            show_default="association",
        ),
    ] = None,
    stride: Annotated[
        int | None,
        typer.Option(min=1, help="Indexing PATHS: every N-th frame (1: every frame) instead of --fps."),
    ] = None,
    fps: Annotated[
        float | None,
        typer.Option(help="Indexing PATHS: about this many frames per second.", show_default="5"),
    ] = None,
    detector: DetectorOption = "bundle",
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
    from personsearch.training.adapt import AdaptConfig, adapt, parse_budget, rounds_taken, time_taken
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
        learner=learner,
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
        f"({', '.join(result['cameras'])}); rounds {rounds_taken(result)}; {time_taken(result)}; wrote {out}"
    )
    console.print(f"give the index the new features, no detection pass: {reembed_hint(index, out, detector)}")


def reembed_hint(index: Path, model: Path, detector: str) -> str:
    """The ``reembed`` command that gives ``index`` the adapted ``model``'s features, into a new
    index beside it: ``INDEX-adapted``, or ``INDEX-reembedded`` where that is the model's own folder."""
    new_index = Path(f"{index}-adapted")
    if new_index.resolve() == model.resolve():
        new_index = Path(f"{index}-reembedded")
    with_detector = f" --detector {detector}" if detector != "bundle" else ""
    return f"personsearch reembed --index {index} --model {model} --out {new_index}{with_detector}"


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
