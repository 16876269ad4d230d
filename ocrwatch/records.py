"""The content of the sidecars: the ``.txt`` and ``.json`` of a done file, and the ``.error.json`` of a failed one.

Pure functions from what the pipeline knows (for a done file, its pages'
entries: each page's record, made by :func:`page_entry` as soon as the page
is read, so that it can be kept for a resume) to text and JSON data (plus
:func:`record_failure`, which also writes it). The format is published in
``schemas/sidecar.schema.json``; a change to it bumps ``SCHEMA_VERSION``.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ocrwatch import __version__, sidecar
from ocrwatch.engines.base import OcrEngine, OcrResult, Page
from ocrwatch.errors import FileError, OcrError
from ocrwatch.geometry import Box
from ocrwatch.imaging.containers import MAX_COUNTED_FRAMES
from ocrwatch.layout import Affine, PixelMap, ScaleShift, Word, map_page
from ocrwatch.layout import Box as LayoutBox
from ocrwatch.pages import PageFacts, PageResult, Target
from ocrwatch.plan import Rules
from ocrwatch.sidecar import SidecarPaths, utc_iso
from ocrwatch.source import Source

logger = logging.getLogger(__name__)


def final_newline(text: str) -> str:
    """``text`` with Unix line ends, no trailing blanks, and one final newline unless empty."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    body = "\n".join(lines).strip("\n")
    return body + "\n" if body else ""


PAGE_BREAK = "\f"
"""Between two pages' text in the ``.txt``, as Tesseract separates pages."""


@dataclass(frozen=True)
class DocumentFacts:
    """What the record says about the file as a whole."""

    format: str
    pages: int
    frames: int = 1
    note: str | None = None


def page_text(page: PageResult, rules: Rules) -> str:
    """One page's part of the ``.txt``: its text, or each region's text under its name."""
    if not rules.regions:
        return final_newline(page.results[0][1].text)
    blocks = [f"[{target.name}]\n{final_newline(result.text)}" for target, result in page.results]
    return "\n".join(blocks)


def document_text(entries: list[dict[str, Any]]) -> str:
    """The ``.txt`` content: the pages' texts in order, a form feed between two pages."""
    return PAGE_BREAK.join(str(entry["text"]) for entry in entries)


def page_entry(page: PageResult, rules: Rules) -> dict[str, Any]:
    """The record of one page read (by OCR or from its own text), as JSON data."""
    facts = page.facts
    entry: dict[str, Any] = {
        "number": facts.number,
        "status": "done",
        "text_source": "embedded" if page.embedded else "ocr",
        "image": _image(facts),
        "to_points": _affine(facts.to_points),
        "crop": page.crop_box.as_dict() if page.crop_box else None,
        "text": page_text(page, rules),
        "results": [_result_entry(target, result) for target, result in page.results],
        "requests": page.requests,
    }
    if facts.notes:
        entry["note"] = "; ".join(facts.notes)
    return entry


def failed_page_entry(number: int, error: FileError, facts: PageFacts | None) -> dict[str, Any]:
    """The record of a page that failed for good while others were read."""
    entry: dict[str, Any] = {
        "number": number,
        "status": "failed",
        "text_source": None,
        "text": "",
        "results": [],
        "error": {"classification": error.classification, "message": str(error)},
        "requests": error.attempts if isinstance(error, OcrError) else 0,
    }
    if facts is not None:
        # Known when the page opened and failed later: output formats keep its place.
        entry["image"] = _image(facts)
        entry["to_points"] = _affine(facts.to_points)
    return entry


def _image(facts: PageFacts) -> dict[str, Any]:
    info = facts.info
    upright_width, upright_height = info.upright_size
    return {
        "format": info.format,
        "mode": info.mode,
        "width": upright_width,
        "height": upright_height,
        "stored_width": info.width,
        "stored_height": info.height,
        "orientation": info.orientation,
        "dpi": list(facts.dpi) if facts.dpi else None,
    }


