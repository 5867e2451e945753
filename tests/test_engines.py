"""Inference engines and their choice by measurement: exported networks agree with PyTorch, the
chooser refuses an engine whose outputs disagree with fp32, the cached choice follows the model."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from personsearch.models import engine_choice, engines
from personsearch.models.bundle import ModelBundle, parse_engine, save_component
from personsearch.models.detector import DetectorConfig, build_detector
from personsearch.models.machine import CACHE_ENV, cache_root
from personsearch.models.reid import ReIDConfig, build_reid

torch.set_num_threads(1)


def _randomise_batchnorm(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Untrained networks have identity BatchNorm statistics; give them real ones so features
    differ from crop to crop and an export has something to get wrong."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d | torch.nn.BatchNorm1d):
                module.running_mean.copy_(torch.rand(module.num_features, generator=generator) * 0.2 - 0.1)
                module.running_var.copy_(torch.rand(module.num_features, generator=generator) * 0.5 + 0.75)
    return model.eval()


def tiny_reid(seed: int = 0, instance_norm: tuple[str, ...] = ()) -> tuple[torch.nn.Module, ReIDConfig]:
    torch.manual_seed(seed)
    config = ReIDConfig(
        num_classes=4,
        backbone="mobilenet_v2_tiny",
        pretrained=False,
        input_size=(64, 32),
        embed_dim=16,
        instance_norm=instance_norm,
    )
    return _randomise_batchnorm(build_reid(config), seed), config


def tiny_detector(seed: int = 0) -> tuple[torch.nn.Module, DetectorConfig]:
    torch.manual_seed(seed)
    config = DetectorConfig(
        backbone="mobilenet_v2_tiny",
        pretrained=False,
        min_size=160,
        max_size=224,
        score_thresh=0.0,
        detections_per_img=50,
    )
    return build_detector(config).eval(), config


@pytest.fixture()
def bundle_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    out = tmp_path / "bundle"
    detector, det_cfg = tiny_detector()
    save_component(out, "detector", detector, det_cfg, {})
    reid, reid_cfg = tiny_reid()
    save_component(out, "reid", reid, reid_cfg, {})
    return out


@pytest.mark.parametrize("instance_norm", [(), ("layer1", "layer2", "layer3")], ids=["bn", "ibn"])
def test_onnx_reid_export_gives_pytorch_features(tmp_path: Path, instance_norm: tuple[str, ...]) -> None:
    model, config = tiny_reid(instance_norm=instance_norm)
    path = engines.export_reid(model, tmp_path / "reid.onnx")
    crops = torch.randn(5, 3, *config.input_size, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = model(crops).numpy()
    got = engines.graph_reid(path)(crops).numpy()
    agreement = engine_choice.feature_agreement(expected, got)
    assert engine_choice.features_agree(agreement), agreement
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert engines.graph_reid(path)(crops[:1]).shape == (1, model.feature_dim)  # any batch size


def test_onnx_detector_gives_pytorch_boxes(tmp_path: Path) -> None:
    model, _ = tiny_detector()
    parts = engines.export_detector(model, tmp_path)
    assert [p.name for p in parts] == list(engines.DETECTOR_PARTS)
    images = [torch.rand(3, 150, 200, generator=torch.Generator().manual_seed(k)) for k in range(2)]
    with torch.no_grad():
        expected = model(images)
    got = engines.graph_detect(model, parts)(images)
    for e, g in zip(expected, got, strict=True):
        assert len(e["boxes"]) > 0
        torch.testing.assert_close(g["boxes"], e["boxes"], atol=1e-2, rtol=1e-4)
        torch.testing.assert_close(g["scores"], e["scores"], atol=1e-4, rtol=1e-4)


def test_graph_detector_roi_pool_and_box_head_match_pytorch(tmp_path: Path) -> None:
    model, _ = tiny_detector()
    runner = engines.graph_detector(model, engines.export_detector(model, tmp_path))
    pool, head = model.roi_heads.box_roi_pool, model.roi_heads.box_head
    features = {
        pool.featmap_names[0]: torch.rand(
            1, model.backbone.out_channels, 10, 14, generator=torch.Generator().manual_seed(1)
        )
    }
    boxes = [
        torch.tensor([[4.0, 8.0, 60.0, 150.0], [100.0, 20.0, 130.0, 90.0], [-30.0, -20.0, 400.0, 300.0]])
    ]
    with torch.no_grad():
        crops = pool(features, boxes, [(160, 224)])
        torch.testing.assert_close(
            runner.roi_heads.box_roi_pool(features, boxes, [(160, 224)]), crops, atol=1e-5, rtol=1e-5
        )
        torch.testing.assert_close(runner.roi_heads.box_head(crops), head(crops), atol=1e-4, rtol=1e-4)
        # no proposal at all: PyTorch's head (a graph cannot take an empty batch)
        empty = runner.roi_heads.box_roi_pool(features, [torch.zeros(0, 4)], [(160, 224)])
        assert runner.roi_heads.box_head(empty).shape == (0, head(crops).shape[1])


def test_openvino_runs_the_exported_networks_like_pytorch(tmp_path: Path) -> None:
    """The ov-bf16 engine's runtime on the same ONNX files: in f32 (any CPU) it gives PyTorch's
    outputs; in bf16 (native bf16 CPUs only) features within bf16 rounding of them."""
    pytest.importorskip("openvino")
    model, config = tiny_reid()
    path = engines.export_reid(model, tmp_path / "reid.onnx")
    crops = torch.randn(6, 3, *config.input_size, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = model(crops)
    torch.testing.assert_close(engines.OvModule(path, "f32")(crops), expected, atol=1e-4, rtol=1e-4)
    assert engines.OvModule(path, "f32")(crops[:1]).shape == (1, model.feature_dim)  # any batch size
    detector, _ = tiny_detector()
    head = engines.export_detector(detector, tmp_path)[2]
    pool = detector.roi_heads.box_roi_pool
    crop_batch = pool.pool(
        torch.rand(
            5, detector.backbone.out_channels, *pool.output_size, generator=torch.Generator().manual_seed(4)
        )
    )
    with torch.no_grad():
        torch.testing.assert_close(
            engines.OvModule(head, "f32")(crop_batch),
            detector.roi_heads.box_head(crop_batch),
            atol=1e-4,
            rtol=1e-4,
        )
    if engines.unavailable("ov-bf16") is None:
        bf16 = engines.graph_reid(path, "ov-bf16")(crops)
        assert torch.nn.functional.cosine_similarity(bf16, expected).min() > 0.99


def test_export_command_writes_onnx_or_openvino_files_that_give_pytorch_features(
    bundle_dir: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from personsearch.interfaces.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["export", str(tmp_path / "onnx"), "--model", str(bundle_dir), "--no-int8"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "onnx").iterdir()) == sorted(
        ["reid.onnx", *engines.DETECTOR_PARTS]
    )
    result = runner.invoke(
        app, ["export", str(tmp_path / "ir"), "--model", str(bundle_dir), "--format", "tflite"]
    )
    assert result.exit_code != 0 and "use onnx or openvino" in result.output
    pytest.importorskip("openvino")  # the ONNX half above ran either way
    result = runner.invoke(
        app, ["export", str(tmp_path / "ir"), "--model", str(bundle_dir), "--format", "openvino", "--no-int8"]
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "ir").glob("*.xml")) == sorted(
        ["reid.xml", *(Path(n).with_suffix(".xml").name for n in engines.DETECTOR_PARTS)]
    )
    assert not list((tmp_path / "ir").glob("*.onnx"))
    model, config = tiny_reid()
    crops = torch.randn(3, 3, *config.input_size, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        torch.testing.assert_close(
            engines.OvModule(tmp_path / "ir" / "reid.xml", "f32")(crops), model(crops), atol=1e-4, rtol=1e-4
        )


def test_without_openvino_its_engine_says_how_to_get_it(
    bundle_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)
    monkeypatch.setattr(engines, "native_bf16", lambda device: True)  # the reason must be the missing package
    assert "pip install openvino" in engines.unavailable("ov-bf16")
    choice = ModelBundle(bundle_dir, engine="torch-fp32").measure_engines(
        ("torch-fp32", "ov-bf16"), save=False
    )
    refused = {(m.network, m.engine): m.note for m in choice.measurements if not m.accepted}
    assert "not installed" in refused[("reid", "ov-bf16")] and (choice.reid, choice.detector) == (
        "torch-fp32",
        "torch-fp32",
    )


def test_int8_quantisation_writes_a_quantised_network_that_runs(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    model, config = tiny_reid()
    fp32 = engines.export_reid(model, tmp_path / "reid.onnx")
    calibration = torch.randn(16, 3, *config.input_size, generator=torch.Generator().manual_seed(5)).numpy()
    int8 = engines.quantize_int8(fp32, tmp_path / "reid-int8.onnx", calibration)
    ops = {node.op_type for node in onnx.load(str(int8)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert not list(tmp_path.glob(".*tmp")) and not list(tmp_path.glob("*.pre.onnx"))
    features = engines.graph_reid(int8)(torch.from_numpy(calibration[:4]))
    assert features.shape == (4, model.feature_dim) and torch.isfinite(features).all()
    # mixed precision: a named convolution stays fp32 (its weight is not dequantised), the rest int8
    first = next(node.name for node in onnx.load(str(fp32)).graph.node if node.op_type == "Conv")
    mixed = onnx.load(
        str(engines.quantize_int8(fp32, tmp_path / "mixed.onnx", calibration, keep_fp32=[first]))
    )
    made_by = {out: node.op_type for node in mixed.graph.node for out in node.output}
    convs = {node.name: node for node in mixed.graph.node if node.op_type == "Conv"}
    assert made_by.get(convs[first].input[1]) != "DequantizeLinear"
    assert any(
        made_by.get(node.input[1]) == "DequantizeLinear" for name, node in convs.items() if name != first
    )


def test_reid_int8_engine_quantises_the_backbone_on_a_7_bit_grid_and_keeps_the_heads_fp32(
    tmp_path: Path,
) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    model, config = tiny_reid()
    fp32 = engines.export_reid(model, tmp_path / "reid.onnx")
    calibration = torch.randn(16, 3, *config.input_size, generator=torch.Generator().manual_seed(5)).numpy()
    graph = onnx.load(str(engines.quantize_reid_int8(fp32, tmp_path / "reid-int8.onnx", calibration))).graph
    made_by = {out: node for node in graph.node for out in node.output}
    constants = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    convs = [node for node in graph.node if node.op_type == "Conv"]
    assert convs and all(made_by[node.input[1]].op_type == "DequantizeLinear" for node in convs)
    for node in convs:
        weights = constants[made_by[node.input[1]].input[0]]
        # 7-bit: no u8 x s8 saturation on AVX2
        assert weights.dtype == np.int8 and np.abs(weights.astype(int)).max() <= 64
    gemms = [node for node in graph.node if node.op_type == "Gemm"]
    assert gemms and all(
        node.input[1] in constants and constants[node.input[1]].dtype == np.float32 for node in gemms
    )
    # nor are their inputs rounded
    assert all(made_by[node.input[0]].op_type != "DequantizeLinear" for node in gemms)


def test_int8_box_head_engine_quantises_only_the_box_head_with_s8_weights(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    model, _ = tiny_detector()
    scenes = [(np.random.default_rng(k).random((150, 200, 3)) * 255).astype(np.uint8) for k in range(2)]
    with pytest.raises(ValueError, match="calibration scenes"):
        engines.detector_runner(model, "ort-int8-head", torch.device("cpu"), tmp_path)
    run = engines.detector_runner(model, "ort-int8-head", torch.device("cpu"), tmp_path, lambda: scenes)
    images = [torch.from_numpy(scene).permute(2, 0, 1).float() / 255 for scene in scenes]
    got = run(images)
    assert len(got) == 2 and all(len(g["boxes"]) and torch.isfinite(g["boxes"]).all() for g in got)
    head = tmp_path / "detector-head-int8.onnx"
    assert head.is_file()
    graph = onnx.load(str(head)).graph
    made_by = {out: node for node in graph.node for out in node.output}
    constants = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    convs = [node for node in graph.node if node.op_type == "Conv"]
    assert convs and all(made_by[node.input[1]].op_type == "DequantizeLinear" for node in convs)
    weights = [constants[made_by[node.input[1]].input[0]] for node in convs]
    # s8 on the full grid: 8-bit values, not the 7-bit grid of the re-id engine
    assert {w.dtype for w in weights} == {np.dtype(np.int8)} and max(
        int(np.abs(w.astype(np.int16)).max()) for w in weights
    ) == 127
    for part in engines.DETECTOR_PARTS[:2]:  # the trunk and the RPN head stay fp32
        assert "QuantizeLinear" not in {node.op_type for node in onnx.load(str(tmp_path / part)).graph.node}


def _reid_factory(model: torch.nn.Module, wrong: set[str]) -> engine_choice.ReIDFactory:
    """Engines for the test: each name runs the real fp32 model; names in ``wrong`` corrupt its
    output the way a broken engine would (features of other crops)."""

    def factory(name: str) -> engines.ReIDRun:
        run = engines.torch_reid(model, "torch-fp32", torch.device("cpu"))
        if name in wrong:
            return lambda batch: run(batch).roll(1, dims=0)
        return run

    return factory


class Projection(torch.nn.Module):
    """A feature extractor whose features differ a lot from input to input (an untrained CNN's
    are all nearly the same), so that a wrong engine shows."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = torch.nn.Linear(3 * 16 * 8, 32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(self.linear(x.flatten(1)), dim=1)


