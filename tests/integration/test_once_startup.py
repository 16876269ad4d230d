"""What ``ocrwatch once`` loads: the libraries the chosen engine and the file need, no others.

Each test runs the real command in a fresh interpreter with Python's import
profiler on (``PYTHONPROFILEIMPORTTIME``), which names on stderr every
module the process imported, and reads the set back.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.support import pdfs
from tests.support.commands import KEY, ocrwatch, record, save, write_config
from tests.support.ocrspace_server import FakeOcrSpace
from tests.support.render import page

NOT_FOR_AN_IMAGE_ON_OCRSPACE = frozenset(
    {
        "tesserocr",  # the local engine
        "pypdfium2",  # PDF pages
        "pikepdf",  # searchable PDF output
        "fontTools",  # its text layer's font
        "lxml",  # ALTO and hOCR output
        "watchdog",  # the daemon's watcher
        "prometheus_client",  # the daemon's metrics
        "cv2",  # decoding and fitting: a file that goes as it is needs neither
        "numpy",
    }
)
"""Top-level packages an image read by ocr.space into the default sidecars never needs."""
IMPORTED = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|\s*([\w.]+)\s*$", re.MULTILINE)


def imported_packages(stderr: str) -> set[str]:
    """The top-level packages the import profiler's lines in ``stderr`` name."""
    return {name.split(".")[0] for name in IMPORTED.findall(stderr)}


def once_with_import_profile(tmp_path: Path, target: Path, url: str) -> set[str]:
    """``ocrwatch once`` over ``target`` with the ocr.space engine at ``url``; what it imported."""
    config = write_config(
        tmp_path,
        {
            "state_dir": str(tmp_path / "state"),
            "ocrspace": {"endpoint": url},
            "inboxes": [{"path": "in"}],
        },
    )
    result = ocrwatch(
        "once",
        "-c",
        str(config),
        str(target),
        env={"OCRSPACE_API_KEY": KEY, "PYTHONPROFILEIMPORTTIME": "1"},
    )
    assert 0 == result.returncode, result.stderr[-3000:]
    return imported_packages(result.stderr)


def test_an_image_read_by_ocrspace_loads_no_document_local_engine_or_daemon_library(
    tmp_path: Path,
) -> None:
    """A JPEG sent to ocr.space loads neither Tesseract, nor the PDF, output or daemon libraries."""
    image, _ = page(["Start-up costs only what is used"])
    path = save(image, tmp_path / "in" / "page.jpg", quality=90)
    with FakeOcrSpace(mode="text", api_key=KEY) as fake:
        imported = once_with_import_profile(tmp_path, path, fake.url)
        requests = len(fake.requests)

    assert (1, "ocrspace") == (requests, record(path)["engine"]["name"])
    assert {"ocrwatch", "requests", "PIL"} <= imported
    assert set() == imported & NOT_FOR_AN_IMAGE_ON_OCRSPACE


def test_a_pdf_read_by_ocrspace_loads_pdfium_when_it_needs_it(tmp_path: Path) -> None:
    """The PDF reader is loaded late, not left out: a PDF's text is read with PDFium."""
    path = tmp_path / "in" / "letter.pdf"
    path.parent.mkdir()
    path.write_bytes(pdfs.born_digital(["Dear reader", "PDFium loads for this file"]))
    with FakeOcrSpace(mode="text", api_key=KEY) as fake:
        imported = once_with_import_profile(tmp_path, path, fake.url)

    assert "PDFium loads for this file" in record(path)["text"]
    assert "pypdfium2" in imported
