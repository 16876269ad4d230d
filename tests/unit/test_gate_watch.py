"""The daemon's warnings about ocr.space, on a clock the test drives."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from ocrwatch.daemon.context import Context
from ocrwatch.daemon.reporting import KEY_REMINDER_SECONDS, GateWatch
from ocrwatch.errors import InvalidKeyError
from ocrwatch.metrics import Metrics
from ocrwatch.ratelimit import RequestGate
from ocrwatch.tracker import Tracker
from tests.support.plans import plan_for


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def context(tmp_path: Path) -> Context:
    plan = plan_for(tmp_path)
    return Context(
        plan=plan, env={}, tracker=Tracker(settle_seconds=lambda inbox: 1.0, max_pending=100)
    )


def critical_lines(caplog: pytest.LogCaptureFixture) -> int:
    return sum(record.levelno == logging.CRITICAL for record in caplog.records)


def test_a_rejected_key_is_reported_at_once_even_right_after_boot(
    context: Context, caplog: pytest.LogCaptureFixture
) -> None:
    """The monotonic clock is near zero after boot; the first rejection is still logged at once."""
    clock = Clock(3.0)
    watch = GateWatch(context, RequestGate(), Metrics(), clock=clock)
    watch.key_rejected(InvalidKeyError("The API key is invalid"))
    assert 1 == critical_lines(caplog)
    assert "API key rejected: The API key is invalid" == context.stats.last_error


def test_a_rejected_key_is_repeated_every_ten_minutes_not_every_file(
    context: Context, caplog: pytest.LogCaptureFixture
) -> None:
    """Files held back in between add no lines; the reminder comes after the interval."""
    clock = Clock(3.0)
    watch = GateWatch(context, RequestGate(), Metrics(), clock=clock)
    for now in (3.0, 4.0, 3.0 + KEY_REMINDER_SECONDS - 1, 3.0 + KEY_REMINDER_SECONDS):
        clock.now = now
        watch.key_rejected(InvalidKeyError("The API key is invalid"))
    assert 2 == critical_lines(caplog)
