"""What waiting files will cost in ocr.space requests: per file, per inbox in ``ocrwatch check``."""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path
from typing import Any

import pikepdf
import pytest

from ocrwatch import cli, once, quota
from ocrwatch.config import load_config
from ocrwatch.engines.base import OcrEngine
from ocrwatch.plan import make_plan
from tests.support import pdfs
from tests.support.commands import KEY
from tests.support.fake_engine import FakeEngine
from tests.support.plans import plan_for, write_config_with_folders
from tests.support.render import page

REGIONS = {
    "date": {"x": "60%", "y": 0, "width": "40%", "height": "30%"},
    "total": {"x": 0, "y": "-30%", "width": "50%"},
}


def scans(folder: Path, *names: str) -> list[Path]:
    image, _ = page(["a page"], size=(300, 100))
    for name in names:
        image.save(folder / name)
    return [folder / name for name in names]


def cost(path: Path, data: bytes, **inbox: Any) -> quota.FileCost | None:
    """What ``data`` costs as ``path.name`` in an inbox ``path.parent/in`` with ``inbox``'s options."""
    plan = plan_for(path.parent, **inbox).inboxes[0]
    target = plan.path / path.name
    target.write_bytes(data)
    return quota.file_cost(target, plan)


def png() -> bytes:
    image, _ = page(["a page"], size=(300, 100))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def scanned_pdf(*, pages: int, invisible_text: bool = False) -> bytes:
    image, words = page(["a scanned page"], size=(600, 200))
    return pdfs.scanned(image, dpi=200, pages=pages, words=words if invisible_text else ())


def mixed_pdf(*, digital: int, scanned: int) -> bytes:
    """``digital`` pages of visible text, then ``scanned`` pages that are only an image."""
    pdf = pikepdf.new()
    for data, count in ((pdfs.born_digital(["typed"]), digital), (scanned_pdf(pages=1), scanned)):
        with pikepdf.open(io.BytesIO(data)) as source:
            for _ in range(count):
                pdf.pages.append(source.pages[0])
    return pdfs.save(pdf)


def tiff(*, pages: int) -> bytes:
    image, _ = page(["a fed page"], size=(300, 100))
    buffer = io.BytesIO()
    image.save(buffer, "TIFF", save_all=True, append_images=[image] * (pages - 1))
    return buffer.getvalue()


def test_an_image_costs_one_request(tmp_path: Path) -> None:
    """A whole image is one page and one ocr.space request."""
    assert quota.FileCost(pages=1, requests=1) == cost(tmp_path / "a.png", png())


def test_a_crop_alone_still_costs_one_request(tmp_path: Path) -> None:
    """A crop without regions is read in one request."""
    assert quota.FileCost(pages=1, requests=1) == cost(
        tmp_path / "a.png", png(), crop={"left": "40%"}
    )


def test_regions_cost_one_request_each(tmp_path: Path) -> None:
    """With regions, each region is a request and the whole image none."""
    found = cost(tmp_path / "a.png", png(), crop={"left": "10%"}, regions=REGIONS)
    assert quota.FileCost(pages=1, requests=2) == found


def test_the_local_engine_costs_no_request(tmp_path: Path) -> None:
    """Files of an inbox on the local engine cost no ocr.space request, regions or not."""
    found = cost(tmp_path / "a.png", png(), engine="tesseract", regions=REGIONS)
    assert quota.FileCost(pages=1, requests=0) == found


def test_a_file_gone_before_it_is_counted_costs_nothing(tmp_path: Path) -> None:
    """A waiting file deleted since it was listed is not counted at all."""
    inbox = plan_for(tmp_path).inboxes[0]
    assert quota.file_cost(inbox.path / "gone.pdf", inbox) is None


def test_each_scanned_pdf_page_costs_a_request_per_region(tmp_path: Path) -> None:
    """A scanned PDF's pages have no text: each is read, one request per region."""
    assert quota.FileCost(pages=3, requests=3) == cost(tmp_path / "a.pdf", scanned_pdf(pages=3))
    found = cost(tmp_path / "b.pdf", scanned_pdf(pages=3), regions=REGIONS)
    assert quota.FileCost(pages=3, requests=6) == found


def test_a_pdf_is_told_by_its_content_not_its_name(tmp_path: Path) -> None:
    """A PDF named like an image is counted page by page."""
    assert quota.FileCost(pages=2, requests=2) == cost(tmp_path / "a.png", scanned_pdf(pages=2))


@pytest.mark.parametrize(("text_layer", "requests"), [("skip", 0), ("redo", 0), ("force", 1)])
def test_a_born_digital_page_costs_a_request_only_when_forced(
    tmp_path: Path, text_layer: str, requests: int
) -> None:
    """A page of visible text uses that text unless ``text_layer: force``."""
    found = cost(tmp_path / "a.pdf", pdfs.born_digital(["typed"]), pdf={"text_layer": text_layer})
    assert quota.FileCost(pages=1, requests=requests) == found


