"""Reading MATLAB ``.mat`` annotation files with errors a user can act on.

CUHK-SYSU and PRW ship their annotations as MATLAB files whose nesting (struct arrays, cells of
structs, char arrays) is easy to get subtly wrong. Every read and every structural access goes
through here so that a bad file always raises ``DatasetFormatError`` naming the file, what was
expected, what was found and how to fix it, instead of an ``IndexError`` deep in a loader.

``scipy.io.loadmat`` never unpickles: cells and structs come back as numpy object / structured
arrays built from the MATLAB byte stream.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import scipy.io


class DatasetFormatError(ValueError):
    """A benchmark file that is missing or does not have the layout the benchmark defines."""

    def __init__(self, path: str | Path, expected: str, found: str, fix: str) -> None:
        self.path = Path(path)
        self.expected = expected
        self.found = found
        self.fix = fix
        super().__init__(f"{path}: expected {expected}, found {found}; {fix}")

    def __reduce__(self) -> tuple[type, tuple[Path, str, str, str]]:
        # rebuild from the four parts (the default would call __init__ with the message only)
        return type(self), (self.path, self.expected, self.found, self.fix)


def read_mat_variable(path: str | Path, names: str | Sequence[str], *, fix: str) -> tuple[str, np.ndarray]:
    """Load the first of ``names`` that the MATLAB file holds; return ``(name, value)``.

    ``fix`` tells the user how to repair a missing or broken file (e.g. which archive to unpack).
    """
    path = Path(path)
    wanted = [names] if isinstance(names, str) else list(names)
    wanted_text = " or ".join(repr(n) for n in wanted)
    if not path.is_file():
        found = "a directory" if path.is_dir() else "no such file"
        raise DatasetFormatError(path, f"a MATLAB file with variable {wanted_text}", found, fix)
    try:
        content = scipy.io.loadmat(str(path), appendmat=False, variable_names=wanted)
    except NotImplementedError as err:  # scipy's answer to MATLAB v7.3 (HDF5) files
        raise DatasetFormatError(
            path,
            "a MATLAB v4-v7.2 file",
            f"an unsupported format ({err})",
            f"re-save it with save(..., '-v7'); {fix}",
        ) from None
    except Exception as err:  # loadmat reports corrupt data with many exception types
        raise DatasetFormatError(
            path, "a MATLAB .mat file", f"unreadable data ({type(err).__name__}: {err})", fix
        ) from None
    for name in wanted:
        if name in content:
            return name, content[name]
    present = [name for name, _, _ in scipy.io.whosmat(str(path))]
    raise DatasetFormatError(path, f"variable {wanted_text}", f"variables {present or 'none'}", fix)


def check_files_exist(folder: Path, names: Sequence[str], listed_in: str, fix: str) -> None:
    """Fail if any of ``names`` is not a file in ``folder``, naming the first few missing ones.

    One directory listing instead of one ``stat`` per file keeps this fast for ~20k images.
    """
    if not folder.is_dir():
        raise DatasetFormatError(
            folder, f"a directory with the {len(names)} files listed in {listed_in}", "no such directory", fix
        )
    present = {entry.name for entry in os.scandir(folder) if entry.is_file()}
    missing = [name for name in names if name not in present]
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise DatasetFormatError(
            folder, f"the {len(names)} files listed in {listed_in}", f"{len(missing)} missing ({shown})", fix
        )


class MatReader:
    """Structural accessors for one loaded file: each failure names the file and the element.

    ``where`` arguments are MATLAB-style paths such as ``TestG50(3).Gallery(7).idlocate`` so the
    user can find the offending element in MATLAB or with scipy.
    """

    def __init__(self, path: str | Path, fix: str) -> None:
        self.path = Path(path)
        self.fix = fix

    def error(self, where: str, expected: str, found: str) -> DatasetFormatError:
        """An error about element ``where`` of this file."""
        return DatasetFormatError(self.path, f"{where} to be {expected}", found, self.fix)

    def structs(self, value: object, where: str, fields: int) -> list[np.void]:
        """Elements of a struct array (any shape) that has at least ``fields`` fields."""
        array = np.asarray(value)
        names = array.dtype.names
        if names is None:
            raise self.error(where, "a struct array", describe(array))
        if len(names) < fields:
            raise self.error(where, f"a struct with at least {fields} fields", f"fields {list(names)}")
        return list(array.ravel())

    def struct(self, value: object, where: str, fields: int) -> np.void:
        """The one element of a 1x1 struct with at least ``fields`` fields."""
        elements = self.structs(value, where, fields)
        if len(elements) != 1:
            raise self.error(where, "a 1x1 struct", describe(np.asarray(value)))
        return elements[0]

    def struct_field(self, value: object, name: str, where: str) -> np.ndarray:
        """Field ``name`` of a struct array, as an object array of the array's shape."""
        array = np.asarray(value)
        names = array.dtype.names
        if names is None or name not in names:
            found = describe(array) if names is None else f"fields {list(names)}"
            raise self.error(where, f"a struct array with field {name!r}", found)
        return array[name]

    def cells(self, value: object, where: str) -> list[object]:
        """Elements of a cell array (any shape)."""
        array = np.asarray(value)
        if array.dtype != object or array.dtype.names is not None:
            raise self.error(where, "a cell array", describe(array))
        return list(array.ravel())

    def string(self, value: object, where: str) -> str:
        """A MATLAB char row (possibly wrapped in a 1x1 cell) as a Python string."""
        array = np.asarray(value)
        while array.dtype == object and array.size == 1:
            array = np.asarray(array.ravel()[0])
        if array.dtype.kind == "U" and array.size <= 1:
            return str(array.ravel()[0]) if array.size else ""
        raise self.error(where, "a char row (a name)", describe(array))

    def numbers(
        self, value: object, where: str, size: int | None = None, *, allow_empty: bool = False
    ) -> np.ndarray:
        """A numeric array flattened to 1-D (float64), optionally of exactly ``size`` values."""
        array = np.asarray(value)
        if array.dtype.kind not in "biuf":
            raise self.error(where, "numeric", describe(array))
        flat = array.astype(np.float64).ravel()
        if allow_empty and flat.size == 0:
            return flat
        if size is not None and flat.size != size:
            raise self.error(where, f"{size} numbers" + (" or empty" if allow_empty else ""), describe(array))
        return flat

    def matrix(self, value: object, where: str, columns: int) -> np.ndarray:
        """A numeric ``n x columns`` matrix (float64); an empty array counts as 0 rows."""
        array = np.asarray(value)
        if array.dtype.kind not in "biuf":
            raise self.error(where, f"a numeric n x {columns} matrix", describe(array))
        if array.size == 0:
            return np.zeros((0, columns))
        if array.ndim != 2 or array.shape[1] != columns:
            raise self.error(where, f"a numeric n x {columns} matrix", describe(array))
        return array.astype(np.float64)


def describe(array: np.ndarray) -> str:
    """Short description of a loaded MATLAB value for error messages."""
    shape = "x".join(str(s) for s in array.shape) or "scalar"
    if array.dtype.names is not None:
        return f"a {shape} struct with fields {list(array.dtype.names)}"
    kind = {"O": "cell", "U": "char"}.get(array.dtype.char, f"{array.dtype} array")
    return f"a {shape} {kind}"
