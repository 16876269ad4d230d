"""The error hierarchy of ocrwatch.

Every error ocrwatch raises on purpose derives from :class:`OcrwatchError`,
which carries the process exit code that ``cli`` maps it to. Per-file errors
also carry a *classification*, the word that lands in an error sidecar and
decides whether the daemon tries the file again:

``bad_input``
    The file itself cannot be OCR'd as configured (not an image, a crop
    outside the image, rejected by the API as invalid). Retrying wastes quota.
``incomplete``
    The file looks half-written (truncated image or PDF). The daemon waits and tries
    again until the inbox's deadline.
``transient``
    The network or the service failed in a way that may heal (timeouts,
    HTTP 5xx, connection resets). Retried with backoff.
``rate_limit``
    The API refused because a quota window is full. The whole ocr.space queue
    pauses for the window the API names.
``invalid_key``
    The API key was rejected. OCR calls stop until the key is fixed.
``engine``
    The OCR engine failed on this input (parse error). Not retried.
``output``
    Sidecars could not be written (read-only folder, disk full). Retried.
"""

from __future__ import annotations

from typing import Literal

Classification = Literal[
    "bad_input",
    "incomplete",
    "transient",
    "rate_limit",
    "invalid_key",
    "engine",
    "output",
    "internal",
]

EXIT_OK = 0
EXIT_FAILURES = 1
EXIT_CONFIG = 2
EXIT_NOT_RUNNING = 3
EXIT_INTERRUPTED = 130


class OcrwatchError(Exception):
    """Base of every error ocrwatch raises on purpose."""

    exit_code: int = EXIT_FAILURES


class ConfigError(OcrwatchError):
    """The configuration is missing or invalid; ``problems`` lists every finding."""

    exit_code = EXIT_CONFIG

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class FileError(OcrwatchError):
    """One input file could not be turned into sidecars."""

    classification: Classification = "bad_input"
    page_facts: object | None = None
    """For a page of a document that opened and then failed: its facts (size, resolution), so
    the record keeps the page's place. Set by the reader."""

    @property
    def retryable(self) -> bool:
        """True when trying the same file again later may succeed."""
        return self.classification in ("incomplete", "transient", "rate_limit", "output")


class ImageError(FileError):
    """The file is not a decodable image within the configured limits."""

    def __init__(self, message: str, *, incomplete: bool = False) -> None:
        super().__init__(message)
        if incomplete:
            self.classification = "incomplete"


class DocumentError(FileError):
    """A document (a PDF) cannot be read: encrypted, broken, empty, too long, or cut short."""

    def __init__(self, message: str, *, incomplete: bool = False) -> None:
        super().__init__(message)
        if incomplete:
            self.classification = "incomplete"


class CropError(FileError):
    """A crop or region rule does not fit the image it was applied to."""


class InternalError(FileError):
    """ocrwatch itself failed on a file: a bug, recorded so that the file is not silently skipped."""

    classification: Classification = "internal"


class OutputError(FileError):
    """Sidecars could not be written."""

    classification: Classification = "output"


class OcrError(FileError):
    """An OCR engine failed; subclasses say how. ``attempts`` counts requests made."""

    classification: Classification = "engine"
    attempts: int = 1


class BadInputError(OcrError):
    """The engine rejected the input; retrying would burn quota for nothing."""

    classification: Classification = "bad_input"


class TransientError(OcrError):
    """A failure that may heal: timeouts, HTTP 5xx, resets, malformed answers."""

    classification: Classification = "transient"


class Interrupted(TransientError):
    """Work stopped because ocrwatch is shutting down; the file is left for the next start."""


class ClaimLost(Interrupted):
    """Distributed mode: another host took the file over while this one read it; its result
    is not committed (the new holder's will be)."""


class RateLimitError(OcrError):
    """The API refused because a quota window is full."""

    classification: Classification = "rate_limit"

    def __init__(
        self,
        message: str,
        *,
        retry_after: float,
        limit: int | None = None,
        window: int | None = None,
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.limit = limit
        self.window = window


class InvalidKeyError(OcrError):
    """The API key was rejected; no further call can succeed until it changes."""

    classification: Classification = "invalid_key"
    exit_code = EXIT_CONFIG


class AlreadyRunning(OcrwatchError):
    """Another daemon is already at work on the same inboxes or state folder."""

    exit_code = EXIT_CONFIG


class EngineUnavailableError(OcrwatchError):
    """An engine cannot start: missing language data, no API key, missing library."""

    exit_code = EXIT_CONFIG
