"""The shared ocr.space gate of distributed mode, against a real redis-server.

Two :class:`SharedGate` objects on their own Redis connections stand in for
two hosts.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from typing import cast

import pytest
import redis

from ocrwatch import logs
from ocrwatch.cluster.budget import SharedGate, api_key_hash
from ocrwatch.cluster.jobs import Keys
from ocrwatch.config import RateLimitConfig
from ocrwatch.errors import Interrupted
from ocrwatch.ratelimit import BudgetSpent
from tests.support.redis_server import RedisServer
from tests.support.waiting import wait_until

API_KEY = "K8-SHARED-GATE-KEY-7731"
HOLD_SECONDS = 0.6
"""How long a request that must wait is watched not going (what holds it lasts far longer)."""
RELEASE_TIMEOUT = 10.0
PAUSE_SLACK = 0.02
"""The pause is timed from just before it is set, admission just after: allowance for the clocks' reads."""


def make_gate(
    server: RedisServer,
    host: str,
    *,
    scope: str = "key",
    limit: RateLimitConfig | None = None,
    budget: int | None = None,
    longest_budget_wait: float | None = None,
    key: Callable[[], str] = lambda: API_KEY,
) -> SharedGate:
    """A host's gate, on its own connection to ``server``."""
    client = redis.Redis(
        host="127.0.0.1",
        port=server.port,
        decode_responses=True,
        socket_timeout=2,
        socket_connect_timeout=2,
    )
    return SharedGate(
        client,
        Keys("test"),
        key_hash=lambda: api_key_hash(key()),
        host=host,
        scope="host" if scope == "host" else "key",
        limit=limit,
        max_requests_per_day=budget,
        longest_budget_wait=longest_budget_wait,
    )


class Attempt:
    """One ``acquire()`` in its own thread, as a worker makes it."""

    def __init__(self, gate: SharedGate) -> None:
        self.gate = gate
        self.stop = threading.Event()
        self.admitted = threading.Event()
        self.admitted_at: float | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.gate.acquire(self.stop)
        except BaseException as error:  # noqa: BLE001 - the test reads it
            self.error = error
            return
        self.admitted_at = time.monotonic()
        self.admitted.set()

    def cancel(self) -> None:
        self.stop.set()
        self.gate.wake()
        self.thread.join(RELEASE_TIMEOUT)


def sends(gate: SharedGate) -> None:
    """One request goes through ``gate`` now (fails, rather than hangs, when it is held)."""
    attempt = Attempt(gate)
    try:
        assert attempt.admitted.wait(RELEASE_TIMEOUT), attempt.error
    finally:
        attempt.cancel()


def admissions(
    server: RedisServer, gates: list[SharedGate], *, threads_per_gate: int, seconds: float
) -> tuple[int, list[int]]:
    """Acquire as fast as possible from several threads per gate.

    Returns how many were admitted, and the send times the window recorded
    (Redis's clock, in milliseconds), gathered while they are in it.
    """
    admitted = 0
    lock = threading.Lock()
    stop = threading.Event()
    window = Keys("test").api(api_key_hash(API_KEY), "window")
    recorded: dict[str, float] = {}

    def worker(gate: SharedGate) -> None:
        nonlocal admitted
        while True:
            try:
                gate.acquire(stop)
            except Interrupted:
                return
            with lock:
                admitted += 1

    def watch() -> None:
        # Each send time stays in the window for a whole window: reading it
        # more often than that sees every one.
        client = server.client()
        while True:
            done = stop.is_set() and not any(thread.is_alive() for thread in workers)
            for pair in client.zrange(window, 0, -1, withscores=True):
                member, score = cast(tuple[str, float], pair)
                recorded[member] = score
            if done:
                return
            time.sleep(0.1)

    workers = [
        threading.Thread(target=worker, args=(gate,), daemon=True)
        for gate in gates
        for _ in range(threads_per_gate)
    ]
    watcher = threading.Thread(target=watch, daemon=True)
    for thread in [*workers, watcher]:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for gate in gates:
        gate.wake()
    for thread in [*workers, watcher]:
        thread.join(RELEASE_TIMEOUT)
    return admitted, sorted(int(score) for score in recorded.values())


def fullest_window(times: list[int], milliseconds: int) -> int:
    """The most send times in any window of ``milliseconds``."""
    return max(
        sum(1 for other in times[index:] if other - start < milliseconds)
        for index, start in enumerate(times)
    )


