"""What ``ocrwatch once`` shows while it works, and the summary it prints at the end.

On a terminal: one progress line, redrawn in place, with a bar, the count, the
rate and the time left; failures are printed above it as they happen. On a
pipe or file there is no bar (control characters would only clutter a log):
``cli`` logs one line per file instead. Both end with the same summary table.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from ocrwatch.outcome import Outcome

BAR_WIDTH = 24
REDRAW_INTERVAL = 0.1
STATUS_ORDER = (
    "done",
    "partial",
    "skipped",
    "known_partial",
    "known_failure",
    "failed",
    "deferred",
    "retry",
    "gone",
)
STATUS_LABEL = {
    "done": "done",
    "partial": "partial (some pages failed)",
    "skipped": "skipped (sidecar current)",
    "known_partial": "partial before (unchanged)",
    "known_failure": "failed before (unchanged)",
    "failed": "failed",
    "deferred": "left for later",
    "retry": "not finished",
    "gone": "disappeared",
}


def duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


class ProgressBar:
    """A single redrawn line on a terminal: ``[#####.....] 12/40  3.2 files/s  ETA 0:09``."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total = total
        self.stream = stream
        self.finished = 0
        self.failed = 0
        self.started = time.monotonic()
        self._last_draw: float | None = None
        self._lock = threading.Lock()
        self._reading: dict[Path, tuple[int, int]] = {}
        self.draw(force=True)

    def page(self, path: Path, done: int, total: int) -> None:
        """A page of the document ``path`` is finished: show how far it is."""
        with self._lock:
            if done >= total:
                self._reading.pop(path, None)
            else:
                self._reading[path] = (done, total)
            self.draw()

    def advance(self, outcome: Outcome) -> None:
        with self._lock:
            self.finished += 1
            self._reading.pop(outcome.path, None)
            if outcome.status in ("failed", "known_failure", "partial", "known_partial"):
                self.failed += 1
                self._clear()
                self.stream.write(f"failed {outcome.path}: {outcome.message}\n")
                self.draw(force=True)
            else:
                self.draw()

    def draw(self, *, force: bool = False) -> None:
        now = time.monotonic()
        recent = self._last_draw is not None and now - self._last_draw < REDRAW_INTERVAL
        if not force and recent and self.finished < self.total:
            return
        self._last_draw = now
        elapsed = now - self.started
        rate = self.finished / elapsed if elapsed > 0 else 0.0
        filled = int(BAR_WIDTH * self.finished / self.total) if self.total else BAR_WIDTH
        eta = (self.total - self.finished) / rate if rate > 0 else None
        line = (
            f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {self.finished}/{self.total}"
            f"  {rate:.1f} files/s  ETA {duration(eta) if eta is not None else '--:--'}"
        )
        if self.failed:
            line += f"  {self.failed} failed"
        for path, (done, total) in list(self._reading.items())[:2]:
            line += f"  {path.name}: page {done}/{total}"
        width = shutil.get_terminal_size((100, 20)).columns
        self.stream.write("\r" + line[: width - 1] + "\033[K")
        self.stream.flush()

    def _clear(self) -> None:
        self.stream.write("\r\033[K")

    def close(self) -> None:
        with self._lock:
            self.draw(force=True)
            self.stream.write("\n")
            self.stream.flush()


def summary(outcomes: Iterable[Outcome], seconds: float) -> str:
    """The table printed at the end of a run: files per outcome, time, rate, and each problem."""
    outcomes = list(outcomes)
    counts: Counter[str] = Counter(str(outcome.status) for outcome in outcomes)
    rows = [
        (STATUS_LABEL.get(status, status), counts[status])
        for status in STATUS_ORDER
        if counts[status]
    ]
    rows += [(status, count) for status, count in counts.items() if status not in STATUS_ORDER]
    width = max([len(label) for label, _ in rows] + [len("outcome")])
    lines = [f"{'outcome':<{width}}  files", f"{'-' * width}  -----"]
    lines += [f"{label:<{width}}  {count:>5}" for label, count in rows]
    rate = len(outcomes) / seconds if seconds > 0 else 0.0
    lines.append(
        f"{'total':<{width}}  {len(outcomes):>5}  in {duration(seconds)} ({rate:.1f} files/s)"
    )
    problems = [outcome for outcome in outcomes if not outcome.ok and outcome.status != "gone"]
    if problems:
        lines.append("")
        lines.append("problems:")
        lines += [f"  {outcome.path}: {outcome.message}" for outcome in problems]
    return "\n".join(lines)
