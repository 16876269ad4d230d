"""An engine for in-process tests: canned text, chosen failures, every call recorded.

It is a real :class:`~ocrwatch.engines.base.OcrEngine`: the pipeline, ``once``
and the daemon's workers drive it exactly as they drive ocr.space or
Tesseract, so a per-file behaviour can be tested in milliseconds. Requests
are keyed by their ``name`` (the file's stem, or ``stem-region``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import ClassVar

from ocrwatch.engines.base import EngineSetup, OcrEngine, OcrRequest, OcrResult, Page, Word


class FakeEngine(OcrEngine):
    """Reads ``texts[name]`` (default: ``"text of NAME"``); raises ``failures[name]`` instead when set."""

    name: ClassVar[str] = "fake"

    def __init__(
        self,
        texts: Mapping[str, str] | None = None,
        failures: Mapping[str, BaseException] | None = None,
    ) -> None:
        self.texts = dict(texts or {})
        self.failures = dict(failures or {})
        self.calls: list[str] = []
        self.closed = False
        self._lock = threading.Lock()

    @classmethod
    def create(cls, setup: EngineSetup) -> FakeEngine:
        return cls()

    def recognize(self, request: OcrRequest) -> OcrResult:
        started = time.perf_counter()
        with self._lock:
            self.calls.append(request.name)
        failure = self.failures.get(request.name)
        if failure is not None:
            raise failure
        pixels = request.pixels()
        height, width = pixels.shape[:2]
        text = self.texts.get(request.name, f"text of {request.name}")
        words = tuple(
            Word(word, left=10.0 * index, top=0.0, width=8.0, height=min(10.0, height), line=0)
            for index, word in enumerate(text.split())
            if 10 * index < width
        )
        return OcrResult(
            pages=(Page(text, words),), engine=self.name, seconds=time.perf_counter() - started
        )

    def close(self) -> None:
        super().close()
        self.closed = True
