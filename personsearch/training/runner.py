"""The training loop both networks share: resumable checkpoints, warm-up + step learning rate,
mixed precision, a CSV metrics log, a progress bar with ETA, and DistributedDataParallel.

Each epoch's batch order is a pure function of (seed, epoch), so a run stopped at any step
resumes from its last checkpoint and sees exactly the batches it would have seen.
"""

from __future__ import annotations

import csv
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.distributed as dist

from personsearch.models.fast import autocast_for, grad_scaler_for
from personsearch.models.machine import checked_device
from personsearch.progress import job_progress
from personsearch.training.config import OptimConfig

CHECKPOINT_NAME = "last.pt"

Batch = Any
StepFn = Callable[[torch.nn.Module, Batch], tuple[torch.Tensor, dict[str, float], int]]
"""(model, batch) -> (loss to back-propagate, named loss parts for the log, images in the batch)."""


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present, else CPU. A GPU without an index is this process's own
    under ``torchrun`` (``cuda:LOCAL_RANK``, made the current device): every rank on GPU 0 would
    fail NCCL's set-up, or share one GPU's memory."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = checked_device(name)
    if device.type == "cuda" and device.index is None:
        # more ranks than GPUs: a clear error
        device = checked_device(f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}")
        torch.cuda.set_device(device)
    return device


def distributed_context(device: torch.device | None = None) -> tuple[int, int]:
    """(rank, world size); joins the process group when launched by ``torchrun``, with NCCL when
    training on GPUs and gloo on CPUs."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device is not None and device.type == "cuda" else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def learning_rate_factor(
    step: int, total_steps: int, optim: OptimConfig, full_steps: int | None = None
) -> float:
    """Linear warm-up from 0.1x, then divide by 10 at each milestone fraction of the run. A run
    that a time budget shortened to ``total_steps`` of the ``full_steps`` planned warms up for the
    same share of its length: a warm-up of fixed length would take all of a short run (a camera's
    adapting under its default budget), whose learning rate would never reach the rate asked for.
    A run longer than ``optim.full_rate_steps`` has every factor scaled by that share."""
    scale = min(1.0, optim.full_rate_steps / max(1, total_steps)) if optim.full_rate_steps else 1.0
    warmup = optim.warmup_steps
    if full_steps is not None and total_steps < full_steps:
        warmup = round(warmup * total_steps / full_steps)
    if step < warmup:
        return scale * (0.1 + 0.9 * step / max(1, warmup))
    passed = sum(step >= m * total_steps for m in optim.milestones)
    return scale * 0.1**passed


def sgd_for(
    model: torch.nn.Module, optim: OptimConfig, is_backbone: Callable[[str], bool]
) -> torch.optim.SGD:
    """SGD with the backbone's parameters at ``backbone_lr`` and new layers at ``lr``."""
    backbone: list[torch.nn.Parameter] = []
    new: list[torch.nn.Parameter] = []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (backbone if is_backbone(name) else new).append(param)
    groups = [
        {"params": backbone, "lr": optim.backbone_lr, "base_lr": optim.backbone_lr},
        {"params": new, "lr": optim.lr, "base_lr": optim.lr},
    ]
    return torch.optim.SGD(
        [g for g in groups if g["params"]], momentum=optim.momentum, weight_decay=optim.weight_decay
    )


def save_atomic(obj: dict[str, Any], path: Path) -> None:
    """Write then rename, so a kill mid-write leaves the previous checkpoint intact."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a training checkpoint (tensors and plain values only: ``weights_only=True``)."""
    try:
        return cast("dict[str, Any]", torch.load(path, map_location="cpu", weights_only=True))
    except Exception as err:  # torch raises several types for truncated or foreign files
        raise ValueError(
            f"{path}: not a readable personsearch checkpoint ({err}); delete it to start afresh"
        ) from err


