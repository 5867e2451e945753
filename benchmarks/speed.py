"""How much faster is the fast path than plain fp32 eager PyTorch? Re-id feature extraction,
detector inference, training steps and whole-pipeline indexing, each against a reference measured
in the same run.

    python benchmarks/speed.py                          # every section
    python benchmarks/speed.py --only reid,detector     # some sections (merged into the JSON)

Two worker processes do the measuring. The reference worker is plain PyTorch as a user gets it:
fp32, contiguous tensors, no autocast, glibc's default malloc (``GLIBC_TUNABLES`` unset). The fast
worker runs with the tuned malloc the CLI sets (``MALLOC_TUNING``) and measures ``fp32`` (the
malloc's share alone), ``fast`` (bf16 autocast + channels_last: what ``ModelBundle(engine="torch-bf16")`` and
re-id training use) and ``fast+compile`` (``prepare_for_inference(..., compiled=True)``). The
detector's training step is measured in ``fp32`` and ``fast`` (bf16 autocast where native), each in
contiguous tensors and with ``+channels_last`` (what ``training.detector`` uses for ``fast`` on
CPUs with native bf16). Both workers
use the same thread count. A machine shared with other jobs is noisy, so measurements alternate
(reference, fast variants; reversed in every other round) and the reported speed-up is the
median over rounds of (variant rate / reference rate in the same round).

Weights are random (``pretrained=None``: speed does not depend on them) except where a trained
bundle is given with ``--bundle`` (the demo's), which the accuracy checks use to compare
features and detections of every variant with the reference on real synthetic-benchmark crops
and scenes. Writes ``benchmarks/results/speed-<cpu signature>.json`` (later runs on the same
CPU merge their sections into it; another CPU's results are never merged in) and prints a table
last. ``benchmarks/results/speed.json`` holds the figures of the AMD EPYC Zen 5 written before
results were kept per CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from run_info import ROOT, commit, machine, per_cpu_path, write_results

REFERENCE = "reference"
"""The reference worker's only variant: fp32 eager, default malloc."""
FAST_VARIANTS = ("fp32", "fast", "fast+compile")


def median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


# ------------------------------------------------------------------------------------ worker side


def _reid_model(case: dict[str, Any]):
    import torch

    from personsearch.models.bundle import load_component
    from personsearch.models.reid import ReIDConfig, build_reid

    if case.get("bundle"):
        model, config, _ = load_component(case["bundle"], "reid")
        return model, tuple(config.input_size)
    torch.manual_seed(0)  # the same random weights in both workers
    config = ReIDConfig(
        num_classes=100, backbone=case["backbone"], pretrained=None, input_size=tuple(case["input_size"])
    )
    return build_reid(config), tuple(config.input_size)


def _detector_model(case: dict[str, Any]):
    import torch

    from personsearch.models.bundle import load_component
    from personsearch.models.detector import DetectorConfig, build_detector

    if case.get("bundle"):
        return load_component(case["bundle"], "detector")[0]
    torch.manual_seed(0)
    return build_detector(
        DetectorConfig(backbone=case["backbone"], pretrained=None, **case.get("config", {}))
    )


def _image_tensor(path: str):
    import torch

    from personsearch.data.images import read_image

    return torch.from_numpy(read_image(path)).permute(2, 0, 1).float().div(255)


