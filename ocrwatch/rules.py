"""The rules that shape one file's result, and their fingerprints.

A sidecar records the fingerprint of the rules it was made under; a file is
read again when its inbox's rules no longer give that fingerprint. What
enters a fingerprint is decided here: options that change what a file
reads as do, options that only decide whether or how fast it is read do
not.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from ocrwatch.config import EngineName, TextLayer
from ocrwatch.geometry import BoxRule, CropRule


@dataclass(frozen=True)
class Rules:
    """Everything that shapes the OCR result of one file; its fingerprints go in sidecars.

    :attr:`fingerprint` covers what shapes every file's result; the PDF
    options shape only PDFs' and have their own :attr:`pdf_fingerprint`, so
    that changing how PDFs are read does not read every image again.
    """

    engine: EngineName
    language: str = "eng"
    crop: CropRule | None = None
    regions: tuple[tuple[str, BoxRule], ...] = ()
    detect_orientation: bool = True
    engine_options: tuple[tuple[str, Any], ...] = ()
    max_pixels: int = 150_000_000
    text_layer: TextLayer = "skip"
    max_page_mpixels: float = 50.0
    max_pages: int = 500
    """Not fingerprinted: it refuses documents, it does not shape a result."""
    pdf_upload: str = "pages"
    """ocr.space only: ``pages`` (rendered here, one request each) or ``document`` (whole)."""
    pdf_page_limit: int = 3
    """ocr.space only: the most pages a whole-PDF request may carry (not fingerprinted)."""
    orient_locally: bool = False
    """ocr.space only: find each page's orientation here (Tesseract's detection, free), send it
    upright with ``detectOrientation=false``, so that word boxes are in the upright page. Set
    when the inbox writes a format that places words (hOCR, ALTO, searchable PDF) and
    ``detect_orientation`` is on. Not fingerprinted: it changes the frame boxes come back in,
    not the text."""

    def describe(self) -> dict[str, Any]:
        """The rules as plain JSON data, as recorded in sidecars (without the PDF options)."""
        return {
            "engine": self.engine,
            "language": self.language,
            "crop": self.crop.describe() if self.crop else None,
            "regions": {name: rule.describe() for name, rule in self.regions} or None,
            "detect_orientation": self.detect_orientation,
            self.engine: dict(self.engine_options),
        }

    def describe_pdf(self) -> dict[str, Any]:
        """The options that shape a PDF's result, recorded in a PDF's sidecar."""
        described: dict[str, Any] = {
            "text_layer": self.text_layer,
            "max_page_mpixels": self.max_page_mpixels,
        }
        if self.engine == "ocrspace":
            described["upload"] = self.pdf_upload
        return described

    @property
    def fingerprint(self) -> str:
        """A hash of :meth:`describe`: equal fingerprints mean an equal result is expected."""
        return _digest(self.describe())

    @property
    def pdf_fingerprint(self) -> str:
        """A hash of :meth:`describe_pdf`, which a PDF's sidecar must match too."""
        return _digest(self.describe_pdf())

    @property
    def legacy_fingerprints(self) -> frozenset[str]:
        """The fingerprints sidecars of schema version 1 had for these rules.

        Version 1 hashed the ``overlay`` option too; it changes nothing now
        (words are always kept), so either value describes the same result.
        """
        return frozenset(
            _digest({**self.describe(), "overlay": overlay}) for overlay in (False, True)
        )

    def reads_by_ocr(self, text_kind: str) -> bool:
        """Whether a PDF page carrying ``text_kind`` text (``none``, ``visible``,
        ``invisible_only``) is OCR'd under ``text_layer``, rather than read from its own text."""
        return (
            self.text_layer == "force"
            or text_kind == "none"
            or (text_kind == "invisible_only" and self.text_layer == "redo")
        )

    def sends_pdf_whole(self, size: int, pages: int) -> bool:
        """Whether a PDF of ``size`` bytes and ``pages`` pages, every page needing OCR, goes to
        ocr.space whole, in one request (``ocrspace.pdf_upload: document``); never when pages
        are oriented here (:attr:`orient_locally`), which only pages mode can do."""
        return (
            self.engine == "ocrspace"
            and self.pdf_upload == "document"
            and not self.orient_locally
            and pages <= self.pdf_page_limit
            and self.crop is None
            and not self.regions
            and size <= int(self.option("max_upload_bytes", 0))
        )

    def option(self, name: str, default: Any = None) -> Any:
        return dict(self.engine_options).get(name, default)


def _digest(described: dict[str, Any]) -> str:
    canonical = json.dumps(described, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
