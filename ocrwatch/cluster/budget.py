"""The ocr.space gate of distributed mode: one request budget for all hosts, kept in Redis.

:class:`SharedGate` has the public methods of
:class:`~ocrwatch.ratelimit.RequestGate`, so the daemon and the ocr.space
client take either. What holds a request lives in Redis under the API key's
hash (:func:`api_key_hash`; the key itself never reaches Redis, and the
reasons written there are scrubbed of it as log lines are):

* the key stop (``block``: the API rejected the key), shared by every host
  until an operator's reload lifts it (``unblock``);
* the API's pause (its rate-limit answer), a key with the reason that
  expires when the pause ends; a pause never shortens a longer one;
* the daily budget (``max_requests_per_day``), one count per UTC day for all
  hosts;
* the window (``rate_limit``): at most ``requests`` leave in any
  ``per_seconds``, a sorted set of send times that expires with the window.

With ``rate_scope: host`` the pause and the window are kept per host (the
API limits per IP address); the stop and the budget are always shared.

One Lua script checks them in that order and records the request that
passes, atomically, on Redis's own clock (``TIME``) and with server-side
expiry: the hosts' clocks do not matter, except for the wall-clock times
shown in status. Hosts should agree on ``rate_limit`` and
``max_requests_per_day``: each checks the shared records against its own.

Redis unreachable or failing means closed, never open: no request leaves
without Redis's admission, waiters retry every :data:`MAX_WAIT_SLICE`, and
:meth:`SharedGate.state` reports why in ``unreachable``. A pause or block
asked for meanwhile is kept here and written once Redis answers again (a
host that restarts meanwhile loses it; the API will answer the same again).
A request admitted whose sending then fails still counts, as with the
local gate.
"""

from __future__ import annotations

import hashlib
import logging
import math
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

import redis

from ocrwatch import logs
from ocrwatch.cluster.connection import describe_error
from ocrwatch.cluster.jobs import Keys
from ocrwatch.config import RateLimitConfig
from ocrwatch.counting import KeyValueStore
from ocrwatch.errors import Interrupted
from ocrwatch.ratelimit import MAX_WAIT_SLICE, BudgetSpent, GateState

logger = logging.getLogger(__name__)

Scope = Literal["key", "host"]
KEY_HASH_PREFIX = b"ocrwatch ocr.space API key\0"
"""Hashed before the key, so that Redis holds no bare hash of it."""
KEY_HASH_LENGTH = 20
DAY_COUNT_MILLISECONDS = 2 * 86400 * 1000
"""How long a day's count outlives its last request (it is only read on the same UTC day)."""
PAUSE_NOTICE_SLACK = 0.5
"""A pause whose end moved later by more than this (seconds) is a new one, not the same one re-read."""

# KEYS: stop, pause, day count, window. ARGV: daily budget (0: none), window
# requests (0: none), window milliseconds, a member name unique to this request,
# milliseconds the day's count outlives its last request.
# Returns {verdict, number, text}: {'go', requests today, ''}, or a wait in
# milliseconds with what holds: 'stop' (and its reason), 'pause' (and its
# reason), 'budget', 'window'.
_ADMIT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local stop = redis.call('GET', KEYS[1])
if stop then return {'stop', 0, stop} end
local paused = redis.call('PTTL', KEYS[2])
if paused > 0 then return {'pause', paused, redis.call('GET', KEYS[2])} end
local day = math.floor(now / 86400000)
local used = 0
local counted = redis.call('HMGET', KEYS[3], 'day', 'count')
if tonumber(counted[1]) == day then used = tonumber(counted[2]) or 0 end
local budget = tonumber(ARGV[1])
if budget > 0 and used >= budget then return {'budget', (day + 1) * 86400000 - now, ''} end
local requests = tonumber(ARGV[2])
if requests > 0 then
  local span = tonumber(ARGV[3])
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now - span)
  if redis.call('ZCARD', KEYS[4]) >= requests then
    local oldest = redis.call('ZRANGE', KEYS[4], 0, 0, 'WITHSCORES')
    return {'window', tonumber(oldest[2]) + span - now, ''}
  end
  redis.call('ZADD', KEYS[4], now, ARGV[4])
  redis.call('PEXPIRE', KEYS[4], span)
