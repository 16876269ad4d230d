"""PDFs: opening one within limits, telling a finished file from a half-written one, rendering pages.

:func:`open_pdf` refuses what cannot be read before any page is rendered:
an encrypted file without its password, a broken file, no pages, or more
pages than the limit (counted from the page tree, so a 20,000-page file is
refused without loading a page). :func:`pdf_completeness` tells the tracker
whether a file that stopped growing is done. :meth:`PdfDocument.page` lays a
page out with :mod:`~ocrwatch.documents.pdflayout` (size, rotation, the
resolution to render at, the map from pixels to PDF points),
:meth:`PdfDocument.render` renders it into upright pixels
shaped like :mod:`ocrwatch.imaging.decoding`'s (HxW grey or HxWx3 BGR, uint8,
C-contiguous) and :meth:`PdfDocument.text` reads its embedded text.

Pages are rendered one at a time, straight into the array returned (PDFium
writes into numpy's memory, no second copy): nothing holds more than the
page asked for. Every PDFium call takes :data:`~ocrwatch.documents.pdfium.PDFIUM_LOCK`
for one operation only.

Not here: OCR, writing PDFs, and the per-inbox options (``pdf.password_file``
is read by the caller, which passes the password). Residual risks accepted:
PDFium rebuilds a damaged cross-reference table, so a damaged file that still
ends in ``%%EOF`` and loads every page counts as complete, and so does an
incremental update cut within 1024 bytes of the previous revision's
``%%EOF`` (PDFium reads that revision); a page's content stream is parsed when
the page loads but images are decoded only when rendered, so a corrupt image
shows as blank rather than as an error.
"""

from __future__ import annotations

import ctypes
import functools
import re
import weakref
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pypdfium2.raw as pdfium

from ocrwatch.documents import DEFAULT_MAX_PAGES, Closing
from ocrwatch.documents.pdfium import PDFIUM_LOCK, Handle, loaded_page
from ocrwatch.documents.pdflayout import DEFAULT_MAX_PAGE_MPIXELS, PdfPage, lay_out
from ocrwatch.documents.pdftext import PageText, read_text
from ocrwatch.errors import DocumentError
from ocrwatch.source import ByteSource

RELOAD_AFTER_LOADS = 24
"""Page loads after which a document is opened afresh (three per page read: its layout, its
text, its render), which bounds what PDFium keeps of the pages before."""
EOF_MARKER = b"%%EOF"
EOF_WINDOW = 1024
"""A finished PDF has ``%%EOF`` within its last this many bytes (the specification's allowance)."""
UNTERMINATED_NOTE = f"PDF has no {EOF_MARKER.decode()} in its last {EOF_WINDOW} bytes but every page loads; read as it is"
PASSWORD_OPTION = "pdf.password_file"

_LINEARIZED_LENGTH = re.compile(rb"/L\s+(\d+)")
_WHITE = 0xFFFFFFFF
_RENDER_FLAGS = pdfium.FPDF_ANNOT
"""Draw annotations' appearances (stamps, filled-in forms) as a viewer does. FPDF_GRAYSCALE is
not needed for a grey bitmap and costs a third more memory on a large bilevel page."""
_OPEN_ERRORS = {
    pdfium.FPDF_ERR_FILE: "file not found or cannot be read",
    pdfium.FPDF_ERR_FORMAT: "not a PDF or corrupted",
    pdfium.FPDF_ERR_SECURITY: "unsupported security scheme",
    pdfium.FPDF_ERR_PAGE: "page not found or content error",
}


class _Damaged(DocumentError):
    """Broken, without pages, or a page that does not load: also what a file cut short looks like."""


@dataclass(frozen=True)
class Completeness:
    """A PDF that opened and loaded every page; ``terminated`` when it ends in ``%%EOF``."""

    pages: int
    terminated: bool

    @property
    def note(self) -> str | None:
        """What to record when an unterminated file is read after the incomplete timeout."""
        return None if self.terminated else UNTERMINATED_NOTE


def open_pdf(
    data: ByteSource, *, password: str | None = None, max_pages: int = DEFAULT_MAX_PAGES
) -> PdfDocument:
    """Open a PDF, in memory or on disk; raise DocumentError (bad_input) if it cannot be read within limits."""
    secret = None if password is None else password.encode("utf-8")
    with PDFIUM_LOCK:
        handle, keep = _load(data, secret)
        if not handle:
            raise _open_error(pdfium.FPDF_GetLastError(), password=password, size=len(data))
        count = pdfium.FPDF_GetPageCount(handle)
        if count < 1 or count > max_pages:
            pdfium.FPDF_CloseDocument(handle)
    if count < 1:
        raise _Damaged("PDF has no pages")
    if count > max_pages:
        raise DocumentError(f"PDF has {count} pages, more than the limit of {max_pages}")
    return PdfDocument(handle, data, count, secret=secret, keep=keep)


