"""What one file holds while its request is in flight: its upload, not its bytes or its pixels.

The pipeline reads an image whole and the ocr.space engine fits an upload
from it. Once the page is prepared, an inbox that makes no file from the
input itself has no use for the input's bytes: they must be gone before the
request is sent, or a burst of scans each waiting a second for its answer
holds every scan twice (its bytes and its upload). These tests look from
inside the request, in the fake server's thread, at every Python block
allocated since the file was picked up and still alive.
"""

from __future__ import annotations

import io
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ocrwatch.apikey import ApiKey
from ocrwatch.config import OcrSpaceConfig
from ocrwatch.engines.ocrspace.client import OcrSpaceEngine
from ocrwatch.outcome import Status
from ocrwatch.pipeline import process_file
from ocrwatch.plan import InboxPlan
from tests.support.commands import KEY
from tests.support.ocrspace_server import Answer, FakeOcrSpace
from tests.support.plans import plan_for
from tests.support.render import page

UPLOAD_BUDGET = 100_000
"""Far below the scans' size: every scan is fitted, so its upload is never the file itself."""
BYTES_HEADER = 64
"""More than a ``bytes`` object adds to the length of what it holds."""


def grainy_scan(seed: int) -> Image.Image:
    """A page of text with scanner grain, so that it encodes large."""
    image, _ = page(["ocrwatch lets the file go", "once its page is prepared"], size=(1200, 1600))
    pixels = np.asarray(image).astype(np.int16)
    grain = np.random.default_rng(seed).integers(-24, 25, size=(*pixels.shape[:2], 1))
    return Image.fromarray(np.clip(pixels + grain, 0, 255).astype(np.uint8))


def scan_file(folder: Path, name: str, seed: int) -> Path:
    """``grainy_scan(seed)`` saved as ``folder/name``: a JPEG at quality 95, or an uncompressed
    one-page TIFF (which is read as an image, from disk)."""
    buffer = io.BytesIO()
    if name.endswith(".jpg"):
        grainy_scan(seed).save(buffer, "JPEG", quality=95)
    else:
        grainy_scan(seed).save(buffer, "TIFF")
    path = folder / name
    path.write_bytes(buffer.getvalue())
    return path


def blocks_in_flight(plan: InboxPlan, path: Path) -> list[int]:
    """Sizes of the blocks at least as large as ``path`` that the process holds, as seen from
    inside its OCR request: allocated since the file was picked up, and still alive."""
    size = path.stat().st_size
    seen: list[list[int]] = []

    def look(upload: bytes) -> Answer | None:
        if tracemalloc.is_tracing():  # not during the warm-up
            snapshot = tracemalloc.take_snapshot()
            seen.append(sorted(trace.size for trace in snapshot.traces if trace.size >= size))
        return None  # answered as usual

    with FakeOcrSpace(mode="text", api_key=KEY, answer_for=look) as fake:
        config = OcrSpaceConfig(endpoint=(fake.url,), max_upload_bytes=UPLOAD_BUDGET)
        engine = OcrSpaceEngine(config, ApiKey(KEY, "test"))
        try:
            warm_up = path.with_name(f"warm-up{path.suffix}")
            warm_up.write_bytes(path.read_bytes())  # imports and caches, before tracing
            assert Status.DONE == process_file(warm_up, plan, engine).status
            tracemalloc.start()
            try:
                outcome = process_file(path, plan, engine)
            finally:
                tracemalloc.stop()
        finally:
            engine.close()
        (_, request) = fake.requests
    assert Status.DONE == outcome.status, outcome
    assert len(request.data) <= UPLOAD_BUDGET < size  # fitted: the upload is not the file
    (sizes,) = seen
    return sizes


@pytest.mark.parametrize("name", ["scan.jpg", "scan.tif"])
def test_an_inbox_of_text_sidecars_holds_neither_bytes_nor_pixels_during_the_request(
    tmp_path: Path, name: str
) -> None:
    """With the default formats, a fitted scan waits for its answer holding only its upload."""
    plan = plan_for(tmp_path).inboxes[0]
    path = scan_file(plan.path, name, seed=1)
    assert [] == blocks_in_flight(plan, path)


def test_an_inbox_writing_searchable_pdfs_keeps_the_bytes_it_will_embed(tmp_path: Path) -> None:
    """A searchable PDF is made from the JPEG's own bytes: they stay (the pixels do not), and go
    into the PDF."""
    plan = plan_for(tmp_path, formats=["txt", "json", "pdf"]).inboxes[0]
    path = scan_file(plan.path, "scan.jpg", seed=2)
    size = path.stat().st_size
    held = blocks_in_flight(plan, path)
    assert [True] == [size <= block < size + BYTES_HEADER for block in held], held
    assert path.read_bytes() in path.with_name("scan.jpg.ocr.pdf").read_bytes()
