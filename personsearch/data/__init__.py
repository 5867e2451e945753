"""Benchmark data: loaders for CUHK-SYSU and PRW that return the shared records (records.py).

``load_dataset`` recognises the layout from the files present, so every command takes just a
dataset root.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from personsearch.data.cuhk_sysu import IMAGES_MAT, load_cuhk_sysu
from personsearch.data.matfile import DatasetFormatError
from personsearch.data.prw import ANNOTATION_DIR, TEST_MAT, load_prw
from personsearch.data.records import PersonSearchDataset

__all__ = ["DatasetFormatError", "detect_layout", "load_cuhk_sysu", "load_dataset", "load_prw"]

_KINDS = {"cuhk": "cuhk", "cuhk-sysu": "cuhk", "cuhk_sysu": "cuhk", "prw": "prw"}


def detect_layout(root: str | Path) -> str:
    """``"cuhk"`` if ``root`` holds ``annotation/Images.mat``, ``"prw"`` if it holds ``frame_test.mat``
    and ``annotations/``; otherwise a ``DatasetFormatError`` naming what was looked for."""
    root = Path(root).expanduser()
    cuhk = (root / IMAGES_MAT).is_file()
    prw = (root / TEST_MAT).is_file() and (root / ANNOTATION_DIR).is_dir()
    if cuhk != prw:
        return "cuhk" if cuhk else "prw"
    expected = f"a CUHK-SYSU root ({IMAGES_MAT}) or a PRW root ({TEST_MAT} and {ANNOTATION_DIR}/)"
    if cuhk:
        found = "both layouts"
        fix = "pass kind='cuhk' or kind='prw'"
    else:
        found = "no such directory" if not root.is_dir() else "neither"
        fix = "point to the folder that directly contains annotation/ (CUHK-SYSU) or frames/ (PRW)"
    raise DatasetFormatError(root, expected, found, fix)


def load_dataset(
    root: str | Path, kind: str | None = None, *, gallery_sizes: Sequence[int] | None = None
) -> PersonSearchDataset:
    """Load a CUHK-SYSU or PRW dataset; ``kind`` (``cuhk`` / ``prw``) overrides the layout detection.

    ``gallery_sizes`` is passed to ``load_cuhk_sysu`` (which ``TestG{G}.mat`` files to read).
    """
    if kind is None:
        resolved = detect_layout(root)
    elif kind.lower() in _KINDS:
        resolved = _KINDS[kind.lower()]
    else:
        raise ValueError(f"unknown dataset kind {kind!r}; use one of {sorted(_KINDS)} or None to detect it")
    if resolved == "cuhk":
        return load_cuhk_sysu(root, gallery_sizes=gallery_sizes)
    if gallery_sizes is not None:
        raise ValueError("gallery_sizes applies to CUHK-SYSU only; PRW's gallery is every test frame")
    return load_prw(root)
