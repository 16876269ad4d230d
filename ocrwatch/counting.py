"""What the request gate counts: the day's requests against a budget, and the recent sends.

:class:`DailyBudget` counts the requests of the current UTC day against
``ocrspace.max_requests_per_day``; :class:`SendWindow` keeps when the
requests of the last ``per_seconds`` left, against ``ocrspace.rate_limit``
(a sliding window). Neither is locked: :class:`~ocrwatch.ratelimit.RequestGate`
calls them under its own lock. Both can keep what they counted in a
key/value store (the daemon's state store) so that a restart continues it;
see :mod:`ocrwatch.ratelimit` for what they mean together.
"""

from __future__ import annotations

import collections
import datetime
import logging
import time
from collections.abc import Callable
from typing import Protocol

from ocrwatch.config import RateLimitConfig

logger = logging.getLogger(__name__)

COUNT_KEY = "ocrspace_requests_today"
"""Where :meth:`RequestGate.keep_count_in` keeps the count: ``"<UTC date> <requests>"``."""
WINDOW_KEY = "ocrspace_recent_requests"
"""Where :meth:`RequestGate.keep_window_in` keeps the window's send times: wall-clock epochs."""


class KeyValueStore(Protocol):
    """Where the gate keeps its count and window (the daemon's state store)."""

    def get(self, key: str) -> str | None: ...

    def put(self, key: str, value: str | None) -> None: ...


def utc_day(epoch: float) -> datetime.date:
    """The calendar day in UTC of wall-clock time ``epoch``."""
    return datetime.datetime.fromtimestamp(epoch, tz=datetime.UTC).date()


def day_start(day: datetime.date) -> float:
    """Wall-clock time (epoch seconds) when ``day`` begins, at 00:00 UTC."""
    return datetime.datetime.combine(day, datetime.time(), tzinfo=datetime.UTC).timestamp()


def utc_text(epoch: float) -> str:
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
                utc_text(until),
            )


class SendWindow:
    """When the requests admitted within the last ``per_seconds`` left, against ``requests``.

    Not locked: the gate calls it under its own lock. Times are on the gate's
    monotonic clock; kept in a store, they are on the wall clock.
    """

    def __init__(
        self,
        limit: RateLimitConfig | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.limit = limit
        self._clock = clock
        self._wall = wall
        self._sent: collections.deque[float] = collections.deque()
        self._store: KeyValueStore | None = None

    def wait_needed(self) -> float:
        """Seconds until one more request may go without passing the limit in any window; 0 now."""
        if self.limit is None:
            return 0.0
        now = self._clock()
        self._forget(now)
        if len(self._sent) < self.limit.requests:
            return 0.0
        # After a reload that lowered ``requests`` more than that many may be recent:
        # the next goes when the one ``requests`` back from the newest ages out.
        return self.limit.per_seconds - (now - self._sent[-self.limit.requests])

    def count(self) -> None:
        """One request is leaving: note its send time (while a limit is set) and keep the times."""
        if self.limit is None:
            return
        self._sent.append(self._clock())
        if self._store is not None:
            self._store.put(WINDOW_KEY, self._kept_text())

    def set_limit(self, limit: RateLimitConfig | None) -> None:
        """Apply a new limit (after a reload) to the send times noted so far."""
        self.limit = limit
        if limit is None:
            self._sent.clear()
        else:
            self._forget(self._clock())

    def keep_in(self, store: KeyValueStore) -> None:
        """Continue the window from ``store`` (sends before a restart) and keep it there."""
        if store is self._store:
            return
        kept = store.get(WINDOW_KEY) or ""
        try:
            epochs = sorted(float(word) for word in kept.split())
        except ValueError:
            logger.debug("ignoring unreadable request send times %r", kept)
            epochs = []
        now, wall_now = self._clock(), self._wall()
        # A send the wall clock puts in the future (it was stepped back) counts as sent now.
        restored = [now - max(0.0, wall_now - epoch) for epoch in epochs]
        first = self._sent[0] if self._sent else None
        self._sent = collections.deque(
            [*(sent for sent in restored if first is None or sent < first), *self._sent]
        )
        self._store = store
        if self.limit is None:
            self._sent.clear()
            return
        self._forget(now)
        if self._sent:
            logger.info(
                "ocr.space: %d request(s) sent in the last %g s before this start count against "
                "the rate limit of %d per %g s",
                len(self._sent),
                self.limit.per_seconds,
                self.limit.requests,
                self.limit.per_seconds,
            )

    def _forget(self, now: float) -> None:
        """Drop the send times that no longer count: ``per_seconds`` old or older."""
        if self.limit is None:
            return
        while self._sent and now - self._sent[0] >= self.limit.per_seconds:
            self._sent.popleft()

    def _kept_text(self) -> str:
        """The send times that still count, as wall-clock epochs, oldest first."""
        now, wall_now = self._clock(), self._wall()
        self._forget(now)
        return " ".join(repr(wall_now - (now - sent)) for sent in self._sent)
