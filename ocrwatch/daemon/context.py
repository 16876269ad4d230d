"""What the daemon's parts share: the current plan, the stop and wake-up events, the queue and the counters."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ocrwatch.plan import InboxPlan, Plan
from ocrwatch.store import StateStore
from ocrwatch.tracker import Tracker


@dataclass
class InboxStats:
    """One inbox's counters since start."""

    outcomes: Counter[str] = field(default_factory=Counter)
    last_error: str | None = None
    last_error_at: float | None = None


@dataclass
class Stats:
    """Counters since start, per inbox and in total, for status lines and ``ocrwatch status``."""

    inboxes: dict[Path, InboxStats] = field(default_factory=dict)
    outcomes: Counter[str] = field(default_factory=Counter)
    last_error: str | None = None
    started: float = field(default_factory=time.time)
    reading: dict[Path, tuple[int, int]] = field(default_factory=dict)
    """Documents being read: pages done and pages in all (each entry set by one worker)."""

    def of(self, inbox: Path) -> InboxStats:
        return self.inboxes.setdefault(inbox, InboxStats())

    def count(self, inbox: Path, status: str) -> None:
        self.outcomes[status] += 1
        self.of(inbox).outcomes[status] += 1

    def error(self, inbox: Path | None, text: str) -> None:
        self.last_error = text
        if inbox is not None:
            stats = self.of(inbox)
            stats.last_error, stats.last_error_at = text, time.time()


@dataclass
class Context:
    """Shared by the daemon's threads.

    ``plan`` is replaced whole on reload (one reference assignment), so a
    reader sees the old plan or the new one, never a mix. ``store`` is set once
    the state folder is locked; until then, and if it breaks, there is no cache.
    """

    plan: Plan
    env: Mapping[str, str]
    tracker: Tracker
    stop: threading.Event = field(default_factory=threading.Event)
    wakeup: threading.Event = field(default_factory=threading.Event)
    stats: Stats = field(default_factory=Stats)
    store: StateStore | None = None
    scanning: Callable[[InboxPlan], bool] | None = None
    """Which inboxes this host walks and watches (distributed mode: those whose scanner lease it
    holds); None: every inbox."""
    temp_min_age: float | None = None
    """Temporaries younger than this are spared when cleaning up (distributed mode: another host
    may be writing them); None: a crash's leftovers are removed whatever their age."""

    def scans(self, inbox: InboxPlan) -> bool:
        return self.scanning is None or self.scanning(inbox)

    def current_inbox(self, inbox: InboxPlan) -> InboxPlan:
        """The plan's inbox at the same path as ``inbox`` (its rules may have been reloaded)."""
        return next(
            (candidate for candidate in self.plan.inboxes if candidate.path == inbox.path), inbox
        )
