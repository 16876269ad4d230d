"""``python -m benchmarks --size tiny`` runs every measurement end to end and reports each one.

Timings are never asserted here: they belong to the benchmark's own table.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.__main__ import MEASUREMENTS
from tests.support.paths import REPO

SMOKE_TIMEOUT = 300
TABLE_HEADER = (
    "| measurement | ocrwatch | baseline | ratio (ocrwatch ÷ baseline) | spread over rounds "
    "| target | met |"
)


@pytest.mark.slow
def test_tiny_benchmark_completes_with_table_and_json(tmp_path: Path) -> None:
    """The tiny run exits 0, prints the table, and writes JSON with a row for every measurement."""
    report = tmp_path / "tiny.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--size",
            "tiny",
            "--json",
            str(report),
            "--no-install",
            "--quiet",
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=SMOKE_TIMEOUT,
    )

    assert 0 == result.returncode, result.stdout + result.stderr
    assert TABLE_HEADER in result.stdout
    data = json.loads(report.read_text(encoding="utf-8"))
    assert set(MEASUREMENTS) == {row["measurement"] for row in data["rows"]}
    assert [] == [row["name"] for row in data["rows"] if row["value"] is None]
    assert data["markdown"] in result.stdout
    assert {"cores", "python", "versions"} <= set(data["machine"])
