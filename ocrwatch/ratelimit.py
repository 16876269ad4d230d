"""The gate every ocr.space request passes: a client-side token bucket, API pauses, a key block.

One gate is shared by all workers of a process, so a limit of "10 requests per
600 s" holds for the process, not per thread. Three things can hold a request:

* the optional token bucket (``ocrspace.rate_limit``): up to ``requests``
  tokens, refilled evenly over ``per_seconds``; a burst up to the bucket size
  goes at full speed;
* a pause, set when the API answers with its rate-limit sentence, for the
  window it names;
* a block, set when the API rejects the key; it lasts until :meth:`unblock`
  (a reload with a new key), because no request can succeed before that.

Waiting is interruptible through the ``stop`` event passed to :meth:`acquire`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ocrwatch.config import RateLimitConfig
from ocrwatch.errors import Interrupted

MAX_WAIT_SLICE = 1.0
"""Longest single sleep, so that stop requests and unblocks are seen promptly."""


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


class RequestGate:
    """Admits requests under a rate limit, an API pause and a key block."""

    def __init__(
        self,
        limit: RateLimitConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._limit = limit
        self._clock = clock
        self._wall = wall
        self._lock = threading.Condition()
        self._tokens = float(limit.requests) if limit else 0.0
        self._refilled = clock()
        self._paused_until = 0.0
        self._pause_reason: str | None = None
        self._pause_number = 0
        self._blocked: str | None = None

    def acquire(self, stop: threading.Event | None = None) -> None:
        """Wait until a request may go. Raises Interrupted when ``stop`` is set first."""
        with self._lock:
            while True:
                if stop is not None and stop.is_set():
                    raise Interrupted("stopped while waiting to send a request")
                wait = self._wait_needed()
                if wait <= 0:
                    if self._limit is not None:
                        self._tokens -= 1.0
                    return
                self._lock.wait(min(wait, MAX_WAIT_SLICE))

    def _wait_needed(self) -> float:
        now = self._clock()
        if self._blocked is not None:
            return MAX_WAIT_SLICE
        if now < self._paused_until:
            return self._paused_until - now
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
            return GateState(
                paused_until=self._wall() + remaining if paused else None,
                pause_reason=self._pause_reason if paused else None,
                blocked=self._blocked,
                pause_number=self._pause_number,
            )