@dataclass
class Trainer:
    """Runs ``epochs`` epochs of ``step_fn`` over the batches of ``epoch_batches(epoch)``."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    optim: OptimConfig
    out_dir: Path
    epochs: int
    device: torch.device
    fast: bool = True
    checkpoint_every: int = 200
    config: dict[str, Any] | None = None
    progress: bool = True
    description: str = "train"
    on_epoch_end: Callable[[int, torch.nn.Module], None] | None = None
    """Called on rank 0 after each epoch's checkpoint with (epochs done, the bare model), e.g. to
    score a validation split for a learning curve; the next epoch puts the model back in train mode."""
    on_step: Callable[[int, int], None] | None = None
    """Called on rank 0 after each step with (steps done, steps planned), e.g. a job's progress;
    an exception it raises stops the run (the last checkpoint stays, so the run can resume)."""
    deadline: float | None = None
    """A ``time.monotonic()`` instant to finish by (a time budget): after a few steps the run
    measures its pace and shortens itself to the steps that fit, its learning-rate schedule
    scaled to that length, and it stops at the deadline whatever happens. The length chosen is
    checkpointed, so a resumed run keeps its schedule."""
    _scaler: torch.amp.GradScaler = field(init=False, repr=False)
    """The loss scaler of fp16 training (inactive otherwise), checkpointed with the weights."""
    _planned_steps: int | None = field(default=None, init=False, repr=False)
    """The run's length as a time budget chose it (None: every step of every epoch)."""
    _seconds_before: float = field(default=0.0, init=False, repr=False)
    """Training seconds of the runs before a resume (checkpointed), so a run stopped and resumed
    reports the time its training took, not its last part's."""
    _started: float = field(default=0.0, init=False, repr=False)

    def fit(
        self,
        epoch_batches: Callable[[int], Sequence[Sequence[Any]]],
        load_batch: Callable[[Sequence[Any]], Batch],
        step_fn: StepFn,
    ) -> dict[str, Any]:
        """Train to the end, resuming from ``out_dir/last.pt`` if present; return a summary."""
        rank, world = distributed_context(self.device)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        model = self.model.to(self.device)
        if world > 1:
            model = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        plan = [epoch_batches(e) for e in range(self.epochs)]
        total = sum(len(p) for p in plan)
        if self.epochs > 0 and total == 0:  # never save an untrained network as if it were trained
            raise ValueError(
                f"{self.description}: the training data gives no batch at all; is the training split empty, "
                "or smaller than one batch?"
            )
        if self.deadline is not None and world > 1:
            raise ValueError(
                f"{self.description}: a time budget is for a single process "
                "(each rank would cut the run at a different step)"
            )
        scaler = self._scaler = grad_scaler_for(self.device, self.fast)
        first_epoch, start, global_step = self._resume()
        budget = _Budget(self.deadline, total, self._planned_steps, global_step)
        log = _MetricsLog(self.out_dir / "metrics.csv") if rank == 0 else None
        resumed_at = global_step
        images_seen, started = 0, time.perf_counter()
        self._started = started
        with job_progress(self.progress and rank == 0, unit="steps") as bar:
            task = bar.add_task(self.description, total=budget.planned, completed=global_step)
            for epoch in range(first_epoch, self.epochs):
                model.train()
                for index in range(start, len(plan[epoch])):
                    if budget.spent(global_step):
                        break
                    batch = load_batch(list(plan[epoch][index])[rank::world])
                    factor = learning_rate_factor(global_step, budget.planned, self.optim, total)
                    for group in self.optimizer.param_groups:
                        group["lr"] = group["base_lr"] * factor
                    with autocast_for(self.device, self.fast):
                        loss, parts, n_images = step_fn(model, batch)
                    if not torch.isfinite(loss):
                        raise FloatingPointError(
                            f"loss is {loss.item()} at epoch {epoch} step {index}; lower the learning rate"
                        )
                    self.optimizer.zero_grad(set_to_none=True)
                    scaler.scale(loss).backward()  # type: ignore[no-untyped-call]  # torch leaves Tensor.backward unannotated
                    scaler.step(self.optimizer)
                    scaler.update()
                    global_step += 1
                    if budget.fit(global_step):
                        self._planned_steps = budget.planned
                        bar.update(task, total=budget.planned)
                    images_seen += n_images * world
                    rate = images_seen / (time.perf_counter() - started)
                    if log is not None:
                        log.write(
                            step=global_step,
                            epoch=epoch,
                            lr=self.optimizer.param_groups[-1]["lr"],
                            loss=loss.item(),
                            images_per_s=rate,
                            **parts,
                        )
                    bar.update(
                        task,
                        advance=1,
                        description=f"{self.description} ep {epoch + 1}/{self.epochs} loss {loss.item():.3f}",
                    )
                    if rank == 0 and global_step % self.checkpoint_every == 0:
                        self._save(epoch, index + 1, global_step)
                    if rank == 0 and self.on_step is not None:
                        self.on_step(global_step, budget.planned)
                else:  # the epoch ran to its end
                    start = 0
                    if rank == 0:
                        self._save(epoch + 1, 0, global_step)
                        if self.on_epoch_end is not None:
                            self.on_epoch_end(epoch + 1, self._bare_model())
                    continue
                if rank == 0:  # the budget ran out inside the epoch: a resumed run goes on from here
                    self._save(epoch, index, global_step)
                break
        if world > 1:
            dist.barrier()  # every rank finished before rank 0's files are read
        elapsed = time.perf_counter() - started
        summary = {
            "steps": global_step,
            "epochs": self.epochs,
            "seconds": self._seconds_before + elapsed,
            "images_per_s": images_seen / elapsed if elapsed else math.nan,  # this run's pace
        }
        if resumed_at:
            summary.update(resumed_at_step=resumed_at, seconds_since_resume=elapsed)
        if self.deadline is not None:
            summary.update(
                planned_steps=total, budget_steps=budget.planned, stopped_by_budget=global_step < total
            )
        return summary

    def _bare_model(self) -> torch.nn.Module:
        return cast(torch.nn.Module, self.model.module) if hasattr(self.model, "module") else self.model

    def _save(self, epoch: int, step_in_epoch: int, global_step: int) -> None:
        save_atomic(
            {
                "model": self._bare_model().state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "epoch": epoch,
                "step_in_epoch": step_in_epoch,
                "global_step": global_step,
                "config": self.config or {},
                "loss_scale": self._scaler.state_dict(),  # fp16 training's loss scale; empty otherwise
                "planned_steps": self._planned_steps,  # the length a time budget chose (None: every step)
                "seconds": self._seconds_before + time.perf_counter() - self._started,
            },
            self.out_dir / CHECKPOINT_NAME,
        )

    def _resume(self) -> tuple[int, int, int]:
        path = self.out_dir / CHECKPOINT_NAME
        if not path.exists():
            return 0, 0, 0
        state = load_checkpoint(path)
        if self.config is not None and state.get("config") and state["config"] != self.config:
            raise ValueError(
                f"{path} was written by a different configuration; use another output directory or "
                "delete it to start afresh"
            )
        self._bare_model().load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        # go on with the scale reached, not the initial one (whose overflows skip steps)
        if state.get("loss_scale") and self._scaler.is_enabled():
            self._scaler.load_state_dict(state["loss_scale"])
        self._planned_steps = state.get("planned_steps")
        self._seconds_before = float(state.get("seconds", 0.0))
        epoch, step = int(state["epoch"]), int(state["step_in_epoch"])
        if epoch >= self.epochs:
            epoch, step = self.epochs, 0
        return epoch, step, int(state["global_step"])


