"""Rendered 3D people (``personsearch.data.people3d``): how fast they render, and what training
the re-id network on them does.

    python benchmarks/rendered_people.py speed                      # images/s, 1 and 2 processes
    python benchmarks/rendered_people.py render --root data/people3d-3000
    python benchmarks/rendered_people.py train --root data/people3d-1500 --out runs/people3d-finetune
    python benchmarks/rendered_people.py evaluate --root data/people3d-1500 --model runs/people3d-finetune

``speed`` writes ``results/rendered_people_speed-<cpu>.json``; ``evaluate`` writes
``results/rendered_people.json``: Market-1501 protocol scores on the rendered test people (never
trained on) of the shipped default re-id network and of each ``--model``. ``train`` fine-tunes the shipped
re-id network on the rendered training people (resumable: run it again to go on).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_info import RESULTS, ROOT, commit, machine, write_per_cpu_results, write_results

from personsearch.data.people3d.dataset import GENERATOR_VERSION, RenderSpec, render_dataset
from personsearch.data.reid_crops import GALLERY, QUERY, read_split
from personsearch.evaluation.reid_crops import market_scores
from personsearch.models.reid import embed_crops

DEFAULT = ROOT / "personsearch" / "assets" / "default"
WORK = ROOT / "benchmarks" / "work" / "rendered_people"
TRAIN_SPEC = RenderSpec(identities=3000, test_identities=100, images_per_identity=16, cameras=8, seed=0)
"""The rendered set the trainings use (``data/people3d-3000``; renderer version 2, with bags).
``rendered_people.json``'s first runs used 1,500 people of version 1 (``data/people3d-1500``)."""


def dressed(spec: RenderSpec, args: argparse.Namespace) -> RenderSpec:
    """``spec`` with the command line's photographs (``--photos``, none: drawn patterns) and crowd."""
    return replace(spec, photos=str(args.photos) if args.photos else "", crowd=args.crowd)


def speed(args: argparse.Namespace) -> None:
    spec = dressed(replace(TRAIN_SPEC, identities=args.identities, test_identities=0, seed=1), args)
    runs: dict[str, Any] = {}
    for workers in (1, 2):
        with tempfile.TemporaryDirectory() as tmp:
            began = time.perf_counter()
            summary = render_dataset(tmp, spec, workers=workers)
            wall = time.perf_counter() - began
        runs[f"{workers} process{'es' if workers > 1 else ''}"] = {
            "images": summary["images_rendered_now"],
            "wall_s": round(wall, 1),
            "images_per_s": round(summary["images_rendered_now"] / wall, 1),
            "note": "process start, Anny load and GL context included",
        }
        print(workers, runs[f"{workers} process{'es' if workers > 1 else ''}"])
    fields = {
        "command": "python benchmarks/rendered_people.py " + " ".join(sys.argv[1:]),
        "generator_version": GENERATOR_VERSION,
        "spec": spec.__dict__,
        "size": list(spec.size),
        "runs": runs,
    }
    path, _ = write_per_cpu_results("rendered_people_speed", fields, suffix="-photos" if args.photos else "")
    print(f"wrote {path}")


def render(args: argparse.Namespace) -> None:
    began = time.perf_counter()
    spec = dressed(replace(TRAIN_SPEC, identities=args.identities), args)
    summary = render_dataset(
        args.root, spec, workers=args.workers, progress=lambda n: print(f"\r{n} images", end="", flush=True)
    )
    print(f"\n{summary['images_rendered_now']} images in {time.perf_counter() - began:.0f} s")


RELEASE_RECIPE = {
    "identities": 1000,
    "epochs": 4,
    "lr": 0.02,
    "triplet": 0.0,
    "colour_jitter": 0.0,
    "grayscale": 0.0,
    "erase": 0.0,
    "mix_share": 0.0,
    "instance_norm": (),
    "mix_style": (),
    "guide": 0.0,
}
"""The fine-tuning the default model's re-id network had (``runs/people3d-v2-mixed``): 1,000
rendered people of renderer version 2 with the synthetic ``standard`` training people."""


