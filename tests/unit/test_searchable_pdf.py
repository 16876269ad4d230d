"""The searchable PDF from real records: images kept as they came, words found where the page shows them.

Records come from the real pipeline (the local Tesseract engine on rendered
pages, for realistic boxes and baselines; the fake engine where only the
structure matters). The text is read back by two tools that share no code
with ocrwatch's writer: poppler's ``pdftotext -bbox`` (boxes as the page is
displayed, compared with the model's pixels scaled to the page) and PDFium
(boxes in PDF user space, compared with the model's boxes through
``to_points``).
"""

from __future__ import annotations

import html
import io
import json
import re
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pikepdf
import pypdfium2
import pytest
from PIL import Image, TiffImagePlugin

from ocrwatch import __version__
from ocrwatch.engines.tesseract.engine import TesseractEngine
from ocrwatch.errors import BadInputError
from ocrwatch.layout import Box
from ocrwatch.outcome import Status
from ocrwatch.outputs.model import Document, DocumentPage, document_of
from ocrwatch.outputs.searchable import (
    PdfOutputError,
    PdfWritten,
    SearchablePdfOptions,
    missing_dependency,
    write_searchable_pdf,
)
from ocrwatch.outputs.textlayer import GlyphlessFont
from ocrwatch.pipeline import process_file
from ocrwatch.sidecar import SidecarPaths
from tests.support import pdfs, render, tiffs
from tests.support.fake_engine import FakeEngine
from tests.support.plans import plan_for
from tests.support.poppler import pdftotext

TOLERANCE = 2.0
"""Points an extracted word's box may reach past its box in the model, on each side."""
FOUND = 0.99
"""Share of the model's words each tool must find, each inside its own box."""
LINES = [
    "Quarterly invoice 4711 for services",
    "rendered in March, payable within",
    "thirty days of receipt.",
]
DPI = 300
BIDI_MARKS = re.compile("[\u202a-\u202e]")
"""The embedding marks ``pdftotext`` puts around right-to-left text."""
_WORD = re.compile(
    r'<word xMin="([-\d.]+)" yMin="([-\d.]+)" xMax="([-\d.]+)" yMax="([-\d.]+)">(.*?)</word>'
)

Found = list[tuple[str, Box]]


# --- records through the pipeline ---------------------------------------------------------


@pytest.fixture(scope="module")
def tesseract() -> Iterator[TesseractEngine]:
    engine = TesseractEngine(env={})
    yield engine
    engine.close()


def read(tmp_path: Path, name: str, data: bytes, engine, **inbox) -> tuple[Path, Document]:
    """``data`` saved as ``name`` in a fresh inbox and read by the pipeline: the file and its model."""
    plan = plan_for(
        tmp_path,
        **({"engine": "tesseract"} if isinstance(engine, TesseractEngine) else {}),
        **inbox,
    )
    path = plan.inboxes[0].path / name
    path.write_bytes(data)
    process_file(path, plan.inboxes[0], engine)
    record = json.loads(SidecarPaths.of(path).result.read_text())
    return path, document_of(record)


def written(tmp_path: Path, source: Path, document: Document, **options) -> tuple[Path, PdfWritten]:
    target = tmp_path / "out.pdf"
    with source.open("rb") as original:
        result = write_searchable_pdf(document, original, target, SearchablePdfOptions(**options))
    return target, result


def text_page(lines: Sequence[str] = LINES, *, size: tuple[int, int] = (1500, 420)) -> Image.Image:
    image, _ = render.page(list(lines), size=size, font_size=44, origin=(60, 50))
    return image


def encoded(image: Image.Image, kind: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, kind, **options)
    return buffer.getvalue()


# --- reading the output back with poppler and PDFium --------------------------------------


def poppler_words(path: Path, *options: str) -> list[Found]:
    """Each page's words as ``pdftotext -bbox`` finds them, boxes in points of the page as displayed."""
    output = pdftotext(path, *options, "-bbox")
    pages = []
    for page in output.split("<page ")[1:]:
        words = []
        for match in _WORD.finditer(page):
            left, top, right, bottom = (float(match[index]) for index in range(1, 5))
            words.append((html.unescape(match[5]), Box(left, top, right - left, bottom - top)))
        pages.append(words)
    return pages


