"""The local Tesseract engine on the reference corpus: real and synthetic scans with ground truth."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest

from ocrwatch.engines.base import OcrRequest
from ocrwatch.engines.tesseract import preprocess
from ocrwatch.engines.tesseract.engine import TesseractEngine
from tests.support.paths import CORPUS, ground_truth
from tests.support.scoring import cer


def corpus_image(name: str) -> np.ndarray:
    path = next(CORPUS.glob(f"*/{name}"))
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, path
    return image


def corpus_truth(name: str) -> str:
    return ground_truth(next(CORPUS.glob(f"*/{name}")))


def corpus_cer(engine: TesseractEngine, name: str) -> tuple[float, int | None]:
    result = engine.recognize(OcrRequest(image=corpus_image(name), name=name))
    return cer(result.text, corpus_truth(name)), result.pages[0].orientation


@pytest.fixture(scope="module")
def engine() -> Iterator[TesseractEngine]:
    engine = TesseractEngine(env={})
    yield engine
    engine.close()


@pytest.mark.parametrize(
    ("name", "limit"),
    [
        ("tess_phototest.tif", 0.01),
        ("syn_clean_serif_300dpi.png", 0.01),
        ("skimage_page.png", 0.05),
        ("syn_colour_background.png", 0.02),
        ("syn_screenshot_dark.png", 0.02),
        ("syn_small_text_100dpi.png", 0.01),
    ],
)
def test_corpus_pages_read_within_their_error_budget(
    engine: TesseractEngine, name: str, limit: float
) -> None:
    """Clean, unevenly lit, coloured, dark and tiny text all read within the CER limit."""
    error, _ = corpus_cer(engine, name)
    assert error <= limit


def test_page_on_a_dark_desk_is_not_taken_for_light_text(engine: TesseractEngine) -> None:
    """A photographed page framed by a wide dark border reads as well as the page alone."""
    page = corpus_image("skimage_page.png")
    height, width = page.shape[:2]
    on_desk = cv2.copyMakeBorder(
        page, height, height, width, width, cv2.BORDER_CONSTANT, value=(40, 40, 40)
    )
    result = engine.recognize(OcrRequest(image=on_desk))
    assert cer(result.text, corpus_truth("skimage_page.png")) <= 0.05


def test_upside_down_page_is_turned_and_read(engine: TesseractEngine) -> None:
    """Orientation detection reads a page turned by 180 degrees and says so."""
    error, orientation = corpus_cer(engine, "tess_phototest_rotated_180.png")
    assert error <= 0.01
    assert 180 == orientation


def test_sideways_page_is_turned_and_read(engine: TesseractEngine) -> None:
    """A page turned 90 degrees anticlockwise is read after a 270 degree anticlockwise turn."""
    error, orientation = corpus_cer(engine, "syn_rotated_90.png")
    assert error <= 0.01
    assert 270 == orientation


def test_page_tilted_by_seven_degrees_reads_after_deskew(engine: TesseractEngine) -> None:
    """A corpus page turned by 7 degrees reads as well as the upright one."""
    image = corpus_image("syn_two_column.png")
    tilted, _ = preprocess.warp(preprocess.to_gray(image), angle=7.0, scale=1.0)
    result = engine.recognize(OcrRequest(image=tilted))
    assert cer(result.text, corpus_truth("syn_two_column.png")) <= 0.01


def test_text_has_plain_line_ends(engine: TesseractEngine) -> None:
    """Lines end with a bare newline, with no trailing blanks or form feed."""
    text = engine.recognize(OcrRequest(image=corpus_image("tess_phototest.tif"))).text
    assert "\f" not in text and "\r" not in text
    assert text == text.strip()
    assert all(line == line.rstrip() for line in text.split("\n"))
    assert "This is a lot of 12 point text to test the" == text.split("\n")[0]


def test_threads_read_real_scans_like_one_thread(engine: TesseractEngine) -> None:
    """Four threads reading corpus pages at once give the text one thread gives."""
    names = [
        "tess_phototest.tif",
        "syn_small_text_100dpi.png",
        "syn_screenshot_light.png",
        "syn_colour_background.png",
    ]
    images = [corpus_image(name) for name in names]
    sequential = [engine.recognize(OcrRequest(image=image)).text for image in images]
    with ThreadPoolExecutor(max_workers=4) as pool:
        parallel = list(
            pool.map(lambda image: engine.recognize(OcrRequest(image=image)).text, images)
        )
    assert sequential == parallel
