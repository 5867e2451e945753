"""Check docs/performance-log.md's figures against the results files its entries name.

    python benchmarks/performance_log_audit.py          # writes results/performance_log_audit.json
    python benchmarks/performance_log_audit.py --check  # exit 1 on a figure no named file holds

Each ``## `` entry names its results files (``engines-5a282d6e6508.json``). Every figure of the
entry's prose and hand-written tables (a number with a unit: ``5.64x``, ``99.1 %``, ``39.4 ms``,
``9.87 px``, ``169.3 GFLOP/s``, ``7.6 scenes/s``; any decimal; any number in a table cell) is looked
for in every committed version of those files (``git log --follow -M100%``, newest first). A figure
matches a value of its kind (a ratio a speed-up field, ``ms`` a time, ``%`` a share times 100, ...)
that rounds to it at the precision shown, or one derived as the log derives it (an engine's GFLOP/s
and share of the file's fp32 peak, a profiled part's PyTorch / ONNX Runtime ratio). Where several
values match, the one whose JSON path shares most words with the figure's context is reported.

Per figure: ``current`` (the file as it is now holds it), ``older`` (only an older version does:
its commit, which the entry must name as "at commit ...", or ``--check`` fails), ``derived``
(arithmetic on file values the log states, listed in ``DERIVED`` with how) or ``not found``.
Numbers that are not measurements are skipped (``NOT_MEASURED``): dates, versions, code, sizes,
settings, targets and the accuracy rule's thresholds. Bare whole numbers in prose (counts,
settings) are not checked.
The machine is not recorded: this reads text and files, it measures nothing.
"""

from __future__ import annotations

import argparse
import bisect
import json
import math
import re
import subprocess
import sys
import time
from typing import Any

from run_info import RESULTS, ROOT, commit, write_results

DOC = ROOT / "docs" / "performance-log.md"
OUT = RESULTS / "performance_log_audit.json"

NUMBER = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"
UNITS = r"%|ms|s|px|GFLOP/s|GHz|(?:crops|scenes|images|scene images)/s"
FIGURE = re.compile(
    rf"(?<![\w.\-/^±])-?(?P<a>{NUMBER})(?:-(?P<b>{NUMBER}))?"
    rf"(?:(?P<x>x)|\s?(?P<unit>{UNITS}))?(?!\w|\.\d)"
)
THEN = re.compile(
    rf"\s*(?:->|/|and|against)\s*-?{NUMBER}\s?(ms|s|px|GFLOP/s|(?:crops|scenes|images)/s)(?!\w|\.\d)"
)
"""A figure without a unit takes the next one's time or rate: "12.2 -> 4.4 ms", "2.4 / 2.2 ms"."""

NOT_MEASURED = (
    r"\d+ cores at [\d.]+ GHz|\d+ cores|`[^`]*`|\[[^\]]*\]\([^)]*\)|\d{4}-\d\d-\d\d|\d{1,2}:\d\d",
    r"\d+\.\d+\.\d+|OpenVINO \d{4}\.\d|NNCF \d\.\d",
    r"\d+ ?x ?\d+(?: x \d+)?|\d+\^\d+|\d+(?:\.\d+)?e-\d+|revisions? \d+(?:-\d+)?|Zen \d|family \d+|model \d+",
    r"\d+-bit|\d+ (?:threads?|cores?|rounds?|lanes|passes)|batch \d+|\d+ px, batch|\d+ FLOP|top-\d|\(¹\)",
    r"\d+ (?:min|MB)\b|people \d+-\d+ px|percentile [\d.]+ and [\d.]+",
    # targets the issue set and the accuracy rule's thresholds, not measurements
    r">= [\d.]+x|(?:target is|not|short of|reaches) 2(?:\.5)?x\b|the [\d.]+x (?:that|target|the target)",
    r">= [\d.]+ %|[\d.]+ % margin|rule's 99 %|(?:median|min) >= 0\.9\d|NN >= \d+ %|0\.99 of the cosine",
    r"for >= 98 %|keep 98 % of|\"99 % matched\"|(?:over|above|pass|past) 100 %|at least 10 % faster",
    r"IoU >= 0\.9",
    r"[\d.]+x would need",
)
"""Spans whose numbers are not measurements: code, links, dates, times of day, versions, sizes,
settings (threads, rounds, batch size, training image size), targets and the rule's thresholds."""

