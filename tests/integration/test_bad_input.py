"""Attacks on the daemon through what lands in its inboxes: broken, hostile, odd and unreachable files.

The promise under attack: each bad file gets a clear error of its own (an
error sidecar that says why), good files are read whatever their pixel
format, nothing the daemon cannot read costs an ocr.space request, a
decompression bomb costs no memory, and the daemon goes on. Permission tests
run the daemon under :func:`tests.support.privileges.permission_respecting_prefix`
so that root (as in CI) obeys the permission bits; the full-disk tests mount a
small tmpfs and skip, saying why, where that is not allowed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from rapidfuzz import fuzz

from tests.support.daemon import DaemonProcess, Daemons
from tests.support.hostile import BOMBS, page_bytes, pixel_formats, truncated, two_frames
from tests.support.ocrspace_server import FakeOcrSpace
from tests.support.privileges import permission_respecting_prefix
from tests.support.rig import KEY, assert_alive, daemon_config
from tests.support.tmpfs import leave_inodes, small_tmpfs
from tests.support.verdicts import (
    done_record,
    error_record,
    finished,
    orphans,
    peak_memory_bytes,
    temporaries,
    verdict,
)
from tests.support.waiting import wait_until

MEMORY_CEILING = 400 * 1024 * 1024
INCOMPLETE_TIMEOUT = 1.5
OUTPUT_RECOVERY_TIMEOUT = 40
"""The daemon retries unwritable outputs after 10 s, then 20 s (OUTPUT_BACKOFF_START)."""
SERVER_TEXT = "read despite everything"
MIN_TEXT_SIMILARITY = 80


@pytest.fixture
def server() -> Iterator[FakeOcrSpace]:
    with FakeOcrSpace(mode="text", text=SERVER_TEXT, api_key=KEY) as fake:
        yield fake


@pytest.fixture
def make_daemon(tmp_path: Path, server: FakeOcrSpace) -> Iterator[Callable[..., DaemonProcess]]:
    """Build a daemon over the given inbox entries (paths relative to tmp_path allowed)."""
    daemons = Daemons(tmp_path, env={"OCRSPACE_API_KEY": KEY})

    def make(
        inboxes: list[dict[str, Any]], *, prefix: list[str] | None = None, **top: Any
    ) -> DaemonProcess:
        config = daemon_config(server.url, inboxes, state_dir=tmp_path / "state", **top)
        return daemons.make(config, prefix=prefix)

    yield make
    daemons.close()


def test_broken_and_hostile_files_each_fail_clearly_at_no_cost(
    make_daemon: Callable[..., DaemonProcess], inbox: Path, server: FakeOcrSpace
) -> None:
    """Empty, truncated, non-image and bomb files each get the right error; none costs a request or memory."""
    jpeg = page_bytes("cut short", "JPEG", size=(900, 300))
    png = page_bytes("cut short", "PNG", size=(900, 300))
    files = {
        "empty.png": (b"", "incomplete", "empty"),
        "half.jpg": (truncated(jpeg), "incomplete", "JPEG data ends early"),
        "half.png": (truncated(png), "incomplete", "PNG data ends early"),
        "letter.jpg": (b"Dear reader, this is plain text.\n", "bad_input", "not an image"),
        "page.png": (b"<!DOCTYPE html><html><body>404</body></html>", "bad_input", "not an image"),
        **{name: (make(), "bad_input", "max_pixels") for name, make in BOMBS.items()},
    }
    daemon = make_daemon([{"path": str(inbox), "incomplete_timeout": INCOMPLETE_TIMEOUT}]).start()
    (inbox / "folder.jpg").mkdir()
    (inbox / "folder.jpg" / "inside.png").write_bytes(page_bytes("not in a recursive inbox"))
    for name, (data, _, _) in files.items():
        (inbox / name).write_bytes(data)
    wait_until(
        lambda: all(finished(inbox / name) for name in files),
        30,
        message="every broken file to fail",
    )
    for name, (_, classification, words) in files.items():
        failure = error_record(inbox / name)
        assert classification == failure["error"]["classification"], name
        assert words in failure["error"]["message"], f"{name}: {failure['error']['message']}"
    assert error_record(inbox / "empty.png")["attempts"] >= 2, (
        "an empty file may still be being written"
    )
    assert daemon.process is not None
    assert peak_memory_bytes(daemon.process.pid) < MEMORY_CEILING, "a header-only bomb cost memory"
    (inbox / "good.png").write_bytes(page_bytes("good after bad"))
    wait_until(
        lambda: finished(inbox / "good.png"), 20, message="a good file after the broken ones"
    )
    assert ("done", None) == verdict(inbox / "good.png")
    assert {"good.png": 1} == dict(server.count_by_filename())
    assert [] == sorted(p.name for p in inbox.iterdir() if p.name.startswith("folder.jpg."))
    assert [] == sorted(p.name for p in (inbox / "folder.jpg").iterdir() if p.name != "inside.png")
    assert_alive(daemon)
    assert 0 == daemon.stop()


def test_unusual_pixel_formats_are_read(
    make_daemon: Callable[..., DaemonProcess], inbox: Path, server: FakeOcrSpace
) -> None:
    """16-bit, CMYK, palette, alpha, bilevel, WebP and BMP pages are read and their words come back."""
    server.mode = "tesseract"
    words = {
        "grey16.png": "Harbour lantern",
        "rgb48.png": "Meadow violin",
        "grey16.tif": "Copper kettle",
        "cmyk.jpg": "Winter orchard",
        "cmyk.tif": "Silver anchor",
        "palette.png": "Velvet thunder",
        "palette.gif": "Marble garden",
        "alpha-only.png": "Hidden letters",
        "grey-alpha.png": "Shadow ribbon",
        "palette-transparent.png": "Crystal window",
        "bilevel-g4.tif": "Paper falcon",
        "lossless.webp": "Amber castle",
        "bmp8.bmp": "Canvas river",
    }
    daemon = make_daemon([{"path": str(inbox)}]).start()
    for name, data in pixel_formats(words).items():
        (inbox / name).write_bytes(data)
    wait_until(lambda: all(finished(inbox / name) for name in words), 60, message="every format")
    unread = {}
    for name, expected in words.items():
        assert ("done", None) == verdict(inbox / name), error_record(inbox / name)["error"]
        text = (inbox / (name + ".txt")).read_text()
        if fuzz.partial_ratio(expected.lower(), text.lower()) < MIN_TEXT_SIMILARITY:
            unread[name] = text
    assert {} == unread
    assert 0 == daemon.stop()


def test_an_animated_gif_reads_its_first_frame_and_a_multipage_tiff_every_page(
    make_daemon: Callable[..., DaemonProcess], inbox: Path, server: FakeOcrSpace
) -> None:
    """A GIF's later frames are not pages: only the first is read, and the note says so.
    A TIFF's pages are: each is read, the .txt has a form feed between them."""
    server.mode = "tesseract"
    daemon = make_daemon([{"path": str(inbox)}]).start()
    (inbox / "animated.gif").write_bytes(two_frames("Opening frame", "Closing scene", "GIF"))
    (inbox / "pages.tif").write_bytes(two_frames("Opening frame", "Closing scene", "TIFF"))
    wait_until(lambda: finished(inbox / "animated.gif") and finished(inbox / "pages.tif"), 30)
    gif = done_record(inbox / "animated.gif")
    assert ({"format": "GIF", "pages": 1, "frames": 2}, 1) == (gif["document"], len(gif["pages"]))
    assert "first" in gif.get("note", "")
    assert fuzz.partial_ratio("opening frame", gif["text"].lower()) >= MIN_TEXT_SIMILARITY, gif[
        "text"
    ]
    assert fuzz.partial_ratio("closing scene", gif["text"].lower()) < 60, "read a later frame"
    tiff = done_record(inbox / "pages.tif")
    sent = {Path(name).stem for name in server.count_by_filename()}
    assert ("TIFF", 2, {"animated", "pages", "pages-p2"}) == (
        tiff["document"]["format"],
        tiff["document"]["pages"],
        sent,  # the GIF once, each TIFF page under its own name
    )
    first, second = tiff["text"].split("\f")
    assert fuzz.partial_ratio("opening frame", first.lower()) >= MIN_TEXT_SIMILARITY, first
    assert fuzz.partial_ratio("closing scene", second.lower()) >= MIN_TEXT_SIMILARITY, second
    assert 0 == daemon.stop()


