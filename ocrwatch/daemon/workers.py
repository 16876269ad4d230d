"""The daemon's workers: a pool of threads per engine, each taking ready files from the tracker.

A worker runs :func:`ocrwatch.pipeline.process_file` (the per-file boundary)
and decides what the outcome means for the queue: finished (then
:mod:`ocrwatch.finish` does what follows), tried again after a delay, or put
back because the API paused or the key was rejected.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import random
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ocrwatch import current, engines, logs
from ocrwatch.apikey import KeyHolder
from ocrwatch.daemon.context import Context
from ocrwatch.daemon.reporting import GateWatch
from ocrwatch.engines.base import OcrEngine
from ocrwatch.errors import InvalidKeyError, OcrError, RateLimitError
from ocrwatch.finish import Finisher
from ocrwatch.metrics import Metrics
from ocrwatch.once import default_workers, worker_threads
from ocrwatch.outcome import Outcome, Status
from ocrwatch.pipeline import process_file
from ocrwatch.ratelimit import Gate
from ocrwatch.store import Attempts
from ocrwatch.tracker import Entry

if TYPE_CHECKING:
    from ocrwatch.cluster.node import ClusterNode
    from ocrwatch.resume import PageStore

logger = logging.getLogger(__name__)

TAKE_TIMEOUT = 0.5
"""How long a worker waits for a ready file before looking at the stop flag again."""
RETRY_AFTER_KEY_REJECTED = 1.0
INCOMPLETE_BACKOFF_START = 0.5
INCOMPLETE_BACKOFF_MAX = 30.0
OUTPUT_BACKOFF_START = 10.0
OUTPUT_BACKOFF_MAX = 300.0


class EngineSlot:
    """One engine kind's current engine object and its worker threads."""

    def __init__(self, name: str, engine: OcrEngine, workers: int) -> None:
        self.name = name
        self.engine = engine
        self.workers = workers
        self.threads: list[threading.Thread] = []
        self._retired: list[OcrEngine] = []

    def replace(self, engine: OcrEngine) -> None:
        """Use ``engine`` from the next file on; the old one is closed at shutdown."""
        self._retired.append(self.engine)
        self.engine = engine

    def close(self) -> None:
        for engine in [self.engine, *self._retired]:
            with contextlib.suppress(Exception):
                engine.close()


