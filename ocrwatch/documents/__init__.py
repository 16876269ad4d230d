"""Documents: files of pages, read one page at a time into the pixels and text the engines take.

For PDFs: ``pdfium`` holds the one lock every PDFium call takes, ``pdf``
opens a PDF and renders its pages, ``pdflayout`` chooses how a page is
rendered and maps its pixels back to PDF points, ``pdftext`` reads the text
a page already carries. For multi-page TIFFs: ``tiff`` reads each page's
directory and decodes one page at a time.
"""

DEFAULT_MAX_PAGES = 500
"""Pages a document may have before it is refused, unread (a page-count bomb)."""
