"""Documents: files of pages, read one page at a time into the pixels and text the engines take.

For PDFs: ``pdfium`` holds the one lock every PDFium call takes, ``pdf``
opens a PDF and renders its pages, ``pdflayout`` chooses how a page is
rendered and maps its pixels back to PDF points, ``pdftext`` reads the text
a page already carries. For multi-page TIFFs: ``tiff`` reads each page's
directory and decodes one page at a time.
"""

from __future__ import annotations

from types import TracebackType
from typing import Self

DEFAULT_MAX_PAGES = 500
"""Pages a document may have before it is refused, unread (a page-count bomb)."""


class Closing:
    """A reader that holds native resources: ``with`` closes it, and so may the caller."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()
