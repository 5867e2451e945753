"""Real re-id with labels: the people of ``vtest.avi`` (PETS 2009 S2.L1 View_001), told apart by
hand, so that a network's skill on real people is a mAP over every labelled sighting rather than a
by-eye precision over a handful of queries (benchmarks/blind_real_check.py).

    python benchmarks/vtest_people.py sightings       # boxes, sightings and the sheets to label
    (a judge writes results/vtest_people_labels.json from the sheets)
    python benchmarks/vtest_people.py score --model NAME=BUNDLE [--model ...]

The rule, fixed before any sheet was seen, and blind to every network by construction (no network's
features take part in making or labelling the sightings): every 2nd frame, people boxed by the
off-the-shelf SSDLite detector (score >= 0.5), linked into sightings by overlap alone and only where
the link is unambiguous (``strict_sightings``: a box joins a track when it overlaps the track's last
box by IoU >= ``LINK_IOU`` and neither has a second candidate above ``AMBIGUOUS_IOU``; a track ends
at a missed frame). The product's tracker links more boldly, which is right for search and wrong
for labels: a label must hold for every box of a sighting. Sightings of fewer than ``MIN_BOXES``
boxes are left out.
``sightings`` writes them (frames and boxes) to ``results/vtest_people/sightings.json`` and draws
each as a row of crops spread over its span on ``results/vtest_people/sheet_NN.png``. The judge
gives every sighting a person label (``P01``, ``P02``, ...; the same label for the same person on
every sheet), or marks it ``mixed`` (two people, or a person and something else) or ``unsure``;
only labelled sightings are scored.

``score``: every labelled sighting is a query, by its box nearest the middle of its span; the
gallery is every box of every labelled sighting. Market-1501's rule with the sighting as the
camera: boxes of the query's own sighting are neither hits nor misses. Two counts per network:
``all`` (every other sighting of the person is a right hit) and ``other visits`` (only sightings
that end at least ``GAP`` frames before the query's begins or begin that long after it ends: the
person left the view, or was lost to it, and came back; nearer sightings of the same person are
left out of the gallery, so a broken track is not an easy hit). mAP and CMC in %, over the queries
that have at least one right hit, each network's mAP gain over the shipped network with a 95 %
bootstrap interval paired by query (``paired_interval``). Every run scores ``imagenet`` (ImageNet
MobileNetV2 pooled features, the baseline) and ``shipped`` (the default model) beside the
``--model`` networks, all on the same boxes, into ``results/vtest_people.json``.

Learning a camera, scored on what it did not learn from (``score --held-out``): only the sightings
that begin at or after frame ``FOOTAGE["vtest"].held_out_from`` (400) are queries and gallery, for
networks adapted to frames 0-399 (``blind_real_check.py learning-part``, then ``personsearch
adapt``), into ``results/vtest_people_held_out.json``. ``--camera-statistics`` adds the shipped
network adapted by the statistics of frames 0-399 alone, no training (``camera_statistics``).

``score --rerank`` adds each network's row re-ranked by k-reciprocal neighbourhoods as ``personsearch
search --rerank`` ranks (``per_query``), its gain over the shipped network's plain row paired as
above, into ``results/vtest_people_reranked.json`` (``_held_out_reranked`` with ``--held-out``).

Never train the shipped model on these frames: vtest.avi is the project's by-eye footage, not training data.
"""

from __future__ import annotations

import argparse
import copy
import json
import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent))
from blind_real_check import (
    FOOTAGE,
    MIN_SCORE,
    SHIPPED,
    SIZE,
    bundle_features,
    frames,
    imagenet_features,
    network_record,
    ssdlite_people,
)
from run_info import RESULTS, commit, machine, write_results

from personsearch.data.boxes import box_iou
from personsearch.data.crops import crop_boxes, normalize_crops
from personsearch.evaluation.reid_crops import similarity_scores
from personsearch.index.reranking import reranked_scores
from personsearch.models.reid import embed_crops

WORK = RESULTS / "vtest_people"
SIGHTINGS = WORK / "sightings.json"
LABELS = RESULTS / "vtest_people_labels.json"
OUT = RESULTS / "vtest_people.json"
STRIDE = 2
MIN_BOXES = 6
"""A sighting of fewer boxes (about a second at every 2nd frame) is mostly a detector's flicker or
a track cut short by a crossing, and would mostly be scored against its own near-copies."""
LINK_IOU = 0.4
AMBIGUOUS_IOU = 0.2
GAP = 50
"""Frames (5 s at 10 fps) between two sightings for the later one to count as another visit."""
PER_ROW = 6
ROWS_PER_SHEET = 14


