"""Learning re-id from unlabelled footage (``personsearch adapt``): does it help, from which start,
and what does it cost? Measured with ground truth on synthetic walking videos, the footage learned
from kept apart from the footage scored on.

    python benchmarks/adaptation.py
    python benchmarks/adaptation.py --epochs 8 --rounds 2 --people 8
    python benchmarks/adaptation.py --budget none --out benchmarks/results/adaptation_unbudgeted.json
    python benchmarks/adaptation.py --scored later --people 24 --look-alikes 2 3 --max-person 120 \
        --queries every-camera --out benchmarks/results/adaptation_later.json

1. Learning footage: ``--cameras`` synthetic walking videos (``--seed``), indexed with the shipped
   model (its detector finds the people, the tracker links them into sightings); no label is read.
2. Scored footage: videos of another seed (other people, other cameras), or with ``--scored
   later`` the same cameras' next ``--frames`` (the people learned from, later: what a user who
   adapted to their cameras then searches). Every appearance (one person crossing one camera) is
   cut from its ground-truth boxes; queries are the appearances of the first camera, the gallery
   those of the others (cross-camera, as in video re-id); ``--queries every-camera``: every
   appearance is a query against the other cameras' appearances:
   * appearance level: the mean feature of the appearance's frames (what sighting search uses);
   * frame level: one frame as the query against every frame of the gallery.
   Reported: top-1 and mAP, before adapting and after each round (``per_round``, with each
   round's classes, steps and seconds).
3. Models: the shipped (synthetic-trained) re-id before and after adaptation, and ImageNet
   features (the backbone's ImageNet weights, untrained re-id heads) before and after.
4. Cost: adaptation seconds, and per hour of footage at the indexed frame rate, under
   ``--budget`` (default the product's: at most the footage's own duration; ``none`` trains
   every epoch).
5. Association: how many of the groups that cross-camera association would merge from each
   start's round-1 features hold one person only (ground truth); from ImageNet weights adapt
   runs round 1 only, because of what this measures.

Writes ``benchmarks/results/adaptation.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from run_info import ROOT, commit, machine, write_results

from personsearch.data.synthetic.walks import appearance_crops, make_walks, split_walks
from personsearch.evaluation.metrics import recall_corrected_ap
from personsearch.index import PersonIndex
from personsearch.index.reranking import reranked_scores
from personsearch.interfaces.api import SHIPPED_MODEL, PersonSearch
from personsearch.models.bundle import load_component, read_component, save_component
from personsearch.models.reid import build_reid
from personsearch.training.adapt import (
    LEARNERS,
    AdaptConfig,
    adapt,
    crop_features,
    find_tracklets,
    mean_features,
    parse_budget,
    tracklet_features,
)
from personsearch.training.config import load_config


@torch.no_grad()
def score(
    model: torch.nn.Module,
    crops: torch.Tensor,
    owners: np.ndarray,
    keys: list[tuple[str, int]],
    every_camera: bool = False,
    rerank: bool = False,
) -> dict[str, float]:
    """Cross-camera retrieval from the first camera's appearances, or with ``every_camera`` from
    every appearance against the other cameras' (see the module docstring); ``rerank``: each
    query's gallery ranked as ``search --rerank`` ranks it (``reranking.reranked_scores``)."""
    frame_feats = crop_features(model, crops, fast=False)
    app_feats = mean_features(frame_feats, owners, len(keys))
    cams = np.array([k[0] for k in keys])
    pids = np.array([k[1] for k in keys])
    first = sorted(set(cams))[0]
    out: dict[str, float] = {}
    for level, feats, who in (
        ("appearance", app_feats, np.arange(len(keys))),
        ("frame", frame_feats, owners),
    ):
        q_idx = np.arange(len(who)) if every_camera else np.flatnonzero(cams[who] == first)
        top1, aps = [], []
        for q in q_idx:
            g_idx = np.flatnonzero(cams[who] != cams[who[q]])
            right = pids[who[g_idx]] == pids[who[q]]
            if not right.any():
                continue
            sims = reranked_scores(feats[q], feats[g_idx]) if rerank else feats[g_idx] @ feats[q]
            order = np.argsort(-sims, kind="stable")
            top1.append(bool(right[order[0]]))
            aps.append(recall_corrected_ap(right[order].astype(np.float32), sims[order], int(right.sum())))
        out[f"{level}_top1"] = float(np.mean(top1))
        out[f"{level}_mAP"] = float(np.mean(aps))
        out[f"{level}_queries"] = len(top1)
    return out


