"""The tracker's readiness rules, dedupe and priorities, with a hand-moved clock."""

from __future__ import annotations

import os
from pathlib import Path

from ocrwatch.config import EngineName, InboxConfig
from ocrwatch.plan import InboxPlan, Rules
from ocrwatch.tracker import Tracker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(
    tmp_path: Path, *, engine: EngineName = "ocrspace", max_pending: int = 100
) -> tuple[Tracker, Clock, InboxPlan]:
    clock = Clock()
    inbox = InboxPlan.of(
        InboxConfig(path=tmp_path), index=0, rules=Rules(engine=engine), engine_reason="test"
    )
    tracker = Tracker(settle_seconds=lambda _: 1.0, max_pending=max_pending, clock=clock)
    return tracker, clock, inbox


def test_complete_file_is_ready_at_once_and_only_once(tmp_path: Path) -> None:
    """A close event makes a file ready; repeated events do not queue it twice."""
    tracker, _, inbox = make(tmp_path)
    path = tmp_path / "a.png"
    path.write_bytes(b"x")
    tracker.complete(path, inbox)
    tracker.complete(path, inbox)
    entry = tracker.take("ocrspace", 0)
    assert entry is not None and path == entry.path
    assert tracker.take("ocrspace", 0) is None


def test_changed_file_waits_for_quiet(tmp_path: Path) -> None:
    """A created file is ready only after its size and mtime stay still for the quiet period."""
    tracker, clock, inbox = make(tmp_path)
    path = tmp_path / "b.png"
    path.write_bytes(b"x")
    tracker.changed(path, inbox)
    assert tracker.take("ocrspace", 0) is None
    clock.now += 0.5
    path.write_bytes(b"xy")
    tracker.tick()
    clock.now += 0.6
    tracker.tick()
    assert tracker.take("ocrspace", 0) is None, "the file grew 0.6 s ago: not quiet yet"
    clock.now += 1.0
    tracker.tick()
    assert tracker.take("ocrspace", 0) is not None


def test_events_while_running_send_the_file_round_again(tmp_path: Path) -> None:
    """A file rewritten while a worker holds it is not forgotten when the worker finishes."""
    tracker, clock, inbox = make(tmp_path)
    path = tmp_path / "c.png"
    path.write_bytes(b"x")
    tracker.complete(path, inbox)
    entry = tracker.take("ocrspace", 0)
    assert entry is not None
    tracker.complete(path, inbox)
    tracker.finish(entry)
    assert {"settling": 1, "ready": 0, "running": 0, "waiting": 0} == tracker.counts()
    clock.now += 2
    tracker.tick()
    assert tracker.take("ocrspace", 0) is not None


def test_live_files_go_before_backlog(tmp_path: Path) -> None:
    """A scan's backlog waits behind files that just arrived."""
    tracker, _, inbox = make(tmp_path)
    old = tmp_path / "old.png"
    new = tmp_path / "new.png"
    for path in (old, new):
        path.write_bytes(b"x")
    os.utime(old, (1, 1))
    assert tracker.found(old, inbox, mtime_ns=1_000_000_000)
    tracker.complete(new, inbox)
    assert [new, old] == [tracker.take("ocrspace", 0).path, tracker.take("ocrspace", 0).path]  # type: ignore[union-attr]


def test_backlog_is_bounded(tmp_path: Path) -> None:
    """Past max_pending the tracker refuses scan additions (the scanner comes back later)."""
    tracker, _, inbox = make(tmp_path, max_pending=2)
    accepted = [tracker.found(tmp_path / f"{index}.png", inbox, mtime_ns=0) for index in range(3)]
    assert [True, True, False] == accepted


def test_retry_waits_until_due(tmp_path: Path) -> None:
    """A retry scheduled in 5 s is handed out after 5 s, not before."""
    tracker, clock, inbox = make(tmp_path)
    path = tmp_path / "d.png"
    path.write_bytes(b"x")
    tracker.complete(path, inbox)
    entry = tracker.take("ocrspace", 0)
    assert entry is not None
    tracker.finish(entry, retry_in=5.0)
    clock.now += 4.9
    tracker.tick()
    assert tracker.take("ocrspace", 0) is None
    clock.now += 0.2
    tracker.tick()
    assert tracker.take("ocrspace", 0) is entry


def test_each_engine_takes_only_its_own_files(tmp_path: Path) -> None:
    """Workers of one engine never take another engine's files."""
    tracker, _, inbox = make(tmp_path, engine="tesseract")
    path = tmp_path / "e.png"
    path.write_bytes(b"x")
    tracker.complete(path, inbox)
    assert tracker.take("ocrspace", 0) is None
    assert tracker.take("tesseract", 0) is not None


def test_removed_file_is_forgotten(tmp_path: Path) -> None:
    """A file deleted while waiting is dropped."""
    tracker, _, inbox = make(tmp_path)
    path = tmp_path / "f.png"
    path.write_bytes(b"x")
    tracker.complete(path, inbox)
    tracker.removed(path)
    assert tracker.take("ocrspace", 0) is None
    assert 0 == tracker.pending()
