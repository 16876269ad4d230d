"""``ocrwatch run``: the watching daemon, its workers and its life cycle.

Threads and who owns what:

* the main thread runs :meth:`Daemon.run`: signals (handlers only set flags),
  settle and retry timers, observer health, periodic rescans, reloads,
  watchdog pings and status lines;
* one observer per inbox (``watcher``) reports events to the tracker;
* one scanner thread walks inboxes (at start, periodically, after a lost
  event, after a reload) and hands files without current sidecars to the
  tracker;
* a pool of worker threads per engine takes ready files from the tracker and
  runs :func:`ocrwatch.pipeline.process_file` on each.

Each worker catches everything per file (a bug in one file's path must not
stop the others), and the daemon decides what each outcome means: done,
failed for good, retried after a delay, or put back because the API paused.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import queue
import random
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType
from typing import Any

from ocrwatch import __version__, after, engines, logs, scan, sidecar
from ocrwatch.apikey import KeyHolder
from ocrwatch.batch import default_workers, worker_threads
from ocrwatch.config import load_config
from ocrwatch.engines.base import OcrEngine
from ocrwatch.errors import (
    AlreadyRunning,
    ConfigError,
    FileError,
    InvalidKeyError,
    OcrError,
    OcrwatchError,
    RateLimitError,
)
from ocrwatch.hooks import HookRunner
from ocrwatch.metrics import Metrics
from ocrwatch.notify import Notifier
from ocrwatch.pipeline import Outcome, process_file, record_failure, sidecar_verdict
from ocrwatch.plan import InboxPlan, Plan, make_plan
from ocrwatch.ratelimit import RequestGate
from ocrwatch.sidecar import SidecarPaths, utc_iso
from ocrwatch.state import Attempts, CachedFile, StateStore, default_state_dir
from ocrwatch.tracker import Entry, Tracker
from ocrwatch.watcher import Watcher

logger = logging.getLogger(__name__)

SETTLE_NATIVE_SECONDS = 1.0
SETTLE_POLL_SECONDS = 10.0
WORKER_TAKE_TIMEOUT = 0.5
MAIN_LOOP_MAX_SLEEP = 1.0
STATUS_INTERVAL = 5.0
INCOMPLETE_BACKOFF_START = 0.5
INCOMPLETE_BACKOFF_MAX = 30.0
OUTPUT_BACKOFF_START = 10.0
OUTPUT_BACKOFF_MAX = 300.0
KEY_REMINDER_SECONDS = 600.0
STOP_MARGIN_SECONDS = 15.0
PAUSE_KEY = "ocrspace_paused_until"
PAUSE_REASON_KEY = "ocrspace_pause_reason"


@dataclass
class InboxStats:
    """One inbox's counters since start."""

    outcomes: Counter[str] = field(default_factory=Counter)
    last_error: str | None = None
    last_error_at: float | None = None


@dataclass
class Stats:
    """Counters since start, per inbox and in total, for status lines and ``ocrwatch status``."""

    inboxes: dict[Path, InboxStats] = field(default_factory=dict)
    outcomes: Counter[str] = field(default_factory=Counter)
    last_error: str | None = None
    started: float = field(default_factory=time.time)

    def of(self, inbox: Path) -> InboxStats:
        return self.inboxes.setdefault(inbox, InboxStats())

    def count(self, inbox: Path, status: str) -> None:
        self.outcomes[status] += 1
        self.of(inbox).outcomes[status] += 1

    def error(self, inbox: Path | None, text: str) -> None:
        self.last_error = text
        if inbox is not None:
            stats = self.of(inbox)
            stats.last_error, stats.last_error_at = text, time.time()


class EngineSlot:
    """One engine kind's current engine object, its gate and its worker threads."""

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


