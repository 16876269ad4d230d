"""The content of the sidecars: the ``.txt`` and ``.json`` of a done file, and the ``.error.json`` of a failed one.

Pure functions from what the pipeline knows (for a done file, its pages'
results) to text and JSON data (plus :func:`record_failure`, which also
writes it). The format is published in
``schemas/sidecar.schema.json``; a change to it bumps ``SCHEMA_VERSION``.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from ocrwatch import __version__, sidecar
from ocrwatch.engines.base import OcrEngine, OcrResult, Page
from ocrwatch.errors import FileError, OcrError
from ocrwatch.geometry import Box
from ocrwatch.imaging.containers import MAX_COUNTED_FRAMES
from ocrwatch.layout import ScaleShift, map_page
from ocrwatch.pages import PageResult, Target
from ocrwatch.plan import Rules
from ocrwatch.sidecar import SidecarPaths, utc_iso
from ocrwatch.source import Source

logger = logging.getLogger(__name__)


def final_newline(text: str) -> str:
    """``text`` with Unix line ends, no trailing blanks, and one final newline unless empty."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    body = "\n".join(lines).strip("\n")
    return body + "\n" if body else ""


def result_text(pages: list[PageResult], rules: Rules) -> str:
    """The ``.txt`` content: the text, or each region's text under its name."""
    (page,) = pages  # one page until the multi-page .txt is designed (see result_record)
    if not rules.regions:
        return final_newline(page.results[0][1].text)
    blocks = [f"[{target.name}]\n{final_newline(result.text)}" for target, result in page.results]
    return "\n".join(blocks)


def result_record(
    *,
    source: Source,
    pages: list[PageResult],
    rules: Rules,
    engine: OcrEngine,
    text: str,
    attempt: int,
    requests: int,
    timings: dict[str, Any],
) -> dict[str, Any]:
    """The ``.json`` content of a file read as ``pages``; ``requests`` counts every try's requests."""
    # A file is one page today, and the record has that one page's shape: its
    # image, crop and results at the top level. A file of several pages will
    # need a new shape (a schema version), not a second page squeezed in here.
    (page,) = pages
    info = page.facts.info
    upright_width, upright_height = info.upright_size
    record: dict[str, Any] = {
        "schema_version": sidecar.SCHEMA_VERSION,
        "status": "done",
        "ocrwatch_version": __version__,
        "source": source.describe(),
        "image": {
            "format": info.format,
            "mode": info.mode,
            "width": upright_width,
            "height": upright_height,
            "stored_width": info.width,
            "stored_height": info.height,
            "orientation": info.orientation,
            "frames": info.frames,
        },
        "settings": rules.describe(),
        "settings_fingerprint": rules.fingerprint,
        "engine": {"name": engine.name, **engine.settings()},
        "crop": page.crop_box.as_dict() if page.crop_box else None,
        "text": text,
        "results": [_result_entry(target, result, rules) for target, result in page.results],
        "attempt": attempt,
        "requests": requests,
        "timings": timings,
    }
    if info.frames > 1:
        # frames stops counting at the cap: a file that reaches it may hold more.
        at_least = "at least " if info.frames >= MAX_COUNTED_FRAMES else ""
        record["note"] = f"only the first of {at_least}{info.frames} frames/pages was read"
    return record


def _result_entry(target: Target, result: OcrResult, rules: Rules) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": target.name,
        "box": target.box.as_dict(),
        "text": final_newline(result.text),
        "pages": [
            {
                "text": final_newline(page.text),
                "orientation": page.orientation,
                "error": page.error,
                **({"words": _words(page, target.box)} if rules.overlay else {}),
            }
            for page in result.pages
        ],
        "seconds": round(result.seconds, 4),
        "attempts": result.attempts,
        "upload": result.upload.describe() if result.upload else None,
    }
    if result.endpoint is not None:
        entry["endpoint"] = result.endpoint
    if result.raw is not None:
        entry["raw"] = result.raw
    return entry


def _words(page: Page, box: Box) -> list[dict[str, Any]]:
    """The page's words in the whole image's pixels (``box`` is the part that was read)."""
    return [
        {
            "text": word.text,
            "left": round(word.left, 2),
            "top": round(word.top, 2),
            "width": round(word.width, 2),
            "height": round(word.height, 2),
            "line": word.line,
        }
        for word in map_page(page, ScaleShift(dx=box.x, dy=box.y)).words
    ]


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
