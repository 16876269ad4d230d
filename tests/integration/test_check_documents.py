"""``ocrwatch check`` on inboxes holding documents: pages, requests, and how each inbox reads them."""

from __future__ import annotations

from pathlib import Path

from tests.support import pdfs
from tests.support.commands import KEY, ocrwatch, write_config
from tests.support.render import page

LABELS = ("  documents:", "  waiting:", "  unreadable:", "waiting in all:")


def scanned(pages: int) -> bytes:
    image, _ = page(["a scanned page"], size=(600, 200))
    return pdfs.scanned(image, dpi=200, pages=pages)


def test_check_counts_document_pages_and_says_how_each_inbox_reads_them(tmp_path: Path) -> None:
    """Scanned pages cost a request each, pages with text none, a locked PDF nothing; each inbox says its PDF rules."""
    docs, forced, images = (tmp_path / name for name in ("docs", "forced", "images"))
    for folder in (docs, forced, images):
        folder.mkdir()
    (docs / "scan.pdf").write_bytes(scanned(3))
    (docs / "typed.pdf").write_bytes(pdfs.born_digital(["an invoice, typed"]))
    (forced / "typed.pdf").write_bytes(pdfs.born_digital(["an invoice, typed"]))
    (forced / "locked.pdf").write_bytes(pdfs.encrypted(scanned(2), user="secret", owner="boss"))
    config = write_config(
        tmp_path,
        {
            "engine": "ocrspace",
            "state_dir": str(tmp_path / "state"),
            "inboxes": [
                {"path": str(docs)},
                {"path": str(forced), "pdf": {"text_layer": "force", "max_pages": 50}},
                {"path": str(images), "patterns": ["*.png", "*.tif"]},
            ],
        },
    )

    result = ocrwatch("check", "-c", str(config), env={"OCRSPACE_API_KEY": KEY})

    assert 0 == result.returncode, result.stderr
    assert [
        "  documents: PDF and multi-page TIFF, every page (up to 500 pages); "
        "PDF text layer: skip (pages with text use it, no OCR)",
        "  waiting:   2 files (4 pages), about 3 ocr.space requests",
        "  documents: PDF and multi-page TIFF, every page (up to 50 pages); "
        "PDF text layer: force (every page OCR'd, its text ignored)",
        "  waiting:   2 files (1 page), about 1 ocr.space request; 1 cannot be opened (no requests)",
        "  unreadable: locked.pdf: PDF is encrypted and needs a password: "
        "set the inbox's pdf.password_file",
        "  documents: multi-page TIFF, every page (up to 500 pages); PDFs not matched by patterns",
        "  waiting:   no files",
        "waiting in all: 4 files (5 pages), about 4 ocr.space requests; "
        "1 cannot be opened (no requests)",
    ] == [line for line in result.stdout.splitlines() if line.startswith(LABELS)]


def test_documents_read_by_once_wait_no_more(tmp_path: Path) -> None:
    """Once ``once`` has read a scanned and a born-digital PDF, check counts neither."""
    inbox = tmp_path / "docs"
    inbox.mkdir()
    (inbox / "scan.pdf").write_bytes(scanned(2))
    (inbox / "typed.pdf").write_bytes(pdfs.born_digital(["an invoice, typed"]))
    config = write_config(
        tmp_path,
        {
            "engine": "tesseract",
            "state_dir": str(tmp_path / "state"),
            "inboxes": [{"path": str(inbox)}],
        },
    )
    before = ocrwatch("check", "-c", str(config))
    done = ocrwatch("once", "-c", str(config))
    after = ocrwatch("check", "-c", str(config))

    assert (0, 0, 0) == (before.returncode, done.returncode, after.returncode), done.stderr
    waiting = [
        line
        for result in (before, after)
        for line in result.stdout.splitlines()
        if "waiting:" in line
    ]
    assert [
        "  waiting:   2 files (3 pages; local engine, no quota)",
        "  waiting:   no files",
    ] == waiting
