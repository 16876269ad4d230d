"""hOCR and ALTO written from the page model of real records: structure, boxes, confidences, escaping.

Records come from the real pipeline (a rendered page read by the local
Tesseract engine through a crop; a PDF and a TIFF of several pages read by
the fake engine, one page failing and one empty) and from one record written
by hand, whose every number is worked out below. The files are parsed back
with the standard library's XML parser and compared with the model and with
where the words were drawn. Schema validation is in the reference suite
(``tests/reference/test_alto_schema.py``), which reads the ALTO schema.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pikepdf
import pytest

from ocrwatch.engines.tesseract.engine import TesseractEngine
from ocrwatch.errors import BadInputError
from ocrwatch.layout import Baseline
from ocrwatch.outcome import Status
from ocrwatch.outputs.alto import alto_bytes
from ocrwatch.outputs.hocr import hocr_bytes
from ocrwatch.outputs.model import (
    Block,
    Box,
    Document,
    DocumentPage,
    Line,
    Word,
    document_of,
)
from ocrwatch.pipeline import process_file
from ocrwatch.sidecar import SidecarPaths
from tests.support import pdfs, tiffs
from tests.support.fake_engine import FakeEngine
from tests.support.plans import plan_for
from tests.support.render import Placed, Rendered, page

XHTML = "{http://www.w3.org/1999/xhtml}"
ALTO = "{http://www.loc.gov/standards/alto/ns-v4#}"
DRAWN_TOLERANCE = 8
"""Pixels a word's box may differ on each edge from where it was drawn: Pillow's box of a word of
the bundled font runs up to 6 pixels past the ink of its last digit. Far less than the crop."""
AWKWARD = 'Fish&Chips <tag> "quoted" it\'s café Ωmega 日本'
"""Words that need escaping in XML, and characters beyond ASCII."""

HocrWord = tuple[str, tuple[int, ...], int | None]
AltoWord = tuple[str, tuple[int, ...], float | None]


# reading the files back


def properties(element: ET.Element) -> dict[str, str]:
    """An hOCR ``title`` as its properties: ``{"bbox": "0 0 10 10", ...}``."""
    parts = (part.strip().partition(" ") for part in element.get("title", "").split(";"))
    return {name: value for name, _, value in parts if name}


def numbers(text: str) -> tuple[int, ...]:
    return tuple(int(value) for value in text.split())


def hocr_pages(data: bytes) -> list[ET.Element]:
    root = ET.fromstring(data)
    return [div for div in root.iter(f"{XHTML}div") if div.get("class") == "ocr_page"]


def of_class(element: ET.Element, name: str) -> list[ET.Element]:
    return [found for found in element.iter() if found.get("class") == name]


def hocr_words(element: ET.Element) -> list[HocrWord]:
    """Each ``ocrx_word`` under ``element`` in document order: text, bbox, x_wconf."""
    words = []
    for span in of_class(element, "ocrx_word"):
        found = properties(span)
        confidence = int(found["x_wconf"]) if "x_wconf" in found else None
        words.append((span.text or "", numbers(found["bbox"]), confidence))
    return words


def alto_pages(data: bytes) -> list[ET.Element]:
    return list(ET.fromstring(data).iter(f"{ALTO}Page"))


def alto_box(element: ET.Element) -> tuple[int, ...]:
    """``left, top, right, bottom`` of an ALTO element, to compare with hOCR's bbox."""
    left, top = int(element.get("HPOS", "")), int(element.get("VPOS", ""))
    return left, top, left + int(element.get("WIDTH", "")), top + int(element.get("HEIGHT", ""))


def alto_words(element: ET.Element) -> list[AltoWord]:
    """Each ``String`` under ``element`` in document order: content, box, WC."""
    return [
        (
            string.get("CONTENT", ""),
            alto_box(string),
            float(string.get("WC", "")) if "WC" in string.attrib else None,
        )
        for string in element.iter(f"{ALTO}String")
    ]


def ids(data: bytes, attribute: str) -> list[str]:
    return [found for element in ET.fromstring(data).iter() if (found := element.get(attribute))]


