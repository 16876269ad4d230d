"""Pages bound for ocr.space found sideways here, sent upright, and their words placed on the page
as it is: Tesseract's orientation detection on rendered pages, and the pipeline against the local
ocr.space server."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from PIL import Image

from ocrwatch.apikey import ApiKey
from ocrwatch.config import OcrSpaceConfig
from ocrwatch.engines.ocrspace.client import OcrSpaceEngine
from ocrwatch.engines.tesseract import languages, osd
from ocrwatch.layout import Box
from ocrwatch.outcome import Status
from ocrwatch.outputs.model import has_words
from ocrwatch.pipeline import process_file
from ocrwatch.plan import InboxPlan, Rules
from ocrwatch.sidecar import SidecarPaths
from tests.support import render
from tests.support.commands import KEY, record
from tests.support.ocrspace_server import FakeOcrSpace, RecordedRequest
from tests.support.plans import plan_for

LINES = list(render.PROSE[:6])
UPRIGHT_SIZE = (1300, 560)
"""Width and height of the page as written: wider than high, so a quarter turn shows."""
FONT_SIZE = 30
BOX_TOLERANCE = 8
"""Pixels a word's box as Tesseract finds it may differ from the box it was drawn in."""


@pytest.fixture(scope="module")
def finder() -> Iterator[osd.OrientationFinder]:
    found = osd.OrientationFinder(languages.tessdata_dir(None, {}))
    yield found
    found.close()


@pytest.fixture(scope="module")
def drawn() -> tuple[np.ndarray, list[render.Placed]]:
    """A page of prose, upright, as BGR pixels, with the box of every word drawn."""
    image, words = render.page(LINES, size=UPRIGHT_SIZE, origin=(40, 40), font_size=FONT_SIZE)
    return cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2BGR), words


def anticlockwise(pixels: np.ndarray, quarters: int) -> np.ndarray:
    """``pixels`` turned ``quarters`` quarter turns anticlockwise, as a scanner might lay a page."""
    return np.ascontiguousarray(np.rot90(pixels, k=quarters))


@pytest.mark.parametrize("quarters", [0, 1, 2, 3])
def test_a_page_turned_any_quarter_is_found_and_stood_upright(
    finder: osd.OrientationFinder, drawn: tuple[np.ndarray, list[render.Placed]], quarters: int
) -> None:
    """A page turned n quarters anticlockwise must turn n quarters clockwise, which restores it."""
    upright, _ = drawn
    turned = anticlockwise(upright, quarters)
    found = finder.orientation(turned)
    assert (90 * quarters, 90 * quarters) == (found.degrees, found.detected)
    assert found.confidence >= osd.MIN_CONFIDENCE
    assert np.array_equal(upright, found.upright(turned))


@pytest.mark.parametrize(
    ("transpose", "degrees"),
    [(Image.Transpose.ROTATE_90, 90), (Image.Transpose.ROTATE_270, 270)],
)
def test_a_grey_page_turned_by_pil_is_found(
    finder: osd.OrientationFinder, transpose: Image.Transpose, degrees: int
) -> None:
    """A grey page turned by PIL (anticlockwise quarter, then three) needs the same clockwise turn."""
    image, _ = render.page(LINES, size=UPRIGHT_SIZE, font_size=FONT_SIZE)
    turned = np.asarray(image.convert("L").transpose(transpose)).copy()
    assert degrees == finder.orientation(turned).degrees


def test_a_page_with_a_word_blots_or_nothing_is_taken_as_upright(
    finder: osd.OrientationFinder,
) -> None:
    """OSD on a near-empty page is noise: a lone word turned sideways, ink blots, a blank page
    are all taken as upright."""
    lone, _ = render.page(["Total"], size=(900, 700), origin=(300, 300), font_size=FONT_SIZE)
    sideways = anticlockwise(np.asarray(lone.convert("L")), 1)
    blots = np.full((1000, 1000), 255, np.uint8)
    rng = np.random.default_rng(1)
    for _ in range(300):
        x, y = (int(value) for value in rng.integers(0, 980, 2))
        cv2.circle(blots, (x, y), int(rng.integers(5, 12)), 0, -1)
    blank = np.full((700, 900), 255, np.uint8)
    assert [0, 0, 0] == [finder.orientation(page).degrees for page in (sideways, blots, blank)]