DERIVED = {
    r"really at 84-100 % and 52-68 %": "twice revision 6's shares of 332 GFLOP/s (engines-8343691b85f8)",
    r"\d+ % of it convolutions": "box_head_operators_ms: Conv's share of the operators' total",
    r"were 1\.6-1\.7x faster": "chosen box head's x_fp32 / ort-fp32's: 6.60 / 3.99 (engines-2fae6af81ceb), "
    "6.01 / 3.81 (engines-8343691b85f8)",
    r"runs at 95 % of that": "178 GFLOP/s (ort-fp32, reid-resnet50) / best 188 (cpu_peak-9adbcc2d45e9)",
    r"\(208 GFLOP/s against": "2.5 x PyTorch fp32's 83 GFLOP/s (reid-resnet50, engines-9adbcc2d45e9)",
    r"ran 1\.50x ONNX Runtime": "ort-int8-head's x_fp32 / ort-fp32's, shipped detector: 3.29 / 2.19",
    r"2\.3x faster than contiguous bf16 \(2\.2x fp32\), the MobileNetV2 detector's 1\.22x": "median "
    "images/s of fast+channels_last / fast, / fp32 (speed-train-08b017f199cd)",
    r"gained 1\.09x / 1\.05x": "fast + channels_last everywhere / fast: 3.42 / 3.13, 2.18 / 2.08 (speed)",
    r"1\.11x / 1\.13x here|1\.13x / 0\.93x with": "median over rounds of the speed-ups with / without "
    "channels_last",
    r"moved 2\.6 % of": "100 % - the 7-bit grid's 97.4 % matched (int8_box_head-8343691b85f8)",
    r"for 1\.6x on a network": "ov-bf16 / ort-fp32, shipped re-id: 10.7 / 6.80 (engines-8afff8234bf6)",
    r"costs 2\.1-2\.5 mAP": "mAP_difference of ort-int8: -2.06 (detections), -2.50 (ground-truth boxes)",
    r"move 6-9 % of": "100 % - nn_same of 'every convolution fp32': 94 % (other people), 91 % (check)",
    r"imply ~3\.6 GHz": "138 % of the peak at 2.6 GHz",
    r"at most 42 %": "ort-fp32's 105.6 % of peak / 2.5",
    r"~118 GFLOP/s, 75 %": "17.06 GFLOP / Conv's 144.6 ms, / 157 GFLOP/s",
    r"\d+ % of it\s+is the C4|\d+ % is RoIAlign": "roi_part_operators_ms: Conv's, RoiAlign's share of all",
    r"~1\.5x over ONNX Runtime": "x ORT fp32 of the s8 rows above: 1.48-1.56x",
    r"within 0\.2x": "largest x_ort_fp32 difference of the two files: entropy, 1.02 against 0.83",
    r"0\.040 -> 0\.023, min 0\.100 -> 0\.049": "1 - the table's cosines: 0.960 / 0.900, 0.977 / 0.951",
    r"is 3\.5 queries": "350 queries / 100",
    r"loses 2\.6-2\.7 mAP|0\.7 mAP below|change 23 %": "differences of the table's figures (int8_distill)",
    r"within 0\.02 in agreement": "the other rows' agreement equals the table's (int8_settings-16cb7b3fc4a5)",
}
"""Figures the log computes from file values, by a pattern of the text around them: how."""

KINDS = {
    "x": r"(?:^|[._ ])x(?:_|$)|speed|torch/ort| text$",
    "ms": r"ms\b",
    "s": r"seconds|(?<!per)_s$|wall",
    "px": r"px|shift",
    "GFLOP/s": r"gflops",
    "GHz": r"ghz| text$",
    "rate": r"per_s|rates?\b|median$",
}
"""Which values a figure with a unit may match, by the end of the value's JSON path."""
SCALES = {"%": (1.0, 100.0), "ms": (1.0, 1000.0), "": (1.0, 100.0)}
"""How a figure may read a value besides as it is: a share as a percentage, seconds as ms."""
WORDS = {
    "re-id": "reid",
    "resnet-50": "resnet50",
    "mobilenetv2": "mobilenet",
    "onnx runtime": "ort",
    "openvino": "ov-bf16",
    "box head": "head",
    "shipped": "bundle",
    "nn": "nn_same",
    "top-1": "top1",
    "ground-truth": "gt_boxes",
    "pytorch": "torch",
    "channels_last": "cl",
}
"""The log's words for what the results files' keys call otherwise (for choosing among matches)."""


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout


def versions(name: str) -> list[tuple[str, str, Any]]:
    """Every committed version of ``benchmarks/results/<name>``, newest first: (commit, date, JSON),
    through exact renames only (``-M100%``: several per-CPU files began as near-copies of others)."""
    path = f"benchmarks/results/{name}"
    log = git("log", "--follow", "-M100%", "--format=%h %as", "--name-only", "--", path)
    lines = [line for line in log.splitlines() if line]
    out = []
    for head, path in zip(lines[::2], lines[1::2], strict=True):
        rev, date = head.split()
        out.append((rev, date, json.loads(git("show", f"{rev}:{path}"))))
    return out


def values(data: Any, path: str = "") -> list[tuple[str, float]]:
    """Every number in a results file (numeric keys, and numbers inside strings such as a note's
    "2.60 GHz" or a choice's "6.1x fp32", included), and the figures derived from them."""
    if isinstance(data, bool):
        return []
    if isinstance(data, (int, float)):  # the reference's own 1.0x is no figure
        reference = path.endswith(("torch-fp32.x_fp32", "ort-fp32.x_ort_fp32"))
        return [(path, float(data))] if math.isfinite(data) and not reference else []
    if isinstance(data, str):
        return [(f"{path} text", float(n)) for n in re.findall(r"\d+(?:\.\d+)?", data)]
    if isinstance(data, list):
        return [v for i, item in enumerate(data) for v in values(item, f"{path}[{label(item, i)}]")]
    if not isinstance(data, dict):
        return []
    out = [v for key, item in data.items() if key != "per_query" for v in values(item, f"{path}.{key}")]
    out += [(f"{path}.{key} key", float(key)) for key in data if re.fullmatch(r"\d+\.\d+", key)]
    peak = data.get("peak_gflops") or data.get("nominal_peak_gflops")
    for case in data["cases"] if isinstance(data.get("cases"), list) else []:
        for engine, entry in case.get("engines", {}).items():
            if case.get("flops_per_item") and entry.get("per_s") and peak:
                gflops = entry["per_s"] * case["flops_per_item"] / 1e9
                where = f"{path}.cases[{case['case']}].{engine}"
                out += [(f"{where} gflops", gflops), (f"{where} % of peak", 100 * gflops / peak)]
    for part, entry in data["parts"].items() if isinstance(data.get("parts"), dict) else []:
        if entry.get("torch_ms") and entry.get("ort_ms"):
            out.append((f"{path}.parts.{part} torch/ort", entry["torch_ms"] / entry["ort_ms"]))
        if entry.get("ort_gflops") and peak:
            out.append((f"{path}.parts.{part} % of peak", 100 * entry["ort_gflops"] / peak))
    if data.get("best_gflops") and peak:
        out.append((f"{path}.best_gflops % of peak", 100 * data["best_gflops"] / peak))
    return out


def label(item: Any, index: int) -> str:
    """A list item's name in a path: its case, name or part where it has one."""
    if isinstance(item, dict):
        return str(item.get("case") or item.get("name") or item.get("part") or index)
    return str(index)