def detect_sightings(video: Path, decoded: dict[int, np.ndarray]) -> dict[str, Any]:
    """``video``'s SSDLite boxes (``decoded``: its every ``STRIDE``-th frame), linked into strict
    sightings (``strict_sightings``)."""
    all_boxes, frame_of = ssdlite_people(decoded)
    kept = [m for m in strict_sightings(frame_of, all_boxes) if len(m) >= MIN_BOXES]
    kept.sort(key=lambda m: (int(frame_of[m[0]]), float(all_boxes[m[0], 0])))
    return {
        "commit": commit(),
        "video": str(video),
        "rule": {
            "detector": "ssdlite",
            "stride": STRIDE,
            "min_score": MIN_SCORE,
            "link_iou": LINK_IOU,
            "ambiguous_iou": AMBIGUOUS_IOU,
            "min_boxes": MIN_BOXES,
        },
        "sightings": {
            f"S{n:03d}": {
                "frames": frame_of[m].tolist(),
                "boxes": all_boxes[m].round(1).tolist(),
            }
            for n, m in enumerate(kept, 1)
        },
    }


def strict_sightings(frame_of: np.ndarray, boxes: np.ndarray) -> list[np.ndarray]:
    """Tracks of box indices in frame order, linked frame to frame (``STRIDE`` apart) only where
    the overlap is clear and one-to-one (see the module docstring)."""
    tracks: list[list[int]] = []
    live: list[list[int]] = []
    previous = None
    for f in np.unique(frame_of):
        here = np.flatnonzero(frame_of == f)
        taken: set[int] = set()
        carried = []
        if live and previous == f - STRIDE and len(here):
            iou = box_iou(boxes[[t[-1] for t in live]], boxes[here])
            for t, track in enumerate(live):
                j = int(iou[t].argmax())
                rivals = np.delete(iou[t], j).max(initial=0.0), np.delete(iou[:, j], t).max(initial=0.0)
                if iou[t, j] >= LINK_IOU and max(rivals) < AMBIGUOUS_IOU and j not in taken:
                    track.append(int(here[j]))
                    taken.add(j)
                    carried.append(track)
                else:
                    tracks.append(track)
        else:
            tracks += live
        live = carried + [[int(i)] for j, i in enumerate(here) if j not in taken]
        previous = f
    return [np.asarray(t) for t in tracks + live]


