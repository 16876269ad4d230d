"""Distributed mode under failure: hosts killed mid-request, a file that crashes its host, Redis lost.

Real ``ocrwatch run`` processes, a real ``redis-server``, the fake
ocr.space holding chosen requests in flight so that a kill lands while
they are out. Each test checks the two things users count on: every file
ends with one whole pair of sidecars (or its error sidecar), and what
ocr.space saw is at most one request per file plus what a kill cut off.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from PIL import Image

from tests.support.cluster import LEASE_SECONDS, Cluster, names
from tests.support.hostile import grey_page
from tests.support.ocrspace_server import FakeOcrSpace
from tests.support.redis_server import RedisServer
from tests.support.tiffs import multipage
from tests.support.verdicts import error_record, sidecar, temporaries
from tests.support.waiting import wait_until

CRASH_SITE = Path(__file__).resolve().parents[1] / "support" / "crashsite"
SERVER_LATENCY = 0.1
DONE_TIMEOUT = 90.0


class Hold:
    """Holds the server's answers to uploads whose name contains one of ``parts``, until released."""

    def __init__(self, server: FakeOcrSpace, *parts: str) -> None:
        self.parts = parts
        self.released = threading.Event()
        self.held: list[str] = []
        self._lock = threading.Lock()
        server.hold = self

    def __call__(self, filename: str) -> None:
        if any(part in filename for part in self.parts) and not self.released.is_set():
            with self._lock:
                self.held.append(filename)
            self.released.wait(60)


def test_a_host_killed_with_requests_in_flight_loses_nothing(
    cluster: Cluster, server: FakeOcrSpace
) -> None:
    """SIGKILL the host holding requests at the server: others finish everything, paying only those."""
    hold = Hold(server, "page-000", "page-001")
    first = cluster.host("a")
    paths = cluster.drop(names(10))
    wait_until(lambda: len(hold.held) == 2, 30, message="two requests held at the server")
    first.kill()
    hold.released.set()
    for name in ("b", "c"):
        cluster.host(name)
    cluster.wait_done(paths, DONE_TIMEOUT)
    sent = cluster.requests_by_name()
    assert sum(sent.values()) <= len(paths) + 2, (dict(sent), cluster.logs())
    assert all(1 <= sent[p.name] <= 2 for p in paths), dict(sent)
    assert [] == temporaries(cluster.inbox)
    taken_over = "taken over from a host silent for a whole lease"
    assert any(taken_over in d.log() for d in cluster.hosts[1:]), cluster.logs()


def test_new_files_are_found_soon_after_the_scanner_host_dies(cluster: Cluster) -> None:
    """Kill the scanner lease holder: new files are read within the lease plus a renewal period."""
    hosts = [cluster.host(name) for name in ("a", "b", "c")]
    wait_until(
        lambda: sum("took the scanner lease" in d.log() for d in hosts) == 1,
        10,
        message="one scanner",
    )
    scanner = next(d for d in hosts if "took the scanner lease" in d.log())
    scanner.kill()
    killed = time.monotonic()
    paths = cluster.drop(names(3, "late"))
    cluster.wait_done(paths, LEASE_SECONDS * 3 + 10)
    waited = time.monotonic() - killed
    # A lease expires within lease_seconds; the others try to take it every third of one.
    assert waited <= LEASE_SECONDS + LEASE_SECONDS / 3 + 5, waited
    others = [d for d in hosts if d is not scanner]
    assert sum("took the scanner lease" in d.log() for d in others) == 1, cluster.logs()


