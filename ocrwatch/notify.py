"""The sd_notify protocol, in plain Python: readiness, status, watchdog, reload, stop.

systemd passes ``$NOTIFY_SOCKET`` (a path, or ``@name`` for an abstract
socket) to a ``Type=notify`` service; each message is one datagram of
``KEY=VALUE`` lines. Without the variable every call is a no-op, so the daemon
calls these unconditionally. Sending never raises: a lost status line must not
stop OCR, but a failure is logged once.

``RELOADING=1`` is always sent with ``MONOTONIC_USEC`` in the same datagram,
as ``Type=notify-reload`` requires.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

logger = logging.getLogger(__name__)

SEND_TIMEOUT_SECONDS = 1.0


class Notifier:
    """Sends state changes to systemd when it is listening."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        address = env.get("NOTIFY_SOCKET", "")
        if address.startswith("@"):
            address = "\0" + address[1:]
        elif address and not address.startswith("/"):
            # sd_notify(3) knows only absolute paths and @abstract names here
            # (newer systemd adds vsock: for virtual machines). Sending to any
            # other string would only fail on every call; say so once instead.
            logger.warning(
                "NOTIFY_SOCKET=%s is not a socket address ocrwatch can use; not notifying systemd",
                address,
            )
            address = ""
        self.address = address or None
        self.watchdog_interval = _watchdog_interval(env)
        self._socket: socket.socket | None = None
        self._warned = False

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *lines: str) -> bool:
        """Send one datagram of ``lines``; True when it went out."""
        if self.address is None:
            return False
        # A newline inside a value would start a new KEY=VALUE line.
        payload = "\n".join(line.replace("\n", " ") for line in lines)
        try:
            if self._socket is None:
                self._socket = socket.socket(
                    socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC
                )
                self._socket.settimeout(SEND_TIMEOUT_SECONDS)
            self._socket.sendto(payload.encode("utf-8"), self.address)
        except OSError as error:
            if not self._warned:
                logger.warning(
                    "cannot notify systemd at %s: %s", self.address.replace("\0", "@"), error
                )
                self._warned = True
            return False
        return True

    def ready(self, status: str) -> bool:
        return self.send("READY=1", f"STATUS={status}")

    def status(self, status: str) -> bool:
        return self.send(f"STATUS={status}")

    def reloading(self) -> bool:
        return self.send(
            "RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}"
        )

    def stopping(self, status: str) -> bool:
        return self.send("STOPPING=1", f"STATUS={status}")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def _watchdog_interval(env: Mapping[str, str]) -> float | None:
    """Seconds between watchdog pings (half the timeout), or None when not asked for."""
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None
    return int(usec) / 2_000_000
