"""The local engine: Tesseract in-process through tesserocr.

It owns the Tesseract API objects (one per worker thread and language, made
on first use and ended in :meth:`TesseractEngine.close`), the choice of page
segmentation mode, and turning Tesseract's results into :class:`Page` text,
words and layout (blocks, lines, baselines, confidences) in the caller's pixels. Image preparation lives in
:mod:`.preprocess`, language names and data folders in
:mod:`.languages`, orientation detection in :mod:`.osd`. No subprocess, no temporary files.

Orientation is found only where it pays. Tesseract's own detection (page
segmentation mode ``AUTO_OSD``) classifies a few hundred glyphs four ways
round on every page, about half as long again as reading a small page. Most
pages are upright, and an upright page reads with a mean word confidence of 84
to 96 on the corpus while one upside down or on its side reads at 31 to 52.
So a page whose lines run across it is read as it is first, and detection
runs only when that read is unsure; a page whose lines run down it (which
way round, only detection can tell) is detected first. A page detection
turns is read stood upright, and that read is kept when it is sure, or
clearly surer than the page read as it is.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import tesserocr

from ocrwatch.engines.base import (
    Block,
    Box,
    EngineSetup,
    Line,
    OcrEngine,
    OcrRequest,
    OcrResult,
    Page,
    Word,
    cores,
)
from ocrwatch.engines.tesseract import languages, osd, preprocess
from ocrwatch.errors import BadInputError, EngineUnavailableError, OcrError
from ocrwatch.layout import Baseline, Point, map_page

logger = logging.getLogger(__name__)

RECOGNIZE_TIMEOUT_MS = 300_000
"""Longest Tesseract may spend on one image; a 300 dpi page takes about 2 s."""
FULL_TURN = 360
PREPROCESS_VERSION = 2
"""Bump when :mod:`.preprocess` (or how pages are stood upright) changes what Tesseract sees."""
UPRIGHT_CONFIDENCE = 70
"""Mean word confidence (0 to 100) from which a page read as it is counts as upright, with no
orientation detection: between the 84 to 96 of upright corpus pages and the 31 to 52 of the
same pages upside down or on their side."""
TURN_MARGIN = 15
"""Points of mean word confidence by which a page read turned must beat the page read as it is
for the turn to be kept: a photo or a page of noise reads unsure either way round, and a turn
found on it would wrongly turn a searchable PDF's page."""


