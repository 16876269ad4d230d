"""ALTO XML 4.4: a document's pages as one ALTO file, from the page model.

Measurements are pixels of the upright page (``MeasurementUnit`` pixel), the
boxes the same whole pixels as the hOCR's (:func:`~ocrwatch.outputs.hocr.pixel_box`).
Each page of the model is one ``Page`` (``PHYSICAL_IMG_NR`` its number in the
file) holding one ``PrintSpace`` over the whole page, since ocrwatch does not
tell margins from print; each block is a ``TextBlock`` of ``TextLine`` of
``String``, with an ``SP`` between two words of a line. ``WC`` is the
engine's confidence over 100, only where the engine gave one. ``BASELINE``
is the line's two baseline points, ``"x1,y1 x2,y2"``: since ALTO 4.2 it is a
points list (a single number before), and the list is what the 4.4 schema's
``PointsType`` documents.

Where the text came from is said with ``Processing`` steps in the
``Description`` (ALTO 4 deprecates ``OCRProcessing`` for them), each naming
ocrwatch as the software: one for the engine's OCR, one for a PDF page's own
text when a page used it, and one per failed page saying why it failed. Each
``Page`` points at its step with ``PROCESSINGREFS``; a failed page is a
``Page`` with an empty ``PrintSpace`` (and no size when the record has none)
whose step, of category ``other``, carries the error.

IDs are unique in the file: ``page_N``, and ``block_N_K``, ``line_N_K``,
``string_N_K`` counted on the N-th page of the file, and ``processing_...`` for the steps.
Written as text in one pass, like the hOCR.

It owns the ALTO markup; it does not read records (``model``) or decide
whether or where ALTO is written (``write``).
"""

from __future__ import annotations

from ocrwatch.outputs.hocr import (
    decimal,
    engine_label,
    pixel_box,
    xml_attribute,
    xml_text,
)
from ocrwatch.outputs.model import Box, Document, DocumentPage, Line

NAMESPACE = "http://www.loc.gov/standards/alto/ns-v4#"
SCHEMA_VERSION = "4.4"
SCHEMA_LOCATION = "http://www.loc.gov/standards/alto/v4/alto-4-4.xsd"
OCR_STEP = "processing_ocr"
EMBEDDED_STEP = "processing_embedded"
FAILED_STEP = "processing_failed_{index}"

_HEAD = f"""<?xml version="1.0" encoding="UTF-8"?>
<alto xmlns="{NAMESPACE}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" \
xsi:schemaLocation="{NAMESPACE} {SCHEMA_LOCATION}" SCHEMAVERSION="{SCHEMA_VERSION}">
"""


def alto_bytes(document: Document) -> bytes:
    """The ALTO 4.4 XML (UTF-8) of ``document``: one ``Page`` per page, in order."""
    parts = [_HEAD, "  <Description>\n    <MeasurementUnit>pixel</MeasurementUnit>\n"]
    if document.name:
        parts.append(
            "    <sourceImageInformation>\n"
            f"      <fileName>{xml_text(document.name)}</fileName>\n"
            "    </sourceImageInformation>\n"
        )
    engine = engine_label(document)
    _step(
        parts,
        document,
        step_id=OCR_STEP,
        category="contentGeneration",
        description=f"text recognition by {engine}",
        settings=_settings(document),
    )
    if any(page.text_source == "embedded" for page in document.pages):
        _step(
            parts,
            document,
            step_id=EMBEDDED_STEP,
            category="contentGeneration",
            description="text taken from the PDF page's own text, without OCR",
        )
    for index, page in enumerate(document.pages, start=1):
        if page.status == "failed":
            why = f": {page.error}" if page.error else ""
            _step(
                parts,
                document,
                step_id=FAILED_STEP.format(index=index),
                category="other",
                description=f"page {page.number} could not be read{why}",
            )
    parts.append("  </Description>\n  <Layout>\n")
    for index, page in enumerate(document.pages, start=1):
        _page(parts, page, index=index)
    parts.append("  </Layout>\n</alto>\n")
    return "".join(parts).encode("utf-8")


