"""Choose the inference engine by measurement: the fastest one whose outputs agree with fp32.

No rule of thumb picks the right engine for every CPU: bf16 is twice as fast as fp32 on AVX-512
BF16 parts and 6-10x slower on AVX2 ones; ONNX Runtime beats PyTorch by 2-7x on some networks
and CPUs and not on others. So, once per (model, CPU, library versions), every candidate engine
(``engines.AUTO_CANDIDATES``) runs the model on a fixed probe set of synthetic scenes and person
crops; a candidate is kept only if its outputs agree with the plain fp32 reference:

* re-id features: cosine to the fp32 feature, median >= 0.99 and minimum >= 0.97, and each
  probe crop's nearest other crop the same as with fp32 (up to exact ties) for >= 98 % of them;
* detections: >= 99 % of the fp32 boxes matched at IoU >= 0.9 and the box count within 1 %, on
  crowded probe scenes holding about a hundred people (``check_scenes``).

The fastest kept candidate wins (fp32 itself is always a candidate, so the choice is never
slower than fp32 beyond timing noise), except that a reduced-precision engine must beat the
fp32 engines that agree by ``REDUCED_PRECISION_GAIN``. Every candidate is timed first; then outputs are
checked fastest first, and a first use stops at the first that agrees (``lazy``: the slower ones could not
win; ``personsearch bench-engines`` checks them all). The choice and every measurement are cached as JSON in
``$PERSONSEARCH_CACHE/engines/``; exported ONNX files sit beside it, keyed by the model digest.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from personsearch.models import engines
from personsearch.models.detector import image_tensors
from personsearch.models.fast import cpu_flags, cpuinfo_field, native_bf16
from personsearch.models.weights import cache_root

COSINE_MEDIAN = 0.99
COSINE_MIN = 0.97
NEIGHBOUR_AGREEMENT = 0.98
NEIGHBOUR_TIE = 1e-4
BOX_MATCHED = 0.99
BOX_IOU = 0.9
REDUCED_PRECISION_GAIN = 1.10
"""How much faster than the fastest agreeing fp32 engine a reduced-precision one
(``engines.REDUCED_PRECISION``: bf16 or int8 somewhere) must be to be chosen. Its outputs are
only within the rule of fp32's, so a gain inside the timing noise is no reason to take it, and
taking it anyway made the choice flip between fresh installs on one machine: on an AVX2 Zen 3
the int8 box head timed 1.00-1.24x ONNX Runtime fp32 the same day, and the demo printed recall
97.99 or 97.84 by which one won (2026-12-02, docs/performance-log.md)."""
TIMED_CROPS = 32
"""Crops per timed re-id call (the bundle's default batch); all probe crops are compared."""
CHECK_SCENES = 12
"""Crowded probe scenes whose detections are compared (about 120 boxes with the shipped
detector: the 99 % rule needs a hundred boxes to tell a one-in-fifty loss; two ordinary scenes
held 7 boxes and let a bf16 detector pass that loses 2 % of the demo's boxes)."""
TIMED_SCENES = 2
"""Of those, the scenes per timed detector call."""
CALIBRATION_SCENES = 6
"""Crowded scenes (other than the check scenes) whose box-head inputs calibrate the int8 box head:
1,664 RoI crops with the shipped detector."""
PROBE_SEED = 20261130
"""Seed of the synthetic probe scenes (never a training seed of the shipped models)."""


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
        "engines_revision": engines.REVISION,
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
        if chosen in rates and engines.REFERENCE in rates:
            return rates[chosen] / rates[engines.REFERENCE]
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
        ref = {m.network: m.per_s for m in self.measurements if m.engine == engines.REFERENCE}
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


def feature_agreement(reference: np.ndarray, features: np.ndarray) -> dict[str, float]:
    """Cosine of each feature to its fp32 reference (median, min) and the fraction of rows whose
    nearest other row is the same as with the reference."""
    ref = reference / np.maximum(np.linalg.norm(reference, axis=1, keepdims=True), 1e-12)
    out = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    cosine = (ref * out).sum(axis=1)

    if len(ref) < 2:
        return {"cos_median": float(np.median(cosine)), "cos_min": float(cosine.min()), "nn_same": 1.0}
    ref_sim, out_sim = ref @ ref.T, out @ out.T
    np.fill_diagonal(ref_sim, -np.inf)
    np.fill_diagonal(out_sim, -np.inf)
    # The candidate's nearest neighbour counts as the same when fp32 ranks it first too, up to a
    # tie (fp32 similarity within NEIGHBOUR_TIE of the best): ties have no right order.
    chosen = ref_sim[np.arange(len(ref)), out_sim.argmax(axis=1)]
    same = float((chosen >= ref_sim.max(axis=1) - NEIGHBOUR_TIE).mean())
    return {"cos_median": float(np.median(cosine)), "cos_min": float(cosine.min()), "nn_same": same}


def features_agree(agreement: dict[str, float]) -> bool:
    return (
        agreement["cos_median"] >= COSINE_MEDIAN
        and agreement["cos_min"] >= COSINE_MIN
        and agreement["nn_same"] >= NEIGHBOUR_AGREEMENT
    )


def detection_agreement(
    reference: Sequence[np.ndarray], detections: Sequence[np.ndarray]
) -> dict[str, float]:
    """Fraction of the fp32 boxes matched by a box at IoU >= 0.9, the box-count ratio, and the
    largest corner shift (pixels) among the matched boxes."""
    from personsearch.data.boxes import box_iou

    matched, total, count, shift = 0, 0, 0, 0.0
    for ref, out in zip(reference, detections, strict=True):
        total, count = total + len(ref), count + len(out)
        if len(ref) and len(out):
            iou = box_iou(ref[:, :4], out[:, :4])
            best = iou.argmax(axis=1)
            hit = iou[np.arange(len(ref)), best] >= BOX_IOU
            matched += int(hit.sum())
            if hit.any():
                shift = max(shift, float(np.abs(ref[hit, :4] - out[best[hit], :4]).max()))
    count_ratio = count / total if total else (1.0 if count == 0 else float(count + 1))
    return {
        "matched": matched / total if total else 1.0,
        "count_ratio": count_ratio,
        "max_shift_px": shift,
        "boxes": float(total),
    }


def detections_agree(agreement: dict[str, float]) -> bool:
    return agreement["matched"] >= BOX_MATCHED and abs(agreement["count_ratio"] - 1.0) <= 1.0 - BOX_MATCHED


@functools.lru_cache(maxsize=4)
def probe_set(
    input_size: tuple[int, int], scenes: int = 2, crops: int = 128
) -> tuple[list[np.ndarray], torch.Tensor]:
    """The fixed probe set: synthetic scenes (800 x 600, people 20-400 px) and person crops cut
    from more of them at the re-id input size. Deterministic, needs no dataset on disk."""
    from personsearch.data.crops import crop_boxes
    from personsearch.data.synthetic.plan import plan_benchmark, resolve_config
    from personsearch.data.synthetic.scenes import render_scene

    plan = plan_benchmark(resolve_config("small", num_train_ids=24, num_test_ids=8), PROBE_SEED)
    images: list[np.ndarray] = []
    parts: list[torch.Tensor] = []
    total = 0
    for planned in plan.images:
        image = render_scene(planned.scene)
        if len(images) < scenes:
            images.append(image)
        boxes = np.array([p.box for p in planned.scene.people], dtype=np.float32).reshape(-1, 4)
        if len(boxes) and total < crops:
            part = crop_boxes(image, boxes, input_size)
            parts.append(part)
            total += len(part)
        if len(images) >= scenes and total >= crops:
            break
    return images, torch.cat(parts)[:crops]


def crowded_scenes(seed: int, count: int) -> list[np.ndarray]:
    """``count`` crowded synthetic scenes (800 x 600, 8-12 people of 20-400 px each) drawn with
    ``seed``. Deterministic, needs no dataset on disk."""
    from personsearch.data.synthetic.plan import plan_benchmark, resolve_config
    from personsearch.data.synthetic.scenes import render_scene

    config = resolve_config(
        "small", num_train_ids=24, num_test_ids=8, people_per_image=(4, 6), distractors_per_image=(4, 6)
    )
    return [render_scene(planned.scene) for planned in plan_benchmark(config, seed).images[:count]]


@functools.lru_cache(maxsize=1)
def check_scenes(count: int = CHECK_SCENES) -> list[np.ndarray]:
    """The crowded scenes on which detections are compared with fp32."""
    return crowded_scenes(PROBE_SEED + 1, count)


@functools.lru_cache(maxsize=1)
def calibration_scenes(count: int = CALIBRATION_SCENES) -> list[np.ndarray]:
    """Crowded scenes other than the check scenes, whose detector box-head inputs calibrate the
    int8 box head (``ort-int8-head``)."""
    return crowded_scenes(PROBE_SEED + 3, count)


def _rate(run: Callable[[], Any], items: int, budget_s: float = 1.5, max_runs: int = 5) -> float:
    """Items per second: one warm-up call, then the best of up to ``max_runs`` timed calls
    (stopping once ``budget_s`` is spent): the best call is the least disturbed by other load."""
    run()
    best, spent, runs = float("inf"), 0.0, 0
    while runs < max_runs and (runs < 2 or spent < budget_s):
        start = time.perf_counter()
        run()
        took = time.perf_counter() - start
        best, spent, runs = min(best, took), spent + took, runs + 1
    return items / best


ReIDFactory = Callable[[str], engines.ReIDRun]
DetectorFactory = Callable[[str], engines.DetectRun]


def _measure(
    network: str,
    candidates: Sequence[str],
    device: str,
    build: Callable[[str], Any],
    rate_of: Callable[[Any], float],
    outputs_of: Callable[[Any], Any],
    agreement_of: Callable[[Any, Any], dict[str, float]],
    agree: Callable[[dict[str, float]], bool],
    lazy: bool,
) -> list[Measurement]:
    """Time every candidate (``build(name)`` makes its runner, ``rate_of`` times it), then check
    the candidates' outputs against the reference's, fastest first. With ``lazy`` the checking
    stops at the first candidate that agrees: a slower one could not be chosen, and checking it
    (a PyTorch detector on the crowded check scenes: 2-3 s each) would only fill in the table. An
    engine that is unavailable, fails to build or fails to run is refused, not fatal. Runners are
    built again for the check rather than all kept alive at once (a ResNet-50 bundle's would
    hold gigabytes)."""
    names = [engines.REFERENCE] + [c for c in candidates if c != engines.REFERENCE]
    results: dict[str, Measurement] = {}
    for name in names:
        why = engines.unavailable(name, device)
        if why:
            results[name] = Measurement(name, network, note=why)
            continue
        try:
            results[name] = Measurement(name, network, rate_of(build(name)))
        except Exception as err:
            results[name] = Measurement(name, network, note=f"failed: {type(err).__name__}: {err}"[:300])
    timed = [name for name in names if results[name].per_s]
    reference: Any = None
    best: str | None = None  # the candidate of most merit checked and agreeing so far
    # the reference first: every check needs its outputs
    for name in timed[:1] + sorted(timed[1:], key=lambda n: -merit(results[n])):
        measurement = results[name]
        rate = cast(float, measurement.per_s)
        if lazy and best is not None and merit(measurement) < merit(results[best]):
            measurement.checked = False
            if rate < cast(float, results[best].per_s):
                measurement.note = f"slower than {best}, which agrees with fp32"
            else:
                measurement.note = (
                    f"reduced precision, not {REDUCED_PRECISION_GAIN - 1:.0%} faster than {best}, "
                    "which agrees with fp32"
                )
            continue
        try:
            outputs = outputs_of(build(name))
        except Exception as err:
            measurement.per_s, measurement.note = None, f"failed: {type(err).__name__}: {err}"[:300]
            continue
        reference = outputs if reference is None else reference
        measurement.agreement = agreement_of(reference, outputs)
        measurement.accepted = agree(measurement.agreement)
        if measurement.accepted and (best is None or merit(measurement) > merit(results[best])):
            best = name
    return [results[name] for name in names]


def merit(measurement: Measurement) -> float:
    """What the choice maximises among agreeing engines: the speed, divided by
    ``REDUCED_PRECISION_GAIN`` for a reduced-precision engine."""
    rate = measurement.per_s or 0.0
    return rate / REDUCED_PRECISION_GAIN if measurement.engine in engines.REDUCED_PRECISION else rate


def for_network(candidates: Sequence[str], network: str) -> list[str]:
    """The candidates that run ``network`` themselves (not an engine for the other network only)."""
    return [c for c in candidates if engines.engine_for(c, network) == c]


def measure_reid(
    factory: ReIDFactory,
    candidates: Sequence[str],
    batch: torch.Tensor,
    device: str = "cpu",
    lazy: bool = False,
) -> list[Measurement]:
    """Time each candidate on ``TIMED_CROPS`` of ``batch`` (normalised crops) and check its features
    on all of them against fp32 (``lazy``: only until one agrees, fastest first: ``_measure``)."""
    timed = batch[:TIMED_CROPS]

    def rate_of(run: engines.ReIDRun) -> float:
        return _rate(lambda: run(timed), len(timed))

    def outputs_of(run: engines.ReIDRun) -> np.ndarray:
        return run(batch).float().numpy()

    return _measure(
        "reid",
        for_network(candidates, "reid"),
        device,
        factory,
        rate_of,
        outputs_of,
        feature_agreement,
        features_agree,
        lazy,
    )


def measure_detector(
    factory: DetectorFactory,
    candidates: Sequence[str],
    images: list[np.ndarray],
    device: str = "cpu",
    lazy: bool = False,
) -> list[Measurement]:
    """Time each candidate on the first ``TIMED_SCENES`` of ``images`` and check its boxes against
    fp32 on all of them, one scene per call (``lazy``: only until one agrees, fastest first);
    engines for the re-id network only are skipped."""
    tensors = image_tensors(images)
    timed = tensors[:TIMED_SCENES]

    def rate_of(run: engines.DetectRun) -> float:  # boxes copied out, so a GPU's work is finished when timed
        return _rate(lambda: engines.as_detections(run(timed)), len(timed), budget_s=2.0, max_runs=2)

    def outputs_of(run: engines.DetectRun) -> list[np.ndarray]:
        return [engines.as_detections(run([scene]))[0] for scene in tensors]

    return _measure(
        "detector",
        for_network(candidates, "detector"),
        device,
        factory,
        rate_of,
        outputs_of,
        detection_agreement,
        detections_agree,
        lazy,
    )


def pick(measurements: Sequence[Measurement], network: str) -> str:
    """The accepted engine for ``network`` of most ``merit``: the fastest, unless it computes in
    reduced precision and is not ``REDUCED_PRECISION_GAIN`` faster than an fp32 one (the
    reference if nothing else qualifies)."""
    kept = [m for m in measurements if m.network == network and m.accepted and m.per_s]
    return max(kept, key=merit).engine if kept else engines.REFERENCE


def choice_path(model_id: str, signature: dict[str, Any]) -> Path:
    return (
        cache_root() / "engines" / model_id.replace(":", "-") / f"choice-{signature_digest(signature)}.json"
    )


def load_cached_choice(model_id: str, device: str | torch.device = "cpu") -> EngineChoice | None:
    """The cached choice for ``model_id`` on this machine's ``device``, or None (never measured,
    or the CPU, GPU, threads or library versions changed: the signature is part of the file name)."""
    path = choice_path(model_id, signature_for(device))
    try:
        return EngineChoice.from_json(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def save_choice(model_id: str, choice: EngineChoice) -> Path:
    path = choice_path(model_id, choice.signature)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(choice.to_json(), indent=2))
    os.replace(tmp, path)
    return path