class Job:
    """One model in one variant: ``step()`` runs one timed iteration and returns the images it
    processed; ``dump(inputs, out)`` writes its outputs for the accuracy check."""

    def __init__(self, case: dict[str, Any], variant: str) -> None:
        self.case, self.variant = case, variant
        self.fast = variant in ("fast", "fast+compile")
        self.compiled = variant == "fast+compile"
        self.info: dict[str, Any] = {}
        build: Callable[[], None] = getattr(self, "_build_" + case["task"])
        build()

    # -- re-id inference
    def _build_reid(self) -> None:
        import torch

        from personsearch.models.fast import prepare_for_inference

        model, self.size = _reid_model(self.case)
        self.model = prepare_for_inference(model, "cpu", fast=self.fast, compiled=self.compiled)
        batch = self.case["batch"]
        self.x = torch.randn(batch, 3, *self.size, generator=torch.Generator().manual_seed(1))
        if self.fast:
            self.x = self.x.contiguous(memory_format=torch.channels_last)
        self.step = lambda: self._reid_forward(self.x)
        if self.compiled:  # as in real use, where batch sizes vary: the dynamic-batch graph
            self._reid_forward(self.x[: max(1, batch // 2)])

    def _reid_forward(self, x) -> int:
        import torch

        from personsearch.models.fast import autocast_for

        with torch.no_grad(), autocast_for("cpu", self.fast):
            self.model(x).float()
        return len(x)

    def _dump_reid(self, inputs: str, out: str) -> None:
        import torch

        from personsearch.data.crops import normalize_crops
        from personsearch.models.fast import autocast_for

        crops = torch.from_numpy(np.load(inputs, allow_pickle=False))
        feats = []
        for start in range(0, len(crops), self.case["batch"]):
            batch = normalize_crops(crops[start : start + self.case["batch"]])
            if self.fast:
                batch = batch.contiguous(memory_format=torch.channels_last)
            with torch.no_grad(), autocast_for("cpu", self.fast):
                feats.append(torch.nn.functional.normalize(self.model(batch).float(), dim=1).numpy())
        np.save(out, np.concatenate(feats))

    # -- detector inference
    def _build_detector(self) -> None:
        from personsearch.models.fast import prepare_for_inference

        self.model = prepare_for_inference(
            _detector_model(self.case), "cpu", fast=self.fast, compiled=self.compiled
        )
        self.image = _image_tensor(self.case["image"])
        self.step = self._detect_one

    def _detect_one(self) -> int:
        self._detect([self.image])
        return 1

    def _detect(self, images: list) -> list[np.ndarray]:
        import torch

        from personsearch.models.fast import autocast_for

        with torch.no_grad(), autocast_for("cpu", self.fast):
            outputs = self.model(images)
        return [
            np.concatenate([o["boxes"].float().numpy(), o["scores"].float().numpy()[:, None]], axis=1)
            for o in outputs
        ]

    def _dump_detector(self, inputs: str, out: str) -> None:
        paths = json.loads(Path(inputs).read_text())
        np.savez(out, **{f"d{i}": self._detect([_image_tensor(p)])[0] for i, p in enumerate(paths)})  # type: ignore[arg-type]  # numpy's stub types **kwds like its allow_pickle flag

    # -- training steps
    def _build_reid_train(self) -> None:
        import torch

        from personsearch.models.losses import reid_loss

        model, size = _reid_model(self.case)
        model.train()
        batch = self.case["batch"]
        gen = torch.Generator().manual_seed(1)
        x = torch.randn(batch, 3, *size, generator=gen)
        labels = torch.randint(0, 100, (batch,), generator=gen)
        if self.fast:  # as training/reid.py does
            model = model.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        self.model, self.optimizer = model, torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
        self.step = lambda: self._train_step(lambda: reid_loss(self.model(x), labels, "clsa")[0], batch)

    def _build_detector_train(self) -> None:
        import torch

        model = _detector_model(self.case).train()
        if self.variant.endswith("+channels_last"):  # training/detector.py: where bf16 autocast runs
            model = model.to(memory_format=torch.channels_last)
        gen = torch.Generator().manual_seed(1)
        images = [torch.rand(3, 600, 800, generator=gen) for _ in range(self.case["batch"])]
        boxes = torch.tensor(
            [[100.0, 100.0, 160.0, 280.0], [400.0, 200.0, 450.0, 330.0], [600.0, 50.0, 700.0, 350.0]]
        )
        targets = [{"boxes": boxes.clone(), "labels": torch.ones(3, dtype=torch.int64)} for _ in images]
        self.fast = self.variant.startswith("fast")  # bf16 autocast where native (training/runner.py)
        params = [p for p in model.parameters() if p.requires_grad]
        self.model, self.optimizer = model, torch.optim.SGD(params, lr=1e-3, momentum=0.9)
        self.step = lambda: self._train_step(lambda: sum(self.model(images, targets).values()), len(images))

    def _train_step(self, loss_fn: Callable[[], Any], images: int) -> int:
        from personsearch.models.fast import autocast_for

        with autocast_for("cpu", self.fast):
            loss = loss_fn()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return images

    # -- whole pipeline: PersonIndex.add_paths
    def _build_index(self) -> None:
        from personsearch.models.bundle import ModelBundle

        previous = os.environ.pop("PERSONSEARCH_COMPILE", None)
        if self.compiled:
            os.environ["PERSONSEARCH_COMPILE"] = "1"
        try:
            self.bundle = ModelBundle(self.case["bundle"], engine="torch-bf16" if self.fast else "torch-fp32")
        finally:
            os.environ.pop("PERSONSEARCH_COMPILE", None)
            if previous is not None:
                os.environ["PERSONSEARCH_COMPILE"] = previous
        self.people: list[int] = []
        self._index(self.case["warmup"])  # first calls (and compiles) happen here, untimed
        self.people.clear()
        self.step = lambda: self._index(self.case["scenes"])

    def _index(self, folder: str) -> int:
        from personsearch.index import PersonIndex

        with (
            tempfile.TemporaryDirectory(prefix="speed-index-") as tmp,
            PersonIndex.open(Path(tmp) / "index", self.bundle, create=True) as index,
        ):
            summary = index.add_paths([folder], batch_size=4, progress=False)
        self.people.append(summary.people_added)
        self.info["people_per_run"] = self.people
        return summary.frames_processed


def worker() -> None:
    """Serve JSON-line requests on stdin: build, time, dump, drop."""
    jobs: dict[str, Job] = {}
    for line in sys.stdin:
        request = json.loads(line)
        op, key = request["op"], request.get("key")
        try:
            if op == "build":
                started = time.perf_counter()
                job = jobs[key] = Job(request["case"], request["variant"])
                for _ in range(job.case.get("warmup_steps", 2)):
                    job.step()
                reply: dict[str, Any] = {"warmup_s": time.perf_counter() - started}
            elif op == "time":
                job, seconds, images = jobs[key], [], 0
                for _ in range(request["iters"]):
                    started = time.perf_counter()
                    images += job.step()
                    seconds.append(time.perf_counter() - started)
                reply = {"seconds": seconds, "images": images, "info": job.info}
            elif op == "dump":
                getattr(jobs[key], "_dump_" + jobs[key].case["task"])(request["inputs"], request["out"])
                reply = {}
            elif op == "drop":
                jobs.pop(key, None)
                reply = {}
            else:
                raise ValueError(f"unknown request {op!r}")
        except Exception as err:  # reported to the parent, which stops with it
            reply = {"error": f"{type(err).__name__}: {err}"}
        print(json.dumps(reply), flush=True)


class Worker:
    """A worker subprocess with its own environment (malloc settings)."""

    def __init__(self, name: str, tuned_malloc: bool) -> None:
        from personsearch.interfaces.cli import MALLOC_TUNING

        env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", "PERSONSEARCH_COMPILE")}
        if tuned_malloc:
            env["GLIBC_TUNABLES"] = MALLOC_TUNING
        self.name = name
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
            cwd=ROOT,
        )

    def ask(self, **request: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.name} worker exited (code {self.proc.wait()}) during {request['op']}")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"{self.name} worker, {request['op']} {request.get('key')}: {reply['error']}")
        return reply

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


# ------------------------------------------------------------------------------------ accuracy


def feature_agreement(ref: np.ndarray, other: np.ndarray) -> dict[str, float]:
    """Cosine of each crop's two features, and how often its nearest other crop is the same."""
    cos = np.sum(ref * other, axis=1)

    def nearest(f: np.ndarray) -> np.ndarray:
        sim = f @ f.T
        np.fill_diagonal(sim, -np.inf)
        return sim.argmax(1)

    sim_ref = ref @ ref.T
    off_diag = sim_ref[~np.eye(len(ref), dtype=bool)]
    return {
        "crops": len(ref),
        "cosine_min": float(cos.min()),
        "cosine_median": float(np.median(cos)),
        "nearest_neighbour_agreement": float(np.mean(nearest(ref) == nearest(other))),
        "reference_cosine_between_crops_median": float(np.median(off_diag)),
    }


def detection_agreement(
    ref: list[np.ndarray], other: list[np.ndarray], min_iou: float = 0.9
) -> dict[str, float]:
    """Reference detections that the variant reproduces (IoU >= ``min_iou``), their score and
    corner differences, and the detection counts."""
    from personsearch.data.boxes import box_iou

    matched, total, score_diffs, shifts = 0, 0, [], []
    for r, o in zip(ref, other):
        total += len(r)
        if len(r) == 0 or len(o) == 0:
            continue
        iou = box_iou(r[:, :4], o[:, :4])
        best = iou.argmax(1)
        ok = iou[np.arange(len(r)), best] >= min_iou
        matched += int(ok.sum())
        score_diffs.extend(np.abs(r[ok, 4] - o[best[ok], 4]).tolist())
        shifts.extend(np.abs(r[ok, :4] - o[best[ok], :4]).max(1).tolist())
    return {
        "images": len(ref),
        "reference_detections": total,
        "variant_detections": int(sum(len(o) for o in other)),
        f"matched_iou_{min_iou}": matched / total if total else float("nan"),
        "score_abs_diff_median": median(score_diffs),
        "score_abs_diff_max": max(score_diffs, default=float("nan")),
        "corner_shift_px_median": median(shifts),
        "corner_shift_px_max": max(shifts, default=float("nan")),
    }


# ------------------------------------------------------------------------------------ cases


def ensure_data(data: Path | None, work: Path) -> Path:
    """The synthetic benchmark to take crops and scenes from: ``data``, or a tiny one made here."""
    if data is not None and data.is_dir():
        return data
    target = work / "synthetic-tiny"
    if not (target / "synthetic.json").is_file():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "personsearch.interfaces.cli",
                "make-synthetic",
                str(target),
                "--preset",
                "tiny",
            ],
            check=True,
        )
    return target


