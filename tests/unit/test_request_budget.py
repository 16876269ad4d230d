"""The daily request budget (``ocrspace.max_requests_per_day``), on clocks the test drives."""

from __future__ import annotations

import datetime
import logging
import threading
from pathlib import Path

import pytest

from ocrwatch import once
from ocrwatch.config import load_config
from ocrwatch.counting import COUNT_KEY, day_start
from ocrwatch.daemon.context import Context
from ocrwatch.daemon.reporting import GateWatch
from ocrwatch.errors import Interrupted
from ocrwatch.inspection import DaemonState, render_status
from ocrwatch.metrics import Metrics
from ocrwatch.outcome import Status
from ocrwatch.plan import make_plan
from ocrwatch.ratelimit import BudgetSpent, RequestGate
from ocrwatch.store import StateStore
from ocrwatch.tracker import Tracker
from tests.support.commands import KEY
from tests.support.ocrspace_server import FakeOcrSpace
from tests.support.plans import plan_for, write_config_with_folders
from tests.support.render import page

DAY = datetime.date(2024, 6, 1)
MIDNIGHT = day_start(DAY + datetime.timedelta(days=1))
"""2024-06-02T00:00:00Z, when the budget of 2024-06-01 resets."""
EVENING = MIDNIGHT - 2 * 3600.0
"""2024-06-01T22:00:00Z."""


class Clock:
    """A clock the test sets by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class MemoryStore:
    """The state store's key/value side, in a dict."""

    def __init__(self, values: dict[str, str] | None = None) -> None:
        self.values = dict(values or {})

    def get(self, key: str) -> str | None:
        return self.values.get(key)

    def put(self, key: str, value: str | None) -> None:
        if value is None:
            self.values.pop(key, None)
        else:
            self.values[key] = value


def budget_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.levelno == logging.WARNING and "daily budget" in record.getMessage()
    ]


