"""What the files waiting in an inbox will cost in ocr.space requests, said before any is sent.

Owns the cost of one waiting file (:func:`file_cost`: its pages and their
requests), the tally of a backlog (:class:`Backlog`) and its wording, shared
by ``ocrwatch check`` and the daemon's start log, and the rule behind the
cost of documents as ``check`` states it (:func:`describe_documents`).

Whether a file is waiting is deliberately not decided here:
:func:`ocrwatch.current.verdict` is the one answer, asked with the facts of
:func:`ocrwatch.current.facts_of` (size and mtime, hashing only when the
mtime alone changed) exactly as the scanner asks it. What a file is, is
decided as the pipeline decides it (:mod:`ocrwatch.pages`): by its first
KiB, read without following links unless the inbox does. An image is one
page and is not read further; a PDF or a TIFF is read whole and opened, but
no page is rendered or decoded.

A PDF page costs nothing when its text is used instead of OCR
(``pdf.text_layer``). Telling costs PDFium's extraction of the page's
characters, tens of milliseconds for a page of dense text, so a document of
more than :data:`TEXT_SAMPLE_PAGES` pages has that many pages inspected,
spread evenly, and the rest estimated in proportion.

The count is an estimate and says "about": a transient failure is sent again
(``ocrspace.attempts`` per endpoint, ``transient_attempts`` in the daemon),
which costs more; a file that does not decode, or whose crop does not fit,
fails before anything is sent, which costs less, and so do the pages of a
document the daemon read before it was stopped (its state store keeps them);
and a long PDF's text is sampled. A document that cannot be opened (encrypted without its password,
broken, over ``pdf.max_pages``) costs nothing and is counted apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ocrwatch import current, scan
from ocrwatch.documents.pdf import open_pdf
from ocrwatch.documents.tiff import tiff_pages
from ocrwatch.errors import FileError
from ocrwatch.plan import InboxPlan
from ocrwatch.source import (
    PDF_SIGNATURE_WINDOW,
    ByteSource,
    SourceGone,
    is_document_head,
    is_pdf,
    open_bytes,
    read_head,
)
from ocrwatch.store import StateStore

TEXT_SAMPLE_PAGES = 10
"""PDF pages whose text is inspected at most, per document: about half a second of dense text."""
_TEXT_LAYERS = {
    "skip": "skip (pages with text use it, no OCR)",
    "redo": "redo (pages with visible text use it; those whose only text is invisible are OCR'd)",
    "force": "force (every page OCR'd, its text ignored)",
}


@dataclass(frozen=True)
class FileCost:
    """What reading one waiting file takes: its pages and the ocr.space requests they cost."""

    pages: int
    requests: int
    problem: str | None = None
    """Why the file cannot be opened as a document; it then has no pages and costs nothing."""


def file_cost(path: Path, inbox: InboxPlan) -> FileCost | None:
    """What reading ``path`` in ``inbox`` costs when each request is answered at once; None if gone.

    Each page read by OCR costs one request per part: the whole page (or its
    crop), or each region. The local engine costs none.
    """
    follow = inbox.config.follow_symlinks
    try:
        head = read_head(path, PDF_SIGNATURE_WINDOW, follow_symlinks=follow)
    except SourceGone:
        return None
    except FileError:
        head = b""  # the pipeline will say what is wrong; until then it counts as an image
    if not is_document_head(head):
        return _pages_cost(inbox, pages=1, read_by_ocr=1)
    try:
        with open_bytes(path, follow_symlinks=follow) as data:
            return _pdf_cost(data, inbox) if is_pdf(data) else _tiff_cost(data, inbox)
    except SourceGone:
        return None
    except FileError as error:
        return FileCost(pages=0, requests=0, problem=str(error))
    except OSError as error:
        return FileCost(
            pages=0, requests=0, problem=f"cannot read the file: {error.strerror or error}"
        )


def _pdf_cost(data: ByteSource, inbox: InboxPlan) -> FileCost:
    """Pages of a PDF and those that ``pdf.text_layer`` sends to OCR; raise FileError if unreadable."""
    rules = inbox.rules
    with open_pdf(data, password=inbox.pdf_password, max_pages=rules.max_pages) as document:
        pages = document.page_count
        if rules.engine != "ocrspace" or rules.text_layer == "force":
            if rules.sends_pdf_whole(len(data), pages):
                return FileCost(pages=pages, requests=1)
            return _pages_cost(inbox, pages=pages, read_by_ocr=pages)
        sample = _spread(pages, TEXT_SAMPLE_PAGES)
        read = sum(rules.reads_by_ocr(document.text(document.page(index)).kind) for index in sample)
    read_by_ocr = round(read * pages / len(sample))
    if read_by_ocr == pages and rules.sends_pdf_whole(len(data), pages):
        return FileCost(pages=pages, requests=1)
    return _pages_cost(inbox, pages=pages, read_by_ocr=read_by_ocr)


def _tiff_cost(data: ByteSource, inbox: InboxPlan) -> FileCost:
    """Pages of a TIFF (one for a single image), each read by OCR; raise FileError if unreadable."""
    rules = inbox.rules
    with tiff_pages(data, max_pixels=rules.max_pixels, max_pages=rules.max_pages) as document:
        pages = len(document.pages)
    return _pages_cost(inbox, pages=pages, read_by_ocr=pages)


def _pages_cost(inbox: InboxPlan, *, pages: int, read_by_ocr: int) -> FileCost:
    if inbox.rules.engine != "ocrspace":
        return FileCost(pages=pages, requests=0)
    return FileCost(pages=pages, requests=read_by_ocr * (len(inbox.rules.regions) or 1))


def _spread(count: int, most: int) -> list[int]:
    """Indexes of up to ``most`` of ``count`` pages, evenly spread from the first to the last."""
    if count <= most:
        return list(range(count))
    return sorted({round(step * (count - 1) / (most - 1)) for step in range(most)})


@dataclass
class Backlog:
    """Files waiting for OCR (no current sidecar, not a known failure), their pages and requests."""

    files: int = 0
    pages: int = 0
    """Pages of the files that can be opened, read by OCR or from their own text."""
    requests: int = 0
    local_files: int = 0
    """Of ``files``, those of inboxes on the local engine: no quota."""
    unreadable: list[tuple[Path, str]] = field(default_factory=list)
    """Of ``files``, documents that cannot be opened, and why: they will cost nothing."""
    partial: bool = False
    """True when the count stopped before the end of the inbox."""

    def add(self, path: Path, inbox: InboxPlan) -> None:
        """Count ``path``, a waiting file of ``inbox`` (a PDF or TIFF is read and opened)."""
        cost = file_cost(path, inbox)
        if cost is None:
            return
        self.files += 1
        self.pages += cost.pages
        self.requests += cost.requests
        if inbox.rules.engine != "ocrspace":
            self.local_files += 1
        if cost.problem is not None:
            self.unreadable.append((path, cost.problem))

    def __add__(self, other: Backlog) -> Backlog:
        return Backlog(
            files=self.files + other.files,
            pages=self.pages + other.pages,
            requests=self.requests + other.requests,
            local_files=self.local_files + other.local_files,
            unreadable=self.unreadable + other.unreadable,
            partial=self.partial or other.partial,
        )

    def describe(self, *, waiting: bool = False) -> str:
        """``12 files, about 12 ocr.space requests`` or ``3 files (local engine, no quota)``.

        Pages are named when they are not one per file: ``3 files (12 pages),
        about 11 ocr.space requests``. ``waiting`` says ``12 files waiting,
        ...``; a partial count says ``at least``; documents that cannot be
        opened are counted at the end.
        """
        state = " waiting" if waiting else ""
        if not self.files:
            return f"no files{state}"
        files = f"{'at least ' if self.partial else ''}{_count(self.files, 'file')}{state}"
        pages = _count(self.pages, "page") if self.pages != self.files else None
        unreadable = (
            f"; {len(self.unreadable)} cannot be opened (no requests)" if self.unreadable else ""
        )
        if self.local_files == self.files:
            detail = "; ".join(part for part in (pages, "local engine, no quota") if part)
            return f"{files} ({detail}){unreadable}"
        if pages:
            files += f" ({pages})"
        requests = (
            f"about {_count(self.requests, 'ocr.space request')}"
            if self.requests
            else "no ocr.space requests"
        )
        if self.local_files:
            requests += f" ({self.local_files} on the local engine, no quota)"
        return f"{files}, {requests}{unreadable}"


def count(inbox: InboxPlan, *, cache: StateStore | None = None) -> Backlog:
    """The files of ``inbox`` waiting now and what they will cost, from stats, sidecars and heads."""
    backlog = Backlog()
    for path in scan.walk(inbox, inbox.excluded):
        facts = current.facts_of(path, follow_symlinks=inbox.config.follow_symlinks)
        if facts is None or current.verdict(path, inbox, facts, cache=cache) is not None:
            continue
        if current.outputs_due(path, inbox, facts) is not None:
            continue  # read already: the files it lacks are written from its record
        backlog.add(path, inbox)
    return backlog


def describe_documents(inbox: InboxPlan) -> str:
    """Which pages of ``inbox``'s documents are read, and so cost, as far as its patterns let them in."""
    pdf = _takes(inbox, ".pdf")
    tiff = _takes(inbox, ".tif", ".tiff")
    if not pdf and not tiff:
        return "none (PDFs and TIFFs not matched by patterns)"
    kinds = " and ".join(kind for kind, taken in (("PDF", pdf), ("multi-page TIFF", tiff)) if taken)
    parts = [f"{kinds}, every page (up to {inbox.rules.max_pages} pages)"]
    if not pdf:
        return "; ".join([*parts, "PDFs not matched by patterns"])
    parts.append(f"PDF text layer: {_TEXT_LAYERS[inbox.rules.text_layer]}")
    if inbox.config.pdf.password_file is not None:
        parts.append(f"password from {inbox.config.pdf.password_file}")
    return "; ".join(parts)


def _takes(inbox: InboxPlan, *extensions: str) -> bool:
    """True when some pattern of ``inbox`` takes names ending in one of ``extensions``."""
    return any(
        inbox.matches(f"document{extension}")
        or any(pattern.lower().endswith(extension) for pattern in inbox.config.patterns)
        for extension in extensions
    )


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"