def draw_sheets(decoded: dict[int, np.ndarray], found: dict[str, Any]) -> list[Path]:
    """Each sighting as a row of up to ``PER_ROW`` crops spread over its span, its name and frames
    beside it, ``ROWS_PER_SHEET`` rows to a sheet (``decoded``: the video's frames by number)."""
    h, w = 128, 64
    names = list(found["sightings"])
    paths = []
    for first in range(0, len(names), ROWS_PER_SHEET):
        rows = names[first : first + ROWS_PER_SHEET]
        sheet = Image.new("RGB", (150 + PER_ROW * (w + 4), 8 + len(rows) * (h + 10)), (255, 255, 255))
        draw = ImageDraw.Draw(sheet)
        for r, name in enumerate(rows):
            sighting = found["sightings"][name]
            y = 8 + r * (h + 10)
            first_box, last_box = sighting["boxes"][0], sighting["boxes"][-1]
            lines = (
                name,
                f"frames {sighting['frames'][0]}-{sighting['frames'][-1]}",
                f"x {(first_box[0] + first_box[2]) / 2:.0f} -> {(last_box[0] + last_box[2]) / 2:.0f}",
                f"y {first_box[3]:.0f} -> {last_box[3]:.0f}",
            )
            for n, line in enumerate(lines):
                draw.text((6, y + h // 2 - 30 + 16 * n), line, fill=(0, 0, 0))
            picks = np.unique(np.linspace(0, len(sighting["frames"]) - 1, PER_ROW).round().astype(int))
            for c, k in enumerate(picks):
                frame = decoded[sighting["frames"][k]]
                crop = crop_boxes(frame, np.asarray([sighting["boxes"][k]]), (h, w))[0]
                sheet.paste(Image.fromarray(crop.permute(1, 2, 0).numpy()), (150 + c * (w + 4), y))
        path = WORK / f"sheet_{first // ROWS_PER_SHEET + 1:02d}.png"
        sheet.save(path)
        paths.append(path)
    return paths


def sightings_cmd(args: argparse.Namespace) -> None:
    video = FOOTAGE["vtest"].video(args.video)
    decoded = frames(video, STRIDE)
    WORK.mkdir(parents=True, exist_ok=True)
    if SIGHTINGS.is_file() and not args.again:
        found = json.loads(SIGHTINGS.read_text())  # the labels refer to these: never silently redone
    else:
        found = detect_sightings(video, decoded)
        SIGHTINGS.write_text(json.dumps(found, indent=1))
    paths = draw_sheets(decoded, found)
    print(f"{len(found['sightings'])} sightings on {len(paths)} sheets in {WORK}; label them in {LABELS}")


def labelled(found: dict[str, Any], labels: dict[str, Any]) -> dict[str, str]:
    """Sighting -> person, for the labelled sightings; refuses a label file that names a sighting
    twice or one that does not exist."""
    person_of: dict[str, str] = {}
    for person, names in labels["people"].items():
        for name in names:
            if name not in found["sightings"]:
                sys.exit(f"{LABELS}: {person} names {name}, which {SIGHTINGS} does not hold")
            if name in person_of:
                sys.exit(f"{LABELS}: {name} is labelled both {person_of[name]} and {person}")
            person_of[name] = person
    return person_of


def per_query(
    features: np.ndarray,
    query: np.ndarray,
    pid: np.ndarray,
    sighting: np.ndarray,
    spans: np.ndarray,
    other_visits: bool,
    rerank: bool = False,
) -> dict[int, dict[str, float]]:
    """Each query's Market-1501 scores (AP, top-k as 0/100) with every sighting as its own camera,
    for the queries with a right hit; ``other_visits``: the query person's sightings within
    ``GAP`` frames of the query's are taken out of its gallery. ``rerank``: the gallery ranked as
    ``search --rerank`` ranks an index of it (``reranking.reranked_scores``), the query's own
    sighting taken out of it first, as for a query from outside the footage (its boxes would
    otherwise fill the query's neighbourhood)."""
    each = {}
    for q in query:
        keep = np.ones(len(pid), dtype=bool)
        if other_visits:
            begin, end = spans[sighting[q]]
            near = (pid == pid[q]) & (spans[sighting, 1] > begin - GAP) & (spans[sighting, 0] < end + GAP)
            keep = ~near | (sighting == sighting[q])  # the own sighting: similarity_scores leaves it out
        if rerank:
            keep &= sighting != sighting[q]
        gallery = features[keep]
        similarity = reranked_scores(features[q], gallery) if rerank else gallery @ features[q]
        try:
            scores = similarity_scores(similarity[None], pid[[q]], sighting[[q]], pid[keep], sighting[keep])
        except ValueError:  # the person is not seen again (that far away in time)
            continue
        each[int(q)] = {k: v for k, v in scores.items() if k not in ("queries", "queries_without_match")}
    if not each:
        raise ValueError("no labelled person is seen again")
    return each


def summary(each: dict[int, dict[str, float]], asked: int) -> dict[str, float]:
    """Per-query scores averaged, with the count of queries scored and of those without a right hit."""
    out = {key: float(np.mean([e[key] for e in each.values()])) for key in next(iter(each.values()))}
    return out | {"queries": float(len(each)), "queries_without_match": float(asked - len(each))}


def paired_interval(ap: np.ndarray, baseline: np.ndarray, draws: int = 10_000, seed: int = 0) -> list[float]:
    """95 % bootstrap interval (queries resampled, the same draws for both) of the mean AP
    difference ``ap - baseline``, in points: whether a gain is more than the luck of which people
    were queried."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(ap), size=(draws, len(ap)))
    means = (ap - baseline)[picks].mean(axis=1)
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


WHITENED = 64
"""Dimensions kept by the whitened variant (the fitting crops hold a few hundred boxes of a dozen people)."""


def camera_statistics(network: Any, crops: torch.Tensor) -> dict[str, Any]:
    """``network`` adapted to a camera by its statistics alone, no training: its features centred
    on the camera's mean feature; whitened (PCA on the camera's features, ``WHITENED`` dimensions,
    each eigenvalue shrunk by the mean of those kept); and AdaBN (every BatchNorm's statistics
    measured again on the camera's crops). ``crops`` (uint8): every box of the footage learned
    from, labelled or not."""
    features = torch.from_numpy(embed_crops(network, crops))
    mean = features.mean(0)
    values, vectors = torch.linalg.eigh(torch.cov((features - mean).T))
    values, vectors = values.flip(0)[:WHITENED], vectors.flip(1)[:, :WHITENED]
    project = vectors / (values + values.mean()).sqrt()

    def centred(x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(network(x).float(), dim=1) - mean

    def whitened(x: torch.Tensor) -> torch.Tensor:
        return centred(x) @ project

    adabn = copy.deepcopy(network)
    for layer in adabn.modules():
        if isinstance(layer, torch.nn.modules.batchnorm._BatchNorm):
            layer.reset_running_stats()
            layer.momentum = None  # a plain average over every batch
            layer.train()
    order = torch.randperm(len(crops), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for start in range(0, len(crops), 64):
            adabn(normalize_crops(crops[order[start : start + 64]]))
    adabn.eval()
    return {"shipped, centred": centred, "shipped, whitened": whitened, "shipped, AdaBN": adabn}


def score(args: argparse.Namespace) -> None:
    found = json.loads(SIGHTINGS.read_text())
    labels = json.loads(LABELS.read_text())
    person_of = labelled(found, labels)
    video = Path(found["video"]) if Path(found["video"]).is_file() else FOOTAGE["vtest"].video(args.video)
    decoded = frames(video, STRIDE)
    first = FOOTAGE["vtest"].held_out_from if args.held_out else 0
    names = [n for n in found["sightings"] if n in person_of and found["sightings"][n]["frames"][0] >= first]
    index = {name: s for s, name in enumerate(names)}
    people = {p: k for k, p in enumerate(sorted({person_of[n] for n in names}))}
    crops: list[torch.Tensor] = []
    pid: list[int] = []
    sighting: list[int] = []
    query: list[int] = []
    spans = np.asarray(
        [[found["sightings"][n]["frames"][0], found["sightings"][n]["frames"][-1]] for n in names]
    )
    for name in names:
        record = found["sightings"][name]
        middle = len(record["frames"]) // 2
        for k, (f, box) in enumerate(zip(record["frames"], record["boxes"], strict=True)):
            if k == middle:
                query.append(len(pid))
            crops.append(crop_boxes(decoded[f], np.asarray([box]), SIZE))
            pid.append(people[person_of[name]])
            sighting.append(index[name])
    all_crops = torch.cat(crops)
    given = {name: Path(where) for name, _, where in (m.partition("=") for m in args.model)}
    networks: dict[str, Any] = {"imagenet": imagenet_features(), "shipped": bundle_features(SHIPPED)}
    networks |= {name: bundle_features(where) for name, where in given.items()}
    if args.camera_statistics:
        if not args.held_out:
            raise SystemExit("--camera-statistics learns from frames 0-399: use it with --held-out")
        before = [
            crop_boxes(decoded[f], np.asarray([box]), SIZE)
            for record in found["sightings"].values()
            for f, box in zip(record["frames"], record["boxes"], strict=True)
            if f < first
        ]
        networks |= camera_statistics(networks["shipped"], torch.cat(before))
    arrays = (np.asarray(query), np.asarray(pid), np.asarray(sighting), spans)
    table: dict[str, Any] = {}
    aps: dict[str, dict[str, np.ndarray]] = {}
    for network_name, network in networks.items():
        features = embed_crops(network, all_crops)
        for name, rerank in [(network_name, False)] + [(f"{network_name}, re-ranked", True)] * args.rerank:
            table[name], aps[name] = {}, {}
            for mode in ("all", "other visits"):
                each = per_query(features, *arrays, other_visits=mode == "other visits", rerank=rerank)
                table[name][mode] = summary(each, len(query))
                aps[name][mode] = np.asarray([e["mAP"] for e in each.values()])
            rounded = {k: {m: round(v, 1) for m, v in s.items()} for k, s in table[name].items()}
            print(name, rounded, flush=True)
    for name in set(table) - {"shipped"}:  # every network scores the same queries in order: paired
        for mode in ("all", "other visits"):
            table[name][mode]["mAP_gain_over_shipped_95"] = paired_interval(
                aps[name][mode], aps["shipped"][mode]
            )
    out = OUT.with_name(OUT.stem + "_held_out" * args.held_out + "_reranked" * args.rerank + ".json")
    write_results(
        out,
        {
            "benchmark": "vtest_people",
            "commit": commit(),
            "command": "python benchmarks/vtest_people.py " + shlex.join(sys.argv[1:]),
            "machine": machine(),
            "protocol": __doc__,
            "labels": {"judge": labels["judge"], "people": len(people), "sightings": len(names)},
            "from_frame": first,
            "boxes": len(pid),
            "networks": {name: str(where) for name, where in given.items()},
            # how each was made, as its bundle records it (an adapted one: footage, time, budget)
            "made": {name: network_record(where) for name, where in given.items()},
            "scores": table,
        },
    )
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("sightings", help="detect and track, then draw the sheets to label")
    p.add_argument("--video", type=Path, help="vtest.avi (default: where docs/real-footage.md puts it)")
    p.add_argument("--again", action="store_true", help="detect again even if sightings.json exists")
    p.set_defaults(run=sightings_cmd)
    p = sub.add_parser("score", help="score networks on the labelled sightings")
    p.add_argument("--video", type=Path)
    p.add_argument("--model", action="append", default=[], help="NAME=BUNDLE (repeatable)")
    p.add_argument(
        "--held-out",
        action="store_true",
        help="only the sightings from frame 400 (networks adapted to 0-399)",
    )
    p.add_argument(
        "--camera-statistics",
        action="store_true",
        help="with --held-out: also the shipped network centred, whitened and AdaBN on frames 0-399's boxes",
    )
    p.add_argument(
        "--rerank",
        action="store_true",
        help="also each network re-ranked as search --rerank ranks (into *_reranked.json)",
    )
    p.set_defaults(run=score)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