def pdfium_words(path: Path) -> list[Found]:
    """Each page's words as PDFium extracts them, boxes in PDF user space (y up)."""
    document = pypdfium2.PdfDocument(str(path))
    pages = []
    try:
        for page in document:
            text_page = page.get_textpage()
            words: Found = []
            start: int | None = None
            boxes: list[Box] = []
            count = text_page.count_chars()
            for index in range(count + 1):
                # A character beyond the BMP is two indexes, each read alone as "".
                character = text_page.get_text_range(index, 1) if index < count else " "
                if character.isspace():
                    if start is not None:
                        text = text_page.get_text_range(start, index - start)
                        words.append((text, Box.around(boxes)))
                    start, boxes = None, []
                    continue
                left, bottom, right, top = text_page.get_charbox(index, loose=True)
                boxes.append(Box(left, bottom, right - left, top - bottom))
                start = index if start is None else start
            pages.append(words)
    finally:
        document.close()
    return pages


def displayed(page: DocumentPage, shown: tuple[float, float]) -> Found:
    """The model's words in points of a page ``shown`` points large as displayed (y down)."""
    across, down = shown[0] / page.width, shown[1] / page.height
    return [
        (
            word.text,
            Box(word.left * across, word.top * down, word.width * across, word.height * down),
        )
        for word in page.words
    ]


def in_user_space(page: DocumentPage) -> Found:
    """The model's words in PDF user space, through the page's own ``to_points``."""
    assert page.to_points is not None
    return [(word.text, page.to_points.box(word.box)) for word in page.words]


def missing(expected: Found, extracted: Found, tolerance: float = TOLERANCE) -> list[str]:
    """The expected words no extracted word of the same text matches, inside the box grown by ``tolerance``."""
    pool = list(extracted)
    lost = []
    for text, box in expected:
        for index, (found, where) in enumerate(pool):
            if found == text and _inside(where, box, tolerance):
                del pool[index]
                break
        else:
            lost.append(text)
    return lost


def _inside(inner: Box, outer: Box, tolerance: float) -> bool:
    return (
        inner.left >= outer.left - tolerance
        and inner.top >= outer.top - tolerance
        and inner.right <= outer.right + tolerance
        and inner.bottom <= outer.bottom + tolerance
    )


def assert_found(expected: Found, extracted: Found) -> None:
    lost = missing(expected, extracted)
    assert expected and len(lost) <= (1 - FOUND) * len(expected), (lost, extracted)


def shown_sizes(path: Path) -> list[tuple[float, float]]:
    with pikepdf.open(path) as pdf:
        sizes = []
        for page in pdf.pages:
            box = [float(value) for value in page.mediabox]
            width, height = box[2] - box[0], box[3] - box[1]
            turned = int(page.obj.get("/Rotate", 0)) % 180 == 90
            sizes.append((height, width) if turned else (width, height))
        return sizes


def images_of(path: Path) -> list[list[bytes]]:
    """Each page's image XObjects' stream bytes as stored (still compressed), in resource order."""
    with pikepdf.open(path) as pdf:
        return [
            [
                bytes(xobject.read_raw_bytes())
                for _, xobject in sorted(page.obj.Resources.get("/XObject", {}).items())
                if xobject.get("/Subtype") == "/Image"
            ]
            for page in pdf.pages
        ]


def rendered(path: Path, index: int, scale: float, size: tuple[int, int]) -> np.ndarray:
    """Page ``index`` rendered by PDFium at ``scale``, grey, cut to ``size`` (PDFium rounds up)."""
    document = pypdfium2.PdfDocument(str(path))
    try:
        bitmap = document[index].render(scale=scale, grayscale=True).to_pil().convert("L")
    finally:
        document.close()
    assert abs(bitmap.width - size[0]) <= 1 and abs(bitmap.height - size[1]) <= 1
    return np.asarray(bitmap)[: size[1], : size[0]]


