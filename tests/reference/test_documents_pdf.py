"""The PDF reading layer against real PDFs other projects made (``documents/`` of the shared material)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from ocrwatch.documents.pdf import PASSWORD_OPTION, Completeness, open_pdf, pdf_completeness
from ocrwatch.errors import DocumentError
from tests.support.paths import DOCUMENTS

pytestmark = pytest.mark.reference


def copied(tmp_path: Path, name: str) -> bytes:
    """The bytes of a copy of ``name`` made in ``tmp_path`` (the shared folder is never touched)."""
    copy = tmp_path / name
    shutil.copyfile(DOCUMENTS / name, copy)
    return copy.read_bytes()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # name: [(rendered height, width, channels or 0 for grey), text kind] per page
        (
            "ocrmypdf_3small.pdf",
            [(682, 640, 0, "none"), (50, 400, 0, "none"), (1193, 1667, 0, "none")],
        ),
        ("ocrmypdf_cardinal.pdf", [(3300, 2550, 0, "none"), (2550, 3300, 0, "none")] * 2),
        ("ocrmypdf_ccitt.pdf", [(3300, 2550, 0, "none")]),
        ("ocrmypdf_skew.pdf", [(3300, 2550, 0, "none")]),
        ("ocrmypdf_graph_ocred.pdf", [(833, 1996, 3, "invisible_only")]),
        ("ocrmypdf_vector.pdf", [(3508, 2480, 3, "none")]),
        ("pikepdf_fourpages.pdf", [(3300, 2550, 0, "visible")] * 4),
        ("pikepdf_congress.pdf", [(1520, 1000, 3, "none")]),
    ],
)
def test_each_document_opens_classifies_and_renders(tmp_path, name, expected) -> None:
    """Each readable document is complete, and each page renders at the documented size and kind."""
    data = copied(tmp_path, name)
    assert Completeness(pages=len(expected), terminated=True) == pdf_completeness(data)
    actual = []
    with open_pdf(data) as document:
        for laid_out, pixels in document.rendered():
            channels = pixels.shape[2] if pixels.ndim == 3 else 0
            actual.append((*pixels.shape[:2], channels, document.text(laid_out).kind))
    assert expected == actual


@pytest.mark.parametrize(
    ("name", "dpis"),
    [
        ("ocrmypdf_3small.pdf", [230.4, 200.0, 600.0]),  # the last scan is 1440 dpi, clamped
        ("ocrmypdf_cardinal.pdf", [300.0] * 4),  # turned by the page matrix, still 300 dpi
        ("ocrmypdf_ccitt.pdf", [300.0]),
        ("ocrmypdf_skew.pdf", [300.0]),  # skewed by about 1.5 degrees
        ("ocrmypdf_graph_ocred.pdf", [200.0]),  # a 96-dpi image under an OCR layer
        ("ocrmypdf_vector.pdf", [300.0]),  # no image at all
        ("pikepdf_congress.pdf", [360.0]),
    ],
)
def test_scanned_pages_render_at_their_own_resolution(tmp_path, name, dpis) -> None:
    """A page that is one image renders at its image's resolution, clamped to 200-600 dpi."""
    with open_pdf(copied(tmp_path, name)) as document:
        actual = [round(document.page(index).dpi, 1) for index in range(document.page_count)]
    assert dpis == actual


def test_cardinal_pages_render_as_shown_turned_by_their_page_matrix(tmp_path) -> None:
    """The Linn scan placed at 0, 90, 180 and 270 degrees renders as page 1 turned so (clockwise)."""
    with open_pdf(copied(tmp_path, "ocrmypdf_cardinal.pdf")) as document:
        pages = [pixels for _, pixels in document.rendered()]
    differences = [
        float(np.abs(np.rot90(pages[0], k=-quarter).astype(int) - pages[quarter]).mean())
        for quarter in range(4)
    ]
    assert [True] * 4 == [difference < 8 for difference in differences]


def test_an_ocr_layer_reads_as_invisible_text_boxed_inside_the_page(tmp_path) -> None:
    """graph_ocred's earlier OCR layer is invisible text whose boxes lie on the rendered page."""
    with open_pdf(copied(tmp_path, "ocrmypdf_graph_ocred.pdf")) as document:
        laid_out = document.page(0)
        text = document.text(laid_out)
    width, height = laid_out.size
    inside = [
        -1 <= char.pixels.left and char.pixels.right <= width + 1 and -1 <= char.pixels.top
        for char in text.chars
    ]
    assert (True, False, True) == (
        len(text.text.strip()) > 20,
        any(char.visible for char in text.chars),
        all(inside) and all(char.pixels.bottom <= height + 1 for char in text.chars),
    )


def test_the_encrypted_document_needs_its_password(tmp_path) -> None:
    """Without a password it is bad input naming pdf.password_file; with user or owner password it opens."""
    data = copied(tmp_path, "pikepdf_graph-encrypted.pdf")
    with pytest.raises(DocumentError) as raised:
        pdf_completeness(data)
    assert ("bad_input", True) == (
        raised.value.classification,
        "encrypted" in str(raised.value) and PASSWORD_OPTION in str(raised.value),
    )
    for password in ("user", "owner"):
        with open_pdf(data, password=password) as document:
            assert (1848, 2272, 3) == document.render(document.page(0)).shape


def test_the_44_byte_file_is_broken_for_good(tmp_path) -> None:
    """invalid.pdf (a header and an end marker) is bad input, not a file to wait for."""
    with pytest.raises(DocumentError) as raised:
        pdf_completeness(copied(tmp_path, "ocrmypdf_invalid.pdf"))
    assert "bad_input" == raised.value.classification


def test_the_pixel_bomb_page_renders_within_50_megapixels(tmp_path) -> None:
    """hugemono's 35000-pixel-square page renders under 50 megapixels, with a note saying so."""
    with open_pdf(copied(tmp_path, "ocrmypdf_hugemono.pdf")) as document:
        laid_out = document.page(0)
        pixels = document.render(laid_out)
    assert ((35000, 35000), (7071, 7071)) == (
        (laid_out.scan.width, laid_out.scan.height) if laid_out.scan else None,
        pixels.shape,
    )
    assert 1 == len(laid_out.notes) and "50-megapixel" in laid_out.notes[0]


@pytest.mark.parametrize("name", sorted(path.name for path in DOCUMENTS.glob("*.pdf")))
def test_every_document_cut_in_half_is_incomplete(tmp_path, name) -> None:
    """Half of any real PDF is a file still being written: retry later, never bad input."""
    data = copied(tmp_path, name)
    with pytest.raises(DocumentError) as raised:
        pdf_completeness(data[: len(data) // 2])
    assert "incomplete" == raised.value.classification