@pytest.mark.parametrize(("text_layer", "requests"), [("skip", 0), ("redo", 2), ("force", 2)])
def test_an_invisible_text_layer_is_read_again_with_redo_or_force(
    tmp_path: Path, text_layer: str, requests: int
) -> None:
    """Pages whose only text is an invisible layer (an earlier OCR) cost nothing with ``skip``."""
    data = scanned_pdf(pages=2, invisible_text=True)
    found = cost(tmp_path / "a.pdf", data, pdf={"text_layer": text_layer})
    assert quota.FileCost(pages=2, requests=requests) == found


def test_a_long_pdf_is_estimated_from_pages_spread_over_it(tmp_path: Path) -> None:
    """Past the sample size, the share of pages without text is taken from pages spread evenly."""
    assert 30 > 2 * quota.TEXT_SAMPLE_PAGES
    data = mixed_pdf(digital=15, scanned=15)
    assert quota.FileCost(pages=30, requests=15) == cost(tmp_path / "a.pdf", data)


def test_pdfs_on_the_local_engine_count_pages_but_no_request(tmp_path: Path) -> None:
    """The local engine reads every page for free; the pages are still counted."""
    found = cost(tmp_path / "a.pdf", scanned_pdf(pages=3), engine="tesseract")
    assert quota.FileCost(pages=3, requests=0) == found


def test_an_encrypted_pdf_without_its_password_cannot_be_opened(tmp_path: Path) -> None:
    """Without ``pdf.password_file`` an encrypted PDF costs nothing and says why."""
    data = pdfs.encrypted(scanned_pdf(pages=2), user="secret", owner="boss")
    found = cost(tmp_path / "a.pdf", data)
    assert found is not None
    assert (0, 0) == (found.pages, found.requests)
    assert "encrypted" in (found.problem or "")


def test_an_encrypted_pdf_is_counted_with_the_inboxs_password(tmp_path: Path) -> None:
    """The password from ``pdf.password_file`` opens the PDF, and its pages are counted."""
    secret = tmp_path / "pdf-password"
    secret.write_text("secret\n")
    data = pdfs.encrypted(scanned_pdf(pages=2), user="secret", owner="boss")
    found = cost(tmp_path / "a.pdf", data, pdf={"password_file": str(secret)})
    assert quota.FileCost(pages=2, requests=2) == found


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (pdfs.broken(), "not a readable PDF"),
        (pdfs.blank(3), "PDF has 3 pages, more than the limit of 2"),
    ],
    ids=["broken", "over max_pages"],
)
def test_a_pdf_that_cannot_be_opened_costs_nothing(
    tmp_path: Path, data: bytes, problem: str
) -> None:
    """A broken PDF, or one over ``pdf.max_pages``, will fail before any request."""
    found = cost(tmp_path / "a.pdf", data, pdf={"max_pages": 2})
    assert found is not None
    assert (0, 0, True) == (found.pages, found.requests, problem in (found.problem or ""))


def test_each_page_of_a_multipage_tiff_costs_a_request_per_region(tmp_path: Path) -> None:
    """Every page of a TIFF is read; a single-page TIFF is one page."""
    assert quota.FileCost(pages=3, requests=3) == cost(tmp_path / "a.tif", tiff(pages=3))
    found = cost(tmp_path / "b.tif", tiff(pages=3), regions=REGIONS)
    assert quota.FileCost(pages=3, requests=6) == found
    assert quota.FileCost(pages=1, requests=1) == cost(tmp_path / "c.tif", tiff(pages=1))


def test_a_tiff_over_max_pages_costs_nothing(tmp_path: Path) -> None:
    """A TIFF with more pages than ``pdf.max_pages`` is refused unread."""
    found = cost(tmp_path / "a.tif", tiff(pages=3), pdf={"max_pages": 2})
    assert found is not None
    assert (0, 0, True) == (found.pages, found.requests, "limit of 2" in (found.problem or ""))


def test_a_backlog_of_images_keeps_its_short_wording() -> None:
    """One page per file: pages go unsaid."""
    backlog = quota.Backlog(files=3, pages=3, requests=6)
    assert "3 files waiting, about 6 ocr.space requests" == backlog.describe(waiting=True)


def test_a_backlog_with_documents_names_its_pages() -> None:
    """Files, pages and requests, in one line."""
    backlog = quota.Backlog(files=3, pages=12, requests=11)
    assert "3 files waiting (12 pages), about 11 ocr.space requests" == backlog.describe(
        waiting=True
    )
    local = quota.Backlog(files=2, pages=7, local_files=2)
    assert "2 files (7 pages; local engine, no quota)" == local.describe()


