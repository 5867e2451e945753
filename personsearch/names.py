"""The names a user picks things by: ``--engine``, ``--detector``, ``--variant``.

One table per kind, each name with what it stands for. Free of PyTorch, so that the command
line's help, ``personsearch models`` and the error messages list them without loading a model;
the modules that build what a name stands for read their names from here (``models.engines``,
``models.external_detectors``, ``models.reid``), so a name is added in one place.
"""

from __future__ import annotations

ENGINES: dict[str, str] = {
    "torch-fp32": "PyTorch fp32 eager, contiguous tensors (the reference)",
    "torch-fp32-cl": "PyTorch fp32, channels_last",
    "torch-bf16": (
        "PyTorch bf16 autocast + channels_last (native bf16 CPUs: AVX-512 BF16 / AMX; CUDA, "
        "in fp16 on GPUs without bf16)"
    ),
    "torch-compile": "torch.compile (inductor, frozen weights) on the fp32 or bf16 path (opt-in, needs g++)",
    "ort-fp32": "ONNX Runtime fp32",
    "ort-int8": "ONNX Runtime int8, static QDQ quantisation (re-id; the detector runs ort-fp32)",
    "ov-bf16": "OpenVINO bf16 (native bf16 CPUs; pip install openvino)",
    "ov-bf16-head": (
        "the detector's trunk and RPN head on ONNX Runtime fp32, its C4 box head on OpenVINO bf16 "
        "(detector only; the re-id network runs ort-fp32)"
    ),
    "ort-int8-head": (
        "the detector's trunk and RPN head on ONNX Runtime fp32, its C4 box head on ONNX Runtime int8 "
        "(detector only; the re-id network runs ort-fp32)"
    ),
}
"""Every engine name, with what it runs."""

DETECTORS: dict[str, str] = {
    "bundle": "the model's own detector",
    "hog": "OpenCV's HOG + linear SVM people detector (off-the-shelf, for real footage)",
    "ssdlite": "SSDLite MobileNetV2 pedestrian detector in cv2.dnn (off-the-shelf, for real footage)",
}
"""Every detector an index can be built with: the bundle's own or one that replaces it."""

VARIANTS: dict[str, str] = {
    "single": "one embedding from the last pyramid level (the baseline)",
    "multi": "an embedding per pyramid level, concatenated, each level trained on its own",
    "clsa": "multi, plus the paper's cross-level semantic alignment (CLSA) loss",
    "image_pyramid": (
        "single, applied to each crop at several input scales (model.scales), features fused "
        "(model.fuse); trained with multi-scale crops: the image-pyramid baseline"
    ),
    "multi_branch": (
        "one copy of the upper layers per person-height band (model.bands), each trained on its "
        "band's crops, features fused (model.fuse): the multi-branch baseline"
    ),
}
"""The re-id network's variants (Lan et al., ECCV 2018)."""


def one_of(table: dict[str, str]) -> str:
    """The table's names for a sentence: ``a, b or c``."""
    names = list(table)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
