"""The web service's API (FastAPI test client): every endpoint, the hostile cases a service on a
network meets (path tricks, bombs, wrong content, no token, floods), and the OpenAPI schema
fuzzed by schemathesis. The engine is index_testkit's colour engine, so who matches whom is
known by hand: people with the same two colours are the same person."""

from __future__ import annotations

import io
import os
import struct
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from index_testkit import BLUE, GREEN, RED, YELLOW, ColourEngine, draw_scene, write_png, write_video
from PIL import Image
from schemathesis.checks import not_a_server_error
from typer.testing import CliRunner

from personsearch.index import PersonIndex, hits_from_json
from personsearch.index.store import IndexStore
from personsearch.interfaces.cli import app as cli_app
from personsearch.interfaces.server import SearchService, create_app


def _footage(root: Path) -> Path:
    """Two cameras: cam-a has two scenes, cam-b a scene and a 6-frame walk (10 fps)."""
    write_png(root / "cam-a" / "one.png", draw_scene([(10, 20, RED, BLUE), (60, 30, GREEN, YELLOW)]))
    write_png(root / "cam-a" / "two.png", draw_scene([(70, 50, RED, BLUE)]))
    write_png(root / "cam-b" / "three.png", draw_scene([(20, 60, GREEN, YELLOW), (80, 10, BLUE, RED)]))
    write_video(root / "cam-b" / "walk.avi", frames=6)
    return root


def _index(directory: Path, paths: list[Path], engine: ColourEngine | None = None) -> Path:
    with PersonIndex.open(directory, engine or ColourEngine(), create=True) as index:
        index.add_paths(paths, progress=False)
    return directory


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = _footage(tmp_path_factory.mktemp("footage"))
    return root, _index(tmp_path_factory.mktemp("index") / "index", [root])


@pytest.fixture(scope="module")
def client(built: tuple[Path, Path]) -> TestClient:
    root, index = built
    with TestClient(create_app(SearchService(index, ColourEngine()), allow_dirs=[root])) as c:
        yield c