def result_record(
    *,
    source: Source,
    document: DocumentFacts,
    entries: list[dict[str, Any]],
    rules: Rules,
    engine: OcrEngine,
    text: str,
    attempt: int,
    requests: int,
    timings: dict[str, Any],
) -> dict[str, Any]:
    """The ``.json`` content of a file whose pages gave ``entries``; ``requests`` counts every try's."""
    failed = [entry["number"] for entry in entries if entry["status"] == "failed"]
    record: dict[str, Any] = {
        "schema_version": sidecar.SCHEMA_VERSION,
        "status": "partial" if failed else "done",
        "ocrwatch_version": __version__,
        "source": source.describe(),
        "document": {"format": document.format, "pages": document.pages, "frames": document.frames},
        "settings": rules.describe(),
        "settings_fingerprint": rules.fingerprint,
    }
    if document.format == "PDF":
        record["settings"] = {**record["settings"], "pdf": rules.describe_pdf()}
        record["pdf_fingerprint"] = rules.pdf_fingerprint
    # Everything that says whether the record is current comes before the text
    # (sidecar.load_head reads no further).
    record.update(
        engine={"name": engine.name, **engine.settings()},
        failed_pages=failed,
        text=text,
        pages=entries,
        attempt=attempt,
        requests=requests,
        timings=timings,
    )
    notes = [document.note] if document.note else []
    if document.frames > 1 and document.pages == 1:
        # frames stops counting at the cap: a file that reaches it may hold more.
        at_least = "at least " if document.frames >= MAX_COUNTED_FRAMES else ""
        notes.append(f"only the first of {at_least}{document.frames} frames was read")
    if notes:
        record["note"] = "; ".join(notes)
    return record


def partial_record(record: dict[str, Any], *, first_attempt: float) -> dict[str, Any]:
    """The error sidecar of a partial document: which pages failed and why, for ``failed`` and ``retry``."""
    failed = [entry for entry in record["pages"] if entry["status"] == "failed"]
    reasons = "; ".join(
        f"page {entry['number']}: {entry['error']['message']}" for entry in failed[:5]
    )
    more = f"; and {len(failed) - 5} more" if len(failed) > 5 else ""
    return {
        "schema_version": sidecar.SCHEMA_VERSION,
        "status": "partial",
        "ocrwatch_version": __version__,
        "source": record["source"],
        "settings": record["settings"],
        "settings_fingerprint": record["settings_fingerprint"],
        "error": {
            "classification": failed[0]["error"]["classification"],
            "message": f"{len(failed)} of {record['document']['pages']} pages failed: "
            f"{reasons}{more}",
            "type": "PartialDocument",
        },
        "failed_pages": [entry["number"] for entry in failed],
        "attempts": record["attempt"],
        "requests": record["requests"],
        "first_attempt": utc_iso(first_attempt),
        "last_attempt": utc_iso(time.time()),
    }


def _result_entry(target: Target, result: OcrResult) -> dict[str, Any]:
    words, lines = _layout(result.pages, target.box)
    orientations = [page.orientation for page in result.pages if page.orientation is not None]
    errors = [page.error for page in result.pages if page.error]
    entry: dict[str, Any] = {
        "name": target.name,
        "box": target.box.as_dict(),
        "text": final_newline(result.text),
        "orientation": orientations[0] if orientations else None,
        "words": words,
        "lines": lines,
        "seconds": round(result.seconds, 4),
        "attempts": result.attempts,
        "upload": result.upload.describe() if result.upload else None,
    }
    if errors:
        entry["error"] = "; ".join(errors)
    # Set (``local``) when ocrwatch found the orientation and turned the part itself.
    if result.orientation_source is not None:
        entry["orientation_source"] = result.orientation_source
    if result.endpoint is not None:
        entry["endpoint"] = result.endpoint
    if result.raw is not None:
        entry["raw"] = without_overlay(result.raw)
    return entry


