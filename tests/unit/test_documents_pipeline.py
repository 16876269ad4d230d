"""Documents through the pipeline, in process, with a fake engine: pages, partial results, resume, upgrades.

The fake engine names each request after the file and page (``scan``,
``scan-p2``, ``scan-p3``), so a test can fail one page and count exactly
which pages were read.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import pikepdf
import pytest

from ocrwatch import current, sidecar
from ocrwatch.current import FileFacts
from ocrwatch.engines.base import OcrRequest, OcrResult
from ocrwatch.errors import BadInputError, RateLimitError
from ocrwatch.outcome import Status
from ocrwatch.pipeline import process_file
from ocrwatch.plan import InboxPlan
from ocrwatch.sidecar import SidecarPaths
from ocrwatch.store import StateStore
from tests.support import pdfs
from tests.support.fake_engine import FakeEngine
from tests.support.plans import plan_for
from tests.support.records import legacy_record
from tests.support.render import page


def scanned_pdf(path: Path, pages: int = 3) -> Path:
    """A PDF of ``pages`` scanned pages, each a small JPEG at 150 dpi."""
    pdf = pikepdf.new()
    for number in range(pages):
        image, _ = page([f"page {number + 1}"], size=(300, 200), font_size=24)
        pdfs.add_image_page(pdf, pdfs.jpeg_image(pdf, image), dpi=150)
    path.write_bytes(pdfs.save(pdf))
    return path


def engine(**failures: BaseException) -> FakeEngine:
    fake = FakeEngine(failures={name.replace("_", "-"): error for name, error in failures.items()})
    fake.page_workers = 1  # pages in order, so a failure stops the pages after it
    return fake


def record_of(path: Path) -> dict:
    return json.loads(SidecarPaths.of(path).result.read_text())


@pytest.fixture
def inbox(tmp_path: Path) -> InboxPlan:
    return plan_for(tmp_path).inboxes[0]


def test_every_page_is_read_and_the_text_has_a_form_feed_between_pages(inbox: InboxPlan) -> None:
    """Three pages, three requests; the .txt joins them with form feeds; the .json lists them."""
    path = scanned_pdf(inbox.path / "scan.pdf")
    fake = engine()
    outcome = process_file(path, inbox, fake)
    assert Status.DONE == outcome.status
    assert ["scan", "scan-p2", "scan-p3"] == fake.calls
    assert "text of scan\n\ftext of scan-p2\n\ftext of scan-p3\n" == (
        SidecarPaths.of(path).text.read_text()
    )
    record = record_of(path)
    assert (3, "done", {"format": "PDF", "pages": 3, "frames": 3}, []) == (
        record["schema_version"],
        record["status"],
        record["document"],
        record["failed_pages"],
    )
    assert [1, 2, 3] == [entry["number"] for entry in record["pages"]]
    first = record["pages"][0]
    # 300 x 200 pixels placed at 150 dpi, rendered at the 200 dpi floor: 400 x 267.
    assert ("ocr", 400, 267, [200.0, 200.0]) == (
        first["text_source"],
        first["image"]["width"],
        first["image"]["height"],
        first["image"]["dpi"],
    )
    # Page pixels to points: 72/200 of a point per pixel, y turned up from the page's top.
    assert pytest.approx(0.36) == first["to_points"]["a"]
    assert pytest.approx(-0.36, rel=0.01) == first["to_points"]["e"]


def test_a_page_that_fails_for_good_leaves_a_partial_document(inbox: InboxPlan) -> None:
    """Page 2 refused as bad input: pages 1 and 3 are kept, the file is partial, with an error sidecar."""
    path = scanned_pdf(inbox.path / "scan.pdf")
    outcome = process_file(path, inbox, engine(scan_p2=BadInputError("E301: page unreadable")))
    assert (Status.PARTIAL, "bad_input") == (outcome.status, outcome.classification)
    record = record_of(path)
    assert ("partial", [2]) == (record["status"], record["failed_pages"])
    assert ["done", "failed", "done"] == [entry["status"] for entry in record["pages"]]
    assert "E301" in record["pages"][1]["error"]["message"]
    # The page opened before it failed: its size is kept, so output formats keep its place.
    assert (400, 267) == (
        record["pages"][1]["image"]["width"],
        record["pages"][1]["image"]["height"],
    )
    assert "text of scan\n\f\ftext of scan-p3\n" == SidecarPaths.of(path).text.read_text()
    failure = json.loads(SidecarPaths.of(path).error.read_text())
    assert ("partial", [2]) == (failure["status"], failure["failed_pages"])
    assert "1 of 3 pages failed" in failure["error"]["message"]


def test_a_partial_document_is_current_until_it_is_retried_then_only_its_failed_page_is_read(
    inbox: InboxPlan,
) -> None:
    """Partial counts as finished; with its error sidecar removed (`retry`) only page 2 is read again."""
    path = scanned_pdf(inbox.path / "scan.pdf")
    process_file(path, inbox, engine(scan_p2=BadInputError("E301: page unreadable")))
    again = engine()
    assert Status.KNOWN_PARTIAL == process_file(path, inbox, again).status
    assert [] == again.calls
    SidecarPaths.of(path).error.unlink()  # what `ocrwatch retry` does
    retried = engine()
    assert Status.DONE == process_file(path, inbox, retried).status
    assert ["scan-p2"] == retried.calls
    assert "text of scan\n\ftext of scan-p2\n\ftext of scan-p3\n" == (
        SidecarPaths.of(path).text.read_text()
    )
    assert not SidecarPaths.of(path).error.exists()


def test_an_interrupted_document_resumes_with_the_pages_still_missing(
    inbox: InboxPlan, tmp_path: Path
) -> None:
    """A rate-limit pause on page 3 defers the file; the next try reads page 3 only."""
    store = StateStore(tmp_path / "state")
    path = scanned_pdf(inbox.path / "scan.pdf")
    paused = engine(scan_p3=RateLimitError("too many requests", retry_after=60))
    outcome = process_file(path, inbox, paused, resume=store)
    assert (Status.DEFERRED, ["scan", "scan-p2", "scan-p3"]) == (outcome.status, paused.calls)
    assert not SidecarPaths.of(path).result.exists()
    resumed = engine()
    assert Status.DONE == process_file(path, inbox, resumed, resume=store).status
    assert ["scan-p3"] == resumed.calls
    assert "text of scan\n\ftext of scan-p2\n\ftext of scan-p3\n" == (
        SidecarPaths.of(path).text.read_text()
    )
    key = f"{inbox.rules.fingerprint}/{inbox.rules.pdf_fingerprint}"
    assert {} == store.saved_pages(path, hashlib.sha256(path.read_bytes()).hexdigest(), key)


def test_pages_kept_for_other_bytes_are_not_used(inbox: InboxPlan, tmp_path: Path) -> None:
    """A file changed between tries is read whole: kept pages belong to the bytes they came from."""
    store = StateStore(tmp_path / "state")
    path = scanned_pdf(inbox.path / "scan.pdf")
    process_file(path, inbox, engine(scan_p3=RateLimitError("pause", retry_after=60)), resume=store)
    scanned_pdf(path, pages=4)
    fresh = engine()
    assert Status.DONE == process_file(path, inbox, fresh, resume=store).status
    assert ["scan", "scan-p2", "scan-p3", "scan-p4"] == fresh.calls


def test_a_document_whose_every_page_fails_fails_as_a_whole(inbox: InboxPlan) -> None:
    """No page read: an error sidecar, no .json."""
    path = scanned_pdf(inbox.path / "scan.pdf", pages=2)
    refused = BadInputError("E301: page unreadable")
    outcome = process_file(path, inbox, engine(scan=refused, scan_p2=refused))
    assert (Status.FAILED, "bad_input") == (outcome.status, outcome.classification)
    assert not SidecarPaths.of(path).result.exists()
    assert (
        "every page failed"
        in json.loads(SidecarPaths.of(path).error.read_text())["error"]["message"]
    )


def test_text_a_page_carries_is_used_unless_the_inbox_forces_ocr(tmp_path: Path) -> None:
    """A born-digital page costs no request under `skip`; `force` reads it."""
    lines = ["Invoice 4711", "Total 12.50 EUR"]
    skip = plan_for(tmp_path / "a").inboxes[0]
    path = skip.path / "born.pdf"
    path.write_bytes(pdfs.born_digital(lines))
    fake = engine()
    assert Status.DONE == process_file(path, skip, fake).status
    assert [] == fake.calls
    record = record_of(path)
    result = record["pages"][0]["results"][0]
    assert ("embedded", 0) == (record["pages"][0]["text_source"], record["requests"])
    assert "Invoice 4711\nTotal 12.50 EUR\n" == SidecarPaths.of(path).text.read_text()
    assert ["Invoice", "4711", "Total", "12.50", "EUR"] == [
        word["text"] for word in result["words"]
    ]
    assert [0, 0, 1, 1, 1] == [word["line"] for word in result["words"]]
    # 12 pt Helvetica at 300 dpi: the words are about 50 pixels high, left edge at 1 inch.
    first = result["words"][0]
    assert first["left"] == pytest.approx(300, abs=2)
    assert 40 < first["height"] < 70
    force = plan_for(tmp_path / "b", pdf={"text_layer": "force"}).inboxes[0]
    forced_path = force.path / "born.pdf"
    forced_path.write_bytes(path.read_bytes())
    forced = engine()
    assert Status.DONE == process_file(forced_path, force, forced).status
    assert ["born"] == forced.calls


def test_regions_of_an_embedded_page_take_the_words_inside_them(tmp_path: Path) -> None:
    """A region on a born-digital page gets the words whose centres lie in it."""
    inbox = plan_for(
        tmp_path, regions={"head": {"x": 0, "y": 0, "width": "100%", "height": 300}}
    ).inboxes[0]
    path = inbox.path / "born.pdf"
    # Baselines at 720 and 702 points from the bottom: 72 and 90 points from the top.
    path.write_bytes(pdfs.born_digital(["Invoice 4711", "Total 12.50 EUR"]))
    assert Status.DONE == process_file(path, inbox, engine()).status
    assert "[head]\nInvoice 4711\n" == SidecarPaths.of(path).text.read_text()


def test_changing_the_pdf_options_reads_pdfs_again_but_not_images(tmp_path: Path) -> None:
    """text_layer shapes a PDF's result only: an image's sidecar stays current."""
    before = plan_for(tmp_path).inboxes[0]
    pdf = scanned_pdf(before.path / "scan.pdf", pages=1)
    image = before.path / "photo.png"
    page(["a photo"], size=(300, 200))[0].save(image)
    process_file(pdf, before, engine())
    process_file(image, before, engine())
    after = plan_for(tmp_path, pdf={"text_layer": "force"}).inboxes[0]
    assert current.verdict(image, after, facts(image)) is not None
    assert current.verdict(pdf, after, facts(pdf)) is None


def facts(path: Path) -> FileFacts:
    data = path.read_bytes()
    info = path.stat()
    return FileFacts(
        info.st_size, info.st_mtime_ns, info.st_ctime_ns, sha256=hashlib.sha256(data).hexdigest()
    )


@pytest.mark.parametrize("overlay", [False, True])
def test_a_version_1_sidecar_of_an_image_stays_current(inbox: InboxPlan, overlay: bool) -> None:
    """Upgrading must not send an image again whose v1 sidecars are current, whatever its overlay."""
    image = inbox.path / "photo.png"
    page(["a photo"], size=(300, 200))[0].save(image)
    process_file(image, inbox, engine())
    paths = SidecarPaths.of(image)
    v1 = legacy_record(
        record_of(image), inbox, overlay=overlay, image={"format": "PNG", "frames": 1}
    )
    paths.result.write_text(json.dumps(v1))
    found = current.verdict(image, inbox, facts(image))
    assert found is not None and "done" == found.status
    again = engine()
    assert Status.SKIPPED == process_file(image, inbox, again).status
    assert [] == again.calls


def test_a_version_1_sidecar_of_a_multi_page_tiff_is_not_current(inbox: InboxPlan) -> None:
    """Version 1 read only a TIFF's first page: the file is read again for the others."""
    image = inbox.path / "pages.tif"
    first, _ = page(["one"], size=(300, 200))
    second, _ = page(["two"], size=(300, 200))
    first.save(image, save_all=True, append_images=[second])
    fake = engine()
    process_file(image, inbox, fake)
    assert ["pages", "pages-p2"] == fake.calls
    paths = SidecarPaths.of(image)
    v1 = legacy_record(
        record_of(image), inbox, overlay=False, image={"format": "TIFF", "frames": 2}
    )
    paths.result.write_text(json.dumps(v1))
    assert current.verdict(image, inbox, facts(image)) is None


