"""Reading ocr.space answers: every shape the API is known to return, and what each means.

The API answers most failures with HTTP 200 and a JSON object, some with a
403 whose body is a bare JSON string (or plain text), and since 2026 some with
HTTP 400/403 and ``{"error": "E501: ...", "details": ...}``. This module turns
any of them into pages (text, words, and the overlay's lines as one block) or
into one of the classified errors of :mod:`ocrwatch.errors`;
``tests/data/ocrspace`` holds one answer of each shape. It does no I/O.

Residual uncertainty, documented rather than guessed away: a 403 whose text is
neither the rate-limit sentence nor an invalid-key message is treated as a
rate limit with a short pause (it costs a minute, where calling it an invalid
key would stop all OCR).
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ocrwatch.engines.base import Block, Box, Line, Page, Word
from ocrwatch.errors import (
    BadInputError,
    InvalidKeyError,
    OcrError,
    RateLimitError,
    TransientError,
)

RATE_LIMIT_SENTENCE = re.compile(
    r"upto\s+maximum\s+(\d+)\s+number\s+of\s+times\s+within\s+(\d+)\s+seconds", re.IGNORECASE
)
INVALID_KEY = re.compile(r"api\s*key\s+(?:is\s+)?(?:invalid|not\s+valid)|\bE555\b", re.IGNORECASE)
ERROR_CODE = re.compile(r"\bE(\d{3})\b")
TIMED_OUT = re.compile(r"timed\s*out", re.IGNORECASE)
INPUT_PROBLEM = re.compile(
    r"file type|file extension|base64|failed validation|file size exceeds|"
    r"parameter name|value for parameter|not an image|no content provided|"
    r"\bE(?:216|400|501)\b",
    re.IGNORECASE,
)
DEFAULT_RATE_LIMIT_PAUSE = 60.0
BODY_EXCERPT_CHARS = 200

SUCCESS = 1
PARTIAL = 2
PAGE_SUCCESS = 1
PAGE_TIMEOUT = -20
PAGE_VALIDATION = -30


@dataclass(frozen=True)
class Answer:
    """A successful (possibly partial) answer: pages in upload pixels, and the raw JSON."""

    pages: tuple[Page, ...]
    exit_code: int
    raw: Any
    processing_ms: float | None


def read_answer(status: int, body: bytes, *, retry_after: str | None = None) -> Answer:
    """Classify one HTTP answer. Raises RateLimitError, InvalidKeyError, BadInputError,
    TransientError or OcrError (engine failure) when it is not a usable result."""
    text = body.decode("utf-8-sig", errors="replace")
    message: str | None
    try:
        data: Any = json.loads(text)
    except ValueError:
        data = None
        message = _excerpt(text)
        if status == 200 and text.lstrip().startswith(("{", "[")):
            raise TransientError(f"malformed JSON in the answer (truncated?): {message}") from None
    else:
        message = data if isinstance(data, str) else None

    if (
        isinstance(data, dict)
        and ("OCRExitCode" in data or "ParsedResults" in data)
        and status < 400
    ):
        return _read_result(data)
    if isinstance(data, dict) and "error" in data:
        message = " ".join(str(part) for part in (data.get("error"), data.get("details")) if part)
    elif isinstance(data, dict):
        message = _excerpt(json.dumps(data))
    elif message is None:
        # Not JSON, or JSON that is neither an object nor a string.
        message = _excerpt(text)
    raise _classify(status, message, retry_after=retry_after)


def _classify(status: int, message: str, *, retry_after: str | None) -> OcrError:
    """The error for a non-result answer with HTTP ``status`` and text ``message``."""
    described = f"HTTP {status}: {message}" if message else f"HTTP {status} with an empty body"
    if rate := RATE_LIMIT_SENTENCE.search(message):
        limit, window = int(rate.group(1)), int(rate.group(2))
        return RateLimitError(
            f"ocr.space rate limit: {limit} requests per {window} s used up",
            retry_after=float(window),
            limit=limit,
            window=window,
        )
    if INVALID_KEY.search(message) or status == 401:
        return InvalidKeyError(f"ocr.space rejected the API key ({described})")
    if status == 429:
        return RateLimitError(
            f"ocr.space rate limit ({described})", retry_after=_seconds(retry_after)
        )
    if status == 403:
        return RateLimitError(
            f"ocr.space refused the request, treated as a rate limit ({described})",
            retry_after=DEFAULT_RATE_LIMIT_PAUSE,
        )
    if status in (400, 413, 415, 422) or (400 <= status < 500 and INPUT_PROBLEM.search(message)):
        return BadInputError(f"ocr.space rejected the input ({described})")
    return TransientError(f"ocr.space failed ({described})")


def _read_result(data: dict[str, Any]) -> Answer:
    exit_code = _int(data.get("OCRExitCode"))
    messages = _messages(data.get("ErrorMessage"), data.get("ErrorDetails"))
    raw_pages = data.get("ParsedResults")
    pages_data = raw_pages if isinstance(raw_pages, list) else []
    page_codes = [
        _int(page.get("FileParseExitCode")) for page in pages_data if isinstance(page, dict)
    ]
    pages = tuple(_page(page) for page in pages_data if isinstance(page, dict))
    succeeded = any(code == PAGE_SUCCESS for code in page_codes)
    if exit_code in (SUCCESS, PARTIAL) and succeeded:
        return Answer(
            pages=pages,
            exit_code=exit_code,
            raw=data,
            processing_ms=_float(data.get("ProcessingTimeInMilliseconds")),
        )
    page_messages = [page.error for page in pages if page.error]
    text = "; ".join(_unique([*messages, *page_messages])) or "no error message"
    described = f"OCRExitCode {exit_code}: {text}"
    if rate := RATE_LIMIT_SENTENCE.search(text):
        window = int(rate.group(2))
        raise RateLimitError(
            f"ocr.space rate limit ({described})",
            retry_after=float(window),
            limit=int(rate.group(1)),
            window=window,
        )
    if INVALID_KEY.search(text):
        raise InvalidKeyError(f"ocr.space rejected the API key ({described})")
    if exit_code == 6 or TIMED_OUT.search(text) or PAGE_TIMEOUT in page_codes:
        raise TransientError(f"ocr.space timed out ({described})")
    if exit_code == 99 or PAGE_VALIDATION in page_codes or INPUT_PROBLEM.search(text):
        raise BadInputError(f"ocr.space rejected the input ({described})")
    if exit_code == 3:
        raise OcrError(f"ocr.space could not read the image ({described})")
    if exit_code in (SUCCESS, PARTIAL) and not pages:
        raise TransientError(f"ocr.space answered success without results ({described})")
    raise TransientError(f"ocr.space failed ({described})")


def _page(data: dict[str, Any]) -> Page:
    overlay = data.get("TextOverlay")
    if overlay is None:
        overlay = data.get("Overlay")
    words: list[Word] = []
    lines: list[Line] = []
    if isinstance(overlay, dict):
        for line_index, line in enumerate(overlay.get("Lines") or []):
            if not isinstance(line, dict):
                continue
            line_words = [
                parsed
                for word in line.get("Words") or []
                if (parsed := _word(word, line_index)) is not None
            ]
            words += line_words
            if line_words:
                box = Box.around([word.box for word in line_words])
                lines.append(Line(box=box, words=tuple(line_words)))
    # The overlay has lines but no blocks: the page is one block.
    blocks = (Block(Box.around([line.box for line in lines]), tuple(lines)),) if lines else ()
    code = _int(data.get("FileParseExitCode"))
    error = None
    if code != PAGE_SUCCESS:
        error = "; ".join(_messages(data.get("ErrorMessage"), data.get("ErrorDetails"))) or (
            f"FileParseExitCode {code}"
        )
    orientation = _int(data.get("TextOrientation"))
    return Page(
        text=_text(data.get("ParsedText")),
        words=tuple(words),
        orientation=orientation if orientation in (0, 90, 180, 270) else None,
        error=error,
        blocks=blocks,
    )


def _word(data: Any, line: int) -> Word | None:
    if not isinstance(data, dict):
        return None
    box = [_float(data.get(key)) for key in ("Left", "Top", "Width", "Height")]
    text = data.get("WordText")
    if not isinstance(text, str) or any(value is None for value in box):
        return None
    left, top, width, height = (float(value) for value in box if value is not None)
    return Word(text=text, left=left, top=top, width=width, height=height, line=line)


def _text(value: Any) -> str:
    if not isinstance(value, str):
        return ""
    return value.replace("\r\n", "\n").replace("\r", "\n")


def _messages(*values: Any) -> list[str]:
    """ErrorMessage/ErrorDetails flattened: they come as list, string, null or absent."""
    found: list[str] = []
    for value in values:
        if isinstance(value, str):
            found.append(value)
        elif isinstance(value, list):
            found.extend(str(item) for item in value if item not in (None, ""))
    return _unique(message.strip() for message in found if message and message.strip())


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def _float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def _seconds(value: str | None) -> float:
    number = _float(value)
    return number if number is not None and number > 0 else DEFAULT_RATE_LIMIT_PAUSE


def _excerpt(text: str) -> str:
    """A short, single-line rendering of a body for an error message."""
    stripped = text.strip()
    if stripped.startswith('"') and stripped.endswith('"') and len(stripped) > 1:
        stripped = stripped[1:-1]
    if "<" in stripped and ">" in stripped:
        title = re.search(r"<title[^>]*>(.*?)</title>", stripped, re.IGNORECASE | re.DOTALL)
        stripped = title.group(1) if title else re.sub(r"<[^>]+>", " ", stripped)
        stripped = html.unescape(stripped)
    single = " ".join(stripped.split())
    if len(single) > BODY_EXCERPT_CHARS:
        single = single[:BODY_EXCERPT_CHARS] + "..."
    return single