def _png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def _box_of(client: TestClient, source_name: str, colours: tuple) -> int:
    """Box id of the person in ``source_name`` whose thumbnail has the given top colour."""
    sources = client.get("/api/sources", params={"limit": 500}).json()["sources"]
    (source,) = [s for s in sources if s["name"] == source_name]
    people = client.get(f"/api/sources/{source['id']}/people").json()["people"]
    for person in people:
        thumb = np.array(
            Image.open(io.BytesIO(client.get(f"/api/boxes/{person['box_id']}/thumbnail").content))
        )
        if np.abs(thumb[2, thumb.shape[1] // 2].astype(int) - colours).max() < 40:
            return person["box_id"]
    raise AssertionError(f"no person with top colour {colours} in {source_name}")


# ---------------------------------------------------------------------------- browsing
def test_summary_lists_counts_cameras_and_time_span(client: TestClient) -> None:
    s = client.get("/api/summary").json()
    assert s["indexed"] and s["images"] == 3 and s["videos"] == 1
    assert s["people"] == 5 + 6  # five in the scenes, one in each video frame
    assert [c["camera"] for c in s["cameras"]] == ["cam-a", "cam-b"]
    assert s["time_span"] == pytest.approx([0.0, 0.5])
    assert s["model"] == {"model_id": "colour-histogram-v1", "usable": True, "problem": None}
    assert s["can_index"] is True


def test_sources_frames_people_and_pixels(client: TestClient, built: tuple[Path, Path]) -> None:
    page = client.get("/api/sources", params={"limit": 2}).json()
    assert page["total"] == 4 and len(page["sources"]) == 2
    cam_b = client.get("/api/sources", params={"camera": "cam-b"}).json()["sources"]
    assert sorted(s["name"] for s in cam_b) == ["three.png", "walk.avi"]
    video = next(s for s in cam_b if s["kind"] == "video")
    frames = client.get(f"/api/sources/{video['id']}/frames").json()
    assert frames["total"] == 6 and [f["frame"] for f in frames["frames"]] == list(range(6))
    assert frames["frames"][3]["time"] == pytest.approx(0.3)
    people = client.get(f"/api/sources/{video['id']}/people", params={"frame": 3}).json()["people"]
    assert len(people) == 1 and people[0]["box"][0] == pytest.approx(10 + 4 * 3, abs=2)
    jpeg = client.get(f"/api/sources/{video['id']}/image", params={"frame": 3})
    assert jpeg.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(jpeg.content)).size == (160, 120)
    assert client.get(f"/api/sources/{video['id']}/people").status_code == 422  # a video needs a frame
    box = client.get(f"/api/boxes/{people[0]['box_id']}").json()
    assert box["source_id"] == video["id"] and box["frame"] == 3 and box["camera"] == "cam-b"
    thumb = client.get(f"/api/boxes/{people[0]['box_id']}/thumbnail")
    assert thumb.headers["content-type"] == "image/jpeg" and Image.open(io.BytesIO(thumb.content)).size == (
        20,
        40,
    )
    for missing in (
        "/api/sources/999",
        "/api/boxes/999",
        "/api/boxes/999/thumbnail",
        "/api/sources/999/image",
    ):
        response = client.get(missing)
        assert response.status_code == 404 and "no " in response.json()["detail"], missing


# ---------------------------------------------------------------------------- searching
def test_search_by_indexed_person_is_the_cli_json_without_the_query_itself(client: TestClient) -> None:
    query = _box_of(client, "one.png", RED)
    result = client.post("/api/search", json={"box_id": query, "top_k": 20}).json()
    hits = hits_from_json(result)  # the CLI's schema, checked
    assert query not in [h.box_id for h in hits]
    assert result["query"]["source"].endswith("one.png") and result["query"]["box"] is not None
    # red and blue (in two.png, three.png and the video's walk: a histogram ignores the order) score 1;
    # the walk is one sighting (one hit), or six hits frame by frame
    assert [round(h.score, 4) for h in hits[:3]] == [1.0] * 3 and hits[3].score < 0.99
    walk = next(h for h in hits if h.kind == "video")
    assert walk.sighting is not None and (
        walk.sighting.first_frame,
        walk.sighting.last_frame,
        walk.sighting.boxes,
    ) == (0, 5, 6)
    per_frame = hits_from_json(
        client.post("/api/search", json={"box_id": query, "top_k": 20, "per_frame": True}).json()
    )
    assert [round(h.score, 4) for h in per_frame[:8]] == [1.0] * 8 and per_frame[8].score < 0.99
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
    with_self = client.post("/api/search", json={"box_id": query, "include_query": True, "top_k": 3}).json()
    assert query in [h["box_id"] for h in with_self["hits"]]
    # re-ranked (the page's "re-rank" box): the same people, one hit per sighting, scores best first
    document = client.post("/api/search", json={"box_id": query, "top_k": 20, "rerank": True}).json()
    reranked = hits_from_json(document)
    assert (document["ranking"], result["ranking"]) == ("k-reciprocal", "cosine")
    assert sorted(h.box_id for h in reranked) == sorted(h.box_id for h in hits)
    assert all(a.score >= b.score for a, b in zip(reranked, reranked[1:], strict=False))


def test_search_filters_by_camera_time_and_source(client: TestClient) -> None:
    query = _box_of(client, "one.png", RED)
    cam_b = client.post("/api/search", json={"box_id": query, "camera": ["cam-b"], "top_k": 50}).json()[
        "hits"
    ]
    assert cam_b and {h["camera"] for h in cam_b} == {"cam-b"}
    timed = client.post(
        "/api/search",
        json={"box_id": query, "time_from": 0.15, "time_to": 0.35, "top_k": 50, "per_frame": True},
    ).json()["hits"]
    assert sorted(h["frame"] for h in timed) == [2, 3]
    (walk,) = client.post("/api/search", json={"box_id": query, "time_from": 0.15, "time_to": 0.35}).json()[
        "hits"
    ]
    # the span is the whole walk
    assert walk["frame"] in (2, 3) and (walk["sighting"]["first_frame"], walk["sighting"]["last_frame"]) == (
        0,
        5,
    )
    two = client.post("/api/search", json={"box_id": query, "source": "two.png"}).json()["hits"]
    assert [h["source"].endswith("two.png") for h in two] == [True]
    bad = client.post("/api/search", json={"box_id": query, "time_from": 2, "time_to": 1})
    assert bad.status_code == 422 and "after its end" in bad.json()["detail"]
    assert client.post("/api/search", json={"box_id": query, "top_k": 0}).status_code == 422
    assert client.post("/api/search", json={"top_k": 3}).status_code == 422  # no query at all


def test_search_report_is_the_html_report(client: TestClient) -> None:
    query = _box_of(client, "one.png", GREEN)
    response = client.post("/api/search/report", json={"box_id": query, "top_k": 3})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert "attachment" in response.headers["content-disposition"]
    assert "Person search results" in response.text and response.text.count('class="hit') == 3


def test_upload_detects_people_and_searches_by_pick_or_box(client: TestClient) -> None:
    single = client.post(
        "/api/uploads", files={"file": ("q.png", _png(draw_scene([(40, 40, GREEN, YELLOW)])), "image/png")}
    ).json()
    assert len(single["people"]) == 1 and (single["width"], single["height"]) == (160, 120)
    hits = client.post("/api/search", json={"upload": single["upload"]}).json()["hits"]
    assert hits[0]["score"] == pytest.approx(1.0, abs=1e-4) and {
        hits[0]["source"].rsplit("/", 1)[1],
        hits[1]["source"].rsplit("/", 1)[1],
    } == {
        "one.png",
        "three.png",
    }
    pair = client.post(
        "/api/uploads",
        files={
            "file": ("p.png", _png(draw_scene([(10, 10, RED, BLUE), (60, 60, GREEN, YELLOW)])), "image/png")
        },
    ).json()
    ambiguous = client.post("/api/search", json={"upload": pair["upload"]})
    assert ambiguous.status_code == 422 and "2 people detected" in ambiguous.json()["detail"]
    drawn = client.post(
        "/api/search", json={"upload": pair["upload"], "box": [10, 10, 30, 50], "top_k": 1}
    ).json()
    assert drawn["query"] == {
        "source": None,
        "frame": None,
        "box": [10.0, 10.0, 30.0, 50.0],
        "note": None,
    } and drawn["hits"][0]["score"] == pytest.approx(1.0, abs=1e-4)
    # a photo that is already a crop of one person is searched whole, and the answer says so
    crop = client.post(
        "/api/uploads",
        files={"file": ("c.png", _png(draw_scene([(0, 0, GREEN, YELLOW)], size=(40, 20))), "image/png")},
    ).json()
    whole = client.post("/api/search", json={"upload": crop["upload"], "top_k": 1}).json()
    assert whole["query"]["box"] == [0.0, 0.0, 20.0, 40.0] and "taken whole" in whole["query"]["note"]
    assert whole["hits"][0]["score"] == pytest.approx(1.0, abs=1e-4)
    outside = client.post("/api/search", json={"upload": pair["upload"], "box": [500, 500, 600, 600]})
    assert outside.status_code == 422
    gone = client.post("/api/search", json={"upload": "no-such-upload"})
    assert gone.status_code == 404 and "upload the image again" in gone.json()["detail"]


def _png_bomb(width: int, height: int) -> bytes:
    """A valid PNG header declaring ``width`` x ``height`` with a tiny body (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def test_hostile_uploads_are_refused_before_decoding(built: tuple[Path, Path]) -> None:
    _, index = built
    app = create_app(
        SearchService(index, ColourEngine(), max_upload_pixels=1_000_000), max_upload_bytes=50_000
    )
    with TestClient(app) as c:

        def post(data: bytes, name: str = "x.png", kind: str = "image/png"):
            return c.post("/api/uploads", files={"file": (name, data, kind)})

        bomb = post(_png_bomb(30_000, 30_000))
        assert bomb.status_code == 413 and "decompression bomb" in bomb.json()["detail"]
        over = post(_png_bomb(2_000, 2_000))  # 4 MP: under Pillow's own bound, over this server's 1 MP
        assert over.status_code == 413 and "over the limit of 1,000,000" in over.json()["detail"]
        script = post(b"<script>alert(1)</script>", "evil.png")
        assert script.status_code == 415 and "judged by its content" in script.json()["detail"]
        assert post(b"").status_code == 422
        truncated = post(b"\xff\xd8\xff\xe0" + b"\x00" * 100, "broken.jpg", "image/jpeg")
        assert truncated.status_code == 422 and "not a readable image" in truncated.json()["detail"]
        big = post(os.urandom(80_000))
        assert big.status_code == 413 and "limit of 50,000 bytes" in big.json()["detail"]
        head = (
            b'--b\r\nContent-Disposition: form-data; name="file"; filename="x.png"\r\n'
            b"Content-Type: image/png\r\n\r\n"
        )
        chunks = iter([head + b"x" * 30_000, b"x" * 30_000, b"x" * 30_000, b"\r\n--b--\r\n"])
        chunked = c.post(
            "/api/uploads", content=chunks, headers={"content-type": "multipart/form-data; boundary=b"}
        )
        assert chunked.status_code == 413  # no Content-Length: counted as it streams
        assert (
            c.post(
                "/api/search",
                content=b"{" + b" " * 2_000_000 + b"}",
                headers={"content-type": "application/json"},
            ).status_code
            == 413
        )


def test_requests_reach_files_only_by_id(client: TestClient) -> None:
    for path in (
        "/api/sources/..%2F..%2F..%2Fetc%2Fpasswd/image",
        "/api/sources/%2Fetc%2Fpasswd/image",
        "/api/sources/1/image?frame=..%2F..%2Fetc%2Fpasswd",
        "/api/sources/-1/image",
        "/api/boxes/1%2F..%2F2/thumbnail",
        "/static/..%2F..%2Fapp.py",
        "/static/%2Fetc%2Fpasswd",
        "/static/../server/app.py",
    ):
        response = client.get(path)
        assert response.status_code in (404, 422), (path, response.status_code)
        assert b"root:" not in response.content and b"create_app" not in response.content


def test_a_changed_or_swapped_source_file_is_not_served(tmp_path: Path) -> None:
    scene = write_png(tmp_path / "cam" / "a.png", draw_scene([(10, 10, RED, BLUE)]))
    secret = write_png(tmp_path / "elsewhere" / "secret.png", draw_scene([(50, 50, GREEN, GREEN)]))
    index = _index(tmp_path / "index", [scene])
    with TestClient(create_app(SearchService(index, ColourEngine()))) as c:
        assert c.get("/api/sources/1/image").status_code == 200
        stat = scene.stat()
        scene.unlink()
        scene.symlink_to(secret)
        os.utime(scene, ns=(stat.st_atime_ns, stat.st_mtime_ns), follow_symlinks=False)
        swapped = c.get("/api/sources/1/image")
        assert swapped.status_code == 410 and "re-index" in swapped.json()["detail"]
        scene.unlink()
        gone = c.get("/api/sources/1/image")
        assert gone.status_code == 410 and "no longer there" in gone.json()["detail"]


# ---------------------------------------------------------------------------- indexing jobs
class GatedEngine(ColourEngine):
    """Waits at every detect call until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.waiting = threading.Event()

    def detect(self, images: list[np.ndarray]) -> list[np.ndarray]:
        self.waiting.set()
        assert self.gate.wait(30), "test never opened the gate"
        return super().detect(images)


def _wait_job(c: TestClient, job_id: int) -> dict:
    for _ in range(300):
        job = c.get(f"/api/index-jobs/{job_id}").json()
        if job["state"] != "running":
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} still running")


