"""The figure tables of README.md and docs/*.md are what their results files give
(``benchmarks/doc_tables.py``): a figure typed by hand, or a results file re-run without
regenerating the tables, fails here."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "doc_tables.py"


def _check(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--check", "--root", str(root)],
        capture_output=True,
        text=True,
        check=False,
    )


def _copy_docs(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    shutil.copytree(ROOT / "docs", tmp_path / "docs", ignore=shutil.ignore_patterns("*.png", "*.jpg"))
    shutil.copytree(ROOT / "benchmarks" / "results", tmp_path / "benchmarks" / "results")
    return tmp_path


def test_every_table_matches_its_results_files() -> None:
    result = _check(ROOT)
    assert result.returncode == 0, (
        f"tables differ from their results files; run `python benchmarks/doc_tables.py`:\n{result.stderr}"
    )


def test_a_hand_edited_figure_fails_the_check(tmp_path: Path) -> None:
    root = _copy_docs(tmp_path)
    readme = root / "README.md"
    text = readme.read_text()
    block = re.search(r"<!-- table:readme-distributed .*?<!-- /table:readme-distributed -->", text, re.S)
    assert block is not None, "README.md lost its indexing table's markers"
    edited = block.group(0).replace("1.00x", "1.50x", 1)
    assert edited != block.group(0)
    readme.write_text(text.replace(block.group(0), edited))
    result = _check(root)
    assert result.returncode == 1
    assert "readme-distributed" in result.stderr and "differs" in result.stderr

    # writing the tables puts the figure back
    subprocess.run(
        [sys.executable, str(SCRIPT), "--root", str(root)], capture_output=True, text=True, check=True
    )
    assert readme.read_text() == text
    assert _check(root).returncode == 0


def test_a_changed_results_file_fails_the_check(tmp_path: Path) -> None:
    root = _copy_docs(tmp_path)
    results = root / "benchmarks" / "results" / "distributed_indexing.json"
    results.write_text(results.read_text().replace('"images_per_s": 5.68', '"images_per_s": 6.68', 1))
    result = _check(root)
    assert result.returncode == 1 and "readme-distributed" in result.stderr


def test_markers_without_code_and_tables_without_markers_fail(tmp_path: Path) -> None:
    root = _copy_docs(tmp_path)
    readme = root / "README.md"
    text = readme.read_text()
    readme.write_text(text + "\n<!-- table:no-such-table -->\n| a |\n|---|\n<!-- /table:no-such-table -->\n")
    result = _check(root)
    assert result.returncode == 1 and "no-such-table" in result.stderr

    stripped = re.sub(r"<!-- table:readme-10m .*?<!-- /table:readme-10m -->", "", text, flags=re.S)
    readme.write_text(stripped)
    result = _check(root)
    assert result.returncode == 1 and "readme-10m" in result.stderr and "no markers" in result.stderr


def test_every_figure_of_the_performance_log_is_in_a_results_file_it_names() -> None:
    """docs/performance-log.md's prose and hand-written tables (not generated): each figure is
    found in a results file its entry names, in the version at the commit the entry names where
    the file has changed since, or is derived from such figures (benchmarks/performance_log_audit.py)."""
    import pytest

    shallow = subprocess.run(
        ["git", "rev-parse", "--is-shallow-repository"], capture_output=True, text=True, cwd=ROOT, check=False
    )
    if shallow.returncode != 0 or shallow.stdout.strip() != "false":
        pytest.skip(
            "the audit reads the results files' git history; this checkout has none, or a shallow one"
        )
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "performance_log_audit.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
