"""The entries one host holds: taking them from the queue, keeping them, settling them.

A host holds at most ``capacity`` entries (its worker threads: requests in
flight and uploads being prepared), so that no host hoards what another
could start now. New entries go to the tracker, where the workers find
them. An entry delivered before — taken over from a silent host, or held by
this host when it died — is a *suspect*: it may be the file that crashed
the host, so it is read alone, with nothing else in flight here. Redis
counts, per entry, the reads started and never finished (``starts``; a
suspect still waiting its turn when its host died is not counted); after
``max_deliveries`` of them the file gets an ``.error.json`` without being
read again. An innocent file read alone simply completes.

Every entry held is kept alive (its idle time reset, owner-checked) every
third of a lease; one another host took meanwhile is let go. A worker
checks right before committing that no other host holds the entry now
(:meth:`Holdings.before_commit`) and acknowledges it after the commit
(:meth:`Holdings.settle`). A job this version cannot read stays held and
unread until a clean stop hands it back.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ocrwatch.cluster.connection import describe_error, is_redis_error
from ocrwatch.cluster.jobs import inbox_id, settings_fingerprint
from ocrwatch.cluster.streams import Delivery, JobQueue
from ocrwatch.config import QueueConfig
from ocrwatch.errors import ClaimLost, InternalError
from ocrwatch.outcome import Outcome, Status
from ocrwatch.plan import InboxPlan
from ocrwatch.records import record_failure
from ocrwatch.tracker import Entry, Tracker

logger = logging.getLogger(__name__)

READ_BLOCK_MS = 500
FEED_WAIT = 0.5
KEPT = (Status.RETRY, Status.DEFERRED)
"""Outcomes after which a job stays held: tried again here later, or handed back at a stop."""


class Holdings:
    """The queue entries this host holds, and the rules for taking and settling them."""

    def __init__(
        self,
        config: QueueConfig,
        queue: JobQueue,
        *,
        host: str,
        plan: Callable[[], Any],
        tracker: Tracker,
        capacity: int,
        drift: dict[str, str],
        absent: set[str],
        published: Callable[[str], str | None],
        stop: threading.Event,
    ) -> None:
        """``drift`` and ``absent`` are the node's: inbox ids whose files this host must not
        take (settings differing, folder missing); ``published(id)`` is the settings
        fingerprint the inbox's scanner published."""
        self.config = config
        self.queue = queue
        self.host = host
        self._plan = plan
        self.tracker = tracker
        self.capacity = max(1, capacity)
        self.drift = drift
        self.absent = absent
        self.published = published
        self._stop = stop
        self._lock = threading.Lock()
        self._held: dict[str, Delivery] = {}
        self._in_tracker: set[str] = set()
        self._suspects: collections.deque[Delivery] = collections.deque()
        self._alone: set[str] = set()
        """Suspects being read now: nothing else starts here until they are settled."""
        self._unreadable: set[str] = set()
        self._dropped: list[Delivery] = []
        """Entries the tracker forgot unread (file removed, inbox dropped): handed back next."""
        self._freed = threading.Event()
        self.deliveries = 0
        """Entries taken from the queue since start (new, resumed and taken over), for metrics."""

    def held(self) -> int:
        with self._lock:
            return len(self._held)

    def suspects(self) -> int:
        with self._lock:
            return len(self._suspects)

    def take_all(self) -> list[Delivery]:
        """Every entry held, now let go of (a clean stop hands them back)."""
        with self._lock:
            held = list(self._held.values())
            self._held.clear()
            self._suspects.clear()
            self._dropped.clear()
        self._freed.set()
        return held

    def dropped(self, job: Any) -> None:
        """The tracker forgot a job before a worker settled it: note it (called under the
        tracker's lock); the cluster thread hands it back (:meth:`hand_back_dropped`)."""
        if not isinstance(job, Delivery):
            return
        with self._lock:
            if job.id in self._held:
                self._dropped.append(job)
            self._in_tracker.discard(job.id)
            self._alone.discard(job.id)
        self._freed.set()

    def hand_back_dropped(self) -> None:
        """Hand back the entries the tracker let go unread: another host (or a later scan)
        decides what they need; this host no longer counts them against its capacity."""
        with self._lock:
            dropped, self._dropped = self._dropped, []
        for delivery in dropped:
            self._let_go(delivery)

    def keepalive(self) -> None:
        with self._lock:
            held = list(self._held.values())
        if not held:
            return
        kept = self.queue.keepalive(held)
        with self._lock:
            for delivery in held:
                if delivery.id not in kept and delivery.id in self._held:
                    if delivery.id not in self._in_tracker:
                        del self._held[delivery.id]  # a suspect not started: its new holder has it
                        self._remove_suspect(delivery.id)
                    logger.warning(
                        "cluster: %s was taken over by another host",
                        delivery.job.path if delivery.job else delivery.id,
                    )

    def _remove_suspect(self, entry_id: str) -> None:
        kept = [d for d in self._suspects if d.id != entry_id]
        self._suspects.clear()
        self._suspects.extend(kept)

    def resume_own(self) -> None:
        """Entries this host held when it last stopped without handing them back (a crash, a kill)."""
        for name in self._readable_inboxes():
            for delivery in self.queue.own_pending(name, self.capacity * 4):
                self._suspect(delivery, "held by this host when it stopped without handing it back")

    def take_over(self) -> None:
        for name in self._readable_inboxes():
            free = self.capacity - self.held()
            if free <= 0:
                return
            for delivery in self.queue.reclaim(name, free):
                self._suspect(delivery, "taken over from a host silent for a whole lease")

    def _suspect(self, delivery: Delivery, why: str) -> None:
        name = delivery.job.path if delivery.job else delivery.id
        logger.warning(
            "cluster: %s in inbox %s: %s (delivery %d); it is read alone",
            name,
            delivery.inbox,
            why,
            delivery.deliveries,
        )
        with self._lock:
            self._held[delivery.id] = delivery
            self._suspects.append(delivery)
        self.deliveries += 1

    def _readable_inboxes(self) -> list[str]:
        """The inboxes whose files this host may take: settings agreeing, folder present."""
        return [
            inbox_id(i)
            for i in self._plan().inboxes
            if inbox_id(i) not in self.drift and inbox_id(i) not in self.absent
        ]

    def feed(self) -> None:
        """Hand jobs to the tracker: a suspect alone, else new ones up to the free capacity."""
        self.hand_back_dropped()
        with self._lock:
            suspect = self._suspects[0] if self._suspects else None
            busy = bool(self._in_tracker)
            alone = bool(self._alone)
            free = self.capacity - len(self._held)
        if alone:
            self._wait_freed()
            return
        if suspect is not None:
            if busy:
                self._wait_freed()
                return
            with self._lock:
                self._suspects.popleft()
                self._alone.add(suspect.id)
            self._hand(suspect)
            return
        if free <= 0:
            self._wait_freed()
            return
        inboxes = self._readable_inboxes()
        if not inboxes:
            self._stop.wait(FEED_WAIT)
            return
        for delivery in self.queue.read(inboxes, free, READ_BLOCK_MS):
            self.deliveries += 1
            self._hand(delivery)

    def _wait_freed(self) -> None:
        self._freed.wait(FEED_WAIT)
        self._freed.clear()

    def _hand(self, delivery: Delivery) -> None:
        inbox = next((i for i in self._plan().inboxes if i.config.id == delivery.inbox), None)
        job = delivery.job
        if job is None or inbox is None:
            # Held, kept alive, not read: a job of another version stays with this host until
            # it stops and hands it back, instead of being misread here or failed elsewhere.
            if delivery.id not in self._unreadable:
                self._unreadable.add(delivery.id)
                logger.error(
                    "cluster: cannot read entry %s of inbox %s: %s; it is left for a host that can",
                    delivery.id,
                    delivery.inbox,
                    delivery.error or "the inbox is not in this host's config",
                )
            with self._lock:
                self._held[delivery.id] = delivery
                self._alone.discard(delivery.id)  # unread, it cannot crash anything here
            return
        if inbox_id(inbox) in self.absent or not inbox.path.is_dir():
            logger.error(
                "cluster: %s: the inbox folder %s is missing on this host (share not mounted?); "
                "handed back",
                job.path,
                inbox.path,
            )
            self.absent.add(inbox_id(inbox))
            self._let_go(delivery)
            return
        own = settings_fingerprint(inbox)
        if job.settings != own and self.published(inbox_id(inbox)) != own:
            # Queued under other settings, and this host's differ from the scanner's too.
            # (Queued before a change every host has made since: read under today's.)
            logger.error(
                "cluster: config drift: %s was queued under other settings for inbox %s than "
                "this host's; handed back",
                job.path,
                delivery.inbox,
            )
            self.drift[delivery.inbox] = job.settings
            self._let_go(delivery)
            return
        path = job.local_path(inbox)
        # Crashes are counted by reads started and never finished, not by deliveries: a
        # suspect waiting its turn when its host died is not evidence against it.
        crashed = self.queue.starts(delivery)
        if crashed >= self.config.max_deliveries:
            self._fail_crashed(delivery, path, inbox, crashed)
            return
        self.queue.started(delivery)
        with self._lock:
            self._held[delivery.id] = delivery
            self._in_tracker.add(delivery.id)
        if not self.tracker.deliver(path, inbox, delivery):
            logger.info("cluster: %s is being read here already; its second job is dropped", path)
            self._done(delivery, ack=True)

    def _fail_crashed(self, delivery: Delivery, path: Path, inbox: InboxPlan, crashed: int) -> None:
        error = InternalError(
            f"reading it ended the ocrwatch process {crashed} times (a crash, not an "
            f"error; max_deliveries is {self.config.max_deliveries}); it is not tried again "
            "until it changes or `ocrwatch retry` is run"
        )
        logger.error("cluster: %s: %s", path, error)
        record_failure(
            inbox.sidecars(path),
            path,
            None,
            inbox.rules,
            error,
            attempt=crashed,
            first_attempt=time.time(),
        )
        self._done(delivery, ack=True)

    # Called by workers.

    def before_commit(self, entry: Entry) -> Callable[[], None] | None:
        """The check right before a job's sidecars are committed: still this host's entry?"""
        delivery = entry.job
        if not isinstance(delivery, Delivery):
            return None

        def check() -> None:
            try:
                owner = self.queue.owner(delivery)
            except Exception as error:
                if not is_redis_error(error):
                    raise
                return  # Redis gone: commit; a second commit elsewhere is whole too
            if owner is not None and owner != self.host:
                raise ClaimLost(f"another host ({owner}) took the file over while it was read here")

        return check

    def settle(self, entry: Entry, outcome: Outcome) -> None:
        """After a worker handled a job's outcome: acknowledge it, keep it, or let it go."""
        delivery = entry.job
        if not isinstance(delivery, Delivery):
            return
        if isinstance(outcome.error, ClaimLost):
            logger.warning("cluster: %s: %s; its result here is dropped", entry.path, outcome.error)
            self._done(delivery, ack=False)
        elif outcome.status in KEPT:
            # Tried again here later (or handed back at a stop), its lease kept alive. A
            # suspect that got this far did not crash the process: others may start beside it.
            with self._lock:
                cleared = delivery.id in self._alone
                self._alone.discard(delivery.id)
            if cleared:
                self._freed.set()
            return
        else:
            self._done(delivery, ack=True)
        entry.job = None

    def _let_go(self, delivery: Delivery) -> None:
        """Hand an entry back for another host, at once."""
        with self._lock:
            self._held.pop(delivery.id, None)
            self._alone.discard(delivery.id)
        self.queue.release(delivery)

    def _done(self, delivery: Delivery, *, ack: bool) -> None:
        with self._lock:
            self._held.pop(delivery.id, None)
            self._in_tracker.discard(delivery.id)
            self._alone.discard(delivery.id)
        self._freed.set()
        if not ack:
            return
        try:
            self.queue.ack(delivery)
        except Exception as error:
            if not is_redis_error(error):
                raise
            logger.warning(
                "cluster: %s done but not acknowledged (%s); the host that takes it over finds "
                "its sidecars current",
                delivery.job.path if delivery.job else delivery.id,
                describe_error(error),
            )