@pytest.mark.parametrize("follow", [False, True])
def test_symlink_out_of_the_inbox_is_followed_only_when_allowed(
    follow: bool,
    make_daemon: Callable[..., DaemonProcess],
    inbox: Path,
    server: FakeOcrSpace,
    tmp_path: Path,
) -> None:
    """A link to an image outside the inbox: refused with a reason by default, read (once) with follow_symlinks."""
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = page_bytes("private elsewhere")
    (outside / "private.png").write_bytes(secret)
    daemon = make_daemon([{"path": str(inbox), "follow_symlinks": follow}]).start()
    (inbox / "link.png").symlink_to(outside / "private.png")
    (inbox / "plain.png").write_bytes(page_bytes("plain file"))
    wait_until(lambda: finished(inbox / "link.png") and finished(inbox / "plain.png"), 20)
    assert ("done", None) == verdict(inbox / "plain.png")
    if follow:
        assert ("done", None) == verdict(inbox / "link.png")
        assert [secret] == [r.data for r in server.requests if r.filename == "link.png"]
    else:
        failure = error_record(inbox / "link.png")
        assert "symbolic link" in failure["error"]["message"]
        assert "link.png" not in server.count_by_filename()
        assert secret not in [r.data for r in server.requests]
    assert ["private.png"] == sorted(p.name for p in outside.iterdir()), (
        "wrote beside the link's target"
    )
    assert 0 == daemon.stop()


