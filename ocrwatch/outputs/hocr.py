"""hOCR: a document's pages as one XHTML file marked up with the hOCR classes, from the page model.

Each page of the model is one ``ocr_page`` (its ``image`` is the source
file's name, ``ppageno`` counts from 0), even a page without text or a failed
page, which stays empty. Each block is an ``ocr_carea`` holding one
``ocr_par`` (the model has no paragraphs), then ``ocr_line`` and
``ocrx_word``. Boxes are whole pixels of the upright page, grown outward to
the pixels a box touches and kept on the page; a line's ``baseline`` is
given where the model has one, and a word's ``x_wconf`` only where the
engine gave a confidence (ocr.space and a PDF's own text give none).

The file is written as text in one pass, not through an element tree, so a
500-page document costs one string per element and no tree of objects.

It owns the hOCR markup, and the small pieces ``alto`` shares so that both
formats agree: the whole-pixel box of a model box (:func:`pixel_box`), XML
escaping (:func:`xml_text`, :func:`xml_attribute`), numbers without trailing
zeros (:func:`decimal`) and the engine's name (:func:`engine_label`). It does not read records (``model``) or decide
whether or where hOCR is written (``write``).
"""

from __future__ import annotations

import math
import re

from ocrwatch.outputs.model import Box, Document, DocumentPage, Line

HOCR_CLASSES = ("ocr_page", "ocr_carea", "ocr_par", "ocr_line", "ocrx_word")
"""The classes ocrwatch writes, the ``ocr-capabilities`` of every file (hOCR lists what the
writer can produce, not only what a file happens to hold)."""
WORD_CONFIDENCE = "ocrp_wconf"
"""Capability added when some word carries ``x_wconf``: only engines that give confidences."""

EDGE_SLACK = 1e-3
"""Pixels a box edge may pass a whole pixel before it counts as touching the next one, so that
float noise (``10.0000001``) does not grow a box by a pixel."""
_NOT_IN_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
"""Characters XML 1.0 cannot carry at all, not even as references (controls, lone surrogates)."""
REPLACEMENT = "\ufffd"

_HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"
    "http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">
<html xmlns="http://www.w3.org/1999/xhtml">
 <head>
  <title>{title}</title>
  <meta http-equiv="Content-Type" content="text/html; charset=utf-8"/>
  <meta name="ocr-system" content="{system}"/>
  <meta name="ocr-capabilities" content="{capabilities}"/>
  <meta name="ocr-number-of-pages" content="{pages}"/>
 </head>
 <body>
