"""The local engine timed on pages in a process of its own, for :mod:`benchmarks.accuracy`.

``python -m benchmarks.pagetimes WARM_UP_PAGE`` loads the engine, reads the
warm-up page (which loads the model) and says it is ready with one JSON line
naming the ``ocrwatch`` package it imported. Then it answers JSON commands,
one a line on stdin, each with one JSON line on stdout:

* ``{"read": [paths]}``: the pages read one after another on this thread,
  each page's text and seconds (decode plus recognize);
* ``{"pool": [paths]}``: the wall seconds of reading them all on the
  engine's page pool with :data:`POOL_WORKERS` pages in flight, as a
  document's pages are read (each pool thread reads the warm-up page first).

It ends when stdin closes. From ocrwatch it imports only names unchanged
since commit 44a1733 (the image decoder, the request, the engine and its page
pool), so the accuracy benchmark runs this one program against that commit's
package, put first on ``PYTHONPATH``, and against today's, and can ask each
for one page in turn. It does not score the text: the caller holds the ground
truth.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from concurrent.futures import wait
from pathlib import Path
from typing import Any

import ocrwatch
from ocrwatch import imaging
from ocrwatch.config import DEFAULT_MAX_PIXELS
from ocrwatch.engines.base import OcrRequest
from ocrwatch.engines.tesseract.engine import TesseractEngine

POOL_WORKERS = 2
"""Pages in flight on the page pool: the two-core scaling the local engine is held to."""


def _read(engine: TesseractEngine, path: Path) -> tuple[str, float]:
    started = time.perf_counter()
    decoded = imaging.decode(path.read_bytes(), max_pixels=DEFAULT_MAX_PIXELS)
    text = engine.recognize(OcrRequest(image=decoded.pixels, name=path.stem)).text
    return text, time.perf_counter() - started


def _warm(engine: TesseractEngine, path: Path, everyone: threading.Barrier) -> None:
    everyone.wait()
    _read(engine, path)


def _pool_seconds(engine: TesseractEngine, pages: list[Path], warm_up: Path) -> float:
    pool = engine.page_pool()
    # Every pool thread loads its model before the clock starts: each waits for the others.
    everyone = threading.Barrier(POOL_WORKERS)
    warming = [pool.submit(_warm, engine, warm_up, everyone) for _ in range(POOL_WORKERS)]
    for future in wait(warming).done:
        future.result()
    started = time.perf_counter()
    done = wait([pool.submit(_read, engine, path) for path in pages]).done
    seconds = time.perf_counter() - started
    for read in done:
        read.result()
    return seconds


def serve(warm_up: Path) -> None:
    """Answer commands from stdin until it closes."""
    engine = TesseractEngine()
    engine.page_workers = POOL_WORKERS
    try:
        _read(engine, warm_up)
        _answer({"package": str(Path(ocrwatch.__file__).parent)})
        for line in sys.stdin:
            command = json.loads(line)
            if "read" in command:
                pages = []
                for page in command["read"]:
                    text, seconds = _read(engine, Path(page))
                    pages.append({"name": Path(page).name, "text": text, "seconds": seconds})
                _answer({"pages": pages})
            else:
                paths = [Path(page) for page in command["pool"]]
                _answer({"seconds": _pool_seconds(engine, paths, warm_up)})
    finally:
        engine.close()


def _answer(answer: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    serve(Path(sys.argv[1]))
