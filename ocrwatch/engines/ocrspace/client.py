"""The ocr.space engine: fit the upload, send it, retry what may heal, map boxes back.

Requests follow the API's documented behaviour to the letter (each answer shape
is recorded in ``tests/data/ocrspace``): multipart with one file part whose
name ends in the extension of its bytes, ``filetype`` set, booleans as
lowercase ``"true"``/``"false"``, the key in the ``apikey`` header, no
parameter the API does not list, and separate connect and read timeouts.

Retry policy: a transient failure (timeout, connection error, HTTP 5xx,
``OCRExitCode`` 6, a malformed answer) is retried up to ``attempts`` times per
endpoint with exponential backoff and full jitter, then the next endpoint is
tried. A rate-limit answer pauses the shared :class:`RequestGate` for the
window the API names and is raised at once; an invalid key blocks the gate and
is raised at once; bad input is raised at once, since retrying it only burns
quota. Every request that leaves is counted by the gate against the daily
budget (``max_requests_per_day``), each attempt on its own, as the API counts
them. Sleeping and waiting stop early when the engine's ``stop`` event is set.
"""

from __future__ import annotations

import contextlib
import logging
import random
import re
import threading
import time
from dataclasses import replace
from typing import TYPE_CHECKING

import requests
from requests.adapters import HTTPAdapter

from ocrwatch import __version__, imaging
from ocrwatch.apikey import ApiKey, KeyHolder
from ocrwatch.config import OcrSpaceConfig
from ocrwatch.engines.base import (
    EngineSetup,
    OcrEngine,
    OcrRequest,
    OcrResult,
    Page,
    Prepared,
    cores,
)
from ocrwatch.engines.ocrspace.answer import Answer, read_answer
from ocrwatch.errors import (
    EngineUnavailableError,
    Interrupted,
    InvalidKeyError,
    OcrError,
    RateLimitError,
    TransientError,
)
from ocrwatch.imaging import Upload
from ocrwatch.layout import ScaleShift, map_page
from ocrwatch.ratelimit import BudgetSpent, Gate, RequestGate

if TYPE_CHECKING:
    import numpy as np

logger = logging.getLogger(__name__)

ENGINE2_MAX_SIDE = 5000
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 30.0
SLOT_WAIT_SLICE = 0.5
UPLOAD_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
UPLOAD_NAME_MAX = 60
MIME_TYPES = {
    "JPG": "image/jpeg",
    "PNG": "image/png",
    "GIF": "image/gif",
    "TIF": "image/tiff",
    "BMP": "image/bmp",
    "PDF": "application/pdf",
}


def _flag(value: bool) -> str:
    return "true" if value else "false"


def upload_name(name: str, extension: str) -> str:
    """An ASCII file name for the multipart part, ending in ``extension``."""
    stem = UPLOAD_NAME_CHARS.sub("_", name).strip("._-") or "image"
    return f"{stem[:UPLOAD_NAME_MAX]}.{extension}"


