"""Waiting with deadlines instead of fixed sleeps."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal, TypeVar

T = TypeVar("T")

POLL_SECONDS = 0.02


def wait_until(
    predicate: Callable[[], T | None | Literal[False]],
    timeout: float = 20.0,
    *,
    message: str = "",
    interval: float = POLL_SECONDS,
) -> T:
    """Poll ``predicate`` every ``interval`` until it returns something truthy; fail after ``timeout`` seconds.

    The value returned is the truthy one, so never ``None`` or ``False``: a
    predicate typed ``str | None`` (or ``cond and text``) gives back a ``str``.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message or predicate}")
        time.sleep(interval)
