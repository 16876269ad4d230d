"""This host in a cluster: its scanner leases, its threads, and what it tells the others.

The daemon runs as on one host, with three changes when ``queue:`` is set:

* Files this host finds (its watcher and scanner, only for inboxes whose
  scanner lease it holds) are not read here: the publisher thread takes
  them from the tracker and queues a job for each, once
  (:meth:`JobQueue.enqueue`).
* The cluster thread takes jobs from the inboxes' streams and hands them to
  the tracker, where the workers find them as they find local files
  (:mod:`ocrwatch.cluster.holding`: how many, suspects read alone, the
  check before a commit and the acknowledgement after it). Every third of
  a lease it renews the scanner leases and the held entries, takes over
  entries a dead host left (XAUTOCLAIM), compares the inboxes' settings
  with the scanner's (config drift) and writes the host's record for
  ``ocrwatch status``.
* A scanner lease taken or lost is handed to the daemon's main loop
  (:attr:`ClusterNode.lease_changes`), which starts or stops watching.

Redis unreachable: nothing new is taken or queued, the shared gate holds
every request (fail closed), and the files in flight finish and commit (a
commit twice is harmless: each pair of sidecars is whole). Work resumes
when Redis answers again; entries whose holder was cut off are taken over
after their lease. Redis answering without the queue (restarted empty):
the groups are made again and the scanner walks its inboxes at once.
"""

from __future__ import annotations

import collections
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ocrwatch import __version__
from ocrwatch.cluster.connection import describe_error, is_redis_error
from ocrwatch.cluster.holding import FEED_WAIT, READ_BLOCK_MS, Holdings
from ocrwatch.cluster.jobs import Job, Keys, inbox_id, relative_path, settings_fingerprint
from ocrwatch.cluster.lease import HELD_ELSEWHERE, RENEWED, TAKEN, Leases
from ocrwatch.cluster.pages import SharedPages
from ocrwatch.cluster.streams import JobQueue
from ocrwatch.config import QueueConfig
from ocrwatch.outcome import Outcome
from ocrwatch.plan import InboxPlan
from ocrwatch.tracker import Entry, Tracker

if TYPE_CHECKING:
    import redis

    from ocrwatch.resume import PageStore

logger = logging.getLogger(__name__)

PUBLISH = "publish"
"""The tracker's queue for files this host found, which the publisher turns into jobs."""
UNREACHABLE_RETRY = 1.0
FULL_RETRY = 5.0
"""When the inbox's stream holds ``max_pending`` jobs, a found file waits this long to be queued."""


@dataclass
class LeaseChange:
    """The scanner lease of an inbox was taken (``held``) or lost; the daemon's main loop acts."""

    inbox: InboxPlan
    held: bool
    reason: str