def test_the_window_holds_over_all_hosts(redis_server: RedisServer) -> None:
    """3 per second over two hosts of two workers each: no second holds more than 3, and most hold 3.

    In 3.6 s four windows begin (at 0, 1, 2 and 3 s): 12 requests, 10 even if the waits run late.
    """
    limit = RateLimitConfig(requests=3, per_seconds=1)
    gates = [make_gate(redis_server, host, limit=limit) for host in ("a", "b")]
    admitted, times = admissions(redis_server, gates, threads_per_gate=2, seconds=3.6)
    assert admitted == len(times)
    assert 3 == fullest_window(times, 1000)
    assert admitted >= 10, times


def test_scope_host_gives_each_host_its_own_window(redis_server: RedisServer) -> None:
    """In scope host each host sends 2 of 2 per 600 s; the third on a host waits."""
    limit = RateLimitConfig(requests=2, per_seconds=600)
    first, second = (make_gate(redis_server, h, scope="host", limit=limit) for h in ("a", "b"))
    for gate in (first, second, first, second):
        sends(gate)
    third = Attempt(first)
    try:
        assert not third.admitted.wait(HOLD_SECONDS)
    finally:
        third.cancel()
    assert isinstance(third.error, Interrupted)


def test_scope_key_shares_the_window(redis_server: RedisServer) -> None:
    """In scope key, 2 per 600 s sent by one host hold the other."""
    limit = RateLimitConfig(requests=2, per_seconds=600)
    first, second = (make_gate(redis_server, h, scope="key", limit=limit) for h in ("a", "b"))
    first.acquire()
    first.acquire()
    waiting = Attempt(second)
    try:
        assert not waiting.admitted.wait(HOLD_SECONDS)
    finally:
        waiting.cancel()
    assert isinstance(waiting.error, Interrupted)


def test_a_pause_through_one_host_holds_the_other_until_it_ends(redis_server: RedisServer) -> None:
    """The API's pause reaches every host, shows in status, and ends on time."""
    first, second = (make_gate(redis_server, host) for host in ("a", "b"))
    paused_at = time.monotonic()
    first.pause(1.5, "ocr.space rate limit")
    waiting = Attempt(second)
    try:
        state = second.state()
        assert ("ocr.space rate limit", 1) == (state.pause_reason, state.pause_number)
        assert 1 == second.state().pause_number  # the same pause, read again
        assert not waiting.admitted.wait(HOLD_SECONDS)
        assert waiting.admitted.wait(RELEASE_TIMEOUT)
    finally:
        waiting.cancel()
    assert waiting.admitted_at is not None
    assert waiting.admitted_at - paused_at >= 1.5 - PAUSE_SLACK
    assert second.state().paused_until is None


def test_a_shorter_pause_does_not_shorten_a_longer_one(redis_server: RedisServer) -> None:
    """A 2 s pause asked for during a 60 s one leaves the 60 s one; a 120 s one extends it."""
    first, second = (make_gate(redis_server, host) for host in ("a", "b"))
    first.pause(60, "long")
    before = first.state()
    second.pause(2, "short")
    state = first.state()
    assert ("long", before.pause_number) == (state.pause_reason, state.pause_number)
    assert state.paused_until is not None and state.paused_until > time.time() + 50
    second.pause(120, "longer")
    state = first.state()
    assert ("longer", before.pause_number + 1) == (state.pause_reason, state.pause_number)


def test_scope_host_keeps_pauses_per_host(redis_server: RedisServer) -> None:
    """In scope host the API's pause holds the host it answered, not the other."""
    first, second = (make_gate(redis_server, host, scope="host") for host in ("a", "b"))
    first.pause(60, "rate limit")
    sends(second)
    assert (True, None) == (first.state().paused_until is not None, second.state().paused_until)


def test_a_block_through_one_host_stops_the_other_until_unblocked(
    redis_server: RedisServer,
) -> None:
    """A rejected key stops every host; one host's unblock (a reload) releases both."""
    first, second = (make_gate(redis_server, host) for host in ("a", "b"))
    first.block("ocr.space rejected the API key")
    assert "ocr.space rejected the API key" == second.state().blocked
    waiting = [Attempt(first), Attempt(second)]
    try:
        assert not any(attempt.admitted.wait(HOLD_SECONDS / 2) for attempt in waiting)
        second.unblock()
        assert all(attempt.admitted.wait(RELEASE_TIMEOUT) for attempt in waiting)
    finally:
        for attempt in waiting:
            attempt.cancel()
    assert None is first.state().blocked