def test_folder_named_like_an_image_is_a_folder(
    make_daemon: Callable[..., DaemonProcess], inbox: Path, server: FakeOcrSpace
) -> None:
    """In a recursive inbox, folders named x.jpg are entered, never read as images."""
    daemon = make_daemon([{"path": str(inbox), "recursive": True}]).start()
    (inbox / "scan.jpg").mkdir()
    (inbox / "scan.jpg" / "inner.png").write_bytes(page_bytes("inside a folder named scan.jpg"))
    (inbox / "nested.png" / "deeper.tif").mkdir(parents=True)
    wait_until(lambda: finished(inbox / "scan.jpg" / "inner.png"), 20)
    assert ("done", None) == verdict(inbox / "scan.jpg" / "inner.png")
    (inbox / "after.png").write_bytes(page_bytes("after"))
    wait_until(lambda: finished(inbox / "after.png"), 20)
    sidecars = sorted(
        str(p.relative_to(inbox)) for p in inbox.rglob("*") if p.name.endswith((".json", ".txt"))
    )
    assert [
        "after.png.json",
        "after.png.txt",
        "scan.jpg/inner.png.json",
        "scan.jpg/inner.png.txt",
    ] == sidecars
    assert {"inner.png": 1, "after.png": 1} == dict(server.count_by_filename())
    assert 0 == daemon.stop()


ODD_NAMES = [
    "with spaces.png",
    "ünïcødé 文字.png",
    "new\nline.png",
    "-leading-dash.png",
    "--help.png",
    "tab\there.png",
    "quote'and\"double.png",
    "semi;colon$(echo x).png",
]


def test_odd_file_names_are_read(
    make_daemon: Callable[..., DaemonProcess], inbox: Path, server: FakeOcrSpace
) -> None:
    """Spaces, unicode, a newline, a tab, quotes, shell syntax and leading dashes: each name is read."""
    daemon = make_daemon([{"path": str(inbox)}]).start()
    for name in ODD_NAMES:
        (inbox / name).write_bytes(page_bytes("odd name"))
    wait_until(
        lambda: all(finished(inbox / name) for name in ODD_NAMES), 20, message="every odd name"
    )
    for name in ODD_NAMES:
        assert ("done", None) == verdict(inbox / name), name
        assert name == done_record(inbox / name)["source"]["name"]
    assert len(ODD_NAMES) == len(server.requests)
    assert 0 == daemon.stop()