def test_indexing_job_runs_beside_searches_and_refuses_a_second_writer(
    tmp_path: Path, built: tuple[Path, Path]
) -> None:
    footage, _ = built
    index = _index(tmp_path / "index", [footage / "cam-a"])
    engine = GatedEngine()
    with TestClient(create_app(SearchService(index, engine), allow_dirs=[footage])) as c:
        # every frame (default: 5 a second)
        job = c.post("/api/index-jobs", json={"paths": ["cam-b"], "camera": "lobby", "stride": 1})
        assert job.status_code == 202, job.text
        assert engine.waiting.wait(10)
        # indexing is stuck inside the model, and searching still answers at once
        query = _box_of(c, "one.png", RED)
        started = time.perf_counter()
        assert c.post("/api/search", json={"box_id": query}).status_code == 200
        assert time.perf_counter() - started < 5
        second = c.post("/api/index-jobs", json={"paths": ["cam-a"]})
        assert second.status_code == 409 and "still running" in second.json()["detail"]
        engine.gate.set()
        done = _wait_job(c, job.json()["id"])
        assert done["state"] == "done" and done["people_added"] == 2 + 6 and done["frames_done"] == 7
        assert {cam["camera"] for cam in c.get("/api/summary").json()["cameras"]} == {"cam-a", "lobby"}
        lobby = c.post(
            "/api/search", json={"box_id": query, "camera": ["lobby"], "top_k": 50, "per_frame": True}
        ).json()["hits"]
        assert len(lobby) == 8 and {h["camera"] for h in lobby} == {"lobby"}
        walks = c.post("/api/search", json={"box_id": query, "camera": ["lobby"], "top_k": 50}).json()["hits"]
        # the video, tracked once the job finished it
        assert len(walks) == 3 and c.get("/api/summary").json()["sightings"] == 1
        # another process holding the writer lock: refused the same way
        other = IndexStore.open(index)
        other.acquire_writer()
        try:
            busy = c.post("/api/index-jobs", json={"paths": ["cam-a"]})
            assert busy.status_code == 409 and "another process" in busy.json()["detail"]
        finally:
            other.close()


