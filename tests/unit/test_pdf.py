"""The PDF reading layer: opening within limits, readiness, page layout and rendering, embedded text."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import numpy as np
import pikepdf
import pypdfium2.raw
import pytest
from PIL import Image, ImageDraw

from ocrwatch.documents import pdf as pdf_module
from ocrwatch.documents.pdf import (
    PASSWORD_OPTION,
    Completeness,
    open_pdf,
    pdf_completeness,
)
from ocrwatch.documents.pdfium import PDFIUM_LOCK
from ocrwatch.documents.pdflayout import pixels_to_points
from ocrwatch.documents.pdftext import PdfChar, kind_of
from ocrwatch.errors import DocumentError
from ocrwatch.layout import Affine, Box
from tests.support import pdfs
from tests.support.render import Placed, page

LINES = ["Invoice number 4711", "Total due within thirty days"]
TOLERANCE = 3
"""Pixels a character's box may stray from the box its word was drawn in (font metrics differ)."""


@pytest.fixture(scope="module")
def scan_page() -> tuple[Image.Image, list[Placed]]:
    """A 1200 x 400 page image with two known lines of text."""
    return page(LINES, size=(1200, 400), font_size=44)


@pytest.fixture
def spies(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[bool]]:
    """Every PDFium function wrapped to record, per call, whether PDFIUM_LOCK was held."""
    calls: dict[str, list[bool]] = {}
    for name in dir(pypdfium2.raw):
        function = getattr(pypdfium2.raw, name)
        if name.startswith("FPDF") and hasattr(function, "argtypes"):
            monkeypatch.setattr(pypdfium2.raw, name, _spy(name, function, calls))
    return calls


def _spy(name, function, calls):
    def wrapper(*arguments):
        calls.setdefault(name, []).append(PDFIUM_LOCK._is_owned())  # type: ignore[attr-defined]
        return function(*arguments)

    return wrapper


# One lock


def test_every_pdfium_call_is_made_with_the_lock_held(spies, scan_page) -> None:
    """Opening, checking, laying out, rendering, reading text and closing call PDFium only under the lock."""
    image, words = scan_page
    data = pdfs.scanned(image, dpi=300, words=words, pages=2)
    pdf_completeness(data)
    with open_pdf(data) as document:
        for laid_out, _ in document.rendered():
            document.text(laid_out)
    assert {"FPDF_LoadMemDocument64", "FPDF_RenderPageBitmap", "FPDFText_GetLooseCharBox"} <= set(
        spies
    )
    assert {} == {name: held for name, held in spies.items() if not all(held)}


def test_the_lock_is_free_while_the_caller_holds_a_rendered_page(scan_page) -> None:
    """Between pages, while the caller works on one (OCR), another thread can take the lock."""
    image, _ = scan_page
    free = []

    def try_lock() -> None:
        taken = PDFIUM_LOCK.acquire(blocking=False)
        free.append(taken)
        if taken:
            PDFIUM_LOCK.release()

    with open_pdf(pdfs.scanned(image, dpi=300, pages=2)) as document:
        for _ in document.rendered():
            other = threading.Thread(target=try_lock)
            other.start()
            other.join()
    assert [True, True] == free