class TesseractEngine(OcrEngine):
    """Tesseract through tesserocr, with deskew and background flattening first.

    Thread-safe: each worker thread gets its own ``PyTessBaseAPI`` per language.
    """

    name = "tesseract"
    needs_language_data = True

    @classmethod
    def create(cls, setup: EngineSetup) -> TesseractEngine:
        tesseract = setup.config.tesseract
        engine = cls(tessdata=tesseract.tessdata, deskew=tesseract.deskew, env=setup.env)
        engine.stop = setup.stop
        return engine

    def __init__(
        self,
        *,
        tessdata: Path | None = None,
        deskew: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self._folder = languages.tessdata_dir(tessdata, os.environ if env is None else env)
        self.page_workers = cores()
        self._deskew = deskew
        self._local = threading.local()
        self._lock = threading.Lock()
        self._apis: list[tesserocr.PyTessBaseAPI] = []
        self._closed = False
        # Any turn detection finds is tried: the read stood upright is kept only when surer.
        self._orientation = osd.OrientationFinder(self._folder, min_confidence=0.0)
        # (ocr.space code, orientation) pairs already found installed, to spare a
        # folder listing per image; data removed while running fails in Tesseract.
        self._checked: dict[tuple[str, bool], str] = {}

    @property
    def folder(self) -> Path:
        """The folder the traineddata files are read from."""
        return self._folder

    def check_language(self, language: str, *, detect_orientation: bool = True) -> None:
        """Raise EngineUnavailableError unless ``language`` (and OSD data if needed) is installed."""
        self._tesseract_language(language, detect_orientation=detect_orientation)

    def settings(self) -> dict[str, Any]:
        """What shapes the text besides the request: deskew, Tesseract version, data folder."""
        return {
            "deskew": self._deskew,
            "preprocess": PREPROCESS_VERSION,
            "tesseract": tesseract_version(),
            "data": str(self._folder),
        }

    def recognize(self, request: OcrRequest) -> OcrResult:
        """Read one image. Thread-safe.

        Raises BadInputError for an array that is not a uint8 gray or BGR image,
        OcrError when Tesseract fails on it, and EngineUnavailableError when the
        language data is missing or the engine is closed.
        """
        started = time.perf_counter()
        language = self._checked.get((request.language, request.detect_orientation))
        if language is None:
            language = self._tesseract_language(
                request.language, detect_orientation=request.detect_orientation
            )
            self._checked[(request.language, request.detect_orientation)] = language
        try:
            prepared = preprocess.prepare(
                request.pixels(), deskew=self._deskew, direction=request.detect_orientation
            )
        except ValueError as error:
            raise BadInputError(f"{request.name}: {error}") from error
        api = self._api(language)
        try:
            if request.detect_orientation:
                read = self._read_upright(api, prepared, request)
            else:
                read = _read(api, prepared.image, request=request).page
        except OcrError as error:
            self._observe(error.classification, time.perf_counter() - started)
            raise
        page = map_page(read, _ToInput(prepared))
        seconds = time.perf_counter() - started
        self._observe("ok", seconds)
        logger.debug(
            "%s: tesseract read %d characters in %.2f s (skew %.2f, scale %g)",
            request.name,
            len(page.text),
            seconds,
            prepared.skew,
            prepared.scale,
        )
        return OcrResult(pages=(page,), engine=self.name, seconds=seconds)

    def close(self) -> None:
        """End every Tesseract API object this engine made. Later calls to recognize fail."""
        super().close()
        with self._lock:
            self._closed = True
            apis, self._apis = self._apis, []
        for api in apis:
            api.End()
        self._orientation.close()

    def _read_upright(
        self, api: tesserocr.PyTessBaseAPI, prepared: preprocess.Prepared, request: OcrRequest
    ) -> Page:
        """The prepared image read the way up it reads best, in its own pixels, with the
        anticlockwise turn that stood it upright (0 to 270; None when there is no text).

        Raises OcrError when Tesseract fails and EngineUnavailableError when the
        ``osd`` model will not load.
        """
        image = prepared.image
        first = None
        if not prepared.sideways:
            first = _read(api, image, request=request)
            if not first.page.text:
                return first.page
            if first.confidence >= UPRIGHT_CONFIDENCE:
                return replace(first.page, orientation=0)
        try:
            found = self._orientation.orientation(image)
        except osd.OsdUnavailable as error:
            raise EngineUnavailableError(f"orientation detection needs {error}") from error
        except RuntimeError as error:
            raise OcrError(
                f"{request.name}: tesseract orientation detection failed: {error}"
            ) from error
        turned = _read(api, found.upright(image), request=request) if found.degrees else None
        if turned is not None and first is None and turned.confidence < UPRIGHT_CONFIDENCE:
            # Lines running down the page were the only sign of a turn (a dark border can give
            # it), and the page stood as detection says reads unsure: read it as it is too.
            first = _read(api, image, request=request)
        if turned is not None and (
            first is None or turned.confidence >= first.confidence + TURN_MARGIN
        ):
            height, width = image.shape
            page = map_page(turned.page, found.back(width, height))
            # The turn as AUTO_OSD has always stated it: anticlockwise (the finder's is clockwise).
            return replace(page, orientation=(FULL_TURN - found.degrees) % FULL_TURN)
        if first is None:
            first = _read(api, image, request=request)
        return replace(first.page, orientation=0) if first.page.text else first.page

    def _tesseract_language(self, language: str, *, detect_orientation: bool) -> str:
        try:
            name = languages.tesseract_language(language)
        except ValueError as error:
            raise EngineUnavailableError(f"tesseract engine: {error}") from error
        missing = languages.missing_languages(name, self._folder)
        if detect_orientation and languages.OSD not in languages.installed_languages(self._folder):
            missing.append(languages.OSD)
        if missing:
            needed_for = (
                "orientation detection" if missing[0] == languages.OSD else f"language {language!r}"
            )
            raise EngineUnavailableError(
                f"{needed_for} needs {languages.missing_language_hint(missing[0], self._folder)}"
            )
        return name

    def _api(self, language: str) -> tesserocr.PyTessBaseAPI:
        """This thread's API object for ``language``, made on first use."""
        apis: dict[str, tesserocr.PyTessBaseAPI] | None = getattr(self._local, "apis", None)
        if apis is None:
            apis = self._local.apis = {}
        api = apis.get(language)
        if api is not None and not self._closed:
            return api
        with self._lock:
            if self._closed:
                raise EngineUnavailableError("the tesseract engine is closed")
            try:
                api = tesserocr.PyTessBaseAPI(
                    path=str(self._folder), lang=language, psm=tesserocr.PSM.AUTO
                )
            except RuntimeError as error:
                raise EngineUnavailableError(
                    f"tesseract could not load {language!r} from {self._folder}: {error}"
                ) from error
            self._apis.append(api)
        apis[language] = api
        return api


def tesseract_version() -> str:
    """The Tesseract library version, e.g. ``5.5.4``."""
    first_line = str(tesserocr.tesseract_version()).splitlines()[0]
    return first_line.removeprefix("tesseract").strip()


@dataclass(frozen=True)
class _Read:
    """One read of an image: the page in its pixels, and Tesseract's mean word confidence."""

    page: Page
    confidence: int


def _read(api: tesserocr.PyTessBaseAPI, image: np.ndarray, *, request: OcrRequest) -> _Read:
    """Recognise ``image`` as it is with ``api`` and collect text and, on request, words and
    layout in its pixels."""
    height, width = image.shape
    try:
        # tesserocr documents that SetImageBytes may not copy: keep ``pixels`` alive
        # until Recognize is done.
        pixels = np.ascontiguousarray(image).tobytes()
        api.SetImageBytes(pixels, width, height, 1, width)
        if not api.Recognize(RECOGNIZE_TIMEOUT_MS):
            raise OcrError(
                f"{request.name}: tesseract could not read the {width}x{height} image "
                f"(failed or took over {RECOGNIZE_TIMEOUT_MS // 1000} s)"
            )
        text = _clean_text(api.GetUTF8Text())
        confidence = int(api.MeanTextConf())
        blocks: tuple[Block, ...] = ()
        if request.overlay:
            iterator = api.GetIterator()
            if iterator is not None and not iterator.Empty(tesserocr.RIL.BLOCK):
                blocks = _layout(iterator)
    except RuntimeError as error:
        raise OcrError(f"{request.name}: tesseract failed: {error}") from error
    finally:
        api.Clear()
    words = tuple(word for block in blocks for line in block.lines for word in line.words)
    return _Read(Page(text=text, words=words, blocks=blocks), confidence)


@dataclass(frozen=True)
class _ToInput:
    """From the prepared image's pixels back to the caller's, as :meth:`Prepared.box_in_input`
    maps boxes: whole pixels holding the mapped corners, clipped to the image."""

    prepared: preprocess.Prepared

    def point(self, x: float, y: float) -> Point:
        if self.prepared.to_input == preprocess.IDENTITY:
            return x, y
        # Points lie on pixel edges, half a pixel from the centres the map is defined on.
        mapped_x, mapped_y = self.prepared.to_input.apply(x - 0.5, y - 0.5)
        return mapped_x + 0.5, mapped_y + 0.5

    def box(self, box: Box) -> Box:
        # Tesseract's boxes are whole pixels, so nothing is lost to int().
        left, top, right, bottom = (
            int(edge) for edge in (box.left, box.top, box.right, box.bottom)
        )
        return Box(*self.prepared.box_in_input(left, top, right, bottom))


def _layout(iterator: Any) -> tuple[Block, ...]:
    """Tesseract's blocks of lines of non-empty words, in the prepared image's pixels.

    A word's ``line`` counts every line Tesseract starts, as the sidecars
    always have, so a line whose words are all blank leaves a gap in the
    count and no :class:`Line`.
    """
    block_boxes: list[Box | None] = []
    lines: list[tuple[int, Box | None, Baseline | None, list[Word]]] = []
    for word in tesserocr.iterate_level(iterator, tesserocr.RIL.WORD):
        if word.Empty(tesserocr.RIL.WORD):
            continue
        if word.IsAtBeginningOf(tesserocr.RIL.TEXTLINE) or not lines:
            if word.IsAtBeginningOf(tesserocr.RIL.BLOCK) or not block_boxes:
                block_boxes.append(_box(word.BoundingBox(tesserocr.RIL.BLOCK)))
            line_box = _box(word.BoundingBox(tesserocr.RIL.TEXTLINE))
            baseline = word.Baseline(tesserocr.RIL.TEXTLINE)
            lines.append((len(block_boxes) - 1, line_box, baseline, []))
        text = (word.GetUTF8Text(tesserocr.RIL.WORD) or "").strip()
        box = _box(word.BoundingBox(tesserocr.RIL.WORD))
        if not text or box is None:
            continue
        lines[-1][3].append(
            Word(
                text,
                box.left,
                box.top,
                box.width,
                box.height,
                line=len(lines) - 1,
                confidence=float(word.Confidence(tesserocr.RIL.WORD)),
            )
        )
    grouped: list[list[Line]] = [[] for _ in block_boxes]
    for block, line_box, baseline, words in lines:
        if words:
            box = line_box or Box.around([word.box for word in words])
            grouped[block].append(Line(box=box, words=tuple(words), baseline=baseline))
    return tuple(
        Block(box=box or Box.around([line.box for line in block_lines]), lines=tuple(block_lines))
        for box, block_lines in zip(block_boxes, grouped, strict=True)
        if block_lines
    )


def _box(edges: tuple[int, int, int, int] | None) -> Box | None:
    """Tesseract's ``(left, top, right, bottom)`` as a box, or None when there is none."""
    if edges is None:
        return None
    left, top, right, bottom = edges
    return Box(left, top, right - left, bottom - top)


def _clean_text(text: str) -> str:
    """Tesseract's text with ``\\n`` line ends, no trailing blanks, no form feed."""
    lines = [line.rstrip() for line in text.replace("\f", "\n").splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    while lines and not lines[0]:
        lines.pop(0)
    return "\n".join(lines)