class ClusterNode:
    """One host's part in the cluster (see the module's docstring)."""

    def __init__(
        self,
        config: QueueConfig,
        client: redis.Redis,
        *,
        host: str,
        instance: str,
        plan: Callable[[], Any],
        tracker: Tracker,
        stop: threading.Event,
        capacity: int,
        wakeup: threading.Event,
    ) -> None:
        self.config = config
        self.client = client
        self.host = host
        self.keys = Keys(config.namespace)
        self.queue = JobQueue(client, self.keys, host, config.lease_seconds)
        self.leases = Leases(client, self.keys, host, config.lease_seconds, instance)
        self._name_taken_by: str | None = None
        """The other instance whose record holds this host's name, once seen (logged once)."""
        self.pages = SharedPages(client, self.keys, self.locate, local=None)
        self._plan = plan
        self.tracker = tracker
        self.stop_event = stop
        self.capacity = max(1, capacity)
        self.wakeup = wakeup
        self.interval = config.lease_seconds / 3
        self.scanning: set[str] = set()
        """Ids of the inboxes whose scanner lease this host holds."""
        self.drift: dict[str, str] = {}
        """Inbox id to the settings fingerprint the inbox's scanner published, where ours differs."""
        self.absent: set[str] = set()
        """Ids of the inboxes whose folder this host does not see (a share not mounted)."""
        self.unreachable: str | None = None
        self.lease_changes: collections.deque[LeaseChange] = collections.deque()
        self.holdings = Holdings(
            config,
            self.queue,
            host=host,
            plan=plan,
            tracker=tracker,
            capacity=capacity,
            drift=self.drift,
            absent=self.absent,
            published=self.leases.published_settings,
            stop=stop,
        )
        self.depths: dict[str, int] = {}
        """Entries in each inbox's queue when last looked (every third of a lease), for metrics."""
        self._threads: list[threading.Thread] = []

    # Read by the daemon.

    @property
    def roles(self) -> tuple[str, ...]:
        return self.config.roles

    @staticmethod
    def route(entry: Entry) -> str:
        """The tracker's queue for an entry: the publisher's for found files, the engine's for jobs."""
        return PUBLISH if entry.job is None else entry.inbox.rules.engine

    def scans(self, inbox: InboxPlan) -> bool:
        return inbox.config.id is not None and inbox.config.id in self.scanning

    def inbox(self, inbox_id: str) -> InboxPlan | None:
        return next((i for i in self._plan().inboxes if i.config.id == inbox_id), None)

    def locate(self, path: Path) -> tuple[str, str] | None:
        """The inbox id and relative path of ``path``, None outside every inbox."""
        for inbox in self._plan().inboxes:
            if inbox.contains(path) and inbox.config.id is not None:
                return inbox.config.id, relative_path(path, inbox)
        return None

    def use_local_pages(self, store: PageStore | None) -> None:
        """Where pages go while Redis cannot be reached: this host's state store."""
        self.pages.local = store

    def held(self) -> int:
        return self.holdings.held()

    @property
    def deliveries(self) -> int:
        return self.holdings.deliveries

    def before_commit(self, entry: Entry) -> Callable[[], None] | None:
        """See :meth:`Holdings.before_commit` (called by workers)."""
        return self.holdings.before_commit(entry)

    def settle(self, entry: Entry, outcome: Outcome) -> None:
        """See :meth:`Holdings.settle` (called by workers)."""
        self.holdings.settle(entry, outcome)

    def dropped(self, job: object) -> None:
        """See :meth:`Holdings.dropped` (called by the tracker, under its lock)."""
        self.holdings.dropped(job)

    # Life cycle.

    def start(self) -> None:
        targets: list[tuple[str, Callable[[], None]]] = [("cluster", self._loop)]
        if "scan" in self.roles:
            targets.append(("publisher", self._publish_loop))
        for name, target in targets:
            thread = threading.Thread(target=target, name=name, daemon=True)
            self._threads.append(thread)
            thread.start()

    def close(self) -> None:
        """A clean stop: give back held entries and scanner leases, remove the host record."""
        for thread in self._threads:  # the daemon's stop is set: they end within a read's wait
            thread.join(READ_BLOCK_MS / 1000 + 5)
        held = self.holdings.take_all()
        try:
            released = sum(self.queue.release(delivery) for delivery in held)
            for inbox_id in list(self.scanning):
                self.leases.release(inbox_id)
            self.leases.leave()
        except Exception as error:
            if not is_redis_error(error):
                raise
            logger.warning(
                "cluster: could not hand back %d file(s) and the scanner leases (%s); other hosts "
                "take them over after %.0f s",
                len(held),
                describe_error(error),
                self.config.lease_seconds,
            )
            return
        if released:
            logger.info("cluster: handed back %d file(s) not finished, for other hosts", released)

    # The cluster thread.

    def _loop(self) -> None:
        due = 0.0
        first = True
        while not self.stop_event.is_set():
            try:
                if time.monotonic() >= due:
                    self._maintain(first)
                    first = False
                    due = time.monotonic() + self.interval
                if "work" in self.roles:
                    self.holdings.feed()
                else:
                    self.stop_event.wait(FEED_WAIT)
                self._reachable()
            except Exception as error:  # noqa: BLE001 - thread entry point: Redis failing must not end it
                if not is_redis_error(error):
                    logger.exception("cluster: unexpected error; going on")
                elif "NOGROUP" in str(error):
                    # Redis answers but forgot the queue: restarted empty, or flushed.
                    logger.warning("cluster: an inbox's queue is gone from Redis; making it again")
                    due = 0.0
                    continue
                else:
                    self._unreachable_now(error)
                self.stop_event.wait(UNREACHABLE_RETRY)
                due = 0.0

    def _reachable(self) -> None:
        if self.unreachable is not None:
            logger.warning("cluster: Redis answers again; taking work again")
            self.unreachable = None
            self.wakeup.set()

    def _unreachable_now(self, error: BaseException) -> None:
        text = describe_error(error)
        if self.unreachable is None:
            logger.error(
                "cluster: %s; no new file is taken or queued and no request leaves until it "
                "is back (files in flight finish)",
                text,
            )
            self.wakeup.set()
        self.unreachable = text

    def _maintain(self, first: bool) -> None:
        """Leases, groups, drift, keepalive, take-overs and the host record (every third of a lease)."""
        for inbox in self._plan().inboxes:
            name = inbox_id(inbox)
            created = self.queue.ensure_group(name)
            own = settings_fingerprint(inbox)
            if "scan" in self.roles:
                self._scanner_lease(inbox, own, created)
            self._check_drift(name, own)
            self._check_folder(inbox, name)
            self.depths[name] = self.queue.depth(name)["length"]
        self.holdings.keepalive()
        if "work" in self.roles:
            if first:
                self.holdings.resume_own()
            self.holdings.take_over()
        self._reachable()
        self._announce()

    def _scanner_lease(self, inbox: InboxPlan, settings: str, created: bool) -> None:
        name = inbox_id(inbox)
        result = self.leases.take_or_renew(name, settings)
        if result == TAKEN or (result == RENEWED and name not in self.scanning):
            # RENEWED but not scanning: this host's previous run held it (a restart within the
            # lease); the lease is this run's now, and so is the scanning.
            self.scanning.add(name)
            reason = "took the scanner lease" if result == TAKEN else "took back the scanner lease"
            if created:
                reason += " (its queue was empty or lost)"
            logger.info("cluster: %s of inbox %s (%s)", reason, name, inbox.path)
            self._lease_change(LeaseChange(inbox, True, reason))
        elif result == HELD_ELSEWHERE and name in self.scanning:
            self.scanning.discard(name)
            logger.warning(
                "cluster: lost the scanner lease of inbox %s to %s (this host stalled past it?)",
                name,
                self.leases.holder(name),
            )
            self._lease_change(LeaseChange(inbox, False, "lost the scanner lease"))
        elif created and name in self.scanning:
            logger.warning(
                "cluster: the queue of inbox %s was lost (Redis emptied?); scanning again", name
            )
            self._lease_change(LeaseChange(inbox, True, "its queue was lost"))

    def _lease_change(self, change: LeaseChange) -> None:
        self.lease_changes.append(change)
        self.wakeup.set()

    def _check_folder(self, inbox: InboxPlan, name: str) -> None:
        if not inbox.path.is_dir():
            if name not in self.absent:
                logger.error(
                    "cluster: the folder of inbox %s (%s) is missing here (share not mounted?); "
                    "this host takes none of its files until it is back",
                    name,
                    inbox.path,
                )
                self.absent.add(name)
        elif name in self.absent:
            self.absent.discard(name)
            logger.warning("cluster: the folder of inbox %s is back; taking its files", name)

    def _check_drift(self, inbox_id: str, own: str) -> None:
        published = self.leases.published_settings(inbox_id)
        if published is not None and published != own:
            if self.drift.get(inbox_id) != published:
                logger.error(
                    "cluster: config drift: inbox %s's settings here differ from its scanner "
                    "host's (%s); this host takes none of its files until they agree",
                    inbox_id,
                    self.leases.holder(inbox_id) or "no scanner now",
                )
            self.drift[inbox_id] = published
        elif self.drift.pop(inbox_id, None) is not None:
            logger.warning("cluster: inbox %s's settings agree again; taking its files", inbox_id)

    # The publisher thread.

    def _publish_loop(self) -> None:
        while not self.stop_event.is_set():
            entry = self.tracker.take(PUBLISH, FEED_WAIT)
            if entry is None:
                continue
            try:
                retry_in = self._publish(entry)
            except Exception as error:  # noqa: BLE001 - thread entry point
                if is_redis_error(error):
                    self._unreachable_now(error)
                else:
                    logger.exception("cluster: cannot queue %s; trying again", entry.path)
                retry_in = UNREACHABLE_RETRY
            self.tracker.finish(entry, retry_in=retry_in)

    def _publish(self, entry: Entry) -> float | None:
        """Queue a found file; seconds until it is tried again, or None when done with it."""
        inbox = next((i for i in self._plan().inboxes if i.path == entry.inbox.path), None)
        if inbox is None or not self.scans(inbox):
            return None  # another host scans this inbox now; it finds the file
        try:
            info = entry.path.stat()
        except OSError:
            return None
        job = Job(
            inbox=inbox_id(inbox),
            path=relative_path(entry.path, inbox),
            size=info.st_size,
            mtime_ns=info.st_mtime_ns,
            settings=settings_fingerprint(inbox),
            by=self.host,
        )
        result = self.queue.enqueue(job, max_backlog=self._plan().config.max_pending)
        if result == "full":
            return FULL_RETRY
        if result is not None:
            logger.debug("cluster: queued %s (%s)", job.path, result)
        return None

    # Status.

    def _announce(self) -> None:
        """The host record; another live instance under this name is an error, said once."""
        other = self.leases.announce(self.describe())
        taken_by = None if other is None else str(other.get("instance"))
        if other is not None and taken_by != self._name_taken_by:
            logger.error(
                "cluster: another ocrwatch (on %s, pid %s) now runs under this host's name %s: "
                "the two take each other's files for their own; give each host its own "
                "queue.host_name",
                other.get("machine"),
                other.get("pid"),
                self.host,
            )
        self._name_taken_by = taken_by

    def describe(self) -> dict[str, Any]:
        """This host's record: what ``ocrwatch status`` shows of it."""
        held, suspects = self.holdings.held(), self.holdings.suspects()
        return {
            "host": self.host,
            "machine": socket.gethostname(),
            "pid": os.getpid(),
            "version": __version__,
            "roles": list(self.roles),
            "scanning": sorted(self.scanning),
            "held": held,
            "suspects": suspects,
            "capacity": self.holdings.capacity,
            "drift": sorted(self.drift),
            "absent": sorted(self.absent),
            "unreachable": self.unreachable,
            "seen": time.time(),
        }