def test_chooser_refuses_an_engine_whose_features_disagree_with_fp32() -> None:
    model = Projection()
    batch = torch.randn(16, 3, 16, 8, generator=torch.Generator().manual_seed(1))
    results = engine_choice.measure_reid(
        _reid_factory(model, {"torch-fp32-cl"}), ["torch-fp32-cl", "ort-fp32"], batch
    )
    by_name = {m.engine: m for m in results}
    assert by_name["torch-fp32"].accepted and by_name["ort-fp32"].accepted
    assert not by_name["torch-fp32-cl"].accepted and by_name["torch-fp32-cl"].agreement["cos_median"] < 0.99
    only_wrong = engine_choice.measure_reid(_reid_factory(model, {"ort-fp32"}), ["ort-fp32"], batch)
    assert engine_choice.pick(only_wrong, "reid") == "torch-fp32"  # nothing else qualifies: the reference


def test_a_first_use_checks_engines_fastest_first_only_until_one_agrees() -> None:
    """Lazy measurement: the fastest engine is wrong and refused, the next agrees and is chosen,
    and nothing slower is run on the check set; the full measurement checks every engine."""
    model = Projection()
    batch = torch.randn(64, 3, 16, 8, generator=torch.Generator().manual_seed(1))
    run = engines.torch_reid(model, "torch-fp32", torch.device("cpu"))
    # seconds per call: the speed order
    delay = {"torch-fp32": 0.04, "torch-fp32-cl": 0.0, "ort-int8": 0.005, "ort-fp32": 0.02}
    checked: list[str] = []

    def factory(name: str) -> engines.ReIDRun:
        def slow(crops: torch.Tensor) -> torch.Tensor:
            time.sleep(delay[name])
            if len(crops) == len(batch):  # the agreement check runs every probe crop; timing runs TIMED_CROPS
                checked.append(name)
            features = run(crops)
            return features.roll(1, dims=0) if name == "torch-fp32-cl" else features

        return slow

    candidates = ["ort-fp32", "torch-fp32-cl", "ort-int8"]
    lazy = {m.engine: m for m in engine_choice.measure_reid(factory, candidates, batch, lazy=True)}
    assert checked == ["torch-fp32", "torch-fp32-cl", "ort-int8"]  # the reference, then fastest first
    assert not lazy["torch-fp32-cl"].accepted and lazy["torch-fp32-cl"].checked
    assert lazy["ort-int8"].accepted and engine_choice.pick(list(lazy.values()), "reid") == "ort-int8"
    assert not lazy["ort-fp32"].checked and not lazy["ort-fp32"].accepted and lazy["ort-fp32"].per_s
    assert lazy["ort-fp32"].note == "slower than ort-int8, which agrees with fp32"
    table = engines.EngineChoice("ort-int8", "torch-fp32", list(lazy.values())).table()
    assert "not checked: slower than ort-int8" in table and "not checked: not checked" not in table
    checked.clear()
    full = {m.engine: m for m in engine_choice.measure_reid(factory, candidates, batch)}
    assert (
        sorted(checked) == sorted(["torch-fp32", *candidates])
        and full["ort-fp32"].accepted
        and full["ort-fp32"].checked
    )