def encloses(pixels: tuple[int, ...], word: Word) -> bool:
    """``pixels`` is ``word``'s box grown outward to whole pixels: by less than one on each side."""
    left, top, right, bottom = pixels
    gaps = [
        word.left - left,
        word.top - top,
        right - (word.left + word.width),
        bottom - (word.top + word.height),
    ]
    return all(-0.01 <= gap < 1 for gap in gaps)


def check_words_match_model(document: Document) -> None:
    """Both files hold every word of every page once, in order, on its own page, boxed outward."""
    hocr, alto = hocr_bytes(document), alto_bytes(document)
    for model, hocr_page, alto_page in zip(
        document.pages, hocr_pages(hocr), alto_pages(alto), strict=True
    ):
        expected = [word.text for word in model.words]
        in_hocr, in_alto = hocr_words(hocr_page), alto_words(alto_page)
        assert expected == [text for text, _, _ in in_hocr]
        assert expected == [text for text, _, _ in in_alto]
        assert [True] * len(expected) == [
            encloses(box, word) for word, (_, box, _) in zip(model.words, in_hocr, strict=True)
        ]
        assert [box for _, box, _ in in_hocr] == [box for _, box, _ in in_alto]
        assert [word.confidence is not None for word in model.words] == [
            confidence is not None for _, _, confidence in in_hocr
        ]
        assert [confidence is not None for _, _, confidence in in_hocr] == [
            confidence is not None for _, _, confidence in in_alto
        ]
    assert len(set(ids(hocr, "id"))) == len(ids(hocr, "id"))
    assert len(set(ids(alto, "ID"))) == len(ids(alto, "ID"))


# records from the pipeline


def record_of(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SidecarPaths.of(path).result.read_text())
    return data


LINES = ["Invoice number 4711", "Payable within thirty days", "Thank you"]
CROP = {"left": 40, "top": 30}


@pytest.fixture(scope="module")
def tesseract_read(tmp_path_factory: pytest.TempPathFactory) -> tuple[Document, list[Placed]]:
    """A 1100 x 420 page of three lines read by Tesseract through a crop: the model, the drawn words."""
    folder = tmp_path_factory.mktemp("tesseract")
    inbox = plan_for(folder, crop=CROP).inboxes[0]
    image, placed = page(LINES, size=(1100, 420), origin=(80, 70), font_size=40)
    path = inbox.path / "letter.png"
    image.save(path)
    engine = TesseractEngine(env={})
    try:
        assert Status.DONE == process_file(path, inbox, engine).status
    finally:
        engine.close()
    return document_of(record_of(path)), placed


def test_a_tesseract_page_keeps_its_size_and_each_word_where_it_was_drawn_with_a_confidence(
    tesseract_read: tuple[Document, list[Placed]],
) -> None:
    """One page of the image's size; each drawn word once, where it was drawn, with its confidence."""
    document, placed = tesseract_read
    check_words_match_model(document)
    (hocr_page,) = hocr_pages(hocr_bytes(document))
    (alto_page,) = alto_pages(alto_bytes(document))
    assert ("0 0 1100 420", "0") == (
        properties(hocr_page)["bbox"],
        properties(hocr_page)["ppageno"],
    )
    assert ("1100", "420", "1") == (
        alto_page.get("WIDTH"),
        alto_page.get("HEIGHT"),
        alto_page.get("PHYSICAL_IMG_NR"),
    )
    words = hocr_words(hocr_page)
    assert [drawn.text for drawn in placed] == [text for text, _, _ in words]
    # At their place on the whole page, not in the cropped image the engine saw.
    drawn_boxes = [
        (drawn.left, drawn.top, drawn.left + drawn.width, drawn.top + drawn.height)
        for drawn in placed
    ]
    assert [True] * len(placed) == [
        all(abs(found - drawn) <= DRAWN_TOLERANCE for found, drawn in zip(box, truth, strict=True))
        for (_, box, _), truth in zip(words, drawn_boxes, strict=True)
    ]
    # Every word read by Tesseract has a confidence, the same in both files (x_wconf is whole).
    pairs = [
        (confidence, wc)
        for (_, _, confidence), (_, _, wc) in zip(words, alto_words(alto_page), strict=True)
    ]
    assert [True] * len(words) == [
        confidence is not None and wc is not None and abs(confidence / 100 - wc) <= 0.005
        for confidence, wc in pairs
    ]
    assert [True] * len(words) == [wc is not None and 0.5 < wc <= 1 for _, wc in pairs]