class Version:
    """One committed version of a results file, its numbers sorted by absolute value."""

    def __init__(self, name: str, rev: str, date: str, latest: bool, data: Any) -> None:
        self.name, self.rev, self.date, self.latest = name, rev, date, latest
        self.sorted = sorted((abs(v), p) for p, v in values(data))

    def find(self, value: float, decimals: int, kind: str) -> list[str]:
        """The paths of the values a figure of ``kind`` shown with ``decimals`` may read."""
        tol = 0.5 * 10.0**-decimals + 1e-9
        found = []
        for scale in SCALES.get(kind, (1.0,)):
            i = bisect.bisect_left(self.sorted, ((value - tol) / scale, ""))
            while i < len(self.sorted) and self.sorted[i][0] * scale <= value + tol:
                path = self.sorted[i][1]
                if self.fits(path, kind, scale):
                    found.append(path + ("" if scale == 1.0 else f" (x {scale:g})"))
                i += 1
        return found

    @staticmethod
    def fits(path: str, kind: str, scale: float) -> bool:
        if kind == "ms" and scale == 1000.0:
            return bool(re.search(KINDS["s"], path))
        if scale == 100.0 and re.search(r" text$|^\.(?:machine|signature)|\.x_|\.x$|speed|count_ratio", path):
            return False  # a version, a speed-up or a count ratio is no share
        if kind in ("%", ""):
            return scale == 100.0 or not kind or path.endswith("% of peak")
        return bool(re.search(KINDS[kind], ".".join(path.rsplit(".", 2)[-2:]) if kind != "x" else path[-40:]))


def words(text: str) -> set[str]:
    """The words of a text or a JSON path, with the results files' names for the log's words."""
    text = text.lower()
    for said, key in WORDS.items():
        text = text.replace(said, f"{said} {key}")
    return set(re.findall(r"[a-z0-9]{2,}", text)) - {"the", "and", "of", "in", "at", "to"}


def score(text: str, context: set[str], path: str, version: Version) -> tuple[int, bool, int]:
    """How well a value fits a figure's context: its file named on its line (or before its table),
    then the words its JSON path shares with the context; then the file as it is now, then the
    shorter path (a median before a per-round value)."""
    return 10 * (version.name[:-5] in text) + len(context & words(path)), version.latest, -len(path)


def spaced(pattern: str) -> str:
    """A pattern whose spaces match a line break and its indent too."""
    return pattern.replace(" ", r"\s+")


def around(rows: list[str], i: int, table: bool) -> str:
    """Row ``i`` with its neighbours if it is prose (a unit, a setting or a pattern may go on across
    lines); a table row without its label (the label is no figure)."""
    if table:
        return " " * rows[i].index("|", 1) + rows[i][rows[i].index("|", 1) :]
    neighbours = [
        rows[j] if 0 <= j < len(rows) and not rows[j].startswith("|") else "" for j in (i - 1, i + 1)
    ]
    return f"{neighbours[0]} {rows[i]} {neighbours[1]}"


def figures(body: str, first_line: int) -> list[dict[str, Any]]:
    """Each figure to check in an entry: its line, text, value, decimals shown, kind, the text
    around it (the line with its neighbours in prose) and its context (for a table cell: the text
    before the table, the row's label and the column's head)."""
    out = []
    lines = body.splitlines()
    code = re.sub(r"`[^`]*`", lambda m: re.sub(r"[^\n]", " ", m.group()), body)  # a code span may wrap
    blanked = code.splitlines()
    rule = re.compile(r"\|(?:-+\|)+")
    header: list[str] = []
    caption = ""  # the files the text just before a table names
    for i, line in enumerate(lines[1:], 1):  # not the heading: its date and revision
        table = line.startswith("|")
        if table and (rule.fullmatch(line) or i + 1 < len(lines) and rule.fullmatch(lines[i + 1])):
            if not rule.fullmatch(line):
                header = line.split("|")
                caption = " ".join(re.findall(r"[\w.-]+\.json", " ".join(lines[max(1, i - 6) : i])))
            continue  # a table's header or its rule
        cells = line.split("|")
        text, masked = (around(rows, i, table) for rows in (lines, blanked))
        masked = re.sub(spaced("|".join(NOT_MEASURED)), lambda m: " " * len(m.group()), masked)
        start = 0 if table else len(lines[i - 1]) + 1 if not lines[i - 1].startswith("|") else 1
        end = start + len(line)
        for m in FIGURE.finditer(masked):
            if not start <= m.start() < end:
                continue
            unit = m["unit"] or m["x"] or ""
            if not unit and (then := THEN.match(masked, m.end())):
                unit = then[1]
            kind = "rate" if unit.endswith("/s") and unit != "GFLOP/s" else unit
            for raw in filter(None, (m["a"], m["b"])):
                if not kind and "." not in raw and "," not in raw and not table:
                    continue  # a bare whole number in prose: a count or a setting, not checked
                plain = raw.replace(",", "")
                if table:
                    at = text[: m.start()].count("|") + 1  # the label's "|" is blanked
                    column = header[at] if at < len(header) else ""
                    context = f"{caption} {cells[1]} {column} {cells[at] if at < len(cells) else ''}"
                else:
                    context = text[max(0, m.start() - 100) : m.end() + 40]
                out.append(
                    {
                        "line": first_line + i,
                        "figure": m.group().strip(),
                        "value": float(plain),
                        "decimals": len(plain.split(".")[1]) if "." in plain else 0,
                        "kind": kind,
                        "context": context,
                        "text": text,
                        "own": caption if table else line,
                        "at": m.start(),
                    }
                )
    return out


