"""Inference engines: one trained network, run by whichever runtime is fastest on this machine.

A network can run as plain PyTorch fp32 (the reference every other engine is checked against),
PyTorch fp32 with channels_last (oneDNN convolutions without layout reorders), PyTorch bf16
autocast (only where the CPU has native bf16, AVX-512 BF16 or AMX: elsewhere PyTorch emulates it
and runs 6-10x slower than fp32), ``torch.compile`` (opt-in: it needs a C++ compiler and compiles
once per input-shape family), or ONNX Runtime: fp32, and for the re-id network int8 with static
QDQ quantisation calibrated on person crops.

The detector under ONNX Runtime runs its two convolutional parts there (the stride-16 trunk and
the C4 box head on the RoI crops) and keeps torchvision's RPN, RoIAlign and box post-processing
in PyTorch, so the box logic is the same code whatever the engine.

Which engine is fastest *and* agrees with fp32 is measured per machine: ``engine_choice.py``.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import os
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from torch import nn

from personsearch.models.fast import autocast_for, native_bf16, prepare_for_inference

if TYPE_CHECKING:
    from personsearch.models.detector import PersonDetector
    from personsearch.models.reid import PyramidReID

ENGINES: dict[str, str] = {
    "torch-fp32": "PyTorch fp32 eager, contiguous tensors (the reference)",
    "torch-fp32-cl": "PyTorch fp32, channels_last",
    "torch-bf16": "PyTorch bf16 autocast + channels_last (native bf16 CPUs: AVX-512 BF16 / AMX; CUDA)",
    "torch-compile": "torch.compile (inductor, frozen weights) on the fp32 or bf16 path (opt-in, needs g++)",
    "ort-fp32": "ONNX Runtime fp32",
    "ort-int8": "ONNX Runtime int8, static QDQ quantisation (re-id; the detector runs ort-fp32)",
}
"""Every engine name, with what it runs."""
REFERENCE = "torch-fp32"
AUTO_CANDIDATES = ("torch-fp32", "torch-fp32-cl", "torch-bf16", "ort-fp32", "ort-int8")
"""Engines ``--engine auto`` measures. ``torch-compile`` is left out: its one-off compile per input
shape (tens of seconds) would dominate the measurement and every short run after it."""


def unavailable(name: str, device: str | torch.device = "cpu") -> str | None:
    """Why engine ``name`` cannot run here, or None when it can."""
    if name not in ENGINES:
        return f"unknown engine {name!r}; known: {', '.join(ENGINES)}"
    device = torch.device(device)
    if name == "torch-bf16" and not native_bf16(device):
        return "this CPU has no native bf16 (AVX-512 BF16 or AMX): PyTorch would emulate it, 6-10x slower than fp32"
    if name.startswith("ort-"):
        if device.type != "cpu":
            return "ONNX Runtime engines run on the CPU here"
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            return "onnxruntime is not installed (pip install onnxruntime)"
    if name == "ort-int8":
        try:
            import onnx  # noqa: F401
        except ImportError:
            return "int8 quantisation needs the onnx package (pip install onnx)"
    return None


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


def export_onnx(module: nn.Module, example: torch.Tensor, path: str | Path, dynamic: dict[int, str]) -> Path:
    """Export ``module`` (one tensor in, one tensor out) to ONNX at ``path`` (atomic write) with
    the given dynamic input axes; the output's batch axis is dynamic too."""
    path = Path(path)
    tmp = _atomic_path(path)
    module = copy.deepcopy(module).float().eval().to(memory_format=torch.contiguous_format)
    with _quiet_export(), torch.no_grad():
        torch.onnx.export(
            module,
            (example.float().contiguous(),),
            str(tmp),
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={"input": dynamic, "output": {0: dynamic.get(0, "n")}},
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
) -> Path:
    """Static int8 quantisation (QDQ, per-channel weights, uint8 activations) of an ONNX network,
    activation ranges calibrated on ``calibration`` (float32 network inputs). The defaults are the
    ``ort-int8`` engine's; ``weights="uint8"``, ``reduce_range`` (7-bit weights) and ONNX Runtime's
    ``extra_options`` are the remedies its documentation gives for the saturating u8 x s8 kernels of
    CPUs without VNNI, measured by ``benchmarks/int8_settings.py``."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Batches(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(
                [{"input": np.ascontiguousarray(calibration[i : i + batch_size], dtype=np.float32)} for i in range(0, len(calibration), batch_size)]
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
            )
        os.replace(tmp, out_path)
    finally:
        for leftover in (pre, tmp):
            leftover.unlink(missing_ok=True)
    return out_path


def ort_session(path: str | Path, threads: int | None = None):  # -> onnxruntime.InferenceSession
    """An ONNX Runtime CPU session using as many threads as PyTorch does."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OrtModule(nn.Module):
    """An ONNX Runtime session standing in for a PyTorch module (inference only, CPU)."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)
        self.session = ort_session(self.path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(x) == 0:
            raise ValueError("OrtModule called with an empty batch")
        out = self.session.run(None, {"input": x.detach().float().contiguous().cpu().numpy()})[0]
        return torch.from_numpy(out)


class _TrunkOutput(nn.Module):
    """The detector trunk with one tensor out (what ONNX export and OrtModule handle)."""

    def __init__(self, body: nn.Module, stage: str) -> None:
        super().__init__()
        self.body, self.stage = body, stage

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)[self.stage]


class _TrunkFromOrt(nn.Module):
    """The trunk's OrderedDict interface over an ONNX Runtime session."""

    def __init__(self, module: OrtModule, stage: str) -> None:
        super().__init__()
        self.module, self.stage = module, stage

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        return OrderedDict([(self.stage, self.module(x))])


