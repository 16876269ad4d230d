"""Output formats beyond the ``.txt`` and ``.json``: hOCR, ALTO XML and searchable PDF, from one model.

``model`` rebuilds a document's pages from its ``.json`` (so a format added
later needs no OCR); ``hocr``, ``alto`` and ``searchable`` each write one
format from that model alone; ``write`` decides which formats an inbox gets
and writes them beside the sidecars, atomically, before the ``.json``.
"""
