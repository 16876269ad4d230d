"""Running the real ``ocrwatch run`` as a subprocess, as a service manager would.

The test listens on its own ``$NOTIFY_SOCKET`` (the sd_notify protocol), so
"ready" means what systemd would see: every inbox watched, the backlog queued.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, BinaryIO

import yaml

from tests.support.waiting import wait_until

START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0


class NotifyListener:
    """A datagram socket collecting sd_notify messages."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind(str(path))
        self.socket.settimeout(0.2)
        self.messages: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while not self._closed:
            try:
                data = self.socket.recv(65536)
            except OSError:
                continue
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            with self._lock:
                self.messages.append(fields)

    def all(self) -> list[dict[str, str]]:
        with self._lock:
            return list(self.messages)

    def count(self, key: str, value: str | None = None) -> int:
        return sum(1 for m in self.all() if key in m and (value is None or m[key] == value))

    def close(self) -> None:
        self._closed = True
        self.socket.close()


class DaemonProcess:
    """``ocrwatch run -c CONFIG`` in a subprocess, with its log in a file."""

    def __init__(
        self,
        workdir: Path,
        config: dict[str, Any],
        *,
        env: dict[str, str] | None = None,
        prefix: list[str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.config_path = workdir / "ocrwatch.yaml"
        self.write_config(config)
        self.log_path = workdir / "daemon.log"
        self.notify = NotifyListener(workdir / f"notify-{time.monotonic_ns()}.sock")
        self.env = {
            **os.environ,
            "NOTIFY_SOCKET": str(self.notify.path),
            "XDG_STATE_HOME": str(workdir / "state"),
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self.prefix = prefix or []
        self.process: subprocess.Popen[bytes] | None = None
        self._log_handle: BinaryIO | None = None

    def write_config(self, config: dict[str, Any]) -> None:
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    def start(self, *, wait_ready: bool = True) -> DaemonProcess:
        self._log_handle = self.log_path.open("ab")
        readies = self.notify.count("READY")
        process = self.process = subprocess.Popen(
            [
                *self.prefix,
                sys.executable,
                "-m",
                "ocrwatch",
                "run",
                "-v",
                "-c",
                str(self.config_path),
            ],
            stdout=self._log_handle,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=self.workdir,
        )
        if wait_ready:
            wait_until(
                lambda: self.notify.count("READY") > readies or process.poll() is not None,
                START_TIMEOUT,
                message="READY=1 from the daemon",
            )
            if process.poll() is not None:
                raise AssertionError(f"daemon exited with {process.returncode}:\n{self.log()}")
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def send(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def reload(self) -> None:
        """SIGHUP, then wait for the READY=1 that ends the reload."""
        readies = self.notify.count("READY")
        self.send(signal.SIGHUP)
        wait_until(
            lambda: self.notify.count("READY") > readies,
            START_TIMEOUT,
            message="READY=1 after reload",
        )

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM and wait; returns the exit status."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout)
        finally:
            self._close_log()
        return code

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)
        self._close_log()

    def _close_log(self) -> None:
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._close_log()
        self.notify.close()


class Daemons:
    """The daemons one test starts, all closed when it ends: the body of a fixture that builds them.

    ::

        daemons = Daemons(tmp_path, env={"OCRSPACE_API_KEY": KEY})
        yield lambda **options: daemons.make(config_for(**options))
        daemons.close()
    """

    def __init__(self, workdir: Path, *, env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.env = env
        self._started: list[DaemonProcess] = []

    def make(self, config: dict[str, Any], *, prefix: list[str] | None = None) -> DaemonProcess:
        """A daemon (not started yet) over ``config``, closed by :meth:`close`."""
        daemon = DaemonProcess(self.workdir, config, env=self.env, prefix=prefix)
        self._started.append(daemon)
        return daemon

    def close(self) -> None:
        for daemon in self._started:
            daemon.close()
