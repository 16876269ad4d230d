"""Output formats through the real daemon and the fake ocr.space: every file written, a format
added later written without a request, and ocrwatch's own searchable PDF never read as input."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pikepdf
import pytest
from lxml import etree

from ocrwatch.sidecar import SidecarPaths
from tests.support import pdfs
from tests.support.daemon import DaemonProcess, Daemons
from tests.support.ocrspace_server import FakeOcrSpace
from tests.support.render import page
from tests.support.rig import KEY, daemon_config
from tests.support.verdicts import done_record, finished
from tests.support.waiting import wait_until

DONE_TIMEOUT = 60


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    folder = tmp_path / "inbox"
    folder.mkdir()
    return folder


@pytest.fixture
def server() -> Iterator[FakeOcrSpace]:
    with FakeOcrSpace(api_key=KEY) as fake:  # reads uploads with Tesseract: real word boxes
        yield fake


@pytest.fixture
def make_daemon(
    tmp_path: Path, inbox: Path, server: FakeOcrSpace
) -> Iterator[Callable[..., DaemonProcess]]:
    daemons = Daemons(tmp_path, env={"OCRSPACE_API_KEY": KEY})

    def make(**inbox_options: Any) -> DaemonProcess:
        config = daemon_config(
            server.url,
            [{"path": str(inbox), "settle_seconds": 0.2, **inbox_options}],
            state_dir=tmp_path / "state",
        )
        return daemons.make(config)

    yield make
    daemons.close()


def two_page_pdf() -> bytes:
    pdf = pikepdf.new()
    for words in (["Invoice 1024", "Total 12.50"], ["Thank you", "Page two"]):
        image, _ = page(words, size=(600, 300), font_size=36)
        part = pikepdf.open(io.BytesIO(pdfs.scanned(image, dpi=200)))
        pdf.pages.extend(part.pages)
    return pdfs.save(pdf)


def receipt(path: Path) -> Path:
    page(["Coffee 3.20", "Total 3.20"], size=(500, 200), font_size=36)[0].save(path)
    return path


def listed(path: Path) -> dict[str, dict[str, Any]]:
    return {entry["format"]: entry for entry in done_record(path)["outputs"]}


def test_every_format_is_written_and_a_format_added_later_costs_no_request(
    make_daemon: Callable[..., DaemonProcess], inbox: Path, server: FakeOcrSpace
) -> None:
    image = receipt(inbox / "receipt.png")
    document = inbox / "invoice.pdf"
    document.write_bytes(two_page_pdf())
    daemon = make_daemon(formats=["txt", "json", "hocr"]).start()
    wait_until(lambda: finished(image) and finished(document), DONE_TIMEOUT, message="sidecars")
    assert 0 == daemon.stop()
    assert 3 == len(server.requests)  # one per page
    for path in (image, document):
        files = listed(path)
        assert {"txt", "hocr"} == set(files)
        hocr = SidecarPaths.of(path).hocr
        assert hashlib.sha256(hocr.read_bytes()).hexdigest() == files["hocr"]["sha256"]
    hocr_pages = etree.parse(str(SidecarPaths.of(document).hocr)).xpath("//*[@class='ocr_page']")
    assert 2 == len(hocr_pages)

    daemon = make_daemon(formats=["txt", "json", "hocr", "alto"]).start()
    alto = [SidecarPaths.of(path).alto for path in (image, document)]
    wait_until(lambda: all(path.exists() for path in alto), DONE_TIMEOUT, message="ALTO files")
    wait_until(
        lambda: all("alto" in listed(path) for path in (image, document)),
        DONE_TIMEOUT,
        message="the records listing the ALTO files",
    )
    assert 0 == daemon.stop()
    assert 3 == len(server.requests), "adding a format sent a request"
    assert "Invoice" in alto[1].read_text()
    assert "added" in daemon.log() or "without OCR" in daemon.log()
