"""The scanner thread: walks inboxes and queues every file whose sidecars are not current.

Scans come at start, every ``rescan_interval``, after a lost event or a
watch restart, after a reload and on SIGUSR1. The first scan also removes
temporaries a crash left behind, and logs per inbox the files it found
waiting and the ocr.space requests they will cost (:mod:`ocrwatch.quota`),
counted as they are queued. A backlog larger than ``max_pending`` is
queued in parts: the main loop asks for the rest as files finish.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from dataclasses import replace
from pathlib import Path

from ocrwatch import after, current, scan, sidecar
from ocrwatch.daemon.context import Context
from ocrwatch.plan import InboxPlan
from ocrwatch.quota import Backlog

logger = logging.getLogger(__name__)

TAKE_TIMEOUT = 0.5
"""How long the scanner waits for a request before looking at the stop flag again."""


class Scanner:
    """Owns the scanner thread and its queue of scan requests."""

    def __init__(self, context: Context) -> None:
        self.context = context
        self.initial_scan_done = threading.Event()
        self.incomplete: set[Path] = set()
        """Inboxes whose backlog did not fit under ``max_pending``; the rest follows later."""
        self._requests: queue.Queue[tuple[InboxPlan | None, Path | None, str, bool]] = queue.Queue()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="scanner", daemon=True)
        self._thread.start()

    def request(
        self,
        inbox: InboxPlan | None,
        reason: str,
        folder: Path | None = None,
        *,
        clean: bool = False,
    ) -> None:
        """Ask for a walk of ``inbox`` (None: all inboxes) or of one ``folder`` of it; ``clean``
        first removes a crash's temporaries (as the first scan always does)."""
        self._requests.put((inbox, folder, reason, clean))

    def continue_backlogs(self) -> None:
        """Queue the rest of large backlogs once the queue has room again (from the main loop)."""
        if (
            not self.incomplete
            or self.context.tracker.pending() >= self.context.plan.config.max_pending // 2
        ):
            return
        for path in list(self.incomplete):
            self.incomplete.discard(path)
            for inbox in self.context.plan.inboxes:
                if inbox.path == path:
                    self.request(inbox, "backlog continues")

    def _loop(self) -> None:
        first = True
        context = self.context
        while not context.stop.is_set():
            try:
                inbox, folder, reason, clean = self._requests.get(timeout=TAKE_TIMEOUT)
            except queue.Empty:
                continue
            targets = list(context.plan.inboxes) if inbox is None else [inbox]
            targets = [target for target in targets if context.scans(target)]
            started = time.monotonic()
            queued = 0
            backlogs: list[tuple[Path, Backlog]] = []
            for target in targets:
                # Only the first scan's backlog is logged: later scans do not count (a
                # document's pages are counted by opening it).
                backlog = Backlog() if first else None
                try:
                    queued += self._scan(target, folder, clean=first or clean, backlog=backlog)
                except Exception:  # noqa: BLE001 - thread entry point: a scan failure must not end the scanner
                    logger.exception("scanning %s failed", target.path)
                    if backlog is not None:
                        backlog.partial = True
                if backlog is not None:
                    backlogs.append((target.path, backlog))
            logger.log(
                logging.INFO if reason != "periodic rescan" or queued else logging.DEBUG,
                "scan (%s) of %s: %d file(s) to process, %.2f s",
                reason,
                "every inbox" if inbox is None else (folder or targets[0].path),
                queued,
                time.monotonic() - started,
            )
            if first:
                first = False
                if not context.stop.is_set():
                    _log_backlogs(backlogs)
                self.initial_scan_done.set()
                context.wakeup.set()

    def _scan(
        self, inbox: InboxPlan, folder: Path | None, *, clean: bool, backlog: Backlog | None
    ) -> int:
        """Queue the files of ``inbox`` (or of its ``folder``) that need work; count the waiting ones.

        Returns how many were queued. ``backlog`` counts the files that wait
        for OCR, which is fewer when finished files are queued only to be
        moved or deleted.
        """
        found = next((i for i in self.context.plan.inboxes if i.path == inbox.path), None)
        if found is None:
            return 0
        inbox = found
        if clean:
            older_than = self.context.temp_min_age
            remove_temps(inbox.path, recursive=inbox.recursive, older_than=older_than)
            for place in (inbox.output, inbox.done_dir, inbox.failed_dir):
                if place is not None:
                    remove_temps(place, recursive=True, older_than=older_than)
        walked = replace(inbox, path=folder, recursive=True) if folder is not None else inbox
        tracker = self.context.tracker
        queued = 0
        for path in scan.walk(walked, inbox.excluded):
            if self.context.stop.is_set():
                break
            if folder is not None and not scan.is_candidate(path, inbox, inbox.excluded):
                continue
            facts = current.facts_of(path, follow_symlinks=inbox.config.follow_symlinks)
            if facts is None:
                continue
            try:
                judged = current.verdict(path, inbox, facts, cache=self.context.store)
            except Exception:  # noqa: BLE001 - one odd file must not end the scan of all the others
                logger.exception("%s: cannot check its sidecars; queueing it", path)
                judged = None
            # A finished file whose inbox moves or deletes finished files is queued all the
            # same: a crash came between its sidecars and its move, and the worker that takes
            # it finds the sidecar current and completes the move without sending anything.
            # A partial document stays where it is (neither done nor failed).
            if judged is not None and (
                judged.status == "partial"
                or not after.changes_location(inbox, success=judged.status == "done")
            ):
                continue
            if not tracker.found(path, inbox, mtime_ns=facts.mtime_ns):
                self.incomplete.add(inbox.path)
                if backlog is not None:
                    backlog.partial = True
                logger.info(
                    "%s: %d files waiting; the rest of the backlog follows as they finish",
                    inbox.path,
                    tracker.pending(),
                )
                break
            queued += 1
            if judged is None and backlog is not None:
                backlog.add(path, inbox)
        if self.context.stop.is_set() and backlog is not None:
            backlog.partial = True
        return queued