def test_a_turn_found_without_enough_confidence_is_not_made(
    drawn: tuple[np.ndarray, list[render.Placed]],
) -> None:
    """Below the confidence threshold the page counts as upright; what OSD said is kept apart."""
    unsure = osd.OrientationFinder(languages.tessdata_dir(None, {}), min_confidence=1000.0)
    try:
        found = unsure.orientation(anticlockwise(drawn[0], 1))
    finally:
        unsure.close()
    assert (0, 90) == (found.degrees, found.detected)


def test_a_large_page_is_looked_at_shrunk_and_grey() -> None:
    """The copy OSD reads keeps the page's shape within the long side; a small page is not grown."""
    large = np.zeros((3508, 2480, 3), np.uint8)
    small = np.zeros((300, 400), np.uint8)
    assert [(2000, 1414), (300, 400)] == [osd.osd_copy(page).shape for page in (large, small)]


@pytest.mark.parametrize("degrees", [0, 90, 180, 270])
def test_the_map_back_puts_a_box_where_it_was_on_the_page(degrees: int) -> None:
    """A marked box on a 7 x 5 page, stood upright, is found there; the map back gives the box."""
    page = np.zeros((5, 7), np.uint8)
    page[1:4, 2:3] = 255  # left 2, top 1, width 1, height 3
    orientation = osd.Orientation(degrees=degrees, confidence=10.0, detected=degrees)
    turned = orientation.upright(page)
    rows, columns = np.nonzero(turned)
    seen = Box(
        float(columns.min()),
        float(rows.min()),
        float(columns.max() - columns.min() + 1),
        float(rows.max() - rows.min() + 1),
    )
    assert Box(2.0, 1.0, 1.0, 3.0) == orientation.back(7, 5).box(seen)


def test_without_the_osd_model_detection_says_so(tmp_path: Path) -> None:
    """A folder without osd.traineddata cannot detect: the finder raises, naming the model."""
    finder = osd.OrientationFinder(tmp_path)
    with pytest.raises(osd.OsdUnavailable, match="osd.traineddata"):
        finder.orientation(np.full((100, 100), 255, np.uint8))


def test_a_pdf_is_never_sent_whole_when_its_pages_are_oriented_here() -> None:
    """Whole-PDF uploads are read by ocr.space in its own frame: pages mode is used instead."""
    options = (("max_upload_bytes", 1_000_000),)
    whole = Rules(engine="ocrspace", pdf_upload="document", engine_options=options)
    oriented = Rules(
        engine="ocrspace", pdf_upload="document", engine_options=options, orient_locally=True
    )
    assert (True, False) == (whole.sends_pdf_whole(1000, 2), oriented.sends_pdf_whole(1000, 2))


# --------------------------------------------------------------------------
# Through the pipeline, against the local ocr.space server


def read_through(
    tmp_path: Path, image: np.ndarray, *, name: str = "scan.png", **inbox: Any
) -> tuple[dict[str, Any], RecordedRequest]:
    """``image`` (BGR) written into an inbox and read by the pipeline; its record and its request."""
    plan: InboxPlan = plan_for(tmp_path, **inbox).inboxes[0]
    path = plan.path / name
    cv2.imwrite(str(path), image)
    with FakeOcrSpace(mode="tesseract", api_key=KEY) as fake:
        engine = OcrSpaceEngine(OcrSpaceConfig(endpoint=(fake.url,)), ApiKey(KEY, "test"))
        try:
            outcome = process_file(path, plan, engine)
        finally:
            engine.close()
        (request,) = fake.requests
    assert Status.DONE == outcome.status, outcome
    assert () == request.problems
    return record(path), request


def uploaded(request: RecordedRequest) -> np.ndarray:
    """The grey pixels the server received."""
    pixels = cv2.imdecode(np.frombuffer(request.data, np.uint8), cv2.IMREAD_GRAYSCALE)
    assert pixels is not None, request.filename
    return np.asarray(pixels, np.uint8)


