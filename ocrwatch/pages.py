"""Pages, the unit of work inside the pipeline: what a file's pages are, and what one page gave.

A file is read as a sequence of pages. :func:`open_document` tells what the
file is (an image, a PDF, a multi-page TIFF), checks that it is complete,
and says how to open each page: a function per page, called by the pipeline
when that page's turn comes (inside the engine's ``preparing()`` scope, so
that a page's CPU work waits for a free core), which returns a
:class:`PageInput`: the page's facts, its pixels now or on demand, the
file's own bytes when the page is the whole file, and the text the page
already carries when that text is to be used instead of OCR. The pipeline
crops it, cuts its regions (each a :class:`Target`), lets the engine read
them and keeps a :class:`PageResult`, which holds the page's facts but
never its pixels, so a page's decoded image is let go before the next page
is opened.

Which file is what is decided by content, not by name: ``%PDF-`` in the
first KiB is a PDF, a TIFF with more than one page is a document, anything
else is an image of one page (an animated GIF or WebP: its first frame).

This module owns the page types and opening a file's pages. It does not
own cropping or OCR (``pipeline``) or what the sidecars say about pages
(``records``).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeAlias

from ocrwatch import imaging
from ocrwatch.documents import Closing
from ocrwatch.engines.base import OcrEngine, OcrResult
from ocrwatch.errors import DocumentError, ImageError
from ocrwatch.geometry import Box
from ocrwatch.imaging.containers import tiff_directories, truncated_message
from ocrwatch.layout import PixelMap
from ocrwatch.plan import Rules
from ocrwatch.source import ByteSource, FileBytes, Source, is_pdf

# The PDF and TIFF readers (PDFium, numpy) load when a document is opened: reading an
# image, the most common file, must not pay for them at every start of ``ocrwatch once``.
if TYPE_CHECKING:
    import numpy as np

    from ocrwatch.documents.pdf import PdfDocument
    from ocrwatch.documents.pdflayout import PdfPage
    from ocrwatch.documents.pdftext import PageText
    from ocrwatch.documents.tiff import TiffDocument

Pixels: TypeAlias = "np.ndarray | Callable[[], np.ndarray]"
"""Upright pixels as :mod:`ocrwatch.imaging` decodes them, or a function that decodes them on demand."""


@dataclass(frozen=True)
class Target:
    """The part of a page one OCR request reads: the page, or one named region."""

    name: str | None
    box: Box


@dataclass(frozen=True)
class PageFacts:
    """What is known about a page apart from its pixels; it outlives them, in the page's result."""

    number: int
    """Position in the file, from 1, as a viewer counts pages."""
    info: imaging.ImageInfo
    """What the page's header or directory says: format, size as stored, mode, orientation.
    For a PDF page: the render (format ``PDF``)."""
    dpi: tuple[float, float] | None = None
    """(horizontal, vertical) dots per inch: a TIFF page's tags, a PDF page's render."""
    to_points: PixelMap | None = None
    """Maps the page's pixels to the document's own units (PDF points); None for images."""
    notes: tuple[str, ...] = ()
    """What the sidecar should say about how this page was read (a lower resolution...)."""


@dataclass(frozen=True)
class PageInput:
    """One page, ready to be cropped and read: its facts, its pixels, perhaps the file's bytes."""

    facts: PageFacts
    pixels: Pixels = field(repr=False)
    original: bytes | None = field(default=None, repr=False)
    """The file's own bytes when this page is the whole file, so an engine may send them as
    they are; None for one page of a document."""
    embedded: PageText | None = field(default=None, repr=False)
    """The page's own text, when it is used instead of OCR (a PDF page that has text)."""

    @property
    def size(self) -> tuple[int, int]:
        """Upright (width, height) in pixels, without decoding pixels left for later."""
        if not callable(self.pixels):
            height, width = self.pixels.shape[:2]
            return width, height
        return self.facts.info.upright_size


