"""`ocrspace.pdf_upload: document`: a short PDF in one request, and when it goes page by page instead.

Through `ocrwatch once` against the local ocr.space server, which reads an
uploaded PDF's first three pages at 96 dpi, as the real API's boxes suggest.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import pikepdf
import pytest

from tests.support import pdfs, render
from tests.support.commands import KEY, ocrwatch, record, text_of, write_config
from tests.support.ocrspace_server import FakeOcrSpace
from tests.support.scoring import cer

SCAN_DPI = 150
RENDER_DPI = 200
"""A 150 dpi scan is rendered at the 200 dpi floor."""


def scanned_pdf(path: Path, seeds: list[int]) -> list[render.Rendered]:
    """A PDF with one 150 dpi scan of a printed page per seed; the pages drawn."""
    pdf = pikepdf.new()
    pages = [render.printed(seed, dpi=SCAN_DPI) for seed in seeds]
    for page in pages:
        pdfs.add_image_page(pdf, pdfs.jpeg_image(pdf, page.image), dpi=SCAN_DPI)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pdfs.save(pdf))
    return pages


def run(
    tmp_path: Path,
    fake: FakeOcrSpace,
    inbox: Mapping[str, object] | None = None,
    **ocrspace: object,
) -> tuple[int, str]:
    config = write_config(
        tmp_path,
        {
            "engine": "ocrspace",
            "ocrspace": {"endpoint": fake.url, "pdf_upload": "document", **ocrspace},
            "inboxes": [{"path": "in", **(inbox or {})}],
        },
    )
    result = ocrwatch("once", "-c", str(config), env={"OCRSPACE_API_KEY": KEY})
    return result.returncode, result.stderr


def test_a_short_pdf_goes_in_one_request_and_its_boxes_land_on_the_pages(tmp_path: Path) -> None:
    """Three pages, one request; each page's text is right and its words sit where they are drawn."""
    path = tmp_path / "in" / "letter.pdf"
    pages = scanned_pdf(path, [1, 2, 3])
    with FakeOcrSpace(mode="tesseract", api_key=KEY) as fake:
        code, stderr = run(tmp_path, fake)
        sent = fake.requests
    assert 0 == code, stderr
    assert [("letter.pdf", ())] == [(request.filename, request.problems) for request in sent]
    parts = text_of(path).split("\f")
    assert [cer(part, page.text) < 0.02 for part, page in zip(parts, pages, strict=True)] == [
        True
    ] * 3
    data = record(path)
    assert (1, [1, 0, 0]) == (data["requests"], [entry["requests"] for entry in data["pages"]])
    scale = RENDER_DPI / SCAN_DPI
    for entry, page in zip(data["pages"], pages, strict=True):
        assert "whole PDF" in entry["note"]
        # Words that occur once on the page and once in what was read can be matched.
        counts = Counter(word.text for word in page.words)
        drawn = {word.text: word for word in page.words if counts[word.text] == 1}
        words = entry["results"][0]["words"]
        seen = Counter(word["text"] for word in words)
        matched = [word for word in words if word["text"] in drawn and seen[word["text"]] == 1]
        assert len(matched) > len(drawn) // 2
        # 96 dpi boxes scaled to 200 dpi: a pixel of theirs is two of ours. Reading at
        # 96 dpi sometimes joins a short word to the next, so most, not all, must land.
        landed = [
            word
            for word in matched
            if abs(word["left"] - drawn[word["text"]].left * scale) < 6
            and abs(word["top"] - drawn[word["text"]].top * scale) < 12
        ]
        assert len(landed) >= 0.9 * len(matched), (len(landed), len(matched))


def test_a_pdf_over_the_page_limit_goes_page_by_page(tmp_path: Path) -> None:
    """Four pages with a limit of three: four requests, one per page, each an image."""
    path = tmp_path / "in" / "long.pdf"
    scanned_pdf(path, [1, 2, 3, 4])
    with FakeOcrSpace(mode="tesseract", api_key=KEY) as fake:
        code, stderr = run(tmp_path, fake)
        names = sorted(request.filename or "" for request in fake.requests)
    assert 0 == code, stderr
    assert ["long-p2.jpg", "long-p3.jpg", "long-p4.jpg", "long.jpg"] == sorted(
        re.sub(r"\.png$", ".jpg", name) for name in names
    )


