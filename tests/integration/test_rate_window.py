"""``ocrspace.rate_limit`` in the real daemon: at most N requests in any S seconds, as ocr.space counts.

The fake server records when each request arrived; a window shorter than S by
:data:`NETWORK_MARGIN` (requests admitted together may reach the server a
little apart) must never hold more than N of them, during a run and across a
restart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.daemon import DaemonProcess, Daemons
from tests.support.hostile import page_bytes
from tests.support.ocrspace_server import FakeOcrSpace
from tests.support.rig import KEY, assert_alive, daemon_config
from tests.support.verdicts import finished, verdict
from tests.support.waiting import wait_until

REQUESTS = 3
PER_SECONDS = 2.0
RESTART_PER_SECONDS = 4.0
"""Longer than a stop and a start take, so that a restart lands inside the window it must honour."""
NETWORK_MARGIN = 0.1
"""How much closer than the gate let them go two requests may reach the server."""
WORKERS = 4
"""More workers than REQUESTS, so that the gate, not the pool, is what holds requests back."""
FILES = 9
RESTART_FILES = REQUESTS + 2
FINISH_TIMEOUT = 60.0


@pytest.fixture
def server() -> Iterator[FakeOcrSpace]:
    with FakeOcrSpace(mode="text", text="within the window", api_key=KEY) as fake:
        yield fake


@pytest.fixture
def daemon(tmp_path: Path, server: FakeOcrSpace) -> Iterator[Callable[[float], DaemonProcess]]:
    """A daemon (not started) limited to REQUESTS per the seconds given."""
    (tmp_path / "inbox").mkdir()
    daemons = Daemons(tmp_path, env={"OCRSPACE_API_KEY": KEY})

    def make(per_seconds: float) -> DaemonProcess:
        rate_limit = {"requests": REQUESTS, "per_seconds": per_seconds}
        return daemons.make(
            daemon_config(
                server.url,
                [{"path": str(tmp_path / "inbox")}],
                state_dir=tmp_path / "state",
                workers=WORKERS,
                ocrspace={"rate_limit": rate_limit},
            )
        )

    yield make
    daemons.close()


def drop(inbox: Path, count: int) -> list[Path]:
    images = [inbox / f"page-{index:02d}.png" for index in range(count)]
    for image in images:
        image.write_bytes(page_bytes(image.stem))
    return images


def arrivals(server: FakeOcrSpace) -> list[float]:
    return sorted(request.received_at for request in server.requests)


def crowded(times: list[float], seconds: float) -> list[tuple[float, float]]:
    """Each run of REQUESTS + 1 arrivals that falls within ``seconds``, as (first, last)."""
    return [
        (first, last)
        for first, last in zip(times, times[REQUESTS:], strict=False)
        if last - first < seconds
    ]


def all_done(images: list[Path]) -> None:
    wait_until(
        lambda: all(finished(image) for image in images),
        FINISH_TIMEOUT,
        message="a sidecar for every image",
    )
    for image in images:
        assert ("done", None) == verdict(image), image.name


def test_no_window_holds_more_than_the_limit(
    tmp_path: Path, server: FakeOcrSpace, daemon: Callable[[float], DaemonProcess]
) -> None:
    """Nine files, 3 per 2 s: no 2 s window holds a fourth request, yet three go together."""
    running = daemon(PER_SECONDS).start()
    images = drop(tmp_path / "inbox", FILES)
    all_done(images)
    assert_alive(running)
    assert 0 == running.stop()
    times = arrivals(server)
    assert FILES == len(times)
    assert [] == crowded(times, PER_SECONDS - NETWORK_MARGIN)
    full_windows = [
        first
        for first, last in zip(times, times[REQUESTS - 1 :], strict=False)
        if last - first < PER_SECONDS - NETWORK_MARGIN
    ]
    assert full_windows, "no window ever held the limit's 3 requests"
    assert times[-1] - times[0] < (FILES - 1) * PER_SECONDS, "as slow as one request per window"


def test_a_restart_waits_out_the_window_already_used(
    tmp_path: Path, server: FakeOcrSpace, daemon: Callable[[float], DaemonProcess]
) -> None:
    """Restarted right after sending 3 of 3 per 4 s, the daemon sends the next once the first is 4 s old."""
    running = daemon(RESTART_PER_SECONDS).start()
    images = drop(tmp_path / "inbox", RESTART_FILES)
    server.wait_for_requests(REQUESTS, FINISH_TIMEOUT)
    assert 0 == running.stop()
    running.start()
    all_done(images)
    assert_alive(running)
    assert 0 == running.stop()
    times = arrivals(server)
    assert RESTART_FILES <= len(times)
    assert times[REQUESTS] - times[0] >= RESTART_PER_SECONDS - NETWORK_MARGIN, (
        f"request {REQUESTS + 1} came {times[REQUESTS] - times[0]:.2f} s after the first"
    )
    assert [] == crowded(times, RESTART_PER_SECONDS - NETWORK_MARGIN)
    assert "count against the rate limit" in running.log(), "the window was not restored"