def make_bundle(out: Path, detector_backbone: str, reid_backbone: str, reid_size: tuple[int, int]) -> Path:
    """A bundle of random-init networks in the paper's configuration (speed does not depend on weights)."""
    import torch

    from personsearch.models.bundle import save_component
    from personsearch.models.detector import DetectorConfig, build_detector
    from personsearch.models.reid import ReIDConfig, build_reid

    if (out / "reid.json").is_file():
        return out
    torch.manual_seed(0)
    det_config = DetectorConfig(backbone=detector_backbone, pretrained=None)
    save_component(
        out, "detector", build_detector(det_config), det_config, {"note": "random init, for speed only"}
    )
    reid_config = ReIDConfig(num_classes=100, backbone=reid_backbone, pretrained=None, input_size=reid_size)
    save_component(out, "reid", build_reid(reid_config), reid_config, {"note": "random init, for speed only"})
    return out


def build_cases(args: argparse.Namespace, data: Path, work: Path) -> dict[str, list[dict[str, Any]]]:
    from personsearch.data import load_dataset

    dataset = load_dataset(data)
    scenes = [s for s in dataset.gallery if len(s.boxes)]
    image = str(scenes[0].path)
    trained = args.bundle if args.bundle is not None and (args.bundle / "reid.json").is_file() else None
    reid = [
        {
            "name": "re-id ResNet-50 256x128",
            "task": "reid",
            "backbone": "resnet50",
            "input_size": [256, 128],
            "batch": 32,
            "iters": 2,
            "target": 4.0,
        },
        {
            "name": "re-id MobileNetV2 256x128",
            "task": "reid",
            "backbone": "mobilenet_v2",
            "input_size": [256, 128],
            "batch": 32,
            "iters": 3,
        },
        {
            "name": "re-id MobileNetV2 128x64",
            "task": "reid",
            "backbone": "mobilenet_v2",
            "input_size": [128, 64],
            "batch": 64,
            "iters": 4,
        },
    ]
    detector = [
        {
            "name": "detector ResNet-50 C4 800x600",
            "task": "detector",
            "backbone": "resnet50",
            "image": image,
            "iters": 1,
            "target": 2.0,
        },
        {
            "name": "detector MobileNetV2 C4 800x600",
            "task": "detector",
            "backbone": "mobilenet_v2",
            "image": image,
            "iters": 2,
            "target": 2.0,
        },
    ]
    if trained is not None:
        reid.append(
            {
                "name": f"re-id trained bundle ({trained.name})",
                "task": "reid",
                "bundle": str(trained),
                "batch": 64,
                "iters": 4,
                "trained": True,
            }
        )
        detector.append(
            {
                "name": f"detector trained bundle ({trained.name}, head stride 2)",
                "task": "detector",
                "bundle": str(trained),
                "image": image,
                "iters": 2,
                "trained": True,
            }
        )
    train = [
        {
            "name": "train re-id MobileNetV2 128x64 b64",
            "task": "reid_train",
            "backbone": "mobilenet_v2",
            "input_size": [128, 64],
            "batch": 64,
            "iters": 1,
        },
        {
            "name": "train re-id MobileNetV2 256x128 b32",
            "task": "reid_train",
            "backbone": "mobilenet_v2",
            "input_size": [256, 128],
            "batch": 32,
            "iters": 1,
        },
        {
            "name": "train re-id ResNet-50 256x128 b32",
            "task": "reid_train",
            "backbone": "resnet50",
            "input_size": [256, 128],
            "batch": 32,
            "iters": 1,
        },
        {
            "name": "train detector MobileNetV2 C4 600px b2",
            "task": "detector_train",
            "backbone": "mobilenet_v2",
            "batch": 2,
            "iters": 1,
        },
        {
            "name": "train detector ResNet-50 C4 600px b2",
            "task": "detector_train",
            "backbone": "resnet50",
            "batch": 2,
            "iters": 1,
        },
    ]
    for case in train:
        case["variants"] = (
            ["fp32", "fp32+channels_last", "fast", "fast+channels_last"]
            if case["task"] == "detector_train"
            else ["fast"]
        )
    folder, warm = work / "scenes", work / "scenes-warmup"
    for target, chosen in ((folder, scenes[1 : 1 + args.index_images]), (warm, scenes[-2:])):
        target.mkdir(parents=True, exist_ok=True)
        for scene in chosen:
            if not (target / scene.path.name).exists():
                shutil.copy2(scene.path, target / scene.path.name)
    paper = make_bundle(work / "bundle-resnet50", "resnet50", "resnet50", (256, 128))
    compact = trained or make_bundle(work / "bundle-mobilenet_v2", "mobilenet_v2", "mobilenet_v2", (256, 128))
    index = [
        {
            "name": "index paper default (ResNet-50 det + re-id)",
            "task": "index",
            "bundle": str(paper),
            "scenes": str(folder),
            "warmup": str(warm),
            "iters": 1,
            "warmup_steps": 0,
        },
        {
            "name": f"index compact (MobileNetV2{', trained ' + trained.name if trained else ''})",
            "task": "index",
            "bundle": str(compact),
            "scenes": str(folder),
            "warmup": str(warm),
            "iters": 1,
            "warmup_steps": 0,
        },
    ]
    checks = {"reid": scenes[:40], "detector": [str(s.path) for s in scenes[:4]]}
    for case in reid:
        case["check_scenes"] = checks["reid"]
    for case in detector:
        case["check_images"] = checks["detector"]
    return {"reid": reid, "detector": detector, "train": train, "index": index}


