"""Waiting with deadlines instead of fixed sleeps."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

POLL_SECONDS = 0.02


def wait_until(
    predicate: Callable[[], T],
    timeout: float = 20.0,
    *,
    message: str = "",
    interval: float = POLL_SECONDS,
) -> T:
    """Poll ``predicate`` every ``interval`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message or predicate}")
        time.sleep(interval)