class OcrSpaceEngine(OcrEngine):
    """OCR through the ocr.space HTTP API."""

    name = "ocrspace"
    stop: threading.Event
    """Always set up: waits for the gate and backoffs end when it is set."""

    @classmethod
    def create(cls, setup: EngineSetup) -> OcrSpaceEngine:
        if setup.api_key is None:
            raise EngineUnavailableError("the ocrspace engine needs an API key")
        return cls(
            setup.config.ocrspace,
            setup.api_key,
            pool_size=setup.workers,
            stop=setup.stop,
            gate=setup.gate,
        )

    def __init__(
        self,
        config: OcrSpaceConfig,
        api_key: ApiKey | KeyHolder,
        *,
        pool_size: int = 4,
        stop: threading.Event | None = None,
        gate: Gate | None = None,
        backoff_base: float = BACKOFF_BASE_SECONDS,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self._keys = api_key if isinstance(api_key, KeyHolder) else KeyHolder(api_key)
        self.gate = gate or RequestGate(
            config.rate_limit, max_requests_per_day=config.max_requests_per_day
        )
        self.stop = stop or threading.Event()
        self._backoff_base = backoff_base
        self._rng = rng or random.Random()
        # Requests in flight; more threads than this may be preparing uploads meanwhile,
        # one per core at a time, so that when many files arrive together the first
        # uploads are ready soonest instead of all of them late.
        self._in_flight = threading.BoundedSemaphore(max(pool_size, 1))
        self.page_workers = max(pool_size, 1)
        self._preparing = threading.BoundedSemaphore(cores())
        self._session = requests.Session()
        self._session.headers["User-Agent"] = f"ocrwatch/{__version__}"
        adapter = HTTPAdapter(
            pool_connections=len(config.endpoint), pool_maxsize=max(pool_size, 1), max_retries=0
        )
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        # The environment's proxies and CA bundle, read once per endpoint:
        # requests reads them again for every request (a millisecond each,
        # as much as the rest of the request's own work for a small image).
        self._environment = {
            endpoint: self._session.merge_environment_settings(endpoint, {}, None, None, None)
            for endpoint in config.endpoint
        }
        self._session.trust_env = False

    def settings(self) -> dict[str, object]:
        return {"ocr_engine": self.config.ocr_engine}

    def takes_original(self, original: bytes, info: imaging.ImageInfo) -> bool:
        return imaging.sendable(
            original, info, max_bytes=self.config.max_upload_bytes, max_side=self._max_side
        )

    @property
    def _max_side(self) -> int | None:
        return ENGINE2_MAX_SIDE if self.config.ocr_engine == 2 else None

    def preparing(self) -> contextlib.AbstractContextManager[object]:
        return self._preparing

    def recognize(self, request: OcrRequest) -> OcrResult:
        """Fit, send (with retries and failover), and map word boxes back to the request's pixels."""
        return self.finish(self.prepare(request))

    def prepare(self, request: OcrRequest) -> Prepared:
        """Fit the upload; the prepared request keeps it and drops the pixels and the original."""
        started = time.perf_counter()
        upload = imaging.fit_upload(
            request.image,
            max_bytes=self.config.max_upload_bytes,
            max_side=self._max_side,
            original=request.original,
            info=request.original_info,
        )
        light = replace(request, image=_released, original=None)
        return Prepared(light, upload=upload, started=started)

    def finish(self, prepared: Prepared) -> OcrResult:
        request, upload = prepared.request, prepared.upload
        if upload is None:  # prepared by another engine: nothing was fitted
            return self.recognize(request)
        answer, endpoint, attempts = self._send(request, upload)
        pages = tuple(_unscale(page, upload.scale) for page in answer.pages)
        return OcrResult(
            pages=pages,
            engine=self.name,
            seconds=time.perf_counter() - prepared.started,
            upload=upload,
            raw=answer.raw,
            endpoint=endpoint,
            attempts=attempts,
        )

    pdf_render_dpi = 96.0
    """ocr.space renders an uploaded PDF at 96 dpi, as its word boxes show: an inference (a
    client that scales boxes by 4/3 from PDF points), not documented."""

    def reads_pdf(self) -> bool:
        return True

    def recognize_pdf(self, data: bytes, request: OcrRequest) -> OcrResult:
        """Send a whole PDF as it is; the pages come back in ocr.space's 96 dpi pixels."""
        started = time.perf_counter()
        upload = Upload(
            data=data,
            filetype="PDF",
            extension="pdf",
            scale=1.0,
            width=0,
            height=0,
            grayscale=False,
            quality=None,
            encodes=0,
        )
        answer, endpoint, attempts = self._send(request, upload)
        return OcrResult(
            pages=answer.pages,
            engine=self.name,
            seconds=time.perf_counter() - started,
            upload=upload,
            raw=answer.raw,
            endpoint=endpoint,
            attempts=attempts,
        )

    def fields(self, request: OcrRequest, upload: Upload) -> dict[str, str]:
        """The form fields of a request: documented names only."""
        return {
            "language": request.language,
            "isOverlayRequired": _flag(request.overlay),
            "detectOrientation": _flag(request.detect_orientation),
            "scale": _flag(request.scale),
            "isTable": _flag(request.table),
            "OCREngine": str(self.config.ocr_engine),
            "filetype": upload.filetype,
        }

    def _send(self, request: OcrRequest, upload: Upload) -> tuple[Answer, str, int]:
        fields = self.fields(request, upload)
        filename = upload_name(request.name, upload.extension)
        files = {
            "file": (
                filename,
                upload.data,
                MIME_TYPES.get(upload.filetype, "application/octet-stream"),
            )
        }
        attempts = 0
        last: TransientError | None = None
        for endpoint in self.config.endpoint:
            for attempt in range(self.config.attempts):
                if attempt:
                    self._backoff(attempt)
                self._take_slot()
                try:
                    if request.before_send is not None:
                        request.before_send()
                    self.gate.acquire(self.stop)
                    attempts += 1
                    started = time.perf_counter()
                    key = self._keys.key
                    answer = self._post(endpoint, fields, files, key)
                except BudgetSpent:
                    raise  # nothing was sent: no request to observe, no API pause to set
                except TransientError as error:
                    if isinstance(error, Interrupted):
                        raise
                    self._observe(
                        error.classification, time.perf_counter() - started, len(upload.data)
                    )
                    last = error
                    logger.warning(
                        "%s: attempt %d at %s failed: %s", request.name, attempts, endpoint, error
                    )
                    continue
                except OcrError as error:
                    # Rate limits pause and rejected keys block the gate for every worker;
                    # bad input and engine failures are final. None of them is retried here.
                    self._observe(
                        error.classification, time.perf_counter() - started, len(upload.data)
                    )
                    error.attempts = attempts
                    if isinstance(error, RateLimitError):
                        self.gate.pause(error.retry_after, str(error))
                    # A rejection of a key a reload has replaced meanwhile says
                    # nothing about the new key: that file is just tried again.
                    elif isinstance(error, InvalidKeyError) and self._keys.key is key:
                        self.gate.block(str(error))
                    raise
                finally:
                    self._in_flight.release()
                self._observe("ok", time.perf_counter() - started, len(upload.data))
                return answer, endpoint, attempts
        assert last is not None
        failure = TransientError(
            f"gave up after {attempts} attempts on {len(self.config.endpoint)} endpoint(s): {last}"
        )
        failure.attempts = attempts
        raise failure from last

    def _post(
        self,
        endpoint: str,
        fields: dict[str, str],
        files: dict[str, tuple[str, bytes, str]],
        key: ApiKey,
    ) -> Answer:
        try:
            response = self._session.post(
                endpoint,
                data=fields,
                files=files,
                headers={"apikey": key.value},
                timeout=(self.config.connect_timeout, self.config.timeout),
                **self._environment[endpoint],
            )
            body = response.content
        except requests.Timeout as error:
            raise TransientError(
                f"no answer from {endpoint} within the timeout ({_reason(error)})"
            ) from None
        except requests.RequestException as error:
            raise TransientError(f"request to {endpoint} failed: {_reason(error)}") from None
        return read_answer(
            response.status_code, body, retry_after=response.headers.get("Retry-After")
        )

    def _take_slot(self) -> None:
        """Wait for a free request slot; raises Interrupted when stopping."""
        while not self._in_flight.acquire(timeout=SLOT_WAIT_SLICE):
            if self.stop.is_set():
                raise Interrupted("stopped while waiting to send a request")

    def _backoff(self, attempt: int) -> None:
        ceiling = min(BACKOFF_MAX_SECONDS, self._backoff_base * 2 ** (attempt - 1))
        delay = self._rng.uniform(ceiling / 2, ceiling)
        if self.stop.wait(delay):
            raise Interrupted("stopped while waiting to retry")

    def close(self) -> None:
        self.stop.set()
        self.gate.wake()
        super().close()
        self._session.close()


def _released() -> np.ndarray:
    raise RuntimeError("the pixels were released once the upload was fitted")


def _unscale(page: Page, scale: float) -> Page:
    """``page`` in the request's pixels: words, lines and blocks out of the scaled upload."""
    if scale == 1.0:
        return page
    return map_page(page, ScaleShift(scale=scale))


def _reason(error: Exception) -> str:
    """The innermost readable cause of a requests error, without URLs' query strings."""
    cause: BaseException = error
    while cause.__context__ is not None and cause.__context__ is not cause:
        cause = cause.__context__
    text = str(cause) or type(cause).__name__
    return text if len(text) < 300 else text[:300] + "..."
