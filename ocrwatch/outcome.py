"""What happened to one file: the :class:`Outcome` every runner acts on."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from ocrwatch.errors import FileError


class Status(StrEnum):
    """How one pass over a file ended. The values appear in logs, metrics and status.json."""

    DONE = "done"
    """Sidecars written."""
    SKIPPED = "skipped"
    """The sidecars were already current."""
    PARTIAL = "partial"
    """Sidecars written for a document some of whose pages failed for good; an error sidecar lists them."""
    KNOWN_FAILURE = "known_failure"
    """An error sidecar for these very bytes and settings exists; not tried again."""
    KNOWN_PARTIAL = "known_partial"
    """A partial document's sidecars for these very bytes and settings exist; not tried again."""
    FAILED = "failed"
    """Failed for good; an error sidecar says why."""
    RETRY = "retry"
    """A retryable failure the caller will try again (no error sidecar yet)."""
    DEFERRED = "deferred"
    """Not the file's fault (API pause, rejected key, shutdown): left as it is for later."""
    GONE = "gone"
    """Deleted or renamed before it was read or sent."""

    @property
    def finished(self) -> bool:
        """True for the outcomes that end a file's turn: the after-action and hooks apply."""
        return self in (Status.DONE, Status.FAILED, Status.PARTIAL)


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
        return self.status in (Status.DONE, Status.SKIPPED)