def test_a_reduced_precision_engine_must_be_clearly_faster_than_fp32_to_be_chosen() -> None:
    """int8 or bf16 outputs agree with fp32 only within the rule: an int8 engine 5 % faster than
    ONNX Runtime fp32 (inside the timing noise) is not taken, nor checked on a first use; 20 %
    faster, it is."""
    model = Projection()
    batch = torch.randn(64, 3, 16, 8, generator=torch.Generator().manual_seed(1))
    run = engines.torch_reid(model, "torch-fp32", torch.device("cpu"))

    def factory_for(delay: dict[str, float]) -> engine_choice.ReIDFactory:
        def factory(name: str) -> engines.ReIDRun:
            def slow(crops: torch.Tensor) -> torch.Tensor:
                time.sleep(delay[name])
                return run(crops)

            return slow

        return factory

    close = {
        m.engine: m
        for m in engine_choice.measure_reid(
            factory_for({"torch-fp32": 0.06, "ort-fp32": 0.03, "ort-int8": 0.0285}),
            ["ort-fp32", "ort-int8"],
            batch,
            lazy=True,
        )
    }
    assert close["ort-int8"].per_s > close["ort-fp32"].per_s  # faster, but by less than the gain asked
    assert engine_choice.pick(list(close.values()), "reid") == "ort-fp32"
    assert (
        not close["ort-int8"].checked
        and close["ort-int8"].note
        == "reduced precision, not 10% faster than ort-fp32, which agrees with fp32"
    )
    clear = engine_choice.measure_reid(
        factory_for({"torch-fp32": 0.06, "ort-fp32": 0.03, "ort-int8": 0.024}),
        ["ort-fp32", "ort-int8"],
        batch,
        lazy=True,
    )
    assert engine_choice.pick(clear, "reid") == "ort-int8"
    made_up = [
        engines.Measurement("torch-fp32", "detector", 1.0, True),
        engines.Measurement("torch-fp32-cl", "detector", 2.0, True),
    ]
    assert (
        engine_choice.pick([*made_up, engines.Measurement("ov-bf16-head", "detector", 2.1, True)], "detector")
        == "torch-fp32-cl"
    )
    assert (
        engine_choice.pick([*made_up, engines.Measurement("ov-bf16-head", "detector", 2.3, True)], "detector")
        == "ov-bf16-head"
    )