def check(figure: dict[str, Any], files: list[Version]) -> dict[str, Any]:
    row = {k: figure[k] for k in ("line", "figure", "value")} | {"kind": figure["kind"] or "number"}
    for pattern, how in DERIVED.items():
        if any(m.start() <= figure["at"] < m.end() for m in re.finditer(spaced(pattern), figure["text"])):
            return row | {"status": "derived", "how": how}
    context = words(figure["context"])
    value, decimals, kind = figure["value"], figure["decimals"], figure["kind"]
    found = [(path, v) for v in files for path in v.find(value, decimals, kind)]
    if found:
        path, version = max(found, key=lambda pv: score(figure["own"], context, *pv))
        status = "current" if version.latest else "older"
        return row | {"status": status, "file": version.name, "commit": version.rev, "path": path}
    return row | {"status": "not found"}


def audit(text: str) -> dict[str, Any]:
    entries = []
    cache: dict[str, list[Version]] = {}
    starts = [m.start() for m in re.finditer(r"(?m)^## ", text)]
    for start, end in zip(starts, [*starts[1:], len(text)], strict=True):
        body = text[start:end]
        names = sorted(set(re.findall(r"[\w.-]+\.json", body)))
        for name in names:
            if name not in cache:
                found = versions(name)
                cache[name] = [Version(name, r, d, i == 0, data) for i, (r, d, data) in enumerate(found)]
        files = [v for name in names for v in cache[name]]
        checked = [check(f, files) for f in figures(body, text.count("\n", 0, start) + 1)]
        for row in checked:
            if row["status"] == "older":
                row["commit_named"] = f"at commit {row['commit']}" in " ".join(body.split())
        entries.append(
            {
                "heading": body.splitlines()[0][3:],
                "files": {n: [f"{v.rev} {v.date}" for v in cache[n]] for n in names},
                "figures": checked,
            }
        )
    every = [f for e in entries for f in e["figures"]]
    counts = {s: sum(f["status"] == s for f in every) for s in ("current", "older", "derived", "not found")}
    unnamed = sum(f["status"] == "older" and not f["commit_named"] for f in every)
    return {"figures": len(every), **counts, "older_commit_not_named": unnamed, "entries": entries}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if a figure is in no named file")
    # (or only in an older version whose commit its entry does not name)
    args = parser.parse_args()
    report = audit(DOC.read_text())
    if not args.check:  # a check reads; it leaves the results file as it is
        write_results(
            OUT,
            {
                "benchmark": "performance_log_audit",
                "commit": commit(),
                "command": "python benchmarks/performance_log_audit.py",
                "date": time.strftime("%Y-%m-%d"),
                "document": str(DOC.relative_to(ROOT)),
                **report,
            },
        )
    print(
        f"{report['figures']} figures: {report['current']} in the current file, {report['older']} only in an "
        f"older version ({report['older_commit_not_named']} without its commit named), {report['derived']} "
        f"derived, {report['not found']} in no file the entry names"
        + ("" if args.check else f"; wrote {OUT.relative_to(ROOT)}")
    )
    for entry in report["entries"]:
        for f in entry["figures"]:
            if f["status"] == "not found" or f["status"] == "older" and not f["commit_named"]:
                print(f"  line {f['line']}: {f['figure']} {f['status']} ({entry['heading'][:40]})")
    if args.check and (report["not found"] or report["older_commit_not_named"]):
        sys.exit(1)


if __name__ == "__main__":
    main()