def _layout(pages: tuple[Page, ...], box: Box) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Words and lines of what one request read, in the whole page's pixels.

    Where the engine grouped words into blocks of lines, each word's ``line``
    is its line's position in ``lines`` and each line names its block;
    otherwise ``lines`` is empty and ``line`` is the engine's own count.
    """
    words: list[dict[str, Any]] = []
    lines: list[dict[str, Any]] = []
    blocks = 0
    for page in pages:
        moved = map_page(page, ScaleShift(dx=box.x, dy=box.y))
        if not moved.blocks:
            words.extend(_word(word, word.line) for word in moved.words)
            continue
        for block in moved.blocks:
            for line in block.lines:
                words.extend(_word(word, len(lines)) for word in line.words)
                lines.append(
                    {
                        **_box(line.box),
                        "block": blocks,
                        "baseline": [[round(x, 2), round(y, 2)] for x, y in line.baseline]
                        if line.baseline
                        else None,
                    }
                )
            blocks += 1
    return words, lines


def _word(word: Word, line: int) -> dict[str, Any]:
    return {
        "text": word.text,
        "left": round(word.left, 2),
        "top": round(word.top, 2),
        "width": round(word.width, 2),
        "height": round(word.height, 2),
        "line": line,
        "confidence": None if word.confidence is None else round(word.confidence, 2),
    }


def _box(box: LayoutBox) -> dict[str, float]:
    return {
        "left": round(box.left, 2),
        "top": round(box.top, 2),
        "width": round(box.width, 2),
        "height": round(box.height, 2),
    }


def _affine(pixel_map: PixelMap | None) -> dict[str, float] | None:
    if not isinstance(pixel_map, Affine):
        return None
    return {name: round(getattr(pixel_map, name), 6) for name in ("a", "b", "c", "d", "e", "f")}


def without_overlay(raw: Any) -> Any:
    """The engine's answer without its word overlay, which ``words`` and ``lines`` already hold.

    The overlay repeats every word with its box; a 500-page document would
    carry it twice.
    """
    if not isinstance(raw, dict) or not isinstance(raw.get("ParsedResults"), list):
        return raw
    results = []
    for result in raw["ParsedResults"]:
        if isinstance(result, dict):
            overlay = result.get("TextOverlay")
            if isinstance(overlay, dict) and "Lines" in overlay:
                result = {
                    **result,
                    "TextOverlay": {key: value for key, value in overlay.items() if key != "Lines"},
                }
        results.append(result)
    return {**raw, "ParsedResults": results}


def failure_record(
    path: Path,
    source: Source | None,
    rules: Rules,
    error: FileError,
    *,
    attempt: int,
    first_attempt: float,
    requests_before: int = 0,
) -> dict[str, Any]:
    """The content of an error sidecar."""
    described: dict[str, Any]
    if source is not None:
        described = source.describe()
    else:
        described = {"path": str(path), "name": path.name}
        try:
            info = os.lstat(path)
            described.update(
                size=info.st_size, mtime_ns=info.st_mtime_ns, ctime_ns=info.st_ctime_ns, sha256=None
            )
        except OSError:
            pass
    return {
        "schema_version": sidecar.SCHEMA_VERSION,
        "status": "failed",
        "ocrwatch_version": __version__,
        "source": described,
        "settings": rules.describe(),
        "settings_fingerprint": rules.fingerprint,
        "error": {
            "classification": error.classification,
            "message": str(error),
            "type": type(error).__name__,
        },
        "attempts": attempt,
        "requests": requests_before + (error.attempts if isinstance(error, OcrError) else 0),
        "first_attempt": utc_iso(first_attempt),
        "last_attempt": utc_iso(time.time()),
    }


def record_failure(
    paths: SidecarPaths,
    path: Path,
    source: Source | None,
    rules: Rules,
    error: FileError,
    *,
    attempt: int,
    first_attempt: float,
    requests_before: int = 0,
) -> None:
    """Write the error sidecar of ``path``; a failure to write it is logged, not raised."""
    record = failure_record(
        path,
        source,
        rules,
        error,
        attempt=attempt,
        first_attempt=first_attempt,
        requests_before=requests_before,
    )
    try:
        sidecar.record_failure(paths, record)
    except FileError as write_error:
        logger.error("%s: cannot record the failure either: %s", path, write_error)
