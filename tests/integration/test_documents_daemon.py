"""Documents through the real daemon: a PDF written slowly, and a document interrupted by SIGKILL or SIGTERM.

Each page of the test PDFs has a height of its own, so the fake server's
uploads say which page every request was for: "no page is sent twice" is
checked page by page, not only as a total.
"""

from __future__ import annotations

import collections
import contextlib
import io
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pikepdf
import pytest

from tests.support import pdfs
from tests.support.commands import ocrwatch
from tests.support.daemon import DaemonProcess, Daemons
from tests.support.ocrspace_server import FakeOcrSpace, RecordedRequest
from tests.support.render import page
from tests.support.rig import KEY, daemon_config
from tests.support.verdicts import done_record, finished
from tests.support.waiting import wait_until

PAGE_DPI = 200
"""Inside 200-600 dpi: each page renders at its own image's size, which the uploads then show."""
PAGE_WIDTH, FIRST_HEIGHT, HEIGHT_STEP = 400, 160, 40
SERVER_TEXT = "page read by the fake server"
LATENCY = 1.0
"""Seconds the server takes per request: long enough to stop the daemon between two pages."""
ANSWER_KEPT = 0.3
"""Seconds after an answer by which the daemon has surely kept its page (it has a whole request's time)."""
SETTLE = 0.2
WRITE_PAUSE = 0.6
"""The slow writer's pause between chunks: longer than the quiet period, so each part is looked at."""
DONE_TIMEOUT = 60


def heights(count: int) -> list[int]:
    return [FIRST_HEIGHT + HEIGHT_STEP * index for index in range(count)]


def document(count: int) -> bytes:
    """A scan PDF of ``count`` pages, page ``n`` reading "Page n", each page taller than the one before."""
    with contextlib.ExitStack() as stack:
        pdf = pikepdf.new()
        for number, height in enumerate(heights(count), start=1):
            image, _ = page([f"Page {number}"], size=(PAGE_WIDTH, height), font_size=40)
            part = stack.enter_context(pikepdf.open(io.BytesIO(pdfs.scanned(image, dpi=PAGE_DPI))))
            pdf.pages.extend(part.pages)
        return pdfs.save(pdf)


def page_of(request: RecordedRequest, count: int) -> int:
    """The number of the page a request uploaded, told by its height."""
    pixels = cv2.imdecode(np.frombuffer(request.data, np.uint8), cv2.IMREAD_GRAYSCALE)
    assert pixels is not None, f"upload {request.filename} is not an image"
    assert PAGE_WIDTH == pixels.shape[1], f"upload {request.filename} was scaled"
    return heights(count).index(pixels.shape[0]) + 1


def pages_sent(server: FakeOcrSpace, count: int) -> collections.Counter[int]:
    """How many requests the server counted for each page."""
    return collections.Counter(page_of(request, count) for request in server.requests)


def whole_text(count: int) -> str:
    return "\f".join([SERVER_TEXT + "\n"] * count)


@pytest.fixture
def server() -> Iterator[FakeOcrSpace]:
    with FakeOcrSpace(mode="text", text=SERVER_TEXT, api_key=KEY, latency=LATENCY) as fake:
        yield fake


@pytest.fixture
def make_daemon(
    tmp_path: Path, inbox: Path, server: FakeOcrSpace
) -> Iterator[Callable[..., DaemonProcess]]:
    """Build a daemon reading ``inbox`` through ``server`` one request at a time."""
    daemons = Daemons(tmp_path, env={"OCRSPACE_API_KEY": KEY})

    def make(inbox_options: dict[str, Any] | None = None, **top: Any) -> DaemonProcess:
        config = daemon_config(
            server.url,
            [{"path": str(inbox), **(inbox_options or {})}],
            state_dir=tmp_path / "state",
            workers=1,
            ocrspace={"timeout": 10 * LATENCY},
            **top,
        )
        return daemons.make(config)

    yield make
    daemons.close()


def test_a_pdf_written_slowly_is_read_once_when_whole(
    make_daemon: Callable[..., DaemonProcess], inbox: Path, server: FakeOcrSpace
) -> None:
    """A scanner writing a PDF in parts, pausing longer than the quiet period: read once, whole, a request per page."""
    count = 3
    data = document(count)
    daemon = make_daemon({"settle_seconds": SETTLE}).start()
    target = inbox / "slow.pdf"
    step = len(data) // 5 + 1
    with target.open("wb") as handle:
        for start in range(0, len(data), step):
            handle.write(data[start : start + step])
            handle.flush()
            time.sleep(WRITE_PAUSE)  # the writer's own pace, not a wait for the daemon
    wait_until(lambda: finished(target), DONE_TIMEOUT, message="the slow PDF's sidecars")
    assert 0 == daemon.stop()

    assert {1: 1, 2: 1, 3: 1} == dict(pages_sent(server, count))
    record = done_record(target)
    assert (len(data), count, []) == (
        record["source"]["size"],
        record["document"]["pages"],
        record["failed_pages"],
    )
    assert whole_text(count) == record["text"]


