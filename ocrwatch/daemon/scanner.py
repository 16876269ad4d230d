"""The scanner thread: walks inboxes and queues every file whose sidecars are not current.

Scans come at start, every ``rescan_interval``, after a lost event or a
watch restart, after a reload and on SIGUSR1. The first scan also removes
temporaries a crash left behind. A backlog larger than ``max_pending`` is
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
from ocrwatch.current import FileFacts
from ocrwatch.daemon.context import Context
from ocrwatch.errors import FileError
from ocrwatch.plan import InboxPlan
from ocrwatch.source import SourceGone, read_source

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
        self._requests: queue.Queue[tuple[InboxPlan | None, Path | None, str]] = queue.Queue()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="scanner", daemon=True)
        self._thread.start()

    def request(self, inbox: InboxPlan | None, reason: str, folder: Path | None = None) -> None:
        """Ask for a walk of ``inbox`` (None: all inboxes) or of one ``folder`` of it."""
        self._requests.put((inbox, folder, reason))

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
                inbox, folder, reason = self._requests.get(timeout=TAKE_TIMEOUT)
            except queue.Empty:
                continue
            targets = list(context.plan.inboxes) if inbox is None else [inbox]
            started = time.monotonic()
            queued = 0
            for target in targets:
                try:
                    queued += self._scan(target, folder, clean=first)
                except Exception:  # noqa: BLE001 - thread entry point: a scan failure must not end the scanner
                    logger.exception("scanning %s failed", target.path)
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
                self.initial_scan_done.set()
                context.wakeup.set()

    def _scan(self, inbox: InboxPlan, folder: Path | None, *, clean: bool) -> int:
        found = next((i for i in self.context.plan.inboxes if i.path == inbox.path), None)
        if found is None:
            return 0
        inbox = found
        if clean:
            remove_temps(inbox.path, recursive=inbox.recursive)
            for place in (inbox.output, inbox.done_dir, inbox.failed_dir):
                if place is not None:
                    remove_temps(place, recursive=True)
        walked = replace(inbox, path=folder, recursive=True) if folder is not None else inbox
        tracker = self.context.tracker
        queued = 0
        for path in scan.walk(walked, inbox.excluded):
            if self.context.stop.is_set():
                break
            if folder is not None and not scan.is_candidate(path, inbox, inbox.excluded):
                continue
            info = _stat(path, follow=inbox.config.follow_symlinks)
            if info is None:
                continue
            try:
                finished = self.is_current(path, inbox, info)
            except Exception:  # noqa: BLE001 - one odd file must not end the scan of all the others
                logger.exception("%s: cannot check its sidecars; queueing it", path)
                finished = False
            if finished:
                continue
            if not tracker.found(path, inbox, mtime_ns=info.st_mtime_ns):
                self.incomplete.add(inbox.path)
                logger.info(
                    "%s: %d files waiting; the rest of the backlog follows as they finish",
                    inbox.path,
                    tracker.pending(),
                )
                break
            queued += 1
        return queued

    def is_current(self, path: Path, inbox: InboxPlan, info: os.stat_result) -> bool:
        """True when the sidecars say ``path`` is finished and nothing is left to do with it.

        A finished file whose inbox moves or deletes finished files is not: it
        is left over from a crash between its sidecars and its move, and the
        worker that takes it finds the sidecar current and completes the move.
        """

        def content_hash() -> str | None:
            try:
                return read_source(path, follow_symlinks=inbox.config.follow_symlinks).sha256
            except (SourceGone, FileError):
                return None

        found = current.verdict(
            path, inbox, FileFacts.of_stat(info, content_hash), cache=self.context.store
        )
        return found is not None and not after.changes_location(
            inbox, success=found.status == "done"
        )


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


def remove_temps(root: Path, *, recursive: bool) -> None:
    """Remove temporary files a crash left in ``root`` (and below it when ``recursive``)."""
    removed = 0
    for folder, subfolders, _ in os.walk(root) if recursive else [(str(root), [], [])]:
        removed += sidecar.remove_stale_temps(Path(folder))
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]
    if removed:
        logger.info("removed %d temporary file(s) left by an earlier crash in %s", removed, root)


def _stat(path: Path, *, follow: bool) -> os.stat_result | None:
    try:
        return os.stat(path) if follow else os.lstat(path)
    except OSError:
        return None
