"""Inference engines: one trained network, run by whichever runtime is fastest on this machine.

A network can run as plain PyTorch fp32 (the reference every other engine is checked against),
PyTorch fp32 with channels_last (oneDNN convolutions without layout reorders), PyTorch bf16
autocast (only where the CPU has native bf16, AVX-512 BF16 or AMX: elsewhere PyTorch emulates it
and runs 6-10x slower than fp32), ``torch.compile`` (opt-in: it needs a C++ compiler and compiles
once per input-shape family), ONNX Runtime (fp32, and for the re-id network int8 with static
QDQ quantisation calibrated on person crops) or OpenVINO in bf16 (native bf16 CPUs, where its
bf16 convolutions run 1.6-2x faster than ONNX Runtime's fp32 ones): the whole network
(``ov-bf16``), or only the detector's C4 box head with its trunk and RPN head on ONNX Runtime fp32
(``ov-bf16-head``: a bf16 trunk moves proposals and boxes, a bf16 box head does not); the box
head alone can also run in ONNX Runtime int8 (``ort-int8-head``, s8 weights).

The detector under ONNX Runtime or OpenVINO runs its network parts there: the stride-16 trunk, the
RPN head (the 3 x 3 convolution and its two 1 x 1 outputs) and the C4 box head on the proposals'
crops. The input transform, anchors, proposal selection, RoIAlign, the max-pool, NMS and box
decoding stay in PyTorch, so the box logic is the same whatever the engine; every engine but the
reference runs it with ``box_logic.use_fast_box_logic`` (the transform resizes before it
normalises, anchors are cached, RoIAlign is ``roi_align.sparse_roi_align``: torchvision's results,
several times faster).

Which engine is fastest *and* agrees with fp32 is measured per machine (``engine_choice.py``);
what was chosen is kept per model and machine (``EngineChoice``, ``save_choice``) and read here when
a model loads (``load_cached_choice``), so loading never measures.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import io
import json
import logging
import os
import platform
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from torch import nn

from personsearch.models.box_logic import use_fast_box_logic
from personsearch.models.fast import autocast_for, prepare_for_inference
from personsearch.models.machine import cpu_flags, cpuinfo_field, native_bf16
from personsearch.names import ENGINES

if TYPE_CHECKING:
    import onnxruntime

    from personsearch.models.detector import PersonDetector
    from personsearch.models.reid import PyramidReID

REVISION = 8
"""Bumped when what an engine runs changes (2: the detector's RPN head and RoIAlign joined ONNX
Runtime, its sessions do not spin; 3: nor do the re-id network's; 4: re-id int8 has 7-bit weights
and fp32 heads; 5: RoIAlign runs as ``sparse_roi_align`` in every engine but the reference, the
ONNX graph holds the box head only; OpenVINO bf16, whole or for the detector's box head only;
6: the detector's box head in int8, ``ort-int8-head``; 7: ``box_logic``'s transform and cached
anchors in every engine but the reference; 8: the int8 box head has s8 weights on every CPU, not u8
where the CPU lacks VNNI, and a reduced-precision engine must be clearly faster than an fp32 one
to be chosen, ``engine_choice.REDUCED_PRECISION_GAIN``),
so choices cached by an older version are measured again."""
REFERENCE = "torch-fp32"
AUTO_CANDIDATES = (
    "torch-fp32",
    "torch-fp32-cl",
    "torch-bf16",
    "ort-fp32",
    "ort-int8",
    "ov-bf16",
    "ov-bf16-head",
    "ort-int8-head",
)
"""Engines ``--engine auto`` measures. ``torch-compile`` is left out: its one-off compile per input
shape (tens of seconds) would dominate the measurement and every short run after it."""
REDUCED_PRECISION = ("torch-bf16", "ort-int8", "ov-bf16", "ov-bf16-head", "ort-int8-head")
"""Engines that compute some part in bf16, fp16 or int8: their outputs agree with fp32's within
the chooser's rule, not to rounding."""
GRAPH_ENGINES = ("ort-fp32", "ort-int8", "ov-bf16", "ov-bf16-head", "ort-int8-head")
"""Engines that run exported ONNX files."""
ONE_NETWORK = {
    "ort-int8": ("reid", "ort-fp32"),
    "ov-bf16-head": ("detector", "ort-fp32"),
    "ort-int8-head": ("detector", "ort-fp32"),
}
"""Engines for one network only: the network, and the engine the other network runs on when the
name is asked for both."""