def reid_inputs(case: dict[str, Any], work: Path) -> Path:
    """Real person crops (ground-truth boxes of gallery scenes) at the case's input size, as .npy."""
    import torch

    from personsearch.data.crops import crop_boxes
    from personsearch.data.images import read_image
    from personsearch.models.bundle import load_component

    size = (
        tuple(case["input_size"])
        if "input_size" in case
        else tuple(load_component(case["bundle"], "reid")[1].input_size)
    )
    out = work / f"crops-{size[0]}x{size[1]}.npy"
    if not out.is_file():
        crops = [crop_boxes(read_image(s.path), s.boxes, size) for s in case["check_scenes"]]
        np.save(out, torch.cat(crops)[:96].numpy())
    return out


def run_case(case: dict[str, Any], ref: Worker, fast: Worker, rounds: int, work: Path) -> dict[str, Any]:
    variants = case.get("variants", list(FAST_VARIANTS))
    record: dict[str, Any] = {k: v for k, v in case.items() if not k.startswith("check_")}
    record["variants"] = {}
    key = case["name"]
    print(f"== {key}", flush=True)
    workers = [(REFERENCE, ref)] + [(v, fast) for v in variants]
    for variant, w in workers:
        sent = {k: v for k, v in case.items() if not k.startswith("check_")}
        reply = w.ask(
            op="build", key=f"{key}/{variant}", case=sent, variant="fp32" if variant == REFERENCE else variant
        )
        record["variants"][variant] = {"warmup_s": reply["warmup_s"], "rates": [], "seconds": []}
        print(f"   built {variant} (warm-up {reply['warmup_s']:.1f} s)", flush=True)
    for r in range(rounds):
        for variant, w in workers if r % 2 == 0 else workers[::-1]:
            reply = w.ask(op="time", key=f"{key}/{variant}", iters=case["iters"])
            entry = record["variants"][variant]
            entry["rates"].append(reply["images"] / sum(reply["seconds"]))
            entry["seconds"].append(reply["seconds"])
            if reply["info"]:
                entry["info"] = reply["info"]
        print(
            f"   round {r + 1}: "
            + ", ".join(f"{v} {record['variants'][v]['rates'][-1]:.2f}/s" for v, _ in workers),
            flush=True,
        )
    base = record["variants"][REFERENCE]["rates"]
    for variant, entry in record["variants"].items():
        entry["median"] = median(entry["rates"])
        if variant != REFERENCE:
            per_round = [a / b for a, b in zip(entry["rates"], base)]
            entry["speedup_per_round"] = per_round
            entry["speedup"] = median(per_round)
    if case["task"] in ("reid", "detector"):
        record["accuracy"] = check_accuracy(case, workers, work)
    for variant, w in workers:
        w.ask(op="drop", key=f"{key}/{variant}")
    return record


