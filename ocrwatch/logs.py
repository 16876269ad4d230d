"""Logging set-up, done once by ``cli``: formats for a terminal, a pipe and the journal.

Under systemd (``$JOURNAL_STREAM`` names our stderr) every line carries its
syslog priority prefix (``<4>`` for a warning) and no timestamp, since the
journal adds its own; a multi-line record (a traceback) gets the prefix on each
line so that no part of it is demoted to INFO. On a terminal lines are short
and coloured unless ``NO_COLOR`` is set; on a pipe or file they carry an ISO
timestamp.

Every registered secret (the API key) is replaced by ``***`` in every line,
whatever code produced it: defence in depth, not a licence to log secrets.
"""

from __future__ import annotations

import codecs
import io
import logging
import os
import re
import sys
import threading
from collections.abc import Mapping
from types import TracebackType
from typing import TextIO

REDACTED = "***"
MIN_SECRET_LENGTH = 4

_secrets: set[str] = set()
_secrets_lock = threading.Lock()

SYSLOG_PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}

_COLOURS = {
    logging.CRITICAL: "\033[1;31m",
    logging.ERROR: "\033[31m",
    logging.WARNING: "\033[33m",
    logging.DEBUG: "\033[2m",
}
_RESET = "\033[0m"


def register_secret(value: str) -> None:
    """Never let ``value`` reach a log line."""
    if len(value) >= MIN_SECRET_LENGTH:
        with _secrets_lock:
            _secrets.add(value)


def redact(text: str) -> str:
    """``text`` with every registered secret replaced."""
    with _secrets_lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def redact_bytes(data: bytes) -> bytes:
    """UTF-8 ``data`` (an hOCR or ALTO file) with every registered secret replaced."""
    with _secrets_lock:
        if not _secrets:
            return data
    text = data.decode("utf-8", errors="surrogateescape")
    return redact(text).encode("utf-8", errors="surrogateescape")


def _priority(levelno: int) -> int:
    for level in (logging.CRITICAL, logging.ERROR, logging.WARNING, logging.INFO):
        if levelno >= level:
            return SYSLOG_PRIORITY[level]
    return SYSLOG_PRIORITY[logging.DEBUG]


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _escape(value: object) -> object:
    """A log argument with control characters shown as escapes, so a file name with a
    newline cannot forge a second log line."""
    if isinstance(value, str | os.PathLike):
        text = os.fspath(value)
        if isinstance(text, str) and _CONTROL.search(text):
            return _CONTROL.sub(lambda match: repr(match.group())[1:-1], text)
    return value


class _RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        if isinstance(record.args, tuple) and record.args:
            escaped = tuple(_escape(argument) for argument in record.args)
            if escaped != record.args:
                record = logging.makeLogRecord({**record.__dict__, "args": escaped})
        return redact(super().format(record))


class JournalFormatter(_RedactingFormatter):
    """``<priority>message`` on every line, no timestamp."""

    def __init__(self) -> None:
        super().__init__("%(message)s")

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).splitlines())


class TerminalFormatter(_RedactingFormatter):
    """Short lines for a person at a terminal, coloured by level when allowed."""

    def __init__(self, *, colour: bool) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S")
        self.colour = colour

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        colour = _COLOURS.get(record.levelno) if self.colour else None
        return f"{colour}{line}{_RESET}" if colour else line


class PlainFormatter(_RedactingFormatter):
    """ISO timestamps, for pipes and files."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%dT%H:%M:%S%z")


def under_journal(stream: TextIO, env: Mapping[str, str]) -> bool:
    """True when ``stream`` is the journal stream systemd gave us (``$JOURNAL_STREAM``)."""
    value = env.get("JOURNAL_STREAM", "")
    device, _, inode = value.partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    try:
        info = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return info.st_dev == int(device) and info.st_ino == int(inode)


ESCAPE_ERRORS = "ocrwatch.escape"
"""Codec error handler for text streams: file names that are not UTF-8 show as escapes."""


def _escape_unencodable(error: UnicodeError) -> tuple[str, int]:
    """Show what a stream cannot encode: bytes of a non-UTF-8 file name (which Python
    carries as lone surrogates) as ``\\xNN``, anything else as a backslash escape."""
    if not isinstance(error, UnicodeEncodeError):
        raise error
    shown = []
    for char in error.object[error.start : error.end]:
        code = ord(char)
        if 0xDC80 <= code <= 0xDCFF:  # surrogateescape's stand-in for the byte code - 0xDC00
            shown.append(f"\\x{code - 0xDC00:02x}")
        else:
            shown.append(char.encode("ascii", "backslashreplace").decode("ascii"))
    return "".join(shown), error.end


codecs.register_error(ESCAPE_ERRORS, _escape_unencodable)


def escape_streams(*streams: TextIO) -> None:
    """Make ``streams`` (default stdout and stderr) escape what they cannot encode.

    Python writes a non-UTF-8 file name raw under a C locale (the journal then
    shows the line as a blob) and raises UnicodeEncodeError under a UTF-8 one,
    which would crash ``ocrwatch failed`` on such a name. Escaped, it is readable
    everywhere and the line stays valid UTF-8.
    """
    for stream in streams or (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors=ESCAPE_ERRORS)


def setup(
    verbosity: int = 0, *, stream: TextIO | None = None, env: Mapping[str, str] | None = None
) -> None:
    """Configure the root logger. ``verbosity``: -1 quiet, 0 normal, 1 debug, 2 debug for libraries too."""
    stream = sys.stderr if stream is None else stream
    env = os.environ if env is None else env
    formatter: logging.Formatter
    if under_journal(stream, env):
        formatter = JournalFormatter()
    elif stream.isatty():
        formatter = TerminalFormatter(colour=not env.get("NO_COLOR") and env.get("TERM") != "dumb")
    else:
        formatter = PlainFormatter()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    level = logging.WARNING if verbosity < 0 else logging.DEBUG if verbosity > 0 else logging.INFO
    root.setLevel(level)
    library_level = logging.DEBUG if verbosity > 1 else logging.WARNING
    for name in ("urllib3", "watchdog", "PIL", "requests"):
        logging.getLogger(name).setLevel(max(library_level, level))
    # Uncaught exceptions go through logging too, so they keep their priority
    # (and their redaction) instead of landing on stderr raw.
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread


def _log_uncaught(
    kind: type[BaseException], value: BaseException, trace: TracebackType | None
) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, trace)
        return
    logging.getLogger("ocrwatch").critical("uncaught exception", exc_info=(kind, value, trace))


def _log_uncaught_in_thread(arguments: threading.ExceptHookArgs) -> None:
    if arguments.exc_type is SystemExit:
        return
    thread = arguments.thread.name if arguments.thread else "?"
    logging.getLogger("ocrwatch").critical(
        "uncaught exception in thread %s",
        thread,
        exc_info=(
            arguments.exc_type,
            arguments.exc_value or arguments.exc_type(),
            arguments.exc_traceback,
        ),
    )
