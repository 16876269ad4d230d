"""Output formats through the real daemon and the fake ocr.space: every file written, a format
added later written without a request, and ocrwatch's own searchable PDF never read as input."""

from __future__ import annotations

import hashlib
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
from tests.support.poppler import pdftotext
from tests.support.render import page
from tests.support.rig import KEY, daemon_config
from tests.support.verdicts import done_record, finished
from tests.support.waiting import wait_until

DONE_TIMEOUT = 60


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
    """Two scanned pages, as a scanner writes them: a JPEG each, nothing else (so PDF/A can be
    made of it)."""
    pdf = pikepdf.new()
    for words in (["Invoice 1024", "Total 12.50"], ["Thank you", "Page two"]):
        image, _ = page(words, size=(600, 300), font_size=36)
        pdfs.add_image_page(pdf, pdfs.jpeg_image(pdf, image), dpi=200)
    for added in pdf.pages:
        if "/Font" in added.obj.Resources:
            del added.obj.Resources["/Font"]  # the helper's unused Helvetica, never embedded
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


def test_its_own_searchable_pdf_is_not_read_but_a_users_x_ocr_pdf_is(
    make_daemon: Callable[..., DaemonProcess], inbox: Path, server: FakeOcrSpace
) -> None:
    """The daemon sees scan.pdf.ocr.pdf appear in its inbox and leaves it; a user's own
    letter.ocr.pdf is read; the searchable PDF has the scan's text where its words are."""
    document = inbox / "invoice.pdf"
    document.write_bytes(two_page_pdf())
    daemon = make_daemon(formats=["txt", "json", "pdf"]).start()
    ours = SidecarPaths.of(document).pdf
    wait_until(lambda: finished(document), DONE_TIMEOUT, message="the invoice's sidecars")
    mine = inbox / "letter.ocr.pdf"
    mine.write_bytes(two_page_pdf())
    wait_until(lambda: finished(mine), DONE_TIMEOUT, message="the user's .ocr.pdf read")
    daemon.stop()
    assert 4 == len(server.requests)  # two pages each: nothing of ours read back
    assert not finished(ours) and not SidecarPaths.of(ours).text.exists()
    entry = listed(document)["pdf"]
    assert (ours.stat().st_size, "2b") == (entry["size"], entry["pdfa"])
    with pikepdf.open(ours) as pdf, pikepdf.open(document) as original:
        assert len(original.pages) == len(pdf.pages)
    text = pdftotext(ours)
    assert "Invoice" in text and "Thank" in text