def test_file_name_that_is_not_utf8_is_read_and_stops_nothing(
    make_daemon: Callable[..., DaemonProcess], inbox: Path, server: FakeOcrSpace
) -> None:
    """A Latin-1 name (not valid UTF-8, common on old shares) gets sidecars; the files after it still do too."""
    latin1 = os.fsdecode(b"r\xe9sum\xe9.png")
    backlog = [latin1, "s-after.png"]
    for name in backlog:
        (inbox / name).write_bytes(page_bytes(name.encode("ascii", "replace").decode()))
    daemon = make_daemon([{"path": str(inbox)}], workers=1).start()
    (inbox / "t-live.png").write_bytes(page_bytes("live"))
    names = [*backlog, "t-live.png"]
    wait_until(
        lambda: all(finished(inbox / name) for name in names),
        6,
        message="every file, whatever its name",
    )
    for name in names:
        assert ("done", None) == verdict(inbox / name)
    assert 3 == len(server.requests)
    assert_alive(daemon)
    assert "Traceback" not in daemon.log()
    assert 0 == daemon.stop()


def test_file_names_cannot_forge_log_lines(
    make_daemon: Callable[..., DaemonProcess], inbox: Path
) -> None:
    """A newline in a file name cannot start a log line of its own."""
    forged = "2030-01-01T00:00:00+0000 CRITICAL ocr.space rejected the API key"
    daemon = make_daemon([{"path": str(inbox)}]).start()
    name = f"x\n{forged} .png"
    (inbox / name).write_bytes(page_bytes("log injection"))
    wait_until(lambda: finished(inbox / name), 20)
    assert 0 == daemon.stop()
    assert [] == [line for line in daemon.log().splitlines() if line.startswith(forged)]


def test_files_deleted_or_renamed_while_queued(
    make_daemon: Callable[..., DaemonProcess], inbox: Path, server: FakeOcrSpace
) -> None:
    """With one busy worker, queued files that vanish are dropped quietly; renamed ones are read by their new name."""
    server.latency = 0.5
    daemon = make_daemon([{"path": str(inbox)}], workers=1).start()
    (inbox / "head.png").write_bytes(page_bytes("head"))
    wait_until(lambda: server.in_flight == 1, 20, message="the worker to be busy")
    queued = [f"queued-{index}.png" for index in range(5)]
    for name in queued:
        (inbox / name).write_bytes(page_bytes(name))
    os.unlink(inbox / "queued-1.png")
    os.rename(inbox / "queued-2.png", inbox / "renamed-2.png")
    os.rename(inbox / "queued-3.png", inbox / "queued-3.png.bak")
    os.rename(inbox / "queued-4.png", inbox / ".hidden-4.png")
    expected = ["head.png", "queued-0.png", "renamed-2.png"]
    wait_until(
        lambda: all(finished(inbox / name) for name in expected), 30, message="the surviving files"
    )
    server.latency = 0.0
    (inbox / "later.png").write_bytes(page_bytes("later"))
    wait_until(lambda: finished(inbox / "later.png"), 20)
    assert_alive(daemon)
    assert 0 == daemon.stop()
    for name in [*expected, "later.png"]:
        assert ("done", None) == verdict(inbox / name)
    assert {"head.png": 1, "queued-0.png": 1, "renamed-2.png": 1, "later.png": 1} == dict(
        server.count_by_filename()
    )
    sidecars = sorted(p.name for p in inbox.iterdir() if p.name.endswith(".json"))
    assert [
        "head.png.json",
        "later.png.json",
        "queued-0.png.json",
        "renamed-2.png.json",
    ] == sidecars


def test_unreadable_file_fails_then_is_read_once_readable(
    make_daemon: Callable[..., DaemonProcess], inbox: Path, server: FakeOcrSpace
) -> None:
    """chmod 000: an error sidecar saying so and no request; chmod 644: read, and the error sidecar goes."""
    daemon = make_daemon([{"path": str(inbox)}], prefix=permission_respecting_prefix()).start()
    locked = inbox / "locked.png"
    locked.write_bytes(page_bytes("locked away"))
    locked.chmod(0o000)
    # Written and closed before the chmod: wait for the daemon to get to it.
    wait_until(lambda: finished(locked), 20, message="the unreadable file to fail")
    failure = error_record(locked)
    assert "permission denied" in failure["error"]["message"].lower()
    assert [] == server.requests
    locked.chmod(0o644)
    wait_until(
        lambda: (inbox / "locked.png.json").exists(),
        6,
        message="the file to be read after chmod 644",
    )
    assert ("done", None) == verdict(locked)
    assert_alive(daemon)
    assert 0 == daemon.stop()


