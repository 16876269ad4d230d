"""The searchable PDF of real PDFs other projects made (``documents/`` of the shared material).

Each document is read through the pipeline (the local Tesseract engine where
one page is quick to read, the fake engine where speed matters) and written
as a searchable PDF. Its pages, their sizes and every image stream must be
as they were (JBIG2 and CCITT included), poppler must find the words where
the pages show them, and PDF/A-2b must pass where the input allows it. Where
it does not, the reason is asserted: pikepdf's validator does not check
patterns and shadings (ocrmypdf_vector) or page transitions and unembedded
standard fonts (pikepdf_fourpages), and passes only what it checked; an
encrypted document keeps its encryption, which PDF/A forbids
(pikepdf_graph-encrypted).
Not written here: ocrmypdf_invalid.pdf (no record: the pipeline refuses it)
and ocrmypdf_hugemono.pdf (a pixel bomb the reading tests cover; its output
would be the same one page and image).
"""

from __future__ import annotations

import html
import re
import shutil
from pathlib import Path

import numpy as np
import pikepdf
import pypdfium2
import pytest

from ocrwatch.engines.tesseract.engine import TesseractEngine
from tests.support.fake_engine import FakeEngine
from tests.support.paths import DOCUMENTS
from tests.support.poppler import pdftotext
from tests.unit.test_searchable_pdf import (
    assert_found,
    displayed,
    images_of,
    poppler_words,
    read,
    shown_sizes,
    written,
)

pytestmark = pytest.mark.reference

CASES = [
    # name, engine, inbox options, expected PDF/A verdict ("2b" or a word of the reason)
    ("ocrmypdf_ccitt.pdf", "tesseract", {}, "2b"),  # CCITT G4
    ("ocrmypdf_cardinal.pdf", "fake", {}, "2b"),  # JBIG2, turned by the page matrix
    ("ocrmypdf_skew.pdf", "tesseract", {}, "2b"),  # JBIG2, skewed
    ("ocrmypdf_graph_ocred.pdf", "tesseract", {"pdf": {"text_layer": "redo"}}, "2b"),
    ("ocrmypdf_3small.pdf", "fake", {}, "2b"),
    # Patterns and shadings: pikepdf's validator does not check them, so it does not pass them.
    ("ocrmypdf_vector.pdf", "fake", {}, "pattern"),
    ("pikepdf_congress.pdf", "tesseract", {}, "2b"),
    # Page transitions (/Trans) and an unembedded Helvetica: not checkable, so not passed.
    ("pikepdf_fourpages.pdf", "fake", {}, "/Trans"),
]


@pytest.fixture(scope="module")
def tesseract():
    engine = TesseractEngine(env={})
    yield engine
    engine.close()


@pytest.mark.parametrize(("name", "engine_name", "inbox", "verdict"), CASES)
def test_each_document_keeps_its_pages_and_images_and_gains_findable_words(
    tmp_path: Path, tesseract, name: str, engine_name: str, inbox: dict, verdict: str
) -> None:
    """Same pages, sizes and image streams; poppler finds the OCR'd words in their boxes; PDF/A as the input allows."""
    data = (DOCUMENTS / name).read_bytes()
    engine = tesseract if engine_name == "tesseract" else FakeEngine()
    # A short name: the fake engine reads "text of <name>" into boxes 8 pixels wide, and
    # poppler takes two like letters squeezed that close for a fake-bold double.
    source, document = read(tmp_path, "doc.pdf", data, engine, **inbox)
    target, result = written(tmp_path, source, document)
    with pikepdf.open(source) as before, pikepdf.open(target) as after:
        pages = [(list(page.mediabox), page.obj.get("/Rotate", 0)) for page in before.pages]
        assert pages == [(list(page.mediabox), page.obj.get("/Rotate", 0)) for page in after.pages]
    assert images_of(source) == images_of(target)
    if verdict == "2b":
        assert ("2b", None) == (result.pdfa, result.pdfa_error)
    else:
        assert (None, True) == (result.pdfa, verdict in (result.pdfa_error or ""))
    words = poppler_words(target)
    for page, shown, found in zip(document.pages, shown_sizes(target), words, strict=True):
        if page.text_source == "ocr" and page.words:
            assert_found(displayed(page, shown), found)
            # Each word once: an earlier OCR layer (graph_ocred's) is gone.
            assert len(page.words) == len(found)


def test_the_encrypted_document_is_written_with_its_password_and_stays_encrypted(
    tmp_path: Path,
) -> None:
    """With its password the document gets its text; it keeps its encryption, so it is not PDF/A."""
    copy = tmp_path / "secret.pdf"
    shutil.copyfile(DOCUMENTS / "pikepdf_graph-encrypted.pdf", copy)
    password = tmp_path / "password"
    password.write_text("user\n")
    source, document = read(
        tmp_path / "run",
        "secret.pdf",
        copy.read_bytes(),
        FakeEngine(),
        pdf={"password_file": str(password)},
    )
    target, result = written(tmp_path, source, document, password="user")
    with pikepdf.open(target, password="user") as pdf:
        encrypted = pdf.is_encrypted
    assert (None, True, True) == (result.pdfa, "encrypted" in (result.pdfa_error or ""), encrypted)
    assert ["text", "of", "secret"] == poppler_words_with_password(target)


def poppler_words_with_password(path: Path) -> list[str]:
    """The words ``pdftotext`` finds in an encrypted PDF, opened with its user password."""
    output = pdftotext(path, "-upw", "user", "-bbox")
    return [html.unescape(match[1]) for match in re.finditer(r"<word [^>]*>(.*?)</word>", output)]


def test_cardinal_pages_turned_upright_all_show_the_scan_as_page_one(
    tmp_path: Path, tesseract
) -> None:
    """The Linn scan turned 0, 90, 180 and 270 degrees: Tesseract's orientations turn each page back."""
    data = (DOCUMENTS / "ocrmypdf_cardinal.pdf").read_bytes()
    source, document = read(tmp_path, "doc.pdf", data, tesseract)
    target, _ = written(tmp_path, source, document)
    with pikepdf.open(target) as pdf:
        rotations = [int(page.obj.get("/Rotate", 0)) for page in pdf.pages]
    pages = [rendered_grey(target, index) for index in range(4)]
    differences = [float(np.abs(page.astype(int) - pages[0]).mean()) for page in pages]
    assert ([0, 90, 180, 270], [0, 270, 180, 90]) == (
        [page.orientation for page in document.pages],
        rotations,
    )
    assert [True] * 4 == [difference < 8 for difference in differences]


def rendered_grey(path: Path, index: int) -> np.ndarray:
    document = pypdfium2.PdfDocument(str(path))
    try:
        return np.asarray(document[index].render(scale=0.5, grayscale=True).to_pil().convert("L"))
    finally:
        document.close()
