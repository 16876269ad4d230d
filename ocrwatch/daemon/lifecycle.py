"""``ocrwatch run``: the daemon's life cycle, signals and main loop.

Threads and what each may touch:

* the main thread (:meth:`Daemon.run`): signals (handlers only set flags),
  settle and retry timers, observer health, periodic rescans, reloads (the
  only writer of ``context.plan``), watchdog pings and status;
* one observer per inbox (:mod:`ocrwatch.watcher`) reports events to the
  tracker through an :class:`~.scanner.EventSink`;
* the scanner thread (:mod:`.scanner`) queues files without current sidecars;
* worker threads per engine (:mod:`.workers`) process ready files.

The tracker, the state store, the gate and the hooks are thread-safe; the
rest is owned by one thread.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from ocrwatch import logs
from ocrwatch.apikey import KeyHolder
from ocrwatch.daemon import reload
from ocrwatch.daemon.context import Context
from ocrwatch.daemon.reporting import GateWatch, Reporter
from ocrwatch.daemon.scanner import EventSink, Scanner, remove_temps
from ocrwatch.daemon.workers import Workers
from ocrwatch.errors import ConfigError, OcrwatchError
from ocrwatch.finish import Finisher
from ocrwatch.hooks import HookRunner
from ocrwatch.metrics import Metrics
from ocrwatch.notify import Notifier
from ocrwatch.plan import InboxPlan, Plan
from ocrwatch.ratelimit import Gate, RequestGate
from ocrwatch.store import StateStore, default_state_dir, lock_state_dir
from ocrwatch.tracker import Tracker
from ocrwatch.watcher import Watcher

if TYPE_CHECKING:
    from ocrwatch.cluster.node import ClusterNode

logger = logging.getLogger(__name__)

SETTLE_NATIVE_SECONDS = 1.0
SETTLE_POLL_SECONDS = 10.0
MAIN_LOOP_MAX_SLEEP = 1.0
STATUS_INTERVAL = 5.0
STOP_MARGIN_SECONDS = 15.0
"""Asked of systemd on top of ``shutdown_timeout`` for the rest of the stop."""


class Daemon:
    """Watches the inboxes of a plan and keeps turning files into sidecars."""

    def __init__(
        self,
        plan: Plan,
        *,
        config_path: Path | None,
        env: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config_path = config_path
        self.env = dict(os.environ if env is None else env)
        self._clock = clock
        self.state_dir = default_state_dir(plan.config.state_dir, self.env)
        self.notifier = Notifier(self.env)
        route = None
        if plan.config.queue is not None:
            # Only here: a host without queue: never imports the cluster package or redis-py.
            from ocrwatch.cluster import setup as cluster

            route = cluster.route
        tracker = Tracker(
            settle_seconds=self._settle_seconds,
            max_pending=plan.config.max_pending,
            route=route,
            dropped=self._job_dropped if route is not None else None,
        )
        self.context = Context(plan=plan, env=self.env, tracker=tracker)
        self.scanner = Scanner(self.context)
        self.watcher = Watcher(EventSink(self.context, self.scanner))
        self.keys = KeyHolder(plan.api_key) if plan.api_key is not None else None
        self.node: ClusterNode | None = None
        self.gate: Gate
        if plan.config.queue is not None:
            self.node, self.gate = cluster.join(
                plan,
                lambda: self.context.plan,
                tracker=tracker,
                stop=self.context.stop,
                wakeup=self.context.wakeup,
                state_dir=self.state_dir,
                config_path=config_path,
                env=self.env,
                keys=lambda: self.workers.keys,
            )
            self.context.scanning = self.node.scans
            self.context.temp_min_age = 2 * plan.config.queue.lease_seconds
        else:
            self.gate = RequestGate(
                plan.config.ocrspace.rate_limit,
                max_requests_per_day=plan.config.ocrspace.max_requests_per_day,
            )
        self.metrics = Metrics()
        self.hooks = HookRunner(env=self.env)
        self.gate_watch = GateWatch(self.context, self.gate, self.metrics, clock=clock)
        self.workers = Workers(
            self.context,
            gate=self.gate,
            gate_watch=self.gate_watch,
            finisher=Finisher(self.hooks, metrics=self.metrics),
            metrics=self.metrics,
            keys=self.keys,
            node=self.node,
        )
        self.reporter = Reporter(
            self.context,
            self.gate,
            self.watcher,
            self.notifier,
            self.metrics,
            config_path=str(config_path) if config_path else None,
            state_dir=self.state_dir,
            node=self.node,
        )
        self._reload_requested = False
        self._rescan_requested = False
        self._lock_handle: int | None = None

    @property
    def plan(self) -> Plan:
        return self.context.plan

    def run(self) -> int:
        """Run until SIGTERM/SIGINT; returns the exit code. Raises ConfigError, or AlreadyRunning."""
        self._install_signals()
        self._lock_handle = lock_state_dir(self.state_dir)
        metrics = self.plan.config.metrics
        if metrics is not None:
            try:
                self.metrics.serve(*metrics.address)
            except OSError as error:
                raise ConfigError(
                    f"{self.plan.loaded.where(['metrics', 'listen'])}cannot listen on {metrics.listen}: "
                    f"{error.strerror or error}"
                ) from error
        remove_temps(self.state_dir, recursive=False)
        store = StateStore(self.state_dir)
        self.context.store = store
        self.workers.finisher.cache = store
        if self.node is None:
            # In a cluster, the pause, the window and the day's count live in Redis.
            self.gate_watch.restore_pause()
        try:
            if self.node is not None:
                self.node.use_local_pages(store)
                self.node.start()
            if self.node is None or "work" in self.node.roles:
                self.workers.start()
            for inbox in self.plan.inboxes:
                if self.context.scans(inbox):
                    self._watch(inbox)
            self.scanner.start()
            self.scanner.request(None, "start")
            self._main_loop()
        finally:
            self._shutdown()
        return 0

    def _main_loop(self) -> None:
        context, notifier = self.context, self.notifier
        last_ping: float | None = None
        last_status: float | None = None
        last_scan = self._clock()
        ready_sent = False
        while not context.stop.is_set():
            sleep = min(context.tracker.tick(), MAIN_LOOP_MAX_SLEEP)
            now = self._clock()
            if not ready_sent and self.scanner.initial_scan_done.is_set():
                ready_sent = True
                status = self.reporter.line()
                notifier.ready(status)
                logger.info("ready: %s", status)
                last_status = now
            if self._reload_requested:
                self._reload_requested = False
                self._reload()
            if self._rescan_requested:
                self._rescan_requested = False
                self.scanner.request(None, "requested")
            for inbox in self.watcher.check():
                self.scanner.request(inbox, "watch restarted")
            interval = self.plan.config.rescan_interval
            if interval and now - last_scan >= interval:
                last_scan = now
                self.scanner.request(None, "periodic rescan")
            self.scanner.continue_backlogs()
            if self.node is not None:
                self._apply_lease_changes(self.node)
            if notifier.watchdog_interval and _due(last_ping, now, notifier.watchdog_interval):
                notifier.watchdog()
                last_ping = now
            self.gate_watch.note()
            if _due(last_status, now, STATUS_INTERVAL):
                last_status = now
                self.reporter.publish()
            if notifier.watchdog_interval:
                sleep = min(sleep, notifier.watchdog_interval / 2)
            context.wakeup.wait(sleep)
            context.wakeup.clear()

    def _shutdown(self) -> None:
        status = f"stopping; {self.reporter.line()}"
        # Ask systemd for the drain time in the same datagram, so a raised shutdown_timeout
        # is not cut short by the unit's TimeoutStopSec.
        extend = int((self.plan.config.shutdown_timeout + STOP_MARGIN_SECONDS) * 1_000_000)
        self.notifier.send("STOPPING=1", f"STATUS={status}", f"EXTEND_TIMEOUT_USEC={extend}")
        logger.info("%s", status)
        self.context.stop.set()
        self.context.tracker.close()
        self.watcher.stop()
        self.gate.wake()
        busy = self.workers.join(self.plan.config.shutdown_timeout)
        if busy:
            logger.warning(
                "%d file(s) still in progress after %.0f s; they will be redone at the next start",
                busy,
                self.plan.config.shutdown_timeout,
            )
        if self.node is not None:
            self.node.close()
        self.workers.close()
        self.hooks.close()
        self.metrics.close()
        self.reporter.publish(final=True)
        if self.context.store is not None:
            self.context.store.close()
        self.notifier.close()
        if self._lock_handle is not None:
            os.close(self._lock_handle)

    def _install_signals(self) -> None:
        signal.signal(signal.SIGTERM, self._on_stop_signal)
        signal.signal(signal.SIGINT, self._on_stop_signal)
        signal.signal(signal.SIGHUP, self._on_reload_signal)
        signal.signal(signal.SIGUSR1, self._on_rescan_signal)

    def _on_stop_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.context.stop.is_set():
            # A second stop signal: the user does not want to wait for the drain.
            prefix = b"<4>" if logs.under_journal(sys.stderr, self.env) else b""
            os.write(2, prefix + b"ocrwatch: second stop signal, exiting now\n")
            os._exit(128 + signum)
        self.context.stop.set()
        self.context.wakeup.set()

    def _on_reload_signal(self, signum: int, frame: FrameType | None) -> None:
        self._reload_requested = True
        self.context.wakeup.set()

    def _on_rescan_signal(self, signum: int, frame: FrameType | None) -> None:
        # ``ocrwatch retry`` asks for this after removing error sidecars.
        self._rescan_requested = True
        self.context.wakeup.set()

    def _reload(self) -> None:
        self.notifier.reloading()
        logger.info("reloading %s", self.config_path)
        try:
            plan = reload.load_new_plan(self.config_path, self.context)
        except OcrwatchError as error:
            for line in str(error).splitlines():
                logger.error("reload refused, keeping the running configuration: %s", line)
            self.notifier.ready(f"reload refused (see log); {self.reporter.line()}")
            return
        reload.apply_plan(
            plan,
            self.context,
            watcher=self.watcher,
            watch=self._watch_if_scanning,
            workers=self.workers,
            gate=self.gate,
        )
        self.scanner.request(None, "reload")
        status = f"reloaded; {self.reporter.line()}"
        self.notifier.ready(status)
        logger.info("%s", status)

    # Watching.

    def _settle_seconds(self, inbox: InboxPlan) -> float:
        if inbox.config.settle_seconds is not None:
            return inbox.config.settle_seconds
        mode = self.watcher.modes().get(inbox.path)
        return (
            SETTLE_POLL_SECONDS
            if mode is not None and mode.kind == "poll"
            else SETTLE_NATIVE_SECONDS
        )

    def _job_dropped(self, job: object) -> None:
        """The tracker forgot a job unread (its file removed, its inbox dropped)."""
        if self.node is not None:
            self.node.dropped(job)

    def _apply_lease_changes(self, node: ClusterNode) -> None:
        """Watch and scan the inboxes whose scanner lease this host took; let go of those it lost."""
        while node.lease_changes:
            change = node.lease_changes.popleft()
            inbox = self.context.current_inbox(change.inbox)
            if change.held:
                if inbox.path not in self.watcher.modes():
                    self._watch(inbox)
                self.scanner.request(inbox, change.reason, clean=True)
            else:
                self.watcher.unwatch(inbox.path)
                dropped = self.context.tracker.drop_inbox(inbox.path)
                logger.info(
                    "stopped watching %s (%d found file(s) left to its scanner)",
                    inbox.path,
                    dropped,
                )

    def _watch_if_scanning(self, inbox: InboxPlan) -> None:
        if self.context.scans(inbox):
            self._watch(inbox)

    def _watch(self, inbox: InboxPlan) -> None:
        mode = self.watcher.watch(inbox)
        logger.info(
            "watching %s: %s (%s)%s",
            inbox.path,
            mode.kind,
            mode.reason,
            ", recursive" if inbox.recursive else "",
        )


def _due(last: float | None, now: float, interval: float) -> bool:
    """True when something last done at ``last`` (None: never) is due again."""
    return last is None or now - last >= interval
