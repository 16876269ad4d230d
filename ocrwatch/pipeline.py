"""One file to its sidecars: read, check, then page by page decode, crop and OCR; write.

:func:`process_file` is the whole path for one file and the per-file
boundary: every error on the way, expected or not, ends as an
:class:`~ocrwatch.outcome.Outcome`. Inside it the unit of work is the page
(:mod:`ocrwatch.pages`): each page in turn is opened, cropped, cut into its
regions, prepared (every part before any is sent) and read, and the sidecars
are made from the pages' results. It does not watch, queue, retry or move
files; the runners (``once``, the daemon) decide what a retryable outcome
means, and :mod:`ocrwatch.finish` does what follows a finished one. One bad
file never stops a run.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Collection
from pathlib import Path

import numpy as np

from ocrwatch import current, sidecar
from ocrwatch.current import FileFacts
from ocrwatch.engines.base import OcrEngine, OcrRequest, Prepared
from ocrwatch.errors import FileError, InternalError, Interrupted, InvalidKeyError, RateLimitError
from ocrwatch.geometry import Box
from ocrwatch.outcome import Outcome, Status
from ocrwatch.pages import PageInput, PageOpener, PageResult, Pixels, Target, open_pages
from ocrwatch.plan import InboxPlan, Rules
from ocrwatch.records import record_failure, result_record, result_text
from ocrwatch.sidecar import SidecarPaths, utc_iso
from ocrwatch.source import Source, SourceGone, read_source

logger = logging.getLogger(__name__)

RETRYABLE = frozenset({"incomplete", "transient", "output"})
"""Classifications of failures that may go away when the file is tried again later."""


def process_file(
    path: Path,
    inbox: InboxPlan,
    engine: OcrEngine,
    *,
    force: bool = False,
    retry_failed: bool = False,
    give_up: Collection[str] = RETRYABLE,
    attempt: int = 1,
    first_attempt: float | None = None,
    requests_before: int = 0,
    follow_symlinks: bool = False,
) -> Outcome:
    """Turn ``path`` into its sidecars, or explain why not. Never raises.

    ``requests_before`` counts OCR requests earlier tries of this file made, so
    the sidecars can say how many it took in all.

    A retryable failure whose classification is not in ``give_up`` is returned
    as ``retry`` without an error sidecar, because the caller will try again;
    otherwise it fails here and now. ``retry_failed`` makes a file with a
    current error sidecar go through again.
    """
    started = time.time()
    try:
        return _process(
            path,
            inbox,
            engine,
            force=force,
            retry_failed=retry_failed,
            give_up=give_up,
            attempt=attempt,
            started=started,
            first_attempt=first_attempt or started,
            requests_before=requests_before,
            follow_symlinks=follow_symlinks,
        )
    except Exception as error:  # noqa: BLE001 - the per-file boundary: a bug in one file's path must not stop the others
        logger.exception("%s: unexpected error; recorded as failed", path)
        failure = InternalError(f"internal error: {type(error).__name__}: {error}")
        paths = SidecarPaths.of(path, inbox.sidecar_dir(path))
        record_failure(
            paths,
            path,
            None,
            inbox.rules,
            failure,
            attempt=attempt,
            first_attempt=first_attempt or started,
        )
        return Outcome(
            path,
            Status.FAILED,
            str(failure),
            failure.classification,
            error=failure,
            sidecar=paths.error,
        )


def _process(
    path: Path,
    inbox: InboxPlan,
    engine: OcrEngine,
    *,
    force: bool,
    retry_failed: bool,
    give_up: Collection[str],
    attempt: int,
    started: float,
    first_attempt: float,
    requests_before: int,
    follow_symlinks: bool,
) -> Outcome:
    clock = time.perf_counter()
    paths = SidecarPaths.of(path, inbox.sidecar_dir(path))
    rules = inbox.rules
    source: Source | None = None
    try:
        source = read_source(path, follow_symlinks=follow_symlinks)
        if not force:
            facts = FileFacts(source.size, source.mtime_ns, source.ctime_ns, sha256=source.sha256)
            found = current.verdict(path, inbox, facts, failures=not retry_failed)
            if found is not None:
                status = Status.SKIPPED if found.status == "done" else Status.KNOWN_FAILURE
                return Outcome(path, status, found.message, seconds=time.perf_counter() - clock)
        sidecar.preflight(paths.result.parent)
        read_seconds = time.perf_counter() - clock
        pages, decode_seconds = _read_pages(path, source, rules, engine)
        ocr_seconds = time.perf_counter() - clock - read_seconds - decode_seconds
        text = result_text(pages, rules)
        record = result_record(
            source=source,
            pages=pages,
            rules=rules,
            engine=engine,
            text=text,
            attempt=attempt,
            requests=requests_before + sum(page.requests for page in pages),
            timings={
                "started": utc_iso(started),
                "finished": utc_iso(time.time()),
                "read_seconds": round(read_seconds, 4),
                "decode_seconds": round(decode_seconds, 4),
                "ocr_seconds": round(ocr_seconds, 4),
            },
        )
        sidecar.commit(paths, text, record)
    except SourceGone:
        return Outcome(
            path,
            Status.GONE,
            "file disappeared before it was read or sent",
            seconds=time.perf_counter() - clock,
        )
    except (Interrupted, RateLimitError, InvalidKeyError) as error:
        # Not the file's fault: leave it without an error sidecar for a later try.
        return Outcome(
            path,
            Status.DEFERRED,
            str(error),
            classification=error.classification,
            seconds=time.perf_counter() - clock,
            error=error,
        )
    except FileError as error:
        seconds = time.perf_counter() - clock
        if error.retryable and error.classification not in give_up:
            return Outcome(
                path, Status.RETRY, str(error), error.classification, seconds, error=error
            )
        record_failure(
            paths,
            path,
            source,
            rules,
            error,
            attempt=attempt,
            first_attempt=first_attempt,
            requests_before=requests_before,
        )
        return Outcome(
            path,
            Status.FAILED,
            str(error),
            error.classification,
            seconds,
            error=error,
            sidecar=paths.error,
        )
    seconds = time.perf_counter() - clock
    return Outcome(
        path,
        Status.DONE,
        f"{len(text)} characters",
        seconds=seconds,
        chars=len(text),
        sidecar=paths.result,
    )


def _read_pages(
    path: Path, source: Source, rules: Rules, engine: OcrEngine
) -> tuple[list[PageResult], float]:
    """Each page of the file read in turn; and the seconds spent opening them, waits for a turn included."""
    pages = []
    decode_seconds = 0.0
    for open_page in open_pages(source, rules, engine):
        page, seconds = _read_page(path, open_page, rules, engine)
        pages.append(page)
        decode_seconds += seconds
    return pages, decode_seconds


def _read_page(
    path: Path, open_page: PageOpener, rules: Rules, engine: OcrEngine
) -> tuple[PageResult, float]:
    """One page opened, cropped, its parts prepared, then read; and the seconds spent opening it.

    Raises what opening, preparing and reading raise (ImageError, GeometryError, OcrError...).
    """
    started = time.perf_counter()
    with engine.preparing():
        page = open_page()
        open_seconds = time.perf_counter() - started
        crop_box, prepared = _prepare(path, page, rules, engine)
        facts = page.facts
        # What the engine needs is in `prepared` now (for ocr.space, the fitted
        # uploads): let the decoded page go before waiting for a request slot.
        del page
    results = tuple((target, engine.finish(request)) for target, request in prepared)
    return PageResult(facts, crop_box, results), open_seconds


def _prepare(
    path: Path, page: PageInput, rules: Rules, engine: OcrEngine
) -> tuple[Box | None, list[tuple[Target, Prepared]]]:
    """The page's crop and every region's request, prepared: a page that cannot be read fails before any is sent."""
    width, height = page.size
    crop_box = rules.crop.resolve(width, height, what="crop") if rules.crop else None
    within = crop_box or Box(0, 0, width, height)
    if rules.regions:
        targets = [
            Target(
                name,
                _offset(rule.resolve(within.width, within.height, what=f"region {name!r}"), within),
            )
            for name, rule in rules.regions
        ]
    else:
        targets = [Target(None, within)]
    whole = crop_box is None and not rules.regions
    prepared = []
    for target in targets:
        request = OcrRequest(
            image=page.pixels if whole else _cut(_array(page.pixels), target.box),
            language=rules.language,
            overlay=rules.overlay,
            detect_orientation=rules.detect_orientation,
            scale=bool(rules.option("scale", False)),
            table=bool(rules.option("table", False)),
            name=path.stem if target.name is None else f"{path.stem}-{target.name}",
            original=page.original if whole else None,
            original_info=page.facts.info if whole else None,
            before_send=functools.partial(_still_there, path),
        )
        prepared.append((target, engine.prepare(request)))
    return crop_box, prepared


def _still_there(path: Path) -> None:
    """Raise SourceGone if ``path`` was deleted or renamed since it was read."""
    try:
        os.lstat(path)
    except FileNotFoundError:
        raise SourceGone(str(path)) from None


def _array(pixels: Pixels) -> np.ndarray:
    return pixels() if callable(pixels) else pixels


def _offset(box: Box, within: Box) -> Box:
    return Box(box.x + within.x, box.y + within.y, box.width, box.height)


def _cut(pixels: np.ndarray, box: Box) -> np.ndarray:
    height, width = pixels.shape[:2]
    if box.x == 0 and box.y == 0 and box.width == width and box.height == height:
        return pixels
    return np.ascontiguousarray(pixels[box.y : box.bottom, box.x : box.right])
