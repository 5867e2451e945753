"""PRW loader: frames, per-frame ``.jpg.mat`` annotations and ``query_info.txt`` as records.

It applies the reference loaders' rounding rules (SeqNet / COAT; docs/specs/benchmarks.md section 2)
so boxes are pixel-identical to theirs:

* annotation rows ``[id, x, y, w, h]``: clip all four of ``x, y, w, h`` at 0, then
  ``x2 = x + w, y2 = y + h`` in float, then truncate to int32; id ``-2`` is ``UNLABELED``;
* query boxes: ``int32([x, y, x + w, y + h])`` first, then clipped at 0;
* camera = the digit of the first ``c<digit>`` in the frame name.

The search gallery is every test frame (``frame_test.mat`` order) but the query's own, so PRW
queries carry no per-query galleries.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from personsearch.data.matfile import DatasetFormatError, MatReader, check_files_exist, read_mat_variable
from personsearch.data.records import UNLABELED, PersonSearchDataset, Query, Scene

FRAME_DIR = Path("frames")
ANNOTATION_DIR = Path("annotations")
TRAIN_MAT = Path("frame_train.mat")
TEST_MAT = Path("frame_test.mat")
QUERY_INFO = Path("query_info.txt")
BOX_VARIABLES: tuple[str, ...] = ("box_new", "anno_file", "anno_previous")
"""Annotation variable names, in the order the reference loaders try them."""
PRW_UNLABELED = -2
"""The id PRW uses for a person whose identity is unknown."""

_CAMERA = re.compile(r"c(\d)")


def _fix(root: Path, relative: Path) -> str:
    return (
        f"re-download/unpack PRW-v16.04.20 so that {root / relative} is the official file "
        "(or rewrite the annotations with personsearch.data.writers.write_prw)"
    )


def annotation_path(name: str) -> Path:
    """Relative path of a frame's annotation file (``annotations/<name>.mat``, e.g.
    ``c1s1_000151.jpg.mat``)."""
    return ANNOTATION_DIR / f"{name}.mat"


def camera_of(name: str, source: Path) -> int:
    """Camera id of a PRW frame name (``c3s1_...`` -> 3); ``source`` is named if there is none."""
    match = _CAMERA.search(name)
    if match is None:
        raise DatasetFormatError(
            source,
            "frame names like c{cam}s{seq}_{frame:06d} (e.g. c1s3_016471)",
            repr(name),
            "rename the frame so it carries its camera, as the official PRW frames do",
        )
    return int(match.group(1))


def _frame_list(root: Path, relative: Path, variable: str) -> list[str]:
    """Frame file names (``<frame>.jpg``) of a ``frame_*.mat`` cell (Nx1 officially; 1xN accepted)."""
    fix = _fix(root, relative)
    _, value = read_mat_variable(root / relative, variable, fix=fix)
    reader = MatReader(root / relative, fix)
    cells = reader.cells(value, variable)
    return [reader.string(cell, f"{variable}{{{k}}}") + ".jpg" for k, cell in enumerate(cells, start=1)]


def _scene(root: Path, name: str) -> Scene:
    relative = annotation_path(name)
    fix = _fix(root, relative)
    variable, value = read_mat_variable(root / relative, BOX_VARIABLES, fix=fix)
    rows = MatReader(root / relative, fix).matrix(value, f"{variable} ([id x y w h] rows)", 5)
    boxes = np.clip(rows[:, 1:], 0, None)  # [x, y, w, h], all four clipped
    boxes[:, 2:] += boxes[:, :2]
    pids = rows[:, 0].astype(np.int64)
    pids[pids == PRW_UNLABELED] = UNLABELED
    return Scene(
        name, root / FRAME_DIR / name, boxes.astype(np.int32), pids, camera_of(name, root / relative)
    )


def _parse_query(root: Path, number: int, line: str) -> Query:
    path, fix = root / QUERY_INFO, _fix(root, QUERY_INFO)
    fields = line.split()
    expected = "6 space-separated fields 'pid x y w h frame' per line"
    if len(fields) != 6:
        raise DatasetFormatError(path, expected, f"{len(fields)} fields on line {number}: {line!r}", fix)
    try:
        pid = int(fields[0])
        x, y, w, h = (float(v) for v in fields[1:5])
    except ValueError:
        expected += " with an integer pid and numeric x y w h"
        raise DatasetFormatError(path, expected, f"line {number}: {line!r}", fix) from None
    box = np.clip(np.array([x, y, x + w, y + h]).astype(np.int32), 0, None)
    name = fields[5] + ".jpg"
    return Query(name, root / FRAME_DIR / name, box, pid, camera_of(name, path))


def _load_queries(root: Path) -> list[Query]:
    path, fix = root / QUERY_INFO, _fix(root, QUERY_INFO)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise DatasetFormatError(path, "the query list", "no such file", fix) from None
    except UnicodeDecodeError as err:
        raise DatasetFormatError(path, "a UTF-8 text file", f"undecodable bytes ({err})", fix) from None
    # splitlines + split() handle the official CRLF endings as well as LF (the reference loaders'
    # ``name[:-2]`` works only with CRLF).
    return [_parse_query(root, n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]


def load_prw(root: str | Path) -> PersonSearchDataset:
    """Load PRW from ``root`` (the folder holding ``frames/``, ``annotations/`` and ``frame_*.mat``).

    Raises ``DatasetFormatError`` for a missing or malformed file.
    """
    root = Path(root).expanduser().resolve()
    train_names = _frame_list(root, TRAIN_MAT, "img_index_train")
    test_names = _frame_list(root, TEST_MAT, "img_index_test")
    queries = _load_queries(root)
    frames = train_names + test_names
    check_files_exist(
        root / FRAME_DIR,
        frames + [q.name for q in queries],
        "frame_train.mat, frame_test.mat and query_info.txt",
        _fix(root, FRAME_DIR),
    )
    check_files_exist(
        root / ANNOTATION_DIR,
        [annotation_path(n).name for n in frames],
        "frame_train.mat and frame_test.mat",
        _fix(root, ANNOTATION_DIR),
    )
    return PersonSearchDataset(
        name="PRW",
        root=root,
        protocol="prw",
        train=[_scene(root, name) for name in train_names],
        gallery=[_scene(root, name) for name in test_names],
        queries=queries,
    )
