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
from ocrwatch.layout import Affine, Block, Box, Line, Page, ScaleShift, Word

TextKind = Literal["none", "visible", "invisible_only"]
"""What text a page carries: none at all, some that shows, or only an invisible layer."""

_HIDDEN_MODES = frozenset({pdfium.FPDF_TEXTRENDERMODE_INVISIBLE, pdfium.FPDF_TEXTRENDERMODE_CLIP})
"""Render modes that paint nothing: an earlier OCR layer uses 3 (invisible)."""


@dataclass(frozen=True)
class PdfChar:
    """One character of a page's text as PDFium extracts it."""

    text: str
    index: int
    """Its position in :attr:`PageText.text`: characters between two drawn ones (spaces and
    line breaks PDFium inferred) separate words."""
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
        previous = ""
        for index in range(max(count, 0)):
            letter = chr(pdfium.FPDFText_GetUnicode(text_page, index))
            after_return, previous = previous == "\r", letter
            if letter == "\n" and after_return:
                continue  # PDFium ends lines with \r\n: one line break
            letters.append("\n" if letter == "\r" else letter)
            drawn = _drawn(text_page, index, letter, len(letters) - 1, to_pixels)
            if drawn is not None:
                chars.append(drawn)
    finally:
        pdfium.FPDFText_ClosePage(text_page)
    return PageText(text="".join(letters), chars=tuple(chars), kind=kind_of(chars))


def kind_of(chars: list[PdfChar] | tuple[PdfChar, ...]) -> TextKind:
    """``none`` without printable characters, ``visible`` when any shows, else ``invisible_only``."""
    printable = [char for char in chars if not char.text.isspace()]
    if not printable:
        return "none"
    if any(char.visible for char in printable):
        return "visible"
    return "invisible_only"


def _drawn(
    text_page: Handle, index: int, letter: str, position: int, to_pixels: Affine
) -> PdfChar | None:
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
        index=position,
        visible=mode not in _HIDDEN_MODES,
        points=points,
        pixels=to_pixels.box(points),
    )


def layout_of(text: PageText, within: Box) -> Page:
    """The drawn words inside ``within`` (by their centres) as a page of lines, boxes relative to it.

    Words are runs of drawn, non-blank characters with nothing between them
    in the page's text; a line break in the text starts a new line. The
    page's text is its words, lines joined by line breaks; the whole page's
    text is better taken from :attr:`PageText.text`, which keeps PDFium's
    spacing.
    """
    lines: list[list[list[PdfChar]]] = []
    previous: PdfChar | None = None
    for char in text.chars:
        between = text.text[previous.index + 1 : char.index] if previous is not None else ""
        if previous is None or "\n" in between or previous.text in ("\r", "\n"):
            lines.append([])
        if char.text.isspace():
            previous = char
            continue
        line = lines[-1]
        if not line or between or (previous is not None and previous.text.isspace()):
            line.append([])
        line[-1].append(char)
        previous = char
    shift = ScaleShift(dx=-within.left, dy=-within.top)
    found: list[Line] = []
    for line_chars in lines:
        words = []
        for word_chars in line_chars:
            box = Box.around([char.pixels for char in word_chars])
            if _inside(box, within):
                words.append(
                    Word(
                        "".join(char.text for char in word_chars),
                        *_edges(shift.box(box)),
                        line=len(found),
                    )
                )
        if words:
            found.append(Line(box=Box.around([word.box for word in words]), words=tuple(words)))
    if not found:
        return Page(text="")
    return Page(
        text="\n".join(" ".join(word.text for word in line.words) for line in found),
        words=tuple(word for line in found for word in line.words),
        blocks=(Block(box=Box.around([line.box for line in found]), lines=tuple(found)),),
    )


def _inside(box: Box, within: Box) -> bool:
    centre_x, centre_y = box.left + box.width / 2, box.top + box.height / 2
    return within.left <= centre_x < within.right and within.top <= centre_y < within.bottom


def _edges(box: Box) -> tuple[float, float, float, float]:
    return box.left, box.top, box.width, box.height
