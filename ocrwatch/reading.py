"""Reading pages: one page cropped, cut into regions and read; a document's pages read in parallel.

:func:`read_page` takes one page from opening to its result: the crop and
regions resolved on the page's own pixels, then either the text the page
already carries (a PDF page with a text layer the inbox uses) or OCR, every
part prepared before any is sent. :func:`read_document` reads every page
of a document on the engine's page threads (:meth:`OcrEngine.page_pool`),
keeping each page as it finishes (:mod:`ocrwatch.resume`) and deciding
what a page's failure means for the rest.

When ``rules.orient_locally`` is set (an ocr.space inbox writing a format that
places words), each part is first stood upright here: its orientation found by
Tesseract's detection (:mod:`ocrwatch.engines.tesseract.osd`), its pixels
turned by whole quarter turns, sent with ``detectOrientation=false``, and the
answer's boxes turned back into the part's own pixels, so that they land on the
page as it is. Without detection (no ``osd`` model) the part goes as before.

Not here: the file as a whole, its sidecars and its outcome (``pipeline``).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ocrwatch.engines.base import OcrEngine, OcrRequest, OcrResult, Prepared
from ocrwatch.errors import FileError, Interrupted, InvalidKeyError, OcrError, RateLimitError
from ocrwatch.geometry import Box
from ocrwatch.imaging import ImageInfo
from ocrwatch.layout import Affine, ScaleShift, map_page
from ocrwatch.layout import Box as LayoutBox
from ocrwatch.pages import (
    OpenDocument,
    PageFacts,
    PageInput,
    PageOpener,
    PageResult,
    Pixels,
    Target,
    pdf_page_facts,
)
from ocrwatch.plan import Rules
from ocrwatch.records import failed_page_entry, page_entry
from ocrwatch.resume import KeptPages
from ocrwatch.source import SourceGone

if TYPE_CHECKING:
    import numpy as np

logger = logging.getLogger(__name__)

PageProgress = Callable[[int, int], None]
"""Told (pages done, pages in all) each time a page of a document is finished."""


def read_document(
    path: Path,
    document: OpenDocument,
    rules: Rules,
    engine: OcrEngine,
    *,
    kept: KeptPages,
    on_page: PageProgress | None,
) -> tuple[list[dict[str, Any]], float]:
    """Every page of a document, several at once on the engine's page threads; and the seconds
    spent opening them.

    A page that fails for good becomes a failed page and the others go on. A
    failure that is not the page's own (a pause, shutdown, a transient error,
    the file gone) stops the document: pages not started are dropped, pages
    under way finish and are kept, and the failure is raised, so the next try
    reads only the pages still missing.
    """
    total = document.page_count
    entries = {number: entry for number, entry in kept.pages.items() if number <= total}
    if entries:
        logger.info("%s: resuming with %d of %d pages already read", path, len(entries), total)
    elif _whole_pdf_wanted(document, rules, engine):
        whole = _read_whole_pdf(path, document, rules, engine)
        if whole is not None:
            for entry in whole:
                kept.keep(entry)
            if on_page is not None:
                on_page(total, total)
            return _checked(whole), 0.0
    pool = engine.page_pool()
    futures = {
        pool.submit(_read_document_page, path, opener, rules, engine): index + 1
        for index, opener in enumerate(document.openers)
        if index + 1 not in entries
    }
    stop: BaseException | None = None
    decode_seconds = 0.0
    try:
        for future in concurrent.futures.as_completed(futures):
            number = futures[future]
            if future.cancelled():
                continue
            try:
                entry, seconds = future.result()
            except (SourceGone, Interrupted, RateLimitError, InvalidKeyError) as error:
                stop = stop or error
                _cancel(futures)
                continue
            except FileError as error:
                if error.retryable:
                    stop = stop or error
                    _cancel(futures)
                    continue
                logger.error("%s: page %d of %d failed: %s", path, number, total, error)
                facts = error.page_facts if isinstance(error.page_facts, PageFacts) else None
                entry, seconds = failed_page_entry(number, error, facts), 0.0
            decode_seconds += seconds
            entries[number] = entry
            kept.keep(entry)
            if entry["status"] == "done":
                logger.info(
                    "%s: page %d of %d: %d characters (%s)",
                    path,
                    number,
                    total,
                    len(entry["text"]),
                    entry["text_source"],
                )
            if on_page is not None:
                on_page(len(entries), total)
    finally:
        _cancel(futures)
    if stop is not None:
        raise stop
    return _checked([entries[number] for number in range(1, total + 1)]), decode_seconds


def _checked(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``entries``, unless every page failed: then the document fails as a whole."""
    if all(entry["status"] == "failed" for entry in entries):
        first = entries[0]["error"]
        raise _AllPagesFailed(
            f"every page failed; page 1: {first['message']}", first["classification"]
        )
    return entries


def _whole_pdf_wanted(document: OpenDocument, rules: Rules, engine: OcrEngine) -> bool:
    """Whether the inbox asks for whole-PDF uploads and this PDF qualifies by its size and form.

    Whether every page needs OCR is the last check (:func:`_read_whole_pdf`): it reads the text
    of every page.
    """
    return (
        engine.reads_pdf()
        and document.format == "PDF"
        and document.data is not None
        and rules.sends_pdf_whole(len(document.data), document.page_count)
    )