def pdf_completeness(
    data: ByteSource, *, password: str | None = None, max_pages: int = DEFAULT_MAX_PAGES
) -> Completeness:
    """Whether a PDF is finished: it ends in ``%%EOF``, opens, and loads every page.

    A linearized file must also be as long as it declares. A file that opens
    and loads every page without the ``%%EOF`` comes back with ``terminated``
    False: the caller waits for it like an incomplete file, then reads it with
    :attr:`Completeness.note`. Raises DocumentError:
    ``incomplete`` when an unterminated file fails to open or load a page (it
    may still be being written), ``bad_input`` when a terminated one does, or
    when it is encrypted or over ``max_pages``.
    """
    terminated = EOF_MARKER in data[-EOF_WINDOW:] and len(data) >= _linearized_length(data)
    try:
        with open_pdf(data, password=password, max_pages=max_pages) as document:
            document.load_every_page()
            return Completeness(pages=document.page_count, terminated=terminated)
    except _Damaged as error:
        if terminated:
            raise
        raise DocumentError(
            f"PDF looks cut short at {len(data)} bytes: {error}",
            incomplete=True,
        ) from error


class PdfDocument(Closing):
    """An open PDF: its page count, and each page laid out, rendered or read on request.

    Safe to share between threads (each call takes ``PDFIUM_LOCK``); close
    it, or use it as a context manager, to free PDFium's memory at once.
    """

    def __init__(
        self,
        handle: Handle,
        data: ByteSource,
        page_count: int,
        *,
        secret: bytes | None = None,
        keep: Any,
    ) -> None:
        """Wrap a document handle from :func:`open_pdf`, which is how documents are made."""
        self.page_count = page_count
        self._data = data
        self._secret = secret
        self._loads = 0
        self._adopt(handle, keep)

    def _adopt(self, handle: Handle, keep: Any) -> None:
        self._handle: Handle = handle
        # PDFium reads through ``keep`` (the bytes, or the file's callback) for as
        # long as the document is open, so the finalizer, which closes it, holds it.
        self._finalizer = weakref.finalize(self, _close_document, handle, keep)
        # At exit PDFium may already be shut down; the memory goes with the process.
        self._finalizer.atexit = False

    def close(self) -> None:
        """Free the document; calling it again does nothing."""
        self._finalizer()
        self._handle = None

    def load_every_page(self) -> None:
        """Load and drop each page in turn; raise DocumentError (bad_input) at the first that fails."""
        for index in range(self.page_count):
            try:
                with PDFIUM_LOCK, self._page(index):
                    pass
            except DocumentError as error:
                raise _Damaged(str(error)) from error

    def page(self, index: int, *, max_page_mpixels: float = DEFAULT_MAX_PAGE_MPIXELS) -> PdfPage:
        """Page ``index`` (from 0) laid out for rendering; raise DocumentError if it does not load.

        See :func:`~ocrwatch.documents.pdflayout.lay_out` for the resolution it chooses.
        """
        with PDFIUM_LOCK, self._page(index) as handle:
            return lay_out(handle, index, self.page_count, max_page_mpixels=max_page_mpixels)

    def render(self, page: PdfPage) -> np.ndarray:
        """The page as upright uint8 pixels: HxW for grey or bilevel content, else HxWx3 BGR."""
        width, height = page.size
        grey = page.scan is not None and page.scan.grey
        pixels = np.empty((height, width) if grey else (height, width, 3), dtype=np.uint8)
        bitmap_format = pdfium.FPDFBitmap_Gray if grey else pdfium.FPDFBitmap_BGR
        stride = pixels.strides[0]
        with PDFIUM_LOCK, self._page(page.index) as handle:
            bitmap = pdfium.FPDFBitmap_CreateEx(
                width, height, bitmap_format, pixels.ctypes.data_as(ctypes.c_void_p), stride
            )
            if not bitmap:
                raise DocumentError(
                    f"page {page.index + 1}: no memory for {width} x {height} pixels"
                )
            try:
                pdfium.FPDFBitmap_FillRect(bitmap, 0, 0, width, height, _WHITE)
                pdfium.FPDF_RenderPageBitmap(bitmap, handle, 0, 0, width, height, 0, _RENDER_FLAGS)
            finally:
                pdfium.FPDFBitmap_Destroy(bitmap)
        if not grey and _colourless(pixels):
            return np.ascontiguousarray(pixels[..., 0])
        return pixels

    def text(self, page: PdfPage) -> PageText:
        """The page's embedded text, each character boxed in points and in the render's pixels."""
        with PDFIUM_LOCK, self._page(page.index) as handle:
            return read_text(handle, page.to_points)

    def rendered(
        self, *, max_page_mpixels: float = DEFAULT_MAX_PAGE_MPIXELS
    ) -> Iterator[tuple[PdfPage, np.ndarray]]:
        """Each page laid out and rendered in turn; the previous page's pixels are the caller's to drop."""
        for index in range(self.page_count):
            page = self.page(index, max_page_mpixels=max_page_mpixels)
            yield page, self.render(page)

    def _page(self, index: int) -> AbstractContextManager[Handle]:
        """Page ``index`` loaded, for use with ``PDFIUM_LOCK`` held (as every caller does)."""
        if self._handle is None:
            raise ValueError("the document is closed")
        if not 0 <= index < self.page_count:
            raise IndexError(f"page {index} of a {self.page_count}-page document")
        self._loads += 1
        if self._loads > RELOAD_AFTER_LOADS:
            self._reload()
        return loaded_page(self._handle, index, self.page_count)

    def _reload(self) -> None:
        """Open the document afresh, dropping what PDFium kept of the pages read so far.

        PDFium keeps every image stream a page has used for as long as the
        document is open, so reading a long scan would hold its whole image
        data a second time. Called with ``PDFIUM_LOCK`` held, between pages.
        """
        handle, keep = _load(self._data, self._secret)
        if not handle:
            return  # it opened before: keep the handle there is
        self._finalizer()
        self._adopt(handle, keep)
        self._loads = 0


