"""The request gate: token bucket, API pauses and key blocks."""

from __future__ import annotations

import threading

import pytest

from ocrwatch.config import RateLimitConfig
from ocrwatch.errors import Interrupted
from ocrwatch.ratelimit import RequestGate


class FakeClock:
    """A monotonic clock the test moves by hand; waiting advances it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_burst_goes_at_once_then_requests_are_spaced() -> None:
    """With 3 per 30 s, three requests pass at once and the fourth needs 10 s of refill."""
    clock = FakeClock()
    gate = RequestGate(RateLimitConfig(requests=3, per_seconds=30), clock=clock)
    for _ in range(3):
        gate.acquire()
    assert pytest.approx(10.0) == gate._wait_needed()
    clock.now += 10.0
    gate.acquire()
    assert pytest.approx(10.0) == gate._wait_needed()


def test_no_limit_never_waits() -> None:
    """Without a configured limit the gate only holds for pauses."""
    gate = RequestGate(None)
    for _ in range(1000):
        gate.acquire()


def test_pause_holds_requests_and_reports_wall_time() -> None:
    """An API pause holds every request until its window ends, and shows when."""
    clock = FakeClock()
    gate = RequestGate(None, clock=clock, wall=lambda: 5_000.0)
    gate.pause(600, "rate limit: 10 per 600 s")
    state = gate.state()
    assert (5_600.0, "rate limit: 10 per 600 s", None) == (
        state.paused_until,
        state.pause_reason,
        state.blocked,
    )
    assert pytest.approx(600.0) == gate._wait_needed()
    gate.pause(10, "shorter")
    assert "rate limit: 10 per 600 s" == gate.state().pause_reason
    clock.now += 600
    gate.acquire()
    assert gate.state().paused_until is None


def test_waiting_stops_when_asked() -> None:
    """A blocked gate raises Interrupted once the stop event is set."""
    gate = RequestGate(None)
    gate.block("key rejected")
    stop = threading.Event()
    errors: list[BaseException] = []

    def wait() -> None:
        try:
            gate.acquire(stop)
        except Interrupted as error:
            errors.append(error)

    thread = threading.Thread(target=wait)
    thread.start()
    stop.set()
    gate.wake()
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert 1 == len(errors)


def test_unblock_releases_waiters() -> None:
    """After unblock (a reload with a new key), requests flow again."""
    gate = RequestGate(None)
    gate.block("key rejected")
    passed = threading.Event()

    def pass_gate() -> None:
        gate.acquire()
        passed.set()

    thread = threading.Thread(target=pass_gate)
    thread.start()
    assert not passed.wait(0.05)
    gate.unblock()
    assert passed.wait(5)
    thread.join()
