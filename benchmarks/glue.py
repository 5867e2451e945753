"""The PyTorch code around the engines' networks: torchvision's against this project's, step by
step and for a whole indexing step (detect -> crop -> embed).

    python benchmarks/glue.py                      # the shipped model
    python benchmarks/glue.py --bundle models/mine

What it compares (``models/box_logic.py``, engines revision 7, and ``data.crops.crop_boxes``):
the detector's input transform (torchvision's ``GeneralizedRCNNTransform`` against
``InferenceTransform``, with the largest difference of their outputs), its anchors
(``AnchorGenerator`` against ``CachedAnchors``), cutting the re-id crops of the detected people
(torchvision's ``roi_align``, what ``crop_boxes`` ran before, against ``crop_boxes``) and the
whole indexing step with each. The networks run on the engines ``auto`` picks on this machine
(the detector on ``ort-fp32`` where ``auto`` picks a PyTorch engine: the box logic of the
PyTorch reference is torchvision's own).

Inputs: the engine chooser's 12 crowded check scenes (800 x 600, 8-12 people each), and the same
scenes scaled to 1920 x 1080 camera frames (which the detector scales back to 1000 x 562).
Timing, step by step as ``engines.py`` times engines (``time_engines``): ``--rounds`` rounds; in
each, both variants run over all the scenes (best of 2 calls), in an order reversed every other
round; ms per scene are medians over rounds, the speed-up the median of per-round ratios. Writes
``benchmarks/results/glue-<cpu signature>.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from engines import time_engines
from run_info import write_per_cpu_results
from torchvision.ops import roi_align

from personsearch.data.crops import clip_or_refuse, crop_boxes
from personsearch.interfaces.api import SHIPPED_MODEL
from personsearch.models import engine_choice, engines
from personsearch.models.bundle import ModelBundle
from personsearch.models.detector import PersonDetector, image_tensors

Crop = Callable[[np.ndarray, np.ndarray, tuple[int, int]], torch.Tensor]


def torchvision_crops(image: np.ndarray, boxes: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """``crop_boxes`` as it was: torchvision's single-threaded ``roi_align`` on the whole image."""
    height, width = image.shape[:2]
    clipped = torch.from_numpy(clip_or_refuse(boxes, width, height))
    rois = torch.cat([torch.zeros(len(clipped), 1), clipped], dim=1)
    chw = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()
    return roi_align(chw, rois, size, 1.0, 2, aligned=True).round().clamp(0, 255).to(torch.uint8)


def as_frame(scene: np.ndarray, height: int, width: int) -> np.ndarray:
    """``scene`` scaled to ``height`` x ``width`` (bilinear), as a camera would have seen it."""
    chw = torch.from_numpy(scene).permute(2, 0, 1)[None].float()
    scaled = torch.nn.functional.interpolate(chw, size=(height, width), mode="bilinear", align_corners=False)
    return scaled[0].permute(1, 2, 0).round().clamp(0, 255).byte().contiguous().numpy()


def compare(old: Callable[[], Any], new: Callable[[], Any], frames: int, rounds: int) -> dict[str, float]:
    """torchvision's code (``old``, in the reference's place) against ours (``new``), alternating
    as ``engines.time_engines`` times engines: ms per scene of each, and the median of per-round
    speed-ups."""
    timing = time_engines({engines.REFERENCE: old, "ours": new}, frames, rounds, calls=2)
    return {
        "torchvision_ms": 1000 / timing[engines.REFERENCE]["per_s"],
        "ours_ms": 1000 / timing["ours"]["per_s"],
        "x": timing["ours"]["x_fp32"],
    }