def test_a_used_up_budget_pauses_the_gate_until_midnight_utc(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The third of 3 requests spends the budget: the gate holds until 00:00 UTC and says so once."""
    wall = Clock(EVENING)
    gate = RequestGate(max_requests_per_day=3, clock=Clock(50.0), wall=wall)
    for _ in range(3):
        gate.acquire()
    state = gate.state()
    assert (3, 3, MIDNIGHT, "the daily budget of 3 requests is used up") == (
        state.requests_today,
        state.max_requests_per_day,
        state.budget_until,
        state.budget_reason,
    )
    assert (MIDNIGHT, "the daily budget of 3 requests is used up") == state.held()
    assert pytest.approx(2 * 3600.0) == gate._wait_needed()
    wall.now += 3600.0
    assert pytest.approx(3600.0) == gate._wait_needed()
    assert [
        "ocr.space: the daily budget of 3 requests is used up; OCR waits until "
        "2024-06-02T00:00:00Z (00:00 UTC), no file fails meanwhile"
    ] == budget_lines(caplog)


def test_a_waiting_request_is_held_while_the_budget_is_used_up() -> None:
    """A request that finds the budget spent is not admitted; it leaves only when stopped."""
    gate = RequestGate(max_requests_per_day=1, wall=Clock(EVENING))
    gate.acquire()
    stop = threading.Event()
    stop.set()
    with pytest.raises(Interrupted):
        gate.acquire(stop)
    assert 1 == gate.state().requests_today


def test_midnight_utc_reopens_the_gate_and_starts_a_new_count() -> None:
    """At 00:00 UTC the count starts again from zero and requests flow."""
    wall = Clock(EVENING)
    gate = RequestGate(max_requests_per_day=2, clock=Clock(50.0), wall=wall)
    gate.acquire()
    gate.acquire()
    wall.now = MIDNIGHT
    assert 0.0 == gate._wait_needed()
    gate.acquire()
    state = gate.state()
    assert (1, None, (None, None)) == (state.requests_today, state.budget_until, state.held())


def test_every_request_is_counted_and_kept_even_without_a_budget() -> None:
    """With no budget the gate never waits for one, but still counts and keeps the day's requests."""
    store = MemoryStore()
    gate = RequestGate(wall=Clock(EVENING))
    gate.keep_count_in(store)
    for _ in range(4):
        gate.acquire()
    assert (4, None, None) == (
        gate.state().requests_today,
        gate.state().max_requests_per_day,
        gate.state().budget_until,
    )
    assert {COUNT_KEY: "2024-06-01 4"} == store.values


def test_the_count_is_restored_from_the_store_for_the_same_day(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A restart that finds 3 requests of today in the store with a budget of 3 holds at once."""
    gate = RequestGate(max_requests_per_day=3, wall=Clock(EVENING))
    gate.keep_count_in(MemoryStore({COUNT_KEY: "2024-06-01 3"}))
    assert (3, MIDNIGHT) == (gate.state().requests_today, gate.state().budget_until)
    assert 1 == len(budget_lines(caplog))


@pytest.mark.parametrize("kept", ["2024-05-31 500", "garbage", "2024-06-01 many"])
def test_a_count_of_another_day_or_unreadable_is_not_restored(kept: str) -> None:
    """Yesterday's count, or one that cannot be read, leaves today's count at zero."""
    gate = RequestGate(max_requests_per_day=3, wall=Clock(EVENING))
    gate.keep_count_in(MemoryStore({COUNT_KEY: kept}))
    assert (0, None) == (gate.state().requests_today, gate.state().budget_until)


def test_a_reload_that_raises_the_budget_reopens_the_gate_and_one_that_lowers_it_pauses() -> None:
    """set_budget applies the new maximum to today's count at once."""
    gate = RequestGate(max_requests_per_day=2, clock=Clock(50.0), wall=Clock(EVENING))
    gate.acquire()
    gate.acquire()
    gate.set_budget(5)
    assert (None, 0.0) == (gate.state().budget_until, gate._wait_needed())
    gate.set_budget(1)
    assert MIDNIGHT == gate.state().budget_until
    gate.set_budget(None)
    assert (None, 0.0) == (gate.state().budget_until, gate._wait_needed())


def test_a_gate_that_will_not_wait_for_tomorrow_refuses_with_the_time_left() -> None:
    """``once``'s gate raises BudgetSpent (a rate limit) with the seconds until 00:00 UTC."""
    gate = RequestGate(max_requests_per_day=1, longest_budget_wait=300.0, wall=Clock(EVENING))
    gate.acquire()
    with pytest.raises(BudgetSpent) as refused:
        gate.acquire()
    assert "rate_limit" == refused.value.classification
    assert pytest.approx(2 * 3600.0) == refused.value.retry_after
    assert 1 == gate.state().requests_today


def test_a_gate_waits_for_a_reset_closer_than_its_longest_wait() -> None:
    """Five minutes before midnight, ``once``'s gate waits rather than refuses."""
    gate = RequestGate(max_requests_per_day=1, longest_budget_wait=300.0, wall=Clock(MIDNIGHT - 60))
    gate.acquire()
    stop = threading.Event()
    stop.set()
    with pytest.raises(Interrupted):
        gate.acquire(stop)


def test_the_daemon_keeps_the_count_across_a_restart(tmp_path: Path) -> None:
    """GateWatch keeps the count in the state store; the next daemon's gate continues from it."""
    wall = Clock(EVENING)
    plan = plan_for(tmp_path)

    def start() -> tuple[RequestGate, StateStore]:
        store = StateStore(tmp_path / "state")
        context = Context(
            plan=plan,
            env={},
            tracker=Tracker(settle_seconds=lambda inbox: 1.0, max_pending=100),
            store=store,
        )
        gate = RequestGate(max_requests_per_day=3, wall=wall)
        GateWatch(context, gate, Metrics()).restore_pause()
        return gate, store

    gate, store = start()
    gate.acquire()
    gate.acquire()
    store.close()
    gate, store = start()
    assert 2 == gate.state().requests_today
    gate.acquire()
    assert MIDNIGHT == gate.state().budget_until
    store.close()


def test_status_shows_the_budget_pause_and_the_requests_used() -> None:
    """``ocrwatch status`` names the budget as the pause's reason and shows today's requests of it."""
    snapshot = {
        "started": "2024-06-01T08:00:00.000Z",
        "status": "1 inbox(es), 2 waiting",
        "ocrspace": {
            "paused_until": "2024-06-02T00:00:00.000Z",
            "pause_reason": "the daily budget of 3 requests is used up",
            "blocked": None,
            "requests_today": 3,
            "max_requests_per_day": 3,
        },
        "inboxes": [],
    }
    text = render_status(DaemonState(Path("/state"), 42, True, snapshot))
    assert [
        "  ocr.space: paused until 2024-06-02T00:00:00.000Z "
        "(the daily budget of 3 requests is used up)",
        "  ocr.space requests today (UTC): 3 of the daily budget of 3",
    ] == text.splitlines()[2:4]


def test_once_sends_no_more_than_the_budget_and_leaves_the_rest_for_later(tmp_path: Path) -> None:
    """``once`` with a budget of 2 and 5 files: 2 requests, 2 files done, 3 left without error sidecars."""
    with FakeOcrSpace(mode="text", api_key=KEY) as server:
        config = {
            "engine": "ocrspace",
            "ocrspace": {"endpoint": server.url, "attempts": 1, "max_requests_per_day": 2},
            "workers": 1,
            "inboxes": [{"path": "in"}],
        }
        plan = make_plan(
            load_config(write_config_with_folders(tmp_path, config)),
            env={"OCRSPACE_API_KEY": KEY},
        )
        image, _ = page(["a page"], size=(300, 100))
        for index in range(5):
            image.save(plan.inboxes[0].path / f"scan-{index}.png")
        noon = day_start(datetime.date(2024, 6, 1)) + 12 * 3600  # the reset is hours away
        report = once.run_once(plan, once.collect(plan), wall=lambda: noon)
        sent = len(server.requests)
    assert 2 == sent
    assert {Status.DONE: 2, Status.DEFERRED: 3} == dict(report.counts())
    assert all(
        "daily budget of 2 requests is used up" in outcome.message
        for outcome in report.outcomes
        if outcome.status is Status.DEFERRED
    )
    assert [] == sorted(plan.inboxes[0].path.glob("*.error.json"))