def decoded_pixels(image: pikepdf.Object, mode: str) -> np.ndarray:
    """An image XObject's pixels as pikepdf decodes them, in Pillow ``mode``."""
    assert isinstance(image, pikepdf.Stream)
    return np.asarray(pikepdf.PdfImage(image).as_pil_image().convert(mode))


def pdf_text_range(path: Path, start: int, count: int) -> str:
    pdf = pypdfium2.PdfDocument(str(path))
    try:
        return pdf[0].get_textpage().get_text_range(start, count)
    finally:
        pdf.close()


def pdfa_declared(path: Path) -> bool:
    with pikepdf.open(path) as pdf, pdf.open_metadata() as metadata:
        return "pdfaid:part" in metadata


# --- image inputs --------------------------------------------------------------------------


def test_a_jpeg_passes_through_and_its_words_are_found_where_it_shows_them(
    tmp_path, tesseract
) -> None:
    """A JPEG is the page's image byte for byte, at its size from its dpi; both tools find its words."""
    data = encoded(text_page(), "JPEG", quality=90, dpi=(DPI, DPI))
    source, document = read(tmp_path, "scan.jpg", data, tesseract)
    target, result = written(tmp_path, source, document)
    page = document.pages[0]
    assert (PdfWritten("2b", None, 1), [[data]], [(1500 * 72 / DPI, 420 * 72 / DPI)]) == (
        result,
        images_of(target),
        shown_sizes(target),
    )
    assert_found(displayed(page, shown_sizes(target)[0]), poppler_words(target)[0])
    height = shown_sizes(target)[0][1]
    flipped = [
        (text, Box(box.left, height - box.bottom, box.width, box.height))
        for text, box in displayed(page, shown_sizes(target)[0])
    ]
    assert_found(flipped, pdfium_words(target)[0])


def test_an_image_without_a_usable_dpi_is_placed_at_300_dpi(tmp_path) -> None:
    """No resolution, or one below 100 dpi, means 300 dpi: the page is pixels * 72 / 300 points."""
    sizes = []
    for number, options in enumerate(({}, {"dpi": (72, 72)})):
        data = encoded(text_page(), "PNG", **options)
        source, document = read(tmp_path / str(number), "scan.png", data, FakeEngine())
        target, _ = written(tmp_path / str(number), source, document)
        sizes += shown_sizes(target)
    assert [(360.0, 100.8)] * 2 == sizes


def test_a_bilevel_image_becomes_g4_and_shows_the_same_pixels(tmp_path) -> None:
    """A 1-bit PNG is stored CCITT G4 (lossless): PDFium renders exactly its pixels, black on white."""
    bilevel = text_page().convert("L").point(lambda value: 255 if value > 128 else 0).convert("1")
    source, document = read(
        tmp_path, "scan.png", encoded(bilevel, "PNG", dpi=(DPI, DPI)), FakeEngine()
    )
    target, result = written(tmp_path, source, document)
    with pikepdf.open(target) as pdf:
        image = pdf.pages[0].obj.Resources.XObject.Im0
        decoded = decoded_pixels(image, "L")
        kind = (str(image.Filter), int(image.BitsPerComponent))
    shown = rendered(target, 0, DPI / 72, bilevel.size)
    expected = np.asarray(bilevel.convert("L"))
    assert ("/CCITTFaxDecode", 1, "2b") == (*kind, result.pdfa)
    assert np.array_equal(expected, decoded)
    assert float(np.mean(np.abs(shown.astype(int) - expected))) < 2.0


def test_a_png_keeps_its_compressed_rows(tmp_path) -> None:
    """An RGB PNG's IDAT data is the image stream, read with PNG predictors; it renders as the PNG."""
    image = text_page()
    image.paste((200, 30, 30), (1200, 300, 1400, 400))
    data = encoded(image, "PNG", dpi=(DPI, DPI))
    source, document = read(tmp_path, "scan.png", data, FakeEngine())
    target, result = written(tmp_path, source, document)
    with pikepdf.open(target) as pdf:
        stream = pdf.pages[0].obj.Resources.XObject.Im0
        parameters = int(stream.DecodeParms.Predictor), str(stream.Filter)
        decoded = decoded_pixels(stream, "RGB")
    assert ((15, "/FlateDecode"), "2b") == (parameters, result.pdfa)
    assert np.array_equal(np.asarray(image), decoded)


