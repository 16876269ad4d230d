"""One image file to its sidecars: read, check, decode, crop, OCR, map boxes, write.

:func:`process_file` is the whole path for one file and the single place where
per-file errors are caught and turned into an :class:`Outcome`. It does not
watch, queue or retry; callers (``once``, the daemon) decide what to do with a
retryable outcome. It never raises for a problem with the file: one bad file
must never stop a run.

Distrust of the file system: the file is checked with ``lstat`` right before
it is opened, opened without following symlinks (unless the caller allows it),
checked again with ``fstat`` on the open descriptor, and read once; the hash,
size and mtime recorded all describe those same bytes.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import stat
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ocrwatch import __version__, imaging, sidecar
from ocrwatch.engines.base import OcrEngine, OcrRequest, OcrResult, Prepared, Word
from ocrwatch.errors import (
    FileError,
    Interrupted,
    InvalidKeyError,
    OcrError,
    RateLimitError,
)
from ocrwatch.geometry import Box
from ocrwatch.plan import InboxPlan, Rules
from ocrwatch.sidecar import SidecarPaths, utc_iso

logger = logging.getLogger(__name__)

MAX_FILE_BYTES = 1024 * 1024 * 1024
"""Refuse files above 1 GiB before reading them: no page image is that large."""

RETRYABLE = frozenset({"incomplete", "transient", "output"})

Status = Literal["done", "skipped", "known_failure", "failed", "retry", "deferred", "gone"]


@dataclass(frozen=True)
class Outcome:
    """What happened to one file."""

    path: Path
    status: Status
    message: str = ""
    classification: str | None = None
    seconds: float = 0.0
    chars: int = 0
    error: FileError | None = field(default=None, repr=False)
    sidecar: Path | None = None

    @property
    def ok(self) -> bool:
        return self.status in ("done", "skipped")


@dataclass(frozen=True)
class Source:
    """The bytes of one file and the facts that identify them."""

    path: Path
    data: bytes = field(repr=False)
    size: int
    mtime_ns: int
    ctime_ns: int
    sha256: str

    def describe(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "name": self.path.name,
            "size": self.size,
            "mtime": utc_iso(self.mtime_ns / 1e9),
            "mtime_ns": self.mtime_ns,
            "ctime_ns": self.ctime_ns,
            "sha256": self.sha256,
        }


class SourceGone(Exception):
    """The file disappeared (deleted or renamed) before it could be read, or before it was sent."""


def read_source(path: Path, *, follow_symlinks: bool = False) -> Source:
    """Read ``path`` once. Raises SourceGone, or FileError for anything but a readable regular file."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise SourceGone(str(path)) from None
    except OSError as error:
        raise FileError(f"cannot inspect the file: {error.strerror or error}") from error
    if stat.S_ISLNK(info.st_mode) and not follow_symlinks:
        raise FileError("is a symbolic link; links are not followed (set follow_symlinks: true to allow)")
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK
    if not follow_symlinks:
        flags |= os.O_NOFOLLOW
    try:
        handle = os.open(path, flags)
    except FileNotFoundError:
        raise SourceGone(str(path)) from None
    except OSError as error:
        raise FileError(f"cannot open the file: {error.strerror or error}") from error
    try:
        info = os.fstat(handle)
        if not stat.S_ISREG(info.st_mode):
            raise FileError("is not a regular file")
        if info.st_size > MAX_FILE_BYTES:
            raise FileError(f"is {info.st_size} bytes, larger than any page image ({MAX_FILE_BYTES} max)")
        chunks = []
        remaining = info.st_size + 1
        while remaining > 0:
            chunk = os.read(handle, min(remaining, 8 * 1024 * 1024))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        data = b"".join(chunks)
    except OSError as error:
        raise FileError(f"cannot read the file: {error.strerror or error}") from error
    finally:
        os.close(handle)
    return Source(
        path=path,
        data=data,
        size=len(data),
        mtime_ns=info.st_mtime_ns,
        ctime_ns=info.st_ctime_ns,
        sha256=hashlib.sha256(data).hexdigest(),
    )


