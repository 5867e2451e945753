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

import functools
import time
from collections.abc import Callable, Sequence
from typing import Any, cast

import numpy as np
import torch

from personsearch.models import engines
from personsearch.models.detector import image_tensors

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
) -> list[engines.Measurement]:
    """Time every candidate (``build(name)`` makes its runner, ``rate_of`` times it), then check
    the candidates' outputs against the reference's, fastest first. With ``lazy`` the checking
    stops at the first candidate that agrees: a slower one could not be chosen, and checking it
    (a PyTorch detector on the crowded check scenes: 2-3 s each) would only fill in the table. An
    engine that is unavailable, fails to build or fails to run is refused, not fatal. Runners are
    built again for the check rather than all kept alive at once (a ResNet-50 bundle's would
    hold gigabytes)."""
    names = [engines.REFERENCE] + [c for c in candidates if c != engines.REFERENCE]
    results: dict[str, engines.Measurement] = {}
    for name in names:
        why = engines.unavailable(name, device)
        if why:
            results[name] = engines.Measurement(name, network, note=why)
            continue
        try:
            results[name] = engines.Measurement(name, network, rate_of(build(name)))
        except Exception as err:
            results[name] = engines.Measurement(
                name, network, note=f"failed: {type(err).__name__}: {err}"[:300]
            )
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


def merit(measurement: engines.Measurement) -> float:
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
) -> list[engines.Measurement]:
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
) -> list[engines.Measurement]:
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


def pick(measurements: Sequence[engines.Measurement], network: str) -> str:
    """The accepted engine for ``network`` of most ``merit``: the fastest, unless it computes in
    reduced precision and is not ``REDUCED_PRECISION_GAIN`` faster than an fp32 one (the
    reference if nothing else qualifies)."""
    kept = [m for m in measurements if m.network == network and m.accepted and m.per_s]
    return max(kept, key=merit).engine if kept else engines.REFERENCE
