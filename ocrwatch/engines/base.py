"""The OCR engine interface and the results every engine returns.

An engine turns one upright image (a numpy array, already cropped) into text
and, on request, word boxes and the page's layout (the model is
:mod:`ocrwatch.layout`). Engines own their transport and their tuning; they
do not know about files, sidecars or inboxes.

Threading contract: one engine object is shared by all worker threads.
:meth:`OcrEngine.recognize` (and ``prepare``/``finish``, its two halves) must be
safe to call from several threads at once
(the ocr.space engine shares a connection pool; the Tesseract engine keeps one
API object per thread). :meth:`OcrEngine.close` is called once, after every
worker has stopped.
"""

from __future__ import annotations

import abc
import contextlib
import os
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Self

from ocrwatch.imaging import ImageInfo, Upload

# The result types live in the page model; named here too, where engines have always found them.
from ocrwatch.layout import Block as Block
from ocrwatch.layout import Box as Box
from ocrwatch.layout import Line as Line
from ocrwatch.layout import Page as Page
from ocrwatch.layout import Word as Word

if TYPE_CHECKING:
    import numpy as np

    from ocrwatch.apikey import ApiKey, KeyHolder
    from ocrwatch.config import Config
    from ocrwatch.ratelimit import Gate


@dataclass(frozen=True)
class OcrRequest:
    """One image to read and how to read it."""

    image: np.ndarray | Callable[[], np.ndarray] = field(repr=False)
    """Upright pixels, uint8, HxW (gray) or HxWx3 (BGR); or a function that decodes them on
    demand, when the engine may not need them (it may send ``original`` instead)."""
    language: str = "eng"
    """ocr.space language code (``eng``, ``ger``, ... or ``auto``)."""
    overlay: bool = False
    """Return word boxes."""
    detect_orientation: bool = True
    scale: bool = False
    """ocr.space's server-side upscaling for low-resolution input."""
    table: bool = False
    """Keep table rows line by line."""
    name: str = "image"
    """A short name for logs and upload file names, without extension."""
    original: bytes | None = field(default=None, repr=False)
    """The file's own bytes, given when ``image`` is the whole file (no crop or region)."""
    original_info: ImageInfo | None = None
    """What the file's header says about ``original`` (format, mode, orientation)."""
    before_send: Callable[[], None] | None = field(default=None, repr=False)
    """Called by engines that send the image away, right before each request leaves
    (after any wait for a free slot); raising cancels it, so a file deleted while it
    waited costs no request."""

    def pixels(self) -> np.ndarray:
        """The pixels, decoding them now if they were left for later."""
        return self.image() if callable(self.image) else self.image


@dataclass(frozen=True)
class OcrResult:
    """What an engine returns for one request."""

    pages: tuple[Page, ...]
    engine: str
    seconds: float
    upload: Upload | None = None
    raw: Any = None
    """The engine's raw answer (the parsed ocr.space JSON); None for local engines."""
    endpoint: str | None = None
    attempts: int = 1
    orientation_source: str | None = None
    """``local`` when ocrwatch found the part's orientation and sent it upright (its pages'
    ``orientation`` is then the clockwise turn it was given); None when the engine says."""

    @property
    def text(self) -> str:
        """All pages' text joined in page order."""
        return "\n".join(page.text for page in self.pages)


def cores() -> int:
    """CPUs this process may run on: how many images are worth decoding at once."""
    return max(1, len(os.sched_getaffinity(0)))


@dataclass(frozen=True)
class Prepared:
    """A request made ready by :meth:`OcrEngine.prepare`, with whatever the engine built from it."""

    request: OcrRequest
    upload: Upload | None = None
    started: float = field(default_factory=time.perf_counter)
    """When preparing began (``time.perf_counter``), so results time the whole read."""


@dataclass(frozen=True)
class RequestRecord:
    """One request an engine made, for metrics: which engine, how it ended, how long, how big."""

    engine: str
    outcome: str
    """``ok`` or the failure's classification (``transient``, ``rate_limit``, ...)."""
    seconds: float
    upload_bytes: int = 0


RequestObserver = Callable[[RequestRecord], None]


@dataclass(frozen=True)
class EngineSetup:
    """What an engine may need to be built: the config, and the parts a process shares."""

    config: Config
    api_key: ApiKey | KeyHolder | None = None
    workers: int = 4
    """Files the engine reads at once (ocr.space: requests in flight)."""
    env: Mapping[str, str] | None = None
    stop: threading.Event | None = None
    """Set at shutdown: waits and retries end early."""
    gate: Gate | None = None
    """Shared by the ocr.space engine objects of a process (before and after a reload)."""


