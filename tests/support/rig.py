"""The rig for attack tests: a daemon config with short bounds, servers with jitter, liveness checks.

Owns the settings that keep attacks fast and bounded (few attempts, short
timeouts, no periodic rescans unless asked) so that every attack module runs
the daemon the same way, and a fake server whose latency varies per request
from a seed (crash tests need requests in flight at unpredictable moments).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from tests.support.daemon import DaemonProcess
from tests.support.ocrspace_server import FakeOcrSpace

KEY = "TEST-KEY"
CONNECT_TIMEOUT = 2
READ_TIMEOUT = 1.5


def daemon_config(
    endpoint: str,
    inboxes: list[dict[str, Any]],
    *,
    state_dir: Path,
    attempts: int = 2,
    **top: Any,
) -> dict[str, Any]:
    """A config for ``ocrwatch run``: ocr.space at ``endpoint``, short timeouts, explicit state folder."""
    ocrspace = {
        "endpoint": endpoint,
        "attempts": attempts,
        "timeout": READ_TIMEOUT,
        "connect_timeout": CONNECT_TIMEOUT,
        **top.pop("ocrspace", {}),
    }
    return {
        "engine": "ocrspace",
        "ocrspace": ocrspace,
        "rescan_interval": 0,
        "shutdown_timeout": 5,
        "state_dir": str(state_dir),
        **top,
        "inboxes": inboxes,
    }


class JitterServer(FakeOcrSpace):
    """A fake ocr.space whose answers each take a random time in ``[low, high]`` (seeded)."""

    def __init__(self, *, low: float, high: float, seed: int, **options: Any) -> None:
        self._latency_rng = random.Random(seed)
        self._latency_range = (low, high)
        super().__init__(**options)

    @property
    def latency(self) -> float:
        return self._latency_rng.uniform(*self._latency_range)

    @latency.setter
    def latency(self, value: float) -> None:
        """The base class sets a fixed latency; the range replaces it."""


def assert_alive(daemon: DaemonProcess) -> None:
    """The daemon process still runs, and the last thing it told the service manager is READY=1."""
    assert daemon.process is not None and daemon.process.poll() is None, (
        f"daemon died:\n{daemon.log()[-3000:]}"
    )
    states = [m for m in daemon.notify.all() if "READY" in m or "STOPPING" in m]
    assert states and "1" == states[-1].get("READY"), f"not ready: {states[-3:]}"
