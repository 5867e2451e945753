"""The page in a real browser: headless Chromium (Debian's ``chromium``) driven by Playwright,
against ``personsearch serve``'s app on a loopback port, with the shipped model on a tiny
synthetic gallery whose identities are known. A user clicks a detected person and must see the
same person first; filters, the hit's frame, pivoting, uploads with a drawn box and exports must
work as a user does them.

Without Chromium the tests are skipped, unless ``PERSONSEARCH_REQUIRE_BROWSER=1`` (CI sets it,
after installing Chromium) turns that into a failure. ``PERSONSEARCH_SCREENSHOTS=DIR`` keeps the
screenshots (docs/ has the README's).
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from personsearch.data import load_dataset
from personsearch.data.synthetic import make_synthetic
from personsearch.data.synthetic.walks import make_walks
from personsearch.index import PersonIndex
from personsearch.interfaces.api import SHIPPED_MODEL
from personsearch.interfaces.server import SearchService, create_app
from personsearch.models.bundle import ModelBundle

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
VIDEO_FPS = 2.0


def chromium_path() -> str | None:
    return (
        os.environ.get("PERSONSEARCH_CHROMIUM")
        or shutil.which("chromium")
        or shutil.which("chromium-browser")
    )


def _need_browser() -> str:
    path = chromium_path()
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        path = None
    if path is None:
        if os.environ.get("PERSONSEARCH_REQUIRE_BROWSER") == "1":
            pytest.fail(
                "PERSONSEARCH_REQUIRE_BROWSER=1 but no Chromium (apt-get install chromium) or no playwright "
                "(pip install playwright)"
            )
        pytest.skip(
            "no Chromium: apt-get install chromium (and pip install playwright) to run the browser tests"
        )
    return path


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x1, y1 = np.maximum(a[0], b[:, 0]), np.maximum(a[1], b[:, 1])
    x2, y2 = np.minimum(a[2], b[:, 2]), np.minimum(a[3], b[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter)


@dataclass
class Site:
    url: str
    index: Path
    truth: dict[tuple[str, int | None], tuple[np.ndarray, np.ndarray]]
    """(file name, frame) -> ground-truth boxes and identities."""
    scenes: dict[str, Path]
    bundle: ModelBundle
    """The shipped model, loaded once for every server of this module."""

    def identity(self, source: str, frame: int | None, box: list[float]) -> int:
        boxes, pids = self.truth[(Path(source).name, frame)]
        overlaps = _iou(np.asarray(box, np.float32), boxes)
        return int(pids[overlaps.argmax()]) if overlaps.max() >= 0.5 else -1


@contextmanager
def serving(app) -> Iterator[str]:
    """``app`` served by uvicorn on a free loopback port, for as long as the block runs; its URL."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}/"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """Scenes of the tiny benchmark's labelled people in two cameras: cam-a as photos, cam-b as a
    video (one scene per frame) and a video of people walking past, indexed with the shipped
    model; served by uvicorn on loopback."""
    _need_browser()
    work = tmp_path_factory.mktemp("browser")
    data = load_dataset(make_synthetic(work / "tiny", preset="tiny", seed=0).root)
    scenes = [s for s in data.gallery if (s.pids >= 0).any()]
    footage = work / "footage"
    (footage / "cam-a").mkdir(parents=True)
    (footage / "cam-b").mkdir()
    truth: dict[tuple[str, int | None], tuple[np.ndarray, np.ndarray]] = {}
    writer = cv2.VideoWriter(
        str(footage / "cam-b" / "entrance.avi"), cv2.VideoWriter_fourcc(*"MJPG"), VIDEO_FPS, (400, 300)
    )
    frame = 0
    for i, scene in enumerate(scenes):
        if i % 2 == 0:
            shutil.copy(scene.path, footage / "cam-a" / scene.name)
            truth[(scene.name, None)] = (scene.boxes, scene.pids)
        else:
            writer.write(cv2.imread(str(scene.path)))
            truth[("entrance.avi", frame)] = (scene.boxes, scene.pids)
            frame += 1
    writer.release()
    (walk,) = make_walks(work / "walks", seed=2, cameras=1, people=3, frames=40)
    shutil.move(walk, footage / "cam-b" / "walk.avi")  # people walking past: tracked into sightings
    # ONNX Runtime fp32 (agrees with PyTorch fp32 to 1e-5), not the machine's own choice: on an AVX2 Zen 3
    # the chooser takes the int8 box head, whose boxes changed the first hit of the search below
    bundle = ModelBundle(SHIPPED_MODEL, engine="ort-fp32")
    with PersonIndex.open(work / "index", bundle, create=True) as index:
        index.add_paths([footage], progress=False)
    with serving(create_app(SearchService(work / "index", bundle), allow_dirs=[footage])) as url:
        yield Site(url, work / "index", truth, {s.name: s.path for s in scenes}, bundle)


