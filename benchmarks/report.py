"""The report: one markdown table plus the machine's facts, and the same as JSON.

Owns formatting only; the numbers come from the measurement modules as
:class:`~benchmarks.harness.Row` objects.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.harness import Row

PACKAGES = (
    "ocrwatch",
    "watchdog",
    "opencv-python-headless",
    "numpy",
    "pillow",
    "tesserocr",
    "requests",
    "rapidfuzz",
)
HEADER = (
    "| measurement | ocrwatch | baseline | ratio (ocrwatch ÷ baseline) | spread over rounds "
    "| target | met |"
)


def machine_facts() -> dict[str, Any]:
    """Cores, CPU, memory, Python and the versions of the libraries that do the work."""
    versions: dict[str, str | None] = {}
    for package in PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    try:
        import tesserocr

        versions["libtesseract (tesserocr)"] = str(tesserocr.tesseract_version()).split()[1]
    except (ImportError, IndexError):
        versions["libtesseract (tesserocr)"] = None
    versions["tesseract CLI"] = tesseract_cli_version()
    return {
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "cpu": _cpu_model(),
        "memory_gib": round(_mem_total_kib() / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "versions": versions,
    }


def tesseract_cli_version() -> str | None:
    binary = shutil.which("tesseract")
    if binary is None:
        return None
    result = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    first = (result.stdout or result.stderr).splitlines()
    return first[0].removeprefix("tesseract").strip() if first else None


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _mem_total_kib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1])
    return 0


def number(value: float | None) -> str:
    """A number with about three significant digits."""
    if value is None:
        return "n/a"
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def quantity(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit in ("", "count"):
        return number(value)
    return f"{number(value)} {unit}"


def _met(row: Row) -> str:
    met = row.met
    if row.target is None:
        return "info"
    if met is None:
        return "n/a"
    return "yes" if met else "**no**"


def spread(row: Row) -> str:
    """The judged quantity's range over rounds, with its spread; marked when unstable."""
    values = row.judged_rounds
    if len(values) < 2:
        return "1 round" if values else "—"
    low, high = min(values), max(values)
    shown = f"{number(low)}–{number(high)}{'×' if row.rounds_are_ratios else ''}"
    text = f"{shown}, {len(values)} rounds (±{(row.spread or 0) / 2:.1%})"
    return f"{text}, **unstable**" if row.unstable else text


def table(rows: Sequence[Row]) -> str:
    lines = [HEADER, "|---|---|---|---|---|---|---|"]
    for row in rows:
        baseline = quantity(row.baseline, row.unit) if row.baseline is not None else "—"
        if row.baseline_label:
            baseline = f"{baseline} ({row.baseline_label})"
        ratio = f"{number(row.ratio)}×" if row.ratio is not None else "—"
        target = row.target.text if row.target is not None else "info"
        lines.append(
            f"| {row.name} | {quantity(row.value, row.unit)} | {baseline} | {ratio} | {spread(row)} "
            f"| {target} | {_met(row)} |"
        )
    return "\n".join(lines)


def notes(rows: Sequence[Row]) -> str:
    noted = [f"- {row.name}: {row.notes}" for row in rows if row.notes]
    return "\n".join(noted)


def facts_text(facts: dict[str, Any], run: dict[str, Any]) -> str:
    versions = ", ".join(
        f"{name} {version or 'missing'}" for name, version in facts["versions"].items()
    )
    before, after = run["load_average"]["before"], run["load_average"]["after"]
    return "\n".join(
        [
            f"- machine: {facts['cores']} cores ({facts['usable_cores']} usable), {facts['cpu']}, "
            f"{facts['memory_gib']} GiB, Linux {facts['kernel']}, {facts['python']}",
            f"- libraries: {versions}",
            f"- run: size {run['size']}, {run['started']}, {run['seconds']:.0f} s; load average (1/5/15 min) "
            f"before {before[0]:.2f}/{before[1]:.2f}/{before[2]:.2f}, after {after[0]:.2f}/{after[1]:.2f}/{after[2]:.2f}",
        ]
    )


def markdown(rows: Sequence[Row], facts: dict[str, Any], run: dict[str, Any]) -> str:
    parts = [table(rows), "", facts_text(facts, run)]
    noted = notes(rows)
    if noted:
        parts += ["", "Notes:", noted]
    return "\n".join(parts) + "\n"


def as_json(
    rows: Sequence[Row], facts: dict[str, Any], run: dict[str, Any], text: str
) -> dict[str, Any]:
    return {
        "run": run,
        "machine": facts,
        "rows": [
            {
                "measurement": row.measurement,
                "name": row.name,
                "value": row.value,
                "unit": row.unit,
                "baseline": row.baseline,
                "baseline_label": row.baseline_label,
                "ratio": row.ratio,
                "target": None
                if row.target is None
                else {
                    "text": row.target.text,
                    "op": row.target.op,
                    "bound": row.target.bound,
                    "on": row.target.on,
                },
                "met": row.met,
                "rounds": row.rounds,
                "baseline_rounds": row.baseline_rounds,
                "spread": row.spread,
                "unstable": row.unstable,
                "notes": row.notes,
                "details": row.details,
            }
            for row in rows
        ],
        "markdown": text,
    }
