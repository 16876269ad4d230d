"""The gate every ocr.space request passes: a token bucket, API pauses, a key block, a daily budget.

One gate is shared by all workers of a process, so a limit of "10 requests per
600 s" holds for the process, not per thread. Four things can hold a request:

* the optional token bucket (``ocrspace.rate_limit``): up to ``requests``
  tokens, refilled evenly over ``per_seconds``; a burst up to the bucket size
  goes at full speed;
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
connection then fails is counted too: the budget errs on the side of the
quota. :meth:`RequestGate.keep_count_in` keeps the count in a key/value store
(the daemon's state store) so that it survives a restart; without one, or if
it is lost, only the count is lost, and the day starts again from zero.

Waiting is interruptible through the ``stop`` event passed to :meth:`acquire`.
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ocrwatch.config import RateLimitConfig
from ocrwatch.errors import Interrupted, RateLimitError

logger = logging.getLogger(__name__)

MAX_WAIT_SLICE = 1.0
"""Longest single sleep, so that stop requests and unblocks are seen promptly."""
COUNT_KEY = "ocrspace_requests_today"
"""Where :meth:`RequestGate.keep_count_in` keeps the count: ``"<UTC date> <requests>"``."""


class KeyValueStore(Protocol):
    """Somewhere to keep the day's count (the daemon's :class:`~ocrwatch.store.StateStore`)."""

    def get(self, key: str) -> str | None: ...

    def put(self, key: str, value: str | None) -> None: ...


class BudgetSpent(RateLimitError):
    """The daily budget is used up and the caller would rather not wait for the next day."""


def utc_day(epoch: float) -> datetime.date:
    """The calendar day in UTC of wall-clock time ``epoch``."""
    return datetime.datetime.fromtimestamp(epoch, tz=datetime.UTC).date()


def day_start(day: datetime.date) -> float:
    """Wall-clock time (epoch seconds) when ``day`` begins, at 00:00 UTC."""
    return datetime.datetime.combine(day, datetime.time(), tzinfo=datetime.UTC).timestamp()


def _utc_text(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


class DailyBudget:
    """The requests sent during the current UTC day, against an optional maximum.

    Not locked: the gate calls it under its own lock. The count rolls over to
    zero when the day changes, which is what ends a spent budget's pause.
    """

    def __init__(self, limit: int | None, *, wall: Callable[[], float] = time.time) -> None:
        self.limit = limit
        self._wall = wall
        self._day = utc_day(wall())
        self._used = 0
        self._store: KeyValueStore | None = None
        self._announced = False

    def used(self) -> int:
        """Requests sent today."""
        self._roll()
        return self._used

    def spent_until(self) -> float | None:
        """When the budget is used up: the wall-clock time it resets (next 00:00 UTC); else None."""
        self._roll()
        if self.limit is None or self._used < self.limit:
            return None
        return day_start(self._day + datetime.timedelta(days=1))

    def reason(self) -> str:
        """Why requests wait while the budget is used up, for logs and status."""
        return f"the daily budget of {self.limit} requests is used up"

    def count(self) -> None:
        """One request is leaving: count it, keep the count, and say so when it spends the budget."""
        self._roll()
        self._used += 1
        if self._store is not None:
            self._store.put(COUNT_KEY, f"{self._day.isoformat()} {self._used}")
        self._announce()

    def set_limit(self, limit: int | None) -> None:
        """Apply a new maximum (after a reload); today's count stays."""
        if limit != self.limit:
            self.limit = limit
            self._announced = False
            self._announce()

    def keep_in(self, store: KeyValueStore) -> None:
        """Continue today's count from ``store`` (from before a restart) and keep it there from now on."""
        self._roll()
        kept = store.get(COUNT_KEY)
        day, _, used = (kept or "").partition(" ")
        try:
            if datetime.date.fromisoformat(day) == self._day:
                self._used = max(self._used, int(used))
        except ValueError:
            if kept:
                logger.debug("ignoring an unreadable request count %r", kept)
        self._store = store
        self._announce()

    def _roll(self) -> None:
        today = utc_day(self._wall())
        if today != self._day:
            self._day, self._used, self._announced = today, 0, False

    def _announce(self) -> None:
        until = self.spent_until()
        if until is None:
            self._announced = False
        elif not self._announced:
            self._announced = True
            logger.warning(
                "ocr.space: %s; OCR waits until %s (00:00 UTC), no file fails meanwhile",
                self.reason(),
                _utc_text(until),
            )


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

    def held(self) -> tuple[float | None, str | None]:
        """Until when and why requests are paused, by the API or by the budget: the later one."""
        if self.budget_until is not None and (
            self.paused_until is None or self.budget_until >= self.paused_until
        ):
            return self.budget_until, self.budget_reason
        return self.paused_until, self.pause_reason


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
        self._limit = limit
        self._clock = clock
        self._wall = wall
        self._budget = DailyBudget(max_requests_per_day, wall=wall)
        self._longest_budget_wait = longest_budget_wait
        self._lock = threading.Condition()
        self._tokens = float(limit.requests) if limit else 0.0
        self._refilled = clock()
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
                    if self._limit is not None:
                        self._tokens -= 1.0
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
                f"{self._budget.reason()} until {_utc_text(until)}", retry_after=remaining
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
        if self._limit is None:
            return 0.0
        rate = self._limit.requests / self._limit.per_seconds
        self._tokens = min(
            float(self._limit.requests), self._tokens + (now - self._refilled) * rate
        )
        self._refilled = now
        if self._tokens >= 1.0:
            return 0.0
        return (1.0 - self._tokens) / rate

    def set_limit(self, limit: RateLimitConfig | None) -> None:
        """Apply a new client-side limit (after a reload); pauses and blocks stay."""
        with self._lock:
            if limit != self._limit:
                self._limit = limit
                self._tokens = float(limit.requests) if limit else 0.0
                self._refilled = self._clock()
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