def interrupted_after_two_pages(daemon: DaemonProcess, server: FakeOcrSpace) -> None:
    """Wait until two pages are answered and kept and the third is in flight."""
    wait_until(
        lambda: len(server.requests) >= 2 and server.in_flight >= 1,
        DONE_TIMEOUT,
        message="two pages answered and a third sent",
    )
    answered = server.requests[1].received_at + LATENCY
    wait_until(lambda: time.time() >= answered + ANSWER_KEPT, message="the second page kept")
    assert daemon.process is not None and daemon.process.poll() is None, daemon.log()[-3000:]


def test_sigkill_mid_document_resends_only_the_page_in_flight(
    make_daemon: Callable[..., DaemonProcess], inbox: Path, server: FakeOcrSpace
) -> None:
    """Killed during page 3 of 6, then restarted: pages 1 and 2 are not sent again, and the record is whole."""
    count = 6
    target = inbox / "six.pdf"
    target.write_bytes(document(count))
    daemon = make_daemon().start()
    interrupted_after_two_pages(daemon, server)
    in_flight = server.in_flight
    before = pages_sent(server, count)
    daemon.kill()
    assert not finished(target), "the kill came too late to interrupt the document"

    daemon.start()
    wait_until(lambda: finished(target), DONE_TIMEOUT, message="the document after the restart")
    assert 0 == daemon.stop()

    sent = pages_sent(server, count)
    assert {1: 1, 2: 1} == {number: sent[number] for number in before}, sent
    assert set(range(1, count + 1)) == set(sent), sent
    assert sum(sent.values()) <= count + in_flight, sent
    record = done_record(target)
    assert (["done"] * count, []) == (
        [entry["status"] for entry in record["pages"]],
        record["failed_pages"],
    )
    assert whole_text(count) == record["text"]


def test_sigterm_mid_document_resumes_without_resending_a_page(
    make_daemon: Callable[..., DaemonProcess], inbox: Path, server: FakeOcrSpace
) -> None:
    """Stopped during page 3 of 6 with too little drain time to finish: the restart sends only the rest."""
    count = 6
    target = inbox / "six.pdf"
    target.write_bytes(document(count))
    # Two seconds let the page in flight finish, not the three pages after it.
    daemon = make_daemon(shutdown_timeout=2 * LATENCY).start()
    interrupted_after_two_pages(daemon, server)
    assert 0 == daemon.stop()  # SIGTERM, then wait for the drain
    in_flight = server.in_flight
    before = pages_sent(server, count)
    assert not finished(target), "the drain finished the document: nothing was left to resume"

    daemon.start()
    wait_until(lambda: finished(target), DONE_TIMEOUT, message="the document after the restart")
    assert 0 == daemon.stop()

    sent = pages_sent(server, count)
    assert {number: 1 for number in before} == {number: sent[number] for number in before}, sent
    assert set(range(1, count + 1)) == set(sent), sent
    assert sum(sent.values()) <= count + in_flight, sent
    record = done_record(target)
    assert ["done"] * count == [entry["status"] for entry in record["pages"]]
    assert whole_text(count) == record["text"]


def test_status_shows_how_far_a_long_document_is(
    make_daemon: Callable[..., DaemonProcess], inbox: Path, server: FakeOcrSpace, tmp_path: Path
) -> None:
    """`ocrwatch status` names the document being read and its pages done of all; then it is gone."""
    count = 8
    target = inbox / "long.pdf"
    target.write_bytes(document(count))
    daemon = make_daemon().start()
    progress = re.compile(rf"reading {re.escape(str(target))}: (\d+) of {count} pages done")

    def status() -> str:
        config = str(daemon.config_path)
        return ocrwatch("status", "-c", config, cwd=tmp_path, env={"OCRSPACE_API_KEY": KEY}).stdout

    seen: list[int] = []

    def shows_progress() -> bool:
        found = progress.search(status())
        if found:
            seen.append(int(found.group(1)))
        return bool(found) and 0 < seen[-1] < count

    wait_until(shows_progress, DONE_TIMEOUT, message="status showing the document's pages")
    wait_until(lambda: finished(target), DONE_TIMEOUT, message="the long document")
    assert 0 == daemon.stop()
    assert not progress.search(status()), "a finished document is still shown as being read"
