"""Every real PDF of the shared material through `ocrwatch once` on the local engine, in one run.

The Linn brochure page comes four ways (turned by the page matrix through
0/90/180/270 degrees, as a CCITT G4 image, skewed by the placement matrix):
each page must read like its ground truth. The other files must end as their
kind says: an earlier OCR layer and typed pages use their own text, the
encrypted and the broken file fail clearly, the pixel bomb is read at a
lower resolution with a note.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.support.commands import ocrwatch, record, text_of, write_config
from tests.support.paths import CORPUS, DOCUMENTS
from tests.support.scoring import cer

pytestmark = pytest.mark.reference

LINN_CER_BUDGET = 0.03
"""Measured 0.019-0.021 for every Linn page, turned, G4 or skewed."""


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, str]:
    """Copies of every shared PDF in one inbox, read once: the inbox, the exit code, stderr."""
    folder = tmp_path_factory.mktemp("documents")
    inbox = folder / "in"
    inbox.mkdir()
    for source in sorted(DOCUMENTS.glob("*.pdf")):
        shutil.copyfile(source, inbox / source.name)
    config = write_config(folder, {"engine": "tesseract", "inboxes": [{"path": "in"}]})
    result = ocrwatch("once", "-c", str(config))
    return inbox, result.returncode, result.stderr


def error_of(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.with_name(path.name + ".error.json").read_text())
    return data


@pytest.mark.parametrize(
    ("name", "pages"),
    [("ocrmypdf_cardinal.pdf", 4), ("ocrmypdf_ccitt.pdf", 1), ("ocrmypdf_skew.pdf", 1)],
)
def test_every_linn_page_reads_like_its_ground_truth(
    run: tuple[Path, int, str], name: str, pages: int
) -> None:
    """Turned by the page matrix, G4-compressed or skewed: each page's text within the budget."""
    inbox, _, _ = run
    truth = (CORPUS / "real" / "ocrmypdf_linn.gt.txt").read_text()
    parts = text_of(inbox / name).split("\f")
    assert pages == len(parts)
    assert [True] * pages == [cer(part, truth) <= LINN_CER_BUDGET for part in parts], [
        round(cer(part, truth), 4) for part in parts
    ]
    assert ["ocr"] * pages == [entry["text_source"] for entry in record(inbox / name)["pages"]]


def test_pages_with_their_own_text_cost_no_ocr(run: tuple[Path, int, str]) -> None:
    """An earlier OCR layer and typed pages are used as they are (text_layer: skip)."""
    inbox, _, _ = run
    assert ["embedded"] == [
        entry["text_source"] for entry in record(inbox / "ocrmypdf_graph_ocred.pdf")["pages"]
    ]
    assert "First page\n\fSecond page\n\fThird page\n\fLast page\n" == text_of(
        inbox / "pikepdf_fourpages.pdf"
    )


def test_pages_without_text_are_read(run: tuple[Path, int, str]) -> None:
    """Vector outlines, a JPEG scan and small map pages give text through OCR."""
    inbox, _, _ = run
    for name, pages in (
        ("ocrmypdf_vector.pdf", 1),
        ("pikepdf_congress.pdf", 1),
        ("ocrmypdf_3small.pdf", 3),
    ):
        data = record(inbox / name)
        assert (pages, "done") == (len(data["pages"]), data["status"]), name
        assert text_of(inbox / name).strip(), name


def test_the_pixel_bomb_is_read_at_a_lower_resolution_with_a_note(
    run: tuple[Path, int, str],
) -> None:
    """A 35000-pixel square page renders within 50 megapixels and says so."""
    inbox, _, _ = run
    page = record(inbox / "ocrmypdf_hugemono.pdf")["pages"][0]
    assert page["image"]["width"] * page["image"]["height"] <= 50_000_000
    assert "50-megapixel" in page["note"]


def test_the_encrypted_and_the_broken_file_fail_clearly_and_alone(
    run: tuple[Path, int, str],
) -> None:
    """Two clear bad-input errors; once exits 1 for them and every other file is done."""
    inbox, code, stderr = run
    encrypted = error_of(inbox / "pikepdf_graph-encrypted.pdf")["error"]
    broken = error_of(inbox / "ocrmypdf_invalid.pdf")["error"]
    assert ("bad_input", "bad_input") == (encrypted["classification"], broken["classification"])
    assert "encrypted" in encrypted["message"] and "pdf.password_file" in encrypted["message"]
    assert "not a readable PDF" in broken["message"]
    assert 1 == code, stderr
    assert 9 == len(list(inbox.glob("*.pdf.json")))
