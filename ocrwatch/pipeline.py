"""One file to its sidecars: read, check, decode, crop, OCR, map boxes, write.

:func:`process_file` is the whole path for one file and the per-file
boundary: every error on the way, expected or not, ends as an
:class:`~ocrwatch.outcome.Outcome`. It does not watch, queue, retry or move
files; the runners (``once``, the daemon) decide what a retryable outcome
means, and :mod:`ocrwatch.finish` does what follows a finished one. One bad
file never stops a run.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ocrwatch import current, imaging, sidecar
from ocrwatch.current import FileFacts
from ocrwatch.engines.base import OcrEngine, OcrRequest, OcrResult, Prepared
from ocrwatch.errors import FileError, InternalError, Interrupted, InvalidKeyError, RateLimitError
from ocrwatch.geometry import Box
from ocrwatch.outcome import Outcome, Status
from ocrwatch.plan import InboxPlan, Rules
from ocrwatch.records import Target, final_newline, record_failure, result_record
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
    first_attempt: float,
    requests_before: int,
    follow_symlinks: bool,
) -> Outcome:
    started = time.time()
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
        with engine.preparing():
            image = _open_image(source, rules, engine)
            info = image.info
            decode_seconds = time.perf_counter() - clock - read_seconds
            prepared, crop_box = _prepare(path, source, image, rules, engine)
            # What the engine needs is in `prepared` now (for ocr.space, the fitted
            # uploads): let the decoded page go before waiting for a request slot.
            del image
        results = [(target, engine.finish(request)) for target, request in prepared]
        ocr_seconds = time.perf_counter() - clock - read_seconds - decode_seconds
        text = _text(results, rules)
        record = result_record(
            source=source,
            info=info,
            rules=rules,
            engine=engine,
            crop_box=crop_box,
            results=results,
            text=text,
            attempt=attempt,
            requests=requests_before + sum(result.attempts for _, result in results),
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


@dataclass(frozen=True)
class _Image:
    """A checked image: its header facts, and its pixels now or on demand."""

    info: imaging.ImageInfo
    pixels: np.ndarray | Callable[[], np.ndarray]


def _open_image(source: Source, rules: Rules, engine: OcrEngine) -> _Image:
    """Check the file decodes completely; decode its pixels only if they will surely be needed.

    When the whole file goes to an engine that reads the file's own bytes (a
    plain JPEG within the ocr.space budget), building the pixel array is
    wasted work: the file is only verified, and decoding is left to whoever
    asks for the pixels (a fallback encode).
    """
    data = source.data
    if rules.crop is None and not rules.regions:
        info = imaging.probe(data, max_pixels=rules.max_pixels)
        if engine.takes_original(data, info):
            info = imaging.verify(data, max_pixels=rules.max_pixels)
            return _Image(
                info,
                functools.cache(lambda: imaging.decode(data, max_pixels=rules.max_pixels).pixels),
            )
    decoded = imaging.decode(data, max_pixels=rules.max_pixels)
    return _Image(decoded.info, decoded.pixels)


def _prepare(
    path: Path, source: Source, image: _Image, rules: Rules, engine: OcrEngine
) -> tuple[list[tuple[Target, Prepared]], Box | None]:
    """Every region's request, prepared: an image that cannot be read fails before any is sent."""
    width, height = (
        image.pixels.shape[1::-1]
        if isinstance(image.pixels, np.ndarray)
        else image.info.upright_size
    )
    crop_box = rules.crop.resolve(width, height, what="crop") if rules.crop else None
    page = crop_box or Box(0, 0, width, height)
    if rules.regions:
        targets = [
            Target(
                name, _offset(rule.resolve(page.width, page.height, what=f"region {name!r}"), page)
            )
            for name, rule in rules.regions
        ]
    else:
        targets = [Target(None, page)]
    whole = crop_box is None and not rules.regions
    prepared = []
    for target in targets:
        request = OcrRequest(
            image=image.pixels if whole else _cut(_array(image.pixels), target.box),
            language=rules.language,
            overlay=rules.overlay,
            detect_orientation=rules.detect_orientation,
            scale=bool(rules.option("scale", False)),
            table=bool(rules.option("table", False)),
            name=path.stem if target.name is None else f"{path.stem}-{target.name}",
            original=source.data if whole else None,
            original_info=image.info if whole else None,
            before_send=functools.partial(_still_there, path),
        )
        prepared.append((target, engine.prepare(request)))
    return prepared, crop_box


def _still_there(path: Path) -> None:
    """Raise SourceGone if ``path`` was deleted or renamed since it was read."""
    try:
        os.lstat(path)
    except FileNotFoundError:
        raise SourceGone(str(path)) from None


def _array(pixels: np.ndarray | Callable[[], np.ndarray]) -> np.ndarray:
    return pixels() if callable(pixels) else pixels


def _offset(box: Box, within: Box) -> Box:
    return Box(box.x + within.x, box.y + within.y, box.width, box.height)


def _cut(pixels: np.ndarray, box: Box) -> np.ndarray:
    height, width = pixels.shape[:2]
    if box.x == 0 and box.y == 0 and box.width == width and box.height == height:
        return pixels
    return np.ascontiguousarray(pixels[box.y : box.bottom, box.x : box.right])


def _text(results: list[tuple[Target, OcrResult]], rules: Rules) -> str:
    """The ``.txt`` content: the text, or each region's text under its name."""
    if not rules.regions:
        return final_newline(results[0][1].text)
    blocks = [f"[{target.name}]\n{final_newline(result.text)}" for target, result in results]
    return "\n".join(blocks)
