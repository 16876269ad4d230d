"""The document model every output writer reads: pages of blocks of lines of words, from the ``.json``.

A :class:`Document` is rebuilt from a result record (the ``.json`` sidecar)
alone, so a format added later is written without OCR, and every writer
(hOCR, ALTO, searchable PDF) reads the same thing whichever engine filled it:
Tesseract's layout, ocr.space's overlay, or the text a PDF already carried.

Frames: every box, baseline and size here is in the page's pixels, the
upright page as ocrwatch read it (an image turned by its EXIF orientation, a
PDF page rendered as a viewer shows it, :attr:`DocumentPage.dpi` dots per
inch), uncropped: a crop or a region only chose what was read, and its words
are at their true place on the whole page. For a PDF page,
:attr:`DocumentPage.to_points` maps these pixels to the page's own PDF user
space (points, y up, before ``/Rotate``).

Words of one request that the engine did not group into lines (a v2 record of
an engine without a layout) are grouped by their ``line`` number here, one
block per request. A confidence is kept only where the engine gave one
(ocr.space gives none). A record without words at all (version 1, read without
``overlay``), or with a page ocr.space turned itself, cannot feed a writer that
places words: :func:`has_words` tells.

It owns the model and reading it from a record; it does not write any format
(``hocr``, ``alto``, ``searchable``) or decide which are written (``write``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ocrwatch.layout import Affine, Baseline, Block, Box, Line, Word

__all__ = [
    "Block",
    "Box",
    "Document",
    "DocumentPage",
    "Line",
    "Word",
    "document_of",
    "has_words",
]


@dataclass(frozen=True)
class DocumentPage:
    """One page: its size and resolution, its text as the engine gave it, its layout."""

    number: int
    """Position in the file, from 1."""
    status: str
    """``done``, or ``failed`` (a page of a partial document: no text, no words)."""
    width: int
    """Upright width in pixels, the frame of every box of the page."""
    height: int
    dpi: float | None
    """Dots per inch of those pixels (a TIFF's tags, a PDF's render); None when unknown."""
    text: str
    """The page's text verbatim (ocr.space's table tabs, Markdown, form feeds excepted)."""
    text_source: str | None
    """``ocr``, ``embedded`` (a PDF page's own text) or None (a failed page)."""
    blocks: tuple[Block, ...]
    """Blocks of lines of words in reading order; empty for a page without text."""
    to_points: Affine | None = None
    """Pixels to PDF points (the page's user space) for a page of a PDF; None otherwise."""
    orientation: int | None = None
    """Degrees the engine found the page's text turned (0, 90, 180, 270), when it said."""
    image: Mapping[str, Any] | None = None
    """The ``image`` entry of the record: format, mode, stored size, EXIF orientation."""
    error: str | None = None
    """Why a failed page failed."""

    @property
    def words(self) -> tuple[Word, ...]:
        return tuple(word for block in self.blocks for line in block.lines for word in line.words)


@dataclass(frozen=True)
class Document:
    """A file's pages as its ``.json`` records them, and who read them."""

    name: str
    """The file's name (``scan.pdf``)."""
    format: str
    """``PDF``, ``TIFF`` for a multi-page TIFF, else the image's format (``JPEG``, ``PNG``...)."""
    engine: str
    """``tesseract`` or ``ocrspace`` (or what else read it)."""
    engine_settings: Mapping[str, Any]
    """The record's ``engine`` entry apart from its name (ocr.space engine number, language...)."""
    ocrwatch_version: str
    pages: tuple[DocumentPage, ...]
    language: str | None = None
    """The inbox's language setting as recorded (an ocr.space code such as ``eng``)."""


def has_words(record: Mapping[str, Any]) -> bool:
    """True when the record keeps words with boxes in page pixels for every page read.

    False for a version 1 record (no words), and for a page ocr.space turned
    itself (``detectOrientation``): its boxes are in the API's turned frame,
    whose direction the API does not pin down. Such a file is read again for
    a format that places words, and then turned here first.
    """
    if int(record.get("schema_version", 0)) < 2:
        return False
    turned_by_api = (record.get("engine") or {}).get("name") == "ocrspace"
    return all(
        "words" in result
        and not (
            turned_by_api
            and result.get("orientation") not in (None, 0)
            and result.get("orientation_source") != "local"
        )
        for entry in record.get("pages", ())
        if entry.get("status") == "done"
        for result in entry.get("results", ())
    )


def document_of(record: Mapping[str, Any]) -> Document:
    """The model of a version 2 (or later) result record. Raises ValueError for an older one."""
    if int(record.get("schema_version", 0)) < 2:
        raise ValueError("a version 1 record holds no page model; the file must be read again")
    source = record.get("source", {})
    engine = dict(record.get("engine", {}))
    name = str(engine.pop("name", "unknown"))
    settings = record.get("settings", {})
    return Document(
        name=str(source.get("name", "")),
        format=str(record.get("document", {}).get("format", "")),
        engine=name,
        engine_settings=engine,
        ocrwatch_version=str(record.get("ocrwatch_version", "")),
        pages=tuple(_page(entry) for entry in record.get("pages", ())),
        language=settings.get("language"),
    )


def _page(entry: Mapping[str, Any]) -> DocumentPage:
    image = entry.get("image") or {}
    dpi = image.get("dpi")
    results = entry.get("results", ())
    orientations = [
        result["orientation"] for result in results if result.get("orientation") is not None
    ]
    error = entry.get("error")
    return DocumentPage(
        number=int(entry["number"]),
        status=str(entry.get("status", "done")),
        width=int(image.get("width", 0)),
        height=int(image.get("height", 0)),
        dpi=float(dpi[0]) if dpi else None,
        text=str(entry.get("text", "")),
        text_source=entry.get("text_source"),
        blocks=tuple(block for result in results for block in _blocks(result)),
        to_points=_affine(entry.get("to_points")),
        orientation=int(orientations[0]) if orientations else None,
        image=image or None,
        error=str(error["message"]) if isinstance(error, Mapping) else None,
    )


def _blocks(result: Mapping[str, Any]) -> list[Block]:
    """One request's words as blocks of lines: the recorded lines, else lines by word number."""
    words = [(int(item.get("line", 0)), _word(item)) for item in result.get("words", ())]
    if not words:
        return []
    recorded = result.get("lines") or []
    if not recorded:
        by_line: dict[int, list[Word]] = {}
        for number, word in words:
            by_line.setdefault(number, []).append(word)
        lines = [_line(group, None) for group in by_line.values()]
        return [Block(Box.around([line.box for line in lines]), tuple(lines))]
    members: list[list[Word]] = [[] for _ in recorded]
    for number, word in words:
        if 0 <= number < len(recorded):
            members[number].append(word)
    blocks: dict[int, list[Line]] = {}
    for line_entry, line_words in zip(recorded, members, strict=True):
        if line_words:
            line = _line(line_words, _baseline(line_entry.get("baseline")), _box(line_entry))
            blocks.setdefault(int(line_entry.get("block", 0)), []).append(line)
    return [
        Block(Box.around([line.box for line in lines]), tuple(lines)) for lines in blocks.values()
    ]


def _line(words: Sequence[Word], baseline: Baseline | None, box: Box | None = None) -> Line:
    return Line(
        box=box if box is not None else Box.around([word.box for word in words]),
        words=tuple(words),
        baseline=baseline,
    )


def _word(item: Mapping[str, Any]) -> Word:
    confidence = item.get("confidence")
    return Word(
        text=str(item["text"]),
        left=float(item["left"]),
        top=float(item["top"]),
        width=float(item["width"]),
        height=float(item["height"]),
        line=int(item.get("line", 0)),
        confidence=None if confidence is None else float(confidence),
    )


def _box(item: Mapping[str, Any]) -> Box:
    return Box(float(item["left"]), float(item["top"]), float(item["width"]), float(item["height"]))


def _baseline(points: Sequence[Sequence[float]] | None) -> Baseline | None:
    if not points:
        return None
    (x0, y0), (x1, y1) = points
    return (float(x0), float(y0)), (float(x1), float(y1))


def _affine(values: Mapping[str, float] | None) -> Affine | None:
    if not values:
        return None
    return Affine(*(float(values[key]) for key in ("a", "b", "c", "d", "e", "f")))