def test_chooser_refuses_a_detector_engine_that_moves_boxes() -> None:
    model, _ = tiny_detector()
    run = engines.torch_detector(model, "torch-fp32", torch.device("cpu"))

    def factory(name: str) -> engines.DetectRun:
        if name == "torch-fp32-cl":  # boxes shifted by 8 px: IoU well under 0.9 for small boxes
            return lambda images: [dict(o, boxes=o["boxes"] + 8.0) for o in run(images)]
        return run

    images = [np.random.default_rng(k).integers(0, 255, (120, 160, 3), dtype=np.uint8) for k in range(2)]
    results = engine_choice.measure_detector(factory, ["torch-fp32-cl"], images)
    by_name = {m.engine: m for m in results}
    assert by_name["torch-fp32"].accepted and by_name["torch-fp32"].agreement["boxes"] > 0
    assert not by_name["torch-fp32-cl"].accepted
    assert engine_choice.pick(results, "detector") == "torch-fp32"


def test_agreement_measures_on_hand_made_cases() -> None:
    ref = np.eye(4, dtype=np.float32)
    same = engine_choice.feature_agreement(ref, ref * 3)
    assert same == {"cos_median": 1.0, "cos_min": 1.0, "nn_same": 1.0}
    boxes = np.array([[0, 0, 10, 20, 0.9], [50, 50, 70, 90, 0.8]], dtype=np.float32)
    moved = boxes.copy()
    moved[1, :4] += [0, 0, 0, 1]  # IoU 40/41 = 0.976: still a match
    agreement = engine_choice.detection_agreement([boxes], [moved])
    assert (
        agreement["matched"] == 1.0 and agreement["count_ratio"] == 1.0 and agreement["max_shift_px"] == 1.0
    )
    lost = engine_choice.detection_agreement([boxes], [boxes[:1]])
    assert lost["matched"] == 0.5 and lost["count_ratio"] == 0.5 and not engine_choice.detections_agree(lost)