class Workers:
    """Every engine's slot and threads."""

    def __init__(
        self,
        context: Context,
        *,
        gate: Gate,
        gate_watch: GateWatch,
        finisher: Finisher,
        metrics: Metrics,
        keys: KeyHolder | None,
        node: ClusterNode | None = None,
    ) -> None:
        """``node``: distributed mode's part of this host (jobs' page store, commit check, ack)."""
        self.context = context
        self.node = node
        self.gate = gate
        self.gate_watch = gate_watch
        self.finisher = finisher
        self.metrics = metrics
        self.keys = keys
        self.slots: dict[str, EngineSlot] = {}
        self._rng = random.Random()

    def start(self) -> None:
        for name in sorted(self.context.plan.engines):
            self.add(name)

    def create_engine(self, name: str, workers: int) -> OcrEngine:
        engine = engines.create_engine(
            name,
            self.context.plan.config,
            api_key=self.keys,
            workers=workers,
            env=self.context.env,
            stop=self.context.stop,
            gate=self.gate,
        )
        engine.observer = self.metrics.observe_request
        return engine

    def add(self, name: str) -> None:
        """Start the engine called ``name`` and its threads."""
        workers = default_workers(name, self.context.plan.config.workers)
        slot = EngineSlot(name, self.create_engine(name, workers), workers)
        self.slots[name] = slot
        threads = worker_threads(name, workers)
        for index in range(threads):
            thread = threading.Thread(
                target=self._work, args=(slot,), name=f"{name}-{index + 1}", daemon=True
            )
            slot.threads.append(thread)
            thread.start()
        logger.info("engine %s: %d at a time, %d thread(s)", name, workers, threads)

    def join(self, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for every thread; return how many are still busy."""
        deadline = time.monotonic() + timeout
        for slot in self.slots.values():
            for thread in slot.threads:
                thread.join(max(0.0, deadline - time.monotonic()))
        return sum(thread.is_alive() for slot in self.slots.values() for thread in slot.threads)

    def close(self) -> None:
        for slot in self.slots.values():
            slot.close()

    def _work(self, slot: EngineSlot) -> None:
        tracker = self.context.tracker
        while not self.context.stop.is_set():
            entry = tracker.take(slot.name, TAKE_TIMEOUT)
            if entry is None:
                continue
            try:
                self._process(slot, entry)
            except Exception:  # noqa: BLE001 - thread entry point: the worker must outlive a bug in handling an outcome
                logger.exception(
                    "%s: unexpected error after processing; the file is released", entry.path
                )
                tracker.finish(entry)

    def _process(self, slot: EngineSlot, entry: Entry) -> None:
        inbox = entry.inbox
        store = self.context.store
        if entry.attempt == 0 and store is not None:
            info = current.stat_of(entry.path)
            earlier = store.attempts(entry.path, info.st_size, info.st_mtime_ns) if info else None
            if earlier is not None:
                entry.attempt, entry.first_attempt = earlier.count, earlier.first_attempt
        entry.attempt += 1
        entry.first_attempt = entry.first_attempt or time.time()
        resume: PageStore | None = store
        before_commit = None
        if self.node is not None and entry.job is not None:
            resume, before_commit = self.node.pages, self.node.before_commit(entry)
        outcome = process_file(
            entry.path,
            inbox,
            slot.engine,
            give_up=self._give_up(entry),
            attempt=entry.attempt,
            first_attempt=entry.first_attempt,
            requests_before=entry.requests,
            follow_symlinks=inbox.config.follow_symlinks,
            resume=resume,
            on_page=functools.partial(self._on_page, entry.path),
            before_commit=before_commit,
        )
        self.context.stats.reading.pop(entry.path, None)
        if isinstance(outcome.error, OcrError):
            entry.requests += outcome.error.attempts
        if self.node is not None:
            # Before the tracker lets the entry go (or round again as a file found here).
            self.node.settle(entry, outcome)
        self._handle(slot, entry, outcome)

    def _on_page(self, path: Path, done: int, total: int) -> None:
        self.context.stats.reading[path] = (done, total)

    def _give_up(self, entry: Entry) -> frozenset[str]:
        """The retryable classifications for which this attempt is the last."""
        give_up = set()
        waited = time.time() - (entry.first_attempt or time.time())
        if waited >= entry.inbox.config.incomplete_timeout:
            give_up.add("incomplete")
        if entry.attempt >= self.context.plan.config.transient_attempts:
            give_up.add("transient")
        return frozenset(give_up)

    def _handle(self, slot: EngineSlot, entry: Entry, outcome: Outcome) -> None:
        status = outcome.status
        inbox = entry.inbox.path
        stats = self.context.stats
        stats.count(inbox, status)
        if status is Status.DONE:
            logger.info("done %s: %s in %.2f s", entry.path, outcome.message, outcome.seconds)
        elif status in (Status.FAILED, Status.PARTIAL):
            stats.error(inbox, f"{entry.path.name}: {outcome.message}")
            logger.error(
                "%s %s: [%s] %s", status, entry.path, outcome.classification, outcome.message
            )
        elif status is Status.RETRY:
            self._retry(entry, outcome)
            return
        elif status is Status.DEFERRED:
            entry.attempt -= 1
            self._defer(entry, outcome)
            return
        else:
            logger.debug("%s %s: %s", status, entry.path, outcome.message)
        self.finisher.finish(entry.path, entry.inbox, outcome, engine=slot.name)
        self.context.tracker.finish(entry)

    def _retry(self, entry: Entry, outcome: Outcome) -> None:
        classification = outcome.classification or "transient"
        stats = self.context.stats
        if classification == "incomplete":
            delay = min(INCOMPLETE_BACKOFF_MAX, INCOMPLETE_BACKOFF_START * 2 ** (entry.attempt - 1))
            logger.info(
                "waiting for %s to be complete (%s); next look in %.1f s",
                entry.path,
                outcome.message,
                delay,
            )
        elif classification == "output":
            delay = min(OUTPUT_BACKOFF_MAX, OUTPUT_BACKOFF_START * 2 ** (entry.attempt - 1))
            stats.error(entry.inbox.path, f"{entry.path.name}: {outcome.message}")
            logger.error("%s: %s; trying again in %.0f s", entry.path, outcome.message, delay)
        else:
            config = self.context.plan.config
            delay = (
                config.transient_retry_seconds
                * 2 ** (entry.attempt - 1)
                * self._rng.uniform(0.75, 1.25)
            )
            stats.error(entry.inbox.path, f"{entry.path.name}: {outcome.message}")
            logger.warning(
                "%s: %s; attempt %d of %d, next in %.0f s",
                entry.path,
                outcome.message,
                entry.attempt,
                config.transient_attempts,
                delay,
            )
        store = self.context.store
        info = current.stat_of(entry.path) if store is not None else None
        if store is not None and info is not None:
            store.record_attempt(
                entry.path,
                size=info.st_size,
                mtime_ns=info.st_mtime_ns,
                attempts=Attempts(entry.attempt, entry.first_attempt or time.time()),
                classification=classification,
                message=logs.redact(outcome.message),
            )
        self.context.tracker.finish(entry, retry_in=delay)

    def _defer(self, entry: Entry, outcome: Outcome) -> None:
        error = outcome.error
        tracker = self.context.tracker
        if isinstance(error, InvalidKeyError):
            self.gate_watch.key_rejected(error)
            tracker.finish(entry, retry_in=RETRY_AFTER_KEY_REJECTED)
        elif isinstance(error, RateLimitError):
            tracker.finish(entry, again=True)
        else:
            # Interrupted by shutdown: the file stays as it is for the next start.
            tracker.finish(entry)