def _read_whole_pdf(
    path: Path, document: OpenDocument, rules: Rules, engine: OcrEngine
) -> list[dict[str, Any]] | None:
    """Every page from one request carrying the whole PDF; None when it must go page by page.

    The engine's pages come in its own pixels (ocr.space renders at 96 dpi);
    their boxes are scaled into each page's render here. A page the answer
    marks failed (a partial answer) becomes a failed page.
    """
    assert document.data is not None
    pages = pdf_page_facts(document, rules)
    if not all(needed for _, needed in pages):
        return None
    request = _request(path, rules, image=_no_pixels, name=path.stem)
    result = engine.recognize_pdf(document.data[:], request)
    if len(result.pages) != len(pages):
        logger.warning(
            "%s: the whole PDF came back as %d pages, not %d; reading it page by page",
            path,
            len(result.pages),
            len(pages),
        )
        return None
    entries = []
    for index, ((facts, _), read) in enumerate(zip(pages, result.pages, strict=True)):
        first = index == 0
        if read.error:
            failure = OcrError(f"ocr.space could not read the page: {read.error}")
            failure.attempts = result.attempts if first else 0
            entries.append(failed_page_entry(facts.number, failure, facts))
            continue
        width, height = facts.info.upright_size
        dpi = facts.dpi[0] if facts.dpi else engine.pdf_render_dpi
        shared = replace(
            result,
            pages=(map_page(read, ScaleShift(scale=engine.pdf_render_dpi / dpi)),),
            upload=result.upload if first else None,
            raw=result.raw if first else None,
            attempts=result.attempts if first else 0,
        )
        note = (
            f"read from the whole PDF in one request; word boxes scaled from the engine's "
            f"{engine.pdf_render_dpi:g} dpi to this page's {dpi:g} dpi"
        )
        page = PageResult(
            replace(facts, notes=(*facts.notes, note)),
            None,
            ((Target(None, Box(0, 0, width, height)), shared),),
        )
        entries.append(page_entry(page, rules))
    return entries


def _no_pixels() -> np.ndarray:
    raise RuntimeError("a whole-PDF request has no pixels: the engine sends the file")


class _AllPagesFailed(FileError):
    """A document none of whose pages could be read: it fails as a whole."""

    def __init__(self, message: str, classification: str) -> None:
        super().__init__(message)
        self.classification = classification  # type: ignore[assignment]


def _cancel(futures: dict[concurrent.futures.Future[Any], int]) -> None:
    for future in futures:
        future.cancel()


def _read_document_page(
    path: Path, opener: PageOpener, rules: Rules, engine: OcrEngine
) -> tuple[dict[str, Any], float]:
    if engine.stop is not None and engine.stop.is_set():
        # A long document on the local engine must not hold a shutdown up page after page.
        raise Interrupted(
            "ocrwatch is stopping; the document's other pages wait for the next start"
        )
    page, seconds = read_page(path, opener, rules, engine)
    return page_entry(page, rules), seconds


@contextlib.contextmanager
def _about(facts: PageFacts) -> Iterator[None]:
    """Attach the page's facts to a FileError raised inside (see ``FileError.page_facts``)."""
    try:
        yield
    except FileError as error:
        error.page_facts = error.page_facts or facts
        raise


def read_page(
    path: Path,
    open_page: PageOpener,
    rules: Rules,
    engine: OcrEngine,
    *,
    on_prepared: Callable[[], None] | None = None,
) -> tuple[PageResult, float]:
    """One page opened, cropped, its parts prepared, then read; and the seconds spent opening it.

    ``on_prepared`` is called once the parts are prepared and the page let go, before any is
    read. Raises what opening, preparing and reading raise (ImageError, OcrError...).
    """
    started = time.perf_counter()
    with engine.preparing():
        page = open_page()
        open_seconds = time.perf_counter() - started
        facts = page.facts
        with _about(facts):
            crop_box, targets = _targets(page, rules)
            if page.embedded is not None:
                return PageResult(
                    facts, crop_box, _embedded(page, targets), embedded=True
                ), open_seconds
            prepared = _prepare(path, page, crop_box, targets, rules, engine)
        # What the engine needs is in `prepared` now (for ocr.space, the fitted
        # uploads): let the decoded page go before waiting for a request slot.
        del page
    if on_prepared is not None:
        on_prepared()
    with _about(facts):
        results = tuple(
            (target, _in_part_pixels(engine.finish(request), turn))
            for target, request, turn in prepared
        )
    return PageResult(facts, crop_box, results), open_seconds


def _targets(page: PageInput, rules: Rules) -> tuple[Box | None, list[Target]]:
    """The page's crop, and the parts of it to read: each region, or the whole crop."""
    width, height = page.size
    crop_box = rules.crop.resolve(width, height, what="crop") if rules.crop else None
    within = crop_box or Box(0, 0, width, height)
    if not rules.regions:
        return crop_box, [Target(None, within)]
    return crop_box, [
        Target(
            name,
            _offset(rule.resolve(within.width, within.height, what=f"region {name!r}"), within),
        )
        for name, rule in rules.regions
    ]


