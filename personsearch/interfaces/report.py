"""Visual search reports: a self-contained HTML page and a one-image contact sheet.

The HTML page shows the query crop, then for every hit its thumbnail, score, source, frame/time
and camera (for a person tracked through a video: the sighting's span and a strip of its frames), and the
whole scene (re-read from the image or video file) with the box drawn. Every image is inlined as a base64 data
URI, so the page can be mailed or archived as one file; every piece of text is HTML-escaped (file names can
contain ``<``, ``&`` or quotes).
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from personsearch.data.images import ImageReadError, crop_box, encode_jpeg
from personsearch.index.hits import Hit
from personsearch.index.sources import read_frame

BOX_COLOUR = (0, 220, 255)
"""Cyan: stands out on most scenes and clothing."""
QUERY_COLOUR = (40, 200, 40)
MATCH_COLOUR = (40, 200, 40)
MISS_COLOUR = (220, 40, 40)
VERDICT_TEXT = {True: "same person (ground truth)", False: "another person (ground truth)"}
"""Labels for hits judged against annotations (a benchmark's gallery, the demo)."""


def _check_verdicts(hits: Sequence[Hit], verdicts: Sequence[bool | None] | None) -> list[bool | None]:
    if verdicts is None:
        return [None] * len(hits)
    if len(verdicts) != len(hits):
        raise ValueError(f"{len(verdicts)} ground-truth verdicts for {len(hits)} hits")
    return list(verdicts)


def _data_uri(jpeg: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")


def _fit(image: np.ndarray, max_width: int, max_height: int, *, enlarge: bool = True) -> np.ndarray:
    """Resize to fit ``max_width`` x ``max_height`` keeping the aspect ratio."""
    scale = min(max_width / image.shape[1], max_height / image.shape[0])
    if scale >= 1 and not enlarge:
        return image
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(image, size, interpolation=interpolation)


class _Scenes:
    """Scene frames of hits, each decoded once per report."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, int | None], np.ndarray | str] = {}

    def get(self, hit: Hit) -> np.ndarray | str:
        """The frame as RGB, or the reason it cannot be read (the file moved, changed, ...)."""
        key = (hit.source, hit.frame)
        if key not in self._cache:
            try:
                self._cache[key] = read_frame(hit.source, hit.frame)
            except (ImageReadError, ValueError, OSError) as err:
                self._cache[key] = str(err)
        return self._cache[key]

    def person(self, hit: Hit) -> np.ndarray | None:
        """The hit's person: its stored thumbnail, else cut from the scene."""
        if hit.thumbnail_jpeg is not None:
            return hit.thumbnail()
        scene = self.get(hit)
        return None if isinstance(scene, str) else crop_box(scene, hit.box)


def draw_box(
    image: np.ndarray, box: Sequence[float], colour: tuple[int, int, int] = BOX_COLOUR
) -> np.ndarray:
    """A copy of ``image`` with an xyxy box outlined (line width scaled to the image)."""
    out = image.copy()
    thickness = max(2, round(max(image.shape[:2]) / 300))
    x1, y1, x2, y2 = (round(float(v)) for v in box)
    cv2.rectangle(out, (x1, y1), (x2, y2), colour, thickness)
    return out


def _when(hit: Hit) -> str:
    if hit.frame is None:
        return "image"
    return f"frame {hit.frame}" + ("" if hit.time is None else f", {hit.time:.2f} s")


def _span(hit: Hit) -> str:
    """A sighting's time span and size: "seen frames 0-90 (0.00-3.60 s), in 10 sampled frames"."""
    s = hit.sighting
    if s is None:
        return ""
    times = "" if s.start_time is None or s.end_time is None else f" ({s.start_time:.2f}-{s.end_time:.2f} s)"
    return (
        f"seen frames {s.first_frame}-{s.last_frame}{times}, in {s.boxes} sampled "
        f"frame{'s' if s.boxes != 1 else ''}"
    )


_STYLE = """
body { font-family: sans-serif; margin: 1.5em; background: #fafafa; color: #222; }
.query img { max-height: 256px; }
table.notes td { padding: 0 1em 0 0; }
.hit { display: flex; gap: 1em; align-items: flex-start; background: #fff; border: 1px solid #ddd;
       padding: 0.6em; margin: 0.6em 0; }
.hit .thumb img { height: 128px; }
.hit .scene img { max-width: 640px; max-height: 480px; }
.meta { font-size: 0.9em; min-width: 16em; }
.meta .score { font-size: 1.3em; font-weight: bold; }
.path { word-break: break-all; font-family: monospace; }
.walk img { height: 64px; margin-right: 2px; }
.missing { color: #a00; }
.verdict { font-weight: bold; }
""" + "".join(
    f".{selector} {{ border: 3px solid rgb{colour}; }}\n"
    for selector, colour in (
        ("query img", QUERY_COLOUR),
        ("hit.match", MATCH_COLOUR),
        ("hit.miss", MISS_COLOUR),
    )
)
"""The page's CSS; frame colours are the contact sheet's."""


def write_html_report(
    out_html: str | Path, query_crop: np.ndarray, hits: Sequence[Hit], **options: object
) -> Path:
    """Write ``html_report(query_crop, hits, **options)`` to ``out_html``; returns the path."""
    out_html = Path(out_html)
    out_html.parent.mkdir(parents=True, exist_ok=True)
    out_html.write_text(html_report(query_crop, hits, **options), encoding="utf-8")  # type: ignore[arg-type]
    return out_html


def html_report(
    query_crop: np.ndarray,
    hits: Sequence[Hit],
    *,
    title: str = "Person search results",
    notes: Mapping[str, str] | None = None,
    scene_max_side: int = 640,
    verdicts: Sequence[bool | None] | None = None,
) -> str:
    """A self-contained HTML page of the query and its hits (see module docstring).

    ``notes`` (e.g. index, model, filters) are listed under the title. ``verdicts`` (one per hit:
    True / False / None = unknown), when annotations say whether a hit is the query person, frame
    each hit green or red and say so.
    """
    marks = _check_verdicts(hits, verdicts)
    scenes = _Scenes()
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
    ]
    if notes:
        rows = "".join(
            f'<tr><td>{esc(str(k))}</td><td class="path">{esc(str(v))}</td></tr>' for k, v in notes.items()
        )
        parts.append(f'<table class="notes">{rows}</table>')
    parts.append(
        '<div class="query"><h2>Query</h2><img alt="query person" '
        f'src="{_data_uri(encode_jpeg(np.ascontiguousarray(query_crop)))}"></div>'
    )
    parts.append(f"<h2>{len(hits)} best matches</h2>")
    for hit, verdict in zip(hits, marks):
        person = scenes.person(hit)
        thumb = (
            '<span class="missing">no thumbnail</span>'
            if person is None
            else f'<img alt="person {hit.rank}" src="{_data_uri(encode_jpeg(person))}">'
        )
        scene = scenes.get(hit)
        if isinstance(scene, str):
            scene_html = f'<span class="missing">scene unavailable: {esc(scene)}</span>'
        else:
            drawn = _fit(draw_box(scene, hit.box), scene_max_side, scene_max_side, enlarge=False)
            scene_html = f'<img alt="scene of person {hit.rank}" src="{_data_uri(encode_jpeg(drawn))}">'
        box = ", ".join(f"{v:.0f}" for v in hit.box)
        css = {True: "hit match", False: "hit miss", None: "hit"}[verdict]
        verdict_html = "" if verdict is None else f'<div class="verdict">{VERDICT_TEXT[verdict]}</div>'
        parts.append(
            f'<div class="{css}">'
            f'<div class="thumb">{thumb}</div>'
            '<div class="meta">'
            f'<div class="score">#{hit.rank} &middot; {hit.score:.3f}</div>'
            f"{verdict_html}"
            f'<div class="path">{esc(hit.source)}</div>'
            f"<div>{esc(_when(hit))}</div>"
            + (f"<div>{esc(_span(hit))}</div>" if hit.sighting is not None else "")
            + (
                '<div class="walk">'
                + "".join(
                    f'<img alt="sighting frame" src="{_data_uri(jpeg)}">' for jpeg in hit.sighting_thumbnails
                )
                + "</div>"
                if hit.sighting_thumbnails
                else ""
            )
            + f"<div>camera: {esc(hit.camera)}</div>"
            f"<div>box: {esc(box)} &middot; detection {hit.detection_score:.2f}</div>"
            "</div>"
            f'<div class="scene">{scene_html}</div>'
            "</div>"
        )
    parts.append("</body></html>")
    return "\n".join(parts)


def _ascii(text: str) -> str:
    """OpenCV's Hershey fonts draw ASCII only."""
    return text.encode("ascii", "replace").decode("ascii")


_FONT, _FONT_SCALE = cv2.FONT_HERSHEY_SIMPLEX, 0.38


def _text_width(text: str) -> int:
    return cv2.getTextSize(text, _FONT, _FONT_SCALE, 1)[0][0]


def _shorten(text: str, width: int) -> str:
    """``text``, or its end behind "..", narrow enough to draw in ``width`` pixels."""
    text = _ascii(text)
    if _text_width(text) <= width:
        return text
    for start in range(1, len(text)):
        if _text_width(".." + text[start:]) <= width:
            return ".." + text[start:]
    return ""


def _label(cell: np.ndarray, lines: Sequence[str], top: int) -> None:
    for i, line in enumerate(lines):
        cv2.putText(
            cell,
            _shorten(line, cell.shape[1] - 4),
            (2, top + 13 + 14 * i),
            _FONT,
            _FONT_SCALE,
            (20, 20, 20),
            1,
            cv2.LINE_AA,
        )


def write_contact_sheet(
    out_png: str | Path,
    query_crop: np.ndarray,
    hits: Sequence[Hit],
    *,
    columns: int = 6,
    cell_size: tuple[int, int] = (96, 192),
    verdicts: Sequence[bool | None] | None = None,
) -> Path:
    """Write one PNG grid: the query (green frame) then the hits in rank order, each labelled with
    rank, score, file name and frame/time. ``cell_size`` is the (width, height) of each picture.
    ``verdicts`` as in ``write_html_report``: a green (same person) or red (another) frame and a
    "+" / "x" after the rank."""
    marks = _check_verdicts(hits, verdicts)
    if columns < 1:
        raise ValueError(f"columns must be >= 1, got {columns}")
    cell_w, cell_h = cell_size
    label_h, pad = 46, 6
    scenes = _Scenes()
    cells: list[tuple[np.ndarray | None, list[str], tuple[int, int, int] | None]] = [
        (query_crop, ["query"], QUERY_COLOUR)
    ]
    for hit, verdict in zip(hits, marks):
        when = (
            "image"
            if hit.frame is None
            else f"f{hit.frame}" + ("" if hit.time is None else f" {hit.time:.1f}s")
        )
        if hit.sighting is not None and hit.sighting.boxes > 1:
            when += f" +{hit.sighting.boxes - 1}f"
        mark = {True: " +", False: " x", None: ""}[verdict]
        lines = [f"#{hit.rank}{mark}  {hit.score:.3f}", Path(hit.source).name, when]
        colour = {True: MATCH_COLOUR, False: MISS_COLOUR, None: None}[verdict]
        cells.append((scenes.person(hit), lines, colour))
    rows = -(-len(cells) // columns)
    sheet = np.full(
        (rows * (cell_h + label_h + pad) + pad, min(columns, len(cells)) * (cell_w + pad) + pad, 3),
        255,
        np.uint8,
    )
    for i, (picture, lines, frame_colour) in enumerate(cells):
        x0 = pad + (i % columns) * (cell_w + pad)
        y0 = pad + (i // columns) * (cell_h + label_h + pad)
        cell = sheet[y0 : y0 + cell_h + label_h, x0 : x0 + cell_w]
        cell[:cell_h] = 235
        if picture is None:
            _label(cell, ["unavailable"], cell_h // 2)
        else:
            fitted = _fit(np.ascontiguousarray(picture), cell_w, cell_h)
            oy, ox = (cell_h - fitted.shape[0]) // 2, (cell_w - fitted.shape[1]) // 2
            cell[oy : oy + fitted.shape[0], ox : ox + fitted.shape[1]] = fitted
        if frame_colour is not None:
            cv2.rectangle(cell, (0, 0), (cell_w - 1, cell_h - 1), frame_colour, 3)
        _label(cell, lines, cell_h)
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sheet).save(out_png, format="PNG")
    return out_png