PageOpener = Callable[[], PageInput]
"""Opens one page when called: the checks and decoding of that page happen then. Raises
:class:`~ocrwatch.errors.ImageError` or :class:`~ocrwatch.errors.DocumentError` for a page
that cannot be read. Safe to call from several threads, one page each."""


@dataclass(frozen=True)
class PageResult:
    """What one page gave: its facts, the crop applied, and each part read with its result."""

    facts: PageFacts
    crop_box: Box | None
    results: tuple[tuple[Target, OcrResult], ...]
    embedded: bool = False
    """True when the text is the page's own (a PDF's), not OCR."""

    @property
    def requests(self) -> int:
        """OCR requests this page took, counting every attempt."""
        return sum(result.attempts for _, result in self.results)


@dataclass
class OpenDocument(Closing):
    """A file's pages, ready to be opened one by one, and what the file is."""

    format: str
    """``PDF``, ``TIFF`` for a multi-page TIFF, else the image's format."""
    openers: Sequence[PageOpener]
    frames: int = 1
    """Frames or pages the file holds: for an image, only the first is read; for a document,
    its pages."""
    note: str | None = None
    """What the sidecar should say about the file as a whole."""
    reader: Closing | None = field(default=None, repr=False)
    """The open document the openers read from (None for an image); closed with this."""
    data: ByteSource | None = field(default=None, repr=False)
    """A PDF's bytes (perhaps still on disk), for an engine that reads the file whole."""

    @property
    def page_count(self) -> int:
        return len(self.openers)

    @property
    def is_document(self) -> bool:
        """True for a PDF or a multi-page TIFF: a file whose every page is read."""
        return self.reader is not None

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()


def open_document(
    source: Source,
    rules: Rules,
    engine: OcrEngine,
    *,
    password: str | None = None,
    read_unterminated: bool = False,
) -> OpenDocument:
    """What ``source`` is and how to open each of its pages; nothing is rendered yet.

    A document must be complete first: a PDF must open and load every page
    (and end in ``%%EOF``; without it, it is ``incomplete`` unless
    ``read_unterminated``, when it is read with a note), a multi-page TIFF
    must decode every page. Raises DocumentError or ImageError.
    """
    data = source.data
    if is_pdf(data):
        return _open_pdf(data, rules, password=password, read_unterminated=read_unterminated)
    if isinstance(data, FileBytes):
        # A TIFF, left on disk in case it is a long document; one page is an image.
        directories = tiff_directories(data, limit=2)
        if directories is None:
            raise ImageError(truncated_message("TIFF", data), incomplete=True)
        if len(directories) > 1:
            return _open_tiff(data, rules)
        data = data[:]
    info = imaging.probe(data, max_pixels=rules.max_pixels)
    if info.format == "TIFF" and info.frames > 1:
        return _open_tiff(data, rules)
    # The opener asks the source for the bytes when the page opens, and holds none itself:
    # once the page is prepared, releasing the source lets them go (see Source.release).
    return OpenDocument(
        format=info.format,
        openers=[functools.partial(_open_image, source, rules, engine)],
        frames=info.frames,
    )


def _open_pdf(
    data: ByteSource, rules: Rules, *, password: str | None, read_unterminated: bool
) -> OpenDocument:
    from ocrwatch.documents.pdf import open_pdf, pdf_completeness

    completeness = pdf_completeness(data, password=password, max_pages=rules.max_pages)
    if not completeness.terminated and not read_unterminated:
        raise DocumentError(
            f"PDF does not end in %%EOF yet ({len(data)} bytes): waiting for its writer",
            incomplete=True,
        )
    document = open_pdf(data, password=password, max_pages=rules.max_pages)
    openers = [
        functools.partial(_open_pdf_page, document, index, rules)
        for index in range(document.page_count)
    ]
    return OpenDocument(
        format="PDF",
        openers=openers,
        frames=len(openers),
        note=completeness.note,
        reader=document,
        data=data,
    )