def train_rendered(
    root: Path,
    out: Path,
    init: Path | str,
    mix: list[Path],
    *,
    device: str = "auto",
    budget_s: float | None = None,
    **recipe: Any,
) -> dict[str, Any]:
    """Fine-tune ``init``'s re-id network (a bundle folder) on the rendered people at ``root``
    (and each ``mix`` set), into ``out``; ``recipe`` as ``RELEASE_RECIPE``. Resumable.
    ``init="imagenet"``: the shipped network's shape from ImageNet backbone weights instead, so
    nothing drawn is in it (a long run's start; ``$PERSONSEARCH_WEIGHTS`` may name the weights'
    folder). ``budget_s``: a time budget the run fits its schedule to (``runner.Trainer``)."""
    from personsearch.models.backbones import add_instance_norm
    from personsearch.models.bundle import load_component, read_component
    from personsearch.training.config import GuideConfig, OptimConfig, ReIDDataConfig, ReIDTrainConfig
    from personsearch.training.reid import train_reid, training_crops

    recipe = {**RELEASE_RECIPE, **recipe}
    network = None
    if str(init) == "imagenet":  # only the shipped network's shape: train_reid builds it on ImageNet
        model_config, _ = read_component(DEFAULT, "reid")
        model_config = replace(model_config, pretrained=True)
    else:
        network, model_config, _ = load_component(init, "reid")
    added = tuple(s for s in recipe["instance_norm"] if s not in model_config.instance_norm)
    start: dict[str, Any] | None = None
    if network is not None:  # IBN-a added to a network trained without it takes over its BatchNorm weights
        add_instance_norm(network.backbone, added)
        start = network.state_dict()
    config = ReIDTrainConfig(
        model=replace(
            model_config,
            triplet_weight=recipe["triplet"],
            instance_norm=model_config.instance_norm + added,
            mix_style=tuple(recipe["mix_style"]),
        ),
        data=ReIDDataConfig(
            dataset=str(root),
            ids_per_batch=16,
            mix=tuple(str(m) for m in mix),
            mix_share=recipe["mix_share"],
            max_identities=recipe["identities"],
            colour_jitter=recipe["colour_jitter"],
            grayscale_prob=recipe["grayscale"],
            erase_prob=recipe["erase"],
        ),
        optim=OptimConfig(lr=recipe["lr"], backbone_lr=recipe["lr"] / 10, warmup_steps=20, milestones=(0.8,)),
        guide=GuideConfig(weight=recipe["guide"]),
        epochs=recipe["epochs"],
        batch_size=64,
        seed=0,
        checkpoint_every=20,
        device=device,
    )
    crops = training_crops(config.data, config.model.input_size)  # before the budget's clock starts
    deadline = None if budget_s is None else time.monotonic() + budget_s
    return train_reid(
        config,
        out,
        init=start,
        crop_set=crops,
        deadline=deadline,
    )


def train(args: argparse.Namespace) -> None:
    recipe = {
        "identities": args.identities,
        "epochs": args.epochs,
        "lr": args.lr,
        "triplet": args.triplet,
        "colour_jitter": args.colour_jitter,
        "grayscale": args.grayscale,
        "erase": args.erase,
        "mix_share": args.mix_share,
        "instance_norm": tuple(args.instance_norm),
        "mix_style": tuple(args.mix_style),
        "guide": args.guide,
    }
    init = args.init if args.init == "imagenet" else Path(args.init)
    summary = train_rendered(
        args.root, args.out, init, args.mix, device=args.device, budget_s=args.budget_s, **recipe
    )
    print(json.dumps(summary, indent=1, default=str)[:2000])