def _sixteen_bits(image: Image.Image) -> Image.Image:
    return Image.fromarray(np.asarray(image.convert("L")).astype(np.uint16) * 257)


def _with_alpha(image: Image.Image) -> Image.Image:
    """``image`` over a transparent margin: what the OCR saw is the same image over white."""
    rgba = image.convert("RGBA")
    rgba.putalpha(Image.new("L", image.size, 255))
    rgba.paste((0, 0, 0, 0), (0, 0, 40, image.height))
    return rgba


@pytest.mark.parametrize(
    ("name", "made", "verdict"),
    [
        ("grey.png", lambda image: encoded(image.convert("L"), "PNG"), "2b"),
        ("deep.png", lambda image: encoded(_sixteen_bits(image), "PNG"), "2b"),
        ("palette.png", lambda image: encoded(image.convert("P"), "PNG"), "2b"),
        ("alpha.png", lambda image: encoded(_with_alpha(image), "PNG"), "2b"),
        ("scan.gif", lambda image: encoded(image.convert("P"), "GIF"), "2b"),
        ("scan.bmp", lambda image: encoded(image, "BMP"), "2b"),
        ("scan.webp", lambda image: encoded(image, "WEBP", lossless=True), "2b"),
        ("grey.jpg", lambda image: encoded(image.convert("L"), "JPEG", quality=95), "2b"),
        # No CMYK output intent here: DeviceCMYK is not PDF/A under the sRGB intent.
        ("ink.jpg", lambda image: encoded(image.convert("CMYK"), "JPEG", quality=95), "DeviceCMYK"),
        ("ink.tif", lambda image: encoded(image.convert("CMYK"), "TIFF"), "DeviceCMYK"),
    ],
)
def test_each_image_format_shows_the_image_the_engine_read(tmp_path, name, made, verdict) -> None:
    """Grey, 16-bit, palette, alpha (over white), GIF, BMP, WebP, grey and CMYK JPEG, CMYK TIFF."""
    image = text_page()
    image.paste((200, 30, 30), (1200, 300, 1400, 400))
    source, document = read(tmp_path, name, made(image), FakeEngine())
    target, result = written(tmp_path, source, document)
    shown = rendered(target, 0, DPI / 72, image.size)
    expected = np.asarray(image.convert("L")).astype(int)
    if name == "alpha.png":
        expected[:, :40] = 255
    assert float(np.mean(np.abs(shown.astype(int) - expected))) < 4.0
    if verdict == "2b":
        assert ("2b", None) == (result.pdfa, result.pdfa_error)
    else:
        assert (None, True) == (result.pdfa, verdict in (result.pdfa_error or ""))


def test_a_jpeg_turned_by_exif_is_shown_upright_without_touching_its_bytes(tmp_path) -> None:
    """Stored sideways with EXIF orientation 6, the JPEG passes through and the page shows it upright."""
    upright = text_page()
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # orientation 6 turns it back clockwise
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encoded(stored, "JPEG", quality=95, dpi=(DPI, DPI), exif=exif.tobytes())
    source, document = read(tmp_path, "scan.jpg", data, FakeEngine())
    target, _ = written(tmp_path, source, document)
    shown = rendered(target, 0, DPI / 72, upright.size)
    expected = np.asarray(upright.convert("L"))
    assert [[data]] == images_of(target)
    assert float(np.mean(np.abs(shown.astype(int) - expected))) < 4.0


