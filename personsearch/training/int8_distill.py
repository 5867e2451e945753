"""Quantisation-aware distillation: bring a re-id network's int8 features closer to its fp32 ones.

Post-training int8 of the shipped MobileNetV2 pyramid moves its features too far for the engine
chooser's rule (cosine min 0.78-0.90 on an AVX2 CPU), and the error is spread over every layer
(``benchmarks/int8_settings.py``), so no choice of settings rescues it: the weights have to learn
to live with 8-bit activations and 7-bit weights. This module fine-tunes a copy of the network
(the student) against the original (the teacher) while simulating that quantisation, so that

- the student's **fp32** features stay the teacher's (search accuracy is kept), and
- the student's **int8** features (as ONNX Runtime computes them) match the student's fp32 ones.

The simulation is read off ONNX Runtime's own quantised graph, not re-invented: the engine's
quantiser (``engines.quantize_reid_int8``) is run on the student, and every activation it
quantises is fake-quantised in PyTorch at the same tensor with the same scale and zero point; the
weights of every convolution it quantises are fake-quantised as it does (batch norm folded in,
symmetric per output channel, its integer range). What is trained is therefore what runs: the
activation ranges are re-read from the student every ``refresh_every`` steps, calibrated on the
same crops the engine calibrates the final network on (``ModelBundle.calibration_inputs``).

Measured on the shipped network (docs/performance.md): the int8 error halves and int8 search
accuracy equals fp32's, but the engine chooser's feature rule still refuses it.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from personsearch.data.crops import CropAugment, normalize_crops
from personsearch.models import engine_choice, engines


@dataclass
class Int8DistillConfig:
    """Fine-tuning schedule. The defaults took 26 minutes on a 2-core AVX2 CPU (docs/performance-log.md)."""

    steps: int = 300
    batch_size: int = 32
    lr: float = 2e-5
    refresh_every: int = 100
    """Steps between re-reading ONNX Runtime's activation ranges from the student."""
    seed: int = 0


