"""Pages, the unit of work inside the pipeline: what a file's pages are, and what one page gave.

A file is read as a sequence of pages. :func:`open_pages` says how to open
each of them: a function per page, called by the pipeline when that page's
turn comes (inside the engine's ``preparing()`` scope, so that a page's CPU
work waits for a free core), which returns a :class:`PageInput`: the page's
facts, its pixels now or on demand, and the file's own bytes when the page
is the whole file. The pipeline crops it, cuts its regions (each a
:class:`Target`), lets the engine read them and keeps a :class:`PageResult`,
which holds the page's facts but never its pixels, so a page's decoded image
is let go before the next page is opened.

This module owns the page types and opening a file's pages. It deliberately
does not own cropping or OCR (``pipeline``) or what the sidecars say about
pages (``records``). Today every file is one image and so one page;
documents of several pages (``documents/``) are not read yet.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ocrwatch import imaging
from ocrwatch.engines.base import OcrEngine, OcrResult
from ocrwatch.geometry import Box
from ocrwatch.layout import PixelMap
from ocrwatch.plan import Rules
from ocrwatch.source import Source

Pixels = np.ndarray | Callable[[], np.ndarray]
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
    """What the page's header or directory says: format, size as stored, mode, orientation."""
    dpi: tuple[float, float] | None = None
    """(horizontal, vertical) dots per inch, when the file says; not recorded yet."""
    to_points: PixelMap | None = None
    """Maps the page's pixels to the document's own units (PDF points); None for images."""


@dataclass(frozen=True)
class PageInput:
    """One page, ready to be cropped and read: its facts, its pixels, perhaps the file's bytes."""

    facts: PageFacts
    pixels: Pixels = field(repr=False)
    original: bytes | None = field(default=None, repr=False)
    """The file's own bytes when this page is the whole file, so an engine may send them as
    they are; None for one page of a document."""

    @property
    def size(self) -> tuple[int, int]:
        """Upright (width, height) in pixels, without decoding pixels left for later."""
        if isinstance(self.pixels, np.ndarray):
            height, width = self.pixels.shape[:2]
            return width, height
        return self.facts.info.upright_size


PageOpener = Callable[[], PageInput]
"""Opens one page when called: the checks and decoding of that page happen then. Raises
:class:`~ocrwatch.errors.ImageError` for a page that cannot be read."""


@dataclass(frozen=True)
class PageResult:
    """What one page gave: its facts, the crop applied, and each part read with its result."""

    facts: PageFacts
    crop_box: Box | None
    results: tuple[tuple[Target, OcrResult], ...]

    @property
    def requests(self) -> int:
        """OCR requests this page took, counting every attempt."""
        return sum(result.attempts for _, result in self.results)


def open_pages(source: Source, rules: Rules, engine: OcrEngine) -> Sequence[PageOpener]:
    """How to open each page of ``source``, in order; nothing is decoded until one is called.

    A single image is one page.
    """
    return [functools.partial(_open_image, source, rules, engine)]


def _open_image(source: Source, rules: Rules, engine: OcrEngine) -> PageInput:
    """Check the file decodes completely; decode its pixels only if they will surely be needed.

    When the whole file goes to an engine that reads the file's own bytes (a
    plain JPEG within the ocr.space budget), building the pixel array is
    wasted work: the file is only verified, and decoding is left to whoever
    asks for the pixels (a fallback encode). Raises ImageError.
    """
    data = source.data
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