def test_each_page_of_a_multipage_tiff_becomes_a_page_with_its_words(tmp_path, tesseract) -> None:
    """G4 in one strip (passed through), G4 in strips (encoded again), grey LZW, colour JPEG: words found."""
    images = [text_page([line, "second line here"]) for line in [*LINES, "fourth page"]]
    bilevel = [
        image.convert("L").point(lambda value: 255 if value > 128 else 0).convert("1")
        for image in images[:2]
    ]
    dpi = {"dpi": (DPI, DPI)}
    data = tiffs.multipage(
        [
            (bilevel[0], {"compression": "group4", "strip_size": tiffs.ONE_STRIP, **dpi}),
            (bilevel[1], {"compression": "group4", "strip_size": 4096, **dpi}),
            (images[2].convert("L"), {"compression": "tiff_lzw", **dpi}),
            (images[3], {"compression": "jpeg", "quality": 90, **dpi}),
        ]
    )
    source, document = read(tmp_path, "feed.tif", data, tesseract)
    target, result = written(tmp_path, source, document)
    start, end = tiffs.strip(data, 0)
    with pikepdf.open(target) as pdf:
        streams = [page.obj.Resources.XObject.Im0 for page in pdf.pages]
        filters = [str(stream.Filter) for stream in streams]
        second = decoded_pixels(streams[1], "L")
    # G4 as it is, LZW grey as Flate, the JPEG page's strips joined into one DCT image.
    assert (4, ["/CCITTFaxDecode"] * 2 + ["/FlateDecode", "/DCTDecode"], "2b") == (
        result.pages,
        filters,
        result.pdfa,
    )
    assert data[start:end] == images_of(target)[0][0]
    assert np.array_equal(np.asarray(bilevel[1].convert("L")), second)
    for page, shown, words in zip(
        document.pages, shown_sizes(target), poppler_words(target), strict=True
    ):
        assert_found(displayed(page, shown), words)


def test_tiff_pages_turned_by_their_orientation_tag_are_shown_upright(tmp_path) -> None:
    """A G4 page tagged 6 (passed through, turned by its matrix) and an LZW page tagged 8 show upright."""
    upright = text_page()
    bilevel = upright.convert("L").point(lambda value: 255 if value > 128 else 0).convert("1")
    tags = []
    for orientation in (6, 8):
        directory = TiffImagePlugin.ImageFileDirectory_v2()
        directory[0x0112] = orientation
        tags.append(directory)
    dpi = {"dpi": (DPI, DPI)}
    data = tiffs.multipage(
        [
            (
                bilevel.transpose(Image.Transpose.ROTATE_90),
                {
                    "compression": "group4",
                    "strip_size": tiffs.ONE_STRIP,
                    "tiffinfo": tags[0],
                    **dpi,
                },
            ),
            (
                upright.convert("L").transpose(Image.Transpose.ROTATE_270),
                {"compression": "tiff_lzw", "tiffinfo": tags[1], **dpi},
            ),
        ]
    )
    source, document = read(tmp_path, "turned.tif", data, FakeEngine())
    target, _ = written(tmp_path, source, document)
    start, end = tiffs.strip(data, 0)
    assert ([(360.0, 100.8)] * 2, data[start:end]) == (shown_sizes(target), images_of(target)[0][0])
    for index, expected in enumerate((bilevel, upright)):
        shown = rendered(target, index, DPI / 72, upright.size)
        difference = np.abs(shown.astype(int) - np.asarray(expected.convert("L")).astype(int))
        assert float(np.mean(difference)) < 4.0


def user_from_displayed(box: Box, rotation: int, mediabox: Sequence[float]) -> Box:
    """A box in points of a page as displayed (y down) in the page's user space (y up).

    Written out per /Rotate (clockwise), apart from ocrwatch's own map, so that
    the comparison checks that map too.
    """
    x0, y0, x1, y1 = mediabox
    left, top, right, bottom = box.left, box.top, box.right, box.bottom
    corners = {
        0: [(x0 + left, y1 - top), (x0 + right, y1 - bottom)],
        90: [(x0 + top, y0 + left), (x0 + bottom, y0 + right)],
        180: [(x1 - left, y0 + top), (x1 - right, y0 + bottom)],
        270: [(x1 - top, y1 - left), (x1 - bottom, y1 - right)],
    }[rotation % 360]
    (ax, ay), (bx, by) = corners
    return Box(min(ax, bx), min(ay, by), abs(ax - bx), abs(ay - by))