def test_auto_choice_is_measured_once_cached_and_follows_the_model(
    bundle_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="personsearch.models.bundle")
    calls: list[str] = []
    real = ModelBundle.measure_engines

    def counted(self: ModelBundle, *args, **kwargs):
        calls.append(self.weights_id)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(ModelBundle, "measure_engines", counted)
    first = ModelBundle(bundle_dir, engine="auto")
    assert len(calls) == 1 and not first.engine_choice.from_cache
    # the pause is explained
    assert "first use of this model on this machine: timing its inference engines" in caplog.text
    caplog.clear()
    networks = {(m.network, m.engine) for m in first.engine_choice.measurements}
    assert ("reid", "torch-fp32") in networks and ("detector", "torch-fp32") in networks
    assert "engines: detector" in first.engine_choice.summary()
    again = ModelBundle(bundle_dir, engine="auto")
    assert len(calls) == 1 and again.engine_choice.from_cache and "first use" not in caplog.text
    assert (again.engine_choice.reid, again.engine_choice.detector) == (
        first.engine_choice.reid,
        first.engine_choice.detector,
    )
    # New weights: a new model digest, so the old measurement does not apply.
    reid, reid_cfg = tiny_reid(seed=1)
    save_component(bundle_dir, "reid", reid, reid_cfg, {})
    changed = ModelBundle(bundle_dir, engine="auto")
    assert len(calls) == 2 and changed.weights_id != first.weights_id and not changed.engine_choice.from_cache
    # Whatever was chosen, the features agree with plain fp32.
    fp32 = ModelBundle(bundle_dir, engine="torch-fp32")
    image = np.random.default_rng(0).integers(0, 255, (120, 80, 3), dtype=np.uint8)
    boxes = np.array([[5, 5, 40, 100], [30, 10, 75, 110]], dtype=np.float32)
    assert (changed.embed(image, boxes) * fp32.embed(image, boxes)).sum(axis=1).min() > 0.97


