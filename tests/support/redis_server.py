"""A real ``redis-server`` for a test: its own port on 127.0.0.1, no persistence.

Distributed mode is tested against Debian's ``redis-server`` (``.ci/run``
installs it). A test asks for it through the ``redis_server`` fixture, which
skips with "needs the Debian package redis-server" when the program is
missing (a failure in CI, see ``tests/conftest.py``).

:meth:`RedisServer.restart` stops the server and starts an empty one on the
same port, which is how a test loses everything Redis held.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

from tests.support.waiting import wait_until

if TYPE_CHECKING:
    import redis

PROGRAM = "redis-server"
MISSING = "needs the Debian package redis-server"
START_TIMEOUT = 10.0


def available() -> bool:
    return shutil.which(PROGRAM) is not None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RedisServer:
    """``redis-server`` on 127.0.0.1, started now; ``password`` sets ``requirepass``."""

    def __init__(self, workdir: Path, *, password: str | None = None) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.password = password
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log_path = workdir / "redis.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        """Start an empty server on this port (no RDB, no AOF) and wait for its PING."""
        command = [
            PROGRAM,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.workdir),
            "--logfile",
            str(self.log_path),
            "--maxmemory-policy",
            "noeviction",
        ]
        if self.password is not None:
            command += ["--requirepass", self.password]
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL)
        wait_until(self._answers, START_TIMEOUT, message=f"redis-server on port {self.port}")

    def _answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(
                f"redis-server exited with {self.process.returncode}: "
                + (self.log_path.read_text() if self.log_path.exists() else "")
            )
        try:
            return bool(self.client().ping())
        except Exception:  # noqa: BLE001 - not listening yet
            return False

    def client(self) -> redis.Redis:
        import redis

        return redis.Redis(
            host="127.0.0.1", port=self.port, password=self.password, decode_responses=True
        )

    def stop(self) -> None:
        """Kill the server (SIGKILL: nothing is saved, as after a crash)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def restart(self, *, down_for: float = 0.0) -> None:
        """Lose everything: kill the server, wait ``down_for`` seconds, start it empty."""
        self.stop()
        time.sleep(down_for)
        self.start()

    def close(self) -> None:
        self.stop()

    def __enter__(self) -> RedisServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
