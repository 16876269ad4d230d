"""The text a PDF page already carries: its characters, their boxes, and whether they show.

A born-digital page draws its text; a page OCR'd before carries an invisible
layer (text render mode 3, or 7: clip only) over its image. Each character
PDFium extracts is reported with its box in PDF points and in the pixels of
the page's render, and the page is classified as ``none``, ``visible`` or
``invisible_only`` so that the caller can decide whether to OCR it.

This module reads text only; it does not open documents or render (``pdf``
does). Residual risk accepted: text drawn in a visible mode but hidden (under
an image, white on white, outside the crop box) counts as visible.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pypdfium2.raw as pdfium

from ocrwatch.documents.pdfium import Handle, rect
from ocrwatch.layout import Affine, Box

TextKind = Literal["none", "visible", "invisible_only"]
"""What text a page carries: none at all, some that shows, or only an invisible layer."""

_HIDDEN_MODES = frozenset({pdfium.FPDF_TEXTRENDERMODE_INVISIBLE, pdfium.FPDF_TEXTRENDERMODE_CLIP})
"""Render modes that paint nothing: an earlier OCR layer uses 3 (invisible)."""


@dataclass(frozen=True)
class PdfChar:
    """One character of a page's text as PDFium extracts it."""

    text: str
    visible: bool
    """False when drawn in an invisible render mode (3 or 7)."""
    points: Box
    """Its box in PDF user space points (y up: ``top`` is the lower edge); the font's full
    height, not the glyph's ink."""
    pixels: Box
    """Its box in the pixels of the page's render (y down)."""


@dataclass(frozen=True)
class PageText:
    """A page's embedded text: the whole string, each drawn character, and the page's kind."""

    text: str
    """Every character in PDFium's order, with the spaces and line breaks it infers.

    That is reading order for an upright page; on a page turned by /Rotate
    PDFium may list words out of order.
    """
    chars: tuple[PdfChar, ...]
    """The characters the page draws (inferred spaces and line breaks have no box and are left out)."""
    kind: TextKind


def read_text(page: Handle, to_points: Affine) -> PageText:
    """The text of a loaded page; call with ``PDFIUM_LOCK`` held.

    ``to_points`` maps the page's render pixels to PDF points; its inverse
    places each character's box in pixels.
    """
    to_pixels = to_points.inverse()
    text_page = pdfium.FPDFText_LoadPage(page)
    if not text_page:
        return PageText(text="", chars=(), kind="none")
    try:
        count = pdfium.FPDFText_CountChars(text_page)
        letters: list[str] = []
        chars: list[PdfChar] = []
        for index in range(max(count, 0)):
            letter = chr(pdfium.FPDFText_GetUnicode(text_page, index))
            letters.append(letter)
            drawn = _drawn(text_page, index, letter, to_pixels)
            if drawn is not None:
                chars.append(drawn)
    finally:
        pdfium.FPDFText_ClosePage(text_page)
    return PageText(
        text="".join(letters).replace("\r\n", "\n"), chars=tuple(chars), kind=kind_of(chars)
    )


def kind_of(chars: list[PdfChar] | tuple[PdfChar, ...]) -> TextKind:
    """``none`` without printable characters, ``visible`` when any shows, else ``invisible_only``."""
    printable = [char for char in chars if not char.text.isspace()]
    if not printable:
        return "none"
    if any(char.visible for char in printable):
        return "visible"
    return "invisible_only"


def _drawn(text_page: Handle, index: int, letter: str, to_pixels: Affine) -> PdfChar | None:
    """Character ``index`` with its box and visibility; None for one PDFium inferred."""
    if pdfium.FPDFText_IsGenerated(text_page, index) == 1:
        return None
    text_object = pdfium.FPDFText_GetTextObject(text_page, index)
    if not text_object:
        return None
    points = rect(pdfium.FPDFText_GetLooseCharBox, text_page, index)
    if points is None:
        return None
    mode = pdfium.FPDFTextObj_GetTextRenderMode(text_object)
    return PdfChar(
        text=letter,
        visible=mode not in _HIDDEN_MODES,
        points=points,
        pixels=to_pixels.box(points),
    )
