"""Distributed mode end to end: three ``ocrwatch run`` processes, one inbox, one real Redis.

Each test starts its own ``redis-server`` and fake ocr.space, and three
hosts with their own state folders (tests/support/cluster.py). What is
checked is what users count on: every file gets exactly one whole pair of
sidecars, and ocr.space is not paid twice for nothing.
"""

from __future__ import annotations

import os
import time

from tests.support.cluster import INBOX_ID, LEASE_SECONDS, Cluster, names
from tests.support.ocrspace_server import FakeOcrSpace
from tests.support.verdicts import sidecar, temporaries
from tests.support.waiting import wait_until

SERVER_LATENCY = 0.2
DONE_TIMEOUT = 60.0


def test_three_hosts_read_every_file_once(cluster: Cluster, server: FakeOcrSpace) -> None:
    """30 files over three hosts: one whole pair each, one request each, and the work is shared."""
    for name in ("a", "b", "c"):
        cluster.host(name)
    paths = cluster.drop(names(30))
    cluster.wait_done(paths, DONE_TIMEOUT)
    sent = cluster.requests_by_name()
    assert {path.name: 1 for path in paths} == dict(sent), cluster.logs()
    assert [] == temporaries(cluster.inbox)
    readers = {d.workdir.name: d.log().count("done ") for d in cluster.hosts}
    assert sum(1 for done in readers.values() if done) >= 2, f"one host read everything: {readers}"
    scanners = [d for d in cluster.hosts if "took the scanner lease" in d.log()]
    assert 1 == len(scanners), cluster.logs()


def test_a_work_only_host_never_scans(cluster: Cluster) -> None:
    """A host with roles [work] takes jobs but never holds the scanner lease."""
    worker = cluster.host("worker", roles=["work"])
    time.sleep(1.0)
    paths = cluster.drop(names(4))
    time.sleep(LEASE_SECONDS / 2)
    assert not any(sidecar(p, ".json").exists() for p in paths), "read without a scanner"
    scanner = cluster.host("scanner", roles=["scan"])
    cluster.wait_done(paths, DONE_TIMEOUT)
    assert "took the scanner lease" not in worker.log()
    assert "took the scanner lease" in scanner.log()
    redis = cluster.redis.client()
    assert "scanner" == redis.get(f"test:{{{INBOX_ID}}}:scanner")


def test_the_scanner_removes_only_temporaries_older_than_two_leases(cluster: Cluster) -> None:
    """Another host may be writing a young temporary right now; an old one is a crash's leftover."""
    old = cluster.inbox / ".page.txt.abc123.ocrwatch-tmp"
    young = cluster.inbox / ".other.json.def456.ocrwatch-tmp"
    for path in (old, young):
        path.write_text("partial")
    stale = time.time() - 3 * LEASE_SECONDS
    os.utime(old, (stale, stale))
    host = cluster.host("a")
    wait_until(lambda: "took the scanner lease" in host.log(), 10, message="the scanner lease")
    wait_until(lambda: not old.exists(), 10, message="the old temporary removed")
    assert young.exists()


def test_a_host_with_other_settings_takes_none_of_the_inbox_and_says_so(cluster: Cluster) -> None:
    """Config drift: a host whose crop differs reads none of the inbox's files, loudly."""
    scanner = cluster.host("a", roles=["scan"])
    wait_until(lambda: "took the scanner lease" in scanner.log(), 10, message="a scanner")
    drifted = cluster.host("b")
    drifted.config_path.write_text(drifted.config_path.read_text())  # same file, other inbox rules:
    config = cluster.config("b")
    config["inboxes"][0]["crop"] = {"left": 10}
    drifted.stop()
    drifted.write_config(config)
    drifted.start()
    wait_until(lambda: "config drift" in drifted.log(), 15, message="b names the drift")
    paths = cluster.drop(names(3))
    time.sleep(3.0)
    assert not any(sidecar(p, ".json").exists() for p in paths)
    cluster.host("c")
    cluster.wait_done(paths, DONE_TIMEOUT)
    assert "done " not in drifted.log()


def test_a_job_of_another_version_is_held_not_misread(cluster: Cluster) -> None:
    """A job this version cannot read is refused (logged, not read, not failed); a clean stop
    hands it back for a host that can; the other files go on."""
    host = cluster.host("a")
    redis = cluster.redis.client()
    stream = f"test:{{{INBOX_ID}}}:jobs"
    wait_until(lambda: redis.exists(stream), 10, message="the inbox's stream")
    future = '{"v": 99, "inbox": "scans", "path": "future.png"}'
    redis.xadd(stream, {"job": future})
    paths = cluster.drop(names(3))
    cluster.wait_done(paths, DONE_TIMEOUT)
    wait_until(lambda: "format version 99" in host.log(), 10, message="the refusal logged")
    assert not sidecar(cluster.inbox / "future.png", ".error.json").exists()
    host.stop()
    entries = redis.xrange(stream) or []
    assert [future] == [fields["job"] for _, fields in entries if fields is not None]
    assert 0 == redis.xpending(stream, "workers")["pending"]
