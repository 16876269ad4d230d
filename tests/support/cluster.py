"""Several ``ocrwatch run`` processes on one inbox through one real Redis: hosts of a cluster.

Each host has its own work folder, config and state folder (the per-host
state store stays local), and all share the inbox, the fake ocr.space
server and the ``redis-server`` of the test.
"""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

from tests.support.daemon import DaemonProcess
from tests.support.hostile import page_bytes
from tests.support.ocrspace_server import FakeOcrSpace
from tests.support.redis_server import RedisServer
from tests.support.rig import KEY, daemon_config
from tests.support.verdicts import done_record, sidecar
from tests.support.waiting import wait_until

INBOX_ID = "scans"
LEASE_SECONDS = 5.0


def names(count: int, prefix: str = "page") -> list[str]:
    """File names for ``count`` pages: ``page-000.png``, ..."""
    return [f"{prefix}-{number:03d}.png" for number in range(count)]


class Cluster:
    """Hosts made by :meth:`host` over one inbox; all closed by :meth:`close`."""

    def __init__(
        self,
        root: Path,
        redis: RedisServer,
        server: FakeOcrSpace,
        *,
        lease_seconds: float = LEASE_SECONDS,
        queue: dict[str, Any] | None = None,
        **top: Any,
    ) -> None:
        self.root = root
        self.redis = redis
        self.server = server
        self.inbox = root / "inbox"
        self.inbox.mkdir(parents=True, exist_ok=True)
        self.queue = {
            "url": redis.url,
            "namespace": "test",
            "lease_seconds": lease_seconds,
            **(queue or {}),
        }
        self.top = top
        self.hosts: list[DaemonProcess] = []

    def config(self, name: str, **queue: Any) -> dict[str, Any]:
        top = dict(self.top)
        inbox_options = top.pop("inbox", {})
        return daemon_config(
            self.server.url,
            [{"id": INBOX_ID, "path": str(self.inbox), **inbox_options}],
            state_dir=self.root / name / "state",
            queue={**self.queue, "host_name": name, **queue},
            **top,
        )

    def host(
        self,
        name: str,
        *,
        start: bool = True,
        env: dict[str, str] | None = None,
        **queue: Any,
    ) -> DaemonProcess:
        """A host called ``name`` (its consumer name), started unless told otherwise."""
        work = self.root / name
        work.mkdir(parents=True, exist_ok=True)
        daemon = DaemonProcess(
            work, self.config(name, **queue), env={"OCRSPACE_API_KEY": KEY, **(env or {})}
        )
        self.hosts.append(daemon)
        if start:
            daemon.start()
        return daemon

    def drop(self, names: list[str]) -> list[Path]:
        """Write a small page for each name (the page shows the name) into the inbox."""
        paths = []
        for name in names:
            path = self.inbox / name
            path.write_bytes(page_bytes(name))
            paths.append(path)
        return paths

    def wait_done(self, paths: list[Path], timeout: float) -> None:
        wait_until(
            lambda: all(sidecar(path, ".json").exists() for path in paths),
            timeout,
            message=f"{len(paths)} .json sidecars ("
            + ", ".join(p.name for p in paths if not sidecar(p, ".json").exists())[:300]
            + " missing)",
        )
        for path in paths:
            done_record(path)

    def restart_dead(self) -> int:
        """Start again every host whose process ended, as systemd's Restart= would; how many."""
        restarted = 0
        for daemon in self.hosts:
            if daemon.process is not None and daemon.process.poll() is not None:
                daemon.start(wait_ready=False)
                restarted += 1
        return restarted

    def requests_by_name(self) -> collections.Counter[str]:
        return self.server.count_by_filename()

    def logs(self) -> str:
        return "\n".join(f"==== {d.workdir.name}\n{d.log()[-6000:]}" for d in self.hosts)

    def close(self) -> None:
        for daemon in self.hosts:
            daemon.close()
