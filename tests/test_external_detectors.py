"""Off-the-shelf detectors for real footage: box geometry, the GraphDef cut, SSD anchors and
decoding (hand-computed), the detect contract, the bundle's ``detector`` option, and real
detections on vtest.avi when it is on this machine."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from personsearch.models.bundle import ModelBundle, save_component
from personsearch.models.detector import DetectorConfig, build_detector
from personsearch.models.external_detectors import (
    SSDLITE_WEIGHTS,
    TF_DT_FLOAT,
    HOGPersonDetector,
    SSDLitePersonDetector,
    build_external_detector,
    cut_by_window,
    cut_graph,
    decode_ssd_boxes,
    nms_detections,
    scale_boxes,
    shrink_boxes,
    ssd_anchors,
    tf_graph_messages,
)
from personsearch.models.reid import ReIDConfig, build_reid
from personsearch.models.weights import resolve_weights

torch.set_num_threads(1)

VTEST_PLACES = ("/usr/share/doc/opencv-doc/examples/data/vtest.avi",)
"""Where Debian's opencv-doc installs vtest.avi; ``$PERSONSEARCH_VTEST`` names another copy."""


def _skip_unless_required(reason: str) -> None:
    """Skip for want of a real asset, except where the run promised to have them all (CI sets
    ``PERSONSEARCH_REQUIRE_ASSETS=1`` after fetching them): there a missing asset is a failure."""
    if os.environ.get("PERSONSEARCH_REQUIRE_ASSETS") == "1":
        pytest.fail(f"PERSONSEARCH_REQUIRE_ASSETS=1 but {reason}")
    pytest.skip(reason)


def vtest_frame_or_skip(frame: int) -> np.ndarray:
    """One RGB frame of vtest.avi, or a skip saying how to get the file (docs/real-footage.md)."""
    candidates = [os.environ["PERSONSEARCH_VTEST"]] if os.environ.get("PERSONSEARCH_VTEST") else []
    for place in candidates + list(VTEST_PLACES):
        if Path(place).is_file():
            capture = cv2.VideoCapture(place)
            capture.set(cv2.CAP_PROP_POS_FRAMES, frame)
            ok, bgr = capture.read()
            capture.release()
            if ok:
                return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    _skip_unless_required(
        "vtest.avi not found: get it as docs/real-footage.md says and set "
        "PERSONSEARCH_VTEST=/path/to/vtest.avi"
    )


# --- box geometry -------------------------------------------------------------------------------


def test_scale_and_shrink_boxes_map_hog_windows_to_person_boxes() -> None:
    window = np.array([[20, 40, 84, 168]], dtype=np.float32)  # a 64x128 window in a 2x image
    back = scale_boxes(window, 2.0)
    np.testing.assert_allclose(back, [[10, 20, 42, 84]])
    tight = shrink_boxes(back, 0.25, 0.125)  # 32x64 box: 8 px off each side, 8 px off top and bottom
    np.testing.assert_allclose(tight, [[18, 28, 34, 76]])
    assert tight.dtype == np.float32


def test_nms_keeps_the_best_of_overlapping_boxes_and_disjoint_ones() -> None:
    dets = np.array([[0, 0, 10, 20, 0.6], [1, 0, 11, 20, 0.9], [50, 50, 60, 70, 0.7]], dtype=np.float32)
    kept = nms_detections(dets, 0.5)
    np.testing.assert_allclose(kept[:, 4], [0.9, 0.7])
    assert nms_detections(np.zeros((0, 5)), 0.5).shape == (0, 5)


def test_hog_upscale_brings_small_people_to_the_window_size_within_a_pixel_bound() -> None:
    hog = HOGPersonDetector(min_height=48)
    assert hog.upscale_factor(576, 768) == pytest.approx(2.0)  # 48 px people -> 96 px
    assert HOGPersonDetector(min_height=200).upscale_factor(576, 768) == 1.0  # never shrinks
    huge = hog.upscale_factor(4000, 6000)
    assert huge == 1.0  # already beyond the bound: scanned as it is


def test_hog_detect_contract_and_bad_input() -> None:
    hog = build_external_detector("hog")
    out = hog.detect([np.full((120, 160, 3), 128, dtype=np.uint8), np.zeros((64, 64, 3), dtype=np.uint8)])
    assert len(out) == 2 and all(d.shape == (0, 5) and d.dtype == np.float32 for d in out)
    with pytest.raises(ValueError, match=r"HxWx3 uint8.*\(64, 64\)"):
        hog.detect([np.zeros((64, 64), dtype=np.uint8)])
    with pytest.raises(ValueError, match="unknown detector 'yolo'.*'bundle'.*hog.*ssdlite"):
        build_external_detector("yolo")