@pytest.mark.parametrize(("left", "top"), [(0, 0), (20, 100)])
def test_a_sideways_page_is_sent_upright_and_its_words_land_on_the_page_as_it_is(
    tmp_path: Path, drawn: tuple[np.ndarray, list[render.Placed]], left: int, top: int
) -> None:
    """Text running bottom to top goes up upright with detectOrientation=false, cropped or not;
    every word's box is where that word is drawn on the sideways page, tall and narrow, and the
    page model takes the record."""
    upright, placed = drawn
    width, height = UPRIGHT_SIZE
    sideways = anticlockwise(upright, 1)  # (x, y) on the upright page is (y, width - x) here
    crop: dict[str, Any] = {"crop": {"left": left, "top": top}} if left or top else {}
    data, request = read_through(tmp_path, sideways, formats=["txt", "json", "alto"], **crop)
    assert "false" == request.form["detectOrientation"]
    part = cv2.cvtColor(sideways[top:, left:], cv2.COLOR_BGR2GRAY)
    sent = uploaded(request)
    assert (height - left, width - top) == sent.shape
    assert float(np.mean(cv2.absdiff(sent, np.rot90(part, k=-1)))) < 2.0
    (page,) = data["pages"]
    (result,) = page["results"]
    assert (height, width) == (page["image"]["width"], page["image"]["height"])
    assert (90, "local") == (result["orientation"], result["orientation_source"])
    assert all(line.split()[0] in data["text"] for line in LINES)
    counts = Counter(word.text for word in placed)
    expected = {
        word.text: (word.top, width - word.left - word.width, word.height, word.width)
        for word in placed
        if counts[word.text] == 1 and len(word.text) > 3
    }
    found = {word["text"]: word for word in result["words"] if word["text"] in expected}
    assert len(found) > 0.8 * len(expected)
    for text, word in found.items():
        box = (word["left"], word["top"], word["width"], word["height"])
        assert all(abs(a - b) <= BOX_TOLERANCE for a, b in zip(box, expected[text], strict=True)), (
            text,
            box,
            expected[text],
        )
        assert word["height"] > word["width"]
    assert len(LINES) == len(result["lines"])
    assert all(line["height"] > 10 * line["width"] for line in result["lines"])
    assert has_words(data)
    assert SidecarPaths.of(tmp_path / "in" / "scan.png").output("alto").exists()


def test_a_square_sideways_page_goes_turned_not_as_its_own_bytes(tmp_path: Path) -> None:
    """A turned page the size of the file is still not the file: its pixels go, upright."""
    image, _ = render.page(LINES, size=(1300, 1300), origin=(40, 40), font_size=FONT_SIZE)
    upright = cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2BGR)
    sideways = anticlockwise(upright, 3)
    data, request = read_through(tmp_path, sideways, formats=["txt", "hocr"])
    assert (tmp_path / "in" / "scan.png").read_bytes() != request.data
    grey = cv2.cvtColor(upright, cv2.COLOR_BGR2GRAY)
    assert float(np.mean(cv2.absdiff(uploaded(request), grey))) < 2.0
    assert 270 == data["pages"][0]["results"][0]["orientation"]


def test_an_upright_jpeg_still_goes_as_its_own_bytes(
    tmp_path: Path, drawn: tuple[np.ndarray, list[render.Placed]]
) -> None:
    """Found upright, a plain JPEG is uploaded unchanged, without asking ocr.space to turn it."""
    upright, _ = drawn
    data, request = read_through(tmp_path, upright, name="scan.jpg", formats=["txt", "alto"])
    assert (tmp_path / "in" / "scan.jpg").read_bytes() == request.data
    assert "false" == request.form["detectOrientation"]
    (result,) = data["pages"][0]["results"]
    assert (0, "local") == (result["orientation"], result["orientation_source"])


def test_with_the_default_formats_nothing_is_detected_here(
    tmp_path: Path, drawn: tuple[np.ndarray, list[render.Placed]]
) -> None:
    """Text only: the sideways page goes as it is and ocr.space is asked to turn it, as before."""
    sideways = anticlockwise(drawn[0], 1)
    data, request = read_through(tmp_path, sideways)
    assert "true" == request.form["detectOrientation"]
    assert sideways.shape[:2] == uploaded(request).shape
    (result,) = data["pages"][0]["results"]
    assert "orientation_source" not in result


def test_without_the_osd_model_pages_go_as_configured_and_it_is_said_once(
    tmp_path: Path,
    drawn: tuple[np.ndarray, list[render.Placed]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No osd.traineddata: each page is sent as it is with detectOrientation as configured, and
    the missing model is logged once, not per page."""
    empty = tmp_path / "no-tessdata"
    empty.mkdir()
    monkeypatch.setattr(osd, "_shared", osd.OrientationFinder(empty))
    monkeypatch.setattr(osd, "_unavailable_logged", False)
    sideways = anticlockwise(drawn[0], 1)
    requests = []
    with caplog.at_level(logging.WARNING, logger=osd.__name__):
        for folder in ("a", "b"):
            data, request = read_through(tmp_path / folder, sideways, formats=["txt", "alto"])
            requests.append(request)
    assert ["true", "true"] == [request.form["detectOrientation"] for request in requests]
    assert "orientation_source" not in data["pages"][0]["results"][0]
    assert 1 == sum("osd.traineddata" in message for message in caplog.messages)
