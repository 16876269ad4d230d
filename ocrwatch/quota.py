"""What the files waiting in an inbox will cost in ocr.space requests, said before any is sent.

Owns the cost of one waiting file (:func:`file_requests`), the tally of a
backlog (:class:`Backlog`) and its wording, shared by ``ocrwatch check`` and
the daemon's start log. Whether a file is waiting is deliberately not decided
here: :func:`ocrwatch.current.verdict` is the one answer, asked with the facts
of :func:`ocrwatch.current.facts_of` (size and mtime, hashing only when the mtime
alone changed) exactly as the scanner asks it. Nothing here decodes a file.

The count is an estimate and says "about": a transient failure is sent again
(``ocrspace.attempts`` per endpoint, ``transient_attempts`` in the daemon),
which costs more; a file that does not decode, or whose crop does not fit,
fails before anything is sent, which costs less.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ocrwatch import current, scan
from ocrwatch.plan import InboxPlan
from ocrwatch.store import StateStore


def file_requests(path: Path, inbox: InboxPlan) -> int:
    """The ocr.space requests reading ``path`` in ``inbox`` costs when each is answered at once.

    One per part read: the whole image (or its crop), or each region. The
    local engine costs none. ``path`` is for what the file itself will decide
    (documents: one request per page and part).
    """
    if inbox.rules.engine != "ocrspace":
        return 0
    return len(inbox.rules.regions) or 1


@dataclass
class Backlog:
    """Files waiting for OCR (no current sidecar, not a known failure) and their requests."""

    files: int = 0
    requests: int = 0
    local_files: int = 0
    """Of ``files``, those of inboxes on the local engine: no quota."""
    partial: bool = False
    """True when the count stopped before the end of the inbox."""

    def add(self, path: Path, inbox: InboxPlan) -> None:
        """Count ``path``, a waiting file of ``inbox``."""
        self.files += 1
        if inbox.rules.engine == "ocrspace":
            self.requests += file_requests(path, inbox)
        else:
            self.local_files += 1

    def __add__(self, other: Backlog) -> Backlog:
        return Backlog(
            files=self.files + other.files,
            requests=self.requests + other.requests,
            local_files=self.local_files + other.local_files,
            partial=self.partial or other.partial,
        )

    def describe(self, *, waiting: bool = False) -> str:
        """``12 files, about 12 ocr.space requests`` or ``3 files (local engine, no quota)``.

        ``waiting`` says ``12 files waiting, ...``; a partial count says ``at least``.
        """
        state = " waiting" if waiting else ""
        if not self.files:
            return f"no files{state}"
        files = f"{'at least ' if self.partial else ''}{_count(self.files, 'file')}{state}"
        if self.local_files == self.files:
            return f"{files} (local engine, no quota)"
        requests = (
            f"about {_count(self.requests, 'ocr.space request')}"
            if self.requests
            else "no ocr.space requests"
        )
        if self.local_files:
            return f"{files}, {requests} ({self.local_files} on the local engine, no quota)"
        return f"{files}, {requests}"


def count(inbox: InboxPlan, *, cache: StateStore | None = None) -> Backlog:
    """The files of ``inbox`` waiting now and what they will cost, from stats and sidecars alone."""
    backlog = Backlog()
    for path in scan.walk(inbox, inbox.excluded):
        facts = current.facts_of(path, follow_symlinks=inbox.config.follow_symlinks)
        if facts is not None and current.verdict(path, inbox, facts, cache=cache) is None:
            backlog.add(path, inbox)
    return backlog


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"