def test_info_says_which_cached_choices_hold_on_this_machine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Choices measured under another engines revision or malloc tuning sit in the same cache
    and print alike; info names what differs, so a user knows which one runs here."""
    from typer.testing import CliRunner

    from personsearch.interfaces.cli import app

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    here, folder = engines.cpu_signature(), cache_root() / "engines"
    engines.save_choice(folder / "model-a", engines.EngineChoice("ort-fp32", "ort-int8-head", signature=here))
    engines.save_choice(
        folder / "model-b",
        engines.EngineChoice(
            "torch-fp32", "torch-fp32", signature={**here, "engines_revision": 1, "threads": 64}
        ),
    )
    result = CliRunner().invoke(app, ["info"])
    assert result.exit_code == 0, result.output
    # Piped, as here, rich would break lines at 80 columns: every line must come out whole.
    lines = result.output.splitlines()
    assert "model model-a: detector ort-int8-head, re-id ort-fp32 (this machine)" in lines
    assert (
        "model model-b: detector torch-fp32, re-id torch-fp32 "
        "(measured with another engines_revision, threads)" in lines
    )
    signature = json.loads(result.output[: result.output.index("\n}") + 2])
    assert signature == json.loads(json.dumps(here))


def test_cpu_signature_change_means_a_new_measurement(
    bundle_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ModelBundle(bundle_dir, engine="auto")
    assert ModelBundle(bundle_dir, engine="auto").engine_choice.from_cache
    monkeypatch.setattr(engines, "cpu_signature", lambda: {"cpu": "another", "threads": 64})
    assert engines.load_cached_choice(ModelBundle(bundle_dir, engine="torch-fp32").engine_dir) is None


def test_a_gpu_measures_its_own_choice_under_its_own_signature(
    bundle_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a GPU, ``auto`` measures too (the PyTorch engines: mixed precision is kept only where it
    agrees with fp32, as on a CPU), and the choice is cached for that GPU, apart from the CPU's."""
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA Test GPU")
    monkeypatch.setattr(torch.backends.cudnn, "version", lambda: 91000)
    gpu, cpu = engines.signature_for("cuda"), engines.signature_for("cpu")
    assert gpu["gpu"] == "NVIDIA Test GPU" and "gpu" not in cpu
    assert engines.choice_file(Path("m"), gpu) != engines.choice_file(Path("m"), cpu)
    assert "GPU NVIDIA Test GPU" in engines.EngineChoice("torch-fp32", "torch-fp32", signature=gpu).summary()

    bundle = ModelBundle(bundle_dir, engine="torch-fp32")
    assert engines.load_cached_choice(bundle.engine_dir, "cpu") is None
    measured: list[bool] = []

    def measure(self: ModelBundle, lazy: bool = False, **_: object) -> engines.EngineChoice:
        measured.append(lazy)  # a GPU's runners cannot be built here: the choice itself is stood in for
        choice = engines.EngineChoice(
            "torch-fp32-cl", "torch-fp32", [engines.Measurement("torch-fp32", "reid", 1.0)], gpu
        )
        engines.save_choice(self.engine_dir, choice)
        return choice

    monkeypatch.setattr(ModelBundle, "measure_engines", measure)
    bundle.device = torch.device("cuda")
    # measured, not forced to mixed precision
    assert (bundle._choose("auto").reid, measured) == ("torch-fp32-cl", [True])
    assert bundle._choose("auto").from_cache and measured == [True]
    assert engines.load_cached_choice(bundle.engine_dir, "cuda") is not None
    assert engines.load_cached_choice(bundle.engine_dir, "cpu") is None  # the CPU measures its own