def engine_for(name: str, network: str) -> str:
    """The engine that runs ``network`` (``reid`` or ``detector``) when engine ``name`` is asked
    for: ``name`` itself, or the stand-in of an engine for the other network only."""
    only, other = ONE_NETWORK.get(name, (network, name))
    return name if only == network else other


DETECTOR_PART_ENGINES = {
    "ov-bf16-head": ("ort-fp32", "ort-fp32", "ov-bf16"),
    "ort-int8-head": ("ort-fp32", "ort-fp32", "ort-int8"),
}
"""The runtime of each detector part (trunk, RPN head, box head) where it is not the engine's own.
The box head alone in bf16 or int8 keeps the detections (its per-RoI features are averaged before
the fp32 predictor) and holds most of the detector's FLOPs (17 of 21 GFLOP for 300 RoIs); a bf16
trunk moves proposals and boxes (docs/performance.md)."""


def unavailable(name: str, device: str | torch.device = "cpu") -> str | None:
    """Why engine ``name`` cannot run here, or None when it can."""
    if name not in ENGINES:
        return f"unknown engine {name!r}; known: {', '.join(ENGINES)}"
    device = torch.device(device)
    if name in ("torch-bf16", "ov-bf16", "ov-bf16-head") and device.type == "cpu" and not native_bf16(device):
        return (
            "this CPU has no native bf16 (AVX-512 BF16 or AMX): it would be emulated, "
            "many times slower than fp32"
        )
    if name.startswith("ov-"):
        if device.type != "cpu":
            return "OpenVINO engines run on the CPU here"
        try:
            import openvino  # noqa: F401
        except ImportError:
            return "openvino is not installed (pip install openvino, or the personsearch[openvino] extra)"
    if name.startswith("ort-") or name == "ov-bf16-head":
        if device.type != "cpu":
            return "ONNX Runtime engines run on the CPU here"
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            return "onnxruntime is not installed (pip install onnxruntime)"
    if name in ("ort-int8", "ort-int8-head"):
        try:
            import onnx  # noqa: F401
        except ImportError:
            return "int8 quantisation needs the onnx package (pip install onnx)"
    return None


def runnable(name: str, network: str, device: str | torch.device = "cpu") -> str:
    """The engine that runs ``network`` when ``name`` is asked for (``engine_for``), refused with
    the reason when it cannot run here. A model checks this when it loads, before it builds the
    network, so an engine that cannot run fails at once, not at the network's first use."""
    name = engine_for(name, network)
    why = unavailable(name, device)
    if why:
        network_name = "the re-id network" if network == "reid" else "the detector"
        raise ValueError(f"engine {name!r} cannot run {network_name} here: {why}")
    return name


Network = nn.Module | Callable[[], nn.Module]
"""A network, or what builds it: a runner builds it only when it needs it (to export it, or to run
it in PyTorch), so a model whose exported files are cached never builds its PyTorch network."""


def _built(network: Network) -> nn.Module:
    return network if isinstance(network, nn.Module) else network()


@contextlib.contextmanager
def _quiet_export() -> Iterator[None]:
    """The TorchScript-based ONNX exporter is chatty (deprecation and tracer warnings)."""
    root = logging.getLogger()
    level = root.level
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        root.setLevel(logging.ERROR)  # onnxruntime.quantization logs per-tensor notes on the root logger
        try:
            yield
        finally:
            root.setLevel(level)