def test_threads_sharing_a_document_render_the_same_pixels(scan_page) -> None:
    """Four threads rendering pages of one document at once get what one thread gets."""
    image, words = scan_page
    with open_pdf(pdfs.scanned(image, dpi=300, words=words, pages=4)) as document:
        expected = document.render(document.page(0))
        results: dict[int, bool] = {}

        def work(index: int) -> None:
            laid_out = document.page(index)
            document.text(laid_out)
            results[index] = np.array_equal(expected, document.render(laid_out))

        threads = [threading.Thread(target=work, args=(index,)) for index in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert {0: True, 1: True, 2: True, 3: True} == results


# Opening


def test_an_encrypted_pdf_without_a_password_is_bad_input_naming_the_option(scan_page) -> None:
    """Without a password an encrypted PDF is refused for good, and the message names pdf.password_file."""
    data = pdfs.encrypted(pdfs.scanned(scan_page[0], dpi=300), user="secret", owner="boss")
    with pytest.raises(DocumentError) as raised:
        open_pdf(data)
    assert "bad_input" == raised.value.classification
    assert "encrypted" in str(raised.value)
    assert PASSWORD_OPTION in str(raised.value)


def test_an_encrypted_pdf_with_a_wrong_password_is_bad_input_naming_the_option(scan_page) -> None:
    """A wrong password is refused for good, and the message names the option it came from."""
    data = pdfs.encrypted(pdfs.scanned(scan_page[0], dpi=300), user="secret", owner="boss")
    with pytest.raises(DocumentError) as raised:
        open_pdf(data, password="guess")
    assert (False, True) == (raised.value.retryable, PASSWORD_OPTION in str(raised.value))


@pytest.mark.parametrize("password", ["secret", "boss"])
def test_an_encrypted_pdf_opens_with_its_user_or_owner_password(scan_page, password) -> None:
    """Either password opens the document and its pages render."""
    data = pdfs.encrypted(pdfs.scanned(scan_page[0], dpi=300, pages=2), user="secret", owner="boss")
    with open_pdf(data, password=password) as document:
        assert (2, (400, 1200)) == (document.page_count, document.render(document.page(1)).shape)


def test_a_broken_pdf_is_bad_input() -> None:
    """A file with a header and an end marker but no objects is refused for good."""
    with pytest.raises(DocumentError) as raised:
        open_pdf(pdfs.broken())
    assert ("bad_input", "not a readable PDF") == (
        raised.value.classification,
        str(raised.value).split(" (")[0],
    )


def test_a_pdf_without_pages_is_bad_input() -> None:
    """A valid PDF with an empty page tree is refused for good."""
    with pytest.raises(DocumentError) as raised:
        open_pdf(pdfs.blank(0))
    assert ("bad_input", "PDF has no pages") == (raised.value.classification, str(raised.value))


def test_a_page_count_bomb_is_refused_without_loading_a_page(spies) -> None:
    """20,000 pages against a limit of 500: refused from the page count alone, at once."""
    data = pdfs.blank(20_000)
    started = time.perf_counter()
    with pytest.raises(DocumentError) as raised:
        open_pdf(data, max_pages=500)
    elapsed = time.perf_counter() - started
    assert "PDF has 20000 pages, more than the limit of 500" == str(raised.value)
    assert "bad_input" == raised.value.classification
    assert ([], []) == (spies.get("FPDF_LoadPage", []), spies.get("FPDF_RenderPageBitmap", []))
    assert elapsed < 5  # a bound, not a benchmark: it takes milliseconds


def test_a_document_at_the_page_limit_opens() -> None:
    """The limit is inclusive: max_pages pages open."""
    with open_pdf(pdfs.blank(3), max_pages=3) as document:
        assert 3 == document.page_count


def test_a_closed_document_refuses_work_and_closes_twice_quietly() -> None:
    """After close, using the document is a programming error; closing again does nothing."""
    document = open_pdf(pdfs.blank(1))
    document.close()
    document.close()
    with pytest.raises(ValueError, match="closed"):
        document.page(0)


# Readiness


def test_a_whole_pdf_is_complete(scan_page) -> None:
    """A PDF that ends in %%EOF and loads every page is complete, without a note."""
    data = pdfs.scanned(scan_page[0], dpi=300, pages=3)
    completeness = pdf_completeness(data)
    assert (Completeness(pages=3, terminated=True), None) == (completeness, completeness.note)


@pytest.mark.parametrize("linearize", [False, True], ids=["plain", "linearized"])
@pytest.mark.parametrize("fraction", [0.01, 0.25, 0.5, 0.75, 0.95, 0.99])
def test_a_pdf_cut_short_is_incomplete(scan_page, linearize, fraction) -> None:
    """A PDF cut anywhere before its cross-reference table is half-written: retry later."""
    data = pdfs.scanned(scan_page[0], dpi=300, words=scan_page[1], pages=3)
    if linearize:
        data = pdfs.linearized(data)
    with pytest.raises(DocumentError) as raised:
        pdf_completeness(data[: int(len(data) * fraction)])
    assert ("incomplete", True) == (raised.value.classification, raised.value.retryable)


def test_an_empty_file_is_incomplete() -> None:
    """Zero bytes is a file not yet written, as for images."""
    with pytest.raises(DocumentError) as raised:
        pdf_completeness(b"")
    assert "incomplete" == raised.value.classification


@pytest.mark.parametrize("linearize", [False, True], ids=["plain", "linearized"])
def test_a_pdf_without_its_end_marker_loads_but_is_unterminated(scan_page, linearize) -> None:
    """Cut just before %%EOF, every page still loads: unterminated, with a note for when it is read."""
    data = pdfs.scanned(scan_page[0], dpi=300, pages=3)
    if linearize:
        data = pdfs.linearized(data)
    completeness = pdf_completeness(data[: data.rindex(b"%%EOF")])
    assert Completeness(pages=3, terminated=False) == completeness
    assert completeness.note is not None and "%%EOF" in completeness.note


@pytest.mark.parametrize(("cut", "pages"), [(2_000, 1), (6_000, 2)])
def test_an_update_cut_short_opens_but_is_unterminated(scan_page, cut, pages) -> None:
    """A cut inside an incremental update still opens (the old revision, or a rebuilt one): unterminated."""
    original = pdfs.scanned(scan_page[0], dpi=300)
    updated = pdfs.with_update(original, padding=8192)
    assert Completeness(pages=2, terminated=True) == pdf_completeness(updated)
    assert Completeness(pages=pages, terminated=False) == pdf_completeness(
        updated[: len(original) + cut]
    )


def test_a_broken_pdf_that_ends_in_an_end_marker_is_bad_input_not_incomplete() -> None:
    """A file that ends properly yet does not open is broken, not half-written."""
    with pytest.raises(DocumentError) as raised:
        pdf_completeness(pdfs.broken())
    assert "bad_input" == raised.value.classification


def test_readiness_refuses_an_encrypted_pdf_for_good(scan_page) -> None:
    """An encrypted, finished PDF without its password is bad input, not a file to wait for."""
    data = pdfs.encrypted(pdfs.scanned(scan_page[0], dpi=300), user="secret", owner="boss")
    with pytest.raises(DocumentError) as raised:
        pdf_completeness(data)
    assert "bad_input" == raised.value.classification
    assert Completeness(pages=1, terminated=True) == pdf_completeness(data, password="secret")


# Pages


def test_a_300_dpi_scan_renders_at_its_image_size(scan_page) -> None:
    """A page that is one 300-dpi image renders at 300 dpi, pixel for pixel the image's size."""
    with open_pdf(pdfs.scanned(scan_page[0], dpi=300)) as document:
        laid_out = document.page(0)
        pixels = document.render(laid_out)
    assert (300.0, (1200, 400), (288.0, 96.0), 0) == (
        laid_out.dpi,
        laid_out.size,
        (laid_out.width, laid_out.height),
        laid_out.rotation,
    )
    assert ((400, 1200), "uint8", True) == (
        pixels.shape,
        str(pixels.dtype),
        pixels.flags.c_contiguous,
    )


@pytest.mark.parametrize(
    ("dpi", "expected_dpi", "expected_size"),
    [(150, 200.0, (1600, 533)), (720, 600.0, (1000, 333))],
)
def test_a_scan_outside_200_to_600_dpi_renders_at_the_nearest_bound(
    scan_page, dpi, expected_dpi, expected_size
) -> None:
    """A 150-dpi scan renders at 200 dpi and a 720-dpi one at 600 dpi."""
    with open_pdf(pdfs.scanned(scan_page[0], dpi=dpi)) as document:
        laid_out = document.page(0)
        pixels = document.render(laid_out)
    assert (expected_dpi, expected_size) == (laid_out.dpi, laid_out.size)
    assert expected_size == pixels.shape[1::-1]


def test_a_bilevel_scan_renders_grey_pixel_for_pixel(scan_page) -> None:
    """A 1-bit page renders as HxW grey equal to the bits it holds (ink black, paper white)."""
    ink = np.asarray(scan_page[0].convert("L")) < 128
    with open_pdf(pdfs.bilevel_scan(scan_page[0], dpi=300)) as document:
        laid_out = document.page(0)
        pixels = document.render(laid_out)
    assert laid_out.scan is not None and laid_out.scan.grey
    assert np.array_equal(np.where(ink, 0, 255).astype(np.uint8), pixels)


def test_a_colour_scan_renders_bgr() -> None:
    """A page with colour renders HxWx3 in BGR order, as decoded images are."""
    image = Image.new("RGB", (600, 300), "white")
    ImageDraw.Draw(image).rectangle((100, 100, 299, 199), fill=(255, 0, 0))
    with open_pdf(pdfs.scanned(image, dpi=300)) as document:
        pixels = document.render(document.page(0))
    assert (300, 600, 3) == pixels.shape
    blue, green, red = (int(value) for value in pixels[150, 200])
    assert (True, True, True) == (blue < 40, green < 40, red > 215)


def test_a_grey_page_drawn_in_colour_space_renders_grey() -> None:
    """An RGB-encoded page whose pixels are all grey comes back as HxW, like a grey image."""
    with open_pdf(pdfs.born_digital(LINES)) as document:
        laid_out = document.page(0)
        pixels = document.render(laid_out)
    assert (None, 300.0, (3300, 2550)) == (laid_out.scan, laid_out.dpi, pixels.shape)


@pytest.mark.parametrize("rotate", [90, 180, 270])
def test_a_rotated_page_renders_upright_as_shown(scan_page, rotate) -> None:
    """A page with /Rotate renders as a viewer shows it: the image turned clockwise."""
    image, _ = scan_page
    grey = np.asarray(image.convert("L"))
    with open_pdf(pdfs.scanned(image, dpi=300, rotate=rotate)) as document:
        laid_out = document.page(0)
        pixels = document.render(laid_out)
    turned = np.rot90(grey, k=-rotate // 90)
    assert (rotate, turned.shape[::-1]) == (laid_out.rotation, laid_out.size)
    assert float(np.abs(pixels.astype(int) - turned).mean()) < 2


@pytest.mark.parametrize("rotate", [0, 90, 180, 270])
def test_character_boxes_land_on_their_words_in_a_rotated_render(scan_page, rotate) -> None:
    """Each character's pixel box lies inside its word's box, turned as the page is."""
    image, words = scan_page
    with open_pdf(pdfs.scanned(image, dpi=300, rotate=rotate, words=words)) as document:
        text = document.text(document.page(0))
    width, height = image.size
    turn = {
        0: lambda x, y: (x, y),
        90: lambda x, y: (height - y, x),
        180: lambda x, y: (width - x, height - y),
        270: lambda x, y: (y, width - x),
    }[rotate]
    boxes = []
    for word in words:
        corners = [turn(word.left, word.top), turn(word.left + word.width, word.top + word.height)]
        left, right = sorted(x for x, _ in corners)
        top, bottom = sorted(y for _, y in corners)
        boxes.append(
            (word.text, left - TOLERANCE, top - TOLERANCE, right + TOLERANCE, bottom + TOLERANCE)
        )
    # PDFium orders the characters of a turned page its own way, so each is
    # matched to any word that holds its letter where its box is.
    stray = [
        char
        for char in text.chars
        if not any(
            char.text in letters
            and left <= (char.pixels.left + char.pixels.right) / 2 <= right
            and top <= (char.pixels.top + char.pixels.bottom) / 2 <= bottom
            for letters, left, top, right, bottom in boxes
        )
    ]
    assert sorted("".join(LINES).replace(" ", "")) == sorted(char.text for char in text.chars)
    assert [] == stray


def test_a_huge_page_renders_within_the_megapixel_limit_with_a_note() -> None:
    """An 8400-point page of a 20000-pixel bilevel image renders under 50 megapixels, saying so."""
    data = pdfs.huge_bilevel(side=8400, pixels=20_000, square=(10_000, 4_000, 2_000))
    with open_pdf(data) as document:
        laid_out = document.page(0)
        pixels = document.render(laid_out)
    width, height = laid_out.size
    assert ((height, width), True) == (pixels.shape, width * height <= 50_000_000)
    assert laid_out.dpi < 200
    assert 1 == len(laid_out.notes) and "50-megapixel" in laid_out.notes[0]
    # The square's centre, 11000 x 5000 image pixels in, is black where the transform says.
    to_pixels = laid_out.to_points.inverse()
    x, y = to_pixels.point(11_000 * 8400 / 20_000, 8400 - 5_000 * 8400 / 20_000)
    assert (0, 255) == (pixels[round(y), round(x)], pixels[round(y), round(x) - 1500])


def test_a_lower_megapixel_limit_lowers_the_resolution(scan_page) -> None:
    """max_page_mpixels caps the render: a 0.12-megapixel cap halves a 0.48-megapixel page."""
    with open_pdf(pdfs.scanned(scan_page[0], dpi=300)) as document:
        laid_out = document.page(0, max_page_mpixels=0.12)
        pixels = document.render(laid_out)
    assert ((200, 600), 1) == (pixels.shape, len(laid_out.notes))


def test_a_crop_box_sets_the_rendered_area_and_the_transform(scan_page) -> None:
    """A crop box narrower than the media box: the render covers the crop box, pixel (0, 0) at its top left."""
    # x from 72 to 216; y, growing upwards, from 24 (the box's top) to 96 (its bottom).
    data = pdfs.with_crop_box(pdfs.scanned(scan_page[0], dpi=300), Box(72, 24, 144, 72))
    with open_pdf(data) as document:
        laid_out = document.page(0)
        pixels = document.render(laid_out)
    crop_box = laid_out.crop_box
    edges = (crop_box.left, crop_box.top, crop_box.right, crop_box.bottom)
    assert ((72.0, 24.0, 216.0, 96.0), (600, 300)) == (edges, laid_out.size)
    assert (72.0, 96.0) == laid_out.to_points.point(0, 0)
    grey = np.asarray(scan_page[0].convert("L"))[0:300, 300:900]
    assert float(np.abs(pixels.astype(int) - grey).mean()) < 2


@pytest.mark.parametrize(
    ("rotation", "top_left", "bottom_right"),
    [
        (0, (10, 200), (110, 20)),
        (90, (10, 20), (110, 200)),
        (180, (110, 20), (10, 200)),
        (270, (110, 200), (10, 20)),
    ],
)
def test_pixel_corners_map_to_the_crop_box_corners_a_viewer_shows_there(
    rotation, top_left, bottom_right
) -> None:
    """The pixel-to-points map sends the render's corners to the crop box corners shown there."""
    crop_box = Box(10.0, 20.0, 100.0, 180.0)  # x from 10 to 110, y from 20 to 200
    shown = (100.0, 180.0) if rotation in (0, 180) else (180.0, 100.0)
    size = (round(shown[0] * 2), round(shown[1] * 2))
    to_points = pixels_to_points(crop_box, rotation, size, shown)
    assert (top_left, bottom_right) == (to_points.point(0, 0), to_points.point(*size))


def test_an_affine_inverse_undoes_it() -> None:
    """inverse() maps a point's image back to the point."""
    transform = Affine(0.0, 0.24, 5.0, -0.24, 0.0, 300.0)
    assert (7.0, 11.0) == tuple(
        round(v, 9) for v in transform.inverse().point(*transform.point(7, 11))
    )


# Embedded text


def test_born_digital_text_is_visible_and_read_exactly() -> None:
    """Visible Helvetica text comes back as written, line by line, every character visible."""
    with open_pdf(pdfs.born_digital(LINES)) as document:
        text = document.text(document.page(0))
    assert ("\n".join(LINES), "visible") == (text.text.strip(), text.kind)
    assert all(char.visible for char in text.chars)


def test_a_character_box_lies_where_its_glyph_is_drawn() -> None:
    """The first letter's box, in points and in pixels, holds the ink the render shows for it."""
    with open_pdf(pdfs.born_digital(["H"], font_size=24, origin=(72, 720))) as document:
        laid_out = document.page(0)
        pixels = document.render(laid_out)
        char = document.text(laid_out).chars[0]
    points = char.points
    # Points grow upwards: the box's top is its lower edge, its bottom the upper one.
    assert (72.0, True) == (round(points.left, 3), points.top < 720 < points.bottom)
    ink_rows, ink_columns = np.nonzero(pixels < 128)
    ink = (ink_columns.min(), ink_rows.min(), ink_columns.max() + 1, ink_rows.max() + 1)
    box = char.pixels
    assert box.left - 2 <= ink[0] and ink[2] <= box.right + 2
    assert box.top - 2 <= ink[1] and ink[3] <= box.bottom + 2


def test_an_ocr_layer_is_invisible_only_and_read_exactly(scan_page) -> None:
    """A scan under an invisible text layer (render mode 3) reads back its words, all invisible."""
    image, words = scan_page
    with open_pdf(pdfs.scanned(image, dpi=300, words=words)) as document:
        laid_out = document.page(0)
        text = document.text(laid_out)
    assert ("\n".join(LINES), "invisible_only") == (text.text.strip(), text.kind)
    # The invisible layer does not stop the page counting as a scan.
    assert laid_out.scan is not None
    assert not any(char.visible for char in text.chars)


def test_a_scan_without_text_has_none(scan_page) -> None:
    """A page that is only an image carries no text."""
    with open_pdf(pdfs.scanned(scan_page[0], dpi=300)) as document:
        text = document.text(document.page(0))
    assert ("", (), "none") == (text.text, text.chars, text.kind)


def test_any_visible_character_makes_a_page_visible() -> None:
    """One visible letter among invisible ones classifies the page as visible; blanks count for nothing."""
    box = Box(0.0, 0.0, 1.0, 1.0)
    hidden, shown, blank = (
        PdfChar("a", 0, False, box, box),
        PdfChar("b", 1, True, box, box),
        PdfChar(" ", 2, True, box, box),
    )
    assert ["invisible_only", "visible", "none"] == [
        kind_of([hidden, blank]),
        kind_of([hidden, shown]),
        kind_of([blank]),
    ]


# Memory


def test_pages_render_one_at_a_time_and_free_their_bitmap(spies, scan_page) -> None:
    """Each page is rendered only when asked for, and its PDFium bitmap is gone before the next."""
    seen = []
    with open_pdf(pdfs.scanned(scan_page[0], dpi=300, pages=3)) as document:
        for laid_out, pixels in document.rendered():
            created = len(spies["FPDFBitmap_CreateEx"])
            seen.append((laid_out.index, created, created - len(spies["FPDFBitmap_Destroy"])))
            assert pixels.base is None  # the array owns its memory: nothing else refers to it
    assert [(0, 1, 0), (1, 2, 0), (2, 3, 0)] == seen


def test_pages_read_after_the_document_is_reopened_are_the_same(tmp_path: Path) -> None:
    """Reading many pages reopens the document now and then (to drop PDFium's caches): every
    page still gives its own text and size, and an encrypted document keeps its password."""
    with pikepdf.Pdf.new() as pdf:
        for number in range(40):
            with pikepdf.open(io.BytesIO(pdfs.born_digital([f"Page number {number}"]))) as one:
                pdf.pages.extend(one.pages)
        plain = pdfs.save(pdf)
    locked = pdfs.encrypted(plain, user="s3cret", owner="o")
    for data, password in ((plain, None), (locked, "s3cret")):
        with open_pdf(data, password=password) as document:
            texts = [document.text(document.page(index)).text for index in range(40)]
            sizes = {document.page(index).size for index in range(40)}
        assert [f"Page number {number}" for number in range(40)] == texts
        assert 1 == len(sizes)
        assert pdf_module.RELOAD_AFTER_LOADS < 80