def test_a_file_that_crashes_its_host_fails_alone(cluster: Cluster, server: FakeOcrSpace) -> None:
    """A file that kills every host reading it gets an .error.json after max_deliveries;
    the files in flight beside it complete, each read once more at most."""
    env = {"PYTHONPATH": str(CRASH_SITE)}
    hosts = [cluster.host(n, env=env, max_deliveries=2) for n in ("a", "b", "c")]
    paths = cluster.drop(names(8))
    crash = cluster.drop(["crash-me.png"])[0]
    deadline = time.monotonic() + DONE_TIMEOUT

    def settled() -> bool:
        cluster.restart_dead()  # as systemd's Restart=on-failure would
        return sidecar(crash, ".error.json").exists() and all(
            sidecar(p, ".json").exists() for p in paths
        )

    wait_until(settled, deadline - time.monotonic(), message="every file settled", interval=0.2)
    cluster.wait_done(paths, 5)
    record = error_record(crash)
    assert "ended the ocrwatch process 2 times" in record["error"]["message"], record
    assert "crash-me.png" not in cluster.requests_by_name()
    sent = cluster.requests_by_name()
    assert all(1 <= sent[p.name] <= 2 for p in paths), dict(sent)
    crashes = sum(d.log().count("Fatal Python error: Segmentation fault") for d in hosts)
    assert 2 == crashes, cluster.logs()
    assert any("it is read alone" in d.log() for d in hosts)


def test_redis_restarted_empty_loses_nothing_and_repeats_no_finished_file(
    cluster: Cluster, redis_server: RedisServer
) -> None:
    """Redis lost mid-run: files done stay done and unsent; the rest are queued again and read."""
    for name in ("a", "b", "c"):
        cluster.host(name)
    early = cluster.drop(names(6, "early"))
    cluster.wait_done(early, DONE_TIMEOUT)
    redis_server.restart(down_for=1.0)
    late = cluster.drop(names(6, "late"))
    cluster.wait_done(late, DONE_TIMEOUT)
    sent = cluster.requests_by_name()
    assert {p.name: 1 for p in early} == {p.name: sent[p.name] for p in early}
    assert all(sent[p.name] >= 1 for p in late)
    assert any("Redis answers again" in d.log() or "queue" in d.log() for d in cluster.hosts)


def test_a_document_taken_over_does_not_pay_again_for_its_pages(
    cluster: Cluster, server: FakeOcrSpace
) -> None:
    """A 3-page TIFF: the host reading it dies at page 3; the next host sends page 3 only."""
    hold = Hold(server, "book-p3")
    first = cluster.host("a")

    pages = [
        (Image.fromarray(grey_page(f"page {n} of the book")), {"compression": "tiff_lzw"})
        for n in (1, 2, 3)
    ]
    book = cluster.inbox / "book.tif"
    book.write_bytes(multipage(pages))
    wait_until(lambda: len(hold.held) == 1, 30, message="page 3 held at the server")
    first.kill()
    hold.released.set()
    cluster.host("b")
    cluster.wait_done([book], DONE_TIMEOUT)
    sent = cluster.requests_by_name()
    assert 1 == sent["book.png"] + sent["book.jpg"], dict(sent)
    assert 1 == sent["book-p2.png"] + sent["book-p2.jpg"], dict(sent)
    assert 2 == sent["book-p3.png"] + sent["book-p3.jpg"], dict(sent)


def test_redis_unreachable_holds_new_work_and_lets_running_work_finish(
    cluster: Cluster, server: FakeOcrSpace, redis_server: RedisServer
) -> None:
    """While Redis is down: the request in flight completes and commits, no new request
    leaves, the status line says why; when it is back, the rest is read."""
    hold = Hold(server, "first-000")
    hosts = [cluster.host(name) for name in ("a", "b")]
    first = cluster.drop(names(1, "first"))
    wait_until(lambda: len(hold.held) == 1, 30, message="the first request held")
    redis_server.stop()
    hold.released.set()
    cluster.wait_done(first, 30)
    later = cluster.drop(names(3, "later"))
    time.sleep(3.0)
    assert 1 == len(server.requests), [r.filename for r in server.requests]
    assert not any(sidecar(p, ".json").exists() for p in later)
    for daemon in hosts:
        messages = daemon.notify.all
        wait_until(
            lambda messages=messages: any(  # type: ignore[misc]
                "Redis" in m.get("STATUS", "") for m in messages()
            ),
            15,
            message=f"{daemon.workdir.name}'s status line naming Redis",
        )
    redis_server.start()
    cluster.wait_done(later, DONE_TIMEOUT)
    assert {p.name: 1 for p in first + later} == dict(cluster.requests_by_name())