def test_a_pdf_with_a_page_that_has_text_goes_page_by_page(tmp_path: Path) -> None:
    """A born-digital page needs no OCR: only the scanned page is sent, as an image."""
    folder = tmp_path / "in"
    folder.mkdir()
    scan = folder / "scan.pdf"
    scanned_pdf(scan, [5])
    with pikepdf.open(scan) as scanned:
        mixed = pikepdf.open(__import__("io").BytesIO(pdfs.born_digital(["Cover sheet"])))
        mixed.pages.extend(scanned.pages)
        mixed.save(folder / "mixed.pdf")
    scan.unlink()
    with FakeOcrSpace(mode="tesseract", api_key=KEY) as fake:
        code, stderr = run(tmp_path, fake)
        names = [request.filename for request in fake.requests]
    assert 0 == code, stderr
    assert 1 == len(names) and not str(names[0]).endswith(".pdf"), names
    data = record(folder / "mixed.pdf")
    assert ["embedded", "ocr"] == [entry["text_source"] for entry in data["pages"]]


def test_a_page_the_answer_marks_failed_leaves_a_partial_document_and_retry_reads_only_it(
    tmp_path: Path,
) -> None:
    """OCRExitCode 2 with page 2 failed: partial, exit 1; `retry` then sends page 2 alone.

    A partial document stays in the inbox (after: move applies to complete ones) and its
    hooks hear `partial`; once complete it is moved and they hear `done`.
    """
    path = tmp_path / "in" / "pair.pdf"
    pages = scanned_pdf(path, [6, 7])
    events = tmp_path / "events.log"
    note = "import sys; open(sys.argv[1], 'a').write(sys.argv[2] + chr(10))"
    inbox = {
        "after": "move",
        "hooks": [{"command": [sys.executable, "-c", note, str(events), "{status} {name}"]}],
    }
    with FakeOcrSpace(mode="tesseract", api_key=KEY, script=["partial_exit2"]) as fake:
        code, stderr = run(tmp_path, fake, inbox)
        assert 1 == code, stderr
        data = record(path)
        assert ("partial", [2]) == (data["status"], data["failed_pages"])
        assert cer(text_of(path).split("\f")[0], pages[0].text) < 0.02
        error = json.loads((path.parent / "pair.pdf.error.json").read_text())
        assert ("partial", [2]) == (error["status"], error["failed_pages"])
        config = str(tmp_path / "ocrwatch.yaml")
        listed = ocrwatch("failed", "-c", config, env={"OCRSPACE_API_KEY": KEY}).stdout
        assert "pair.pdf (partial" in listed
        assert path.exists(), "a partial document was moved"
        skipped, _ = run(tmp_path, fake, inbox)
        assert (1, 1) == (skipped, len(fake.requests))  # still partial, nothing sent
        retried = ocrwatch("retry", str(path), "-c", config, env={"OCRSPACE_API_KEY": KEY})
        assert "failed page(s) will be read again" in retried.stdout
        code, stderr = run(tmp_path, fake, inbox)
        assert 0 == code, stderr
        assert ["pair-p2"] == [Path(request.filename or "").stem for request in fake.requests[1:]]
    moved = tmp_path / "in" / "done" / "pair.pdf"
    assert moved.exists() and not path.exists()
    data = record(moved)
    assert ("done", []) == (data["status"], data["failed_pages"])
    for part, page in zip(text_of(moved).split("\f"), pages, strict=True):
        assert cer(part, page.text) < 0.02
    assert ["partial pair.pdf", "done pair.pdf"] == events.read_text().splitlines()


@pytest.mark.parametrize("limit", [1])
def test_the_page_limit_can_be_lowered(tmp_path: Path, limit: int) -> None:
    """pdf_page_limit 1: a two-page PDF goes page by page."""
    path = tmp_path / "in" / "two.pdf"
    scanned_pdf(path, [8, 9])
    with FakeOcrSpace(mode="tesseract", api_key=KEY) as fake:
        code, stderr = run(tmp_path, fake, pdf_page_limit=limit)
        assert (0, 2) == (code, len(fake.requests)), stderr