class EventSink:
    """The watcher's sink (called from observer threads): events feed the tracker, lost ones a scan."""

    def __init__(self, context: Context, scanner: Scanner) -> None:
        self.context = context
        self.scanner = scanner

    def closed(self, path: Path, inbox: InboxPlan) -> None:
        self.context.tracker.complete(path, self.context.current_inbox(inbox))

    def arrived(self, path: Path, inbox: InboxPlan) -> None:
        self.context.tracker.complete(path, self.context.current_inbox(inbox))

    def changed(self, path: Path, inbox: InboxPlan) -> None:
        self.context.tracker.changed(path, self.context.current_inbox(inbox))
        self.context.wakeup.set()

    def removed(self, path: Path) -> None:
        self.context.tracker.removed(path)

    def rescan(self, inbox: InboxPlan | None, reason: str, folder: Path | None = None) -> None:
        self.scanner.request(inbox, reason, folder)


def remove_temps(root: Path, *, recursive: bool, older_than: float | None = None) -> None:
    """Remove temporary files a crash left in ``root`` (and below it when ``recursive``)."""
    removed = 0
    for folder, subfolders, _ in os.walk(root) if recursive else [(str(root), [], [])]:
        removed += sidecar.remove_stale_temps(Path(folder), older_than=older_than)
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]
    if removed:
        logger.info("removed %d temporary file(s) left by an earlier crash in %s", removed, root)


def _log_backlogs(backlogs: list[tuple[Path, Backlog]]) -> None:
    """Log what the first scan found waiting in each inbox, and in all when there are several."""
    for path, backlog in backlogs:
        note = " (counted until the scan stopped; 'ocrwatch check' counts them all)"
        logger.info(
            "inbox %s: %s%s", path, backlog.describe(waiting=True), note if backlog.partial else ""
        )
    if len(backlogs) > 1:
        total = sum((backlog for _, backlog in backlogs), Backlog())
        logger.info("in all: %s", total.describe(waiting=True))