def test_a_tesseract_page_has_a_line_per_drawn_line_with_its_baseline_and_spaces(
    tesseract_read: tuple[Document, list[Placed]],
) -> None:
    """hOCR's baseline sits inside the line's box near its bottom; ALTO's is the model's two points."""
    document, _ = tesseract_read
    (hocr_page,) = hocr_pages(hocr_bytes(document))
    (alto_page,) = alto_pages(alto_bytes(document))
    hocr_lines = of_class(hocr_page, "ocr_line")
    alto_lines = list(alto_page.iter(f"{ALTO}TextLine"))
    assert [len(line.split()) for line in LINES] == [
        len(of_class(line, "ocrx_word")) for line in hocr_lines
    ]
    assert [len(line.split()) - 1 for line in LINES] == [
        len(line.findall(f"{ALTO}SP")) for line in alto_lines
    ]
    for hocr_line, alto_line in zip(hocr_lines, alto_lines, strict=True):
        left, top, right, bottom = numbers(properties(hocr_line)["bbox"])
        slope, offset = (float(value) for value in properties(hocr_line)["baseline"].split())
        assert (left, top, right, bottom) == alto_box(alto_line)
        # Text 40 pixels high drawn level: the baseline is flat and above the descenders.
        assert abs(slope) < 0.01 and -(bottom - top) / 2 < offset <= 0
        (x0, y0), (x1, y1) = (
            tuple(int(value) for value in point.split(","))
            for point in alto_line.get("BASELINE", "").split()
        )
        assert left - 2 <= x0 < x1 <= right + 2 and top < y0 <= bottom and top < y1 <= bottom
        assert pytest.approx(bottom + offset, abs=1.5) == y0 + slope * (left - x0)


def scanned_pdf(path: Path) -> Path:
    """Three JPEG pages at 150 dpi: landscape, landscape, portrait (rendered at 200 dpi)."""
    pdf = pikepdf.new()
    for number, size in enumerate([(300, 200), (300, 200), (200, 300)], start=1):
        image, _ = page([f"page {number}"], size=size, font_size=24)
        pdfs.add_image_page(pdf, pdfs.jpeg_image(pdf, image), dpi=150)
    path.write_bytes(pdfs.save(pdf))
    return path


@pytest.fixture(scope="module")
def partial_pdf(tmp_path_factory: pytest.TempPathFactory) -> Document:
    """The three-page PDF read through a crop by the fake engine: page 2 fails, page 3 has no text."""
    inbox = plan_for(tmp_path_factory.mktemp("pdf"), crop={"left": 50, "top": 20}).inboxes[0]
    path = scanned_pdf(inbox.path / "scan.pdf")
    engine = FakeEngine(
        texts={"scan": AWKWARD, "scan-p3": ""},
        failures={"scan-p2": BadInputError('E301: page <unreadable> & "gone"')},
    )
    engine.page_workers = 1
    assert Status.PARTIAL == process_file(path, inbox, engine).status
    return document_of(record_of(path))


def test_every_page_of_a_partial_pdf_is_a_page_with_its_own_size(partial_pdf: Document) -> None:
    """Three pages each way, sized as the record says (portrait stays portrait), ppageno from 0."""
    sizes = [(model.width, model.height) for model in partial_pdf.pages]
    assert [(400, 267), (400, 267), (267, 400)] == sizes  # page 2 opened, then failed
    hocr = hocr_pages(hocr_bytes(partial_pdf))
    assert [
        {"image": '"scan.pdf"', "bbox": "0 0 400 267", "ppageno": "0", "scan_res": "200 200"},
        {"image": '"scan.pdf"', "bbox": "0 0 400 267", "ppageno": "1", "scan_res": "200 200"},
        {"image": '"scan.pdf"', "bbox": "0 0 267 400", "ppageno": "2", "scan_res": "200 200"},
    ] == [properties(element) for element in hocr]
    alto = alto_pages(alto_bytes(partial_pdf))
    assert [("400", "267"), ("400", "267"), ("267", "400")] == [
        (element.get("WIDTH"), element.get("HEIGHT")) for element in alto
    ]
    assert ["1", "2", "3"] == [element.get("PHYSICAL_IMG_NR") for element in alto]