@pytest.mark.parametrize(
    ("device", "message"),
    [
        ("gpu", "'gpu': expected cpu, cuda or cuda:N"),
        ("mps", "'mps': expected cpu, cuda or cuda:N"),
        ("cuda", "'cuda': PyTorch sees no CUDA GPU on this machine; use cpu"),
    ],
)
def test_a_device_this_machine_lacks_is_a_clear_error(
    bundle_dir: Path, monkeypatch: pytest.MonkeyPatch, device: str, message: str
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=re.escape(message)):
        ModelBundle(bundle_dir, device=device)


def test_forced_engines_and_bad_names(bundle_dir: Path) -> None:
    assert parse_engine("auto") is None
    assert parse_engine("ort-int8") == ("ort-int8", "ort-fp32")
    assert parse_engine("ov-bf16-head") == ("ort-fp32", "ov-bf16-head")  # a detector-only engine
    assert parse_engine("ov-bf16") == ("ov-bf16", "ov-bf16")
    assert parse_engine("reid=ort-int8,detector=torch-fp32-cl") == ("ort-int8", "torch-fp32-cl")
    with pytest.raises(ValueError, match="unknown part"):
        parse_engine("reid=ort-fp32,tracker=x")
    with pytest.raises(ValueError, match="unknown engine 'fastest'.*torch-fp32"):
        ModelBundle(bundle_dir, engine="fastest")
    bundle = ModelBundle(bundle_dir, engine="reid=ort-fp32,detector=ort-fp32")
    assert (bundle.engine_choice.reid, bundle.engine_choice.detector) == ("ort-fp32", "ort-fp32")
    # loading exports what a query of a crop or box needs; the detector, at its first scene
    assert sorted(p.name for p in bundle.engine_dir.glob("*.onnx")) == ["reid-fp32.onnx"]
    bundle.detect([np.zeros((64, 48, 3), np.uint8)])
    assert sorted(p.name for p in bundle.engine_dir.glob("*.onnx")) == sorted(
        [*engines.DETECTOR_PARTS, "reid-fp32.onnx"]
    )


