"""When is a file ready, and is it already on its way? The daemon's per-file bookkeeping.

Every file the daemon knows about and has not finished has one :class:`Entry`,
keyed by path, so a file is queued at most once however many events arrive.
An entry is in one of four states:

``settling``
    Seen (created, modified, found by a scan while recent) but not known to be
    complete. It becomes ready once its size and mtime stay unchanged for the
    inbox's quiet period.
``ready``
    Complete as far as events tell (closed after writing, renamed in, or
    quiet); waiting for a worker. Files from live events are handed out before
    files from scans, so a fresh scan never waits behind a backlog.
``running``
    A worker has it. Events for it meanwhile mark it ``dirty``; when the worker
    finishes, a dirty file that changed goes round again.
``waiting``
    A retry is scheduled (a truncated file, a transient failure) at ``due``.

The tracker holds paths and small numbers only, never image data, and it
refuses scan additions beyond ``max_pending`` so that memory stays bounded
whatever the backlog; the scanner comes back for the rest.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ocrwatch.plan import InboxPlan

IDLE_TICK = 1.0


@dataclass(eq=False)
class Entry:
    """One file on its way to sidecars."""

    path: Path
    inbox: InboxPlan
    state: str = "settling"
    due: float = 0.0
    size: int | None = None
    mtime_ns: int | None = None
    quiet_since: float = 0.0
    attempt: int = 0
    first_attempt: float | None = None
    requests: int = 0
    """OCR requests earlier tries made (for the sidecars' totals)."""
    dirty: bool = False
    live: bool = True
    seen: float = field(default_factory=time.monotonic)
    """When the file was first noticed (monotonic), for latency figures."""
    job: Any = None
    """Distributed mode: the queue delivery this entry reads; None for a file this host found."""
    next_job: Any = None
    """A delivery that came while this host was still queueing the file: read when that ends."""


class Tracker:
    """Thread-safe: watcher threads report, the main loop ticks, workers take and finish."""

    def __init__(
        self,
        *,
        settle_seconds: Callable[[InboxPlan], float],
        max_pending: int,
        clock: Callable[[], float] = time.monotonic,
        route: Callable[[Entry], str] | None = None,
        dropped: Callable[[Any], None] | None = None,
    ) -> None:
        """``route(entry)`` names the queue a ready entry waits in (default: its engine's);
        ``dropped(job)`` is told of a job the tracker forgot before a worker settled it (its
        file removed, its inbox dropped), so that the queue entry is not held forever. It is
        called with the tracker's lock held: it must only take note."""
        self._settle_seconds = settle_seconds
        self._route = route or _engine_of
        self._dropped = dropped
        self.max_pending = max_pending
        self._clock = clock
        self._entries: dict[Path, Entry] = {}
        self._ready: dict[tuple[str, bool], deque[Entry]] = {}
        self._cond = threading.Condition()
        self._closed = False

    # Reports from watchers and scanners.

    def complete(self, path: Path, inbox: InboxPlan) -> None:
        """The file is whole (closed after writing, or renamed in): ready now."""
        with self._cond:
            entry = self._live_entry(path, inbox)
            if entry is not None and entry.state != "ready":
                self._make_ready(entry)

    def changed(self, path: Path, inbox: InboxPlan) -> None:
        """The file appeared or changed: wait until it is quiet."""
        with self._cond:
            entry = self._live_entry(path, inbox)
            if entry is not None:
                self._settle(entry)

    def _live_entry(self, path: Path, inbox: InboxPlan) -> Entry | None:
        """The entry an event about ``path`` acts on, new if need be; None while a worker
        holds it (it is then marked to go round again). Called with the lock held."""
        entry = self._entries.get(path)
        if entry is None:
            entry = self._entries[path] = Entry(path, inbox, live=True)
        elif entry.state == "running":
            entry.dirty = True
            return None
        return entry

    def found(self, path: Path, inbox: InboxPlan, *, mtime_ns: int) -> bool:
        """A scan found ``path`` without a current sidecar. False when the tracker is full."""
        with self._cond:
            if path in self._entries:
                return True
            if len(self._entries) >= self.max_pending:
                return False
            entry = self._entries[path] = Entry(path, inbox, live=False)
            settle = self._settle_seconds(inbox)
            age = time.time() - mtime_ns / 1e9
            if age >= settle:
                self._make_ready(entry)
            else:
                self._settle(entry)
            return True

    def deliver(self, path: Path, inbox: InboxPlan, job: Any) -> bool:
        """Distributed mode: the queue gave this host ``path`` to read: ready now.

        False when a worker holds the file already (the caller settles the
        delivery as a duplicate).
        """
        with self._cond:
            entry = self._entries.get(path)
            if entry is not None and entry.state == "running":
                if entry.job is not None:
                    return False
                entry.next_job = job  # its publisher holds it: read once that is done
                return True
            if entry is None:
                entry = self._entries[path] = Entry(path, inbox, live=True)
            entry.inbox, entry.job = inbox, job
            self._make_ready(entry)
            return True

    def removed(self, path: Path) -> None:
        """The file went away; forget it unless a worker holds it."""
        with self._cond:
            entry = self._entries.get(path)
            if entry is None:
                return
            if entry.state == "running":
                entry.dirty = True
            else:
                self._forget(entry)

    def drop_inbox(self, inbox_path: Path) -> int:
        """Forget every waiting file of an inbox that is no longer configured; return how many."""
        with self._cond:
            dropped = [
                e
                for e in self._entries.values()
                if e.inbox.path == inbox_path and e.state != "running"
            ]
            for entry in dropped:
                self._forget(entry)
            return len(dropped)

    def update_inboxes(self, plans: dict[Path, InboxPlan]) -> None:
        """After a reload: waiting files take their inbox's new rules."""
        with self._cond:
            for entry in self._entries.values():
                if entry.inbox.path in plans:
                    entry.inbox = plans[entry.inbox.path]
                    if entry.state == "ready":
                        # Its engine may have changed: queue it where workers of that engine look.
                        self._make_ready(entry)

    # The main loop.

    def tick(self) -> float:
        """Promote quiet files and due retries; return seconds until the next thing is due."""
        with self._cond:
            now = self._clock()
            next_due = now + IDLE_TICK
            for entry in list(self._entries.values()):
                if entry.state == "waiting" and entry.due <= now:
                    self._make_ready(entry)
                elif entry.state == "settling" and entry.due <= now:
                    size, mtime_ns = _stat(entry.path)
                    if size is None:
                        self._forget(entry)
                        continue
                    settle = self._settle_seconds(entry.inbox)
                    if (size, mtime_ns) == (
                        entry.size,
                        entry.mtime_ns,
                    ) and now - entry.quiet_since >= settle:
                        self._make_ready(entry)
                        continue
                    if (size, mtime_ns) != (entry.size, entry.mtime_ns):
                        entry.size, entry.mtime_ns, entry.quiet_since = size, mtime_ns, now
                    entry.due = entry.quiet_since + settle
                if entry.state in ("waiting", "settling"):
                    next_due = min(next_due, entry.due)
            return max(0.0, next_due - now)

    # Workers.

    def take(self, engine: str, timeout: float) -> Entry | None:
        """The next ready file routed to ``engine`` (live ones first), or None after ``timeout``."""
        deadline = self._clock() + timeout
        with self._cond:
            while not self._closed:
                for live in (True, False):
                    queue = self._ready.get((engine, live))
                    while queue:
                        entry = queue.popleft()
                        if (
                            entry.state == "ready"
                            and self._route(entry) == engine
                            and self._entries.get(entry.path) is entry
                        ):
                            entry.state = "running"
                            entry.dirty = False
                            return entry
                remaining = deadline - self._clock()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)
            return None

    def finish(self, entry: Entry, *, retry_in: float | None = None, again: bool = False) -> None:
        """A worker is done with ``entry``: forget it, retry it later, or put it back now.

        A file that changed while it was being processed goes round again.
        """
        with self._cond:
            if self._entries.get(entry.path) is not entry:
                return
            if entry.next_job is not None:
                entry.job, entry.next_job = entry.next_job, None
                self._make_ready(entry, front=True)
            elif retry_in is not None:
                entry.state = "waiting"
                entry.due = self._clock() + retry_in
                self._cond.notify_all()
            elif again:
                self._make_ready(entry, front=True)
            elif entry.dirty and os.path.lexists(entry.path):
                entry.live = True
                self._settle(entry)
            else:
                self._forget(entry)

    def close(self) -> None:
        """Stop handing out work; waiting workers return None."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def counts(self) -> dict[str, int]:
        with self._cond:
            counts = {"settling": 0, "ready": 0, "running": 0, "waiting": 0}
            for entry in self._entries.values():
                counts[entry.state] += 1
            return counts

    def counts_by_inbox(self) -> dict[Path, dict[str, int]]:
        with self._cond:
            counts: dict[Path, dict[str, int]] = {}
            for entry in self._entries.values():
                per_inbox = counts.setdefault(entry.inbox.path, {})
                per_inbox[entry.state] = per_inbox.get(entry.state, 0) + 1
            return counts

    def pending(self) -> int:
        with self._cond:
            return len(self._entries)

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _settle(self, entry: Entry) -> None:
        """Start (or restart) the quiet period of ``entry`` from now."""
        entry.state = "settling"
        entry.quiet_since = self._clock()
        entry.size, entry.mtime_ns = _stat(entry.path)
        entry.due = entry.quiet_since + self._settle_seconds(entry.inbox)
        self._cond.notify_all()

    def _make_ready(self, entry: Entry, *, front: bool = False) -> None:
        entry.state = "ready"
        queue = self._ready.setdefault((self._route(entry), entry.live), deque())
        if front:
            queue.appendleft(entry)
        else:
            queue.append(entry)
        self._cond.notify_all()

    def _forget(self, entry: Entry) -> None:
        entry.state = "gone"
        if self._entries.get(entry.path) is entry:
            del self._entries[entry.path]
        for job in (entry.job, entry.next_job):
            if job is not None and self._dropped is not None:
                self._dropped(job)
        entry.job = entry.next_job = None


def _engine_of(entry: Entry) -> str:
    return entry.inbox.rules.engine


def _stat(path: Path) -> tuple[int | None, int | None]:
    try:
        info = os.stat(path)
    except OSError:
        return None, None
    return info.st_size, info.st_mtime_ns