class OcrEngine(abc.ABC):
    """Base class for engines, each listed in ``engines.REGISTRY``.

    ``observer``, when set, is called after every request the engine makes
    (each HTTP attempt for ocr.space, each recognition for Tesseract), from the
    worker thread that made it; it must be quick and must not raise.
    """

    name: ClassVar[str]
    needs_language_data: ClassVar[bool] = False
    """True when the engine reads languages from data installed here (checked at start)."""
    observer: RequestObserver | None = None
    page_workers: int = 1
    """Pages of one document read at once: what the engine can take in parallel."""
    stop: threading.Event | None = None
    """Set at shutdown (from :attr:`EngineSetup.stop`): pages of a document not started yet
    are left for the next start."""
    _page_pool: ThreadPoolExecutor | None = None
    _page_pool_lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    @abc.abstractmethod
    def create(cls, setup: EngineSetup) -> Self:
        """An engine built from ``setup``. Raises EngineUnavailableError when it cannot run here."""

    def _observe(self, outcome: str, seconds: float, upload_bytes: int = 0) -> None:
        if self.observer is not None:
            self.observer(RequestRecord(self.name, outcome, seconds, upload_bytes))

    @abc.abstractmethod
    def recognize(self, request: OcrRequest) -> OcrResult:
        """Read one image. Thread-safe. Raises :class:`ocrwatch.errors.OcrError` subclasses."""

    def prepare(self, request: OcrRequest) -> Prepared:
        """Do the work that needs the request's pixels, so the caller can let them go.

        ``finish(prepare(request))`` is ``recognize(request)``. An engine that
        reads pixels itself (Tesseract) keeps the request whole; one that
        uploads them (ocr.space) encodes the upload here and keeps only that,
        so a file waiting for a free request slot holds a megabyte, not the
        decoded page.
        """
        return Prepared(request)

    def preparing(self) -> contextlib.AbstractContextManager[object]:
        """Held while a file is decoded and prepared: how many may be at once.

        Engines whose threads mostly wait (ocr.space) have more threads than
        cores; limiting the CPU work to one file per core gets the first
        uploads of a burst ready soonest. Default: no limit.
        """
        return contextlib.nullcontext()

    def finish(self, prepared: Prepared) -> OcrResult:
        """Read a prepared image. Thread-safe. Raises like :meth:`recognize`."""
        return self.recognize(prepared.request)

    def reads_pdf(self) -> bool:
        """True when the engine can read a whole PDF itself (:meth:`recognize_pdf`)."""
        return False

    pdf_render_dpi: float = 96.0
    """The resolution of the pixels :meth:`recognize_pdf`'s pages are measured in."""

    def recognize_pdf(self, data: bytes, request: OcrRequest) -> OcrResult:
        """Read a whole PDF in one go: one result page per PDF page, in pixels of :attr:`pdf_render_dpi`.

        Only for engines whose :meth:`reads_pdf` is True. Raises like :meth:`recognize`.
        """
        raise NotImplementedError(f"the {self.name} engine does not read PDFs whole")

    def takes_original(self, original: bytes, info: ImageInfo) -> bool:
        """True when a whole file's own bytes would be read as they are, without its pixels.

        The pipeline then only checks that the file is complete and leaves the
        decode to :meth:`OcrRequest.pixels`, which may never be called.
        """
        return False

    def check_language(self, language: str, *, detect_orientation: bool = True) -> None:  # noqa: B027 - optional hook
        """Raise :class:`ocrwatch.errors.EngineUnavailableError` if ``language`` (and, when asked,
        orientation detection) cannot be read here."""

    def settings(self) -> dict[str, Any]:
        """Engine-level settings that shape results, recorded in sidecars (never secrets)."""
        return {}

    def page_pool(self) -> Executor:
        """The threads that read the pages of documents, :attr:`page_workers` of them, made on first use.

        One pool per engine, shared by every document, so that documents read
        at once share the engine's parallelism instead of multiplying it.
        """
        with self._page_pool_lock:
            if self._page_pool is None:
                self._page_pool = ThreadPoolExecutor(
                    max_workers=max(1, self.page_workers), thread_name_prefix=f"{self.name}-page"
                )
            return self._page_pool

    def close_pages(self) -> None:
        """Stop the page threads: pages not started are dropped. Called by :meth:`close`."""
        with self._page_pool_lock:
            pool, self._page_pool = self._page_pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        """Release sessions and native handles; subclasses call this too."""
        self.close_pages()
