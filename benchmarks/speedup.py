"""The local engine against itself as it was at an earlier commit, and on two cores.

Today's engine and the engine of :data:`BASELINE_COMMIT` (its ``ocrwatch``
package taken out of git history with ``git archive``) each run in a
:mod:`benchmarks.pagetimes` child of their own, and both read the same page
in turn, page after page (which goes first alternates), so that both sides of
a page's comparison see the machine in the same state; then each reads all
the pages again on its engine's page pool with two pages in flight. Rows:
seconds per page and mean CER against the baseline's, and today's page rate
with two pages in flight against its rate on one thread, in rounds. Beside
the last, two processes of today's engine each reading half the pages show
what the machine's two cores give when no thread is shared. Without that
history (no ``.git``, a shallow clone) the baseline is reported unavailable.

The libtesseract in the tesserocr wheel is built without OpenMP, so Tesseract
reads a page on one thread whatever ``OMP_THREAD_LIMIT`` says (the children
set it to 1 all the same); a second core helps only by reading a second page.
It does not measure against the tesseract command line (:mod:`benchmarks.accuracy` does).
"""

from __future__ import annotations

import io
import json
import os
import select
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.harness import REPO, Context, Row, Target, child_env, listed, median
from benchmarks.pagetimes import POOL_WORKERS
from ocrwatch.engines.base import cores
from tests.support.scoring import cer

NAME = "accuracy"
BASELINE_COMMIT = "44a1733"
"""The engine before orientation detection was made to run only where it pays."""
GIT_TIMEOUT = 60
CHILD_SECONDS_PER_PAGE = 60
"""Time allowed a page-timing child per page; a page takes a few seconds."""
ROUNDS = {"tiny": 1, "small": 3, "full": 5}
"""Rounds of the comparison by benchmark size, each running every side once."""
SPEEDUP_TARGET = 1.3
SCALING_TARGET = 1.8


@dataclass(frozen=True)
class _Side:
    """One process's reading of the pages: text and seconds per page, and the pool's wall time."""

    texts: list[str]
    seconds: list[float]
    pool_seconds: float

    def mean_seconds(self) -> float:
        return sum(self.seconds) / len(self.seconds)

    def mean_cer(self, truths: list[str]) -> float:
        errors = [cer(text, truth) for text, truth in zip(self.texts, truths, strict=True)]
        return sum(errors) / len(errors)

    def scaling(self) -> float:
        """Pages per second with two in flight over pages per second on one thread."""
        return sum(self.seconds) / self.pool_seconds


def baseline_package(ctx: Context) -> Path | None:
    """A folder holding :data:`BASELINE_COMMIT`'s ``ocrwatch`` package; None without git history."""
    folder = ctx.workdir / f"baseline-{BASELINE_COMMIT}"
    if (folder / "ocrwatch").is_dir():
        return folder
    git = shutil.which("git")
    if git is None:
        ctx.log("accuracy: git is missing, so the baseline commit cannot be read")
        return None
    archive = subprocess.run(
        [git, "-C", str(REPO), "archive", BASELINE_COMMIT, "ocrwatch"],
        capture_output=True,
        timeout=GIT_TIMEOUT,
        check=False,
    )
    if archive.returncode != 0:
        ctx.log(f"accuracy: no {BASELINE_COMMIT} here: {archive.stderr.decode().strip()[-200:]}")
        return None
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(folder, filter="data")
    return folder