def test_a_new_key_is_not_held_by_the_old_keys_block(redis_server: RedisServer) -> None:
    """The stop belongs to the rejected key: a host whose key changed sends again."""
    key = ["K8-OLD-KEY-0001"]
    gate = make_gate(redis_server, "a", key=lambda: key[0])
    gate.block("rejected")
    key[0] = "K8-NEW-KEY-0002"
    sends(gate)
    assert None is gate.state().blocked


def test_the_daily_budget_is_shared(redis_server: RedisServer) -> None:
    """5 a day: 3 through one host and 2 through the other spend it for both."""
    first, second = (
        make_gate(redis_server, host, budget=5, longest_budget_wait=60) for host in ("a", "b")
    )
    for _ in range(3):
        first.acquire()
    for _ in range(2):
        second.acquire()
    for gate in (first, second):
        with pytest.raises(BudgetSpent):
            gate.acquire()
    state = first.state()
    assert (5, 5) == (state.requests_today, state.max_requests_per_day)
    assert state.budget_until is not None and state.budget_until > time.time()


def test_a_spent_budget_holds_without_longest_wait(redis_server: RedisServer) -> None:
    """Without longest_budget_wait a spent budget waits (for 00:00 UTC) instead of raising."""
    gate = make_gate(redis_server, "a", budget=1)
    gate.acquire()
    waiting = Attempt(gate)
    try:
        assert not waiting.admitted.wait(HOLD_SECONDS)
    finally:
        waiting.cancel()
    assert isinstance(waiting.error, Interrupted)


def test_without_redis_nothing_is_admitted_until_it_answers(redis_server: RedisServer) -> None:
    """Fail closed: Redis down holds every request and says so; an empty Redis back admits again."""
    gate = make_gate(redis_server, "a")
    gate.acquire()
    redis_server.stop()
    waiting = Attempt(gate)
    try:
        unreachable = wait_until(lambda: gate.state().unreachable, RELEASE_TIMEOUT)
        assert "cannot reach Redis" in unreachable
        assert not waiting.admitted.wait(HOLD_SECONDS)
        redis_server.start()
        assert waiting.admitted.wait(RELEASE_TIMEOUT), waiting.error
    finally:
        waiting.cancel()
    assert None is gate.state().unreachable


def test_a_pause_and_a_block_while_redis_is_down_are_written_when_it_answers(
    redis_server: RedisServer,
) -> None:
    """The API's answers during an outage reach the other hosts once Redis is back."""
    first, second = (make_gate(redis_server, host) for host in ("a", "b"))
    redis_server.stop()
    first.pause(60, "rate limit")
    first.block("rejected")
    redis_server.start()
    first.state()
    state = second.state()
    assert ("rate limit", "rejected") == (state.pause_reason, state.blocked)


def test_the_api_key_never_reaches_redis(redis_server: RedisServer) -> None:
    """Neither the key nor its bare hash is in any Redis key or value, whatever the gate wrote."""
    logs.register_secret(API_KEY)
    limit = RateLimitConfig(requests=10, per_seconds=60)
    gates = [
        make_gate(redis_server, "a", limit=limit, budget=100),
        make_gate(redis_server, "b", scope="host", limit=limit, budget=100),
    ]
    for gate in gates:
        gate.acquire()
        gate.pause(30, f"rate limit for key {API_KEY}")
    gates[0].block(f"ocr.space rejected the API key {API_KEY}")
    bare_hash = hashlib.sha256(API_KEY.encode()).hexdigest()[:16]
    client = redis_server.client()
    stored = []
    for name in client.scan_iter("*"):
        kind = client.type(name)
        if kind == "string":
            stored.append(f"{name!r} {client.get(name)!r}")
        elif kind == "hash":
            stored.append(f"{name!r} {client.hgetall(name)!r}")
        elif kind == "zset":
            stored.append(f"{name!r} {client.zrange(name, 0, -1, withscores=True)!r}")
        else:
            stored.append(f"{name!r} of unexpected type {kind!r}")
    assert len(stored) >= 6, stored  # stop, two pauses, day, two windows
    everything = "\n".join(stored)
    assert API_KEY not in everything
    assert bare_hash not in everything