@pytest.mark.parametrize("rotate_pages", [True, False])
def test_a_sideways_page_is_turned_upright_and_its_words_run_along_their_boxes(
    tmp_path, tesseract, rotate_pages
) -> None:
    """Text turned a quarter anticlockwise (Tesseract: 270) gets /Rotate 90 when asked; found either way."""
    page = render.turned(render.printed(1, lines=8), 90)
    data = encoded(page.image, "PNG", dpi=(DPI, DPI))
    source, document = read(tmp_path, "turned.png", data, tesseract)
    target, _ = written(tmp_path, source, document, rotate_pages=rotate_pages)
    with pikepdf.open(target) as pdf:
        rotation = int(pdf.pages[0].obj.get("/Rotate", 0))
        mediabox = [float(value) for value in pdf.pages[0].mediabox]
    entry = document.pages[0]
    assert (270, 90 if rotate_pages else 0) == (entry.orientation, rotation)
    scale = 72 / DPI
    expected = [
        (
            word.text,
            Box(
                word.left * scale,
                mediabox[3] - word.box.bottom * scale,
                word.width * scale,
                word.height * scale,
            ),
        )
        for word in entry.words
    ]
    poppler = [
        (text, user_from_displayed(box, rotation, mediabox))
        for text, box in poppler_words(target)[0]
    ]
    assert_found(expected, poppler)
    assert_found(expected, pdfium_words(target)[0])


# --- PDF inputs ----------------------------------------------------------------------------


def scan_pdf(
    images: Sequence[Image.Image],
    *,
    rotate: Sequence[int] = (),
    offset: tuple[float, float] | None = None,
    layers: Sequence[bytes] = (),
) -> bytes:
    """A PDF of JPEG scans at :data:`DPI`: page ``i`` turned by ``rotate[i]``, the last one's
    MediaBox moved to ``offset`` when given, ``layers[i]`` (content operators) over page ``i``."""
    pdf = pikepdf.new()
    for index, image in enumerate(images):
        turn = rotate[index] if index < len(rotate) else 0
        layer = layers[index] if index < len(layers) else b""
        page = pdfs.add_image_page(
            pdf, pdfs.jpeg_image(pdf, image), dpi=DPI, rotate=turn, text=layer
        )
        if not layer:
            del page.obj.Resources["/Font"]  # unused, and not embedded: no PDF/A
    if offset is not None:
        x, y = offset
        width, height = (float(value) for value in page.mediabox[2:])
        page.obj.MediaBox = pikepdf.Array([x, y, x + width, y + height])
        page.contents_add(pdf.make_stream(f"1 0 0 1 {x} {y} cm\n".encode()), prepend=True)
    return pdfs.save(pdf)


def test_a_scanned_pdf_keeps_its_pages_and_images_and_gains_only_its_text(
    tmp_path, tesseract
) -> None:
    """Upright, /Rotate 90 and an offset MediaBox: images byte for byte, boxes kept, words where shown."""
    upright = text_page()
    data = scan_pdf(
        [upright, upright.transpose(Image.Transpose.ROTATE_90), upright],
        rotate=[0, 90],
        offset=(100.0, 200.0),
    )
    source, document = read(tmp_path, "scan.pdf", data, tesseract)
    target, result = written(tmp_path, source, document)
    with pikepdf.open(io.BytesIO(data)) as before, pikepdf.open(target) as after:
        boxes = [[list(page.mediabox), page.obj.get("/Rotate")] for page in before.pages]
        assert boxes == [[list(page.mediabox), page.obj.get("/Rotate")] for page in after.pages]
    assert (PdfWritten("2b", None, 3), images_of(source)) == (result, images_of(target))
    assert target.stat().st_size - len(data) < 24_000
    for page, shown, poppler, pdfium in zip(
        document.pages,
        shown_sizes(target),
        poppler_words(target),
        pdfium_words(target),
        strict=True,
    ):
        assert_found(displayed(page, shown), poppler)
        assert_found(in_user_space(page), pdfium)