def _load(data: ByteSource, secret: bytes | None) -> tuple[Handle, Any]:
    """A document handle for ``data`` (null on failure), and what must outlive it; call with
    ``PDFIUM_LOCK`` held.

    Bytes in memory are handed to PDFium as they are, and PDFium reads them
    until the document is closed. A file on disk is read through a callback,
    so PDFium reads the parts a page needs where they lie and the file is
    never held whole; the callback and its structure are what must outlive
    the handle.
    """
    if isinstance(data, bytes):
        return pdfium.FPDF_LoadMemDocument64(data, len(data), secret), data
    access = pdfium.FPDF_FILEACCESS()
    access.m_FileLen = len(data)
    access.m_GetBlock = type(access.m_GetBlock)(functools.partial(_read_block, data))
    access.m_Param = None
    return pdfium.FPDF_LoadCustomDocument(ctypes.byref(access), secret), access


def _read_block(data: ByteSource, _param: Any, position: int, buffer: Any, size: int) -> int:
    """PDFium's read callback: ``size`` bytes at ``position`` into ``buffer``; 0 when they cannot be read."""
    try:
        block = data[position : position + size]
    except OSError:
        return 0
    if len(block) != size:
        return 0
    ctypes.memmove(buffer, block, size)
    return 1


def _close_document(handle: Handle, keep: Any) -> None:
    """Close a document; ``keep``, what PDFium reads it through, is only held alive until this point."""
    with PDFIUM_LOCK:
        pdfium.FPDF_CloseDocument(handle)


def _linearized_length(data: ByteSource) -> int:
    """The file length a linearized PDF declares (/L), or 0 when it is not linearized.

    A linearized file carries a first-page trailer ending in ``%%EOF`` near its
    start, so a cut just past it would look terminated; its declared length
    tells.
    """
    head = data[:EOF_WINDOW]
    declared = _LINEARIZED_LENGTH.search(head) if b"/Linearized" in head else None
    return int(declared.group(1)) if declared else 0


def _open_error(code: int, *, password: str | None, size: int) -> DocumentError:
    if code == pdfium.FPDF_ERR_PASSWORD:
        if password is None:
            return DocumentError(
                f"PDF is encrypted and needs a password: set the inbox's {PASSWORD_OPTION}"
            )
        return DocumentError(
            f"PDF is encrypted and the password from the inbox's {PASSWORD_OPTION} does not open it"
        )
    if code == pdfium.FPDF_ERR_SECURITY:
        return DocumentError(
            f"PDF is encrypted with a scheme PDFium does not support ({size} bytes)"
        )
    reason = _OPEN_ERRORS.get(code, "unknown error")
    return _Damaged(f"not a readable PDF ({size} bytes): PDFium says {reason}")


def _colourless(pixels: np.ndarray) -> bool:
    """True when every pixel of a BGR render is a shade of grey."""
    blue, green, red = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    return bool(np.array_equal(blue, green) and np.array_equal(green, red))
