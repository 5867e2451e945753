"""Carry a rendered-people crop folder to a lent GPU machine, whose calls take at most 64 MiB of
files each: ``pack`` re-encodes the training crops as WebP in parts that travel one call each,
``unpack`` (run there) writes them back as lossless PNG in the Market-1501 layout, so training
there reads them with the product's own loader.

    python benchmarks/carry_crops.py pack data/people3d-v3 .gpu --parts 3 --quality 85
    python benchmarks/carry_crops.py unpack .gpu/part1 .gpu/part2 .gpu/part3 --out /tmp/people3d-v3

WebP at quality 85 is about half the size of the renderer's JPEG (quality 92): a second lossy
step, which a run trained on unpacked crops records (``people3d.json``'s ``carried`` field).
"""

from __future__ import annotations

import argparse
import json
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from PIL import Image

TRAIN = "bounding_box_train"


def _to_webp(job: tuple[Path, Path, int]) -> int:
    source, target, quality = job
    Image.open(source).convert("RGB").save(target, "WEBP", quality=quality, method=6)
    return target.stat().st_size


def _to_png(job: tuple[Path, Path]) -> None:
    source, target = job
    Image.open(source).convert("RGB").save(target, "PNG", compress_level=1)


def pack(root: Path, out: Path, parts: int, quality: int, workers: int) -> None:
    files = sorted((root / TRAIN).glob("*.jpg"))
    if not files:
        raise SystemExit(f"{root / TRAIN}: no .jpg crops (expected a rendered-people folder)")
    jobs = []
    for i, path in enumerate(files):
        folder = out / f"part{i * parts // len(files) + 1}"
        folder.mkdir(parents=True, exist_ok=True)
        jobs.append((path, folder / f"{path.stem}.webp", quality))
    with ProcessPoolExecutor(workers) as pool:
        total = sum(pool.map(_to_webp, jobs, chunksize=64))
    info = json.loads((root / "people3d.json").read_text())
    info["carried"] = {"format": "webp", "quality": quality, "from": str(root)}
    (out / "part1" / "people3d.json").write_text(json.dumps(info, indent=1))
    print(f"{len(files)} crops, {total / 2**20:.1f} MiB in {parts} parts under {out}")


def unpack(parts: list[Path], out: Path, workers: int) -> None:
    (out / TRAIN).mkdir(parents=True, exist_ok=True)
    jobs = [
        (path, out / TRAIN / f"{path.stem}.png") for part in parts for path in sorted(part.glob("*.webp"))
    ]
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_to_png, jobs, chunksize=64))
    for part in parts:
        if (part / "people3d.json").is_file():
            shutil.copyfile(part / "people3d.json", out / "people3d.json")
    print(f"{len(jobs)} crops unpacked into {out / TRAIN}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="stage", required=True)
    p = sub.add_parser("pack")
    p.add_argument("root", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--parts", type=int, default=3)
    p.add_argument("--quality", type=int, default=85)
    p.add_argument("--workers", type=int, default=2)
    p = sub.add_parser("unpack")
    p.add_argument("parts", type=Path, nargs="+")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--workers", type=int, default=8)
    args = parser.parse_args()
    if args.stage == "pack":
        pack(args.root, args.out, args.parts, args.quality, args.workers)
    else:
        unpack(args.parts, args.out, args.workers)


if __name__ == "__main__":
    main()