def activation_quantisation(int8_path: str | Path) -> dict[str, tuple[float, int]]:
    """Every activation tensor a QDQ graph quantises: tensor name -> (scale, uint8 zero point).
    Weights in a QDQ graph are stored already quantised (no QuantizeLinear), so every
    QuantizeLinear node quantises an activation."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(int8_path)).graph
    constants = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    plan: dict[str, tuple[float, int]] = {}
    for node in graph.node:
        if node.op_type == "QuantizeLinear":
            plan[node.input[0]] = (float(constants[node.input[1]]), int(constants[node.input[2]]))
    return plan


def quantised_convolutions(int8_path: str | Path) -> list[str]:
    """Scopes (``/backbone/.../conv.0.0``) of the convolutions whose weights a QDQ graph
    dequantises from int8."""
    import onnx

    graph = onnx.load(str(int8_path)).graph
    made_by = {out: node.op_type for node in graph.node for out in node.output}
    return [
        node.name.rpartition("/")[0]
        for node in graph.node
        if node.op_type == "Conv" and made_by.get(node.input[1]) == "DequantizeLinear"
    ]


def module_name(scope: str) -> str:
    """The PyTorch module path of a TorchScript-exported ONNX scope: ``/backbone/layer1/layer1.1/
    conv/conv.0/conv.0.2`` -> ``backbone.layer1.1.conv.0.2`` (a child's scope repeats its parent's
    name as a prefix)."""
    parts: list[str] = []
    previous = ""
    for segment in scope.strip("/").split("/"):
        parts.append(
            segment[len(previous) + 1 :] if previous and segment.startswith(previous + ".") else segment
        )
        previous = segment
    return ".".join(parts)


def _batch_norm_after(model: nn.Module) -> dict[str, nn.BatchNorm2d]:
    """Convolution path -> the batch norm that follows it in the same Sequential (which the ONNX
    export folds into the convolution)."""
    following: dict[str, nn.BatchNorm2d] = {}
    for parent_name, parent in model.named_modules():
        children = list(parent.named_children())
        for (name, child), (_, after) in zip(children, children[1:], strict=False):
            if isinstance(child, nn.Conv2d) and isinstance(after, nn.BatchNorm2d):
                following[f"{parent_name}.{name}" if parent_name else name] = after
    return following


class _FoldedWeightQuant(nn.Module):
    """Fake-quantises a convolution's weight as ONNX Runtime quantises the exported one: batch
    norm folded in, symmetric per output channel over ``[qmin, qmax]``; returns it unfolded."""

    def __init__(
        self, batch_norm: nn.BatchNorm2d | None, qmin: int, qmax: int, enabled: Callable[[], bool]
    ) -> None:
        super().__init__()
        self.batch_norm, self.qmin, self.qmax, self.enabled = batch_norm, qmin, qmax, enabled

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        if not self.enabled():
            return weight
        fold = torch.ones(weight.shape[0], device=weight.device)
        if self.batch_norm is not None:
            variance = cast(torch.Tensor, self.batch_norm.running_var)
            fold = (self.batch_norm.weight / torch.sqrt(variance + self.batch_norm.eps)).detach()
        fold = fold.view(-1, 1, 1, 1)
        folded = weight * fold
        scale = (2 * folded.detach().abs().flatten(1).amax(1) / (self.qmax - self.qmin)).clamp(min=1e-12)
        zero = torch.zeros_like(scale, dtype=torch.int32)
        return torch.fake_quantize_per_channel_affine(folded, scale, zero, 0, self.qmin, self.qmax) / fold


class Int8Simulation:
    """ONNX Runtime's int8 re-id graph simulated on a PyTorch network, attached in place.
    ``enabled`` switches it off for the fp32 pass of the same weights; ``detach`` restores the
    plain network (the trained weights, unquantised)."""

    def __init__(self, model: nn.Module, int8_path: str | Path) -> None:
        from onnx import TensorProto
        from onnxruntime.quantization.quant_utils import get_qmin_qmax_for_qType

        qmin, qmax = (
            int(v)
            for v in get_qmin_qmax_for_qType(
                TensorProto.INT8, reduce_range=engines.REID_INT8_REDUCE_RANGE, symmetric=True
            )
        )
        self.model, self.enabled = model, True
        self._hooks: list[torch.utils.hooks.RemovableHandle] = []
        self._convs: list[nn.Conv2d] = []
        try:
            self._attach(int8_path, qmin, qmax)
        except Exception:
            self.detach()  # a graph that does not fit leaves the network as it was
            raise

    def _attach(self, int8_path: str | Path, qmin: int, qmax: int) -> None:
        modules = dict(self.model.named_modules())
        following = _batch_norm_after(self.model)
        for scope in quantised_convolutions(int8_path):
            conv = modules.get(module_name(scope))
            if not isinstance(conv, nn.Conv2d):
                raise ValueError(
                    f"{int8_path}: quantised convolution {scope!r} is not a Conv2d of the network"
                )
            parametrize.register_parametrization(
                conv, "weight", _FoldedWeightQuant(following.get(module_name(scope)), qmin, qmax, self.is_on)
            )
            self._convs.append(conv)
        for tensor, (scale, zero) in activation_quantisation(int8_path).items():
            if tensor == "input":
                self._hooks.append(self.model.register_forward_pre_hook(self._quantise_input(scale, zero)))
                continue
            scope, _, op = tensor.rpartition("/")
            kind, name = op.removesuffix("_output_0"), module_name(scope)
            module = following.get(name) if kind == "Conv" and name in following else modules.get(name)
            if kind not in ("Conv", "Clip", "Relu", "Add") or module is None:
                raise ValueError(
                    f"{int8_path}: cannot place the quantised tensor {tensor!r} on a module of the network"
                )
            self._hooks.append(module.register_forward_hook(self._quantise_output(scale, zero)))

    def is_on(self) -> bool:
        return self.enabled

    def _quantise_input(self, scale: float, zero: int) -> Callable[..., Any]:
        def hook(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
            return (
                (torch.fake_quantize_per_tensor_affine(args[0], scale, zero, 0, 255), *args[1:])
                if self.enabled
                else None
            )

        return hook

    def _quantise_output(self, scale: float, zero: int) -> Callable[..., Any]:
        def hook(module: nn.Module, args: Any, output: torch.Tensor) -> torch.Tensor | None:
            return (
                torch.fake_quantize_per_tensor_affine(output, scale, zero, 0, 255) if self.enabled else None
            )

        return hook

    def detach(self) -> None:
        for handle in self._hooks:
            handle.remove()
        for conv in self._convs:
            parametrize.remove_parametrizations(conv, "weight", leave_parametrized=False)
        self._hooks, self._convs = [], []


@torch.no_grad()
def features(model: nn.Module, crops: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """``model``'s features of normalised ``crops``, in batches, without gradients."""
    return torch.cat([model(crops[i : i + batch_size]) for i in range(0, len(crops), batch_size)])


def int8_graph(model: nn.Module, calibration: np.ndarray, workdir: Path) -> Path:
    """``model`` exported and quantised exactly as the ``ort-int8`` engine does it."""
    fp32 = engines.export_reid(model, workdir / "reid-fp32.onnx")
    return engines.quantize_reid_int8(fp32, workdir / "reid-int8.onnx", calibration)


@contextlib.contextmanager
def simulated(model: nn.Module, calibration: np.ndarray) -> Iterator[Int8Simulation]:
    """``model`` with the ``ort-int8`` engine's quantisation simulated on it, its activation
    ranges read from ONNX Runtime's quantiser calibrated on ``calibration`` now."""
    with tempfile.TemporaryDirectory() as tmp:
        simulation = Int8Simulation(model, int8_graph(model, calibration, Path(tmp)))
    try:
        yield simulation
    finally:
        simulation.detach()