end
redis.call('HSET', KEYS[3], 'day', day, 'count', used + 1)
redis.call('PEXPIRE', KEYS[3], ARGV[5])
return {'go', used + 1, ''}
"""

# KEYS: stop, pause, day count. Returns {stop reason, pause milliseconds left,
# pause reason, requests today, milliseconds to the next 00:00 UTC}.
_READ = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local day = math.floor(now / 86400000)
local used = 0
local counted = redis.call('HMGET', KEYS[3], 'day', 'count')
if tonumber(counted[1]) == day then used = tonumber(counted[2]) or 0 end
local paused = redis.call('PTTL', KEYS[2])
return {redis.call('GET', KEYS[1]), paused, redis.call('GET', KEYS[2]), used,
  (day + 1) * 86400000 - now}
"""

# KEYS: pause. ARGV: reason, milliseconds. Sets the pause unless a longer one runs.
_PAUSE = """
if redis.call('PTTL', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""


def api_key_hash(value: str) -> str:
    """The name of an API key's budget in Redis: a salted hash, never the key."""
    return hashlib.sha256(KEY_HASH_PREFIX + value.encode()).hexdigest()[:KEY_HASH_LENGTH]


@dataclass(frozen=True)
class _Verdict:
    """The admission script's answer."""

    kind: str
    number: int
    text: str


@dataclass
class _Unsent:
    """A pause and a stop asked for while Redis could not be reached, to write when it can."""

    pause: tuple[str, float, str] | None = None
    """Key hash, monotonic end, reason."""
    stop: tuple[str, str | None] | None = None
    """Key hash, reason; a reason of None lifts the stop."""