"""
_TAIL = """ </body>
</html>
"""


def hocr_bytes(document: Document) -> bytes:
    """The hOCR (XHTML, UTF-8) of ``document``: one ``ocr_page`` per page, in order."""
    confident = any(
        word.confidence is not None
        for page in document.pages
        for block in page.blocks
        for line in block.lines
        for word in line.words
    )
    capabilities = (*HOCR_CLASSES, WORD_CONFIDENCE) if confident else HOCR_CLASSES
    parts = [
        _HEAD.format(
            title=xml_text(document.name),
            system=xml_attribute(f"{software_label(document)} ({engine_label(document)})"),
            capabilities=" ".join(capabilities),
            pages=len(document.pages),
        )
    ]
    for index, page in enumerate(document.pages, start=1):
        _page(parts, page, index=index, image=document.name)
    parts.append(_TAIL)
    return "".join(parts).encode("utf-8")


def _page(parts: list[str], page: DocumentPage, *, index: int, image: str) -> None:
    """Append ``page`` as an ``ocr_page``; ids of its blocks, lines and words count from 1 on it."""
    properties = []
    if image:
        quoted = image.replace("\\", "\\\\").replace('"', '\\"')
        properties.append(f'image "{quoted}"')
    if page.width > 0 and page.height > 0:
        properties.append(f"bbox 0 0 {page.width} {page.height}")
    properties.append(f"ppageno {page.number - 1}")
    if page.dpi:
        resolution = round(page.dpi)
        properties.append(f"scan_res {resolution} {resolution}")
    title = xml_attribute("; ".join(properties))
    parts.append(f'  <div class="ocr_page" id="page_{index}" title="{title}">\n')
    lines = words = 0
    for number, block in enumerate(page.blocks, start=1):
        bbox = _bbox(block.box, page)
        parts.append(f'   <div class="ocr_carea" id="block_{index}_{number}" title="{bbox}">\n')
        parts.append(f'    <p class="ocr_par" id="par_{index}_{number}" title="{bbox}">\n')
        for line in block.lines:
            lines += 1
            parts.append(
                f'     <span class="ocr_line" id="line_{index}_{lines}" '
                f'title="{_line_properties(line, page)}">\n'
            )
            for word in line.words:
                words += 1
                properties_of_word = _bbox(word.box, page)
                if word.confidence is not None:
                    confidence = round(min(100.0, max(0.0, word.confidence)))
                    properties_of_word += f"; x_wconf {confidence}"
                parts.append(
                    f'      <span class="ocrx_word" id="word_{index}_{words}" '
                    f'title="{properties_of_word}">{xml_text(word.text)}</span>\n'
                )
            parts.append("     </span>\n")
        parts.append("    </p>\n   </div>\n")
    parts.append("  </div>\n")


def _line_properties(line: Line, page: DocumentPage) -> str:
    """``bbox`` and, when the model has a baseline that is not vertical, hOCR's ``baseline``.

    hOCR gives a baseline as ``slope offset``: the line ``y = slope * x +
    offset`` with the bottom-left corner of the line's box as origin, y still
    pointing down (so a baseline above the box's bottom has a negative offset).
    """
    pixels = pixel_box(line.box, page)
    left, _, _, bottom = pixels
    properties = "bbox " + " ".join(map(str, pixels))
    if line.baseline is None:
        return properties
    (x0, y0), (x1, y1) = line.baseline
    if x1 == x0:
        return properties
    slope = (y1 - y0) / (x1 - x0)
    offset = y0 + slope * (left - x0) - bottom
    return f"{properties}; baseline {decimal(slope, 3)} {decimal(offset, 3)}"


def _bbox(box: Box, page: DocumentPage) -> str:
    return "bbox " + " ".join(map(str, pixel_box(box, page)))


def pixel_box(box: Box, page: DocumentPage) -> tuple[int, int, int, int]:
    """``box`` in whole pixels, ``left, top, right, bottom``: grown outward to every pixel it
    touches, then kept on the page (inside ``0, 0`` to its size, where the size is known)."""
    left = max(0, math.floor(box.left + EDGE_SLACK))
    top = max(0, math.floor(box.top + EDGE_SLACK))
    right = max(0, math.ceil(box.right - EDGE_SLACK))
    bottom = max(0, math.ceil(box.bottom - EDGE_SLACK))
    if page.width > 0 and page.height > 0:
        left, right = min(left, page.width), min(right, page.width)
        top, bottom = min(top, page.height), min(bottom, page.height)
    return left, top, max(left, right), max(top, bottom)


def decimal(value: float, places: int) -> str:
    """``value`` rounded to ``places`` decimals, written without trailing zeros or a minus zero."""
    text = f"{value:.{places}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def software_label(document: Document) -> str:
    """ocrwatch and the version that read the document, as the record gives it."""
    return f"ocrwatch {document.ocrwatch_version}".strip()


def engine_label(document: Document) -> str:
    """The engine that read the document, with its version where the record gives one."""
    version = document.engine_settings.get(document.engine)
    if isinstance(version, str) and version:
        return f"{document.engine} {version}"
    return document.engine


def xml_text(text: str) -> str:
    """``text`` as XML character data: markup escaped, characters XML cannot hold replaced."""
    return (
        _NOT_IN_XML.sub(REPLACEMENT, text)
        .replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace("\r", "&#13;")
    )


def xml_attribute(text: str) -> str:
    """``text`` as a double-quoted XML attribute value, its tabs and line ends kept as references."""
    return xml_text(text).replace('"', "&quot;").replace("\t", "&#9;").replace("\n", "&#10;")