def frame_rows(
    bundle: ModelBundle, old: PersonDetector, new: PersonDetector, frames: list[np.ndarray], rounds: int
) -> dict[str, Any]:
    """Every step over ``frames`` (ms per scene), and what the two transforms differ by."""
    size = tuple(bundle.reid_config.input_size)
    images = image_tensors(frames)
    with torch.no_grad():
        batches = [(old.transform([image])[0], new.transform([image])[0]) for image in images]
        boxes = [engines.as_detections(new([image]))[0][:, :4] for image in images]
    maps = [[torch.zeros(1, 1, *(side // 16 for side in ours.tensors.shape[-2:]))] for _, ours in batches]

    def transform(detector: PersonDetector) -> Callable[[], Any]:
        return lambda: [detector.transform([image]) for image in images]

    def anchors(detector: PersonDetector, which: int) -> Callable[[], Any]:
        return lambda: [
            detector.rpn.anchor_generator(batch[which], fmap)
            for batch, fmap in zip(batches, maps, strict=True)
        ]

    def crops(crop: Crop) -> Callable[[], Any]:
        return lambda: [
            crop(frame, found, size) for frame, found in zip(frames, boxes, strict=True) if len(found)
        ]

    @torch.no_grad()
    def index_step(detector: PersonDetector, crop: Crop) -> None:
        for frame, image in zip(frames, images, strict=True):
            found = engines.as_detections(detector([image]))[0][:, :4]
            if len(found):
                # the re-id engine auto picked, in the bundle's batches
                bundle.embed_crops(crop(frame, found, size))

    steps = {
        "transform": (transform(old), transform(new)),
        "anchors": (anchors(old, 0), anchors(new, 1)),
        "crops of the people found": (crops(torchvision_crops), crops(crop_boxes)),
        "indexing step: detect, crop, embed": (
            lambda: index_step(old, torchvision_crops),
            lambda: index_step(new, crop_boxes),
        ),
    }
    timing = {
        name: compare(old_run, new_run, len(frames), rounds) for name, (old_run, new_run) in steps.items()
    }
    difference = max(float((theirs.tensors - ours.tensors).abs().max()) for theirs, ours in batches)
    return {
        "frames": len(frames),
        "people": int(sum(len(b) for b in boxes)),
        "transform_max_abs_diff": difference,
        "steps": timing,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bundle", type=Path, default=SHIPPED_MODEL)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    bundle = ModelBundle(args.bundle)
    choice = bundle.engine_choice
    engine = choice.detector if choice.detector in engines.GRAPH_ENGINES else "ort-fp32"
    model, cpu = bundle.detector_network, torch.device("cpu")
    # exports (and quantises) once
    engines.detector_runner(model, engine, cpu, bundle.engine_dir, engine_choice.calibration_scenes)
    parts = [bundle.engine_dir / part for part in engines.DETECTOR_PARTS]
    if engine == "ort-int8-head":
        parts[2] = engines.quantize_box_head_int8(
            model, parts, bundle.engine_dir, engine_choice.calibration_scenes
        )
    new = cast(PersonDetector, engines.graph_detector(model, parts, engine))
    old = cast(PersonDetector, engines.graph_detector(model, parts, engine))
    old.transform = copy.deepcopy(
        model.transform
    ).eval()  # torchvision's transform and anchors; RoIAlign sparse in both
    old.rpn.anchor_generator = new.rpn.anchor_generator.generator

    scenes = engine_choice.check_scenes()
    sizes = {"800x600": scenes, "1920x1080": [as_frame(scene, 1080, 1920) for scene in scenes]}
    rows = {name: frame_rows(bundle, old, new, frames, args.rounds) for name, frames in sizes.items()}
    out, results = write_per_cpu_results(
        "glue",
        {
            "bundle": str(args.bundle),
            "detector_engine": engine,
            "reid_engine": choice.reid,
            "rounds": args.rounds,
            "sizes": rows,
        },
        args.out,
    )
    signature = results["signature"]
    print(
        f"{signature['cpu']} ({signature['torch_capability']}), {torch.get_num_threads()} threads; "
        f"detector {engine}, re-id {choice.reid}"
    )
    print(f"{'ms per scene':36s} {'frames':>10s} {'torchvision':>12s} {'ours':>8s} {'x':>6s}")
    for name, row in rows.items():
        for step, timing in row["steps"].items():
            print(
                f"{step:36s} {name:>10s} {timing['torchvision_ms']:12.2f} "
                f"{timing['ours_ms']:8.2f} {timing['x']:6.2f}"
            )
        print(
            f"{'  (people found; transform max diff)':36s} {name:>10s} {row['people']:12d} "
            f"{row['transform_max_abs_diff']:8.1e}"
        )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