@pytest.fixture
def page(site: Site, tmp_path: Path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_need_browser(), args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1400, "height": 900}, accept_downloads=True)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.set_default_timeout(20_000)
        yield page
        browser.close()
        assert not errors, f"JavaScript errors on the page: {errors}"


def _screenshot(page, name: str, tmp_path: Path) -> None:
    folder = Path(os.environ.get("PERSONSEARCH_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / name))


def _cards(page) -> list[dict]:
    return page.eval_on_selector_all(
        "[data-testid=hit]", "cards => cards.map(c => ({box: +c.dataset.boxId, camera: c.dataset.camera}))"
    )


def _query_person(site: Site) -> tuple[int, str]:
    """The tallest labelled person in a cam-a photo whose identity appears at least twice more."""
    with PersonIndex.open(site.index) as index:
        rows = [
            (b.box_id, b.source, *b.box)
            for src in index.store.list_sources(camera="cam-a")[1]
            for b in index.store.people_in_frame(src.id, None)
        ]
    counts: dict[int, int] = {}
    for _, pids in site.truth.values():
        for pid in pids[pids >= 0]:
            counts[int(pid)] = counts.get(int(pid), 0) + 1
    best = max(
        (r for r in rows if counts.get(site.identity(r[1], None, list(r[2:])), 0) >= 3),
        key=lambda r: r[5] - r[3],
    )
    return int(best[0]), Path(best[1]).name


def test_click_a_person_then_filter_look_and_pivot(site: Site, page, tmp_path: Path) -> None:
    query_box, source_name = _query_person(site)
    page.goto(site.url)
    page.wait_for_function("() => document.getElementById('summary').textContent.includes('people')")
    page.click(f"#sources li:has-text('{source_name}')")
    person = page.locator(f"#overlay rect[data-box-id='{query_box}']")
    person.click(force=True)
    page.wait_for_selector("[data-testid=hit]")
    cards = _cards(page)
    assert query_box not in [c["box"] for c in cards]
    api = page.request.post(site.url + "api/search", data={"box_id": query_box, "top_k": 10}).json()
    assert [c["box"] for c in cards] == [h["box_id"] for h in api["hits"]]
    first = api["hits"][0]
    wanted = site.identity(api["query"]["source"], None, api["query"]["box"])
    assert wanted >= 0 and site.identity(first["source"], first["frame"], first["box"]) == wanted, (
        "first hit is not the query person"
    )
    page.wait_for_function(
        "() => [...document.querySelectorAll('#hits img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    _screenshot(page, "web-search.png", tmp_path)

    # camera filter: only cam-b (the video), placed on the timeline
    page.uncheck("#camera-filter input[value='cam-a']")
    page.click("#filters button[type=submit]")
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=hit]')].every(c => c.dataset.camera === 'cam-b')"
    )
    assert {c["camera"] for c in _cards(page)} == {"cam-b"}
    assert page.locator("[data-testid=timeline-svg] circle").count() == len(_cards(page))

    # the hit's whole frame with its box
    page.click("[data-testid=hit] img >> nth=0")
    page.wait_for_selector("#hit-dialog[open]")
    page.wait_for_function("() => document.getElementById('dialog-img').naturalWidth === 400")
    assert page.locator("#dialog-overlay rect").count() == 1
    page.click("#hit-dialog button")

    # pivot: search from a hit
    pivot_box = _cards(page)[0]["box"]
    page.click("[data-testid=pivot] >> nth=0")
    page.wait_for_function(
        f"() => document.getElementById('query-text').textContent.includes('person {pivot_box} ')"
    )

    # exports: the search JSON, and the HTML report
    with page.expect_download() as download:
        page.click("#export-json")
    exported = json.loads(Path(download.value.path()).read_text())
    assert exported["schema"] == "personsearch.search-results" and exported["query"]["box"] is not None
    with page.expect_download() as download:
        page.click("#export-html")
    assert "Person search results" in Path(download.value.path()).read_text()


def test_a_person_walking_past_is_one_result_with_its_span_and_frames(
    site: Site, page, tmp_path: Path
) -> None:
    with PersonIndex.open(site.index) as index:
        walk = next(s for s in index.store.list_sources(camera="cam-b")[1] if s.name == "walk.avi")
        ids, frames, _, _ = index.store.video_boxes(walk.id)
        longest = max({index.sighting_of(int(i)) for i in ids}, key=lambda g: index.sighting(g).boxes)
        best = index.sighting(longest).best_box
        position = sorted(set(frames.tolist())).index(index.store.get_box(best).frame)
    page.goto(site.url)
    page.click("#sources li:has-text('walk.avi')")
    page.wait_for_selector("#frame-controls:not([hidden])")
    page.select_option("#frame-select", str(position))
    page.locator(f"#overlay rect[data-box-id='{best}']").click(force=True)
    page.wait_for_selector("[data-testid=hit]")
    result = page.evaluate("() => window.personsearchLastResult")
    sightings = [h["sighting"]["id"] for h in result["hits"] if h["sighting"] is not None]
    # one card per sighting, not the query's own
    assert len(sightings) == len(set(sightings)) and longest not in sightings
    walks = [h for h in result["hits"] if h["sighting"] is not None and h["sighting"]["boxes"] > 1]
    assert walks and page.locator("[data-testid=span]").count() == len(walks)
    assert page.locator(".strip img").count() == sum(len(h["sighting"]["sample_boxes"]) for h in walks)
    page.wait_for_function(
        "() => [...document.querySelectorAll('#hits img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    _screenshot(page, "web-sightings.png", tmp_path)
    # the whole walk as the query, then every frame as its own result
    page.click("[data-testid=search-sighting] >> nth=0")
    page.wait_for_function(
        "() => document.getElementById('query-text').textContent.includes('every frame of the sighting')"
    )
    page.check("#per-frame")
    with page.expect_response("**/api/search") as response:
        page.click("#filters button[type=submit]")
    assert response.value.request.post_data_json["per_frame"] is True
    page.wait_for_function(
        "() => window.personsearchLastResult.hits.some((h, i, all) => h.sighting && "
        "all.findIndex(o => o.sighting && o.sighting.id === h.sighting.id) !== i)"
    )
    per_frame = page.evaluate("() => window.personsearchLastResult")
    ids = [h["sighting"]["id"] for h in per_frame["hits"] if h["sighting"] is not None]
    assert len(ids) > len(set(ids))  # several frames of one walk
    # re-ranked by neighbours: the page asks for it and shows the hits it gets, best first
    page.uncheck("#per-frame")
    page.check("#rerank")
    with page.expect_response("**/api/search") as response:
        page.click("#filters button[type=submit]")
    assert response.value.request.post_data_json["rerank"] is True
    reranked = response.value.json()["hits"]
    assert reranked and all(a["score"] >= b["score"] for a, b in zip(reranked, reranked[1:], strict=False))


def test_browse_the_frames_of_a_video(site: Site, page, tmp_path: Path) -> None:
    sources = page.request.get(site.url + "api/sources?camera=cam-b").json()["sources"]
    video = next(src for src in sources if src["name"] == "entrance.avi")
    indexed = page.request.get(site.url + f"api/sources/{video['id']}/frames").json()["frames"]
    page.goto(site.url)
    page.click("#sources li:has-text('entrance.avi')")
    page.wait_for_selector("#frame-controls:not([hidden])")
    options = page.eval_on_selector_all("#frame-select option", "options => options.map(o => o.textContent)")
    assert len(options) == len(indexed) >= 2 and options[0].startswith(f"frame {indexed[0]['frame']} ")
    page.wait_for_selector("#overlay rect")
    page.click("#next-frame")
    page.wait_for_function("() => document.getElementById('frame-select').value === '1'")
    page.wait_for_function(
        f"() => document.querySelectorAll('#overlay rect').length === {indexed[1]['people']}"
    )


def test_upload_a_photo_and_draw_the_box(site: Site, page, tmp_path: Path) -> None:
    name, (boxes, pids) = next((k[0], v) for k, v in site.truth.items() if k[1] is None and (v[1] >= 0).any())
    target = boxes[int(np.argmax(np.where(pids >= 0, boxes[:, 3] - boxes[:, 1], -1)))]
    page.goto(site.url)
    page.set_input_files("[data-testid=upload]", str(site.scenes[name]))
    page.wait_for_function("() => document.getElementById('stage-help').textContent.includes('drag')")
    shown = page.locator("#stage-img").bounding_box()
    scale = shown["width"] / 400

    def at(x: float, y: float) -> tuple[float, float]:
        return float(shown["x"] + x * scale), float(shown["y"] + y * scale)

    page.mouse.move(*at(target[0], target[1]))
    page.mouse.down()
    page.mouse.move(*at((target[0] + target[2]) / 2, (target[1] + target[3]) / 2), steps=4)
    page.mouse.move(*at(target[2], target[3]), steps=4)
    page.mouse.up()
    page.wait_for_selector("[data-testid=hit]")
    result = page.evaluate("() => window.personsearchLastResult")
    drawn = np.array(result["query"]["box"])
    assert np.abs(drawn - target).max() <= 2 / scale + 1, (drawn, target)
    first = result["hits"][0]
    # the uploaded photo is indexed too: its own person comes first, nearly identical
    assert Path(first["source"]).name == name and first["score"] > 0.9
    assert _iou(np.asarray(first["box"], np.float32), target[None])[0] > 0.5
    page.wait_for_function(
        "() => [...document.querySelectorAll('#hits img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    _screenshot(page, "web-upload.png", tmp_path)


def test_errors_show_in_the_page_not_as_traces(site: Site, page, tmp_path: Path) -> None:
    page.goto(site.url)
    page.set_input_files(
        "[data-testid=upload]",
        files=[{"name": "notes.png", "mimeType": "image/png", "buffer": b"just text, not a picture"}],
    )
    page.wait_for_selector("#banner.error")
    text = page.inner_text("#banner")
    assert "not a JPEG, PNG, WebP or BMP image" in text and "HTTP 415" in text and "Traceback" not in text


def test_a_token_protected_server_asks_for_the_token(site: Site, page) -> None:
    """With --token, the page (public, data-free) shows the login form; the right token sets the
    same-site cookie, after which the page and its images load."""
    with serving(create_app(SearchService(site.index, site.bundle), token="let-me-in")) as url:
        page.goto(url)
        page.wait_for_selector("#login:not([hidden])")
        assert "access token" in page.inner_text("#login")
        page.fill("#token", "wrong")
        page.click("#login button")
        # the page's first, unauthorised load already put its own 401 in the banner: wait for the
        # login's answer, not for any error
        page.wait_for_function("() => document.getElementById('banner').textContent.includes('wrong token')")
        assert page.locator("#banner.error").is_visible()
        page.fill("#token", "let-me-in")
        page.click("#login button")
        page.wait_for_selector("#sources li")
        assert page.locator("#banner").is_hidden() and page.locator("#login").is_hidden()
        page.click("#sources li >> nth=0")
        page.wait_for_function("() => document.getElementById('stage-img').naturalWidth > 0")


def test_the_api_docs_page_shows_the_operations(site: Site, page) -> None:
    """Swagger UI at /docs, served by this server: it renders its operations offline, under the
    same Content-Security-Policy as the page (FastAPI's default /docs loads it from a CDN and
    stayed blank)."""
    page.goto(site.url + "docs")
    page.wait_for_selector(".opblock")
    text = page.inner_text("#swagger-ui")
    assert "/api/search" in text and "/api/sources" in text


def test_the_first_screen_shows_no_broken_images(site: Site, page) -> None:
    """Before a source or a query is picked, the scene and query images have nothing to show:
    they are hidden, not drawn as broken-image placeholders."""
    page.goto(site.url)
    page.wait_for_selector("#sources li")
    broken = page.evaluate(
        "() => [...document.images]"
        ".filter(i => i.offsetParent !== null && !(i.complete && i.naturalWidth > 0))"
        ".map(i => i.id)"
    )
    assert broken == []
    page.click("#sources li >> nth=0")
    page.wait_for_function("() => document.getElementById('stage-img').naturalWidth > 0")
    assert page.locator("#stage-img").is_visible()


def test_learn_this_camera_from_the_page(
    site: Site, page, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server started with --allow-adapt shows "Learn this camera": a name and a budget, then
    the job's stage and progress, then where the adapted model was saved and how to give the
    index its features. Without --allow-adapt the section is not there."""
    page.goto(site.url)
    page.wait_for_selector("#sources li")
    assert not page.locator("#adapting").is_visible()
    monkeypatch.setenv("PERSONSEARCH_CACHE", str(tmp_path / "cache"))
    app = create_app(SearchService(site.index, site.bundle), adapt_from=SHIPPED_MODEL)
    with serving(app) as url:
        page.goto(url)
        page.wait_for_selector("#adapting", state="visible")
        page.fill("#adapt-name", "lobby")
        page.fill("#adapt-budget", "20s")
        page.click("#adapt-form button")
        page.wait_for_function(
            "() => document.getElementById('adapt-status').textContent.startsWith('saved as lobby')",
            timeout=180_000,
        )
        _screenshot(page, "adapt.png", tmp_path)
        status = page.inner_text("#adapt-status")
    assert "tracklets" in status and "personsearch reembed" in status and "--model lobby" in status
    assert "(rounds 1: " in status and " steps, " in status  # each round's classes, steps and seconds
    assert (tmp_path / "cache" / "models" / "lobby" / "reid.json").is_file()