def test_records_of_known_versions_load_and_an_unknown_version_does_not(
    inbox: InboxPlan,
) -> None:
    """Readers accept versions 1 to 3; a future version is not taken for current."""
    image = inbox.path / "photo.png"
    page(["a photo"], size=(300, 200))[0].save(image)
    process_file(image, inbox, engine())
    paths = SidecarPaths.of(image)
    assert 3 == (sidecar.load(paths.result) or {})["schema_version"]
    paths.result.write_text(json.dumps({**record_of(image), "schema_version": 2}))
    assert sidecar.load(paths.result) is not None
    paths.result.write_text(json.dumps({**record_of(image), "schema_version": 4}))
    assert sidecar.load(paths.result) is None


def test_a_pdf_over_the_page_limit_is_refused_unread(tmp_path: Path) -> None:
    """More pages than pdf.max_pages: bad input naming both numbers; nothing read."""
    inbox = plan_for(tmp_path, pdf={"max_pages": 5}).inboxes[0]
    path = inbox.path / "many.pdf"
    path.write_bytes(pdfs.blank(6))
    fake = engine()
    outcome = process_file(path, inbox, fake)
    assert (Status.FAILED, "bad_input", []) == (outcome.status, outcome.classification, fake.calls)
    assert "6 pages, more than the limit of 5" in outcome.message


