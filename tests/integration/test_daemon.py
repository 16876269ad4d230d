"""The real daemon against the local ocr.space server: every writer style, restarts, signals.

Each test runs ``ocrwatch run`` as a subprocess on temporary inboxes. The fake
server counts requests per uploaded file name, which is how "processed once"
is checked: a file sent twice shows up twice there.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from ocrwatch.sidecar import TEMP_SUFFIX
from tests.support.daemon import DaemonProcess, Daemons
from tests.support.ocrspace_server import FakeOcrSpace
from tests.support.render import page
from tests.support.waiting import wait_until

SCHEMA = json.loads(
    (
        Path(__file__).resolve().parents[2] / "ocrwatch" / "schemas" / "sidecar.schema.json"
    ).read_text()
)
KEY = "TEST-KEY"


def image_bytes(words: str, fmt: str = "PNG", size: tuple[int, int] = (640, 160)) -> bytes:
    image, _ = page([words], size=size, font_size=40)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def sidecar_of(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def done(path: Path) -> bool:
    record = sidecar_of(path)
    return record.exists() and path.with_name(path.name + ".txt").exists()


def valid_record(path: Path) -> dict[str, Any]:
    record = json.loads(sidecar_of(path).read_text(encoding="utf-8"))
    jsonschema.validate(record, SCHEMA)
    return record


@pytest.fixture
def fake() -> Iterator[FakeOcrSpace]:
    with FakeOcrSpace(mode="text", text="hello from the fake server", api_key=KEY) as server:
        yield server


@pytest.fixture
def make_daemon(
    tmp_path: Path, fake: FakeOcrSpace, inbox: Path
) -> Iterator[Callable[..., DaemonProcess]]:
    daemons = Daemons(tmp_path, env={"OCRSPACE_API_KEY": KEY})

    def make(inbox_options: dict[str, Any] | None = None, **top: Any) -> DaemonProcess:
        config = {
            "engine": "ocrspace",
            "ocrspace": {"endpoint": fake.url, "attempts": 2, "timeout": 10},
            "rescan_interval": 0,
            **top,
            "inboxes": [{"path": str(inbox), **(inbox_options or {})}],
        }
        return daemons.make(config)

    yield make
    daemons.close()


def test_backlog_at_start_is_processed_once_each(
    make_daemon: Callable[..., DaemonProcess], inbox: Path, fake: FakeOcrSpace
) -> None:
    """Files already in the inbox when the daemon starts all get sidecars, one request each."""
    names = [f"old{index}.png" for index in range(5)]
    for name in names:
        (inbox / name).write_bytes(image_bytes(name))
    daemon = make_daemon().start()
    wait_until(lambda: all(done(inbox / name) for name in names), message="backlog sidecars")
    assert 0 == daemon.stop()
    assert {f"old{index}.png": 1 for index in range(5)} == dict(fake.count_by_filename())
    for name in names:
        record = valid_record(inbox / name)
        assert "hello from the fake server\n" == record["text"]
        assert "hello from the fake server\n" == (inbox / (name + ".txt")).read_text()


def test_current_sidecars_are_not_sent_again_after_restart(
    make_daemon: Callable[..., DaemonProcess], inbox: Path, fake: FakeOcrSpace
) -> None:
    """A restart over finished files sends nothing; a changed file is sent again."""
    (inbox / "a.png").write_bytes(image_bytes("first"))
    (inbox / "b.png").write_bytes(image_bytes("second"))
    daemon = make_daemon().start()
    wait_until(lambda: done(inbox / "a.png") and done(inbox / "b.png"))
    assert 0 == daemon.stop()
    daemon.start()
    (inbox / "b.png").write_bytes(image_bytes("second, edited"))
    wait_until(lambda: fake.count_by_filename()["b.png"] == 2, message="changed b.png sent again")
    assert 0 == daemon.stop()
    assert {"a.png": 1, "b.png": 2} == dict(fake.count_by_filename())


def test_slow_chunked_writer_is_read_once_when_complete(
    make_daemon: Callable[..., DaemonProcess], inbox: Path, fake: FakeOcrSpace
) -> None:
    """A scanner writing in chunks over a second is read once, whole."""
    daemon = make_daemon().start()
    data = image_bytes("slow scanner", fmt="JPEG", size=(1200, 900))
    target = inbox / "slow.jpg"
    with target.open("wb") as handle:
        for start in range(0, len(data), len(data) // 10 + 1):
            handle.write(data[start : start + len(data) // 10 + 1])
            handle.flush()
            time.sleep(0.1)
    wait_until(lambda: done(target))
    assert 0 == daemon.stop()
    assert {"slow.jpg": 1} == dict(fake.count_by_filename())
    assert valid_record(target)["source"]["size"] == len(data)


def test_temp_then_rename_writer(
    make_daemon: Callable[..., DaemonProcess], inbox: Path, fake: FakeOcrSpace
) -> None:
    """rsync/scanner style: write a hidden temporary, rename into place; only the final name is read."""
    daemon = make_daemon().start()
    temporary = inbox / ".renamed.png.XYZ123"
    temporary.write_bytes(image_bytes("renamed"))
    os.rename(temporary, inbox / "renamed.png")
    part = inbox / "download.png.part"
    part.write_bytes(image_bytes("part file"))
    os.rename(part, inbox / "download.png")
    wait_until(lambda: done(inbox / "renamed.png") and done(inbox / "download.png"))
    assert 0 == daemon.stop()
    assert {"renamed.png": 1, "download.png": 1} == dict(fake.count_by_filename())


def test_rename_from_a_folder_outside_the_inbox_needs_no_quiet_period(
    make_daemon: Callable[..., DaemonProcess], inbox: Path, fake: FakeOcrSpace, tmp_path: Path
) -> None:
    """A file renamed in from a staging folder on the same disk is whole: read at once, not after settling.

    The quiet period is set to an hour, so only the rename itself can make the
    file ready. Moving files and folders out of the inbox disturbs nothing.
    """
    staging = tmp_path / "staging"
    staging.mkdir()
    (inbox / "sub").mkdir()
    daemon = make_daemon({"settle_seconds": 3600, "recursive": True}).start()
    (staging / "staged.png").write_bytes(image_bytes("staged elsewhere"))
    os.rename(staging / "staged.png", inbox / "staged.png")
    wait_until(
        lambda: done(inbox / "staged.png"), message="renamed-in file read without waiting an hour"
    )
    os.rename(inbox / "staged.png", staging / "away.png")
    os.rename(inbox / "sub", staging / "sub")
    (staging / "second.png").write_bytes(image_bytes("second staged"))
    os.rename(staging / "second.png", inbox / "second.png")
    wait_until(lambda: done(inbox / "second.png"))
    assert 0 == daemon.stop()
    assert {"staged.png": 1, "second.png": 1} == dict(fake.count_by_filename())
    assert "ERROR" not in daemon.log() and "Traceback" not in daemon.log()


def test_copy_and_move_from_another_file_system(
    make_daemon: Callable[..., DaemonProcess], inbox: Path, fake: FakeOcrSpace
) -> None:
    """A copy, and a move across file systems (copy + delete), are each read once."""
    other = Path(tempfile.mkdtemp(dir="/dev/shm"))
    try:
        assert os.stat(other).st_dev != os.stat(inbox).st_dev, (
            "/dev/shm should be another file system"
        )
        daemon = make_daemon().start()
        (other / "moved.png").write_bytes(image_bytes("moved in"))
        (other / "copied.png").write_bytes(image_bytes("copied in"))
        shutil.move(other / "moved.png", inbox / "moved.png")
        shutil.copy(other / "copied.png", inbox / "copied.png")
        wait_until(lambda: done(inbox / "moved.png") and done(inbox / "copied.png"))
        assert 0 == daemon.stop()
    finally:
        shutil.rmtree(other)
    assert {"moved.png": 1, "copied.png": 1} == dict(fake.count_by_filename())


def test_many_files_at_once(
    make_daemon: Callable[..., DaemonProcess], inbox: Path, fake: FakeOcrSpace
) -> None:
    """Sixty files landing together are each processed exactly once."""
    daemon = make_daemon().start()
    data = image_bytes("burst")
    names = [f"burst{index:02d}.png" for index in range(60)]
    for name in names:
        (inbox / name).write_bytes(data)
    wait_until(lambda: all(done(inbox / name) for name in names), 60)
    assert 0 == daemon.stop()
    assert {name: 1 for name in names} == dict(fake.count_by_filename())


def test_junk_and_own_files_are_ignored(
    make_daemon: Callable[..., DaemonProcess], inbox: Path, fake: FakeOcrSpace
) -> None:
    """Temporaries, hidden files and non-matching names never reach the API."""
    daemon = make_daemon().start()
    data = image_bytes("junk")
    for name in (
        ".hidden.png",
        "scan.png.tmp",
        "x.png.crdownload",
        "~$lock.png",
        "Thumbs.db",
        "notes.txt",
    ):
        (inbox / name).write_bytes(data)
    (inbox / "real.png").write_bytes(data)
    wait_until(lambda: done(inbox / "real.png"))
    daemon.stop()
    assert {"real.png": 1} == dict(fake.count_by_filename())


def test_rescan_finds_files_whose_events_were_missed(
    make_daemon: Callable[..., DaemonProcess], inbox: Path, fake: FakeOcrSpace
) -> None:
    """With events effectively lost (a poll every hour), the periodic rescan still finds the file."""
    daemon = make_daemon({"watch": "poll", "poll_interval": 3600}, rescan_interval=1).start()
    (inbox / "missed.png").write_bytes(image_bytes("missed event"))
    wait_until(lambda: done(inbox / "missed.png"))
    assert 0 == daemon.stop()
    assert {"missed.png": 1} == dict(fake.count_by_filename())
    assert "periodic rescan" in daemon.log()


def test_truncated_file_is_read_when_it_completes(
    make_daemon: Callable[..., DaemonProcess], inbox: Path, fake: FakeOcrSpace
) -> None:
    """Half a JPEG (closed) waits; when the rest arrives it is read once, never sent half."""
    daemon = make_daemon().start()
    data = image_bytes("finished later", fmt="JPEG", size=(900, 600))
    target = inbox / "late.jpg"
    target.write_bytes(data[: len(data) // 2])
    wait_until(
        lambda: "waiting for " + str(target) in daemon.log(),
        message="the daemon to notice truncation",
    )
    with target.open("ab") as handle:
        handle.write(data[len(data) // 2 :])
    wait_until(lambda: done(target))
    assert 0 == daemon.stop()
    assert {"late.jpg": 1} == dict(fake.count_by_filename())
    assert data == fake.requests[0].data


def test_bad_file_fails_clearly_and_the_daemon_goes_on(
    make_daemon: Callable[..., DaemonProcess], inbox: Path, fake: FakeOcrSpace
) -> None:
    """A text file named .jpg gets an error sidecar; later files still work; no retry loop."""
    daemon = make_daemon(rescan_interval=0.5).start()
    (inbox / "fake.jpg").write_text("this is not an image\n")
    wait_until(lambda: (inbox / "fake.jpg.error.json").exists())
    (inbox / "good.png").write_bytes(image_bytes("still working"))
    wait_until(lambda: done(inbox / "good.png"))
    error = json.loads((inbox / "fake.jpg.error.json").read_text())
    assert ("failed", "bad_input") == (error["status"], error["error"]["classification"])
    assert "not an image" in error["error"]["message"]
    first = (inbox / "fake.jpg.error.json").stat().st_mtime_ns
    rescans = daemon.log().count("scan (periodic rescan)")
    wait_until(
        lambda: daemon.log().count("scan (periodic rescan)") >= rescans + 2,
        message="two more rescans",
    )
    assert first == (inbox / "fake.jpg.error.json").stat().st_mtime_ns, (
        "a failed file was retried in a loop"
    )
    (inbox / "fake.jpg").write_bytes(image_bytes("fixed now"))
    wait_until(lambda: done(inbox / "fake.jpg"))
    assert not (inbox / "fake.jpg.error.json").exists()
    assert 0 == daemon.stop()
    assert {"good.png": 1, "fake.png": 1} == dict(fake.count_by_filename())


def test_sigterm_drains_work_in_progress(
    make_daemon: Callable[..., DaemonProcess], inbox: Path, fake: FakeOcrSpace
) -> None:
    """SIGTERM during a slow request lets it finish, writes its sidecars, exits 0."""
    fake.latency = 2.0
    daemon = make_daemon().start()
    (inbox / "inflight.png").write_bytes(image_bytes("in flight"))
    wait_until(lambda: fake.in_flight == 1, message="the request to reach the server")
    daemon.send(signal.SIGTERM)
    assert daemon.process is not None
    assert 0 == daemon.process.wait(30)
    assert done(inbox / "inflight.png")
    assert 1 == daemon.notify.count("STOPPING", "1")


def test_sighup_adds_an_inbox_and_refuses_a_broken_config(
    make_daemon: Callable[..., DaemonProcess], inbox: Path, fake: FakeOcrSpace, tmp_path: Path
) -> None:
    """A reload adds a new inbox; an invalid config is refused and the old one keeps working."""
    daemon = make_daemon().start()
    second = tmp_path / "second"
    second.mkdir()
    config = yaml.safe_load(daemon.config_path.read_text())
    config["inboxes"].append({"path": str(second)})
    daemon.write_config(config)
    daemon.reload()
    (second / "new.png").write_bytes(image_bytes("second inbox"))
    wait_until(lambda: done(second / "new.png"))
    daemon.config_path.write_text("inboxes: [{path: 3, bogus: x}]\n")
    daemon.reload()
    assert "reload refused, keeping the running configuration" in daemon.log()
    (inbox / "after.png").write_bytes(image_bytes("after refused reload"))
    wait_until(lambda: done(inbox / "after.png"))
    assert 0 == daemon.stop()
    assert 1 <= daemon.notify.count("RELOADING", "1")


def test_sigkill_and_restart_loses_nothing(
    make_daemon: Callable[..., DaemonProcess], inbox: Path, fake: FakeOcrSpace
) -> None:
    """Killed mid-work, restarted: every file ends with valid sidecars, no temporaries, few repeats."""
    fake.latency = 0.3
    names = [f"k{index:02d}.png" for index in range(12)]
    daemon = make_daemon().start()
    for name in names:
        (inbox / name).write_bytes(image_bytes(name))
    wait_until(lambda: fake.requests and len(fake.requests) >= 3)
    daemon.kill()
    kills = 1
    fake.latency = 0.0
    daemon.start()
    wait_until(lambda: all(done(inbox / name) for name in names), 60)
    assert 0 == daemon.stop()
    for name in names:
        valid_record(inbox / name)
    assert [] == [p.name for p in inbox.iterdir() if p.name.endswith(TEMP_SUFFIX)]
    counts = fake.count_by_filename()
    assert all(1 <= counts[name] <= 1 + kills for name in names), counts


def test_after_move_takes_sidecars_along_and_failures_go_to_failed_dir(
    make_daemon: Callable[..., DaemonProcess], inbox: Path, fake: FakeOcrSpace, tmp_path: Path
) -> None:
    """`after: move` puts image and sidecars in done/ (never read again); a failure goes to failed_dir."""
    failed = tmp_path / "failed"
    daemon = make_daemon({"after": "move", "failed_dir": str(failed)}, rescan_interval=0.5).start()
    (inbox / "good.png").write_bytes(image_bytes("moving on"))
    (inbox / "bad.jpg").write_text("not an image")
    wait_until(
        lambda: (
            (inbox / "done" / "good.png.json").exists() and (failed / "bad.jpg.error.json").exists()
        )
    )
    assert (inbox / "done" / "good.png").exists() and (inbox / "done" / "good.png.txt").exists()
    assert (failed / "bad.jpg").exists()
    assert [] == sorted(p.name for p in inbox.iterdir() if p.is_file())
    rescans = daemon.log().count("scan (periodic rescan)")
    wait_until(
        lambda: daemon.log().count("scan (periodic rescan)") >= rescans + 2,
        message="two more rescans",
    )
    assert 0 == daemon.stop()
    assert {"good.png": 1} == dict(fake.count_by_filename())


def test_after_delete_removes_only_the_image(
    make_daemon: Callable[..., DaemonProcess], inbox: Path, fake: FakeOcrSpace
) -> None:
    """`after: delete` deletes the image once its sidecars are durable, and keeps the sidecars."""
    daemon = make_daemon({"after": "delete"}).start()
    (inbox / "gone.png").write_bytes(image_bytes("delete me"))
    wait_until(lambda: not (inbox / "gone.png").exists())
    assert 0 == daemon.stop()
    assert "hello from the fake server\n" == (inbox / "gone.png.txt").read_text()
    assert json.loads((inbox / "gone.png.json").read_text())["status"] == "done"


@pytest.fixture
def sysctl() -> Iterator[Callable[[str, int], None]]:
    """Set a /proc/sys value for the duration of a test (root only), restoring it afterwards."""
    saved: dict[Path, str] = {}

    def set_value(name: str, value: int) -> None:
        path = Path("/proc/sys") / name.replace(".", "/")
        if not os.access(path, os.W_OK):
            pytest.skip(f"{path} is not writable here (needs root with a writable /proc/sys)")
        saved.setdefault(path, path.read_text())
        path.write_text(f"{value}\n")

    yield set_value
    for path, value in saved.items():
        path.write_text(value)


def test_inbox_folder_deleted_and_recreated_is_watched_again(
    make_daemon: Callable[..., DaemonProcess], inbox: Path, fake: FakeOcrSpace
) -> None:
    """When the inbox folder vanishes and comes back (a remount), files dropped there are still read."""
    daemon = make_daemon().start()
    shutil.rmtree(inbox)
    wait_until(lambda: "the watch stopped working" in daemon.log() or "is missing" in daemon.log())
    inbox.mkdir()
    wait_until(
        lambda: (
            "watching it again" in daemon.log() or daemon.log().count("watching " + str(inbox)) >= 2
        )
    )
    (inbox / "back.png").write_bytes(image_bytes("back again"))
    wait_until(lambda: done(inbox / "back.png"))
    assert 0 == daemon.stop()
    assert {"back.png": 1} == dict(fake.count_by_filename())


def test_kernel_queue_overflow_triggers_a_rescan(
    make_daemon: Callable[..., DaemonProcess],
    inbox: Path,
    fake: FakeOcrSpace,
    sysctl: Callable[[str, int], None],
) -> None:
    """With a tiny inotify queue, a burst overflows it; the rescan still finds every file."""
    sysctl("fs.inotify.max_queued_events", 16)
    daemon = make_daemon(workers=1).start()
    sysctl("fs.inotify.max_queued_events", 16384)
    fake.latency = 0.05
    data = image_bytes("overflow")
    names = [f"o{index:03d}.png" for index in range(200)]
    for name in names:
        (inbox / name).write_bytes(data)
    wait_until(lambda: all(done(inbox / name) for name in names), 120)
    assert 0 == daemon.stop()
    assert "kernel event queue overflowed" in daemon.log()
    assert "scan (inotify queue overflow)" in daemon.log()
    assert {name: 1 for name in names} == dict(fake.count_by_filename())


def test_out_of_inotify_watches_falls_back_to_polling(
    make_daemon: Callable[..., DaemonProcess],
    inbox: Path,
    fake: FakeOcrSpace,
    sysctl: Callable[[str, int], None],
) -> None:
    """Too few inotify watches: a clear message with the sysctl to raise, and polling instead."""
    for name in ("a", "b", "c"):
        (inbox / name).mkdir()
    sysctl("fs.inotify.max_user_watches", 1)
    daemon = make_daemon({"recursive": True, "poll_interval": 0.2}).start()
    sysctl("fs.inotify.max_user_watches", 65536)
    log = daemon.log()
    assert "sysctl fs.inotify.max_user_watches=" in log
    assert f"watching {inbox}: poll" in log
    (inbox / "b" / "polled.png").write_bytes(image_bytes("polled"))
    wait_until(lambda: done(inbox / "b" / "polled.png"))
    assert 0 == daemon.stop()


def test_truncated_file_that_never_completes_fails_after_its_deadline(
    make_daemon: Callable[..., DaemonProcess], inbox: Path, fake: FakeOcrSpace
) -> None:
    """A half-written JPEG that stays half-written fails as 'incomplete' once incomplete_timeout passes."""
    daemon = make_daemon({"incomplete_timeout": 2}).start()
    data = image_bytes("never finished", fmt="JPEG", size=(900, 600))
    (inbox / "stuck.jpg").write_bytes(data[: len(data) // 3])
    wait_until(lambda: (inbox / "stuck.jpg.error.json").exists(), 30)
    error = json.loads((inbox / "stuck.jpg.error.json").read_text())
    jsonschema.validate(error, SCHEMA)
    assert "incomplete" == error["error"]["classification"]
    assert "JPEG data ends early" in error["error"]["message"]
    assert error["attempts"] >= 2
    assert 0 == daemon.stop()
    assert {} == dict(fake.count_by_filename())


def test_reload_with_changed_rules_reprocesses_existing_files(
    make_daemon: Callable[..., DaemonProcess], inbox: Path, fake: FakeOcrSpace
) -> None:
    """Files done under old rules are read again after a reload changes the rules; unchanged ones are not."""
    daemon = make_daemon().start()
    (inbox / "r.png").write_bytes(image_bytes("rules change"))
    wait_until(lambda: done(inbox / "r.png"))
    daemon.reload()
    daemon.notify.messages.clear()
    config = yaml.safe_load(daemon.config_path.read_text())
    config["inboxes"][0]["detect_orientation"] = False
    daemon.write_config(config)
    daemon.reload()
    wait_until(
        lambda: fake.count_by_filename()["r.png"] == 2,
        message="r.png sent again without orientation detection",
    )
    wait_until(lambda: valid_record(inbox / "r.png")["settings"]["detect_orientation"] is False)
    assert 0 == daemon.stop()
    assert {"r.png": 2} == dict(fake.count_by_filename())