def pseudo_label_purity(labels: list[int], pids: list[int]) -> dict[str, int]:
    """How right a round's pseudo-identities were, against the ground truth: classes, classes
    holding one person only, and tracklets in such classes."""
    groups: dict[int, set[int]] = {}
    for label, pid in zip(labels, pids, strict=True):
        groups.setdefault(label, set()).add(pid)
    pure = {label for label, g in groups.items() if len(g) == 1 and -1 not in g}
    return {
        "classes": len(groups),
        "one_person_classes": len(pure),
        "tracklets_in_one_person_classes": sum(label in pure for label in labels),
        "people": len({p for p in pids if p >= 0}),
    }


def association_purity(index_dir: Path, round1: Path) -> dict[str, int]:
    """What cross-camera association makes of the round-1 network's features, against the ground
    truth: merged groups, and how many hold one person only."""
    from personsearch.index import PersonIndex
    from personsearch.training.adapt import associate, crop_tracklets, find_tracklets

    with PersonIndex.open(index_dir) as index:
        tracklets = find_tracklets(index, AdaptConfig())
    pids = tracklet_pids(tracklets)
    model, config, _ = load_component(round1, "reid")
    crops, owners = crop_tracklets(tracklets, tuple(config.input_size))
    spans = [(t.path, t.frames[0], t.frames[-1]) for t in tracklets]
    labels = associate(
        tracklet_features(model, crops, owners, len(tracklets)),
        [t.camera for t in tracklets],
        AdaptConfig().associate_min_cosine,
        spans,
    )
    groups: dict[int, set[int]] = {}
    for label, pid in zip(labels.tolist(), pids, strict=True):
        groups.setdefault(label, set()).add(pid)
    merged = [g for label, g in groups.items() if (labels == label).sum() > 1]
    return {"merged_groups": len(merged), "one_person": sum(len(g) == 1 and -1 not in g for g in merged)}


def tracklet_pids(tracklets: list[Any]) -> list[int]:
    """The ground-truth person of each tracklet (its middle box's best match; -1: none)."""
    from personsearch.data.boxes import box_iou

    pids = []
    for t in tracklets:
        truth = json.loads(Path(t.path).with_suffix(".json").read_text())
        middle = len(t.frames) // 2
        people = truth["frames"][t.frames[middle]]
        overlaps = (
            box_iou(np.asarray([t.boxes[middle]]), np.asarray([p["box"] for p in people]).reshape(-1, 4))[0]
            if people
            else np.zeros(0)
        )
        pids.append(
            people[int(np.argmax(overlaps))]["pid"] if len(overlaps) and overlaps.max() >= 0.5 else -1
        )
    return pids


def per_round_scores(
    adapted: Path,
    summary: dict[str, Any],
    after: dict[str, float],
    scorer: Callable[[torch.nn.Module], dict[str, float]],
) -> list[dict[str, Any]]:
    """Each round's scores (its network as that round left it, ``adapted/rounds/roundK``; the
    last round's network is the adapted bundle's, scored as ``after``), classes, training steps,
    and the seconds it took (its association or clustering pass included)."""
    out = []
    for k, record in enumerate(summary["rounds"], start=1):
        last = k == len(summary["rounds"])
        scores = after if last else scorer(load_component(adapted / "rounds" / f"round{k}", "reid")[0])
        out.append(
            {
                "round": k,
                "classes": record["classes"],
                "steps": record["train"]["steps"],
                "seconds": summary["seconds"]["rounds"][k - 1],
                **scores,
            }
        )
    return out