def test_the_failed_and_the_empty_page_are_empty_and_the_failure_is_said(
    partial_pdf: Document,
) -> None:
    """No words on pages 2 and 3; in ALTO page 2 points at a processing step that gives the error."""
    hocr, alto = hocr_bytes(partial_pdf), alto_bytes(partial_pdf)
    assert [7, 0, 0] == [len(hocr_words(element)) for element in hocr_pages(hocr)]
    assert [[], []] == [list(element) for element in hocr_pages(hocr)[1:]]
    pages = alto_pages(alto)
    assert [7, 0, 0] == [len(alto_words(element)) for element in pages]
    assert [[], []] == [list(element.iter(f"{ALTO}TextBlock")) for element in pages[1:]]
    steps = {step.get("ID"): step for step in ET.fromstring(alto).iter(f"{ALTO}Processing")}
    failed = steps[pages[1].get("PROCESSINGREFS", "")]
    assert ("other", 'page 2 could not be read: E301: page <unreadable> & "gone"') == (
        failed.findtext(f"{ALTO}processingCategory"),
        failed.findtext(f"{ALTO}processingStepDescription"),
    )
    assert ["processing_ocr", "processing_ocr"] == [
        element.get("PROCESSINGREFS") for element in (pages[0], pages[2])
    ]
    assert "contentGeneration" == steps["processing_ocr"].findtext(f"{ALTO}processingCategory")


def test_words_needing_escapes_round_trip_at_the_crop_offset_without_confidence(
    partial_pdf: Document,
) -> None:
    """The fake engine's words, read from a crop at (50, 20), come back as they were, at their place."""
    check_words_match_model(partial_pdf)
    hocr = hocr_bytes(partial_pdf)
    expected = [
        (text, (50 + 10 * index, 20, 58 + 10 * index, 30), None)
        for index, text in enumerate(AWKWARD.split())
    ]
    assert expected == hocr_words(hocr_pages(hocr)[0])
    assert expected == alto_words(alto_pages(alto_bytes(partial_pdf))[0])
    assert b"x_wconf" not in hocr and b"WC=" not in alto_bytes(partial_pdf)
    capabilities = [
        meta.get("content")
        for meta in ET.fromstring(hocr).iter(f"{XHTML}meta")
        if meta.get("name") == "ocr-capabilities"
    ]
    assert ["ocr_page ocr_carea ocr_par ocr_line ocrx_word"] == capabilities


def test_a_multipage_tiff_gives_each_page_its_resolution_and_words(tmp_path: Path) -> None:
    """A two-page 300-dpi TIFF: scan_res 300, each page's size and its own words."""
    inbox = plan_for(tmp_path).inboxes[0]
    pages = [Rendered(page(["one"], size=size)[0], "one") for size in [(320, 200), (200, 320)]]
    path = inbox.path / "feed.tif"
    path.write_bytes(tiffs.feeder(pages, dpi=300))
    engine = FakeEngine(texts={"feed": "first page", "feed-p2": "second page here"})
    assert Status.DONE == process_file(path, inbox, engine).status
    document = document_of(record_of(path))
    check_words_match_model(document)
    hocr = hocr_pages(hocr_bytes(document))
    assert [("0 0 320 200", "300 300", 2), ("0 0 200 320", "300 300", 3)] == [
        (properties(element)["bbox"], properties(element)["scan_res"], len(hocr_words(element)))
        for element in hocr
    ]


# a record written by hand, every number known