# --- the GraphDef cut ---------------------------------------------------------------------------


def _graph(*nodes: tuple[str, str, tuple[str, ...]]) -> tuple[bytes, bytes]:
    """A GraphDef of ``(name, op, inputs)`` nodes; node ``w`` carries a weight tensor (an attr the
    subset schema does not name: it must come through the cut byte for byte). Returns the graph
    and that attr's bytes."""
    graph_def, _ = tf_graph_messages()
    graph = graph_def()
    tensor = b"\x42\x05\x01\x02\x03\x04\x05"  # AttrValue.tensor (field 8), unknown to the subset
    for name, op, inputs in nodes:
        node = graph.node.add(name=name, op=op, input=list(inputs))
        if name == "w":
            node.attr["value"].MergeFromString(tensor)
    return graph.SerializeToString() + b"\x22\x02\x08\x1b", tensor  # + GraphDef.versions (field 4)


def test_cut_graph_keeps_only_what_the_outputs_need_from_a_float_input() -> None:
    graph, tensor = _graph(
        ("image", "Placeholder", ()),
        ("pre", "Sub", ("image",)),
        ("input", "Identity", ("pre",)),
        ("w", "Const", ()),
        ("conv", "Conv2D", ("input", "w/read:0")),
        ("w/read", "Identity", ("w",)),
        ("unused", "Relu", ("conv",)),
        ("out", "BiasAdd", ("conv", "^w")),
    )
    graph_def, _ = tf_graph_messages()
    cut = graph_def.FromString(cut_graph(graph, "input", ("out",)))
    # original order, new input first
    assert [n.name for n in cut.node] == ["input", "w", "conv", "w/read", "out"]
    assert cut.node[0].op == "Placeholder" and cut.node[0].attr["dtype"].type == TF_DT_FLOAT
    assert list(cut.node[2].input) == ["input", "w/read:0"]
    assert cut.node[1].attr["value"].SerializeToString() == tensor  # the weights, untouched
    with pytest.raises(ValueError, match=r"model.pb: not the expected TensorFlow SSD graph .*'missing_head'"):
        cut_graph(graph, "input", ("missing_head",), source="model.pb")
    with pytest.raises(ValueError, match=r"model.pb: not a TensorFlow GraphDef"):
        cut_graph(graph[: len(graph) // 2], "input", ("out",), source="model.pb")


# --- SSD anchors, decoding, tiles ---------------------------------------------------------------


def test_ssd_anchors_match_the_tf_object_detection_layout() -> None:
    sizes = [(19, 19), (10, 10), (5, 5), (3, 3), (2, 2), (1, 1)]
    anchors = ssd_anchors(sizes)
    assert anchors.shape == (19 * 19 * 3 + (100 + 25 + 9 + 4 + 1) * 6, 4) == (1917, 4)
    c = 0.5 / 19
    np.testing.assert_allclose(anchors[0], [c, c, 0.1, 0.1], rtol=1e-6)  # lowest layer: (0.1, 1:1) first
    # (0.2, 2:1) is wide
    np.testing.assert_allclose(anchors[1], [c, c, 0.2 / np.sqrt(2), 0.2 * np.sqrt(2)], rtol=1e-6)
    # next anchor cell is one column right
    np.testing.assert_allclose(anchors[3, :2], [c, 1.5 / 19], rtol=1e-6)
    # interpolated 1:1
    np.testing.assert_allclose(anchors[-1], [0.5, 0.5, np.sqrt(0.95), np.sqrt(0.95)], rtol=1e-6)
    np.testing.assert_allclose(anchors[-6], [0.5, 0.5, 0.95, 0.95], rtol=1e-6)


def test_decode_ssd_boxes_inverts_the_faster_rcnn_box_coder() -> None:
    anchors = np.array([[0.5, 0.25, 0.2, 0.1]], dtype=np.float32)  # yc, xc, h, w
    np.testing.assert_allclose(decode_ssd_boxes(np.zeros((1, 4)), anchors), [[0.2, 0.4, 0.3, 0.6]], rtol=1e-6)
    # down by half a height, twice as tall
    moved = decode_ssd_boxes(np.array([[10 * 0.5, 0, 5 * np.log(2), 0]]), anchors)
    np.testing.assert_allclose(moved, [[0.2, 0.4, 0.3, 0.8]], rtol=1e-6)


def test_tiles_cover_the_frame_with_overlap_and_cut_boxes_are_dropped() -> None:
    ssd = SSDLitePersonDetector.__new__(SSDLitePersonDetector)  # geometry only: no network needed
    ssd.grid = 2
    windows = ssd.views(576, 768)
    assert windows[0] == (0, 0, 768, 576) and len(windows) == 5
    assert windows[1] == (0, 0, 480, 360) and windows[4] == (288, 216, 768, 576)  # quarter-tile overlap
    boxes = np.array([[10, 100, 40, 200], [450, 100, 479, 200], [0, 0, 30, 80]], dtype=np.float32)
    # in the top-left tile: whole, cut by its right edge (inside the frame), touching the frame's own edge
    assert cut_by_window(boxes, windows[1], 768, 576).tolist() == [False, True, False]
    assert not cut_by_window(boxes, windows[0], 768, 576).any()


def _ssdlite_or_skip() -> SSDLitePersonDetector:
    try:
        path = resolve_weights(SSDLITE_WEIGHTS.name, download=False)
    except OSError as err:
        _skip_unless_required(
            f"SSDLite graph not cached (get it with resolve_weights({SSDLITE_WEIGHTS.name!r})): {err}"
        )
    return SSDLitePersonDetector(weights=path)


# --- real footage -------------------------------------------------------------------------------

FRAME_300_PEOPLE = 6
"""People visible in vtest.avi frame 300, counted by eye (all 65-95 px tall)."""


@pytest.mark.parametrize("make", [lambda: HOGPersonDetector(), _ssdlite_or_skip], ids=["hog", "ssdlite"])
def test_real_pedestrians_are_found_in_vtest(make) -> None:
    frame = vtest_frame_or_skip(300)
    (dets,) = make().detect([frame])
    heights = dets[:, 3] - dets[:, 1]
    assert dets.dtype == np.float32 and ((dets[:, 4] > 0) & (dets[:, 4] <= 1)).all()
    people = dets[(heights > 50) & (heights < 130) & (dets[:, 1] > 100)]  # walkway, not the building
    assert FRAME_300_PEOPLE - 1 <= len(people) <= FRAME_300_PEOPLE


# --- the bundle's detector option ---------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny bundle: enough to check which detector the engine uses."""
    out = tmp_path_factory.mktemp("bundle")
    det_cfg = DetectorConfig(backbone="mobilenet_v2_tiny", pretrained=False, min_size=128, max_size=160)
    save_component(out, "detector", build_detector(det_cfg), det_cfg, {})
    reid_cfg = ReIDConfig(
        num_classes=4, backbone="mobilenet_v2_tiny", pretrained=False, input_size=(64, 32), embed_dim=16
    )
    save_component(out, "reid", build_reid(reid_cfg), reid_cfg, {})
    return out


def test_bundle_detector_option_swaps_detection_and_marks_the_model_id(
    tiny_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    own = ModelBundle(tiny_bundle, engine="torch-fp32")
    hog = ModelBundle(tiny_bundle, engine="torch-fp32", detector="hog")
    assert hog.model_id == own.model_id + ":hog" and ":" not in own.model_id
    image = np.zeros((96, 64, 3), dtype=np.uint8)
    calls: list[int] = []
    monkeypatch.setattr(
        HOGPersonDetector,
        "detect",
        lambda self, images: calls.append(len(images)) or [np.zeros((0, 5), np.float32)],
    )
    assert hog.detect([image])[0].shape == (0, 5) and calls == [1]
    features = hog.embed(image, np.array([[0, 0, 32, 64]], dtype=np.float32))
    np.testing.assert_allclose(
        features, own.embed(image, np.array([[0, 0, 32, 64]], dtype=np.float32)), atol=1e-6
    )
    with pytest.raises(ValueError, match="unknown detector 'nope'"):
        ModelBundle(tiny_bundle, detector="nope")


def test_an_index_built_with_one_detector_names_it_when_another_is_used(tmp_path) -> None:
    from personsearch.index.person_index import check_model
    from personsearch.index.store import IndexStore, ModelMismatchError

    class Engine:
        feature_dim = 4

        def __init__(self, model_id: str) -> None:
            self.model_id = model_id

    store = IndexStore.create(tmp_path / "index", "abc123:hog", 4)
    try:
        check_model(store, Engine("abc123:hog"))
        with pytest.raises(
            ModelMismatchError,
            match="built with the detector 'hog', but 'bundle' is in use: pass --detector hog",
        ):
            check_model(store, Engine("abc123"))
        with pytest.raises(ModelMismatchError, match="Features of different models"):
            check_model(store, Engine("fff999:hog"))
    finally:
        store.close()