def _embedded(page: PageInput, targets: list[Target]) -> tuple[tuple[Target, OcrResult], ...]:
    """Each part's text taken from the page's own text layer, no OCR."""
    from ocrwatch.documents.pdftext import layout_of  # late: PDFium, for PDF pages only

    assert page.embedded is not None
    width, height = page.size
    results = []
    for target in targets:
        box = target.box
        layout = layout_of(page.embedded, LayoutBox(box.x, box.y, box.width, box.height))
        if (box.x, box.y, box.width, box.height) == (0, 0, width, height):
            # The whole page: PDFium's text keeps its spacing; the words give the boxes.
            layout = replace(layout, text=page.embedded.text)
        results.append(
            (target, OcrResult(pages=(layout,), engine="embedded", seconds=0.0, attempts=0))
        )
    return tuple(results)


_Turn = tuple[int, Affine]
"""How a part was sent once its orientation was found here: the degrees it was turned
clockwise (0: found upright), and the map from the pixels sent back to the part's own."""


def _prepare(
    path: Path,
    page: PageInput,
    crop_box: Box | None,
    targets: list[Target],
    rules: Rules,
    engine: OcrEngine,
) -> list[tuple[Target, Prepared, _Turn | None]]:
    """Every part's request, prepared: a page that cannot be read fails before any is sent.

    With ``rules.orient_locally`` each part is stood upright first; a whole
    image whose own bytes would go as they are goes as pixels when it must turn.
    """
    whole = crop_box is None and not rules.regions
    orient = rules.orient_locally and engine.name == "ocrspace"
    prepared = []
    for target in targets:
        image = page.pixels if whole else _cut(_array(page.pixels), target.box)
        original = page.original if whole else None
        name = _request_name(path, page.facts.number, target.name)
        turn: _Turn | None = None
        if orient:
            # Late: Tesseract loads only for the inboxes that need it (the engines' rule).
            from ocrwatch.engines.tesseract import osd

            pixels = _array(image)
            found = osd.page_orientation(pixels, name=f"{path} ({name})")
            if found is not None:
                turn = (found.degrees, found.back(*pixels.shape[1::-1]))
                if found.degrees:
                    image, original = found.upright(pixels), None
        request = _request(
            path,
            rules,
            image=image,
            name=name,
            original=original,
            original_info=page.facts.info if whole else None,
            orientation_found=turn is not None,
        )
        prepared.append((target, engine.prepare(request), turn))
    return prepared


def _in_part_pixels(result: OcrResult, turn: _Turn | None) -> OcrResult:
    """``result`` with its boxes back in the unturned part's pixels, saying the turn was found
    here; as it is when the part was sent without finding its orientation."""
    if turn is None:
        return result
    degrees, back = turn
    pages = tuple(
        replace(map_page(page, back) if degrees else page, orientation=degrees)
        for page in result.pages
    )
    return replace(result, pages=pages, orientation_source="local")


def _request(
    path: Path,
    rules: Rules,
    *,
    image: Pixels,
    name: str,
    original: bytes | None = None,
    original_info: ImageInfo | None = None,
    orientation_found: bool = False,
) -> OcrRequest:
    """A request for ``image`` read as ``rules`` say, always with word boxes, and cancelled
    when ``path`` is gone by the time it would be sent; the engine is not asked to turn an
    image whose orientation was found here."""
    return OcrRequest(
        image=image,
        language=rules.language,
        overlay=True,
        detect_orientation=rules.detect_orientation and not orientation_found,
        scale=bool(rules.option("scale", False)),
        table=bool(rules.option("table", False)),
        name=name,
        original=original,
        original_info=original_info,
        before_send=functools.partial(_still_there, path),
    )


def _request_name(path: Path, number: int, region: str | None) -> str:
    """A short name for logs and uploads: the file's stem, its page past the first, the region."""
    name = path.stem if number == 1 else f"{path.stem}-p{number}"
    return name if region is None else f"{name}-{region}"


def _still_there(path: Path) -> None:
    """Raise SourceGone if ``path`` was deleted or renamed since it was read."""
    try:
        os.lstat(path)
    except FileNotFoundError:
        raise SourceGone(str(path)) from None


def _array(pixels: Pixels) -> np.ndarray:
    return pixels() if callable(pixels) else pixels


def _offset(box: Box, within: Box) -> Box:
    return Box(box.x + within.x, box.y + within.y, box.width, box.height)


def _cut(pixels: np.ndarray, box: Box) -> np.ndarray:
    height, width = pixels.shape[:2]
    if box.x == 0 and box.y == 0 and box.width == width and box.height == height:
        return pixels
    # A view, not a copy (an A4 scan's copy is 22 MB written and faulted in for nothing):
    # OpenCV and NumPy take strided rows, and what hands pixels to Tesseract copies them.
    return pixels[box.y : box.bottom, box.x : box.right]