def test_a_pdf_cut_short_waits_and_one_without_its_end_marker_is_read_after_the_deadline(
    inbox: InboxPlan,
) -> None:
    """A truncated PDF is incomplete; one that loads but lacks %%EOF is read once the wait is over."""
    whole = scanned_pdf(inbox.path / "whole.pdf", pages=2).read_bytes()
    cut = inbox.path / "cut.pdf"
    cut.write_bytes(whole[: len(whole) // 2])
    fake = engine()
    outcome = process_file(cut, inbox, fake, give_up=())
    assert (Status.RETRY, "incomplete", []) == (outcome.status, outcome.classification, fake.calls)
    unterminated = inbox.path / "open.pdf"
    end = whole.rindex(b"%%EOF")
    unterminated.write_bytes(whole[:end])
    assert Status.RETRY == process_file(unterminated, inbox, fake, give_up=()).status
    assert [] == fake.calls
    outcome = process_file(unterminated, inbox, fake, give_up={"incomplete"})
    assert Status.DONE == outcome.status
    assert "%%EOF" in record_of(unterminated)["note"]


def test_an_encrypted_pdf_needs_its_password(tmp_path: Path) -> None:
    """Without a password: a permanent, clear failure; with pdf.password_file: read."""
    data = pdfs.encrypted(
        scanned_pdf(tmp_path / "plain.pdf", pages=1).read_bytes(), user="s3cret", owner="o"
    )
    locked = plan_for(tmp_path / "a").inboxes[0]
    path = locked.path / "locked.pdf"
    path.write_bytes(data)
    outcome = process_file(path, locked, engine())
    assert (Status.FAILED, "bad_input") == (outcome.status, outcome.classification)
    assert "encrypted" in outcome.message and "password_file" in outcome.message
    secret = tmp_path / "pdf-password"
    secret.write_text("s3cret\n")
    unlocked = plan_for(tmp_path / "b", pdf={"password_file": str(secret)}).inboxes[0]
    path = unlocked.path / "locked.pdf"
    path.write_bytes(data)
    assert Status.DONE == process_file(path, unlocked, engine()).status


def test_a_shutdown_leaves_the_pages_not_started_for_the_next_start(
    inbox: InboxPlan, tmp_path: Path
) -> None:
    """Stopping during page 1 (the local engine cannot be cut short): page 1 is kept, the rest wait."""
    store = StateStore(tmp_path / "state")
    path = scanned_pdf(inbox.path / "scan.pdf")
    stop = threading.Event()

    class StoppedDuringFirstPage(FakeEngine):
        def recognize(self, request: OcrRequest) -> OcrResult:
            stop.set()
            return super().recognize(request)

    stopping = StoppedDuringFirstPage()
    stopping.page_workers, stopping.stop = 1, stop
    outcome = process_file(path, inbox, stopping, resume=store)
    assert (Status.DEFERRED, ["scan"]) == (outcome.status, stopping.calls)
    restarted = engine()
    assert Status.DONE == process_file(path, inbox, restarted, resume=store).status
    assert ["scan-p2", "scan-p3"] == restarted.calls


@pytest.mark.parametrize("kind", ["pdf", "tiff"])
def test_a_document_written_to_while_its_pages_are_read_is_read_again(
    inbox: InboxPlan, tmp_path: Path, kind: str
) -> None:
    """A document is read from disk, page by page, after it was hashed: a writer appending to
    it meanwhile leaves no sidecar and no kept page, and the next try reads the new bytes."""
    store = StateStore(tmp_path / "state")
    if kind == "pdf":
        path = scanned_pdf(inbox.path / "scan.pdf")
    else:
        path = inbox.path / "scan.tif"
        first, _ = page(["one"], size=(300, 200))
        second, _ = page(["two"], size=(300, 200))
        first.save(path, save_all=True, append_images=[second])

    class AppendedToOnPageTwo(FakeEngine):
        def recognize(self, request: OcrRequest) -> OcrResult:
            if request.name == "scan-p2":
                with path.open("ab") as stream:  # in place: same inode, new mtime and size
                    stream.write(b"\n% appended by a slow writer\n")
            return super().recognize(request)

    writer = AppendedToOnPageTwo()
    writer.page_workers = 1
    outcome = process_file(path, inbox, writer, resume=store, give_up=())
    assert (Status.RETRY, "incomplete") == (outcome.status, outcome.classification)
    assert "written to while its pages were read" in outcome.message
    paths = SidecarPaths.of(path)
    assert not paths.result.exists() and not paths.error.exists()
    old_hash = hashlib.sha256(path.read_bytes()[: -len(b"\n% appended by a slow writer\n")])
    key = f"{inbox.rules.fingerprint}/{inbox.rules.pdf_fingerprint}"
    assert {} == store.saved_pages(path, old_hash.hexdigest(), key)
    settled = engine()
    assert Status.DONE == process_file(path, inbox, settled, resume=store).status
    assert ["scan", "scan-p2"] == settled.calls[:2]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == record_of(path)["source"]["sha256"]