def unwritable_output_case(
    make_daemon: Callable[..., DaemonProcess],
    inbox: Path,
    server: FakeOcrSpace,
    output: Path,
    *,
    block: Callable[[], None],
    unblock: Callable[[], None],
    reason: str,
    prefix: list[str] | None = None,
) -> None:
    """Images wait (no request, nothing half-written) while ``output`` is unwritable, then finish on their own."""
    originals = {f"out-{index}.png": page_bytes(f"out {index}") for index in range(3)}
    for name, data in originals.items():
        (inbox / name).write_bytes(data)
    block()
    daemon = make_daemon([{"path": str(inbox), "output": str(output)}], prefix=prefix).start()
    wait_until(
        lambda: daemon.log().count(f"cannot write sidecars in {output}") >= len(originals),
        20,
        message="an error about the output folder for each file",
    )
    lines = [
        line for line in daemon.log().splitlines() if f"cannot write sidecars in {output}" in line
    ]
    assert all(" ERROR " in line and reason in line for line in lines), lines
    assert [] == server.requests, "OCR was paid for although the sidecars cannot be written"
    assert {name: data for name, data in originals.items()} == {
        n: (inbox / n).read_bytes() for n in originals
    }
    assert sorted(originals) == sorted(p.name for p in inbox.iterdir()), (
        "sidecars fell back to the inbox"
    )
    assert [] == [p.name for p in output.iterdir() if not p.name.startswith(".fill")]
    assert_alive(daemon)
    unblock()
    wait_until(
        lambda: all(finished(inbox / name, output) for name in originals),
        OUTPUT_RECOVERY_TIMEOUT,
        message="recovery once the output is writable",
    )
    for name, data in originals.items():
        done_record(inbox / name, output, image_bytes=data)
    assert sorted(originals) == sorted(server.count_by_filename())
    assert [] == temporaries(output)
    assert 0 == daemon.stop()


@pytest.mark.slow
def test_read_only_output_folder_then_recovery(
    make_daemon: Callable[..., DaemonProcess], inbox: Path, server: FakeOcrSpace, tmp_path: Path
) -> None:
    """A 0555 output folder: a clear error, no request, originals intact; once writable, every file finishes."""
    output = tmp_path / "output"
    output.mkdir()
    unwritable_output_case(
        make_daemon,
        inbox,
        server,
        output,
        block=lambda: output.chmod(0o555),
        unblock=lambda: output.chmod(0o755),
        reason="permission denied",
        prefix=permission_respecting_prefix(),
    )


@pytest.mark.slow
def test_full_disk_then_recovery(
    make_daemon: Callable[..., DaemonProcess], inbox: Path, server: FakeOcrSpace, tmp_path: Path
) -> None:
    """An output disk too full to write to: a clear error, no request; once space is freed, every file finishes."""
    with small_tmpfs(tmp_path / "output", "size=6m") as output:
        filler = output / ".filler"

        def fill() -> None:
            filler.write_bytes(b"\0" * (5 * 1024 * 1024))

        unwritable_output_case(
            make_daemon,
            inbox,
            server,
            output,
            block=fill,
            unblock=filler.unlink,
            reason="free on the device",
        )


def test_disk_full_between_the_two_sidecars_leaves_no_half_pair(
    make_daemon: Callable[..., DaemonProcess], inbox: Path, server: FakeOcrSpace, tmp_path: Path
) -> None:
    """Out of inodes after the .txt: no .txt without its .json is left, and the original is intact."""
    with small_tmpfs(tmp_path / "output", "size=16m,nr_inodes=32") as output:
        leave_inodes(output, 1)
        data = page_bytes("one inode left")
        (inbox / "last-inode.png").write_bytes(data)
        daemon = make_daemon([{"path": str(inbox), "output": str(output)}]).start()
        wait_until(
            lambda: "no space left on the device" in daemon.log(), 20, message="the disk-full error"
        )
        assert_alive(daemon)
        assert data == (inbox / "last-inode.png").read_bytes()
        assert [] == temporaries(output)
        assert [] == orphans(output)
        assert 0 == daemon.stop()
