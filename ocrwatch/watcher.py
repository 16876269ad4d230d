"""File-system events to candidate files: one watchdog observer per inbox.

This module turns watchdog's events into calls on a :class:`Sink` (the
daemon's tracker) and keeps the observers alive. It knows watchdog 7's traps
and works around each:

* ``on_created`` fires before a byte is written, so a created file only starts
  a quiet-period timer; a close-after-write (inotify only) or a rename into
  the inbox marks it complete at once. By default watchdog reports a rename
  from a folder it does not watch as a creation, so inotify observers ask for
  full events, where such a rename is a move with an empty source.
* An exception in a handler kills the observer's thread, so every handler call
  is wrapped: a failure is logged and asks for a rescan of the inbox.
* A kernel queue overflow is only logged by watchdog; a logging filter on
  watchdog's inotify logger notices that line and asks for a rescan of every
  native inbox. This depends on watchdog's wording ("queue overflowed"), which
  the test suite checks against the installed watchdog.
* inotify does not see writes made by other machines on network file systems,
  or on FUSE mounts, so those inboxes are polled; the mode is chosen from the
  mount table unless the inbox sets ``watch:``.
* Running out of inotify watches or instances is reported with the sysctl to
  raise, and that inbox falls back to polling. watchdog silently skips
  sub-folders it cannot watch, so for a recursive inbox the watches actually
  held are counted (``/proc/self/fdinfo``) and compared with its folders.

Observers are checked by :meth:`Watcher.check` from the daemon's main loop; a
dead one is replaced and its inbox rescanned.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from watchdog.events import (
    DirCreatedEvent,
    DirMovedEvent,
    FileAttribEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers.api import BaseObserver
from watchdog.observers.inotify import InotifyObserver
from watchdog.observers.polling import PollingObserver

from ocrwatch import scan
from ocrwatch.plan import InboxPlan

logger = logging.getLogger(__name__)

MOUNTINFO = Path("/proc/self/mountinfo")
NETWORK_FILESYSTEMS = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smbfs",
        "ncpfs",
        "afs",
        "9p",
        "ceph",
        "glusterfs",
        "lustre",
        "gpfs",
        "davfs",
        "coda",
        "ocfs2",
        "gfs2",
        "beegfs",
        "virtiofs",
        "vboxsf",
        "prl_fs",
    }
)
OBSERVER_STOP_TIMEOUT = 5.0
EVENT_TYPES = [
    FileAttribEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileDeletedEvent,
    DirCreatedEvent,
    DirMovedEvent,
]


class Sink(Protocol):
    """What the watcher reports to (the daemon's tracker)."""

    def closed(self, path: Path, inbox: InboxPlan) -> None:
        """A writer closed ``path`` after writing: it is complete."""

    def arrived(self, path: Path, inbox: InboxPlan) -> None:
        """``path`` was renamed into the inbox: complete as a whole."""

    def changed(self, path: Path, inbox: InboxPlan) -> None:
        """``path`` appeared or changed; wait for it to go quiet."""

    def removed(self, path: Path) -> None:
        """``path`` was deleted or renamed away."""

    def rescan(self, inbox: InboxPlan | None, reason: str, folder: Path | None = None) -> None:
        """Scan ``folder`` (default: the whole inbox; None inbox: every inbox) again."""


@dataclass(frozen=True)
class WatchMode:
    """How an inbox is watched, and why."""

    kind: str
    """``native`` (inotify events) or ``poll``."""
    reason: str


def filesystem_of(path: Path, mountinfo: str | None = None) -> tuple[str, str]:
    """The (file system type, mount point) that holds ``path``, from the mount table."""
    if mountinfo is None:
        try:
            mountinfo = MOUNTINFO.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "unknown", "/"
    target = os.path.realpath(path)
    best = ("unknown", "")
    for line in mountinfo.splitlines():
        fields = line.split()
        if " - " not in line or len(fields) < 5:
            continue
        mount_point = _unescape(fields[4])
        fstype = line.split(" - ", 1)[1].split()[0]
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best[1]):
            best = (fstype, mount_point)
    return best[0], best[1] or "/"


def _unescape(field: str) -> str:
    """Mount points in mountinfo escape space, tab, newline and backslash as octal."""
    return field.encode().decode("unicode_escape") if "\\" in field else field