def imagenet_bundle(start: Path, out: Path) -> Path:
    """The shipped bundle with its re-id network replaced by ImageNet weights and fresh heads."""
    config, _ = read_component(start, "reid")
    out.mkdir(parents=True, exist_ok=True)
    for part in ("detector.json", "detector.safetensors"):
        shutil.copyfile(start / part, out / part)
    torch.manual_seed(0)
    save_component(
        out, "reid", build_reid(config), config, {"note": "ImageNet backbone, untrained re-id heads"}
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "adaptation")
    parser.add_argument("--seed", type=int, default=10, help="learning footage")
    parser.add_argument("--eval-seed", type=int, default=11, help="scored footage (other people and cameras)")
    parser.add_argument(
        "--scored",
        choices=("other-footage", "later"),
        default="other-footage",
        help=(
            "other-footage: videos of --eval-seed (other people, other cameras); later: the same "
            "cameras and people, the --frames after the learned ones (the 'learn this camera' use)"
        ),
    )
    parser.add_argument(
        "--look-alikes",
        type=int,
        nargs=2,
        default=(1, 1),
        metavar=("MIN", "MAX"),
        help="sizes of look-alike families (people who differ in fine detail only); 1 1: none",
    )
    parser.add_argument(
        "--queries",
        choices=("first-camera", "every-camera"),
        default="first-camera",
        help="query appearances: the first camera's, or every camera's (each against the others)",
    )
    parser.add_argument("--max-person", type=int, default=200, help="tallest person near a camera, px")
    parser.add_argument("--cameras", type=int, default=3)
    parser.add_argument("--people", type=int, default=8)
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--fps", type=float, default=10.0)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--budget",
        default="1x",
        help=(
            "adapt's time budget (as `personsearch adapt --budget`; default: the product's, "
            "the footage's duration)"
        ),
    )
    parser.add_argument(
        "--learner",
        default="association",
        choices=LEARNERS,
        help="how tracklets become identities (AdaptConfig.learner)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other AdaptConfig setting, as `personsearch adapt --set` (e.g. camera_weight=0)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "adaptation.json")
    args = parser.parse_args()

    shutil.rmtree(args.work, ignore_errors=True)
    walks: dict[str, Any] = dict(
        cameras=args.cameras,
        people=args.people,
        fps=args.fps,
        max_person=args.max_person,
        look_alikes=tuple(args.look_alikes),
    )
    if args.scored == "later":
        whole = make_walks(args.work / "whole", seed=args.seed, frames=2 * args.frames, **walks)
        learn, held = split_walks(whole, args.frames, args.work / "learn", args.work / "held-out")
    else:
        learn = make_walks(args.work / "learn", seed=args.seed, frames=args.frames, **walks)
        held = make_walks(args.work / "held-out", seed=args.eval_seed, frames=args.frames, **walks)
    t = time.perf_counter()
    # every frame of the walks
    PersonSearch.load().index(learn, args.work / "index", stride=1, progress=False)
    index_seconds = time.perf_counter() - t
    reid_config, _ = read_component(SHIPPED_MODEL, "reid")
    crops, owners, keys = appearance_crops(held, tuple(reid_config.input_size))
    every_camera = args.queries == "every-camera"
    footage_hours = args.cameras * args.frames / args.fps / 3600

    results: dict[str, Any] = {
        "commit": commit(),
        "machine": machine(),
        "learning_footage": {
            "seed": args.seed,
            "cameras": args.cameras,
            "people": args.people,
            "frames": args.frames,
            "fps": args.fps,
            "max_person": args.max_person,
            "look_alikes": list(args.look_alikes),
            "indexing_seconds": index_seconds,
        },
        "scored_footage": {
            "kind": args.scored,
            **(
                {"frames": [args.frames, 2 * args.frames]}
                if args.scored == "later"
                else {"seed": args.eval_seed}
            ),
            "appearances": len(keys),
            "crops": len(owners),
            "queries": args.queries,
        },
        "learner": args.learner,
        "settings": args.set,
        "models": {},
    }
    # (bundle scored before adapting, whether adapt starts from ImageNet weights)
    starts = {
        "shipped": (SHIPPED_MODEL, False),
        "imagenet": (imagenet_bundle(SHIPPED_MODEL, args.work / "imagenet"), True),
    }
    for name, (bundle, from_imagenet) in starts.items():
        model, _, _ = load_component(bundle, "reid")
        results["models"][name] = {"before": score(model, crops, owners, keys, every_camera)}
        t = time.perf_counter()
        budget_footage, budget_s = parse_budget(args.budget)
        config = load_config(
            AdaptConfig,
            None,
            args.set,
            epochs=args.epochs,
            rounds=args.rounds,
            from_imagenet=from_imagenet,
            learner=args.learner,
            budget_footage=budget_footage,
            budget_s=budget_s,
        )
        summary = adapt(
            args.work / "index", SHIPPED_MODEL, args.work / f"adapted-{name}", config, progress=False
        )
        seconds = time.perf_counter() - t
        adapted, _, _ = load_component(args.work / f"adapted-{name}", "reid")
        results["models"][name]["association_after_round1"] = association_purity(
            args.work / "index", args.work / f"adapted-{name}" / "rounds" / "round1"
        )
        with PersonIndex.open(args.work / "index") as index:
            pids = tracklet_pids(find_tracklets(index, config))
        results["models"][name]["pseudo_labels"] = [
            pseudo_label_purity(r["labels"], pids) for r in summary["rounds"]
        ]
        after = score(adapted, crops, owners, keys, every_camera)
        results["models"][name].update(
            after=after,
            per_round=per_round_scores(
                args.work / f"adapted-{name}",
                summary,
                after,
                lambda m: score(m, crops, owners, keys, every_camera),
            ),
            tracklets=summary["tracklets"],
            classes_per_round=[r["classes"] for r in summary["rounds"]],
            adapt_seconds=seconds,
            budget=args.budget,
            budget_s=summary["budget_s"],
            stopped_by_budget=summary["stopped_by_budget"],
            steps_per_round=[r["train"]["steps"] for r in summary["rounds"]],
            adapt_seconds_per_footage_hour=seconds / footage_hours,
        )
        print(f"== {name}: {json.dumps(results['models'][name])}", flush=True)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_results(args.out, results)
    print(f"\nmachine: {results['machine']['cpu']}, {results['machine']['cpu_capability']}")
    scored = (
        f"frames {args.frames}-{2 * args.frames - 1} of the same cameras"
        if args.scored == "later"
        else f"held-out people (seed {args.eval_seed})"
    )
    print(
        f"scored: {len(keys)} appearances of {scored}; "
        f"queries from {args.queries.replace('-', ' ')}, gallery the other cameras"
    )
    print(
        f"{'start':9s} {'':7s} {'appear. top-1':>13s} {'appear. mAP':>11s} "
        f"{'frame top-1':>11s} {'frame mAP':>9s}"
    )
    for name, r in results["models"].items():
        for when in ("before", "after"):
            s = r[when]
            print(
                f"{name:9s} {when:7s} {s['appearance_top1']:13.3f} {s['appearance_mAP']:11.3f} "
                f"{s['frame_top1']:11.3f} {s['frame_mAP']:9.3f}"
            )
        print(
            f"{'':9s} adapting took {r['adapt_seconds']:.0f} s: "
            f"{r['adapt_seconds_per_footage_hour'] / 3600:.1f} h per hour of footage; "
            f"tracklets {r['tracklets']}, classes {r['classes_per_round']}"
        )
        print(
            f"{'':9s} frame mAP after each round: "
            + " / ".join(
                f"{k['frame_mAP']:.3f} ({k['steps']} steps, {k['seconds']:.0f} s)" for k in r["per_round"]
            )
        )
        a = r["association_after_round1"]
        print(
            f"{'':9s} cross-camera association from its round-1 features: "
            f"{a['one_person']} of {a['merged_groups']} merged groups are one person"
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
