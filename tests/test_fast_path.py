"""The fast inference path's switches: channels_last, opt-in compilation and its environment variable."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from personsearch.models import fast
from personsearch.models.detector import DetectorConfig, build_detector
from personsearch.models.fast import (
    COMPILE_ENV,
    compile_for_inference,
    compile_requested,
    compiled_parts,
    prepare_for_inference,
)

torch.set_num_threads(1)


def conv_bn() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()
    )
    with torch.no_grad():  # non-trivial statistics, so BatchNorm folding has something to get right
        model[1].running_mean.uniform_(-1, 1)
        model[1].running_var.uniform_(0.5, 2)
    return model


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", True), ("true", True), (" ON ", True), ("0", False), ("", False), ("no", False)],
)
def test_compile_env_values(monkeypatch: pytest.MonkeyPatch, value: str, expected: bool) -> None:
    monkeypatch.setenv(COMPILE_ENV, value)
    assert compile_requested() is expected


def test_prepare_compiles_only_on_the_fast_path_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    compiled: list[nn.Module] = []
    monkeypatch.setattr(fast, "compile_for_inference", lambda m: compiled.append(m) or m)
    monkeypatch.setenv(COMPILE_ENV, "1")
    model = prepare_for_inference(conv_bn(), "cpu", fast=False)
    assert compiled == [] and not model.training
    model = prepare_for_inference(conv_bn(), "cpu", fast=True)
    assert compiled == [model] and model[0].weight.is_contiguous(memory_format=torch.channels_last)
    # the argument overrides the environment
    prepare_for_inference(conv_bn(), "cpu", fast=True, compiled=False)
    assert len(compiled) == 1
    monkeypatch.delenv(COMPILE_ENV)
    prepare_for_inference(conv_bn(), "cpu", fast=True)
    assert len(compiled) == 1


def test_detector_compiles_trunk_and_box_head_only() -> None:
    detector = build_detector(DetectorConfig(backbone="mobilenet_v2_tiny", pretrained=None))
    assert compiled_parts(detector) == [detector.backbone, detector.roi_heads.box_head]
    model = conv_bn()
    assert compiled_parts(model) == [model]


def test_missing_cpp_compiler_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fast.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match=r"C\+\+ compiler.*g\+\+.*PERSONSEARCH_COMPILE"):
        compile_for_inference(conv_bn())


@pytest.mark.skipif(
    fast.cpp_compiler() is None, reason="torch.compile on CPU needs a C++ compiler (apt-get install g++)"
)
def test_compiled_model_matches_eager_and_keeps_its_state_dict_keys() -> None:
    eager = conv_bn().eval()
    compiled = prepare_for_inference(conv_bn(), "cpu", fast=True, compiled=True)
    assert list(compiled.state_dict()) == list(eager.state_dict())
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = eager(x)
        torch.testing.assert_close(
            compiled(x.contiguous(memory_format=torch.channels_last)), expected, rtol=1e-4, atol=1e-5
        )
        torch.testing.assert_close(
            compiled(x[:1].contiguous(memory_format=torch.channels_last)), expected[:1], rtol=1e-4, atol=1e-5
        )


@pytest.mark.parametrize(("ampere", "dtype"), [(True, torch.bfloat16), (False, torch.float16)])
def test_gpu_mixed_precision_is_bf16_only_where_the_gpu_computes_it(
    monkeypatch: pytest.MonkeyPatch, ampere: bool, dtype: torch.dtype
) -> None:
    """A GPU before Ampere can only emulate bf16, yet PyTorch's ``is_bf16_supported()`` says yes
    by default: such a GPU gets fp16 autocast with an active GradScaler, and the mixed-precision
    engine still runs there (the CPU's "no native bf16" refusal is not for GPUs)."""
    from personsearch.models import engines

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(
        torch.cuda, "is_bf16_supported", lambda including_emulation=True: ampere or including_emulation
    )
    assert fast.native_bf16("cuda") is ampere
    assert fast.autocast_dtype("cuda") == dtype
    assert fast.grad_scaler_for("cuda").is_enabled() is (dtype == torch.float16)
    assert not fast.grad_scaler_for("cuda", enabled=False).is_enabled()
    assert engines.unavailable("torch-bf16", "cuda") is None
    assert "run on the CPU" in str(engines.unavailable("ov-bf16", "cuda"))