def sidecar_verdict(path: Path, inbox: InboxPlan, info: os.stat_result) -> Literal["done", "failed"] | None:
    """What the sidecars say about ``path`` as it is now (``info``): done, failed, or nothing current.

    Cheap first: size and mtime decide without reading the image; only when the
    mtime alone differs is the image hashed. A failure counts only for the same
    size, mtime and ctime, so a chmod or a rewrite gives a file another chance.
    """
    paths = SidecarPaths.of(path, inbox.sidecar_dir(path))
    fingerprint = inbox.rules.fingerprint
    record = sidecar.load(paths.result)
    verdict = sidecar.matches(record, fingerprint=fingerprint, size=info.st_size, mtime_ns=info.st_mtime_ns)
    if verdict is None:
        try:
            verdict = sidecar.same_content(record, read_source(path, follow_symlinks=inbox.follow_symlinks).sha256)
        except (SourceGone, FileError):
            verdict = False
    if verdict:
        return "done"
    failure = sidecar.load(paths.error)
    if failure is not None and failure.get("settings_fingerprint") == fingerprint:
        known = failure.get("source") or {}
        if (known.get("size"), known.get("mtime_ns"), known.get("ctime_ns")) == (
            info.st_size,
            info.st_mtime_ns,
            info.st_ctime_ns,
        ):
            return "failed"
    return None


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
    """Turn ``path`` into its sidecars, or explain why not. Never raises for file problems.

    ``requests_before`` counts OCR requests earlier tries of this file made, so
    the sidecars can say how many it took in all.

    A retryable failure whose classification is not in ``give_up`` is returned
    as ``retry`` without an error sidecar, because the caller will try again;
    otherwise it fails here and now. ``retry_failed`` makes a file with a
    current error sidecar go through again.
    """
    started = time.time()
    clock = time.perf_counter()
    paths = SidecarPaths.of(path, inbox.sidecar_dir(path))
    rules = inbox.rules
    source: Source | None = None
    try:
        source = read_source(path, follow_symlinks=follow_symlinks)
        if not force:
            skip = _skip_reason(paths, rules, source, retry_failed=retry_failed)
            if skip is not None:
                return Outcome(path, skip[0], skip[1], seconds=time.perf_counter() - clock)
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
        record = _result_record(
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
        return Outcome(path, "gone", "file disappeared before it was read or sent", seconds=time.perf_counter() - clock)
    except (Interrupted, RateLimitError, InvalidKeyError) as error:
        # Not the file's fault: leave it without an error sidecar for a later try.
        return Outcome(
            path,
            "deferred",
            str(error),
            classification=error.classification,
            seconds=time.perf_counter() - clock,
            error=error,
        )
    except FileError as error:
        seconds = time.perf_counter() - clock
        if error.retryable and error.classification not in give_up:
            return Outcome(path, "retry", str(error), error.classification, seconds, error=error)
        record_failure(
            paths,
            path,
            source,
            rules,
            error,
            attempt=attempt,
            first_attempt=first_attempt or started,
            requests_before=requests_before,
        )
        return Outcome(path, "failed", str(error), error.classification, seconds, error=error, sidecar=paths.error)
    seconds = time.perf_counter() - clock
    return Outcome(path, "done", f"{len(text)} characters", seconds=seconds, chars=len(text), sidecar=paths.result)


def _skip_reason(
    paths: SidecarPaths, rules: Rules, source: Source, *, retry_failed: bool
) -> tuple[Status, str] | None:
    record = sidecar.load(paths.result)
    if record is not None and record.get("settings_fingerprint") == rules.fingerprint and sidecar.same_content(
        record, source.sha256
    ):
        return "skipped", "sidecar is current"
    if retry_failed:
        return None
    failure = sidecar.load(paths.error)
    if failure is not None and failure.get("settings_fingerprint") == rules.fingerprint:
        known = failure.get("source") or {}
        if known.get("sha256") == source.sha256 and known.get("ctime_ns") == source.ctime_ns:
            error = failure.get("error") or {}
            return "known_failure", f"failed before: {error.get('message', 'unknown reason')}"
    return None


@dataclass(frozen=True)
class _Target:
    name: str | None
    box: Box


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
            return _Image(info, functools.cache(lambda: imaging.decode(data, max_pixels=rules.max_pixels).pixels))
    decoded = imaging.decode(data, max_pixels=rules.max_pixels)
    return _Image(decoded.info, decoded.pixels)


def _prepare(
    path: Path, source: Source, image: _Image, rules: Rules, engine: OcrEngine
) -> tuple[list[tuple[_Target, Prepared]], Box | None]:
    """Every region's request, prepared: an image that cannot be read fails before any is sent."""
    width, height = (
        image.pixels.shape[1::-1] if isinstance(image.pixels, np.ndarray) else image.info.upright_size
    )
    crop_box = rules.crop.resolve(width, height, what="crop") if rules.crop else None
    page = crop_box or Box(0, 0, width, height)
    if rules.regions:
        targets = [
            _Target(name, _offset(rule.resolve(page.width, page.height, what=f"region {name!r}"), page))
            for name, rule in rules.regions
        ]
    else:
        targets = [_Target(None, page)]
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


def _text(results: list[tuple[_Target, OcrResult]], rules: Rules) -> str:
    """The ``.txt`` content: the text, or each region's text under its name."""
    if not rules.regions:
        return _final_newline(results[0][1].text)
    blocks = [f"[{target.name}]\n{_final_newline(result.text)}" for target, result in results]
    return "\n".join(blocks)


def _final_newline(text: str) -> str:
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    body = "\n".join(lines).strip("\n")
    return body + "\n" if body else ""


def _result_record(
    *,
    source: Source,
    info: imaging.ImageInfo,
    rules: Rules,
    engine: OcrEngine,
    crop_box: Box | None,
    results: list[tuple[_Target, OcrResult]],
    text: str,
    attempt: int,
    requests: int,
    timings: dict[str, Any],
) -> dict[str, Any]:
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
        "crop": crop_box.as_dict() if crop_box else None,
        "text": text,
        "results": [_result_entry(target, result, rules) for target, result in results],
        "attempt": attempt,
        "requests": requests,
        "timings": timings,
    }
    if info.frames > 1:
        record["note"] = f"only the first of {info.frames} frames/pages was read"
    return record


def _result_entry(target: _Target, result: OcrResult, rules: Rules) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": target.name,
        "box": target.box.as_dict(),
        "text": _final_newline(result.text),
        "pages": [
            {
                "text": _final_newline(page.text),
                "orientation": page.orientation,
                "error": page.error,
                **({"words": [_word(word, target.box) for word in page.words]} if rules.overlay else {}),
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


def _word(word: Word, box: Box) -> dict[str, Any]:
    moved = word.moved(dx=box.x, dy=box.y)
    return {
        "text": moved.text,
        "left": round(moved.left, 2),
        "top": round(moved.top, 2),
        "width": round(moved.width, 2),
        "height": round(moved.height, 2),
        "line": moved.line,
    }


def _failure_record(
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
    record = _failure_record(
        path, source, rules, error, attempt=attempt, first_attempt=first_attempt, requests_before=requests_before
    )
    try:
        sidecar.record_failure(paths, record)
    except FileError as write_error:
        logger.error("%s: cannot record the failure either: %s", path, write_error)