def test_a_backlog_counts_documents_that_cannot_be_opened_apart(tmp_path: Path) -> None:
    """Added file by file, an unopenable PDF is a file without pages or requests, said at the end."""
    inbox = plan_for(tmp_path).inboxes[0]
    (inbox.path / "scan.pdf").write_bytes(scanned_pdf(pages=3))
    (inbox.path / "locked.pdf").write_bytes(
        pdfs.encrypted(scanned_pdf(pages=2), user="secret", owner="boss")
    )
    (inbox.path / "a.png").write_bytes(png())
    backlog = quota.count(inbox)
    assert (
        "3 files (4 pages), about 4 ocr.space requests; 1 cannot be opened (no requests)"
        == backlog.describe()
    )
    assert [inbox.path / "locked.pdf"] == [path for path, _ in backlog.unreadable]


@pytest.mark.parametrize(
    ("inbox", "described"),
    [
        (
            {"pdf": {"text_layer": "redo", "max_pages": 20}},
            "PDF and multi-page TIFF, every page (up to 20 pages); PDF text layer: redo (pages "
            "with visible text use it; those whose only text is invisible are OCR'd)",
        ),
        (
            {"patterns": ["invoice-*.PDF"]},
            "PDF, every page (up to 500 pages); "
            "PDF text layer: skip (pages with text use it, no OCR)",
        ),
        ({"patterns": ["*.jpg"]}, "none (PDFs and TIFFs not matched by patterns)"),
    ],
    ids=["redo", "pdf only", "no documents"],
)
def test_check_states_how_an_inbox_reads_documents(
    tmp_path: Path, inbox: dict[str, Any], described: str
) -> None:
    """The documents an inbox takes by its patterns, its page limit and its text layer rule."""
    assert described == quota.describe_documents(plan_for(tmp_path, **inbox).inboxes[0])


def test_check_names_the_password_file_but_not_the_password(tmp_path: Path) -> None:
    """An inbox with a PDF password says where it comes from."""
    secret = tmp_path / "pdf-password"
    secret.write_text("hunter2\n")
    described = quota.describe_documents(
        plan_for(tmp_path, pdf={"password_file": str(secret)}).inboxes[0]
    )
    assert (True, False) == (
        described.endswith(f"; password from {secret}"),
        "hunter2" in described,
    )


def test_a_count_cut_short_says_at_least() -> None:
    """A backlog counted only in part says so."""
    backlog = quota.Backlog(files=3, pages=3, requests=3, partial=True)
    assert "at least 3 files waiting, about 3 ocr.space requests" == backlog.describe(waiting=True)


def test_check_counts_what_waits_and_its_requests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Done, touched-but-identical and failed-before files are not counted; new ones cost a request per region."""
    config = write_config_with_folders(
        tmp_path,
        {
            "engine": "ocrspace",
            "state_dir": str(tmp_path / "state"),
            "inboxes": [
                {"path": "scans", "regions": REGIONS},
                {"path": "local", "engine": "tesseract"},
            ],
        },
    )
    scans_folder, local_folder = tmp_path / "scans", tmp_path / "local"
    done, touched = scans(scans_folder, "done.png", "touched.png")
    (scans_folder / "broken.png").write_bytes(b"not an image")
    plan = make_plan(load_config(config), env={"OCRSPACE_API_KEY": KEY})

    def factory(name: str, workers: int, stop: threading.Event) -> OcrEngine:
        return FakeEngine()

    report = once.run_once(plan, once.collect(plan), engine_factory=factory)
    assert {"done.png": "done", "touched.png": "done", "broken.png": "failed"} == {
        outcome.path.name: outcome.status.value for outcome in report.outcomes
    }
    stat = touched.stat()
    os.utime(touched, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    scans(scans_folder, "new1.png", "new2.png", "new3.png")
    scans(local_folder, "new.png")
    monkeypatch.setenv("OCRSPACE_API_KEY", KEY)

    assert 0 == cli.main(["check", "-c", str(config)])

    lines = capsys.readouterr().out.splitlines()
    assert [
        "  waiting:   3 files, about 6 ocr.space requests",
        "  waiting:   1 file (local engine, no quota)",
        "waiting in all: 4 files, about 6 ocr.space requests (1 on the local engine, no quota)",
    ] == [line for line in lines if "waiting" in line]
    assert done.with_name("done.png.json").exists()


@pytest.mark.parametrize(("pages", "requests"), [(3, 1), (4, 4)])
def test_a_short_pdf_sent_whole_costs_one_request(
    tmp_path: Path, pages: int, requests: int
) -> None:
    """With pdf_upload: document a PDF within pdf_page_limit is one request; a longer one goes page by page."""
    config = {
        "engine": "ocrspace",
        "ocrspace": {"pdf_upload": "document", "pdf_page_limit": 3},
        "inboxes": [{"path": str(tmp_path / "in")}],
    }
    plan = make_plan(
        load_config(write_config_with_folders(tmp_path, config)), env={"OCRSPACE_API_KEY": KEY}
    )
    target = tmp_path / "in" / "letter.pdf"
    target.write_bytes(scanned_pdf(pages=pages))
    assert quota.FileCost(pages=pages, requests=requests) == quota.file_cost(
        target, plan.inboxes[0]
    )