def with_shipped_detector(reid_dir: Path, out: Path) -> Path:
    """A bundle of the shipped detector and ``reid_dir``'s re-id network (copied into ``out``)."""
    out.mkdir(parents=True, exist_ok=True)
    for name, source in (("detector", DEFAULT), ("reid", reid_dir)):
        for suffix in (".json", ".safetensors"):
            shutil.copyfile(source / f"{name}{suffix}", out / f"{name}{suffix}")
    return out


def shipped_detections(root: Path, scenes: list[Any]) -> list[np.ndarray]:
    """The shipped detector's boxes (``torch-fp32``) on the gallery ``scenes`` of the synthetic
    set at ``root``, computed once and kept under ``WORK``, named by the detector's weights and the
    set's ``synthetic.json``."""
    from personsearch.evaluation.pipeline import gallery_detections
    from personsearch.models.bundle import ModelBundle

    made = hashlib.sha256((root / "synthetic.json").read_bytes()).hexdigest()[:12]
    weights = hashlib.sha256((DEFAULT / "detector.safetensors").read_bytes()).hexdigest()[:12]
    return gallery_detections(
        lambda: ModelBundle(DEFAULT, engine="torch-fp32"),
        scenes,
        WORK / f"gallery_detections-{weights}-torch-fp32-{made}.npz",
    )


def evaluate(args: argparse.Namespace) -> None:
    from personsearch.data import load_dataset
    from personsearch.evaluation.pipeline import evaluate_engine
    from personsearch.models.bundle import ModelBundle, load_component

    size = (256, 128)
    query, gallery = read_split(args.root, QUERY, size), read_split(args.root, GALLERY, size)
    models = {**({} if args.keep else {"shipped default": DEFAULT}), **{str(m): Path(m) for m in args.model}}
    synthetic = load_dataset(args.synthetic) if args.synthetic else None
    if synthetic is not None:  # every network is scored behind the shipped detector: its boxes once
        shared = shipped_detections(Path(args.synthetic), synthetic.gallery)
    scores: dict[str, Any] = {}
    # the other networks' scores of an earlier run on the same sets, each with its commit
    if args.keep and args.out.is_file():
        earlier = json.loads(args.out.read_text())
        same_synthetic = (
            Path((earlier.get("synthetic") or {}).get("root") or "-").resolve()
            == Path(args.synthetic or "-").resolve()
        )
        if Path(earlier["data"]["root"]).resolve() != Path(args.root).resolve() or not same_synthetic:
            raise SystemExit(
                f"{args.out} scores other sets; --keep adds to a file of the same --root and --synthetic"
            )
        scores = {
            name: {"commit": earlier["commit"], **entry}
            for name, entry in earlier["scores"].items()
            if name not in models
        }
    code = commit()  # the code this process runs, whatever is committed while it runs
    for name, where in models.items():
        model, _, _ = load_component(where, "reid")
        began = time.perf_counter()
        q, g = embed_crops(model, query.crops), embed_crops(model, gallery.crops)
        scores[name] = {
            "commit": code,
            "rendered_test": market_scores(q, query.pids, query.cams, g, gallery.pids, gallery.cams),
        }
        scores[name]["rendered_test"]["seconds"] = round(time.perf_counter() - began, 1)
        print(
            name, "rendered:", {k: round(v, 1) for k, v in scores[name]["rendered_test"].items()}, flush=True
        )
        # the synthetic benchmark must hold: search with the shipped detector's boxes and with ground truth
        if synthetic is not None:
            with tempfile.TemporaryDirectory() as tmp:
                bundle = with_shipped_detector(where, Path(tmp))
                result = evaluate_engine(
                    ModelBundle(bundle, engine="torch-fp32"),
                    synthetic,
                    gallery_size=args.gallery_size,
                    detections=shared,
                )
            scores[name]["synthetic"] = result.to_dict()
            print(result.format_table(), flush=True)
    results = {
        "benchmark": "rendered_people",
        "commit": code,
        "command": "python benchmarks/rendered_people.py evaluate " + " ".join(sys.argv[2:]),
        "machine": machine(),
        # how the data set was made, as render_dataset recorded it (its rate: the last run's, on this machine)
        "data": {
            "root": str(args.root),
            "render": json.loads((Path(args.root) / "people3d.json").read_text()),
            "queries": len(query.pids),
            "gallery": len(gallery.pids),
        },
        "protocol": (
            "rendered_test: Market-1501 (same person in the query's camera left out of its gallery), "
            "mAP and CMC in %; synthetic: the CUHK-SYSU protocol on the synthetic benchmark given, "
            "gallery as given, every network behind the shipped detector's boxes (computed once, "
            "torch-fp32)"
        ),
        "synthetic": {"root": str(args.synthetic), "gallery_size": args.gallery_size}
        if args.synthetic
        else None,
        "scores": scores,
    }
    if args.out.is_file():
        results.update(carried_training(json.loads(args.out.read_text()), scores, rescored=set(models)))
    path = write_results(args.out, results)
    print(f"wrote {path}")