def _step(
    parts: list[str],
    document: Document,
    *,
    step_id: str,
    category: str,
    description: str,
    settings: str = "",
) -> None:
    """Append one ``Processing`` step done by ocrwatch (children in the schema's order)."""
    parts.append(
        f'    <Processing ID="{step_id}">\n'
        f"      <processingCategory>{category}</processingCategory>\n"
        f"      <processingStepDescription>{xml_text(description)}</processingStepDescription>\n"
    )
    if settings:
        parts.append(
            f"      <processingStepSettings>{xml_text(settings)}</processingStepSettings>\n"
        )
    parts.append("      <processingSoftware>\n        <softwareName>ocrwatch</softwareName>\n")
    if document.ocrwatch_version:
        version = xml_text(document.ocrwatch_version)
        parts.append(f"        <softwareVersion>{version}</softwareVersion>\n")
    description = f"hot-folder OCR daemon; OCR engine: {engine_label(document)}"
    parts.append(
        f"        <applicationDescription>{xml_text(description)}</applicationDescription>\n"
        "      </processingSoftware>\n    </Processing>\n"
    )


def _settings(document: Document) -> str:
    """The engine and the recorded settings that shaped its text, as ``key: value`` pairs."""
    pairs = [f"engine: {document.engine}"]
    if document.language:
        pairs.append(f"language: {document.language}")
    pairs += [f"{key}: {value}" for key, value in document.engine_settings.items()]
    return "; ".join(pairs)


def _page(parts: list[str], page: DocumentPage, *, index: int) -> None:
    """Append ``page`` as a ``Page`` with its ``PrintSpace``, its blocks inside."""
    sized = page.width > 0 and page.height > 0
    size = f' WIDTH="{page.width}" HEIGHT="{page.height}"' if sized else ""
    if page.status == "failed":
        step = FAILED_STEP.format(index=index)
    else:
        step = EMBEDDED_STEP if page.text_source == "embedded" else OCR_STEP
    parts.append(
        f'    <Page ID="page_{index}" PHYSICAL_IMG_NR="{page.number}"{size} '
        f'PROCESSINGREFS="{step}">\n'
    )
    if not page.blocks:
        place = ' HPOS="0" VPOS="0"' if sized else ""
        parts.append(f"      <PrintSpace{place}{size}/>\n    </Page>\n")
        return
    parts.append(
        f'      <PrintSpace HPOS="0" VPOS="0"{size}>\n' if sized else "      <PrintSpace>\n"
    )
    lines = strings = 0
    for number, block in enumerate(page.blocks, start=1):
        place = _place(block.box, page)
        parts.append(f'        <TextBlock ID="block_{index}_{number}"{place}>\n')
        for line in block.lines:
            lines += 1
            line_left, line_top, line_right, line_bottom = pixel_box(line.box, page)
            parts.append(
                f'          <TextLine ID="line_{index}_{lines}" HPOS="{line_left}" '
                f'VPOS="{line_top}" WIDTH="{line_right - line_left}" '
                f'HEIGHT="{line_bottom - line_top}"{_baseline(line)}>\n'
            )
            previous_right: int | None = None
            for word in line.words:
                strings += 1
                left, top, right, bottom = pixel_box(word.box, page)
                if previous_right is not None:
                    parts.append(_space(previous_right, left, line_top, line_bottom))
                confidence = ""
                if word.confidence is not None:
                    wc = min(1.0, max(0.0, word.confidence / 100))
                    confidence = f' WC="{decimal(wc, 4)}"'
                parts.append(
                    f'            <String ID="string_{index}_{strings}" '
                    f'CONTENT="{xml_attribute(word.text)}" HPOS="{left}" VPOS="{top}" '
                    f'WIDTH="{right - left}" HEIGHT="{bottom - top}"{confidence}/>\n'
                )
                previous_right = right
            parts.append("          </TextLine>\n")
        parts.append("        </TextBlock>\n")
    parts.append("      </PrintSpace>\n    </Page>\n")


def _place(box: Box, page: DocumentPage) -> str:
    """``HPOS``, ``VPOS``, ``WIDTH`` and ``HEIGHT`` of ``box`` in whole pixels."""
    left, top, right, bottom = pixel_box(box, page)
    return f' HPOS="{left}" VPOS="{top}" WIDTH="{right - left}" HEIGHT="{bottom - top}"'


def _baseline(line: Line) -> str:
    if line.baseline is None:
        return ""
    (x0, y0), (x1, y1) = line.baseline
    return f' BASELINE="{round(x0)},{round(y0)} {round(x1)},{round(y1)}"'


def _space(after: int, before: int, top: int, bottom: int) -> str:
    """The ``SP`` between two words, as high as their line: the gap's box when they do not
    touch, else a bare space."""
    if before <= after:
        return "            <SP/>\n"
    return (
        f'            <SP HPOS="{after}" VPOS="{top}" WIDTH="{before - after}" '
        f'HEIGHT="{bottom - top}"/>\n'
    )
