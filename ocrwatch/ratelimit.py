"""The gate every ocr.space request passes: a sliding window, API pauses, a key block, a budget.

One gate is shared by all workers of a process, so a limit of "10 requests per
600 s" holds for the process, not per thread. Four things can hold a request:

* the optional sliding window (``ocrspace.rate_limit``): at most ``requests``
  leave in any ``per_seconds`` seconds, as the API counts its own limit
  ("upto maximum N number of times within S seconds"). The gate notes when
  each request it admits leaves; once ``requests`` left within the last
  ``per_seconds``, the next waits until the oldest of them is that old;
* a pause, set when the API answers with its rate-limit sentence, for the
  window it names;
* a block, set when the API rejects the key; it lasts until :meth:`unblock`
  (a reload with a new key), because no request can succeed before that;
* the daily budget (``ocrspace.max_requests_per_day``): once that many
  requests have left during the current calendar day in UTC, none goes until
  the next day begins at 00:00 UTC.

The gate counts every request it admits, whether or not a budget is set (so a
budget turned on by a reload knows what the day has used). ocr.space counts
every call it receives and does not document when its day begins: a UTC
calendar day is an assumption, and should the API's own day end later, its
rate-limit answer still pauses the gate as any other. A request admitted whose
connection then fails is counted too: the budget and the window err on the
side of the quota. :meth:`RequestGate.keep_count_in` keeps the count, and
:meth:`RequestGate.keep_window_in` the window's send times, in a key/value
store (the daemon's state store) so that they survive a restart; without one,
or if it is lost, only they are lost: the day starts again from zero and the
window empty.

The window's send times are facts: a reload that changes the limit judges
them by the new one, never starting afresh. Accepted gaps: sends are noted
only while a limit is set, and forgotten once ``per_seconds`` old, so a
reload that lengthens the window or turns the limit on knows only what was
kept; across a restart the times are kept on the wall clock, so a clock
stepped in between moves them (a send it puts in the future counts as now).

Waiting is interruptible through the ``stop`` event passed to :meth:`acquire`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ocrwatch.config import RateLimitConfig
from ocrwatch.counting import (
    DailyBudget,
    KeyValueStore,
    SendWindow,
    utc_text,
)
from ocrwatch.errors import Interrupted, RateLimitError

logger = logging.getLogger(__name__)

MAX_WAIT_SLICE = 1.0
"""Longest single sleep, so that stop requests and unblocks are seen promptly."""


class BudgetSpent(RateLimitError):
    """The daily budget is used up and the caller would rather not wait for the next day."""


@dataclass(frozen=True)
class GateState:
    """What holds requests right now, for status displays."""

    paused_until: float | None
    """Wall-clock time (epoch seconds) when an API pause ends, if paused."""
    pause_reason: str | None
    blocked: str | None
    """Why requests are blocked until a reload (rejected key), if they are."""
    pause_number: int = 0
    """Counts pauses begun or extended, so a watcher can tell a new pause from the same one."""
    requests_today: int = 0
    """Requests sent since 00:00 UTC."""
    max_requests_per_day: int | None = None
    budget_until: float | None = None
    """Wall-clock time when a used-up daily budget resets (the next 00:00 UTC), if it is used up."""
    budget_reason: str | None = None
    unreachable: str | None = None
    """Why a gate shared through Redis holds every request (Redis cannot be reached), if it does."""

    def held(self) -> tuple[float | None, str | None]:
        """Until when and why requests are paused, by the API or by the budget: the later one."""
        if self.budget_until is not None and (
            self.paused_until is None or self.budget_until >= self.paused_until
        ):
            return self.budget_until, self.budget_reason
        return self.paused_until, self.pause_reason


class Gate(Protocol):
    """What the ocr.space client and the daemon ask of a gate: this module's
    :class:`RequestGate` (one process), or distributed mode's shared gate in Redis."""

    def acquire(self, stop: threading.Event | None = None) -> None: ...

    def set_limit(self, limit: RateLimitConfig | None) -> None: ...

    def set_budget(self, max_requests_per_day: int | None) -> None: ...

    def keep_count_in(self, store: KeyValueStore) -> None: ...

    def keep_window_in(self, store: KeyValueStore) -> None: ...

    def pause(self, seconds: float, reason: str) -> None: ...

    def pause_until_wall(self, epoch: float, reason: str) -> None: ...

    def block(self, reason: str) -> None: ...

    def unblock(self) -> None: ...

    def wake(self) -> None: ...

    def state(self) -> GateState: ...