class SharedGate:
    """Admits ocr.space requests under a budget all hosts share through Redis.

    ``key_hash`` gives the current API key's :func:`api_key_hash` (a reload may
    change the key). ``scope`` is ``queue.rate_scope``. With
    ``longest_budget_wait`` set, a spent budget that resets later than that
    many seconds from now raises :class:`BudgetSpent` instead of waiting.
    """

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        *,
        key_hash: Callable[[], str],
        host: str,
        scope: Scope,
        limit: RateLimitConfig | None,
        max_requests_per_day: int | None,
        longest_budget_wait: float | None = None,
    ) -> None:
        self._keys = keys
        self._key_hash = key_hash
        self._host = host
        self._scope = scope
        self._limit = limit
        self._budget = max_requests_per_day
        self._longest_budget_wait = longest_budget_wait
        self._admit = client.register_script(_ADMIT)
        self._read = client.register_script(_READ)
        self._pause = client.register_script(_PAUSE)
        self._client = client
        self._lock = threading.Condition()
        self._writing = threading.Lock()
        self._wakes = 0
        self._unsent = _Unsent()
        self._unreachable: str | None = None
        self._last = GateState(paused_until=None, pause_reason=None, blocked=None)
        self._pause_number = 0
        self._pause_seen_until: float | None = None
        self._budget_announced = False

    def acquire(self, stop: threading.Event | None = None) -> None:
        """Wait until Redis admits a request, which counts it as sent.

        Raises Interrupted when ``stop`` is set first, BudgetSpent when the
        budget is used up for longer than ``longest_budget_wait``.
        """
        while True:
            if stop is not None and stop.is_set():
                raise Interrupted("stopped while waiting to send a request")
            with self._lock:
                wakes = self._wakes
            verdict = self._try_admit()
            wait = MAX_WAIT_SLICE
            if verdict is not None:
                if verdict.kind == "go":
                    self._budget_announced = False
                    return
                if verdict.kind == "budget":
                    self._refuse_long_budget_wait(verdict.number / 1000)
                if verdict.kind != "stop":
                    wait = verdict.number / 1000
            with self._lock:
                if self._wakes == wakes:
                    self._lock.wait(min(wait, MAX_WAIT_SLICE))

    def _try_admit(self) -> _Verdict | None:
        """Ask Redis (writing what is unsent first); None when it cannot be reached."""
        key_hash = self._key_hash()
        with self._lock:
            limit, budget = self._limit, self._budget
        keys = [
            self._keys.api(key_hash, "stop"),
            self._pause_key(key_hash),
            self._keys.api(key_hash, "day"),
            self._scoped(key_hash, "window"),
        ]
        args: list[int | str] = [
            budget or 0,
            limit.requests if limit else 0,
            math.ceil(limit.per_seconds * 1000) if limit else 0,
            f"{self._host}:{secrets.token_hex(8)}",
            DAY_COUNT_MILLISECONDS,
        ]
        try:
            self._write_unsent()
            kind, number, text = self._admit(keys=keys, args=args)
        except redis.RedisError as error:
            self._lost(error)
            return None
        self._found()
        return _Verdict(_text(kind) or "", int(number), _text(text) or "")

    def _refuse_long_budget_wait(self, remaining: float) -> None:
        until = time.time() + remaining
        if not self._budget_announced:
            self._budget_announced = True
            logger.warning(
                "ocr.space: %s; OCR waits until %s (00:00 UTC), no file fails meanwhile",
                self._budget_reason(),
                _utc_text(until),
            )
        if self._longest_budget_wait is not None and remaining > self._longest_budget_wait:
            raise BudgetSpent(
                f"{self._budget_reason()} until {_utc_text(until)}", retry_after=remaining
            )

    def _budget_reason(self) -> str:
        return f"the daily budget of {self._budget} requests, shared by all hosts, is used up"

    def set_limit(self, limit: RateLimitConfig | None) -> None:
        """Apply a new rate limit (after a reload); the window's record of sends stays."""
        with self._lock:
            self._limit = limit
            self._notify()

    def set_budget(self, max_requests_per_day: int | None) -> None:
        """Apply a new daily budget (after a reload); today's shared count stays."""
        with self._lock:
            if max_requests_per_day != self._budget:
                self._budget_announced = False
            self._budget = max_requests_per_day
            self._notify()

    def keep_count_in(self, store: KeyValueStore) -> None:
        """Nothing to keep locally: Redis keeps the day's count for all hosts."""

    def keep_window_in(self, store: KeyValueStore) -> None:
        """Nothing to keep locally: Redis keeps the window's send times for all hosts."""

    def pause(self, seconds: float, reason: str) -> None:
        """Hold requests for ``seconds`` (extends, never shortens, a running pause).

        In scope ``key`` every host waits, in scope ``host`` this one. Redis
        failing, the pause is kept here and written when Redis answers.
        """
        if seconds <= 0:
            return
        key_hash = self._key_hash()
        with self._lock:
            end = time.monotonic() + seconds
            unsent = self._unsent.pause
            if unsent is None or unsent[0] != key_hash or unsent[1] < end:
                self._unsent.pause = (key_hash, end, logs.redact(reason))
        self._write_now("pause")

    def pause_until_wall(self, epoch: float, reason: str) -> None:
        """Restore a pause that ends at wall-clock time ``epoch`` (kept across restarts)."""
        remaining = epoch - time.time()
        if remaining > 0:
            self.pause(remaining, reason)

    def block(self, reason: str) -> None:
        """Hold every host's requests until :meth:`unblock` (the API rejected the key)."""
        with self._lock:
            self._unsent.stop = (self._key_hash(), logs.redact(reason))
        self._write_now("block")

    def unblock(self) -> None:
        """Lift the key stop for every host (a running pause stays)."""
        with self._lock:
            self._unsent.stop = (self._key_hash(), None)
        self._write_now("unblock")

    def wake(self) -> None:
        """Wake waiters so they re-check their stop event."""
        with self._lock:
            self._notify()

    def _notify(self) -> None:
        self._wakes += 1
        self._lock.notify_all()

    def _write_now(self, what: str) -> None:
        try:
            self._write_unsent()
        except redis.RedisError as error:
            self._lost(error)
            logger.warning("ocr.space %s: written to Redis once it answers again", what)
        with self._lock:
            self._notify()

    def _write_unsent(self) -> None:
        """Write the pause and stop asked for meanwhile; raises RedisError when Redis fails."""
        with self._lock:
            if self._unsent.pause is None and self._unsent.stop is None:
                return
        # One writer at a time, so that a block and the unblock after it reach Redis in order.
        with self._writing:
            with self._lock:
                pause, stop = self._unsent.pause, self._unsent.stop
            if pause is not None:
                key_hash, end, reason = pause
                remaining = math.ceil((end - time.monotonic()) * 1000)
                if remaining > 0:
                    self._pause(keys=[self._pause_key(key_hash)], args=[reason, remaining])
            if stop is not None:
                stopped_hash, stop_reason = stop
                if stop_reason is None:
                    self._client.delete(self._keys.api(stopped_hash, "stop"))
                else:
                    self._client.set(self._keys.api(stopped_hash, "stop"), stop_reason)
            with self._lock:
                # Only what was written: a pause or stop asked for meanwhile stays unsent.
                if self._unsent.pause is pause:
                    self._unsent.pause = None
                if self._unsent.stop is stop:
                    self._unsent.stop = None

    def state(self) -> GateState:
        """What holds requests now, as Redis says; the last known state when it cannot."""
        key_hash = self._key_hash()
        keys = [
            self._keys.api(key_hash, "stop"),
            self._pause_key(key_hash),
            self._keys.api(key_hash, "day"),
        ]
        try:
            self._write_unsent()
            stop, pause_left, pause_reason, used, to_midnight = self._read(keys=keys)
        except redis.RedisError as error:
            self._lost(error)
            with self._lock:
                return replace(self._last, unreachable=self._unreachable)
        self._found()
        now = time.time()
        paused_until = now + int(pause_left) / 1000 if int(pause_left) > 0 else None
        with self._lock:
            budget = self._budget
            spent = budget is not None and int(used) >= budget
            if paused_until is not None and (
                self._pause_seen_until is None
                or paused_until > self._pause_seen_until + PAUSE_NOTICE_SLACK
            ):
                self._pause_number += 1
            self._pause_seen_until = paused_until
            self._last = GateState(
                paused_until=paused_until,
                pause_reason=_text(pause_reason) if paused_until is not None else None,
                blocked=_text(stop),
                pause_number=self._pause_number,
                requests_today=int(used),
                max_requests_per_day=budget,
                budget_until=now + int(to_midnight) / 1000 if spent else None,
                budget_reason=self._budget_reason() if spent else None,
            )
            return self._last

    def _lost(self, error: redis.RedisError) -> None:
        text = describe_error(error)
        with self._lock:
            first = self._unreachable is None
            self._unreachable = text
        if first:
            logger.warning("ocr.space requests wait until Redis answers again: %s", text)

    def _found(self) -> None:
        with self._lock:
            was = self._unreachable
            self._unreachable = None
            if was is not None:
                self._notify()
        if was is not None:
            logger.info("Redis answers again: ocr.space requests go on")

    def _pause_key(self, key_hash: str) -> str:
        return self._scoped(key_hash, "pause")

    def _scoped(self, key_hash: str, what: str) -> str:
        """A key of the rate limit: per API key, or per API key and host in scope ``host``."""
        if self._scope == "host":
            return self._keys.api(key_hash, f"{what}:{self._host}")
        return self._keys.api(key_hash, what)


def _text(value: Any) -> str | None:
    """A Redis string as text, whether or not the client decodes answers."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _utc_text(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
