"""A by-eye check on real footage: does adapting to a camera ("learn this camera") find people
better there, and does sighting search help? ``vtest.avi`` (PETS 2009 S2.L1, no labels ship with
it) is indexed with the off-the-shelf SSDLite detector and three re-id networks: ImageNet features,
the shipped synthetic-trained network, and that network adapted to this very video with
``personsearch adapt`` (the footage searched is the footage learned from: said plainly, it is the
product mode "learn this camera", not a held-out test).

    python benchmarks/real_footage_check.py sheets        # indexes, queries, one contact sheet per query
    python benchmarks/real_footage_check.py score         # precision from the judgements file

Queries: ``--queries`` sightings of the shipped model's index, the longest ones first, at most one
per 60 frames of the video, each searched by its best box (the same SSDLite box in every index,
so only the features differ), in two modes: one hit per sighting, and per frame; the query's own
sighting is left out in both (its other frames would be trivially right). Each sheet has a row per
network and mode: the query, then the top 10. Whether each hit shows the query person is judged
by eye and written to ``benchmarks/results/real_footage_judgements.json`` (one string of ``1``/``0``
per row); ``score`` turns it into top-1 and top-10 precision per network and mode.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from run_info import ROOT, commit, machine, write_results

WORK = ROOT / "benchmarks" / "work" / "real-footage"
JUDGEMENTS = ROOT / "benchmarks" / "results" / "real_footage_judgements.json"
NETWORKS = ("imagenet", "shipped", "adapted")
MODES = ("sighting", "frame")


def vtest_path(given: Path | None) -> Path:
    from sightings import VTEST_PLACES

    found = given or next((Path(p) for p in VTEST_PLACES if Path(p).is_file()), None)
    if found is None or not found.is_file():
        sys.exit("vtest.avi not found: see docs/real-footage.md for where to get it, or pass --vtest PATH")
    return found


def bundles(stride: int, vtest: Path) -> dict[str, Path]:
    """The three networks' bundles (the adapted one learns from the shipped model's index)."""
    from adaptation import imagenet_bundle

    from personsearch.interfaces.api import SHIPPED_MODEL, PersonSearch
    from personsearch.training.adapt import adapt

    out = {
        "imagenet": imagenet_bundle(SHIPPED_MODEL, WORK / "imagenet"),
        "shipped": SHIPPED_MODEL,
        "adapted": WORK / "adapted",
    }
    shipped_index = WORK / "index-shipped"
    if not (shipped_index / "index.sqlite").is_file():
        PersonSearch.load(detector="ssdlite").index([vtest], shipped_index, stride=stride, progress=False)
    if not (out["adapted"] / "reid.safetensors").is_file():
        adapt(shipped_index, SHIPPED_MODEL, out["adapted"], progress=True)
    return out


def sheets(args: argparse.Namespace) -> None:
    import cv2

    from personsearch.data.images import decode_image
    from personsearch.index import PersonIndex
    from personsearch.interfaces.api import PersonSearch

    vtest = vtest_path(args.vtest)
    WORK.mkdir(parents=True, exist_ok=True)
    models = bundles(args.stride, vtest)
    for name, bundle in models.items():
        if not (WORK / f"index-{name}" / "index.sqlite").is_file():
            PersonSearch.load(bundle, detector="ssdlite").index(
                [vtest], WORK / f"index-{name}", stride=args.stride, progress=False
            )
    indexes = {name: PersonIndex.open(WORK / f"index-{name}") for name in NETWORKS}
    try:
        reference = indexes["shipped"]
        source = reference.store.list_sources()[1][0]
        _, linked = reference.store.video_box_labels(source.id)
        sizes = Counter(linked[linked >= 0].tolist())
        queries: list[dict[str, Any]] = []
        for sighting in sorted(sizes, key=lambda s: (-sizes[s], s)):
            best = reference.store.get_box(reference.sighting(sighting).best_box)
            if all(abs(best.frame - q["frame"]) >= 60 for q in queries):
                queries.append({"frame": best.frame, "box": list(best.box)})
            if len(queries) == args.queries:
                break
        listing = {"commit": commit(), "machine": machine(), "stride": args.stride, "queries": []}
        for qi, query in enumerate(queries):
            rows, entry = [], {"frame": query["frame"], "box": query["box"], "rows": {}}
            for name in NETWORKS:
                index = indexes[name]
                (own,) = [
                    b
                    for b in index.store.people_at_path(str(vtest.resolve()), query["frame"])
                    if np.allclose(b.box, query["box"], atol=0.01)
                ]
                own_sighting = index.sighting_of(own.box_id)
                for mode in MODES:
                    hits = index.search(
                        index.feature(own.box_id),
                        10,
                        per_frame=mode == "frame",
                        exclude_sightings=[own_sighting] if own_sighting is not None else (),
                    )
                    entry["rows"][f"{name}/{mode}"] = [
                        {"frame": h.frame, "box": [round(v, 1) for v in h.box], "score": round(h.score, 4)}
                        for h in hits
                    ]
                    cells = [index.thumbnail(own.box_id)] + [
                        decode_image(h.thumbnail_jpeg, "thumbnail") for h in hits if h.thumbnail_jpeg
                    ]
                    row = np.full((146, 11 * 68, 3), 255, np.uint8)
                    for k, cell in enumerate(cells):
                        row[2:130, k * 68 : k * 68 + 64] = cv2.resize(
                            cell, (64, 128), interpolation=cv2.INTER_CUBIC
                        )
                        cv2.putText(
                            row,
                            "q" if k == 0 else str(k),
                            (k * 68 + 26, 142),
                            cv2.FONT_HERSHEY_SIMPLEX,
                            0.4,
                            (0, 0, 0),
                            1,
                        )
                    cv2.putText(
                        row, f"{name}/{mode}", (2, 142), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (200, 0, 0), 1
                    )
                    rows.append(row)
            listing["queries"].append(entry)
            cv2.imwrite(str(WORK / f"query{qi}.png"), cv2.cvtColor(np.vstack(rows), cv2.COLOR_RGB2BGR))
        (WORK / "hits.json").write_text(json.dumps(listing, indent=1))
        print(
            f"wrote {len(queries)} sheets to {WORK}/query*.png and {WORK / 'hits.json'}; "
            f"judge them into {JUDGEMENTS}"
        )
    finally:
        for index in indexes.values():
            index.close()


def score(_: argparse.Namespace) -> None:
    judged = json.loads(JUDGEMENTS.read_text())
    table: dict[str, dict[str, list[float]]] = {}
    for query in judged["queries"]:
        for row, marks in query["rows"].items():
            flags = [c == "1" for c in marks]  # "?" (cannot tell) counts as wrong
            cell = table.setdefault(row, {"top1": [], "top10": [], "unsure": []})
            cell["top1"].append(float(flags[0]) if flags else 0.0)
            cell["top10"].append(sum(flags) / 10)
            cell["unsure"].append(marks.count("?") / 10)
    print(f"{len(judged['queries'])} queries ({judged['how_chosen']}); judged by eye")
    print(f"{'network/mode':18s} {'top-1 precision':>15s} {'top-10 precision':>16s} {'could not tell':>14s}")
    for row, cell in table.items():
        print(
            f"{row:18s} {np.mean(cell['top1']):15.2f} {np.mean(cell['top10']):16.2f} "
            f"{np.mean(cell['unsure']):14.2f}"
        )
    summary = {
        row: {
            "top1": float(np.mean(c["top1"])),
            "top10": float(np.mean(c["top10"])),
            "unsure": float(np.mean(c["unsure"])),
        }
        for row, c in table.items()
    }
    write_results(
        ROOT / "benchmarks" / "results" / "real_footage_check.json",
        {"queries": len(judged["queries"]), "precision": summary},
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("step", choices=["sheets", "score"])
    parser.add_argument("--vtest", type=Path, default=None)
    parser.add_argument("--stride", type=int, default=2)
    parser.add_argument("--queries", type=int, default=8)
    parser.add_argument("--fresh", action="store_true", help="rebuild the indexes and the adapted model")
    args = parser.parse_args()
    if args.fresh:
        shutil.rmtree(WORK, ignore_errors=True)
    {"sheets": sheets, "score": score}[args.step](args)


if __name__ == "__main__":
    main()
