"""Contact sheets for checking a benchmark by eye: look-alike identities at several scales
(``make_contact_sheet``, drawn people), and a written benchmark's queries with their appearances
(``query_sheet``, any people).

Each row is one identity; rows come in look-alike pairs (same family: same coarse look). Each
identity is drawn front and back at several person heights and every cell is scaled up to the
same display height with bilinear interpolation, so the loss of detail at small scale is visible:
at 240 px the pair differs in logo, bag, hair, glasses...; at 30 px they should look the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from personsearch.data.images import crop_box, read_image
from personsearch.data.records import PersonSearchDataset
from personsearch.data.synthetic.drawing import composite
from personsearch.data.synthetic.figures import figure
from personsearch.data.synthetic.identities import Identity, Pose
from personsearch.data.synthetic.plan import population, resolve_config

_BACKGROUND = (206, 206, 200)
_VIEWS = ("front", "back")


def _cell(
    identity: Identity, view: str, height: int, display_height: int, cell_width: int, blur: float
) -> Image.Image:
    """The identity drawn ``height`` px tall on a plain ground, blurred like a camera, scaled up to
    ``display_height``."""
    fig = figure(identity, Pose(view, 0.35, -0.25, "none"))
    width = max(fig.box_width(height), 1)
    pad = max(height // 10, 1)
    canvas = np.empty((height + 2 * pad, width + 2 * pad, 3), np.float32)
    canvas[:] = _BACKGROUND
    composite(canvas, fig.render(height), pad, pad)
    small = Image.fromarray(canvas.clip(0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(blur))
    scale = display_height / small.height
    big = small.resize((max(round(small.width * scale), 1), display_height), Image.Resampling.BILINEAR)
    cell = Image.new("RGB", (cell_width, display_height), _BACKGROUND)
    cell.paste(
        big.crop((0, 0, min(big.width, cell_width), display_height)),
        (max((cell_width - big.width) // 2, 0), 0),
    )
    return cell


def make_contact_sheet(
    out_png: Path,
    seed: int = 0,
    preset: str = "small",
    *,
    families: int = 3,
    heights: Sequence[int] = (30, 60, 120, 240),
    display_height: int = 240,
    blur: float = 0.6,
    **overrides: object,
) -> Path:
    """Write a PNG of ``families`` look-alike pairs from the benchmark's training identities.

    The identities are those ``make_synthetic(preset=preset, seed=seed, **overrides)`` uses.
    Columns: front and back views at each of ``heights`` pixels, blurred by ``blur`` pixels (a
    typical camera of the benchmark; 0 for the bare drawing). Returns ``out_png``.
    """
    if not heights or min(heights) < 4 or max(heights) > 2048:
        raise ValueError(
            f"contact sheet heights {list(heights)}: expected person heights between 4 and 2048 px"
        )
    if not 16 <= display_height <= 2048:
        raise ValueError(f"display_height={display_height}: expected 16..2048 px")
    train, _ = population(resolve_config(preset, **overrides), seed)
    by_family: dict[int, list[Identity]] = {}
    for identity in train:
        by_family.setdefault(identity.family, []).append(identity)
    pairs = [members[:2] for members in by_family.values() if len(members) >= 2][:families]
    if not pairs:
        raise ValueError(f"preset {preset!r} with {overrides} has no family with two identities to compare")

    label_w, header_h, cell_w, gap = 150, 24, int(display_height * 0.55), 6
    columns = [(view, h) for view in _VIEWS for h in heights]
    rows = [(f, identity) for f, pair in enumerate(pairs) for identity in pair]
    sheet = Image.new(
        "RGB",
        (
            label_w + len(columns) * (cell_w + gap),
            header_h + len(rows) * (display_height + gap) + (len(pairs) - 1) * gap * 2,
        ),
        (255, 255, 255),
    )
    draw = ImageDraw.Draw(sheet)
    for c, (view, h) in enumerate(columns):
        draw.text((label_w + c * (cell_w + gap) + 4, 6), f"{view} {h}px", fill=(0, 0, 0))
    y = header_h
    for r, (f, identity) in enumerate(rows):
        if r and rows[r - 1][0] != f:
            y += gap * 2
            draw.line([(0, y - gap * 1.5), (sheet.width, y - gap * 1.5)], fill=(120, 120, 120), width=2)
        details = [
            f"family {identity.family}",
            f"{identity.top} top, {identity.bottom} {identity.bottom_type}",
            f"logo {identity.logo}",
            f"bag {identity.bag}",
            f"hair {identity.hair}",
            f"hat {identity.hat}",
            f"glasses {identity.glasses}",
            f"shoes {identity.shoes}",
        ]
        draw.multiline_text((4, y + 4), "\n".join(details), fill=(0, 0, 0), spacing=3)
        for c, (view, h) in enumerate(columns):
            sheet.paste(
                _cell(identity, view, h, display_height, cell_w, blur), (label_w + c * (cell_w + gap), y)
            )
        y += display_height + gap
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out_png, format="PNG")
    return out_png


def query_sheet(
    dataset: PersonSearchDataset, out_png: Path, *, rows: int = 6, per_row: int = 8, display_height: int = 160
) -> Path:
    """Write a PNG of the first ``rows`` CUHK queries of a written benchmark: each row the query
    (left of a line) and its appearances in its smallest gallery, cut from the images and scaled to
    ``display_height``, label (pid, person height) above each. For people whose look the generator
    does not know (rendered ones), what the drawn sheet's families show: one identity across
    images, views and scales. Returns ``out_png``."""
    queries = [q for q in dataset.queries if q.galleries][:rows]
    if not queries:
        raise ValueError(f"{dataset.root}: no query with a protocol gallery to draw")
    paths = {s.name: s.path for s in dataset.gallery}
    cell_w, header, gap = int(display_height * 0.6), 14, 6
    sheet = Image.new(
        "RGB", ((per_row + 1) * (cell_w + gap) + gap, len(queries) * (display_height + header + gap)), "white"
    )
    draw = ImageDraw.Draw(sheet)
    for r, query in enumerate(queries):
        appearances = [
            (paths[g.name], g.box) for g in query.galleries[min(query.galleries)] if g.box is not None
        ]
        y = r * (display_height + header + gap)
        for c, (path, box) in enumerate([(query.path, query.box), *appearances[:per_row]]):
            left = gap + c * (cell_w + gap) + (gap if c else 0)
            crop = Image.fromarray(crop_box(read_image(path), box))
            scale = display_height / max(crop.height, 1)
            crop = crop.resize(
                (min(max(round(crop.width * scale), 1), cell_w), display_height), Image.Resampling.BILINEAR
            )
            sheet.paste(crop, (left + (cell_w - crop.width) // 2, y + header))
            draw.text((left, y), f"{query.pid}, {float(box[3] - box[1]):.0f}px", fill=0)
        line_x = gap + cell_w + gap
        draw.line([(line_x, y), (line_x, y + header + display_height)], fill=(120, 120, 120), width=2)
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out_png, format="PNG")
    return out_png