def _atomic_path(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def export_onnx(
    module: nn.Module,
    example: torch.Tensor | tuple[torch.Tensor, ...],
    path: str | Path,
    dynamic: dict[int, str] | dict[str, dict[int, str]],
    outputs: int = 1,
) -> Path:
    """Export ``module`` to ONNX at ``path`` (atomic write). Inputs are named ``input``,
    ``input1``, ... and outputs ``output``, ``output1``, ...; ``dynamic`` maps those names to their
    dynamic axes, or is the first input's dynamic axes (the outputs' first axis then follows its
    first)."""
    path = Path(path)
    tmp = _atomic_path(path)
    examples = example if isinstance(example, tuple) else (example,)
    inputs = ["input"] + [f"input{i}" for i in range(1, len(examples))]
    names = ["output"] + [f"output{i}" for i in range(1, outputs)]
    if all(isinstance(key, str) for key in dynamic):
        axes = cast("dict[str, dict[int, str]]", dynamic)
    else:
        first = cast("dict[int, str]", dynamic)
        axes = {"input": first} | {name: {0: first.get(0, "n")} for name in names}
    module = copy.deepcopy(module).float().eval().to(memory_format=torch.contiguous_format)
    with _quiet_export(), torch.no_grad():
        torch.onnx.export(
            module,
            tuple(x.float().contiguous() for x in examples),
            str(tmp),
            input_names=inputs,
            output_names=names,
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )
    os.replace(tmp, path)
    return path


def quantize_int8(
    fp32_path: str | Path,
    out_path: str | Path,
    calibration: np.ndarray,
    batch_size: int = 16,
    weights: str = "int8",
    reduce_range: bool = False,
    extra_options: dict[str, Any] | None = None,
    method: str = "minmax",
    keep_fp32: Sequence[str] = (),
) -> Path:
    """Static int8 quantisation (QDQ, per-channel weights, uint8 activations) of an ONNX network,
    activation ranges calibrated on ``calibration`` (float32 network inputs). The defaults are the
    ``ort-int8`` engine's; ``weights="uint8"``, ``reduce_range`` (7-bit weights) and ONNX Runtime's
    ``extra_options`` are the remedies its documentation gives for the saturating u8 x s8 kernels of
    CPUs without VNNI, ``method="entropy"`` another calibration (its histograms need equal
    batches: a last, smaller batch is left out), and ``keep_fp32`` names nodes of the exported
    graph left unquantised (mixed precision), all measured by ``benchmarks/int8_settings.py``."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy}
    end = len(calibration) // batch_size * batch_size if method == "entropy" else len(calibration)

    class Batches(CalibrationDataReader):  # type: ignore[misc]  # onnxruntime ships no type information: its classes are Any to mypy
        def __init__(self) -> None:
            self.batches = iter(
                [
                    {"input": np.ascontiguousarray(calibration[i : i + batch_size], dtype=np.float32)}
                    for i in range(0, end, batch_size)
                ]
            )

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    out_path = Path(out_path)
    pre, tmp = _atomic_path(out_path.with_name(out_path.stem + ".pre.onnx")), _atomic_path(out_path)
    try:
        with _quiet_export():
            quant_pre_process(str(fp32_path), str(pre))
            quantize_static(
                str(pre),
                str(tmp),
                Batches(),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                reduce_range=reduce_range,
                activation_type=QuantType.QUInt8,
                weight_type={"int8": QuantType.QInt8, "uint8": QuantType.QUInt8}[weights],
                extra_options=extra_options,
                calibrate_method=methods[method],
                nodes_to_exclude=list(keep_fp32),
            )
        os.replace(tmp, out_path)
    finally:
        for leftover in (pre, tmp):
            leftover.unlink(missing_ok=True)
    return out_path


REID_INT8_WEIGHTS = "int8"
REID_INT8_REDUCE_RANGE = True
"""The ``ort-int8`` engine's re-id quantisation: s8 weights on a 7-bit grid (``reduce_range``),
u8 activations. 7-bit weights are ONNX Runtime's remedy for CPUs without VNNI, whose u8 x s8
kernels saturate on full 8-bit weights (cosine min 0.78 against 0.90 with 7 bits on an AVX2
Zen 3); one graph for every CPU keeps what quantisation-aware training simulates
(``personsearch.training.int8_distill``) the same as what runs everywhere."""


def reid_int8_excluded(fp32_path: str | Path) -> list[str]:
    """Nodes of an exported re-id network left in fp32 by ``quantize_reid_int8``: everything
    outside the backbone (pooling, the embedding layers, their batch norm and the L2
    normalisations). They are well under 1 % of the FLOPs but sit directly on the features."""
    import onnx

    return [
        node.name for node in onnx.load(str(fp32_path)).graph.node if not node.name.startswith("/backbone/")
    ]


def quantize_reid_int8(fp32_path: str | Path, out_path: str | Path, calibration: np.ndarray) -> Path:
    """The re-id network as the ``ort-int8`` engine runs it: its backbone in int8
    (``REID_INT8_*``), activation ranges from ``calibration``, the heads in fp32."""
    return quantize_int8(
        fp32_path,
        out_path,
        calibration,
        weights=REID_INT8_WEIGHTS,
        reduce_range=REID_INT8_REDUCE_RANGE,
        keep_fp32=reid_int8_excluded(fp32_path),
    )


def ort_session(
    path: str | Path, threads: int | None = None, spin: bool = False
) -> onnxruntime.InferenceSession:
    """An ONNX Runtime CPU session using as many threads as PyTorch does. By default its idle
    threads sleep instead of spinning for the next call (``spin=True`` is ONNX Runtime's own
    default). That is what a network called between other work wants, and every engine's network
    is: the detector's parts run between PyTorch's box-logic steps, and the re-id network between
    detector calls when a video is indexed. Spinning threads take the cores that work needs (on a
    2-core AVX2 CPU not spinning is 15 % faster per scene for the detector, 18 % for detect +
    embed), at a cost of 8-10 % for back-to-back re-id batches."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    if not spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class GraphModule(nn.Module):
    """An exported network run by a graph runtime, standing in for a PyTorch module (inference
    only, CPU): torch tensors in, float32 torch tensors out. Subclasses name the inputs and run
    the feeds."""

    inputs: list[str]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(x)[0]

    def run(self, *tensors: torch.Tensor) -> list[torch.Tensor]:
        """Every output of the network for ``tensors`` (its inputs, in order), as float32 tensors."""
        if len(tensors[0]) == 0:
            raise ValueError(f"{type(self).__name__} called with an empty batch")
        feeds = {
            name: x.detach().float().contiguous().cpu().numpy()
            for name, x in zip(self.inputs, tensors, strict=True)
        }
        return [torch.from_numpy(np.asarray(out, dtype=np.float32)) for out in self.infer(feeds)]

    def infer(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError


class OrtModule(GraphModule):
    """An ONNX Runtime session (``ort_session``) as a module."""

    def __init__(self, path: str | Path, spin: bool = False) -> None:
        super().__init__()
        self.path = Path(path)
        self.session = ort_session(self.path, spin=spin)
        self.inputs = [i.name for i in self.session.get_inputs()]

    def infer(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return list(self.session.run(None, feeds))


class OvModule(GraphModule):
    """An OpenVINO compiled model as a module, at ``precision`` (``bf16``: convolutions and
    matrix products in bf16 with fp32 accumulation, what OpenVINO picks by itself on bf16 CPUs;
    ``f32``), with as many threads as PyTorch uses."""

    def __init__(self, path: str | Path, precision: str = "bf16") -> None:
        super().__init__()
        import openvino as ov

        self.path = Path(path)
        config = {
            "INFERENCE_NUM_THREADS": torch.get_num_threads(),
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": precision,
        }
        self.compiled = ov.Core().compile_model(str(self.path), "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.inputs = [port.get_any_name() for port in self.compiled.inputs]

    def infer(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        results = self.request.infer(feeds)
        return [results[port] for port in self.compiled.outputs]


def onnx_to_openvino(path: str | Path) -> Path:
    """Convert an exported ONNX file to OpenVINO IR beside it (``.xml`` + ``.bin``, fp32 weights,
    the same graph) and remove the ONNX file; returns the ``.xml`` path."""
    import openvino as ov

    path = Path(path)
    xml = path.with_suffix(".xml")
    ov.save_model(ov.convert_model(str(path)), str(xml), compress_to_fp16=False)
    path.unlink()
    return xml


def graph_module(path: str | Path, engine: str) -> GraphModule:
    """The runtime module of a graph engine (``GRAPH_ENGINES``) for the ONNX file ``path``."""
    return OvModule(path, "bf16") if engine == "ov-bf16" else OrtModule(path)


class _TrunkOutput(nn.Module):
    """The detector trunk with one tensor out (what ONNX export and OrtModule handle)."""

    def __init__(self, body: nn.Module, stage: str) -> None:
        super().__init__()
        self.body, self.stage = body, stage

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return cast(torch.Tensor, self.body(x)[self.stage])


class _TrunkFromGraph(nn.Module):
    """The trunk's OrderedDict interface over a graph runtime's module."""

    def __init__(self, module: nn.Module, stage: str) -> None:
        super().__init__()
        self.module, self.stage = module, stage

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        return OrderedDict([(self.stage, self.module(x))])


class _RpnHeadOutputs(nn.Module):
    """The RPN head on one feature map, its two outputs as plain tensors (for export)."""

    def __init__(self, head: nn.Module) -> None:
        super().__init__()
        self.head = head

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, deltas = self.head([x])
        return logits[0], deltas[0]


class _RpnHeadFromGraph(nn.Module):
    """torchvision's RPN head interface (feature maps -> objectness, box deltas per map) over a
    graph runtime's module."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        outputs = [cast(GraphModule, self.module).run(feature) for feature in x]
        return [o[0] for o in outputs], [o[1] for o in outputs]


class _BoxHeadFromGraph(nn.Module):
    """The C4 box head (crops -> one feature per RoI) run by a graph runtime; PyTorch's head when
    there is no crop (a graph cannot take an empty batch)."""

    def __init__(self, module: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.module, self.head = module, head

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        return cast(torch.Tensor, self.head(crops) if len(crops) == 0 else self.module(crops))


def export_reid(model: nn.Module, path: str | Path) -> Path:
    """The re-id network (eval mode: crops -> L2-normalised features) as ONNX, any batch size."""
    height, width = cast("PyramidReID", model).config.input_size
    return export_onnx(model, torch.zeros(2, 3, height, width), path, {0: "batch"})


DETECTOR_PARTS = ("detector-trunk.onnx", "detector-rpn.onnx", "detector-head.onnx")
"""The ONNX files of a detector under a graph engine (``export_detector``)."""
HEAD_CALIBRATION_BYTES = 256 * 2**20
"""The most box-head inputs (RoI crops, float32) the int8 box head is calibrated on: every RoI of
the calibration scenes for the shipped MobileNetV2 head (1,664 crops, 31 MB), a sample for
wide heads (a ResNet-50 C4 head's crops are 0.8 MB each)."""


def export_detector(model: nn.Module, out_dir: str | Path) -> tuple[Path, ...]:
    """The detector's network parts as ONNX files in ``out_dir`` (``DETECTOR_PARTS``): the trunk
    (any image size), the RPN head (any feature map) and the C4 box head (pooled crops -> box
    features, any number of crops). ``graph_detector`` puts them back into the torchvision
    detector."""
    out_dir = Path(out_dir)
    detector = cast("PersonDetector", copy.deepcopy(model).float().eval())
    body = detector.backbone.body
    stage = body.out_stages[-1]
    trunk = export_onnx(
        _TrunkOutput(body, stage),
        torch.zeros(1, 3, 320, 256),
        out_dir / DETECTOR_PARTS[0],
        {0: "batch", 2: "height", 3: "width"},
    )
    feature = torch.zeros(1, detector.backbone.out_channels, 20, 16)
    map_axes = {0: "batch", 2: "height", 3: "width"}
    rpn = export_onnx(
        _RpnHeadOutputs(detector.rpn.head),
        feature,
        out_dir / DETECTOR_PARTS[1],
        {"input": map_axes, "output": map_axes, "output1": map_axes},
        outputs=2,
    )
    pool = detector.roi_heads.box_roi_pool
    crop = cast(nn.Module, pool.pool)(
        torch.zeros(2, detector.backbone.out_channels, *cast("tuple[int, int]", pool.output_size))
    )
    head = export_onnx(detector.roi_heads.box_head, crop, out_dir / DETECTOR_PARTS[2], {0: "rois"})
    return trunk, rpn, head


def graph_detector(model: nn.Module, parts: Sequence[str | Path], engine: str = "ort-fp32") -> nn.Module:
    """A copy of ``model`` whose network parts (``export_detector``'s files) run in the runtimes
    of graph engine ``engine`` (``DETECTOR_PART_ENGINES``), with ``box_logic``'s transform,
    anchors and RoIAlign."""
    runner = use_fast_box_logic(cast("PersonDetector", copy.deepcopy(model).float().eval()))
    runtimes = DETECTOR_PART_ENGINES.get(engine, (engine,) * 3)
    trunk, rpn, head = (graph_module(part, runtime) for part, runtime in zip(parts, runtimes, strict=True))
    runner.backbone.body = _TrunkFromGraph(trunk, runner.backbone.body.out_stages[-1])
    runner.rpn.head = _RpnHeadFromGraph(rpn)
    heads = runner.roi_heads
    heads.box_head = _BoxHeadFromGraph(head, heads.box_head)
    return runner


ReIDRun = Callable[[torch.Tensor], torch.Tensor]
"""Normalised float crops (B, 3, H, W) -> float32 features (B, D)."""
DetectRun = Callable[[list[torch.Tensor]], list[dict[str, torch.Tensor]]]
"""CHW float images in [0, 1] -> torchvision detection dicts (``boxes``, ``scores``)."""


def _torch_flags(name: str) -> tuple[bool, bool, bool]:
    """(channels_last, bf16 autocast, compiled) of a PyTorch engine."""
    if name == "torch-compile":
        return True, False, True
    return name in ("torch-fp32-cl", "torch-bf16"), name == "torch-bf16", False


def _prepared(model: nn.Module, name: str, device: torch.device) -> tuple[nn.Module, bool, bool]:
    """``model`` (in place) on ``device`` in eval mode, in the layout and compiled state of
    PyTorch engine ``name``; returns it with (channels_last, bf16 autocast)."""
    channels_last, bf16, compiled = _torch_flags(name)
    return prepare_for_inference(model, device, fast=channels_last, compiled=compiled), channels_last, bf16


def torch_reid(model: nn.Module, name: str, device: torch.device) -> ReIDRun:
    """A PyTorch engine for the re-id network (``model`` is prepared in place)."""
    model, channels_last, bf16 = _prepared(model, name, device)

    @torch.no_grad()
    def run(batch: torch.Tensor) -> torch.Tensor:
        batch = batch.to(device)
        if channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        with autocast_for(device, bf16):
            return cast(torch.Tensor, model(batch).float().cpu())

    return run


def torch_detector(model: nn.Module, name: str, device: torch.device) -> DetectRun:
    """A PyTorch engine for the detector (``model`` is prepared in place); every engine but the
    reference and ``torch-compile`` runs ``box_logic``'s transform, anchors and RoIAlign."""
    model, _, bf16 = _prepared(model, name, device)
    if name not in (REFERENCE, "torch-compile") and device.type == "cpu":
        use_fast_box_logic(cast("PersonDetector", model))

    @torch.no_grad()
    def run(images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        with autocast_for(device, bf16):
            return cast("list[dict[str, torch.Tensor]]", model([im.to(device) for im in images]))

    return run


def as_detections(outputs: list[dict[str, torch.Tensor]]) -> list[np.ndarray]:
    """torchvision detection dicts -> float32 (n, 5) ``[x1, y1, x2, y2, score]`` arrays."""
    return [
        np.concatenate(
            [o["boxes"].float().cpu().numpy(), o["scores"].float().cpu().numpy()[:, None]], axis=1
        ).astype(np.float32)
        for o in outputs
    ]


def graph_reid(path: str | Path, engine: str = "ort-fp32") -> ReIDRun:
    module = graph_module(path, engine)

    def run(batch: torch.Tensor) -> torch.Tensor:
        return cast(torch.Tensor, module(batch))

    return run


def graph_detect(model: nn.Module, parts: Sequence[str | Path], engine: str = "ort-fp32") -> DetectRun:
    runner = graph_detector(model, parts, engine)

    @torch.no_grad()
    def run(images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        return cast("list[dict[str, torch.Tensor]]", runner([im.cpu() for im in images]))

    return run


def reid_runner(
    model: Network, name: str, device: torch.device, workdir: Path, calibration: Callable[[], np.ndarray]
) -> ReIDRun:
    """The re-id network on engine ``name`` (a detector-only engine runs it on ``ort-fp32``). ONNX
    files are exported into (and reused from) ``workdir``, which must be specific to these
    weights; ``calibration`` gives the int8 calibration inputs when a quantised network has to be
    made. ``model`` (or what builds it, called only to export or to run it in PyTorch) is not
    modified."""
    name = runnable(name, "reid", device)
    if name in GRAPH_ENGINES:
        fp32 = workdir / "reid-fp32.onnx"
        if not fp32.is_file():
            export_reid(_built(model), fp32)
        if name != "ort-int8":
            return graph_reid(fp32, name)
        int8 = workdir / "reid-int8.onnx"
        if not int8.is_file():
            quantize_reid_int8(fp32, int8, calibration())
        return graph_reid(int8)
    return torch_reid(copy.deepcopy(_built(model)), name, device)


def box_head_inputs(
    model: nn.Module,
    parts: Sequence[str | Path],
    scenes: Sequence[np.ndarray],
    max_bytes: int = HEAD_CALIBRATION_BYTES,
) -> np.ndarray:
    """What the detector's box head takes (pooled RoI crops, proposals included) when the fp32
    detector (``parts`` on ONNX Runtime) runs on ``scenes`` (HxWx3 uint8): all of them, or an
    evenly spaced sample of ``max_bytes``, so that a wide head's calibration stays within memory."""
    from personsearch.models.detector import image_tensors

    runner = cast("PersonDetector", graph_detector(model, parts))
    crops: list[torch.Tensor] = []
    runner.roi_heads.box_head.register_forward_pre_hook(
        lambda _module, args: crops.append(args[0].detach().clone())
    )
    with torch.no_grad():
        for image in image_tensors(list(scenes)):
            runner([image])
    if not crops:
        raise ValueError(
            "the detector made no proposals on the calibration scenes: nothing to calibrate "
            "the int8 box head on"
        )
    inputs = torch.cat(crops)
    most = max(1, max_bytes // (inputs[0].numel() * 4))
    keep = np.linspace(0, len(inputs) - 1, min(most, len(inputs))).round().astype(int)
    return inputs[keep].numpy()


def quantize_box_head_int8(
    model: nn.Module, parts: Sequence[Path], workdir: Path, scenes: Callable[[], Sequence[np.ndarray]]
) -> Path:
    """The detector's box head as ``ort-int8-head`` runs it, made once in ``workdir``: static QDQ
    int8, s8 per-channel weights on the full 8-bit grid, u8 activations with ranges from its
    inputs on ``scenes``. The same grid on every CPU: on an AVX2-only Zen 3, whose u8 x s8 kernel
    adds pairs of products in 16 bits and can saturate, it still matched all 116 probe boxes and
    ran 1.37x ONNX Runtime fp32, where u8 weights (the u8 x u8 kernel, no saturation) matched 99.1 %
    at 1.06x and 7-bit s8 weights 97.4 % (``benchmarks/int8_box_head.py``, docs/performance-log.md).
    What a saturating kernel does to boxes depends on the network and the scenes, so the engine
    chooser checks them on every machine, as it does every engine's."""
    path = workdir / "detector-head-int8.onnx"
    if not path.is_file():
        quantize_int8(parts[2], path, box_head_inputs(model, parts, scenes()))
    return path


def detector_runner(
    model: Network,
    name: str,
    device: torch.device,
    workdir: Path,
    calibration: Callable[[], Sequence[np.ndarray]] | None = None,
) -> DetectRun:
    """The detector on engine ``name`` (``ort-int8`` runs it on ``ort-fp32``: only the re-id
    network is quantised); ONNX parts are exported into ``workdir``. ``calibration`` gives the
    scenes that calibrate the int8 box head of ``ort-int8-head`` when it has to be made. ``model``
    (or what builds it) is not modified."""
    name = runnable(name, "detector", device)
    model = _built(model)
    if name in GRAPH_ENGINES:
        parts = [workdir / part for part in DETECTOR_PARTS]
        if not all(part.is_file() for part in parts):
            export_detector(model, workdir)
        if name == "ort-int8-head":
            if calibration is None:
                raise ValueError(
                    "engine 'ort-int8-head' needs calibration scenes to quantise the detector's box head"
                )
            parts[2] = quantize_box_head_int8(model, parts, workdir, calibration)
        return graph_detect(model, parts, name)
    return torch_detector(copy.deepcopy(model), name, device)


def cpu_signature() -> dict[str, Any]:
    """What decides which engine is fastest: the CPU model and its vector extensions, PyTorch's
    kernel level, the threads used, the library versions, what the engines run (their revision),
    and glibc's malloc tuning (the CLI sets
    it; on an AVX2 CPU it makes PyTorch 1.6-2.7x faster and ONNX Runtime no faster, so a choice
    measured with it does not hold without it: docs/performance.md)."""
    flags = sorted(
        cpu_flags()
        & {
            "avx2",
            "fma",
            "avx512f",
            "avx512_bf16",
            "avx512_vnni",
            "avx_vnni",
            "amx_bf16",
            "amx_int8",
            "amx_tile",
        }
    )
    model = platform.processor()
    if model in ("", "x86_64"):
        model = cpuinfo_field("model name") or model
    try:
        import onnxruntime

        ort_version = onnxruntime.__version__
    except ImportError:
        ort_version = None
    try:
        import openvino

        ov_version = openvino.__version__
    except ImportError:
        ov_version = None
    return {
        "cpu": model,
        "flags": flags,
        "torch_capability": torch.backends.cpu.get_cpu_capability(),
        "native_bf16": native_bf16("cpu"),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "onnxruntime": ort_version,
        "openvino": ov_version,
        "onednn_max_isa": os.environ.get("ONEDNN_MAX_CPU_ISA"),
        "glibc_tunables": os.environ.get("GLIBC_TUNABLES"),
        "engines_revision": REVISION,
    }


DEVICE_KEYS = ("device", "gpu", "cuda", "cudnn")
"""What ``signature_for`` adds to ``cpu_signature()`` for a device other than the CPU."""


def signature_for(device: str | torch.device = "cpu") -> dict[str, Any]:
    """What decides which engine is fastest on ``device``: ``cpu_signature()``, plus the GPU and
    its CUDA libraries when ``device`` is one, so a choice measured on a GPU is kept for that GPU
    only and never stands in for the CPU's (or another GPU's)."""
    signature = cpu_signature()
    device = torch.device(device)
    if device.type != "cpu":
        signature["device"] = device.type
    if device.type == "cuda":
        signature.update(
            gpu=torch.cuda.get_device_name(device),
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),  # type: ignore[no-untyped-call]  # torch leaves cudnn.version() unannotated
        )
    return signature


def signature_digest(signature: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(signature, sort_keys=True).encode()).hexdigest()[:12]


@dataclass
class Measurement:
    """One candidate engine on one network."""

    engine: str
    network: str
    per_s: float | None = None
    """Probe crops (re-id) or probe scenes (detector) per second; None when it could not run."""
    accepted: bool = False
    agreement: dict[str, float] = field(default_factory=dict)
    note: str = ""
    checked: bool = True
    """False when the outputs were not compared with fp32 (``measure_*(lazy=True)``, what a first
    use measures): it could not be chosen, being slower than an engine that agrees, or of reduced
    precision and not ``REDUCED_PRECISION_GAIN`` faster than an fp32 one that agrees."""


@dataclass
class EngineChoice:
    """The engine each network runs on, and why."""

    reid: str
    detector: str
    measurements: list[Measurement] = field(default_factory=list)
    signature: dict[str, Any] = field(default_factory=dict)
    from_cache: bool = False

    def speedup(self, network: str) -> float | None:
        rates = {m.engine: m.per_s for m in self.measurements if m.network == network and m.per_s}
        chosen = self.reid if network == "reid" else self.detector
        if chosen in rates and REFERENCE in rates:
            return rates[chosen] / rates[REFERENCE]
        return None

    def summary(self) -> str:
        """One line: which engine runs each network and how much faster than fp32 it measured."""
        parts = []
        for network, chosen in (("detector", self.detector), ("re-id", self.reid)):
            ratio = self.speedup("reid" if network == "re-id" else "detector")
            parts.append(f"{network} {chosen}" + (f" ({ratio:.1f}x fp32)" if ratio else ""))
        where = (
            f"{self.signature.get('cpu', '?')}, {self.signature.get('torch_capability', '?')}, "
            f"{'native' if self.signature.get('native_bf16') else 'no native'} bf16"
        )
        if self.signature.get("gpu"):
            where = f"GPU {self.signature['gpu']} (CUDA {self.signature.get('cuda')})"
        how = (
            "as asked (--engine or $PERSONSEARCH_ENGINE)"
            if not self.measurements
            else ("cached measurement" if self.from_cache else "measured")
        )
        return f"engines: {', '.join(parts)}; {how} on {where}"

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EngineChoice:
        measurements = [Measurement(**m) for m in data.get("measurements", [])]
        return cls(data["reid"], data["detector"], measurements, data.get("signature", {}), from_cache=True)

    def table(self) -> str:
        """Every measurement as a text table (``personsearch bench-engines``)."""
        lines = [f"{'network':9s} {'engine':14s} {'per s':>9s} {'x fp32':>7s}  agreement with fp32"]
        ref = {m.network: m.per_s for m in self.measurements if m.engine == REFERENCE}
        for m in self.measurements:
            chosen = m.engine == (self.reid if m.network == "reid" else self.detector)
            ratio = f"{m.per_s / base:.2f}" if m.per_s and (base := ref.get(m.network)) else "-"
            agree = ", ".join(f"{k} {v:.4f}" for k, v in m.agreement.items())
            status = (
                "CHOSEN" if chosen else ("ok" if m.accepted else "refused" if m.checked else "not checked")
            )
            lines.append(
                f"{m.network:9s} {m.engine:14s} {m.per_s or 0:9.1f} {ratio:>7s}  {status}: {agree or m.note}"
            )
        return "\n".join(lines)


def choice_file(folder: Path, signature: dict[str, Any]) -> Path:
    """Where a model's choice for ``signature`` is kept in its engine folder (``ModelBundle.engine_dir``):
    the signature is part of the name, so another CPU, GPU or library version measures its own."""
    return folder / f"choice-{signature_digest(signature)}.json"


def load_cached_choice(folder: Path, device: str | torch.device = "cpu") -> EngineChoice | None:
    """The choice kept in ``folder`` for this machine's ``device``, or None (never measured,
    or the CPU, GPU, threads or library versions changed)."""
    path = choice_file(folder, signature_for(device))
    try:
        return EngineChoice.from_json(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def save_choice(folder: Path, choice: EngineChoice) -> Path:
    """Keep ``choice`` in ``folder`` (written whole, then renamed: a reader never sees half a file)."""
    path = choice_file(folder, choice.signature)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(choice.to_json(), indent=2))
    os.replace(tmp, path)
    return path