class RequestGate:
    """Admits requests under a rate limit, an API pause, a key block and a daily budget.

    ``max_requests_per_day`` None means no budget. With ``longest_budget_wait``
    set, a spent budget that resets later than that many seconds from now
    raises :class:`BudgetSpent` instead of waiting (``ocrwatch once`` leaves
    such files for later rather than wait for the next day).
    """

    def __init__(
        self,
        limit: RateLimitConfig | None = None,
        *,
        max_requests_per_day: int | None = None,
        longest_budget_wait: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._clock = clock
        self._wall = wall
        self._budget = DailyBudget(max_requests_per_day, wall=wall)
        self._window = SendWindow(limit, clock=clock, wall=wall)
        self._longest_budget_wait = longest_budget_wait
        self._lock = threading.Condition()
        self._paused_until = 0.0
        self._pause_reason: str | None = None
        self._pause_number = 0
        self._blocked: str | None = None

    def acquire(self, stop: threading.Event | None = None) -> None:
        """Wait until a request may go, and count it as sent.

        Raises Interrupted when ``stop`` is set first, BudgetSpent when the
        budget is used up for longer than ``longest_budget_wait``.
        """
        with self._lock:
            while True:
                if stop is not None and stop.is_set():
                    raise Interrupted("stopped while waiting to send a request")
                wait = self._wait_needed()
                if wait <= 0:
                    self._window.count()
                    self._budget.count()
                    return
                self._refuse_long_budget_wait()
                self._lock.wait(min(wait, MAX_WAIT_SLICE))

    def _refuse_long_budget_wait(self) -> None:
        until = self._budget.spent_until()
        if until is None or self._longest_budget_wait is None:
            return
        remaining = until - self._wall()
        if remaining > self._longest_budget_wait:
            raise BudgetSpent(
                f"{self._budget.reason()} until {utc_text(until)}", retry_after=remaining
            )

    def _wait_needed(self) -> float:
        now = self._clock()
        if self._blocked is not None:
            return MAX_WAIT_SLICE
        if now < self._paused_until:
            return self._paused_until - now
        budget_until = self._budget.spent_until()
        if budget_until is not None:
            # On the wall clock: the day ends at 00:00 UTC however long the machine slept.
            return budget_until - self._wall()
        return self._window.wait_needed()

    def set_limit(self, limit: RateLimitConfig | None) -> None:
        """Apply a new limit (after a reload) to the requests already sent; pauses and blocks stay."""
        with self._lock:
            self._window.set_limit(limit)
            self._lock.notify_all()

    def set_budget(self, max_requests_per_day: int | None) -> None:
        """Apply a new daily budget (after a reload); today's count stays."""
        with self._lock:
            self._budget.set_limit(max_requests_per_day)
            self._lock.notify_all()

    def keep_count_in(self, store: KeyValueStore) -> None:
        """Continue today's request count from ``store`` and keep it there (survives restarts)."""
        with self._lock:
            self._budget.keep_in(store)
            self._lock.notify_all()

    def keep_window_in(self, store: KeyValueStore) -> None:
        """Continue the rate limit's window from ``store`` and keep it there (survives restarts)."""
        with self._lock:
            self._window.keep_in(store)
            self._lock.notify_all()

    def pause(self, seconds: float, reason: str) -> None:
        """Hold every request for ``seconds`` (extends, never shortens, a running pause)."""
        with self._lock:
            until = self._clock() + seconds
            if until > self._paused_until:
                self._paused_until = until
                self._pause_reason = reason
                self._pause_number += 1
            self._lock.notify_all()

    def pause_until_wall(self, epoch: float, reason: str) -> None:
        """Restore a pause that ends at wall-clock time ``epoch`` (kept across restarts)."""
        remaining = epoch - self._wall()
        if remaining > 0:
            self.pause(remaining, reason)

    def block(self, reason: str) -> None:
        """Hold every request until :meth:`unblock`."""
        with self._lock:
            self._blocked = reason
            self._lock.notify_all()

    def unblock(self) -> None:
        """Lift a key block (a running rate-limit pause stays)."""
        with self._lock:
            self._blocked = None
            self._lock.notify_all()

    def wake(self) -> None:
        """Wake waiters so they re-check their stop event."""
        with self._lock:
            self._lock.notify_all()

    def state(self) -> GateState:
        with self._lock:
            remaining = self._paused_until - self._clock()
            paused = remaining > 0
            budget_until = self._budget.spent_until()
            return GateState(
                paused_until=self._wall() + remaining if paused else None,
                pause_reason=self._pause_reason if paused else None,
                blocked=self._blocked,
                pause_number=self._pause_number,
                requests_today=self._budget.used(),
                max_requests_per_day=self._budget.limit,
                budget_until=budget_until,
                budget_reason=self._budget.reason() if budget_until is not None else None,
            )
