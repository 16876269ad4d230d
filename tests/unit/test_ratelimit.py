"""The request gate: the sliding window of ``rate_limit``, API pauses and key blocks."""

from __future__ import annotations

import random
import threading
from pathlib import Path

import pytest

from ocrwatch.config import RateLimitConfig
from ocrwatch.counting import WINDOW_KEY
from ocrwatch.errors import Interrupted
from ocrwatch.ratelimit import RequestGate
from ocrwatch.store import StateStore

ARRIVALS = 200
WALL_START = 1_717_200_000.0
"""2024-06-01T00:00:00Z: the wall clock of the tests that keep the window in a store."""


class FakeClock:
    """A clock the test moves by hand; waiting advances it."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def limit(requests: int, per_seconds: float) -> RateLimitConfig:
    return RateLimitConfig(requests=requests, per_seconds=per_seconds)


def send_when_allowed(gate: RequestGate, clock: FakeClock, *extra: FakeClock) -> float:
    """Move the clocks on until the gate lets a request go, send it, and return when it went."""
    wait = gate._wait_needed()
    if wait > 0:
        for each in (clock, *extra):
            each.now += wait
    assert gate._wait_needed() <= 0, "the gate still holds a request at the time it named"
    gate.acquire()
    return clock.now


def test_n_requests_go_at_once_then_the_next_waits_for_the_oldest_to_age_out() -> None:
    """With 3 per 30 s, three go at once; the fourth waits until the first is 30 s old, not 10 s."""
    clock = FakeClock()
    gate = RequestGate(limit(3, 30), clock=clock)
    for _ in range(3):
        gate.acquire()
    assert pytest.approx(30.0) == gate._wait_needed()
    clock.now += 10.0
    assert pytest.approx(20.0) == gate._wait_needed()
    clock.now += 20.0
    for _ in range(3):
        gate.acquire()
    assert pytest.approx(30.0) == gate._wait_needed()


@pytest.mark.parametrize("seed", range(6))
def test_no_window_ever_holds_more_than_the_limit(seed: int) -> None:
    """Random arrivals: no S-second window holds more than N sends, and none waits longer than needed."""
    draw = random.Random(seed)
    requests, per_seconds = draw.randint(1, 6), draw.choice([1.0, 2.5, 30.0, 600.0])
    clock = FakeClock(0.0)
    gate = RequestGate(limit(requests, per_seconds), clock=clock)
    # About as many arrivals as the limit lets through, so some wait and some go at once;
    # in eighths of a second, so that every sum and difference below is exact.
    span = int(ARRIVALS * per_seconds / requests * 8)
    arrivals = sorted(draw.randint(0, span) / 8 for _ in range(ARRIVALS))
    sent: list[float] = []
    for arrival in arrivals:
        clock.now = max(clock.now, arrival)
        sent.append(send_when_allowed(gate, clock))
    for first, last in zip(sent, sent[requests:], strict=False):
        assert last - first >= per_seconds, f"{requests + 1} sends within {last - first} s"
    for index, (arrival, went) in enumerate(zip(arrivals, sent, strict=True)):
        earliest = max(arrival, sent[index - 1] if index else arrival)
        if index >= requests:
            earliest = max(earliest, sent[index - requests] + per_seconds)
        assert earliest == went, f"request {index} held longer than the window needs"


def test_the_window_survives_a_restart_through_the_state_store(tmp_path: Path) -> None:
    """Three sent, then a restart 12 s later (a new monotonic clock): the next waits the other 18 s."""
    wall = FakeClock(WALL_START)
    store = StateStore(tmp_path / "state")
    before = RequestGate(limit(3, 30), clock=FakeClock(1000.0), wall=wall)
    before.keep_window_in(store)
    for _ in range(3):
        before.acquire()
    store.close()

    wall.now += 12.0
    store = StateStore(tmp_path / "state")
    clock = FakeClock(5.0)
    after = RequestGate(limit(3, 30), clock=clock, wall=wall)
    after.keep_window_in(store)
    assert pytest.approx(18.0) == after._wait_needed()
    send_when_allowed(after, clock, wall)
    assert WALL_START + 30.0 == wall.now
    kept = [float(epoch) for epoch in (store.get(WINDOW_KEY) or "").split()]
    assert pytest.approx([WALL_START + 30.0], abs=1e-3) == kept, "sends 30 s old are still kept"
    store.close()


def test_unreadable_or_future_send_times_in_the_store(tmp_path: Path) -> None:
    """An unreadable record is ignored; a send the wall clock puts in the future counts as now."""
    store = StateStore(tmp_path / "state")
    for kept, expected in (("not times", 0.0), (repr(WALL_START + 3600.0), 30.0)):
        store.put(WINDOW_KEY, kept)
        gate = RequestGate(limit(1, 30), clock=FakeClock(), wall=lambda: WALL_START)
        gate.keep_window_in(store)
        assert pytest.approx(expected) == gate._wait_needed(), kept
    store.close()


def test_a_reload_applies_the_new_limit_to_what_was_sent() -> None:
    """Changing N or S keeps the sends already made: a reload never grants a fresh burst."""
    clock = FakeClock()
    gate = RequestGate(limit(3, 30), clock=clock)
    for _ in range(3):
        gate.acquire()
    clock.now += 10.0
    gate.set_limit(limit(5, 30))
    gate.acquire()
    gate.acquire()
    assert pytest.approx(20.0) == gate._wait_needed(), "the sixth waits for the first to age out"
    gate.set_limit(limit(2, 30))
    assert pytest.approx(30.0) == gate._wait_needed(), "five recent: waits for the fourth to age"
    gate.set_limit(limit(5, 60))
    assert pytest.approx(50.0) == gate._wait_needed()
    gate.set_limit(limit(5, 30))
    assert pytest.approx(20.0) == gate._wait_needed()


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