def export_reid(model: nn.Module, path: str | Path) -> Path:
    """The re-id network (eval mode: crops -> L2-normalised features) as ONNX, any batch size."""
    height, width = cast("PyramidReID", model).config.input_size
    return export_onnx(model, torch.zeros(2, 3, height, width), path, {0: "batch"})


def export_detector(model: nn.Module, out_dir: str | Path) -> tuple[Path, Path]:
    """The detector's trunk (any image size) and C4 box head (any number of RoIs) as ONNX:
    ``detector-trunk.onnx`` and ``detector-head.onnx`` in ``out_dir``. The RPN, RoIAlign and box
    post-processing stay in PyTorch (``ort_detector`` puts the two parts back)."""
    out_dir = Path(out_dir)
    detector = cast("PersonDetector", model)
    body = detector.backbone.body
    stage = body.out_stages[-1]
    trunk = export_onnx(_TrunkOutput(body, stage), torch.zeros(1, 3, 320, 256), out_dir / "detector-trunk.onnx", {0: "batch", 2: "height", 3: "width"})
    channels = detector.backbone.out_channels
    side = detector.roi_heads.box_roi_pool.output_size[0] // (2 if isinstance(detector.roi_heads.box_roi_pool.pool, nn.MaxPool2d) else 1)
    head = export_onnx(detector.roi_heads.box_head, torch.zeros(2, channels, side, side), out_dir / "detector-head.onnx", {0: "rois"})
    return trunk, head


def ort_detector(model: nn.Module, trunk_path: str | Path, head_path: str | Path) -> nn.Module:
    """A copy of ``model`` whose trunk and box head run in ONNX Runtime."""
    runner = cast("PersonDetector", copy.deepcopy(model).eval())
    stage = runner.backbone.body.out_stages[-1]
    runner.backbone.body = _TrunkFromOrt(OrtModule(trunk_path), stage)
    runner.roi_heads.box_head = OrtModule(head_path)
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
            return model(batch).float().cpu()

    return run


def torch_detector(model: nn.Module, name: str, device: torch.device) -> DetectRun:
    """A PyTorch engine for the detector (``model`` is prepared in place)."""
    model, _, bf16 = _prepared(model, name, device)

    @torch.no_grad()
    def run(images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        with autocast_for(device, bf16):
            return model([im.to(device) for im in images])

    return run


def as_detections(outputs: list[dict[str, torch.Tensor]]) -> list[np.ndarray]:
    """torchvision detection dicts -> float32 (n, 5) ``[x1, y1, x2, y2, score]`` arrays."""
    return [np.concatenate([o["boxes"].float().cpu().numpy(), o["scores"].float().cpu().numpy()[:, None]], axis=1).astype(np.float32) for o in outputs]


def ort_reid(path: str | Path) -> ReIDRun:
    module = OrtModule(path)

    def run(batch: torch.Tensor) -> torch.Tensor:
        return module(batch)

    return run


def ort_detect(model: nn.Module, trunk_path: str | Path, head_path: str | Path) -> DetectRun:
    runner = ort_detector(model, trunk_path, head_path)

    @torch.no_grad()
    def run(images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        return runner([im.cpu() for im in images])

    return run


def reid_runner(model: nn.Module, name: str, device: torch.device, workdir: Path, calibration: Callable[[], np.ndarray]) -> ReIDRun:
    """The re-id network on engine ``name``. ONNX files are exported into (and reused from)
    ``workdir``, which must be specific to these weights; ``calibration`` gives the int8
    calibration inputs when a quantised network has to be made. ``model`` is not modified."""
    why = unavailable(name, device)
    if why:
        raise ValueError(f"engine {name!r} cannot run the re-id network here: {why}")
    if name.startswith("ort-"):
        fp32 = workdir / "reid-fp32.onnx"
        if not fp32.is_file():
            export_reid(model, fp32)
        if name == "ort-fp32":
            return ort_reid(fp32)
        int8 = workdir / "reid-int8.onnx"
        if not int8.is_file():
            quantize_int8(fp32, int8, calibration())
        return ort_reid(int8)
    return torch_reid(copy.deepcopy(model), name, device)


def detector_runner(model: nn.Module, name: str, device: torch.device, workdir: Path) -> DetectRun:
    """The detector on engine ``name`` (``ort-int8`` runs it on ``ort-fp32``: only the re-id
    network is quantised); ONNX parts are exported into ``workdir``. ``model`` is not modified."""
    why = unavailable(name, device)
    if why:
        raise ValueError(f"engine {name!r} cannot run the detector here: {why}")
    if name.startswith("ort-"):
        trunk, head = workdir / "detector-trunk.onnx", workdir / "detector-head.onnx"
        if not (trunk.is_file() and head.is_file()):
            export_detector(model, workdir)
        return ort_detect(model, trunk, head)
    return torch_detector(copy.deepcopy(model), name, device)
