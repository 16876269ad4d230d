"""One file to its sidecars: read, check, then page by page decode, crop and OCR; write.

:func:`process_file` is the whole path for one file and the per-file
boundary: every error on the way, expected or not, ends as an
:class:`~ocrwatch.outcome.Outcome`. Inside it the unit of work is the page
(:mod:`ocrwatch.pages`): an image is read as one page on the worker's
thread; a document's pages are read by :mod:`ocrwatch.reading` on the
engine's page threads, resuming from the pages an interrupted try kept
(:mod:`ocrwatch.resume`). The sidecars are made from the pages' entries; a
document some of whose pages failed for good is written as ``partial``,
with an error sidecar listing them. It does not watch, queue, retry or
move files; the runners (``once``, the daemon) decide what a retryable
outcome means, and :mod:`ocrwatch.finish` does what follows a finished
one. One bad file never stops a run.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Collection
from pathlib import Path

from ocrwatch import current, sidecar
from ocrwatch.current import FileFacts
from ocrwatch.engines.base import OcrEngine
from ocrwatch.errors import (
    DocumentError,
    FileError,
    InternalError,
    Interrupted,
    InvalidKeyError,
    RateLimitError,
)
from ocrwatch.outcome import Outcome, Status
from ocrwatch.outputs import write
from ocrwatch.outputs.model import has_words
from ocrwatch.pages import (
    open_document,
)
from ocrwatch.plan import InboxPlan
from ocrwatch.reading import PageProgress, read_document, read_page
from ocrwatch.records import (
    DocumentFacts,
    document_text,
    page_entry,
    partial_record,
    record_failure,
    result_record,
)
from ocrwatch.resume import KeptPages, PageStore
from ocrwatch.sidecar import SidecarPaths, utc_iso
from ocrwatch.source import Source, SourceGone, read_source

logger = logging.getLogger(__name__)

RETRYABLE = frozenset({"incomplete", "transient", "output"})
"""Classifications of failures that may go away when the file is tried again later."""

_KNOWN = {
    "done": Status.SKIPPED,
    "failed": Status.KNOWN_FAILURE,
    "partial": Status.KNOWN_PARTIAL,
}


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
    resume: PageStore | None = None,
    on_page: PageProgress | None = None,
    before_commit: Callable[[], None] | None = None,
) -> Outcome:
    """Turn ``path`` into its sidecars, or explain why not. Never raises.

    ``requests_before`` counts OCR requests earlier tries of this file made, so
    the sidecars can say how many it took in all. ``resume`` keeps each page
    of a document as soon as it is read, and gives back the pages an
    interrupted earlier try read, so that they are not read (or paid for)
    again. ``on_page`` is told the pages done and the total as a document's
    pages finish. ``before_commit`` is called right before the sidecars are
    committed and may stop the commit by raising :class:`ClaimLost` (distributed
    mode: the file was taken over), which returns ``deferred``.

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
            resume=resume,
            on_page=on_page,
            before_commit=before_commit,
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


