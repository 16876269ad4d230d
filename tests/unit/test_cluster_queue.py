"""The job queue and the scanner leases, against a real redis-server.

Each property here is one the cluster's guarantees rest on: a file
unchanged is queued once, a stalled former holder cannot take an entry
back, an acknowledged entry leaves Redis, a clean stop hands entries back
at once, a take-over counts deliveries, and a job of another format version
is refused rather than misread.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from ocrwatch.cluster.holding import Holdings
from ocrwatch.cluster.identity import TOKEN_FILE, instance_id
from ocrwatch.cluster.jobs import (
    GROUP,
    JOB_VERSION,
    Job,
    JobError,
    Keys,
    consumer_name,
    settings_fingerprint,
)
from ocrwatch.cluster.lease import HELD_ELSEWHERE, RENEWED, TAKEN, Leases
from ocrwatch.cluster.node import ClusterNode
from ocrwatch.cluster.streams import JobQueue
from ocrwatch.config import parse_config
from ocrwatch.plan import make_plan
from ocrwatch.tracker import Tracker
from tests.support.redis_server import RedisServer

INBOX = "scans"
LEASE = 5.0


def job(path: str = "a/b.jpg", *, size: int = 10, mtime_ns: int = 1) -> Job:
    return Job(INBOX, path, size, mtime_ns, "settings", "scanner")


@pytest.fixture
def queues(redis_server: RedisServer) -> tuple[JobQueue, JobQueue]:
    client = redis_server.client()
    keys = Keys("t")
    first, second = JobQueue(client, keys, "a", LEASE), JobQueue(client, keys, "b", LEASE)
    first.ensure_group(INBOX)
    return first, second


def age(redis_server: RedisServer, entry_id: str, owner: str) -> None:
    """Make an entry look idle for longer than a lease (what a host's silence does)."""
    redis_server.client().xclaim(
        Keys("t").stream(INBOX),
        GROUP,
        owner,
        0,
        [entry_id],
        idle=int(LEASE * 1000) + 1,
        justid=True,
    )


def test_a_file_unchanged_is_queued_once(queues: tuple[JobQueue, JobQueue]) -> None:
    first, second = queues
    assert first.enqueue(job(), max_backlog=100) is not None
    assert second.enqueue(job(), max_backlog=100) is None  # a second scanner: harmless
    assert first.enqueue(job(mtime_ns=2), max_backlog=100) is not None  # rewritten: again
    assert 2 == first.client.xlen(first.keys.stream(INBOX))


def test_the_backlog_bound_refuses_more(queues: tuple[JobQueue, JobQueue]) -> None:
    first, _ = queues
    assert first.enqueue(job("1.jpg"), max_backlog=1) not in (None, "full")
    assert "full" == first.enqueue(job("2.jpg"), max_backlog=1)


def test_acknowledged_entries_leave_redis(queues: tuple[JobQueue, JobQueue]) -> None:
    first, _ = queues
    first.enqueue(job(), max_backlog=100)
    (delivery,) = first.read([INBOX], 5, 100)
    first.ack(delivery)
    assert 0 == first.client.xlen(first.keys.stream(INBOX))
    assert {"length": 0, "pending": 0, "holders": {}} == first.depth(INBOX)
    assert [first.keys.stream(INBOX)] == first.client.keys("*")  # no mark left behind
    assert first.enqueue(job(), max_backlog=100) is not None  # and the file may come again


def test_a_host_reads_no_more_than_it_asks_for(queues: tuple[JobQueue, JobQueue]) -> None:
    first, second = queues
    for number in range(5):
        first.enqueue(job(f"{number}.jpg"), max_backlog=100)
    assert 2 == len(first.read([INBOX], 2, 100))
    assert 3 == len(second.read([INBOX], 10, 100))


def test_a_stalled_former_holder_cannot_take_an_entry_back(
    queues: tuple[JobQueue, JobQueue], redis_server: RedisServer
) -> None:
    """After a take-over, the old holder's keepalive and owner check see it is no longer its own."""
    first, second = queues
    first.enqueue(job(), max_backlog=100)
    (held,) = first.read([INBOX], 1, 100)
    assert {held.id} == first.keepalive([held])
    assert [] == second.reclaim(INBOX, 5)  # not idle for a lease yet: nothing to take
    age(redis_server, held.id, "a")
    (taken,) = second.reclaim(INBOX, 5)
    assert (held.id, 2, 1) == (taken.id, taken.deliveries, taken.earlier)
    assert set() == first.keepalive([held])
    assert "b" == first.owner(held)
    assert {held.id} == second.keepalive([taken])


def test_a_restarted_host_resumes_its_own_entries_counting_the_delivery(
    queues: tuple[JobQueue, JobQueue],
) -> None:
    first, _ = queues
    first.enqueue(job(), max_backlog=100)
    (held,) = first.read([INBOX], 1, 100)
    (again,) = first.own_pending(INBOX, 10)
    assert (held.id, 2) == (again.id, again.deliveries)


def test_a_clean_stop_hands_entries_back_at_once(queues: tuple[JobQueue, JobQueue]) -> None:
    first, second = queues
    first.enqueue(job(), max_backlog=100)
    (held,) = first.read([INBOX], 1, 100)
    assert first.release(held)
    (given,) = second.read([INBOX], 1, 100)
    assert (job(), 1) == (given.job, given.deliveries)
    assert not first.release(held)  # no longer its own


def test_redis_forgetting_an_entry_is_not_another_holder(
    queues: tuple[JobQueue, JobQueue], redis_server: RedisServer
) -> None:
    """Redis restarted empty: the owner is unknown (commit), not someone else (drop)."""
    first, _ = queues
    first.enqueue(job(), max_backlog=100)
    (held,) = first.read([INBOX], 1, 100)
    redis_server.restart()
    assert first.owner(held) is None


def test_jobs_of_another_version_are_refused() -> None:
    encoded = json.loads(job().encode())
    assert job() == Job.decode(json.dumps(encoded))
    with pytest.raises(JobError, match="version"):
        Job.decode(json.dumps({**encoded, "v": JOB_VERSION + 1}))
    with pytest.raises(JobError, match="inside its inbox"):
        Job.decode(json.dumps({**encoded, "path": "../etc/passwd"}))
    with pytest.raises(JobError):
        Job.decode(b"\x80pickle")


def test_scanner_lease_is_one_holders_and_passes_on_when_it_lapses(
    redis_server: RedisServer,
) -> None:
    client = redis_server.client()
    a, b = (Leases(client, Keys("t"), name, LEASE) for name in ("a", "b"))
    assert TAKEN == a.take_or_renew(INBOX, "s1")
    assert HELD_ELSEWHERE == b.take_or_renew(INBOX, "s2")
    assert RENEWED == a.take_or_renew(INBOX, "s1")
    assert ("a", "s1") == (b.holder(INBOX), b.published_settings(INBOX))
    b.release(INBOX)  # not its own: nothing happens
    assert "a" == b.holder(INBOX)
    client.delete(Keys("t").scanner(INBOX))  # what a's silence for a whole lease does
    assert TAKEN == b.take_or_renew(INBOX, "s2")
    assert HELD_ELSEWHERE == a.take_or_renew(INBOX, "s1")


def test_settings_fingerprints_follow_what_shapes_results(tmp_path: Path) -> None:
    def fingerprint(options: str) -> str:
        text = f"inboxes:\n  - {{id: scans, path: {tmp_path}, {options}}}\n"
        plan = make_plan(parse_config(text, tmp_path / "c.yaml"), check_folders=False)
        return settings_fingerprint(plan.inboxes[0])

    plain = fingerprint("engine: tesseract")
    assert plain == fingerprint("engine: tesseract, poll_interval: 9")  # how, not what
    assert plain != fingerprint("engine: tesseract, crop: {left: 10}")
    assert plain != fingerprint("engine: tesseract, formats: [txt, json, alto]")
    assert plain != fingerprint("engine: tesseract, detect_orientation: false")


def test_host_names_are_stable_per_state_folder(tmp_path: Path) -> None:
    assert consumer_name(None, tmp_path / "a") == consumer_name(None, tmp_path / "a")
    assert consumer_name(None, tmp_path / "a") != consumer_name(None, tmp_path / "b")
    assert "worker-7" == consumer_name("worker-7", tmp_path)


def test_a_job_the_tracker_forgets_unread_is_handed_back(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """A delivered file removed before a worker took it: the entry goes back to the queue and
    no longer counts against the host's capacity (else a host would shrink over months)."""
    inbox_folder = tmp_path / "inbox"
    inbox_folder.mkdir()
    (inbox_folder / "a.png").write_bytes(b"not read in this test")
    text = f"queue: {{url: '{redis_server.url}'}}\ninboxes:\n  - {{id: {INBOX}, path: {inbox_folder}, engine: tesseract}}\n"
    plan = make_plan(parse_config(text, tmp_path / "c.yaml"))
    holdings: list[Holdings] = []
    tracker = Tracker(
        settle_seconds=lambda inbox: 0.0,
        max_pending=10,
        route=ClusterNode.route,
        dropped=lambda job: holdings[0].dropped(job),
    )
    client = redis_server.client()
    queue = JobQueue(client, Keys("t"), "a", LEASE)
    queue.ensure_group(INBOX)
    assert plan.config.queue is not None
    holdings.append(
        Holdings(
            plan.config.queue,
            queue,
            host="a",
            plan=lambda: plan,
            tracker=tracker,
            capacity=4,
            drift={},
            absent=set(),
            published=lambda name: None,
            stop=threading.Event(),
        )
    )
    settings = settings_fingerprint(plan.inboxes[0])
    queue.enqueue(Job(INBOX, "a.png", 21, 1, settings, "scanner"), max_backlog=100)
    holdings[0].feed()
    assert 1 == holdings[0].held()
    (inbox_folder / "a.png").unlink()
    tracker.removed(inbox_folder / "a.png")
    holdings[0].hand_back_dropped()  # what the next feed() does first
    assert 0 == holdings[0].held()
    assert {"length": 1, "pending": 0, "holders": {}} == queue.depth(INBOX)


def test_a_host_record_under_another_instance_is_never_overwritten(
    redis_server: RedisServer,
) -> None:
    client = redis_server.client()
    mine, theirs = (Leases(client, Keys("t"), "alpha", LEASE, instance) for instance in "12")
    assert mine.announce({"seen": 1.5, "pid": 11}) is None
    assert mine.announce({"seen": 2.5, "pid": 11}) is None  # its own: renewed

    other = theirs.announce({"seen": 3.5, "pid": 22})

    assert other is not None and other["pid"] == 11
    record = theirs.record()
    assert record is not None and (record["instance"], record["seen"]) == ("1", 2.5)
    theirs.leave()  # not its record: stays
    assert mine.record() is not None
    theirs.forget({"instance": "1", "seen": 1.5})  # renewed since: stays
    assert mine.record() is not None
    theirs.forget({"instance": "1", "seen": 2.5})  # still the record seen: a dead one's, gone
    assert theirs.record() is None
    assert theirs.announce({"seen": 4.5, "pid": 22}) is None


def test_an_installation_keeps_its_instance_id_and_another_has_its_own(tmp_path: Path) -> None:
    first = instance_id(tmp_path / "a" / "state")  # the folder does not exist yet

    assert instance_id(tmp_path / "a" / "state") == first
    assert instance_id(tmp_path / "b" / "state") != first
    (tmp_path / "a" / "state" / TOKEN_FILE).unlink()  # a lost cache: a new instance
    assert instance_id(tmp_path / "a" / "state") != first
