"""Visual reports: a self-contained, escaped HTML page and a contact-sheet PNG."""

from __future__ import annotations

import base64
import html
import io
import re
from pathlib import Path

import numpy as np
import pytest
from index_testkit import BLUE, GREEN, RED, YELLOW, ColourEngine, draw_scene, write_png, write_video
from PIL import Image

from personsearch.data.records import Scene
from personsearch.index import PersonIndex, hits_from_json, hits_to_json
from personsearch.interfaces.api import query_from_scene
from personsearch.interfaces.demo import ground_truth_verdicts
from personsearch.interfaces.report import (
    BOX_COLOUR,
    MATCH_COLOUR,
    MISS_COLOUR,
    QUERY_COLOUR,
    write_contact_sheet,
    write_html_report,
)

WEIRD_NAME = "<b>Tom & 'Jerry'\".png"


def _search(tmp_path: Path, per_frame: bool = False):
    weird = write_png(
        tmp_path / "g" / "cam<1>" / WEIRD_NAME, draw_scene([(10, 10, RED, BLUE), (60, 10, GREEN, YELLOW)])
    )
    plain = write_png(tmp_path / "g" / "cam2" / "plain.png", draw_scene([(100, 60, RED, GREEN)]))
    write_video(tmp_path / "g" / "cam3" / "walk.avi", frames=3, colours=(YELLOW, BLUE))
    engine = ColourEngine()
    with PersonIndex.open(tmp_path / "idx", engine, create=True) as index:
        index.add_paths([tmp_path / "g"], progress=False)
        query = query_from_scene(engine, weird, box=(10, 10, 30, 50))
        hits = index.search(query.feature, 10, per_frame=per_frame)
    return query, hits, weird, plain


def _data_images(page: str) -> list[np.ndarray]:
    uris = re.findall(r'src="data:image/jpeg;base64,([A-Za-z0-9+/=]+)"', page)
    return [
        np.asarray(Image.open(io.BytesIO(base64.b64decode(uri, validate=True))).convert("RGB"))
        for uri in uris
    ]


def test_html_report_is_self_contained_escaped_and_draws_the_box(tmp_path: Path) -> None:
    query, hits, weird, plain = _search(tmp_path)
    assert hits[0].source == str(weird) and hits[0].score > 0.999
    plain.unlink()  # a moved source: its thumbnail still shows, its scene is reported missing
    out = write_html_report(tmp_path / "out" / "report.html", query.crop, hits, notes={"index": "idx <main>"})
    page = out.read_text(encoding="utf-8")
    assert html.escape(str(weird)) in page and WEIRD_NAME not in page and "<b>Tom" not in page
    assert "idx &lt;main&gt;" in page and "camera: cam&lt;1&gt;" in page
    assert page.count('class="hit"') == 4  # 3 people in images, and the video's one person as one sighting
    assert (
        "seen frames 0-2 (0.00-0.20 s), in 3 sampled frames" in page
        and page.count('alt="sighting frame"') == 3
    )
    assert "scene unavailable:" in page and html.escape(str(plain)) in page
    images = _data_images(page)
    assert len(images) == 1 + 4 + 3 + 3  # query, 4 thumbnails, the walk's 3 frames, 3 readable scenes
    assert images[0].shape == (40, 20, 3)
    scene = images[2]  # the best hit's scene: the weird-named image with box (10, 10, 30, 50)
    assert scene.shape == (120, 160, 3)
    bottom_edge = scene[50, 15:26].astype(int).mean(axis=0)
    assert np.abs(bottom_edge - BOX_COLOUR).max() < 40
    assert 'src="http' not in page and "<script" not in page