def test_cancelling_a_job_keeps_what_it_committed(tmp_path: Path, built: tuple[Path, Path]) -> None:
    footage, _ = built
    engine = GatedEngine()
    with TestClient(create_app(SearchService(tmp_path / "index", engine), allow_dirs=[footage])) as c:
        job = c.post("/api/index-jobs", json={"paths": [str(footage)], "stride": 1}).json()
        assert engine.waiting.wait(10)
        assert c.delete(f"/api/index-jobs/{job['id']}").json()["id"] == job["id"]
        engine.gate.set()
        done = _wait_job(c, job["id"])
        assert done["state"] == "cancelled" and 0 < done["frames_done"] < 9
        summary = c.get("/api/summary").json()
        assert summary["people"] == done["people_added"] and summary["incomplete_sources"] >= 1
        assert c.get("/api/index-jobs").json()["jobs"][0]["state"] == "cancelled"
        resumed = _wait_job(
            c, c.post("/api/index-jobs", json={"paths": [str(footage)], "stride": 1}).json()["id"]
        )
        both = c.post("/api/index-jobs", json={"paths": [str(footage)], "stride": 2, "fps": 5})
        assert both.status_code == 422 and "not both" in both.json()["detail"]
        assert resumed["state"] == "done" and c.get("/api/summary").json()["people"] == 11
    assert c.delete("/api/index-jobs/99").status_code == 404