def carried_training(earlier: dict[str, Any], scores: dict[str, Any], rescored: set[str]) -> dict[str, Any]:
    """The training records (``training_record``) of ``earlier``, the results file being replaced,
    that still describe a network of ``scores``: a kept row's (``--keep``) as it was, a network
    scored again only while its bundle records the same training (not trained again since). So
    re-scoring a file no longer drops the recipes and seconds the docs quote from it."""
    records = {}
    for name, record in earlier.get("training", {}).items():
        if name not in scores:
            continue
        bundle = Path(name) / "reid.json"
        if name in rescored and (
            not bundle.is_file() or json.loads(bundle.read_text()).get("metadata") != record
        ):
            continue
        records[name] = record
    if not records:
        return {}
    return {"training": records, "training_machine": earlier.get("training_machine")}


def training_record(args: argparse.Namespace) -> None:
    """Adds each ``--model``'s training recipe and time (from its bundle's metadata) to
    ``results/rendered_people.json``, beside its scores."""
    path = args.results
    results = json.loads(path.read_text())
    results["training"] = {  # config and summary, beside those recorded before
        **results.get("training", {}),
        **{str(m): json.loads((Path(m) / "reid.json").read_text())["metadata"] for m in args.model},
    }
    # the machine of this record: the runs' own is the bundles' (same session), unless they
    # trained elsewhere (a lent GPU), which --trained-on says
    results["training_machine"] = args.trained_on or machine()
    write_results(path, results)
    print(f"wrote {path}")