def test_contact_sheet_puts_the_query_first_then_the_hits(tmp_path: Path) -> None:
    query, hits, _, _ = _search(tmp_path, per_frame=True)
    from_json = hits_from_json(hits_to_json(hits))  # without thumbnails: people are cut from their scenes
    for name, chosen in (("sheet.png", hits), ("from_json.png", from_json)):
        out = write_contact_sheet(tmp_path / name, query.crop, chosen, columns=3, cell_size=(60, 120))
        sheet = np.asarray(Image.open(out).convert("RGB"))
        pad, label = 6, 46
        assert sheet.shape == (3 * (120 + label + pad) + pad, 3 * (60 + pad) + pad, 3)  # 7 cells in 3 columns
        assert sheet[pad + 1, pad + 30].tolist() == list(QUERY_COLOUR)  # the query's frame
        # query and best hit are the same red-over-blue person, enlarged 3x into the cell
        for x0 in (pad, pad + 60 + pad):
            assert np.abs(sheet[pad + 30, x0 + 30].astype(int) - RED).max() < 30
            assert np.abs(sheet[pad + 90, x0 + 30].astype(int) - BLUE).max() < 30
        assert (sheet[pad + 120 + 2 : pad + 120 + label, pad : pad + 60] < 100).any()  # a text label


def test_ground_truth_verdicts_mark_right_and_wrong_hits(tmp_path: Path) -> None:
    query, hits, weird, plain = _search(tmp_path)
    hits = hits[:3]
    verdicts = [True, False, None][: len(hits)]
    page = write_html_report(tmp_path / "r.html", query.crop, hits, verdicts=verdicts).read_text(
        encoding="utf-8"
    )
    assert (
        page.count('class="hit match"') == 1
        and page.count('class="hit miss"') == 1
        and page.count('class="hit"') == 1
    )
    assert "same person (ground truth)" in page and "another person (ground truth)" in page
    sheet = np.asarray(
        Image.open(
            write_contact_sheet(tmp_path / "r.png", query.crop, hits, columns=4, cell_size=(60, 120))
        ).convert("RGB")
    )
    marked = np.asarray(
        Image.open(
            write_contact_sheet(
                tmp_path / "m.png", query.crop, hits, columns=4, cell_size=(60, 120), verdicts=verdicts
            )
        ).convert("RGB")
    )
    pad = 6
    frame_pixel = [marked[pad + 1, pad + (60 + pad) * cell + 30].tolist() for cell in (1, 2, 3)]
    assert frame_pixel[:2] == [list(MATCH_COLOUR), list(MISS_COLOUR)]
    assert frame_pixel[2] == sheet[pad + 1, pad + (60 + pad) * 3 + 30].tolist()  # unknown: unframed
    with pytest.raises(ValueError, match="2 ground-truth verdicts for 3 hits"):
        write_html_report(tmp_path / "bad.html", query.crop, hits, verdicts=[True, False])


def test_verdicts_follow_the_protocol_iou_rule(tmp_path: Path) -> None:
    query, hits, weird, plain = _search(tmp_path)
    # the weird-named image's person at (10, 10, 30, 50): 20 x 40, IoU threshold min(0.5, 800 / 1500) = 0.5
    hit = hits[0]
    x1, y1, x2, y2 = hit.box
    scenes = [
        # IoU 0.8 with person 7
        Scene("w.png", weird, boxes=[[x1, y1, x2, y2 + 10], [60, 10, 80, 50]], pids=[7, 8]),
        Scene("p.png", plain, boxes=[[100, 60, 120, 100]], pids=[8]),
    ]
    assert hit.source == str(weird)
    order = [hit, next(h for h in hits if h.source == str(plain))]
    assert ground_truth_verdicts(order, scenes, pid=7) == [True, False]
    assert ground_truth_verdicts(order, scenes, pid=8) == [False, True]
    shifted = [Scene("w.png", weird, boxes=[[x1, y1 + 14, x2, y2 + 14]], pids=[7])]  # IoU 26/54 = 0.48 < 0.5
    assert ground_truth_verdicts([hit], shifted, pid=7) == [False]
    assert ground_truth_verdicts([hit], scenes[1:], pid=7) == [None]  # a file outside the benchmark