def test_indexing_only_under_allowed_folders(tmp_path: Path, built: tuple[Path, Path]) -> None:
    footage, _ = built
    allowed = tmp_path / "allowed"
    write_png(allowed / "cam" / "ok.png", draw_scene([(10, 10, RED, BLUE)]))
    outside = write_png(tmp_path / "outside" / "private.png", draw_scene([(10, 10, GREEN, GREEN)]))
    (allowed / "cam" / "link.png").symlink_to(outside)
    (allowed / "linked-folder").symlink_to(outside.parent)
    with TestClient(create_app(SearchService(tmp_path / "index", ColourEngine()), allow_dirs=[allowed])) as c:
        assert c.get("/api/summary").json()["indexed"] is False
        for path in ("/etc", str(outside), "../outside", "cam/../../outside/private.png", "linked-folder"):
            response = c.post("/api/index-jobs", json={"paths": [path]})
            assert response.status_code == 403 and "outside the folders" in response.json()["detail"], path
        assert c.post("/api/index-jobs", json={"paths": ["nope"]}).status_code == 404
        # no home-directory expansion (schemathesis found a 500)
        assert c.post("/api/index-jobs", json={"paths": ["~0"]}).status_code == 404
        (allowed / "loop").symlink_to(allowed / "loop")
        looped = c.post("/api/index-jobs", json={"paths": ["loop"]})
        assert looped.status_code in (403, 404, 422) and "Traceback" not in looped.text
        job = _wait_job(c, c.post("/api/index-jobs", json={"paths": ["cam"]}).json()["id"])
        assert job["state"] == "done" and job["people_added"] == 1, job
        assert [s["path"] for s in job["summary"]["skipped"]] == [str(allowed / "cam" / "link.png")]
        assert [s["name"] for s in c.get("/api/sources").json()["sources"]] == ["ok.png"]
    with TestClient(create_app(SearchService(tmp_path / "index", ColourEngine()))) as c:
        off = c.post("/api/index-jobs", json={"paths": [str(allowed)]})
        assert off.status_code == 403 and "--allow-dir" in off.json()["detail"]


# ---------------------------------------------------------------------------- states and safety
def test_nothing_indexed_yet_and_model_mismatch_are_explained(
    tmp_path: Path, built: tuple[Path, Path]
) -> None:
    with TestClient(create_app(SearchService(tmp_path / "empty", ColourEngine()))) as c:
        summary = c.get("/api/summary").json()
        assert summary["indexed"] is False and "nothing indexed yet" in summary["message"]
        sources = c.get("/api/sources")
        assert sources.status_code == 404 and "nothing indexed yet" in sources.json()["detail"]
    _, index = built
    with TestClient(create_app(SearchService(index, ColourEngine("another-model")))) as c:
        problem = c.get("/api/summary").json()["model"]["problem"]
        assert "another-model" in problem and "colour-histogram-v1" in problem
        upload = c.post(
            "/api/uploads",
            files={"file": ("q.png", _png(draw_scene([(40, 40, GREEN, YELLOW)])), "image/png")},
        )
        assert upload.status_code == 409 and "cannot be compared" in upload.json()["detail"]
        assert c.post("/api/search", json={"box_id": 0}).status_code == 200  # stored features need no model