def hand_record() -> dict[str, Any]:
    """Four pages: two blocks with baselines and confidences; a failed page; an empty page; a
    page of a PDF's own text (words without lines). Names and texts need escaping."""
    words = [
        # text, left, top, width, height, line, confidence
        ("Tom&Jerry", 10.4, 20.6, 30.2, 15.0, 0, 91.6),
        ("<b>", 45.0, 20.0, 20.2, 16.0, 0, 50.0),  # right edge 65.2: pixel 65 is touched
        ('"quoted"', 10.0, 40.0, 50.0, 16.0, 1, None),
        ("naïve\u0007", 150.5, 80.0, 60.0, 15.0, 2, 100.0),
    ]
    lines = [
        # left, top, width, height, block, baseline
        (10.0, 18.0, 60.0, 20.0, 0, [[10.0, 35.0], [70.0, 36.2]]),
        (10.0, 40.0, 50.0, 16.0, 0, None),
        (150.5, 78.0, 60.0, 18.0, 1, [[150.5, 90.0], [210.5, 90.0]]),
    ]
    keys = ("text", "left", "top", "width", "height", "line", "confidence")
    first = {
        "words": [dict(zip(keys, word, strict=True)) for word in words],
        "lines": [
            dict(zip(("left", "top", "width", "height", "block", "baseline"), line, strict=True))
            for line in lines
        ],
    }
    embedded = {
        "words": [
            {
                "text": text,
                "left": left,
                "top": 5.0,
                "width": 20.0,
                "height": 10.0,
                "line": 0,
                "confidence": None,
            }
            for text, left in (("own", 5.0), ("text", 30.0))
        ],
        "lines": [],
    }
    return {
        "schema_version": 2,
        "ocrwatch_version": "9.9.9",
        "source": {"name": 'a "b" & <c>.pdf'},
        "document": {"format": "PDF"},
        "engine": {"name": "tesseract", "tesseract": "5.3.4", "deskew": True},
        "settings": {"language": "eng"},
        "pages": [
            {
                "number": 1,
                "status": "done",
                "text_source": "ocr",
                "text": "x",
                "image": {"width": 200, "height": 100, "dpi": [150.0, 150.0]},
                "results": [first],
            },
            {
                "number": 2,
                "status": "failed",
                "text_source": None,
                "text": "",
                "results": [],
                "error": {"classification": "engine", "message": 'tesseract <crashed> & "died"'},
            },
            {
                "number": 3,
                "status": "done",
                "text_source": "ocr",
                "text": "",
                "image": {"width": 100, "height": 200, "dpi": None},
                "results": [{"words": []}],
            },
            {
                "number": 4,
                "status": "done",
                "text_source": "embedded",
                "text": "own text",
                "image": {"width": 100, "height": 50, "dpi": [72.0, 72.0]},
                "results": [embedded],
            },
        ],
    }


def test_hocr_of_a_hand_made_record_has_exactly_the_worked_out_markup() -> None:
    """Boxes grown outward and kept on the page, baselines as slope and offset, escapes, meta."""
    document = document_of(hand_record())
    hocr = hocr_bytes(document)
    root = ET.fromstring(hocr)
    assert 'a "b" & <c>.pdf' == root.findtext(f"{XHTML}head/{XHTML}title")
    meta = {element.get("name"): element.get("content") for element in root.iter(f"{XHTML}meta")}
    assert ("ocrwatch 9.9.9 (tesseract 5.3.4)", "4") == (
        meta["ocr-system"],
        meta["ocr-number-of-pages"],
    )
    assert "ocr_page ocr_carea ocr_par ocr_line ocrx_word ocrp_wconf" == meta["ocr-capabilities"]
    first, failed, empty, own = hocr_pages(hocr)
    assert 'image "a \\"b\\" & <c>.pdf"; bbox 0 0 200 100; ppageno 0; scan_res 150 150' == (
        first.get("title")
    )
    assert ('image "a \\"b\\" & <c>.pdf"; ppageno 1', []) == (failed.get("title"), list(failed))
    assert ("0 0 100 200", []) == (properties(empty)["bbox"], list(empty))
    assert [
        ("Tom&Jerry", (10, 20, 41, 36), 92),
        ("<b>", (45, 20, 66, 36), 50),
        ('"quoted"', (10, 40, 60, 56), None),
        ("naïve\ufffd", (150, 80, 200, 95), 100),  # 210.5 is off the 200-pixel page
    ] == hocr_words(first)
    assert [("bbox 10 18 70 56", "block_1_1"), ("bbox 150 78 200 96", "block_1_2")] == [
        (element.get("title"), element.get("id")) for element in of_class(first, "ocr_carea")
    ]
    assert ["par_1_1", "par_1_2"] == [element.get("id") for element in of_class(first, "ocr_par")]
    # Line 1: slope 1.2 / 60; at the box's left (x 10) the baseline is at y 35, 3 above its bottom.
    assert [
        "bbox 10 18 70 38; baseline 0.02 -3",
        "bbox 10 40 60 56",
        "bbox 150 78 200 96; baseline 0 -6",
    ] == [element.get("title") for element in of_class(first, "ocr_line")]
    assert [("own", (5, 5, 25, 15), None), ("text", (30, 5, 50, 15), None)] == hocr_words(own)
    assert ["page_4", "block_4_1", "par_4_1", "line_4_1", "word_4_1", "word_4_2"] == [
        element.get("id") for element in own.iter() if element.get("class", "").startswith("ocr")
    ]