def choose_mode(inbox: InboxPlan, mountinfo: str | None = None) -> WatchMode:
    """``native`` or ``poll`` for an inbox, honouring its ``watch`` setting."""
    if inbox.config.watch == "native":
        return WatchMode("native", "watch: native in the config")
    if inbox.config.watch == "poll":
        return WatchMode(
            "poll", f"watch: poll in the config, every {inbox.config.poll_interval:g} s"
        )
    fstype, mount_point = filesystem_of(inbox.path, mountinfo)
    if fstype in NETWORK_FILESYSTEMS or fstype.startswith("fuse") or fstype.startswith("nfs"):
        return WatchMode(
            "poll",
            f"{fstype} file system at {mount_point}: inotify misses remote writes; "
            f"polling every {inbox.config.poll_interval:g} s",
        )
    return WatchMode("native", f"local {fstype} file system at {mount_point}")


class _Handler(FileSystemEventHandler):
    """Forwards one inbox's events to the sink; never lets an exception escape."""

    def __init__(self, inbox: InboxPlan, sink: Sink) -> None:
        self.inbox = inbox
        self.sink = sink

    def dispatch(self, event: FileSystemEvent) -> None:
        try:
            self._forward(event)
        except Exception:  # noqa: BLE001 - an escaping exception would kill the observer thread
            logger.exception(
                "error handling %s event for %s; rescanning %s",
                event.event_type,
                event.src_path,
                self.inbox.path,
            )
            self.sink.rescan(self.inbox, "event handler error")

    def _candidate(self, raw: bytes | str) -> Path | None:
        path = Path(os.fsdecode(raw))
        return path if scan.is_candidate(path, self.inbox, self.inbox.excluded) else None

    def _forward(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            # A moved folder's destination is empty when it left the inbox: nothing appeared.
            folder = event.dest_path if isinstance(event, DirMovedEvent) else event.src_path
            if (
                isinstance(event, DirCreatedEvent | DirMovedEvent)
                and self.inbox.recursive
                and folder
            ):
                self.sink.rescan(self.inbox, "folder appeared", Path(os.fsdecode(folder)))
            return
        if isinstance(event, FileMovedEvent):
            # Full events: a rename from outside the inbox has no source and one out
            # of it no destination. Either way the file at the destination is whole.
            if event.src_path:
                self.sink.removed(Path(os.fsdecode(event.src_path)))
            destination = self._candidate(event.dest_path) if event.dest_path else None
            if destination is not None:
                self.sink.arrived(destination, self.inbox)
            return
        if isinstance(event, FileDeletedEvent):
            self.sink.removed(Path(os.fsdecode(event.src_path)))
            return
        path = self._candidate(event.src_path)
        if path is None:
            return
        if isinstance(event, FileClosedEvent):
            self.sink.closed(path, self.inbox)
        elif isinstance(event, FileCreatedEvent | FileModifiedEvent | FileAttribEvent):
            # Attribute changes matter too: a chmod can make a failed, unreadable file readable.
            self.sink.changed(path, self.inbox)


class _OverflowFilter(logging.Filter):
    """Notices watchdog's 'queue overflowed' log line and calls back."""

    def __init__(self, callback: Callable[[], None]) -> None:
        super().__init__()
        self.callback = callback

    def filter(self, record: logging.LogRecord) -> bool:
        if "overflow" in record.getMessage().lower():
            try:
                self.callback()
            except Exception:  # noqa: BLE001 - never break logging
                logger.exception("overflow callback failed")
        return True


@dataclass
class _Watch:
    inbox: InboxPlan
    mode: WatchMode
    observer: BaseObserver | None
    """None while the folder is missing."""


class Watcher:
    """Keeps one observer per inbox running and reporting to a sink."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self._watches: dict[Path, _Watch] = {}
        self._lock = threading.Lock()
        self._filter = _OverflowFilter(self._overflowed)
        for name in ("watchdog.observers.inotify_c", "watchdog.observers.inotify"):
            logging.getLogger(name).addFilter(self._filter)

    def watch(self, inbox: InboxPlan) -> WatchMode:
        """Start watching ``inbox`` and return how. Never raises for a watch failure.

        Out of inotify watches: it polls instead. The folder missing (a share not
        mounted yet, a folder deleted): it is looked for again by :meth:`check`.
        """
        mode = choose_mode(inbox)
        observer: BaseObserver | None = None
        if not inbox.path.is_dir():
            mode = WatchMode(
                "missing", f"folder {inbox.path} is missing; watching resumes when it is back"
            )
            logger.error("%s", mode.reason)
        elif mode.kind == "native":
            try:
                observer = self._start_native(inbox)
            except OSError as error:
                mode = WatchMode(
                    "poll",
                    _inotify_advice(error)
                    + f"; polling every {inbox.config.poll_interval:g} s instead",
                )
                logger.error("%s: %s", inbox.path, mode.reason)
        if observer is None and mode.kind == "poll":
            try:
                observer = self._start(PollingObserver(timeout=inbox.config.poll_interval), inbox)
            except OSError as error:
                mode = WatchMode(
                    "missing",
                    f"cannot watch {inbox.path} ({error.strerror or error}); trying again",
                )
                logger.error("%s", mode.reason)
        with self._lock:
            self._watches[inbox.path] = _Watch(inbox, mode, observer)
        return mode

    def _start_native(self, inbox: InboxPlan) -> BaseObserver:
        """An inotify observer for ``inbox``; OSError(ENOSPC) if it could not watch every folder."""
        before = inotify_watch_count()
        # Full events report a rename into the inbox from elsewhere on the same file
        # system (a scanner's staging folder, `mv`) as a move, which is complete at
        # once, rather than as a creation, which must wait out the quiet period.
        observer = self._start(InotifyObserver(generate_full_events=True), inbox)
        if inbox.recursive:
            needed = 1 + sum(len(subfolders) for _, subfolders, _ in os.walk(inbox.path))
            held = inotify_watch_count() - before
            if held < needed:
                _stop(observer)
                raise OSError(errno.ENOSPC, f"only {held} of {needed} folders could be watched")
        return observer

    def _start(self, observer: BaseObserver, inbox: InboxPlan) -> BaseObserver:
        try:
            observer.schedule(
                _Handler(inbox, self.sink),
                str(inbox.path),
                recursive=inbox.recursive,
                event_filter=EVENT_TYPES,
            )
            observer.daemon = True
            observer.start()
        except BaseException:
            _stop(observer)
            raise
        return observer

    def unwatch(self, path: Path) -> None:
        with self._lock:
            watch = self._watches.pop(path, None)
        if watch is not None and watch.observer is not None:
            _stop(watch.observer)

    def modes(self) -> dict[Path, WatchMode]:
        with self._lock:
            return {path: watch.mode for path, watch in self._watches.items()}

    def check(self) -> list[InboxPlan]:
        """Restart dead observers and watch folders that came back; return inboxes to rescan."""
        with self._lock:
            watches = list(self._watches.values())
        restarted = []
        for watch in watches:
            if watch.observer is None:
                if not watch.inbox.path.is_dir():
                    continue
                logger.info("%s is back; watching it again", watch.inbox.path)
            elif _healthy(watch.observer):
                continue
            else:
                logger.error(
                    "%s: the watch stopped working; restarting it and rescanning", watch.inbox.path
                )
            self.unwatch(watch.inbox.path)
            if self.watch(watch.inbox).kind != "missing":
                restarted.append(watch.inbox)
        return restarted

    def stop(self) -> None:
        with self._lock:
            watches = list(self._watches.values())
            self._watches.clear()
        for watch in watches:
            if watch.observer is not None:
                _stop(watch.observer)
        for name in ("watchdog.observers.inotify_c", "watchdog.observers.inotify"):
            logging.getLogger(name).removeFilter(self._filter)

    def _overflowed(self) -> None:
        logger.warning("kernel event queue overflowed: events were lost; rescanning every inbox")
        self.sink.rescan(None, "inotify queue overflow")


def inotify_watch_count() -> int:
    """Inotify watches this process holds, from the kernel's per-descriptor info."""
    total = 0
    try:
        descriptors = os.listdir("/proc/self/fdinfo")
    except OSError:
        return 0
    for descriptor in descriptors:
        try:
            with open(
                f"/proc/self/fdinfo/{descriptor}", encoding="ascii", errors="replace"
            ) as handle:
                total += handle.read().count("inotify wd:")
        except OSError:
            continue
    return total


def _healthy(observer: BaseObserver) -> bool:
    return observer.is_alive() and all(emitter.is_alive() for emitter in observer.emitters)


def _stop(observer: BaseObserver) -> None:
    try:
        observer.stop()
        if observer.is_alive():
            observer.join(OBSERVER_STOP_TIMEOUT)
    except (RuntimeError, OSError) as error:
        logger.debug("stopping an observer: %s", error)


def _inotify_advice(error: OSError) -> str:
    if error.errno == errno.ENOSPC:
        return (
            "out of inotify watches (fs.inotify.max_user_watches); raise it with: "
            "sysctl fs.inotify.max_user_watches=524288"
        )
    if error.errno == errno.EMFILE:
        return (
            "out of inotify instances (fs.inotify.max_user_instances); raise it with: "
            "sysctl fs.inotify.max_user_instances=512"
        )
    return f"cannot watch with inotify ({error.strerror or error})"