def test_a_cropped_page_gets_its_words_where_its_crop_box_shows_them(tmp_path, tesseract) -> None:
    """A CropBox inside the MediaBox: kept, and the words read in it are where the crop shows them."""
    crop = Box(20.0, 30.0, 300.0, 60.0)  # points, y up: its top is the lower edge
    data = pdfs.with_crop_box(scan_pdf([text_page()]), crop)
    source, document = read(tmp_path, "cropped.pdf", data, tesseract)
    target, result = written(tmp_path, source, document)
    with pikepdf.open(target) as pdf:
        kept = [float(value) for value in pdf.pages[0].obj.CropBox]
    page = document.pages[0]
    assert ([20.0, 30.0, 320.0, 90.0], images_of(source), "2b") == (
        kept,
        images_of(target),
        result.pdfa,
    )
    assert_found(displayed(page, (300.0, 60.0)), poppler_words(target, "-cropbox")[0])
    assert_found(in_user_space(page), pdfium_words(target)[0])


def stale_layer(words: Sequence[render.Placed], image_height: int) -> bytes:
    """An earlier OCR's invisible layer: each word replaced by ``stale<n>``, at its place."""
    renamed = [
        render.Placed(f"stale{index}", w.left, w.top, w.width, w.height)
        for index, w in enumerate(words)
    ]
    return pdfs.text_layer(renamed, dpi=DPI, page_height=image_height * 72 / DPI, invisible=True)


def redo_pdf() -> bytes:
    """Page 1: a scan under an earlier invisible OCR layer; page 2: visible Helvetica text."""
    image, placed = render.page(list(LINES), size=(1500, 420), font_size=44, origin=(60, 50))
    scan = scan_pdf([image], layers=[stale_layer(placed, image.height)])
    with (
        pikepdf.open(io.BytesIO(scan)) as pdf,
        pikepdf.open(io.BytesIO(pdfs.born_digital(["Visible text stays"]))) as text,
    ):
        pdf.pages.append(text.pages[0])
        return pdfs.save(pdf)


def test_redo_replaces_an_old_invisible_layer_and_leaves_visible_text_alone(
    tmp_path, tesseract
) -> None:
    """Under redo the old OCR layer is gone and the new one found; the page with its own text is as it was."""
    source, document = read(tmp_path, "old.pdf", redo_pdf(), tesseract, pdf={"text_layer": "redo"})
    target, _ = written(tmp_path, source, document, pdfa="none")
    poppler = poppler_words(target)
    assert (["ocr", "embedded"], [], ["Visible", "text", "stays"]) == (
        [page.text_source for page in document.pages],
        [text for text, _ in poppler[0] if text.startswith("stale")],
        [text for text, _ in poppler[1]],
    )
    assert_found(displayed(document.pages[0], shown_sizes(target)[0]), poppler[0])
    assert_found(in_user_space(document.pages[0]), pdfium_words(target)[0])


def test_a_failed_page_is_kept_without_text(tmp_path) -> None:
    """A partial document: the failed page is there, image and all, with no text; the others have theirs."""
    data = scan_pdf([text_page()] * 3)
    engine = FakeEngine(failures={"scan-p2": BadInputError("unreadable")})
    source, document = read(tmp_path, "scan.pdf", data, engine)
    target, result = written(tmp_path, source, document)
    words = [[text for text, _ in page] for page in poppler_words(target)]
    assert (["done", "failed", "done"], 3, images_of(source)) == (
        [page.status for page in document.pages],
        result.pages,
        images_of(target),
    )
    assert [["text", "of", "scan"], [], ["text", "of", "scan-p3"]] == words


# --- PDF/A -----------------------------------------------------------------------------------


def test_a_pdf_that_cannot_be_pdfa_is_written_plain_and_says_why(tmp_path) -> None:
    """Helvetica is not embedded: under plain the PDF is written, not declared PDF/A, with the reason."""
    data = pdfs.born_digital(["Helvetica is not embedded"])
    source, document = read(
        tmp_path, "digital.pdf", data, FakeEngine(), pdf={"text_layer": "force"}
    )
    target, result = written(tmp_path, source, document, on_pdfa_failure="plain")
    with pikepdf.open(target) as pdf:
        prepared = "/OutputIntents" in pdf.Root
    # Built again for the plain file: nothing PDF/A's preparation added is left.
    assert (None, True, False, False) == (
        result.pdfa,
        "embedded" in (result.pdfa_error or ""),
        pdfa_declared(target),
        prepared,
    )
    assert {"pdfa": None, "pdfa_error": result.pdfa_error, "pages": 1} == result.describe()


