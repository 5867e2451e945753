"""Training loop: exact resume after a kill, learning-rate schedule, crops and augmentation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import personsearch.training.detector as detector_training
import personsearch.training.reid as reid_training
from personsearch.data import load_dataset
from personsearch.data.crops import CropAugment, CropSet, crop_boxes
from personsearch.data.synthetic import make_synthetic
from personsearch.models.bundle import load_component
from personsearch.models.detector import DetectorConfig
from personsearch.models.reid import ReIDConfig
from personsearch.training import runner
from personsearch.training.config import DetectorTrainConfig, OptimConfig, ReIDDataConfig, ReIDTrainConfig
from personsearch.training.runner import learning_rate_factor

torch.set_num_threads(1)


def tiny_crop_set(n_ids: int = 4, per_id: int = 6) -> CropSet:
    """Crops whose identity is their colour, so a network can learn them."""
    rng = np.random.default_rng(0)
    colours = rng.integers(0, 256, (n_ids, 3))
    crops, labels = [], []
    for label, colour in enumerate(colours):
        for _ in range(per_id):
            crop = np.clip(colour[:, None, None] + rng.normal(0, 20, (3, 32, 16)), 0, 255)
            crops.append(crop)
            labels.append(label)
    return CropSet(
        crops=torch.from_numpy(np.stack(crops)).to(torch.uint8),
        labels=torch.tensor(labels),
        pids=np.arange(1, n_ids + 1),
        heights=np.full(len(labels), 50.0),
    )


def tiny_config(
    variant: str = "clsa", ids_per_batch: int = 0, mix_share: float = 0.0, **overrides
) -> ReIDTrainConfig:
    base = dict(
        model=ReIDConfig(backbone="mobilenet_v2_tiny", pretrained=None, input_size=(32, 16), variant=variant),
        data=ReIDDataConfig(ids_per_batch=ids_per_batch, mix_share=mix_share),
        epochs=2,
        batch_size=8,
        fast=False,
        device="cpu",
        checkpoint_every=2,
        optim=OptimConfig(warmup_steps=2),
    )
    base.update(overrides)
    return ReIDTrainConfig(**base)


def killed_at_step_5_then_resumed(
    config: ReIDTrainConfig, out: Path, crops: CropSet, monkeypatch: pytest.MonkeyPatch
) -> dict:
    """Train into ``out`` until a kill at step 5 (a KeyboardInterrupt, as Ctrl-C gives), which
    leaves a checkpoint and no bundle, then run again to the end; the resumed run's summary."""
    real_loss, calls = reid_training.reid_loss, {"n": 0}

    def dies_at_step_5(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt("simulated kill")
        return real_loss(*args, **kwargs)

    monkeypatch.setattr(reid_training, "reid_loss", dies_at_step_5)
    with pytest.raises(KeyboardInterrupt):
        reid_training.train_reid(config, out, progress=False, crop_set=crops)
    assert (out / "train-reid" / "last.pt").is_file()
    assert not (out / "reid.safetensors").exists()
    monkeypatch.setattr(reid_training, "reid_loss", real_loss)
    return reid_training.train_reid(config, out, progress=False, crop_set=crops)


def test_killed_run_resumes_to_the_same_weights_as_an_uninterrupted_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    crops = tiny_crop_set()
    config = tiny_config()
    reid_training.train_reid(config, tmp_path / "straight", progress=False, crop_set=crops)
    summary = killed_at_step_5_then_resumed(config, tmp_path / "killed", crops, monkeypatch)

    straight = load_file(str(tmp_path / "straight" / "reid.safetensors"))
    resumed = load_file(str(tmp_path / "killed" / "reid.safetensors"))
    assert straight.keys() == resumed.keys()
    for key in straight:
        torch.testing.assert_close(resumed[key], straight[key], rtol=0, atol=0, msg=key)
    assert summary["steps"] == 2 * (24 // 8)
    # its time is both parts', not the resumed part's alone
    assert summary["resumed_at_step"] == 4
    assert summary["seconds"] > summary["seconds_since_resume"] > 0
    rows = (tmp_path / "killed" / "train-reid" / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("step,epoch,lr,loss")
    # steps 1-4 before the kill; the run resumed from the step-4 checkpoint and logged 5-6
    assert [int(r.split(",")[0]) for r in rows[1:]] == [1, 2, 3, 4, 5, 6]


def test_a_killed_fp16_run_resumes_with_the_loss_scale_it_had_reached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fp16 training (GPUs without bf16) scales its loss, growing the scale while gradients stay
    finite. A resumed run goes on with the scale the killed one had reached, as an uninterrupted
    run does, instead of the initial one, whose overflows would skip optimizer steps."""
    scalers: list[torch.amp.GradScaler] = []

    def active_scaler(
        device: object, enabled: bool = True
    ) -> torch.amp.GradScaler:  # as fast training on a GPU without bf16; doubles every step
        scalers.append(torch.amp.GradScaler("cpu", init_scale=2.0**4, growth_interval=1))
        return scalers[-1]

    monkeypatch.setattr(runner, "grad_scaler_for", active_scaler)
    crops, config = tiny_crop_set(), tiny_config()
    reid_training.train_reid(config, tmp_path / "straight", progress=False, crop_set=crops)
    straight_scale = scalers[-1].get_scale()
    killed_at_step_5_then_resumed(config, tmp_path / "killed", crops, monkeypatch)
    assert straight_scale == 2.0 ** (4 + 6)  # 6 steps, each with finite gradients
    assert scalers[-1].get_scale() == straight_scale


def test_resume_refuses_a_different_configuration(tmp_path: Path) -> None:
    crops = tiny_crop_set()
    reid_training.train_reid(tiny_config(epochs=1), tmp_path, progress=False, crop_set=crops)
    with pytest.raises(ValueError, match="different configuration"):
        reid_training.train_reid(
            tiny_config(epochs=1, variant="multi"), tmp_path, progress=False, crop_set=crops
        )


def test_learning_rate_warms_up_then_steps_down() -> None:
    optim = OptimConfig(warmup_steps=10, milestones=(0.5, 0.75))
    assert learning_rate_factor(0, 100, optim) == pytest.approx(0.1)
    assert learning_rate_factor(5, 100, optim) == pytest.approx(0.55)
    assert learning_rate_factor(10, 100, optim) == 1.0
    assert learning_rate_factor(49, 100, optim) == 1.0
    assert learning_rate_factor(50, 100, optim) == pytest.approx(0.1)
    assert learning_rate_factor(75, 100, optim) == pytest.approx(0.01)


def test_a_run_shortened_by_its_budget_warms_up_for_the_same_share_of_it() -> None:
    optim = OptimConfig(warmup_steps=20, milestones=(0.8,))
    # 96 steps planned, 12 fit the budget: 20 steps of warm-up would outlast the run
    assert learning_rate_factor(1, 12, optim, full_steps=96) == pytest.approx(0.55)  # 2 steps of warm-up
    assert learning_rate_factor(3, 12, optim, full_steps=96) == 1.0
    assert learning_rate_factor(10, 12, optim, full_steps=96) == pytest.approx(0.1)
    # the full run keeps its warm-up
    assert learning_rate_factor(10, 96, optim, full_steps=96) == pytest.approx(0.55)


def test_a_run_longer_than_its_full_rate_steps_trains_at_rates_scaled_by_that_share() -> None:
    """adapt's rates suit a budget's few dozen steps; a run given ten times the budget would overfit
    its pseudo-labels at them, so its rates shrink to change the weights about as much."""
    optim = OptimConfig(warmup_steps=0, milestones=(0.8,), full_rate_steps=40)
    assert learning_rate_factor(5, 40, optim) == 1.0  # up to 40 steps: the rates asked for
    assert learning_rate_factor(5, 160, optim) == pytest.approx(0.25)
    assert learning_rate_factor(150, 160, optim) == pytest.approx(0.025)  # after the milestone too
    # shortened by a budget to 20 of 192 planned steps: full rate; the whole 192: 40/192 of it
    assert learning_rate_factor(5, 20, optim, full_steps=192) == 1.0
    assert learning_rate_factor(5, 192, optim, full_steps=192) == pytest.approx(40 / 192)
    assert learning_rate_factor(5, 160, OptimConfig(warmup_steps=0)) == 1.0  # off by default


def test_identity_balanced_batches_hold_k_crops_of_p_identities() -> None:
    crops = tiny_crop_set(n_ids=4, per_id=6)
    config = tiny_config(batch_size=8, ids_per_batch=2)
    batches = reid_training.epoch_plan(crops.labels, 0, config)
    assert len(batches) == 2
    for batch in batches:
        labels = crops.labels[batch]
        assert len(batch) == 8 and len(labels.unique()) == 2
        assert all((labels == label).sum() == 4 for label in labels.unique())
    assert reid_training.epoch_plan(crops.labels, 0, config) == batches
    assert reid_training.epoch_plan(crops.labels, 1, config) != batches


def test_fewer_identities_than_a_balanced_batch_still_train() -> None:
    """16 identities per batch on a 3-identity set: one batch of all three (as plain shuffling
    gives one short batch), not an epoch without a step that saves an untrained network."""
    crops = tiny_crop_set(n_ids=3, per_id=2)
    batches = reid_training.epoch_plan(crops.labels, 0, tiny_config(batch_size=64, ids_per_batch=16))
    assert len(batches) == 1 and set(crops.labels[batches[0]].tolist()) == {0, 1, 2}


def test_training_without_a_single_batch_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reid_training, "epoch_plan", lambda labels, epoch, config, mixed_from: [])
    with pytest.raises(ValueError, match="gives no batch at all"):
        reid_training.train_reid(tiny_config(epochs=1), tmp_path, progress=False, crop_set=tiny_crop_set())
    assert not (tmp_path / "reid.safetensors").exists()


def test_crop_boxes_resamples_exactly_the_box() -> None:
    image = np.zeros((40, 60, 3), np.uint8)
    image[10:30, 20:30] = (200, 100, 50)
    crops = crop_boxes(image, np.array([[20, 10, 30, 30], [0, 0, 10, 10]]), (8, 4))
    assert crops.shape == (2, 3, 8, 4) and crops.dtype == torch.uint8
    assert (crops[0].permute(1, 2, 0) == torch.tensor([200, 100, 50], dtype=torch.uint8)).all()
    assert (crops[1] == 0).all()
    with pytest.raises(ValueError, match=r"no area inside the 60x40 image"):
        crop_boxes(image, np.array([[70, 0, 80, 10]]), (8, 4))


def test_downscale_augmentation_blurs_detail_and_keeps_the_size() -> None:
    crops = torch.zeros(4, 3, 64, 32, dtype=torch.uint8)
    crops[:, :, ::2] = 255  # one-pixel stripes: the finest possible detail
    augment = CropAugment(flip=False, pad=0, downscale_prob=1.0, min_scale=0.125)
    out = augment(crops, torch.Generator().manual_seed(0))
    assert out.shape == crops.shape
    # stripes survive only as grey: every image lost most of its contrast
    assert (out.float().std(dim=(1, 2, 3)) < 0.5 * crops.float().std(dim=(1, 2, 3))).all()
    again = augment(crops, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)


def test_style_randomisation_changes_colour_not_layout_and_is_off_by_default() -> None:
    """Colour jitter turns a red shirt another colour and keeps where it is; grey crops have
    equal channels; erasing hides one rectangle; all of it repeatable from the generator and off
    in the CLSA recipe (the default)."""
    crops = torch.zeros(16, 3, 64, 32, dtype=torch.uint8)
    crops[:, 0, 10:40] = 200  # a red shirt on black
    plain = CropAugment(flip=False, pad=0, downscale_prob=0.0)
    assert torch.equal(plain(crops, torch.Generator().manual_seed(0)), crops.float())

    styled = CropAugment(flip=False, pad=0, downscale_prob=0.0, colour_jitter=0.8)
    out = styled(crops, torch.Generator().manual_seed(0))
    assert torch.equal(out, styled(crops, torch.Generator().manual_seed(0)))
    shirt = out[:, :, 10:40].mean(dim=(2, 3))  # (16, 3)
    assert shirt.std(dim=0).max() > 20, "colours barely changed"
    assert (out[:, :, 45:].amax(dim=(1, 2, 3)) < 40).all(), "the black below the shirt must stay dark"

    grey = CropAugment(flip=False, pad=0, downscale_prob=0.0, grayscale_prob=1.0)(
        crops, torch.Generator().manual_seed(0)
    )
    assert torch.allclose(grey[:, 0], grey[:, 1], atol=1e-3) and torch.allclose(
        grey[:, 1], grey[:, 2], atol=1e-3
    )

    erased = CropAugment(flip=False, pad=0, downscale_prob=0.0, erase_prob=1.0)(
        crops, torch.Generator().manual_seed(0)
    )
    changed = (erased != crops.float()).any(dim=1)  # (16, 64, 32)
    for mask in changed:
        rows, cols = torch.nonzero(mask.any(dim=1)).flatten(), torch.nonzero(mask.any(dim=0)).flatten()
        assert len(rows) and len(cols), "every crop is erased somewhere"
        box = (rows[-1] - rows[0] + 1) * (cols[-1] - cols[0] + 1)
        assert 0.01 * 64 * 32 <= box <= 0.45 * 64 * 32


def test_under_torchrun_each_rank_trains_on_its_own_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """``torchrun --nproc_per_node 2`` on a two-GPU machine: rank 1 trains on cuda:1, made the
    current device, not on GPU 0 beside rank 0, and the ranks meet over NCCL (gloo on CPUs)."""
    current: list[torch.device] = []
    backends: list[str] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", current.append)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert runner.resolve_device("auto") == runner.resolve_device("cuda") == torch.device("cuda", 1)
    assert runner.resolve_device("cuda:0") == torch.device("cuda", 0)  # a GPU named by the user stays
    assert current == [torch.device("cuda", 1)] * 2
    monkeypatch.setenv("LOCAL_RANK", "2")  # a third process per node on a two-GPU machine
    with pytest.raises(ValueError, match=r"'cuda:2': this machine has 2 CUDA GPU\(s\)"):
        runner.resolve_device("cuda")
    monkeypatch.delenv("LOCAL_RANK")
    assert runner.resolve_device("cuda") == torch.device("cuda", 0)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert runner.resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ValueError, match="sees no CUDA GPU on this machine; use cpu"):
        runner.resolve_device("cuda")

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(runner.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(runner.dist, "init_process_group", backends.append)
    monkeypatch.setattr(runner.dist, "get_rank", lambda: 1)
    assert (
        runner.distributed_context(torch.device("cuda", 1))
        == runner.distributed_context(torch.device("cpu"))
        == (1, 2)
    )
    assert backends == ["nccl", "gloo"]


def test_torchrun_trains_with_two_processes_and_one_writer(tmp_path: Path) -> None:
    """DistributedDataParallel on CPU (gloo): both ranks train, rank 0 alone writes the bundle."""
    import shutil
    import subprocess
    import sys

    from personsearch.data.synthetic import make_synthetic

    make_synthetic(tmp_path / "data", preset="tiny", seed=1)
    config = tmp_path / "reid.yaml"
    config.write_text(
        "model:\n  backbone: mobilenet_v2_tiny\n  pretrained: false\n  input_size: [32, 16]\nepochs: 1\n"
        "batch_size: 8\nfast: false\ndevice: cpu\n"
    )
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    assert torchrun, "torchrun is installed with torch"
    run = subprocess.run(
        [
            torchrun,
            "--nproc_per_node",
            "2",
            "-m",
            "personsearch.interfaces.cli",
            "train-reid",
            "--out",
            str(tmp_path / "out"),
            "--config",
            str(config),
            "--dataset",
            str(tmp_path / "data"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.count("re-id trained") == 2
    assert (tmp_path / "out" / "reid.safetensors").is_file()
    assert (tmp_path / "out" / "train-reid" / "last.pt").is_file()


@pytest.mark.parametrize(
    ("fast", "pays", "channels_last"), [(True, True, True), (True, False, False), (False, True, False)]
)
def test_detector_trains_channels_last_only_where_it_pays_and_saves_the_weights_it_trained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fast: bool, pays: bool, channels_last: bool
) -> None:
    data = make_synthetic(tmp_path / "tiny", preset="tiny", seed=2).root
    scenes = [s for s in load_dataset(data).train if len(s.boxes)][:2]
    monkeypatch.setattr(detector_training, "channels_last_pays", lambda device: pays)
    trained: list[torch.nn.Module] = []
    real_train = detector_training.train_component

    def keep_model(name, model, *args, **kwargs):
        trained.append(model)
        return real_train(name, model, *args, **kwargs)

    monkeypatch.setattr(detector_training, "train_component", keep_model)
    model = DetectorConfig(backbone="mobilenet_v2_tiny", pretrained=False, min_size=160, max_size=224)
    config = DetectorTrainConfig(model=model, epochs=1, batch_size=2, fast=fast, device="cpu")
    detector_training.train_detector(config, tmp_path / "model", progress=False, scenes=scenes)

    (net,) = trained
    stem = next(m for m in net.modules() if isinstance(m, torch.nn.Conv2d))
    assert stem.weight.is_contiguous(memory_format=torch.channels_last) is channels_last
    saved, _, _ = load_component(tmp_path / "model", "detector")
    expected = net.state_dict()
    for key, value in saved.state_dict().items():  # whatever the layout it trained in
        torch.testing.assert_close(value, expected[key], rtol=0, atol=0, msg=key)


def test_a_mix_share_puts_that_many_mixed_identities_in_every_batch() -> None:
    """10 main identities and 4 mixed ones, 4 a batch, half of them mixed: every batch holds 2
    of each, an epoch passes once over the main identities, the few mixed ones come round again."""
    crops = tiny_crop_set(n_ids=14, per_id=4)
    config = tiny_config(batch_size=8, ids_per_batch=4, mix_share=0.5)
    batches = reid_training.epoch_plan(crops.labels, 0, config, mixed_from=10)
    assert len(batches) == 5
    seen_main = []
    for batch in batches:
        ids = crops.labels[batch].unique()
        assert len(ids) == 4 and int((ids >= 10).sum()) == 2
        seen_main += [int(i) for i in ids if i < 10]
    assert sorted(seen_main) == list(range(10))
    assert reid_training.epoch_plan(crops.labels, 0, config, mixed_from=10) == batches
    plain = reid_training.epoch_plan(
        crops.labels, 0, tiny_config(batch_size=8, ids_per_batch=4), mixed_from=10
    )
    assert len(plain) == 3  # without a share, the 14 identities in proportion


def test_the_mixed_sets_classes_begin_after_the_main_sets() -> None:
    """training_crops names classes ``root:pid``, the main set's first; a set named like the main
    one with more letters is still a mixed set."""
    crops = tiny_crop_set(n_ids=4, per_id=1)
    crops = CropSet(
        crops.crops,
        crops.labels,
        np.array(["d/a:1", "d/a:2", "d/a2:1", "d/b:7"], dtype=object),
        crops.heights,
    )
    data = ReIDDataConfig(dataset="d/a", mix=("d/a2", "d/b"))
    assert reid_training.mix_classes_from(crops, data) == 2
    assert reid_training.mix_classes_from(crops, ReIDDataConfig(dataset="d/a")) is None
