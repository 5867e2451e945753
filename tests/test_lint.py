"""The code stays lint-clean and formatted (ruff) and the layers mypy covers stay type-clean
(both configured in pyproject.toml; the benchmarks' mypy in benchmarks/mypy.ini), so a slip fails
the suite here rather than piling up."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed: pip install -e '.[test]'")
    return found


@pytest.mark.parametrize("args", [["check", "."], ["format", "--check", "."]], ids=["lint", "format"])
def test_ruff(args: list[str]) -> None:
    result = subprocess.run([_tool("ruff"), *args], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, (
        f"ruff {' '.join(args)} found problems (fix with `ruff check --fix . && ruff format .`):\n"
        f"{result.stdout}{result.stderr}"
    )


def test_mypy() -> None:
    result = subprocess.run([_tool("mypy")], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"mypy found type errors:\n{result.stdout}{result.stderr}"


def test_mypy_benchmarks() -> None:
    """The benchmarks are scripts that import each other by sys.path, so mypy checks them from
    their own directory, with its config (benchmarks/mypy.ini: not strict)."""
    result = subprocess.run(
        [_tool("mypy")], cwd=ROOT / "benchmarks", capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"mypy found type errors in benchmarks/:\n{result.stdout}{result.stderr}"


def test_layers() -> None:
    """data < models < pipeline < index < training | evaluation < interfaces (pyproject.toml's
    import-linter contract): nothing imports upward."""
    result = subprocess.run([_tool("lint-imports")], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"an import breaks the layers:\n{result.stdout}{result.stderr}"
