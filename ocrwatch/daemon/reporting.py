"""What the daemon tells people: status lines, status.json, and the ocr.space pause and key warnings.

:class:`GateWatch` turns the request gate's state into log lines, metrics and
the persisted pause (so a restart keeps honouring the API's "wait N
seconds"), keeps the day's request count and the rate limit's recent send
times in the state store (so a restart keeps the daily budget, and does not
send a fresh burst into a window already used), and reminds the operator of a
rejected key.
:class:`Reporter` writes the one-line status for systemd and the
``status.json`` that ``ocrwatch status`` reads; a pause there is the API's or
the daily budget's, whichever ends later.

Clocks are injectable: "never warned" is None, not 0.0, because the
monotonic clock starts near zero at boot and a service started then must
warn at once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ocrwatch import __version__, logs, sidecar
from ocrwatch.daemon.context import Context
from ocrwatch.errors import InvalidKeyError, OcrwatchError
from ocrwatch.metrics import Metrics
from ocrwatch.notify import Notifier
from ocrwatch.ratelimit import Gate
from ocrwatch.sidecar import utc_iso
from ocrwatch.store import STATUS_FILE
from ocrwatch.watcher import Watcher

if TYPE_CHECKING:
    from ocrwatch.cluster.node import ClusterNode

logger = logging.getLogger(__name__)

KEY_REMINDER_SECONDS = 600.0
"""How often a rejected API key is logged again while it stays rejected."""
PAUSE_KEY = "ocrspace_paused_until"
PAUSE_REASON_KEY = "ocrspace_pause_reason"


class GateWatch:
    """Logs, counts and persists what happens at the ocr.space gate."""

    def __init__(
        self,
        context: Context,
        gate: Gate,
        metrics: Metrics,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.context = context
        self.gate = gate
        self.metrics = metrics
        self._clock = clock
        self._last_pause_logged = 0
        self._last_key_warning: float | None = None

    def restore_pause(self) -> None:
        """Honour what held requests before a restart: the API's pause, today's count, the window.

        Today's request count and the rate limit's recent send times are kept in the
        store from now on.
        """
        store = self.context.store
        if store is None:
            return
        self.gate.keep_count_in(store)
        self.gate.keep_window_in(store)
        until = store.get(PAUSE_KEY)
        if not until:
            return
        try:
            self.gate.pause_until_wall(float(until), store.get(PAUSE_REASON_KEY) or "rate limit")
        except ValueError:
            return
        state = self.gate.state()
        if state.paused_until:
            logger.warning(
                "ocr.space is paused until %s (%s), as it asked before the restart",
                utc_iso(state.paused_until),
                state.pause_reason,
            )

    def note(self) -> None:
        """Log and persist a new pause (called from the main loop)."""
        state = self.gate.state()
        self.metrics.paused.set(
            1 if state.paused_until or state.budget_until or state.blocked else 0
        )
        if state.blocked:
            self._key_stop(state.blocked)
        if state.paused_until and state.pause_number != self._last_pause_logged:
            self._last_pause_logged = state.pause_number
            self.metrics.pauses.inc()
            logger.warning(
                "ocr.space paused until %s: %s", utc_iso(state.paused_until), state.pause_reason
            )
            if self.context.store is not None:
                self.context.store.put(PAUSE_KEY, repr(state.paused_until))
                self.context.store.put(PAUSE_REASON_KEY, state.pause_reason)

    def key_rejected(self, error: InvalidKeyError) -> None:
        """A file was held back by a rejected key: say so at once, then every ten minutes."""
        self._key_stop(str(error))
        self.context.stats.error(None, f"API key rejected: {error}")

    def _key_stop(self, reason: str) -> None:
        """Say that a rejected key stops OCR, at once and every ten minutes while it lasts
        (in a cluster also on the hosts that only see the stop another host's answer set)."""
        now = self._clock()
        if self._last_key_warning is None or now - self._last_key_warning >= KEY_REMINDER_SECONDS:
            self._last_key_warning = now
            logger.critical(
                "ocr.space rejected the API key: all ocr.space OCR is stopped until the key is fixed "
                "(then: systemctl reload ocrwatch, or send SIGHUP). %s",
                reason,
            )


class Reporter:
    """The status line for systemd and ``status.json`` for ``ocrwatch status``."""

    def __init__(
        self,
        context: Context,
        gate: Gate,
        watcher: Watcher,
        notifier: Notifier,
        metrics: Metrics,
        *,
        config_path: str | None,
        state_dir: Path,
        node: ClusterNode | None = None,
    ) -> None:
        """``node``: distributed mode's part of this host, whose state the status shows."""
        self.node = node
        self.context = context
        self.gate = gate
        self.watcher = watcher
        self.notifier = notifier
        self.metrics = metrics
        self.config_path = config_path
        self.state_dir = state_dir
        self._last_line = ""

    def line(self) -> str:
        """One line for systemctl status: work waiting, done, failed, pauses."""
        counts = self.context.tracker.counts()
        outcomes = self.context.stats.outcomes
        waiting = counts["settling"] + counts["ready"] + counts["waiting"]
        parts = [
            f"{len(self.context.plan.inboxes)} inbox(es)",
            f"{waiting} waiting",
            f"{counts['running']} in progress",
            f"{outcomes['done']} done",
            *([f"{outcomes['partial']} partial"] if outcomes["partial"] else []),
            f"{outcomes['failed']} failed",
        ]
        gate = self.gate.state()
        paused_until, _ = gate.held()
        unreachable = self.node.unreachable if self.node is not None else None
        if unreachable or gate.unreachable:
            parts.append("Redis unreachable: no new file is taken and no request leaves")
        elif self.node is not None:
            parts.append(
                f"cluster: {self.node.held()} held, scanning "
                + (", ".join(sorted(self.node.scanning)) or "no inbox")
                + (
                    f", config drift in {', '.join(sorted(self.node.drift))}"
                    if self.node.drift
                    else ""
                )
            )
        if gate.blocked:
            parts.append("ocr.space stopped: API key rejected")
        elif paused_until:
            parts.append(
                f"ocr.space paused until {time.strftime('%H:%M:%S', time.localtime(paused_until))}"
                + (" (daily budget used up)" if paused_until == gate.budget_until else "")
            )
        return ", ".join(parts)

    def snapshot(self) -> dict[str, Any]:
        """The daemon's state as JSON data, for ``ocrwatch status``."""
        tracker, stats = self.context.tracker, self.context.stats
        by_inbox = tracker.counts_by_inbox()
        gate = self.gate.state()
        paused_until, pause_reason = gate.held()
        modes = self.watcher.modes()
        inboxes = []
        for inbox in self.context.plan.inboxes:
            counted = stats.of(inbox.path)
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
                    "done": counted.outcomes["done"],
                    "partial": counted.outcomes["partial"],
                    "failed": counted.outcomes["failed"],
                    "skipped": counted.outcomes["skipped"],
                    "last_error": counted.last_error,
                    "last_error_at": utc_iso(counted.last_error_at)
                    if counted.last_error_at
                    else None,
                    "documents": [
                        {"path": str(path), "pages_done": done, "pages": total}
                        for path, (done, total) in sorted(stats.reading.copy().items())
                        if inbox.contains(path)
                    ],
                }
            )
        return {
            "version": __version__,
            "pid": os.getpid(),
            "started": utc_iso(stats.started),
            "updated": utc_iso(time.time()),
            "config": self.config_path,
            "status": self.line(),
            "inboxes": inboxes,
            "queue": tracker.counts(),
            "outcomes": dict(stats.outcomes),
            "last_error": stats.last_error,
            **({"cluster": self.node.describe()} if self.node is not None else {}),
            "ocrspace": {
                "unreachable": gate.unreachable,
                "paused_until": utc_iso(paused_until) if paused_until else None,
                "pause_reason": pause_reason,
                "blocked": gate.blocked,
                "requests_today": gate.requests_today,
                "max_requests_per_day": gate.max_requests_per_day,
            },
        }

    def publish(self, *, final: bool = False) -> None:
        """Send a changed status line to systemd and rewrite status.json (scrubbed of the key)."""
        self.metrics.set_queue(self.context.tracker.counts())
        node = self.node
        if node is not None:
            reachable = node.unreachable is None
            self.metrics.set_cluster(
                dict(node.depths) if reachable else {}, node.held(), node.deliveries, reachable
            )
        line = self.line()
        if line != self._last_line and not final:
            self.notifier.status(line)
            self._last_line = line
        snapshot = self.snapshot()
        snapshot["running"] = not final
        with contextlib.suppress(OcrwatchError):
            text = logs.redact(json.dumps(snapshot, indent=1))
            sidecar.write_atomic(self.state_dir / STATUS_FILE, text.encode())
