"""PDFium, shared by every PDF reader: the one lock, a loaded page, its rectangles read as boxes.

PDFium is not thread-safe: its font cache, page caches and error state are
process-wide, so two threads inside it at once can corrupt memory.
:data:`PDFIUM_LOCK` is therefore the one lock of the process for pypdfium2:
every call into it, anywhere in ocrwatch, is made with the lock held. It is
held for one operation (opening a document, rendering one page, reading one
page's text) and released before the caller does anything slow with the
result, such as OCR, so workers of several inboxes take turns page by page.

The lock is reentrant because a document left unclosed is closed by its
finalizer, which garbage collection may run on a thread that already holds
the lock.

This module does not open documents or render pages (``pdf`` does), lay
pages out (``pdflayout``) or read text (``pdftext``). Residual risk accepted: a library that calls
PDFium behind ocrwatch's back (none today) would not take the lock.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pypdfium2.raw as pdfium

from ocrwatch.errors import DocumentError
from ocrwatch.layout import Box

PDFIUM_LOCK = threading.RLock()
"""Held around every pypdfium2 call in the process; see the module docstring."""

POINTS_PER_INCH = 72.0

Handle = Any
"""A raw PDFium handle (a ctypes pointer): FPDF_DOCUMENT, FPDF_PAGE, FPDF_TEXTPAGE."""


@contextmanager
def loaded_page(document: Handle, index: int, count: int) -> Iterator[Handle]:
    """Page ``index`` of an open document, closed on exit; call with :data:`PDFIUM_LOCK` held.

    Raises DocumentError (bad_input) when PDFium cannot load the page.
    """
    page = pdfium.FPDF_LoadPage(document, index)
    if not page:
        raise DocumentError(f"page {index + 1} of {count} cannot be loaded")
    try:
        yield page
    finally:
        pdfium.FPDF_ClosePage(page)


def rect(getter: Any, *arguments: Any) -> Box | None:
    """Call a PDFium function that fills an FS_RECTF; the rectangle as a box in points, or None on failure.

    This is where PDFium's (left, bottom, right, top) becomes a :class:`~ocrwatch.layout.Box`:
    least x and y, width and height; y grows upwards, so the box's ``top`` is the lower edge.
    """
    found = pdfium.FS_RECTF()
    if not getter(*arguments, ctypes.byref(found)):
        return None
    left, right = sorted((found.left, found.right))
    lower, upper = sorted((found.bottom, found.top))
    return Box(left, lower, right - left, upper - lower)