class _Budget:
    """The steps a run takes under a deadline: every planned step without one; with one, as many
    as the recent pace says will fit. The length is chosen after ``PROBE`` steps and chosen again
    each time the steps since then double, until half the run is done (before the learning rate's
    milestones): a pace measured while the machine was busy for a moment would otherwise end the
    run far inside its budget, or run it into the deadline."""

    PROBE = 4

    def __init__(self, deadline: float | None, total: int, chosen: int | None, step: int) -> None:
        self.deadline, self.total = deadline, total
        self.planned = total if chosen is None else min(total, chosen)
        self.decided = deadline is None or chosen is not None
        self.first_step = step
        self.next_look = step + self.PROBE
        self.times: list[float] = [time.monotonic()]

    def fit(self, step: int) -> bool:
        """Called after each step; True when it has just (re)chosen the run's length."""
        if self.deadline is None:
            return False
        self.times.append(time.monotonic())
        if self.decided:
            del self.times[:-2]
            return False
        if step < self.next_look:
            return False
        done = step - self.first_step
        # the pace of the steps since the last look (the first step warms up: left out)
        recent = self.times[2:] if done == self.PROBE else self.times[-(done // 2 + 1) :]
        pace = float(np.median(np.diff(recent)))
        planned = min(self.total, step + max(0, int((self.deadline - self.times[-1]) / max(pace, 1e-6))))
        self.next_look = self.first_step + 2 * done
        self.decided = self.next_look - self.first_step >= (planned - self.first_step) / 2
        if self.decided:
            del self.times[:-2]  # from here on only the last step's pace is read
        changed, self.planned = planned != self.planned, planned
        return changed or done == self.PROBE

    def spent(self, step: int) -> bool:
        """Whether the run stops before this step: its length reached, or the deadline too close
        for one more step at the last step's pace."""
        if step >= self.planned:
            return True
        if self.deadline is None:
            return False
        pace = self.times[-1] - self.times[-2] if len(self.times) > 1 else 0.0
        return time.monotonic() + pace > self.deadline


def _is_pretrained_part(param: str) -> bool:
    """Backbone parameters (and the detector's box head, which is the backbone's last stages)
    start from ImageNet and get ``backbone_lr``; everything else is new."""
    return param.startswith(("backbone.", "roi_heads.box_head."))


def train_component(
    name: str,
    model: torch.nn.Module,
    model_config: Any,
    train_config: Any,
    out_dir: Path,
    *,
    epoch_batches: Callable[[int], Sequence[Sequence[Any]]],
    load_batch: Callable[[Sequence[Any]], Batch],
    step_fn: StepFn,
    progress: bool = True,
    description: str = "train",
    summary_extra: dict[str, Any] | None = None,
    on_epoch_end: Callable[[int, torch.nn.Module], None] | None = None,
    on_step: Callable[[int, int], None] | None = None,
    deadline: float | None = None,
) -> dict[str, Any]:
    """Train one bundle component (``detector`` or ``reid``) with ``train_config``'s optimiser,
    epochs and checkpointing in ``out_dir/train-NAME``, then save it as ``out_dir/NAME.*``.
    ``on_step``, ``deadline``: see ``Trainer``."""
    from personsearch.models.bundle import save_component
    from personsearch.training.config import to_dict

    config_dict = to_dict(train_config)
    device = resolve_device(train_config.device)
    optimizer = sgd_for(model, train_config.optim, _is_pretrained_part)
    trainer = Trainer(
        model=model,
        optimizer=optimizer,
        optim=train_config.optim,
        out_dir=Path(out_dir) / f"train-{name}",
        epochs=train_config.epochs,
        device=device,
        fast=train_config.fast,
        checkpoint_every=train_config.checkpoint_every,
        config=config_dict,
        progress=progress,
        description=description,
        on_epoch_end=on_epoch_end,
        on_step=on_step,
        deadline=deadline,
    )
    summary = trainer.fit(epoch_batches, load_batch, step_fn)
    summary.update(summary_extra or {})
    model.eval()
    if distributed_context()[0] == 0:  # one writer under torchrun
        save_component(out_dir, name, model, model_config, {"train": config_dict, "summary": summary})
    return summary


class _MetricsLog:
    """Appends one CSV row per step; a resumed run continues the same file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fields: list[str] | None = None
        if path.exists():
            with path.open() as f:
                self.fields = next(csv.reader(f), None)

    def write(self, **row: Any) -> None:
        if self.fields is None:
            self.fields = list(row)
            with self.path.open("w", newline="") as f:
                csv.writer(f).writerow(self.fields)
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, fieldnames=self.fields, extrasaction="ignore").writerow(
                {k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()}
            )