class Daemon:
    """Watches the inboxes of a plan and keeps turning images into sidecars."""

    def __init__(self, plan: Plan, *, config_path: Path | None, env: Mapping[str, str] | None = None) -> None:
        self.plan = plan
        self.config_path = config_path
        self.env = dict(os.environ if env is None else env)
        self.state_dir = default_state_dir(plan.config.state_dir, self.env)
        self.notifier = Notifier(self.env)
        self.stats = Stats()
        self.stop_event = threading.Event()
        self.wakeup = threading.Event()
        self._reload_requested = False
        self._rescan_requested = False
        self.gate = RequestGate(plan.config.ocrspace.rate_limit)
        self.keys = KeyHolder(plan.api_key) if plan.api_key is not None else None
        self.metrics = Metrics()
        self.hooks = HookRunner(env=self.env)
        self.tracker = Tracker(settle_seconds=self._settle_seconds, max_pending=plan.config.max_pending)
        self.watcher = Watcher(self)
        self.store: StateStore | None = None
        self.slots: dict[str, EngineSlot] = {}
        self._scan_requests: queue.Queue[tuple[InboxPlan | None, Path | None, str]] = queue.Queue()
        self._initial_scan_done = threading.Event()
        self._scanner: threading.Thread | None = None
        self._lock_handle: int | None = None
        self._scan_incomplete: set[Path] = set()
        self._last_pause_logged = 0
        self._last_key_warning = 0.0
        self._last_status = ""
        self._rng = random.Random()

    # Life cycle.

    def run(self) -> int:
        """Run until SIGTERM/SIGINT; returns the exit code."""
        self._install_signals()
        self._lock_state_dir()
        metrics = self.plan.config.metrics
        if metrics is not None:
            try:
                self.metrics.serve(*metrics.address)
            except OSError as error:
                raise ConfigError(
                    f"{self.plan.loaded.where(['metrics', 'listen'])}cannot listen on {metrics.listen}: "
                    f"{error.strerror or error}"
                ) from error
        self._remove_temps(self.state_dir, recursive=False)
        self.store = StateStore(self.state_dir)
        self._restore_pause()
        try:
            self._start_engines()
            for inbox in self.plan.inboxes:
                self._watch(inbox)
            self._scanner = threading.Thread(target=self._scan_loop, name="scanner", daemon=True)
            self._scanner.start()
            self.request_scan(None, "start")
            self._main_loop()
        finally:
            self._shutdown()
        return 0

    def _main_loop(self) -> None:
        last_ping = 0.0
        last_scan = time.monotonic()
        last_status = 0.0
        ready_sent = False
        interval = self.plan.config.rescan_interval
        while not self.stop_event.is_set():
            sleep = min(self.tracker.tick(), MAIN_LOOP_MAX_SLEEP)
            now = time.monotonic()
            if not ready_sent and self._initial_scan_done.is_set():
                ready_sent = True
                status = self.status_line()
                self.notifier.ready(status)
                logger.info("ready: %s", status)
                last_status = now
            if self._reload_requested:
                self._reload_requested = False
                self._reload()
            if self._rescan_requested:
                self._rescan_requested = False
                self.request_scan(None, "requested")
            for inbox in self.watcher.check():
                self.request_scan(inbox, "watch restarted")
            if interval and now - last_scan >= interval:
                last_scan = now
                self.request_scan(None, "periodic rescan")
            if self._scan_incomplete and self.tracker.pending() < self.plan.config.max_pending // 2:
                for path in list(self._scan_incomplete):
                    self._scan_incomplete.discard(path)
                    for continued in self.plan.inboxes:
                        if continued.path == path:
                            self.request_scan(continued, "backlog continues")
            if self.notifier.watchdog_interval and now - last_ping >= self.notifier.watchdog_interval:
                self.notifier.watchdog()
                last_ping = now
            self._note_gate()
            if now - last_status >= STATUS_INTERVAL:
                last_status = now
                self._publish_status()
            if self.notifier.watchdog_interval:
                sleep = min(sleep, self.notifier.watchdog_interval / 2)
            self.wakeup.wait(sleep)
            self.wakeup.clear()

    def _shutdown(self) -> None:
        status = f"stopping; {self.status_line()}"
        # Ask systemd for the drain time in the same datagram, so a raised shutdown_timeout
        # is not cut short by the unit's TimeoutStopSec.
        extend = int((self.plan.config.shutdown_timeout + STOP_MARGIN_SECONDS) * 1_000_000)
        self.notifier.send("STOPPING=1", f"STATUS={status}", f"EXTEND_TIMEOUT_USEC={extend}")
        logger.info("%s", status)
        self.stop_event.set()
        self.tracker.close()
        self.watcher.stop()
        self.gate.wake()
        deadline = time.monotonic() + self.plan.config.shutdown_timeout
        for slot in self.slots.values():
            for thread in slot.threads:
                thread.join(max(0.0, deadline - time.monotonic()))
        busy = sum(thread.is_alive() for slot in self.slots.values() for thread in slot.threads)
        if busy:
            logger.warning("%d file(s) still in progress after %.0f s; they will be redone at the next start",
                           busy, self.plan.config.shutdown_timeout)
        for slot in self.slots.values():
            slot.close()
        self.hooks.close()
        self.metrics.close()
        self._publish_status(final=True)
        if self.store is not None:
            self.store.close()
        self.notifier.close()
        if self._lock_handle is not None:
            os.close(self._lock_handle)

    def _install_signals(self) -> None:
        signal.signal(signal.SIGTERM, self._on_stop_signal)
        signal.signal(signal.SIGINT, self._on_stop_signal)
        signal.signal(signal.SIGHUP, self._on_reload_signal)
        signal.signal(signal.SIGUSR1, self._on_rescan_signal)

    def _on_stop_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.stop_event.is_set():
            # A second stop signal: the user does not want to wait for the drain.
            prefix = b"<4>" if logs.under_journal(sys.stderr, self.env) else b""
            os.write(2, prefix + b"ocrwatch: second stop signal, exiting now\n")
            os._exit(128 + signum)
        self.stop_event.set()
        self.wakeup.set()

    def _on_reload_signal(self, signum: int, frame: FrameType | None) -> None:
        self._reload_requested = True
        self.wakeup.set()

    def _on_rescan_signal(self, signum: int, frame: FrameType | None) -> None:
        # ``ocrwatch retry`` asks for this after removing error sidecars.
        self._rescan_requested = True
        self.wakeup.set()

    def _lock_state_dir(self) -> None:
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            handle = os.open(self.state_dir / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as error:
            raise ConfigError(f"cannot use state folder {self.state_dir}: {error.strerror or error}") from error
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            owner = os.pread(handle, 32, 0).decode(errors="replace").strip()
            os.close(handle)
            if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise AlreadyRunning(
                    f"another ocrwatch (pid {owner or '?'}) is running with state folder {self.state_dir}"
                ) from None
            raise
        os.ftruncate(handle, 0)
        os.pwrite(handle, f"{os.getpid()}\n".encode(), 0)
        self._lock_handle = handle

    # Engines and workers.

    def _start_engines(self) -> None:
        for name in sorted(self.plan.engines):
            self._add_slot(name)

    def _create_engine(self, name: str, workers: int) -> OcrEngine:
        engine = engines.create_engine(
            name,
            self.plan.config,
            api_key=self.keys,
            workers=workers,
            env=self.env,
            stop=self.stop_event,
            gate=self.gate,
        )
        engine.observer = self.metrics.observe_request
        return engine

    def _add_slot(self, name: str) -> None:
        workers = default_workers(name, self.plan.config.workers)
        slot = EngineSlot(name, self._create_engine(name, workers), workers)
        self.slots[name] = slot
        threads = worker_threads(name, workers)
        for index in range(threads):
            thread = threading.Thread(target=self._work, args=(slot,), name=f"{name}-{index + 1}", daemon=True)
            slot.threads.append(thread)
            thread.start()
        logger.info("engine %s: %d at a time, %d thread(s)", name, workers, threads)

    def _work(self, slot: EngineSlot) -> None:
        while not self.stop_event.is_set():
            entry = self.tracker.take(slot.name, WORKER_TAKE_TIMEOUT)
            if entry is None:
                continue
            try:
                self._process(slot, entry)
            except Exception as error:  # noqa: BLE001 - the per-file boundary: one file's bug must not stop the worker
                logger.exception("%s: unexpected error; recorded as failed", entry.path)
                self._fail_unexpected(entry, error)

    def _process(self, slot: EngineSlot, entry: Entry) -> None:
        inbox = entry.inbox
        if entry.attempt == 0 and self.store is not None:
            info = _stat(entry.path)
            earlier = self.store.attempts(entry.path, info.st_size, info.st_mtime_ns) if info else None
            if earlier is not None:
                entry.attempt, entry.first_attempt = earlier.count, earlier.first_attempt
        entry.attempt += 1
        entry.first_attempt = entry.first_attempt or time.time()
        outcome = process_file(
            entry.path,
            inbox,
            slot.engine,
            give_up=self._give_up(entry),
            attempt=entry.attempt,
            first_attempt=entry.first_attempt,
            requests_before=entry.requests,
            follow_symlinks=inbox.follow_symlinks,
        )
        if isinstance(outcome.error, OcrError):
            entry.requests += outcome.error.attempts
        self._handle(entry, outcome)

    def _give_up(self, entry: Entry) -> frozenset[str]:
        """The retryable classifications for which this attempt is the last."""
        give_up = set()
        waited = time.time() - (entry.first_attempt or time.time())
        if waited >= entry.inbox.incomplete_timeout:
            give_up.add("incomplete")
        if entry.attempt >= self.plan.config.transient_attempts:
            give_up.add("transient")
        return frozenset(give_up)

    def _handle(self, entry: Entry, outcome: Outcome) -> None:
        status = outcome.status
        inbox = entry.inbox.path
        self.stats.count(inbox, status)
        if status in ("done", "failed", "skipped"):
            self.metrics.file_finished(str(inbox), status, outcome.seconds)
        if status == "done":
            logger.info("done %s: %s in %.2f s", entry.path, outcome.message, outcome.seconds)
            self._after(entry, outcome, success=True)
            self.tracker.finish(entry)
        elif status == "failed":
            self.stats.error(inbox, f"{entry.path.name}: {outcome.message}")
            logger.error("failed %s: [%s] %s", entry.path, outcome.classification, outcome.message)
            self._after(entry, outcome, success=False)
            self.tracker.finish(entry)
        elif status == "retry":
            self._retry(entry, outcome)
        elif status == "deferred":
            entry.attempt -= 1
            self._defer(entry, outcome)
        elif status in ("skipped", "known_failure") and after.changes_location(
            entry.inbox, success=status == "skipped"
        ):
            # Finished before a crash cut its move short: finish the move now.
            logger.info("%s %s: finishing what a restart interrupted", status, entry.path)
            self._after(entry, outcome, success=status == "skipped")
            self.tracker.finish(entry)
        else:
            if status == "skipped" and self.store is not None:
                self._remember(entry.path, entry.inbox, "done")
            logger.debug("%s %s: %s", status, entry.path, outcome.message)
            self.tracker.finish(entry)

    def _retry(self, entry: Entry, outcome: Outcome) -> None:
        classification = outcome.classification or "transient"
        if classification == "incomplete":
            delay = min(INCOMPLETE_BACKOFF_MAX, INCOMPLETE_BACKOFF_START * 2 ** (entry.attempt - 1))
            logger.info("waiting for %s to be complete (%s); next look in %.1f s", entry.path, outcome.message, delay)
        elif classification == "output":
            delay = min(OUTPUT_BACKOFF_MAX, OUTPUT_BACKOFF_START * 2 ** (entry.attempt - 1))
            self.stats.error(entry.inbox.path, f"{entry.path.name}: {outcome.message}")
            logger.error("%s: %s; trying again in %.0f s", entry.path, outcome.message, delay)
        else:
            first = self.plan.config.transient_retry_seconds
            delay = first * 2 ** (entry.attempt - 1) * self._rng.uniform(0.75, 1.25)
            self.stats.error(entry.inbox.path, f"{entry.path.name}: {outcome.message}")
            logger.warning("%s: %s; attempt %d of %d, next in %.0f s", entry.path, outcome.message,
                           entry.attempt, self.plan.config.transient_attempts, delay)
        if self.store is not None:
            info = _stat(entry.path)
            if info is not None:
                self.store.record_attempt(
                    entry.path,
                    size=info.st_size,
                    mtime_ns=info.st_mtime_ns,
                    attempts=Attempts(entry.attempt, entry.first_attempt or time.time()),
                    classification=classification,
                    message=logs.redact(outcome.message),
                )
        self.tracker.finish(entry, retry_in=delay)

    def _defer(self, entry: Entry, outcome: Outcome) -> None:
        error = outcome.error
        if isinstance(error, InvalidKeyError):
            now = time.monotonic()
            if now - self._last_key_warning >= KEY_REMINDER_SECONDS:
                self._last_key_warning = now
                logger.critical(
                    "ocr.space rejected the API key: all ocr.space OCR is stopped until the key is fixed "
                    "(then: systemctl reload ocrwatch, or send SIGHUP). %s", error
                )
            self.stats.error(None, f"API key rejected: {error}")
            self.tracker.finish(entry, retry_in=MAIN_LOOP_MAX_SLEEP)
        elif isinstance(error, RateLimitError):
            self.tracker.finish(entry, again=True)
        else:
            # Interrupted by shutdown: the file stays as it is for the next start.
            self.tracker.finish(entry)

    def _fail_unexpected(self, entry: Entry, error: Exception) -> None:
        """Record a bug's failure for one file; never raises, so the worker lives on."""
        failure = FileError(f"internal error: {type(error).__name__}: {error}")
        failure.classification = "internal"
        try:
            record_failure(
                SidecarPaths.of(entry.path, entry.inbox.sidecar_dir(entry.path)),
                entry.path,
                None,
                entry.inbox.rules,
                failure,
                attempt=entry.attempt,
                first_attempt=entry.first_attempt or time.time(),
            )
            self.stats.count(entry.inbox.path, "failed")
            self.stats.error(entry.inbox.path, f"{entry.path.name}: {failure}")
            self.metrics.file_finished(str(entry.inbox.path), "failed")
        except Exception:  # noqa: BLE001 - the error path itself must not kill the worker
            logger.exception("%s: cannot even record the failure", entry.path)
        finally:
            self.tracker.finish(entry)

    # After a file: keep, move or delete; remember.

    def _after(self, entry: Entry, outcome: Outcome, *, success: bool) -> None:
        if self.store is not None:
            self.store.clear_attempts(entry.path)
        status = "done" if success else "failed"
        final: Path | None = entry.path
        if after.changes_location(entry.inbox, success=success):
            try:
                final = after.finish(entry.path, entry.inbox, success=success)
            except OSError as error:
                logger.error("%s: cannot %s it: %s", entry.path, entry.inbox.after if success else "move", error)
        if final == entry.path:
            self._remember(entry.path, entry.inbox, status)
        elif self.store is not None:
            self.store.forget(entry.path)
        if entry.inbox.hooks:
            slot = self.slots.get(entry.inbox.rules.engine)
            self.hooks.submit(
                entry.inbox.hooks,
                after.event(entry.path, entry.inbox, final, outcome, engine=slot.name if slot else ""),
            )

    def _remember(self, path: Path, inbox: InboxPlan, status: str) -> None:
        if self.store is None:
            return
        paths = SidecarPaths.of(path, inbox.sidecar_dir(path))
        image = _stat(path)
        record = _stat(paths.result if status == "done" else paths.error)
        if image is None or record is None:
            return
        self.store.remember(
            path,
            CachedFile(
                size=image.st_size,
                mtime_ns=image.st_mtime_ns,
                fingerprint=inbox.rules.fingerprint,
                status=status,
                sidecar_size=record.st_size,
                sidecar_mtime_ns=record.st_mtime_ns,
            ),
        )

    # Watching and scanning.

    def _settle_seconds(self, inbox: InboxPlan) -> float:
        if inbox.settle_seconds is not None:
            return inbox.settle_seconds
        mode = self.watcher.modes().get(inbox.path)
        return SETTLE_POLL_SECONDS if mode is not None and mode.kind == "poll" else SETTLE_NATIVE_SECONDS

    def _watch(self, inbox: InboxPlan) -> None:
        mode = self.watcher.watch(inbox)
        logger.info("watching %s: %s (%s)%s", inbox.path, mode.kind, mode.reason,
                    ", recursive" if inbox.recursive else "")

    def request_scan(self, inbox: InboxPlan | None, reason: str, folder: Path | None = None) -> None:
        """Ask the scanner to walk ``inbox`` (None: all inboxes) or one ``folder`` of it."""
        self._scan_requests.put((inbox, folder, reason))

    def _scan_loop(self) -> None:
        first = True
        while not self.stop_event.is_set():
            try:
                inbox, folder, reason = self._scan_requests.get(timeout=WORKER_TAKE_TIMEOUT)
            except queue.Empty:
                continue
            targets = list(self.plan.inboxes) if inbox is None else [inbox]
            started = time.monotonic()
            queued = 0
            for target in targets:
                try:
                    queued += self._scan(target, folder, clean=first)
                except Exception:  # noqa: BLE001 - a scan failure must not end the scanner thread
                    logger.exception("scanning %s failed", target.path)
            logger.log(
                logging.INFO if reason != "periodic rescan" or queued else logging.DEBUG,
                "scan (%s) of %s: %d file(s) to process, %.2f s",
                reason, "every inbox" if inbox is None else (folder or target.path), queued,
                time.monotonic() - started,
            )
            if first:
                first = False
                self._initial_scan_done.set()
                self.wakeup.set()

    def _scan(self, inbox: InboxPlan, folder: Path | None, *, clean: bool) -> int:
        current = next((i for i in self.plan.inboxes if i.path == inbox.path), None)
        if current is None:
            return 0
        inbox = current
        if clean:
            self._remove_temps(inbox.path, recursive=inbox.recursive)
            for place in (inbox.output, inbox.done_dir, inbox.failed_dir):
                if place is not None:
                    self._remove_temps(place, recursive=True)
        walked = replace(inbox, path=folder, recursive=True) if folder is not None else inbox
        queued = 0
        for path in scan.walk(walked, inbox.excluded):
            if self.stop_event.is_set():
                break
            if folder is not None and not scan.is_candidate(path, inbox, inbox.excluded):
                continue
            info = _stat(path) if inbox.follow_symlinks else _lstat(path)
            if info is None:
                continue
            try:
                finished = self._is_current(path, inbox, info)
            except Exception:  # noqa: BLE001 - one odd file must not end the scan of all the others
                logger.exception("%s: cannot check its sidecars; queueing it", path)
                finished = False
            if finished:
                continue
            if not self.tracker.found(path, inbox, mtime_ns=info.st_mtime_ns):
                self._scan_incomplete.add(inbox.path)
                logger.info("%s: %d files waiting; the rest of the backlog follows as they finish",
                            inbox.path, self.tracker.pending())
                break
            queued += 1
        return queued

    def _is_current(self, path: Path, inbox: InboxPlan, info: os.stat_result) -> bool:
        """True when the sidecars say ``path`` is finished and nothing is left to do with it.

        A finished file whose inbox moves or deletes finished files is not: it
        is left over from a crash between its sidecars and its move, and the
        worker that takes it finds the sidecar current and completes the move.
        """
        verdict = self._verdict(path, inbox, info)
        return verdict is not None and not after.changes_location(inbox, success=verdict == "done")

    def _verdict(self, path: Path, inbox: InboxPlan, info: os.stat_result) -> str | None:
        fingerprint = inbox.rules.fingerprint
        if self.store is not None:
            cached = self.store.cached(path)
            if (
                cached is not None
                and cached.fingerprint == fingerprint
                and (cached.size, cached.mtime_ns) == (info.st_size, info.st_mtime_ns)
            ):
                paths = SidecarPaths.of(path, inbox.sidecar_dir(path))
                record = _stat(paths.result if cached.status == "done" else paths.error)
                if record is not None and (record.st_size, record.st_mtime_ns) == (
                    cached.sidecar_size,
                    cached.sidecar_mtime_ns,
                ):
                    return cached.status
        verdict = sidecar_verdict(path, inbox, info)
        if verdict is not None:
            self._remember(path, inbox, verdict)
        return verdict

    def _remove_temps(self, root: Path, *, recursive: bool) -> None:
        removed = 0
        for folder, subfolders, _ in os.walk(root) if recursive else [(str(root), [], [])]:
            removed += sidecar.remove_stale_temps(Path(folder))
            subfolders[:] = [name for name in subfolders if not name.startswith(".")]
        if removed:
            logger.info("removed %d temporary file(s) left by an earlier crash in %s", removed, root)

    # Sink for the watcher (called from observer threads).

    def closed(self, path: Path, inbox: InboxPlan) -> None:
        self.tracker.complete(path, self._current_inbox(inbox))

    def arrived(self, path: Path, inbox: InboxPlan) -> None:
        self.tracker.complete(path, self._current_inbox(inbox))

    def changed(self, path: Path, inbox: InboxPlan) -> None:
        self.tracker.changed(path, self._current_inbox(inbox))
        self.wakeup.set()

    def removed(self, path: Path) -> None:
        self.tracker.removed(path)

    def rescan(self, inbox: InboxPlan | None, reason: str, folder: Path | None = None) -> None:
        self.request_scan(inbox, reason, folder)

    def _current_inbox(self, inbox: InboxPlan) -> InboxPlan:
        return next((i for i in self.plan.inboxes if i.path == inbox.path), inbox)

    # Reload.

    def _reload(self) -> None:
        self.notifier.reloading()
        logger.info("reloading %s", self.config_path)
        try:
            if self.config_path is None:
                raise ConfigError("no config file to reload")
            plan = make_plan(load_config(self.config_path), env=self.env)
        except OcrwatchError as error:
            for line in str(error).splitlines():
                logger.error("reload refused, keeping the running configuration: %s", line)
            self.notifier.ready(f"reload refused (see log); {self.status_line()}")
            return
        for warning in plan.warnings:
            logger.warning("%s", warning)
        old = {inbox.path: inbox for inbox in self.plan.inboxes}
        new = {inbox.path: inbox for inbox in plan.inboxes}
        previous = self.plan
        self.plan = plan
        for path in old.keys() - new.keys():
            self.watcher.unwatch(path)
            dropped = self.tracker.drop_inbox(path)
            logger.info("stopped watching %s (removed from the config; %d waiting file(s) left as they are)",
                        path, dropped)
        for path, inbox in new.items():
            before = old.get(path)
            if before is None:
                self._watch(inbox)
            elif (before.recursive, before.watch, before.poll_interval, before.patterns) != (
                inbox.recursive, inbox.watch, inbox.poll_interval, inbox.patterns
            ) or before.excluded != inbox.excluded:
                self.watcher.unwatch(path)
                self._watch(inbox)
        self.tracker.update_inboxes(new)
        self._reload_engines(previous, plan)
        self.request_scan(None, "reload")
        status = f"reloaded; {self.status_line()}"
        self.notifier.ready(status)
        logger.info("%s", status)

    def _reload_engines(self, previous: Plan, plan: Plan) -> None:
        self.gate.set_limit(plan.config.ocrspace.rate_limit)
        if plan.api_key is not None:
            # The key first, then the gate: workers released by unblock must send the new key.
            if self.keys is None:
                self.keys = KeyHolder(plan.api_key)
            elif self.keys.replace(plan.api_key):
                logger.info("ocr.space: using the %s", plan.api_key)
        if self.gate.state().blocked:
            # A reload is the operator saying "try again", with a new key or the same one.
            logger.info("ocr.space: trying again after the reload")
            self.gate.unblock()
        for name in sorted(plan.engines):
            slot = self.slots.get(name)
            if slot is None:
                self._add_slot(name)
                continue
            section = "ocrspace" if name == "ocrspace" else "tesseract"
            if getattr(previous.config, section) != getattr(plan.config, section):
                slot.replace(self._create_engine(name, slot.workers))
                logger.info("engine %s: new settings in use", name)

    # Status.

    def _restore_pause(self) -> None:
        if self.store is None:
            return
        until = self.store.get(PAUSE_KEY)
        if until:
            try:
                self.gate.pause_until_wall(float(until), self.store.get(PAUSE_REASON_KEY) or "rate limit")
            except ValueError:
                return
            state = self.gate.state()
            if state.paused_until:
                logger.warning("ocr.space is paused until %s (%s), as it asked before the restart",
                               utc_iso(state.paused_until), state.pause_reason)

    def _note_gate(self) -> None:
        state = self.gate.state()
        self.metrics.paused.set(1 if state.paused_until or state.blocked else 0)
        if state.paused_until and state.pause_number != self._last_pause_logged:
            self._last_pause_logged = state.pause_number
            self.metrics.pauses.inc()
            logger.warning("ocr.space paused until %s: %s", utc_iso(state.paused_until), state.pause_reason)
            if self.store is not None:
                self.store.put(PAUSE_KEY, repr(state.paused_until))
                self.store.put(PAUSE_REASON_KEY, state.pause_reason)

    def status_line(self) -> str:
        """One line for systemctl status: work waiting, done, failed, pauses."""
        counts = self.tracker.counts()
        waiting = counts["settling"] + counts["ready"] + counts["waiting"]
        parts = [
            f"{len(self.plan.inboxes)} inbox(es)",
            f"{waiting} waiting",
            f"{counts['running']} in progress",
            f"{self.stats.outcomes['done']} done",
            f"{self.stats.outcomes['failed']} failed",
        ]
        gate = self.gate.state()
        if gate.blocked:
            parts.append("ocr.space stopped: API key rejected")
        elif gate.paused_until:
            parts.append(f"ocr.space paused until {time.strftime('%H:%M:%S', time.localtime(gate.paused_until))}")
        return ", ".join(parts)

    def snapshot(self) -> dict[str, Any]:
        """The daemon's state as JSON data, for ``ocrwatch status``."""
        counts = self.tracker.counts()
        by_inbox = self.tracker.counts_by_inbox()
        gate = self.gate.state()
        modes = self.watcher.modes()
        inboxes = []
        for inbox in self.plan.inboxes:
            stats = self.stats.of(inbox.path)
            waiting = by_inbox.get(inbox.path, {})
            mode = modes.get(inbox.path)
            inboxes.append(
                {
                    "path": str(inbox.path),
                    "engine": inbox.rules.engine,
                    "watch": mode.kind if mode else None,
                    "watch_reason": mode.reason if mode else None,
                    "waiting": sum(n for state, n in waiting.items() if state != "running"),
                    "in_progress": waiting.get("running", 0),
                    "done": stats.outcomes["done"],
                    "failed": stats.outcomes["failed"],
                    "skipped": stats.outcomes["skipped"],
                    "last_error": stats.last_error,
                    "last_error_at": utc_iso(stats.last_error_at) if stats.last_error_at else None,
                }
            )
        return {
            "version": __version__,
            "pid": os.getpid(),
            "started": utc_iso(self.stats.started),
            "updated": utc_iso(time.time()),
            "config": str(self.config_path) if self.config_path else None,
            "status": self.status_line(),
            "inboxes": inboxes,
            "queue": counts,
            "outcomes": dict(self.stats.outcomes),
            "last_error": self.stats.last_error,
            "ocrspace": {
                "paused_until": utc_iso(gate.paused_until) if gate.paused_until else None,
                "pause_reason": gate.pause_reason,
                "blocked": gate.blocked,
            },
        }

    def _publish_status(self, *, final: bool = False) -> None:
        self.metrics.set_queue(self.tracker.counts())
        line = self.status_line()
        if line != self._last_status and not final:
            self.notifier.status(line)
            self._last_status = line
        snapshot = self.snapshot()
        snapshot["running"] = not final
        with contextlib.suppress(OcrwatchError):
            text = logs.redact(json.dumps(snapshot, indent=1))
            sidecar.write_atomic(self.state_dir / "status.json", text.encode())


def _stat(path: Path) -> os.stat_result | None:
    try:
        return os.stat(path)
    except OSError:
        return None


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except OSError:
        return None