def test_a_query_with_a_box_builds_no_pytorch_network_once_exported(
    bundle_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Loading a model and describing a given box runs the cached ONNX re-id file: neither
    network is built in PyTorch (the detector waits for a scene to detect)."""
    first = ModelBundle(bundle_dir, engine="ort-fp32")  # exports reid-fp32.onnx
    image, box = np.full((80, 40, 3), 128, np.uint8), np.array([[0, 0, 40, 80]], np.float32)
    expected = first.embed(image, box)

    def refused(bundle_dir: Path, name: str) -> None:
        raise AssertionError(f"built the {name} network")

    monkeypatch.setattr("personsearch.models.bundle.load_component", refused)
    again = ModelBundle(bundle_dir, engine="ort-fp32")
    np.testing.assert_allclose(again.embed(image, box), expected, atol=1e-6)
    with pytest.raises(AssertionError, match="built the detector network"):
        again.detect([image])


def test_without_onnxruntime_the_torch_engines_still_run(
    bundle_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails, as when it is not installed
    assert "not installed" in engines.unavailable("ort-fp32")
    bundle = ModelBundle(bundle_dir, engine="torch-fp32")
    choice = bundle.measure_engines(("torch-fp32", "torch-fp32-cl", "ort-fp32", "ort-int8"), save=False)
    refused = {m.engine: m.note for m in choice.measurements if m.network == "reid" and not m.accepted}
    assert "not installed" in refused["ort-fp32"] and choice.reid in ("torch-fp32", "torch-fp32-cl")


def test_avx2_machines_get_no_bf16_autocast() -> None:
    """``ATEN_CPU_CAPABILITY=avx2`` runs PyTorch as on an AVX2-only CPU: no native bf16, so no
    autocast (emulated bf16 is 6-10x slower than fp32) and no torch-bf16 engine."""
    code = (
        "import torch; from personsearch.models import fast, engines\n"
        "assert not fast.native_bf16('cpu')\n"
        "with fast.autocast_for('cpu'):\n"
        "    assert not torch.is_autocast_enabled('cpu')\n"
        "assert 'no native bf16' in engines.unavailable('torch-bf16')\n"
        "assert 'no native bf16' in engines.unavailable('ov-bf16')\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={"ATEN_CPU_CAPABILITY": "avx2", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