class _Reader:
    """A :mod:`benchmarks.pagetimes` child reading pages with the ``ocrwatch`` under a folder."""

    def __init__(self, package_root: Path, warm_up: Path, log: Path) -> None:
        self.package_root = package_root
        # -P: the package comes from PYTHONPATH alone, never from the working folder.
        path = os.pathsep.join(dict.fromkeys([str(package_root), str(REPO)]))
        self._log = log
        with log.open("ab") as errors:
            self._child = subprocess.Popen(
                [sys.executable, "-P", "-m", "benchmarks.pagetimes", str(warm_up)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errors,
                env=child_env(PYTHONPATH=path, OMP_THREAD_LIMIT="1"),
            )
        package = Path(self._receive(CHILD_SECONDS_PER_PAGE)["package"])
        if not package.is_relative_to(package_root):
            self.close()
            raise RuntimeError(f"timing pages with {package_root} imported {package} instead")

    def send(self, command: dict[str, list[str]]) -> None:
        """Give the child a command; its answer is read by the method that expects it."""
        assert self._child.stdin is not None
        self._child.stdin.write(json.dumps(command).encode() + b"\n")
        self._child.stdin.flush()

    def _receive(self, timeout: float) -> dict[str, Any]:
        """The child's next answer. Raises RuntimeError when it fails or takes over ``timeout``."""
        assert self._child.stdout is not None
        ready, _, _ = select.select([self._child.stdout], [], [], timeout)
        line = self._child.stdout.readline() if ready else b""
        if not line:
            self._child.kill()
            self.close()
            problem = "ended" if ready else f"gave no answer in {timeout:.0f} s"
            raise RuntimeError(
                f"timing pages with {self.package_root}: the child {problem}; see {self._log}"
            )
        answer: dict[str, Any] = json.loads(line)
        return answer

    def read(self, pages: list[Path]) -> list[tuple[str, float]]:
        """Each page's text and seconds, read one after another on one thread."""
        self.send({"read": [str(page) for page in pages]})
        return self.received_pages(len(pages))

    def received_pages(self, count: int) -> list[tuple[str, float]]:
        """The answer to a ``read`` command of ``count`` pages: each page's text and seconds."""
        answer = self._receive(CHILD_SECONDS_PER_PAGE * count)
        return [(page["text"], float(page["seconds"])) for page in answer["pages"]]

    def pool(self, pages: list[Path]) -> float:
        """Wall seconds to read ``pages`` on the engine's page pool, in this order."""
        self.send({"pool": [str(page) for page in pages]})
        return float(self._receive(CHILD_SECONDS_PER_PAGE * len(pages))["seconds"])

    def close(self) -> None:
        """End the child: it stops when its input closes."""
        if self._child.stdin is not None and not self._child.stdin.closed:
            self._child.stdin.close()
        try:
            self._child.wait(timeout=CHILD_SECONDS_PER_PAGE)
        except subprocess.TimeoutExpired:
            self._child.kill()
            self._child.wait()
        if self._child.stdout is not None:
            self._child.stdout.close()


@dataclass(frozen=True)
class _Round:
    """One round of the comparison: both sides' pages and pool times, and two processes' rate."""

    ours: _Side
    theirs: _Side | None
    two_processes: float
    """Pages per second of today's engine in two processes, each reading half the pages."""


def _round(ctx: Context, baseline: Path | None, paths: list[Path], index: int) -> _Round:
    """Both engines read each page in turn (which goes first alternates), then on their pools."""
    warm_up = min(paths, key=lambda path: path.stat().st_size)
    log = ctx.workdir / "accuracy-children.log"
    readers = [_Reader(REPO, warm_up, log)]
    try:
        if baseline is not None:
            readers.append(_Reader(baseline, warm_up, log))
        times: list[list[tuple[str, float]]] = [[] for _ in readers]
        for number, path in enumerate(paths):
            turn = (number + index) % len(readers)
            for side in [*range(turn, len(readers)), *range(turn)]:
                times[side].extend(readers[side].read([path]))
        longest_first = [
            path
            for _, path in sorted(zip(times[0], paths, strict=True), key=lambda pair: -pair[0][1])
        ]
        sides = [
            _Side(
                texts=[text for text, _ in read],
                seconds=[seconds for _, seconds in read],
                pool_seconds=reader.pool(longest_first),
            )
            for reader, read in zip(readers, times, strict=True)
        ]
    finally:
        for reader in readers:
            reader.close()
    return _Round(
        sides[0], sides[1] if len(sides) > 1 else None, _two_processes(ctx, sides[0], paths)
    )


def _two_processes(ctx: Context, ours: _Side, paths: list[Path]) -> float:
    """Pages per second of today's engine in two processes at once, each reading half the pages
    (split by their one-thread times): what two cores give with no thread shared."""
    halves: tuple[list[Path], list[Path]] = ([], [])
    loads = [0.0, 0.0]
    for path, seconds in sorted(zip(paths, ours.seconds, strict=True), key=lambda pair: -pair[1]):
        lighter = loads.index(min(loads))
        halves[lighter].append(path)
        loads[lighter] += seconds
    warm_up = min(paths, key=lambda path: path.stat().st_size)
    readers = [_Reader(REPO, warm_up, ctx.workdir / "accuracy-children.log") for _ in halves]
    try:
        for reader, half in zip(readers, halves, strict=True):
            reader.send({"read": [str(path) for path in half]})
        busy = [
            sum(seconds for _, seconds in reader.received_pages(len(half)))
            for reader, half in zip(readers, halves, strict=True)
        ]
    finally:
        for reader in readers:
            reader.close()
    return len(paths) / max(busy)


def compare(ctx: Context, pages: list[tuple[Path, str]], label: str) -> list[Row]:
    """Today's engine beside :data:`BASELINE_COMMIT`'s on ``pages``, page by page, in rounds."""
    baseline = baseline_package(ctx)
    count = ROUNDS.get(ctx.size_name, 1)
    paths = [path for path, _ in pages]
    rounds = []
    for index in range(count):
        ctx.log(f"accuracy: comparison round {index + 1} of {count}")
        rounds.append(_round(ctx, baseline, paths, index))
    ours = [each.ours for each in rounds]
    theirs = [each.theirs for each in rounds if each.theirs is not None]
    processes = [each.two_processes for each in rounds]
    return _comparison_rows(ours, theirs, processes, [truth for _, truth in pages], paths, label)


def _comparison_rows(
    ours: list[_Side],
    theirs: list[_Side],
    processes: list[float],
    truths: list[str],
    paths: list[Path],
    label: str,
) -> list[Row]:
    count = len(paths)
    have_baseline = bool(theirs)
    baseline_label = (
        BASELINE_COMMIT if have_baseline else f"{BASELINE_COMMIT} unavailable (no git history)"
    )
    seconds = [side.mean_seconds() for side in ours]
    their_seconds = [side.mean_seconds() for side in theirs]
    cers = [side.mean_cer(truths) for side in ours]
    their_cers = [side.mean_cer(truths) for side in theirs]
    single_rates = [count / sum(side.seconds) for side in ours]
    pool_rates = [count / side.pool_seconds for side in ours]
    scalings = [rate / single for rate, single in zip(pool_rates, single_rates, strict=True)]
    ceilings = [rate / single for rate, single in zip(processes, single_rates, strict=True)]
    per_page = [
        {
            "name": path.name,
            "seconds": round(median([side.seconds[index] for side in ours]), 4),
            "cer": round(cer(ours[0].texts[index], truths[index]), 5),
            **(
                {
                    "baseline_seconds": round(median([side.seconds[index] for side in theirs]), 4),
                    "baseline_cer": round(cer(theirs[0].texts[index], truths[index]), 5),
                }
                if have_baseline
                else {}
            ),
        }
        for index, path in enumerate(paths)
    ]
    their_scaling = (
        f"; {BASELINE_COMMIT}: {listed([side.scaling() for side in theirs], 2)}×"
        if have_baseline
        else ""
    )
    return [
        Row(
            NAME,
            f"local engine seconds per page, one thread vs {BASELINE_COMMIT}, {label} (n={count})",
            median(seconds),
            "s",
            baseline=median(their_seconds) if have_baseline else None,
            baseline_label=baseline_label,
            target=Target(
                "<=", 1 / SPEEDUP_TARGET, on="ratio", text=f"≤ {1 / SPEEDUP_TARGET:.2f}×"
            ),
            notes=(
                f"decode + recognize, mean over pages, median of {len(ours)} round(s); "
                f"per round: ours {listed(seconds)} s"
                + (f", {BASELINE_COMMIT} {listed(their_seconds)} s" if have_baseline else "")
            ),
            details={"pages": per_page},
            rounds=seconds,
            baseline_rounds=their_seconds,
        ),
        Row(
            NAME,
            f"local engine mean CER vs {BASELINE_COMMIT}, {label} (n={count})",
            median(cers),
            "",
            baseline=median(their_cers) if have_baseline else None,
            baseline_label=baseline_label,
            target=Target("<=", 0.0, on="delta", text="≤ baseline"),
            notes=(
                f"per round: ours {listed(cers, 5)}"
                + (f", {BASELINE_COMMIT} {listed(their_cers, 5)}" if have_baseline else "")
            ),
            rounds=cers,
        ),
        Row(
            NAME,
            f"local engine page rate, {POOL_WORKERS} pages in flight vs one thread, {label}",
            median(pool_rates),
            "pages/s",
            baseline=median(single_rates),
            baseline_label="the same engine on one thread",
            target=Target(">=", SCALING_TARGET, on="ratio", text=f"≥ {SCALING_TARGET}×"),
            notes=(
                f"the engine's page pool, longest pages first, on {cores()} CPU(s); "
                f"per round: {listed(scalings, 2)}×{their_scaling}; the machine's ceiling, "
                f"two processes reading half the pages each: {listed(ceilings, 2)}×"
            ),
            details={"two_processes_pages_per_second": processes},
            rounds=pool_rates,
            baseline_rounds=single_rates,
        ),
    ]