def _outputs_only(path: Path, inbox: InboxPlan, source: Source, facts: FileFacts) -> Outcome | None:
    """Write the files ``path``'s inbox wants that its current record lacks, without OCR; None
    when the file must be read (no current record, or one without the words they need)."""
    due = current.outputs_due(path, inbox, facts)
    if due is None:
        return None
    record, formats = due
    needs_words = [name for name in formats if name in write.MODEL_FORMATS]
    if needs_words and not has_words(record):
        logger.info(
            "%s: reading it again: its record (version %s) keeps no word boxes, which %s need",
            path,
            record.get("schema_version"),
            ", ".join(needs_words),
        )
        return None
    paths = inbox.sidecars(path)
    sidecar.preflight(paths.result.parent)
    written = write.rewrite_outputs(
        paths, inbox.outputs, record, formats, write.opener(source), inbox.pdf_password
    )
    partial = record.get("status") == "partial"
    return Outcome(
        path,
        Status.PARTIAL if partial else Status.DONE,
        f"wrote {', '.join(written)} from its record, without OCR",
        seconds=0.0,
        chars=len(str(record.get("text", ""))),
        sidecar=paths.result,
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
    resume: PageStore | None,
    on_page: PageProgress | None,
    before_commit: Callable[[], None] | None,
) -> Outcome:
    clock = time.perf_counter()
    paths = inbox.sidecars(path)
    rules = inbox.rules
    source: Source | None = None
    if current.is_own_output(path, inbox):
        return Outcome(path, Status.SKIPPED, "a searchable PDF ocrwatch wrote", seconds=0.0)
    if current.may_be_own_output(path, inbox):
        return Outcome(
            path,
            Status.RETRY,
            "may be a searchable PDF ocrwatch is writing: its record does not list it yet",
            "incomplete",
            seconds=0.0,
        )
    try:
        source = read_source(path, follow_symlinks=follow_symlinks)
        if not force:
            facts = FileFacts(source.size, source.mtime_ns, source.ctime_ns, sha256=source.sha256)
            found = current.verdict(path, inbox, facts, failures=not retry_failed)
            if found is not None:
                return Outcome(
                    path,
                    _KNOWN[found.status],
                    found.message,
                    seconds=time.perf_counter() - clock,
                )
            written = _outputs_only(path, inbox, source, facts)
            if written is not None:
                return dataclasses.replace(written, seconds=time.perf_counter() - clock)
        sidecar.preflight(paths.result.parent)
        read_seconds = time.perf_counter() - clock
        with open_document(
            source,
            rules,
            engine,
            password=inbox.pdf_password,
            read_unterminated="incomplete" in give_up,
        ) as document:
            if document.is_document:
                entries, decode_seconds = read_document(
                    path,
                    document,
                    rules,
                    engine,
                    kept=KeptPages(resume, source, rules, earlier=paths.result),
                    on_page=on_page,
                )
            else:
                # Unless an output is made from the file itself, its bytes are dead weight
                # once the page is prepared: they go before the request is sent.
                page, decode_seconds = read_page(
                    path,
                    document.openers[0],
                    rules,
                    engine,
                    on_prepared=None if inbox.outputs.reads_original else source.release,
                )
                entries = [page_entry(page, rules)]
        if source.changed():
            if resume is not None:
                resume.drop_pages(path)  # read partly from bytes that are not the ones hashed
            raise DocumentError(
                "file was written to while its pages were read: reading it again when it settles",
                incomplete=True,
            )
        # A document's pages open and are read in parallel: its opening time, summed over
        # pages, is no part of the wall time to subtract.
        reading_seconds = time.perf_counter() - clock - read_seconds
        ocr_seconds = reading_seconds if document.is_document else reading_seconds - decode_seconds
        text = document_text(entries)
        record = result_record(
            source=source,
            document=DocumentFacts(
                document.format, document.page_count, document.frames, document.note
            ),
            entries=entries,
            rules=rules,
            engine=engine,
            text=text,
            attempt=attempt,
            requests=requests_before + sum(int(entry["requests"]) for entry in entries),
            timings={
                "started": utc_iso(started),
                "finished": utc_iso(time.time()),
                "read_seconds": round(read_seconds, 4),
                "decode_seconds": round(decode_seconds, 4),
                "ocr_seconds": round(ocr_seconds, 4),
            },
        )
        partial = record["status"] == "partial"
        failure = partial_record(record, first_attempt=first_attempt) if partial else None
        if before_commit is not None:
            before_commit()
        write.commit_result(
            paths,
            inbox.outputs,
            text,
            record,
            write.opener(source),
            failure=failure,
            password=inbox.pdf_password,
        )
        if resume is not None and document.is_document:
            resume.drop_pages(path)
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
    finally:
        if source is not None:
            source.close()  # a document's descriptor, held while its pages were read
    seconds = time.perf_counter() - clock
    if failure is not None:
        return Outcome(
            path,
            Status.PARTIAL,
            str(failure["error"]["message"]),
            str(failure["error"]["classification"]),
            seconds=seconds,
            chars=len(text),
            sidecar=paths.result,
        )
    return Outcome(
        path,
        Status.DONE,
        f"{len(text)} characters",
        seconds=seconds,
        chars=len(text),
        sidecar=paths.result,
    )