def test_alto_of_a_hand_made_record_has_exactly_the_worked_out_markup() -> None:
    """Same boxes as the hOCR, WC over 1, SP over the gap, BASELINE points, steps per page."""
    document = document_of(hand_record())
    alto = alto_bytes(document)
    root = ET.fromstring(alto)
    assert ("4.4", "pixel", 'a "b" & <c>.pdf') == (
        root.get("SCHEMAVERSION"),
        root.findtext(f"{ALTO}Description/{ALTO}MeasurementUnit"),
        root.findtext(f"{ALTO}Description/{ALTO}sourceImageInformation/{ALTO}fileName"),
    )
    steps = {step.get("ID"): step for step in root.iter(f"{ALTO}Processing")}
    assert ["processing_ocr", "processing_embedded", "processing_failed_2"] == list(steps)
    ocr = steps["processing_ocr"]
    assert (
        "text recognition by tesseract 5.3.4",
        "engine: tesseract; language: eng; tesseract: 5.3.4; deskew: True",
        "ocrwatch",
        "9.9.9",
        "hot-folder OCR daemon; OCR engine: tesseract 5.3.4",
    ) == (
        ocr.findtext(f"{ALTO}processingStepDescription"),
        ocr.findtext(f"{ALTO}processingStepSettings"),
        ocr.findtext(f"{ALTO}processingSoftware/{ALTO}softwareName"),
        ocr.findtext(f"{ALTO}processingSoftware/{ALTO}softwareVersion"),
        ocr.findtext(f"{ALTO}processingSoftware/{ALTO}applicationDescription"),
    )
    assert 'page 2 could not be read: tesseract <crashed> & "died"' == steps[
        "processing_failed_2"
    ].findtext(f"{ALTO}processingStepDescription")
    first, failed, empty, own = alto_pages(alto)
    assert [
        ("page_1", "1", "200", "100", "processing_ocr"),
        ("page_2", "2", None, None, "processing_failed_2"),
        ("page_3", "3", "100", "200", "processing_ocr"),
        ("page_4", "4", "100", "50", "processing_embedded"),
    ] == [
        (
            p.get("ID"),
            p.get("PHYSICAL_IMG_NR"),
            p.get("WIDTH"),
            p.get("HEIGHT"),
            p.get("PROCESSINGREFS"),
        )
        for p in (first, failed, empty, own)
    ]
    assert [(0, 0, 200, 100), (0, 0, 100, 200), {}] == [alto_box(p[0]) for p in (first, empty)] + [
        failed[0].attrib
    ]  # the failed page's PrintSpace: no size is known
    assert [
        ("Tom&Jerry", (10, 20, 41, 36), 0.916),
        ("<b>", (45, 20, 66, 36), 0.5),
        ('"quoted"', (10, 40, 60, 56), None),
        ("naïve\ufffd", (150, 80, 200, 95), 1.0),
    ] == alto_words(first)
    assert [(10, 18, 70, 56), (150, 78, 200, 96)] == [
        alto_box(block) for block in first.iter(f"{ALTO}TextBlock")
    ]
    lines = list(first.iter(f"{ALTO}TextLine"))
    assert [
        ("10,35 70,36", (10, 18, 70, 38)),
        (None, (10, 40, 60, 56)),
        ("150,90 210,90", (150, 78, 200, 96)),
    ] == [(line.get("BASELINE"), alto_box(line)) for line in lines]
    # The gap between Tom&Jerry (right edge 41) and <b> (left edge 45), as high as the line.
    assert [{"HPOS": "41", "VPOS": "18", "WIDTH": "4", "HEIGHT": "20"}] == [
        space.attrib for space in lines[0].findall(f"{ALTO}SP")
    ]
    assert [["String", "SP", "String"], ["String"], ["String"]] == [
        [child.tag.removeprefix(ALTO) for child in line] for line in lines
    ]
    assert [None, None] == [p.find(f"{ALTO}PrintSpace/{ALTO}TextBlock") for p in (failed, empty)]


