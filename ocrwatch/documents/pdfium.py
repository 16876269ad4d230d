"""PDFium, shared by every PDF reader: the one lock, a loaded page, boxes and affine maps.

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
from dataclasses import dataclass
from typing import Any

import pypdfium2.raw as pdfium

from ocrwatch.errors import DocumentError

PDFIUM_LOCK = threading.RLock()
"""Held around every pypdfium2 call in the process; see the module docstring."""

POINTS_PER_INCH = 72.0

Handle = Any
"""A raw PDFium handle (a ctypes pointer): FPDF_DOCUMENT, FPDF_PAGE, FPDF_TEXTPAGE."""


@dataclass(frozen=True)
class Affine:
    """An affine map ``(x, y) -> (a*x + b*y + c, d*x + e*y + f)``."""

    a: float
    b: float
    c: float
    d: float
    e: float
    f: float

    def apply(self, x: float, y: float) -> tuple[float, float]:
        """The image of the point ``(x, y)``."""
        return self.a * x + self.b * y + self.c, self.d * x + self.e * y + self.f

    def inverse(self) -> Affine:
        """The map that undoes this one; raise ValueError if it is singular."""
        determinant = self.a * self.e - self.b * self.d
        if determinant == 0:
            raise ValueError("singular transform has no inverse")
        a, b = self.e / determinant, -self.b / determinant
        d, e = -self.d / determinant, self.a / determinant
        return Affine(a, b, -(a * self.c + b * self.f), d, e, -(d * self.c + e * self.f))

    def box(self, left: float, top: float, right: float, bottom: float) -> Box:
        """The axis-aligned bounds of a box's four corners after the map, as (min x, min y, max x, max y)."""
        corners = [self.apply(x, y) for x in (left, right) for y in (top, bottom)]
        xs, ys = [x for x, _ in corners], [y for _, y in corners]
        return min(xs), min(ys), max(xs), max(ys)


Box = tuple[float, float, float, float]
"""Bounds as (min x, min y, max x, max y): (left, top, right, bottom) in page pixels,
(left, bottom, right, top) in PDF points."""


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
    """Call a PDFium function that fills an FS_RECTF; its (left, bottom, right, top), or None on failure."""
    found = pdfium.FS_RECTF()
    if not getter(*arguments, ctypes.byref(found)):
        return None
    return (
        min(found.left, found.right),
        min(found.top, found.bottom),
        max(found.left, found.right),
        max(found.top, found.bottom),
    )