def check_accuracy(case: dict[str, Any], workers: list[tuple[str, Worker]], work: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="speed-check-", dir=work) as tmp:
        if case["task"] == "reid":
            inputs = str(reid_inputs(case, work))
        else:
            inputs = str(Path(tmp) / "images.json")
            Path(inputs).write_text(json.dumps(case["check_images"]))
        outputs = {}
        for variant, w in workers:
            out = str(Path(tmp) / f"{variant.replace('+', '_')}.{'npy' if case['task'] == 'reid' else 'npz'}")
            w.ask(op="dump", key=f"{case['name']}/{variant}", inputs=inputs, out=out)
            if case["task"] == "reid":
                outputs[variant] = np.load(out, allow_pickle=False)
            else:
                with np.load(out, allow_pickle=False) as data:
                    outputs[variant] = [data[f"d{i}"] for i in range(len(case["check_images"]))]
    compare = feature_agreement if case["task"] == "reid" else detection_agreement
    return {v: compare(outputs[REFERENCE], outputs[v]) for v in outputs if v != REFERENCE}


# ------------------------------------------------------------------------------------ report


def table(results: dict[str, Any]) -> str:
    head = (
        f"{'case':48s} {'ref/s':>8s} {'fp32/s':>8s} {'fast/s':>8s} {'compile/s':>9s} {'fast x':>7s} "
        f"{'compile x':>9s} {'target':>6s}  accuracy (cos min / NN agree, or matched / max shift px)"
    )
    lines = [head, "-" * len(head)]
    for section in ("reid", "detector", "train", "index"):
        for record in results.get("sections", {}).get(section, []):
            v = record["variants"]

            def rate(name: str, v: dict = v) -> str:
                return f"{v[name]['median']:.2f}" if name in v else "-"

            def speedup(name: str, v: dict = v) -> str:
                return f"{v[name]['speedup']:.2f}" if name in v else "-"

            compiled = "fast+compile" if "fast+compile" in v else "fast+channels_last"
            acc = ""
            for variant, a in record.get("accuracy", {}).items():
                if variant == "fp32":
                    continue
                if "cosine_min" in a:
                    acc += f" {variant}: {a['cosine_min']:.4f}/{a['nearest_neighbour_agreement']:.2f}"
                else:
                    acc += f" {variant}: {a['matched_iou_0.9']:.2f}/{a['corner_shift_px_max']:.1f}"
            target = f"{record['target']:.0f}x" if record.get("target") else ""
            lines.append(
                f"{record['name'][:48]:48s} {rate(REFERENCE):>8s} {rate('fp32'):>8s} {rate('fast'):>8s} "
                f"{rate(compiled):>9s} {speedup('fast'):>7s} {speedup(compiled):>9s} {target:>6s} {acc}"
            )
            others = [name for name in v if name not in (REFERENCE, "fp32", "fast", compiled)]
            lines.extend(f"{'  ' + other:48s} {rate(other):>8s}{speedup(other):>36s}x" for other in others)
    lines.append(
        "rates: images/s (re-id crops, detector images, training images, indexed scenes); x: "
        "median per-round speed-up over ref"
    )
    lines.append(
        "train rows: 'compile' columns hold fast+channels_last for the detector (training is not compiled)"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--only",
        default="reid,detector,train,index",
        help="comma-separated sections: reid, detector, train, index",
    )
    parser.add_argument(
        "--rounds", type=int, default=5, help="alternating measurement rounds per case (inference)"
    )
    parser.add_argument(
        "--train-rounds", type=int, default=3, help="rounds for the training and indexing cases"
    )
    parser.add_argument(
        "--data", type=Path, default=Path("demo-output/data"), help="a synthetic benchmark (made if absent)"
    )
    parser.add_argument(
        "--bundle",
        type=Path,
        default=Path("demo-output/model"),
        help="a trained bundle for the accuracy checks (personsearch demo writes one)",
    )
    parser.add_argument("--index-images", type=int, default=4, help="scenes per indexing run")
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "speed")
    parser.add_argument(
        "--out", type=Path, default=None, help="default: benchmarks/results/speed-<cpu signature>.json"
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker()
        return
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(sections) - {"reid", "detector", "train", "index"}
    if unknown:
        parser.error(f"--only: unknown sections {sorted(unknown)}")
    args.work.mkdir(parents=True, exist_ok=True)
    data = ensure_data(args.data, args.work)
    cases = build_cases(args, data, args.work)
    from personsearch.models.engines import cpu_signature, signature_digest

    signature = cpu_signature()
    this_cpu = signature_digest(signature)
    args.out = args.out or per_cpu_path("speed", signature)
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    measured_on = results.get("machine", {}).get("cpu_signature", this_cpu)
    if measured_on != this_cpu:
        parser.error(
            f"{args.out} holds figures of another CPU (signature {measured_on}, this one is {this_cpu}); "
            "give a new --out"
        )
    results.setdefault("sections", {})
    results.update(
        commit=commit(),
        machine=machine(),
        settings={
            "rounds": args.rounds,
            "train_rounds": args.train_rounds,
            "data": str(data),
            "bundle": str(args.bundle),
            "reference": "fp32 eager, contiguous, no autocast, default glibc malloc",
            "fast_worker_malloc": "GLIBC_TUNABLES="
            + __import__("personsearch.interfaces.cli", fromlist=["MALLOC_TUNING"]).MALLOC_TUNING,
        },
    )
    ref, fast = Worker("reference", tuned_malloc=False), Worker("fast", tuned_malloc=True)
    started = time.perf_counter()
    try:
        for section in sections:
            rounds = args.rounds if section in ("reid", "detector") else args.train_rounds
            results["sections"][section] = [
                run_case(case, ref, fast, rounds, args.work) for case in cases[section]
            ]
            results["machine"]["load_average_end"] = list(os.getloadavg())
            args.out.parent.mkdir(parents=True, exist_ok=True)
            write_results(args.out, results)
    finally:
        ref.close()
        fast.close()
    print(f"\nwrote {args.out} ({time.perf_counter() - started:.0f} s)\n")
    print(table(results))


if __name__ == "__main__":
    main()