def test_touching_words_get_a_bare_space_and_confidences_stay_in_range() -> None:
    """Overlapping words still get an SP, without a box of negative width; confidences out of
    0..100 are clamped, and a confidence of 0 is a confidence, not a missing one."""
    words = (
        Word("over", 10.0, 10.0, 30.0, 10.0, confidence=-1.0),
        Word("lap", 35.0, 10.0, 20.0, 10.0, confidence=100.5),
        Word("zero", 60.0, 10.0, 20.0, 10.0, confidence=0.0),
    )
    line = Line(Box(10.0, 10.0, 70.0, 10.0), words, baseline=None)
    document = Document(
        name="x.png",
        format="PNG",
        engine="fake",
        engine_settings={},
        ocrwatch_version="",
        pages=(DocumentPage(1, "done", 100, 50, None, "", "ocr", (Block(line.box, (line,)),)),),
    )
    (alto_page,) = alto_pages(alto_bytes(document))
    assert [0.0, 1.0, 0.0] == [wc for _, _, wc in alto_words(alto_page)]
    assert [{}, {"HPOS": "55", "VPOS": "10", "WIDTH": "5", "HEIGHT": "10"}] == [
        space.attrib for space in alto_page.iter(f"{ALTO}SP")
    ]
    hocr = ET.fromstring(hocr_bytes(document))
    assert [0, 100, 0] == [confidence for _, _, confidence in hocr_words(hocr)]
    system = [meta.get("content") for meta in hocr.iter(f"{XHTML}meta")][1]
    assert "ocrwatch (fake)" == system


def long_document(pages: int, *, lines: int, words: int) -> Document:
    """``pages`` A4 pages at 300 dpi of ``lines`` lines of ``words`` words, each with a baseline."""
    built = []
    for number in range(1, pages + 1):
        page_lines = []
        for row in range(lines):
            top = 100.0 + 60 * row
            row_words = tuple(
                Word(
                    f"w{number}.{row}.{column}",
                    100.0 + 90 * column,
                    top,
                    80.0,
                    40.0,
                    confidence=90.0,
                )
                for column in range(words)
            )
            baseline: Baseline = ((100.0, top + 32), (100.0 + 90 * words, top + 32))
            page_lines.append(Line(Box(100.0, top, 90.0 * words, 40.0), row_words, baseline))
        block = Block(Box.around([line.box for line in page_lines]), tuple(page_lines))
        built.append(DocumentPage(number, "done", 2480, 3508, 300.0, "", "ocr", (block,)))
    return Document("long.tif", "TIFF", "tesseract", {}, "0.1.0", tuple(built))


def test_a_500_page_document_keeps_every_page_and_word_in_order() -> None:
    """500 pages of 4 lines of 5 words: 500 pages, 10 000 words in order, ids unique."""
    document = long_document(500, lines=4, words=5)
    expected = [word.text for model in document.pages for word in model.words]
    hocr, alto = ET.fromstring(hocr_bytes(document)), ET.fromstring(alto_bytes(document))
    hocr_ids = [found for element in hocr.iter() if (found := element.get("id"))]
    alto_ids = [found for element in alto.iter() if (found := element.get("ID"))]
    assert (500, 500) == (len(of_class(hocr, "ocr_page")), len(list(alto.iter(f"{ALTO}Page"))))
    assert expected == [text for text, _, _ in hocr_words(hocr)]
    assert expected == [text for text, _, _ in alto_words(alto)]
    assert len(set(hocr_ids)) == len(hocr_ids) == 500 * (1 + 2 + 4 + 20)
    assert len(set(alto_ids)) == len(alto_ids) == 1 + 500 * (1 + 1 + 4 + 20)