def sheet(args: argparse.Namespace) -> None:
    """A contact sheet of the first ``--people`` training identities, ten images each."""
    from PIL import Image

    rows = []
    for pid in range(1, args.people + 1):
        files = sorted((Path(args.root) / "bounding_box_train").glob(f"{pid:04d}_*.jpg"))[:10]
        rows.append(np.concatenate([np.asarray(Image.open(f).convert("RGB")) for f in files], axis=1))
    Image.fromarray(np.concatenate(rows, axis=0)).save(args.out)
    print(f"wrote {args.out}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="stage", required=True)
    p = sub.add_parser("speed")
    p.add_argument("--identities", type=int, default=24)
    p.add_argument("--photos", type=Path, help="render with this folder's photographs (a -photos file)")
    p.add_argument("--crowd", type=float, default=0.0, help="share of images with a passer-by")
    p = sub.add_parser("render")
    p.add_argument("--root", type=Path, default=ROOT / "data" / "people3d-3000")
    p.add_argument(
        "--identities",
        type=int,
        default=TRAIN_SPEC.identities,
        help="training people (100 more are held out for testing)",
    )
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--photos", type=Path, help="a folder of photographs (prints, weave, backgrounds)")
    p.add_argument("--crowd", type=float, default=0.0, help="share of images with a passer-by")
    p = sub.add_parser("train")
    p.add_argument("--root", type=Path, default=ROOT / "data" / "people3d-1500")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "people3d-finetune")
    p.add_argument(
        "--init",
        default=str(DEFAULT),
        help="the bundle whose re-id network to start from (default: the shipped model), or "
        "`imagenet`: the same network from ImageNet backbone weights",
    )
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (a GPU where there is one)")
    p.add_argument(
        "--budget-s",
        type=float,
        default=None,
        help="a time budget in seconds: the run fits its length and schedule to it (a resumed run "
        "keeps the length chosen)",
    )
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--lr", type=float, default=0.02)
    p.add_argument(
        "--identities", type=int, default=600, help="train on the first N people of each set (0: all)"
    )
    p.add_argument(
        "--colour-jitter",
        type=float,
        default=0.0,
        help="style randomisation strength (data.colour_jitter; 0: off)",
    )
    p.add_argument(
        "--grayscale", type=float, default=0.0, help="probability of a grey crop (data.grayscale_prob)"
    )
    p.add_argument("--erase", type=float, default=0.0, help="probability of random erasing (data.erase_prob)")
    p.add_argument(
        "--triplet",
        type=float,
        default=0.0,
        help="weight of the batch-hard triplet term (model.triplet_weight; 0: off)",
    )
    p.add_argument(
        "--mix",
        type=Path,
        action="append",
        default=[],
        help=(
            "another training set whose people join the rendered ones "
            "(e.g. data/synthetic-standard); repeatable"
        ),
    )
    p.add_argument(
        "--instance-norm",
        nargs="*",
        default=[],
        metavar="STAGE",
        help="backbone stages given IBN-a instance-batch normalisation (model.instance_norm), "
        "e.g. layer1 layer2 layer3; the start network's BatchNorm weights carry over",
    )
    p.add_argument(
        "--mix-style",
        nargs="*",
        default=[],
        metavar="STAGE",
        help="backbone stages followed by MixStyle in training (model.mix_style), e.g. layer1 layer2",
    )
    p.add_argument(
        "--guide",
        type=float,
        default=0.0,
        help="weight of the frozen ImageNet network's guide term (guide.weight, training/guide.py; 0: off)",
    )
    p.add_argument(
        "--mix-share",
        type=float,
        default=0.0,
        help="share of each batch's people taken from the --mix sets (data.mix_share; 0: in proportion)",
    )
    p = sub.add_parser("evaluate")
    p.add_argument("--root", type=Path, default=ROOT / "data" / "people3d-1500")
    p.add_argument(
        "--model",
        action="append",
        default=[],
        help="a model bundle folder with reid.json / reid.safetensors; repeatable",
    )
    p.add_argument(
        "--synthetic",
        type=Path,
        default=None,
        help="also score on this synthetic benchmark (e.g. `make-synthetic --preset small --seed 7`)",
    )
    p.add_argument("--gallery-size", type=int, default=50)
    p.add_argument("--out", type=Path, default=RESULTS / "rendered_people.json")
    p.add_argument(
        "--keep",
        action="store_true",
        help="keep the scores --out holds for networks not given here (each entry records its commit)",
    )
    p = sub.add_parser("training-record")
    p.add_argument("--model", action="append", default=[])
    p.add_argument(
        "--trained-on",
        default=None,
        help="where the runs trained, when not on this machine (e.g. a lent GPU): recorded instead",
    )
    p.add_argument(
        "--results",
        type=Path,
        default=RESULTS / "rendered_people.json",
        help="the evaluate results file to add the recipes to",
    )
    p = sub.add_parser("sheet")
    p.add_argument("--root", type=Path, default=ROOT / "data" / "people3d-1500")
    p.add_argument("--people", type=int, default=6)
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "rendered-people.jpg")
    args = parser.parse_args()
    {
        "speed": speed,
        "render": render,
        "train": train,
        "evaluate": evaluate,
        "training-record": training_record,
        "sheet": sheet,
    }[args.stage](args)


if __name__ == "__main__":
    main()
