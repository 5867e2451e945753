"""The detector before and after learning real people from unlabelled footage, on frames it did
not learn from: against pseudo ground truth, and as a contact sheet to judge by eye.

    personsearch adapt-detector vtest.avi --out adapted --synthetic data/synthetic-standard --until 50
    python benchmarks/detector_adaptation.py --video vtest.avi --adapted adapted --from-s 50

The adapted bundle learned from the video's first ``--from-s`` seconds; this scores the rest (the
same camera at later times, other passes of the people: say so when quoting it). Detectors: the
starting bundle's (synthetic only), the adapted one (both at the deployment threshold 0.5) and
SSDLite (COCO-trained, the off-the-shelf reference). Pseudo ground truth on the held-out frames
is made by the very rules the adaptation learns from (SSDLite + HOG agreement confirmed by
tracks), so it favours SSDLite: read recall against it as "finds the people both off-the-shelf
detectors vouch for", and use the contact sheet (``--sheet``: rows = frames spread over the
held-out part, columns = the three detectors) for everything else. Writes
``benchmarks/results/detector_adaptation.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from run_info import ROOT, commit, machine, write_results

from personsearch.data.boxes import box_iou
from personsearch.index.sources import Sampling, discover, iter_frames, video_info
from personsearch.interfaces.report import draw_box
from personsearch.models.bundle import ModelBundle
from personsearch.models.external_detectors import build_external_detector
from personsearch.training.adapt_detector import PseudoLabelConfig, agreed, confirmed, link_tracks


def match(dets: np.ndarray, truth: np.ndarray, unsure: np.ndarray) -> dict[str, int]:
    """Detections matched one to one to truth at IoU >= 0.5; unmatched ones over an unsure box
    (IoU >= 0.5) are ignored, the rest are extra boxes."""
    hit = agreed(dets, truth, 0.5)
    ignored = np.zeros(len(dets), dtype=bool)
    if len(unsure) and (~hit).any():
        ignored[~hit] = box_iou(dets[~hit, :4], unsure[:, :4]).max(axis=1) >= 0.5
    return {
        "truth": len(truth),
        "found": int(hit.sum()),
        "extra": int((~hit & ~ignored).sum()),
        "ignored": int(ignored.sum()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--video", type=Path, required=True)
    parser.add_argument(
        "--adapted", type=Path, required=True, help="bundle written by personsearch adapt-detector"
    )
    parser.add_argument(
        "--name",
        default="adapted",
        help="the --adapted bundle's detector's name (e.g. 'rendered scenes' for one tuned on them)",
    )
    parser.add_argument(
        "--start",
        type=Path,
        default=ROOT / "personsearch" / "assets" / "default",
        help="the bundle it was adapted from",
    )
    parser.add_argument(
        "--from-s",
        type=float,
        required=True,
        help="where the held-out part begins (the adaptation's --until)",
    )
    parser.add_argument("--fps", type=float, default=2.0, help="held-out frames scored per second")
    parser.add_argument("--sheet", type=Path, default=ROOT / "docs" / "real-footage-detector-adapt.jpg")
    parser.add_argument("--sheet-frames", type=int, default=5)
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results" / "detector_adaptation.json"
    )
    args = parser.parse_args()

    rules = PseudoLabelConfig(fps=args.fps)
    start_frame = round(args.from_s * video_info(args.video).fps)
    (source,), _ = discover([args.video])
    detectors = {
        "synthetic-only (shipped)": ModelBundle(args.start).detect,
        args.name: ModelBundle(args.adapted).detect,
        "SSDLite": build_external_detector("ssdlite").detect,
    }
    hog = build_external_detector("hog")
    outputs: dict[str, list[np.ndarray]]
    frames, boxes, agreement, outputs = [], [], [], {name: [] for name in detectors}
    for frame in iter_frames(source, start_frame=start_frame, sampling=Sampling(fps=args.fps)):
        for name, detect in detectors.items():
            outputs[name].append(detect([frame.image])[0])
        ssd = outputs["SSDLite"][-1]
        ssd = ssd[(ssd[:, 4] >= rules.ssd_score) & (ssd[:, 3] - ssd[:, 1] >= rules.min_height)]
        boxes.append(ssd)
        agreement.append(agreed(ssd, hog.detect([frame.image])[0], rules.agree_iou))
        frames.append(frame.frame)
    people = confirmed(link_tracks(boxes, rules.link_iou), agreement, rules.min_track, rules.min_agreement)
    totals: dict[str, dict[str, int]] = {}
    for name, dets in outputs.items():
        per_frame = [
            match(d[d[:, 4] >= 0.5], b[p], b[~p]) for d, b, p in zip(dets, boxes, people, strict=True)
        ]
        totals[name] = {k: sum(m[k] for m in per_frame) for k in per_frame[0]}

    # the contact sheet: frames spread over the held-out part, one column per detector
    picks = np.linspace(0, len(frames) - 1, args.sheet_frames).round().astype(int).tolist()
    colours = dict(zip(detectors, ((230, 60, 60), (40, 200, 40), (40, 120, 255)), strict=True))
    rows = []
    wanted = {frames[i] for i in picks}
    for frame in iter_frames(source, start_frame=start_frame, sampling=Sampling(fps=args.fps)):
        if frame.frame not in wanted:
            continue
        k = frames.index(frame.frame)
        cells = []
        for name in detectors:
            cell = frame.image
            for det in outputs[name][k]:
                if det[4] >= 0.5:
                    cell = draw_box(cell, det[:4], colours[name])
            cell = cv2.resize(cell, (cell.shape[1] // 2, cell.shape[0] // 2), interpolation=cv2.INTER_AREA)
            cv2.putText(
                cell,
                f"{name} f{frame.frame}",
                (6, 18),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.5,
                (255, 255, 255),
                1,
                cv2.LINE_AA,
            )
            cells.append(cell)
        rows.append(np.hstack(cells))
    args.sheet.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(
        str(args.sheet), cv2.cvtColor(np.vstack(rows), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85]
    )

    results: dict[str, Any] = {
        "benchmark": "detector_adaptation",
        "command": "python benchmarks/detector_adaptation.py " + shlex.join(sys.argv[1:]),
        "commit": commit(),
        "machine": machine(),
        "video": str(args.video),
        "held_out": {
            "from_s": args.from_s,
            "start_frame": start_frame,
            "frames": len(frames),
            "fps": args.fps,
        },
        "adapted": str(args.adapted),
        "adapted_name": args.name,
        "pseudo_truth_rules": asdict(rules),
        "detectors": totals,
        "sheet": {"path": str(args.sheet), "frames": [frames[i] for i in picks]},
    }
    write_results(args.out, results, default=str)
    print(
        f"{len(frames)} held-out frames of {args.video} from {args.from_s:.0f} s; pseudo ground truth: "
        f"{totals['SSDLite']['truth']} people"
    )
    print(f"{'detector':26s} {'found':>7s} {'recall':>7s} {'extra boxes':>12s} {'on unsure':>10s}")
    for name, t in totals.items():
        print(
            f"{name:26s} {t['found']:7d} {100 * t['found'] / max(t['truth'], 1):6.1f}% "
            f"{t['extra']:12d} {t['ignored']:10d}"
        )
    print(f"wrote {args.out} and {args.sheet}")


if __name__ == "__main__":
    main()