def test_a_pdf_that_cannot_be_pdfa_is_not_written_under_fail(tmp_path) -> None:
    """Under fail the writer raises, naming the finding, and leaves no file."""
    data = pdfs.born_digital(["Helvetica is not embedded"])
    source, document = read(
        tmp_path, "digital.pdf", data, FakeEngine(), pdf={"text_layer": "force"}
    )
    with pytest.raises(PdfOutputError, match="embedded"):
        written(tmp_path, source, document, on_pdfa_failure="fail")
    assert not (tmp_path / "out.pdf").exists()


def test_pdfa_none_writes_a_plain_pdf(tmp_path) -> None:
    """pdfa: none declares nothing and reports nothing."""
    source, document = read(tmp_path, "scan.png", encoded(text_page(), "PNG"), FakeEngine())
    target, result = written(tmp_path, source, document, pdfa="none")
    assert (PdfWritten(None, None, 1), False) == (result, pdfa_declared(target))


# --- the font and the text layer ---------------------------------------------------------------


def test_any_script_comes_back_as_itself(tmp_path) -> None:
    """Accented Latin, CJK, Hebrew, Greek and letters beyond the BMP are extracted as they were read."""
    text = "Grüße 日本語 שלום αβγ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢"
    source, document = read(
        tmp_path, "scan.png", encoded(text_page(), "PNG"), FakeEngine({"scan": text})
    )
    target, result = written(tmp_path, source, document)
    poppler = pdftotext(target, "-raw")
    expected = sorted(text.split())
    assert ("2b", expected, expected) == (
        result.pdfa,
        sorted(BIDI_MARKS.sub("", poppler).split()),
        sorted(word for word, _ in pdfium_words(target)[0]),
    )


def test_a_right_to_left_word_is_searchable_in_reading_order(tmp_path) -> None:
    """PDFium finds a Hebrew word as it is read, over its box."""
    source, document = read(
        tmp_path, "scan.png", encoded(text_page(), "PNG"), FakeEngine({"scan": "שלום עולם"})
    )
    target, _ = written(tmp_path, source, document)
    pdf = pypdfium2.PdfDocument(str(target))
    try:
        found = pdf[0].get_textpage().search("עולם").get_next()
    finally:
        pdf.close()
    assert found is not None and found[1] == 4
    assert "עולם" == pdf_text_range(target, *found)


def test_characters_past_the_last_code_share_the_replacement_character() -> None:
    """65,534 distinct characters get codes 1 to 65,534; every one after them shows as U+FFFD."""
    font = GlyphlessFont(pikepdf.new())
    codes = [font.encode(chr(0x10000 + index)) for index in range(0xFFFF + 10)]
    replacement = font.encode("\ufffd")
    assert (b"\x00\x01", b"\xff\xfe", b"\xff\xff") == (codes[0], codes[0xFFFD], replacement)
    assert {replacement} == set(codes[0xFFFE:])


def test_the_module_imports_without_pikepdf_and_says_what_to_install() -> None:
    """With pikepdf unimportable, importing works and missing_dependency names the extra."""
    program = (
        "import sys; sys.modules['pikepdf'] = None\n"
        "from ocrwatch.outputs.searchable import missing_dependency\n"
        "print(missing_dependency())\n"
    )
    found = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=True
    )
    assert (None, True) == (missing_dependency(), "pip install 'ocrwatch[pdf]'" in found.stdout)


def test_the_searchable_pdf_names_ocrwatch_as_its_creator(tmp_path: Path) -> None:
    inbox = plan_for(tmp_path, formats=["txt", "json", "pdf"]).inboxes[0]
    path = inbox.path / "note.png"
    render.page(["a note"], size=(300, 120))[0].save(path)
    assert Status.DONE == process_file(path, inbox, FakeEngine()).status
    with pikepdf.open(SidecarPaths.of(path).pdf) as pdf, pdf.open_metadata() as metadata:
        assert f"ocrwatch {__version__}" == metadata["xmp:CreatorTool"]
        assert f"ocrwatch {__version__}" == str(pdf.docinfo["/Creator"])