def _open_pdf_page(document: PdfDocument, index: int, rules: Rules) -> PageInput:
    """Lay the page out; use its text if the text layer rule says so, else render it."""
    page = document.page(index, max_page_mpixels=rules.max_page_mpixels)
    facts = _pdf_facts(page)
    if rules.text_layer != "force":
        text = document.text(page)
        if not rules.reads_by_ocr(text.kind):
            return PageInput(
                facts, functools.cache(functools.partial(document.render, page)), embedded=text
            )
    return PageInput(facts, document.render(page))


def pdf_page_facts(document: OpenDocument, rules: Rules) -> list[tuple[PageFacts, bool]]:
    """Each page of an open PDF laid out, nothing rendered: its facts, and whether it needs OCR."""
    from ocrwatch.documents.pdf import PdfDocument

    reader = document.reader
    if not isinstance(reader, PdfDocument):
        raise TypeError("not a PDF")
    pages = []
    for index in range(reader.page_count):
        page = reader.page(index, max_page_mpixels=rules.max_page_mpixels)
        needed = rules.text_layer == "force" or rules.reads_by_ocr(reader.text(page).kind)
        pages.append((_pdf_facts(page), needed))
    return pages


def _pdf_facts(page: PdfPage) -> PageFacts:
    width, height = page.size
    grey = page.scan is not None and page.scan.grey
    return PageFacts(
        number=page.index + 1,
        info=imaging.ImageInfo(
            format="PDF",
            width=width,
            height=height,
            mode="L" if grey else "RGB",
            frames=1,
            orientation=1,
        ),
        dpi=(page.dpi, page.dpi),
        to_points=page.to_points,
        notes=page.notes,
    )


def _open_tiff(data: ByteSource, rules: Rules) -> OpenDocument:
    from ocrwatch.documents.tiff import tiff_pages, verify_tiff

    verify_tiff(data, max_pixels=rules.max_pixels, max_pages=rules.max_pages)
    document = tiff_pages(data, max_pixels=rules.max_pixels, max_pages=rules.max_pages)
    lock = threading.Lock()  # a TIFF document decodes one page at a time
    openers = [
        functools.partial(_open_tiff_page, document, lock, index)
        for index in range(len(document.pages))
    ]
    return OpenDocument(format="TIFF", openers=openers, frames=len(openers), reader=document)


def _open_tiff_page(document: TiffDocument, lock: threading.Lock, index: int) -> PageInput:
    with lock:
        decoded = document.decode(index)
    return PageInput(
        PageFacts(number=index + 1, info=decoded.info, dpi=document.pages[index].dpi),
        decoded.pixels,
    )


def _open_image(source: Source, rules: Rules, engine: OcrEngine) -> PageInput:
    """Check the file decodes completely; decode its pixels only if they will surely be needed.

    When the whole file goes to an engine that reads the file's own bytes (a
    plain JPEG within the ocr.space budget), building the pixel array is
    wasted work: the file is only verified, and decoding is left to whoever
    asks for the pixels (a fallback encode). A one-page TIFF left on disk is
    read from its descriptor again here (:meth:`Source.changed` tells whether
    it still holds the bytes hashed). Raises ImageError.
    """
    data = source.data
    if isinstance(data, FileBytes):
        data = data[:]
    if rules.crop is None and not rules.regions:
        info = imaging.probe(data, max_pixels=rules.max_pixels)
        if engine.takes_original(data, info):
            info = imaging.verify(data, max_pixels=rules.max_pixels)
            return PageInput(
                PageFacts(number=1, info=info),
                functools.cache(lambda: imaging.decode(data, max_pixels=rules.max_pixels).pixels),
                original=data,
            )
    decoded = imaging.decode(data, max_pixels=rules.max_pixels)
    return PageInput(PageFacts(number=1, info=decoded.info), decoded.pixels, original=data)