def test_token_is_required_on_every_api_request(built: tuple[Path, Path]) -> None:
    _, index = built
    with TestClient(create_app(SearchService(index, ColourEngine()), token="s3cret")) as c:
        for path in ("/api/summary", "/api/sources", "/api/boxes/0/thumbnail", "/openapi.json", "/docs"):
            response = c.get(path)
            assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer", path
        assert c.post("/api/search", json={"box_id": 0}).status_code == 401
        assert c.get("/api/summary", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.get("/api/summary", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        page = c.get("/")
        assert (
            page.status_code == 200
            and "personsearch" in page.text
            and page.headers["content-security-policy"].startswith("default-src 'self'")
        )
        assert c.post("/api/login", json={"token": "nope"}).status_code == 401
        login = c.post("/api/login", json={"token": "s3cret"})
        assert (
            login.status_code == 200
            and "httponly" in login.headers["set-cookie"].lower()
            and "samesite=strict" in login.headers["set-cookie"].lower()
        )
        assert c.get("/api/summary").status_code == 200  # the cookie now


def test_a_full_queue_answers_503_instead_of_waiting(built: tuple[Path, Path]) -> None:
    _, index = built
    engine = GatedEngine()
    app = create_app(SearchService(index, engine), workers=1, queue=0)
    scene = _png(draw_scene([(40, 40, GREEN, YELLOW)]))
    with TestClient(app) as c:
        first: dict = {}
        worker = threading.Thread(
            target=lambda: first.update(
                r=c.post("/api/uploads", files={"file": ("q.png", scene, "image/png")})
            )
        )
        worker.start()
        assert engine.waiting.wait(10)
        refused = c.post("/api/uploads", files={"file": ("q.png", scene, "image/png")})
        assert (
            refused.status_code == 503
            and refused.headers["retry-after"] == "1"
            and "busy" in refused.json()["detail"]
        )
        # refused before it is parsed (cheap under overload): even a malformed search gets the 503
        shed = c.post("/api/search", content=b"{not json", headers={"content-type": "application/json"})
        assert shed.status_code == 503 and shed.headers["content-security-policy"].startswith("default-src")
        assert c.get("/api/summary").status_code == 200  # browsing is not queued behind the models
        engine.gate.set()
        worker.join(10)
        assert first["r"].status_code == 200
        assert c.post("/api/uploads", files={"file": ("q.png", scene, "image/png")}).status_code == 200


def test_serve_refuses_to_listen_beyond_localhost_without_a_token(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli_app, ["serve", "--index", str(tmp_path), "--host", "0.0.0.0"], env={"PERSONSEARCH_TOKEN": ""}
    )
    assert result.exit_code == 2 and "--token" in result.output


# ---------------------------------------------------------------------------- schema fuzzing
def test_no_request_the_schema_allows_makes_a_server_error(built: tuple[Path, Path]) -> None:
    """schemathesis generates requests from /openapi.json for every operation (ids that do not
    exist, odd filters, random uploads, paths to index): none may answer 5xx."""
    root, index = built
    schema = schemathesis.openapi.from_asgi(
        "/openapi.json", create_app(SearchService(index, ColourEngine()), allow_dirs=[root / "cam-a"])
    )
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 14
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def no_server_error(case) -> None:
            case.call_and_validate(checks=[not_a_server_error])

        no_server_error()


def test_api_docs_are_served_from_this_server_not_a_cdn(built: tuple[Path, Path]) -> None:
    """/docs works offline and under the page's Content-Security-Policy: Swagger UI's files come
    from this server (fastapi-offline's copy of Swagger UI 5), its start-up script is a file, not inline."""
    _, index = built
    with TestClient(create_app(SearchService(index, ColourEngine()))) as c:
        docs = c.get("/docs")
        assert docs.status_code == 200 and "swagger-ui" in docs.text
        assert "http" not in docs.text.replace('<html lang="en">', "")  # no outside address
        assert "<script>" not in docs.text and "script-src 'self'" in docs.headers["content-security-policy"]
        for asset in (
            "/static/swagger/swagger-ui-bundle.js",
            "/static/swagger/swagger-ui.css",
            "/static/docs.js",
        ):
            assert c.get(asset).status_code == 200, asset
        assert "/openapi.json" in c.get("/static/docs.js").text and c.get("/openapi.json").status_code == 200