def int8_agreement(
    model: nn.Module, calibration: np.ndarray, crops: dict[str, torch.Tensor]
) -> dict[str, dict[str, float]]:
    """For each set of crops: ONNX Runtime int8 (the engine's graph) against the model's own
    PyTorch fp32 features, by the engine chooser's measures."""
    with tempfile.TemporaryDirectory() as tmp:
        run = engines.graph_reid(int8_graph(model, calibration, Path(tmp)))
        return {
            name: engine_choice.feature_agreement(features(model, x).numpy(), run(x).numpy())
            for name, x in crops.items()
        }


def distill_for_int8(
    teacher: nn.Module,
    crops: torch.Tensor,
    calibration: np.ndarray,
    config: Int8DistillConfig = Int8DistillConfig(),
    log: Callable[[str], None] = print,
) -> nn.Module:
    """A copy of ``teacher`` fine-tuned on ``crops`` (e.g. the training split's people) so that
    its fp32 features stay the teacher's and its int8 features (the ``ort-int8`` engine's,
    calibrated on ``calibration``, normalised network inputs) come close to its fp32 ones.
    ``crops`` are uint8 (n, 3, H, W) at the network's input size, augmented as in re-id training
    (flip, shift, down-scaling) so that small people are in the mix.

    Each step asks three things of a batch, by cosine: simulated int8 features = teacher's,
    fp32 features = teacher's, simulated int8 = fp32 (the chooser's own comparison). Batch norm
    stays frozen (eval mode): ONNX Runtime folds its running statistics into the convolutions."""
    generator = torch.Generator().manual_seed(config.seed)
    teacher = teacher.eval()
    student = copy.deepcopy(teacher).eval()
    optimiser = torch.optim.Adam([p for p in student.parameters() if p.requires_grad], lr=config.lr)
    augment = CropAugment()
    started = time.perf_counter()
    step = 0
    while step < config.steps:
        with simulated(student, calibration) as simulation:
            for _ in range(min(config.refresh_every, config.steps - step)):
                batch = normalize_crops(
                    augment(
                        crops[torch.randint(0, len(crops), (config.batch_size,), generator=generator)],
                        generator,
                    )
                )
                with torch.no_grad():
                    target = teacher(batch)
                simulation.enabled = True
                quantised = student(batch)
                simulation.enabled = False
                full = student(batch)
                pairs = ((quantised, target), (full, target), (quantised, full.detach()))
                loss = torch.stack([1 - F.cosine_similarity(a, b).mean() for a, b in pairs]).sum()
                optimiser.zero_grad()
                loss.backward()  # type: ignore[no-untyped-call]  # torch leaves Tensor.backward unannotated
                optimiser.step()
                step += 1
                if step % 25 == 0 or step == config.steps:
                    log(
                        f"int8 distillation step {step}/{config.steps}: loss {loss.item():.5f}, "
                        f"{time.perf_counter() - started:.0f} s"
                    )
    return student.eval()


def distill_bundle(
    bundle_dir: str | Path,
    data_dir: str | Path,
    out_dir: str | Path,
    config: Int8DistillConfig = Int8DistillConfig(),
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """``distill_for_int8`` on a bundle's re-id network with the training split of ``data_dir``:
    writes a bundle to ``out_dir`` (the detector copied, the distilled re-id network) and returns
    the agreements before and after (int8 against its own fp32 on the engine chooser's check
    crops, student fp32 against the teacher's) and the time taken."""
    from personsearch.data import load_dataset
    from personsearch.data.crops import build_crop_set
    from personsearch.models.bundle import load_component, probe_crops, save_component

    teacher, reid_config, metadata = load_component(bundle_dir, "reid")
    dataset = load_dataset(data_dir)  # a wrong path fails here, before any work
    check, calibration_crops = probe_crops(reid_config.input_size)
    calibration = calibration_crops.numpy()
    crops = build_crop_set(dataset.train, tuple(reid_config.input_size)).crops
    log(
        f"int8 distillation of {bundle_dir}: {len(crops)} training crops of {data_dir}, "
        f"{config.steps} steps of {config.batch_size}"
    )
    before = int8_agreement(teacher, calibration, {"check": check})["check"]
    started = time.perf_counter()
    student = distill_for_int8(teacher, crops, calibration, config, log)
    seconds = time.perf_counter() - started
    after = int8_agreement(student, calibration, {"check": check})["check"]
    kept = engine_choice.feature_agreement(features(teacher, check).numpy(), features(student, check).numpy())
    report = {
        "int8_before": before,
        "int8_after": after,
        "fp32_vs_teacher": kept,
        "seconds": round(seconds, 1),
        "config": dataclasses.asdict(config),
    }
    save_component(
        out_dir,
        "reid",
        student,
        reid_config,
        dict(metadata, int8_distillation=dict(report, teacher=str(bundle_dir), data=str(data_dir))),
    )
    for part in ("detector.json", "detector.safetensors"):
        if (Path(bundle_dir) / part).is_file():
            shutil.copyfile(Path(bundle_dir) / part, Path(out_dir) / part)
    return report
