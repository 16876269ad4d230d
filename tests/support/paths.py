"""Where things live: the repository, and the optional third-party reference material.

The default suite needs nothing outside the repository. ``SHARED`` (``../shared``
beside the clone, or ``$OCRWATCH_SHARED``) holds real scans, real PDFs and
recorded ocr.space answers that other people made; only the reference suite
(``tests/reference``, ``pytest -m reference``) and the benchmarks' optional
corpus read it. ``tests/unit/test_repository_stands_alone.py`` keeps it so.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("OCRWATCH_SHARED") or REPO.parent / "shared").resolve()
CORPUS = SHARED / "corpus"
DOCUMENTS = SHARED / "documents"
SAMPLES = SHARED / "ocrspace" / "samples"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp"}


def corpus_images() -> list[Path]:
    """Every corpus image that has ground truth, sorted by name (empty without the corpus)."""
    images = [
        path
        for path in CORPUS.glob("*/*")
        if path.suffix.lower() in IMAGE_SUFFIXES and path.with_suffix(".gt.txt").exists()
    ]
    return sorted(images, key=lambda path: path.name)


def ground_truth(image: Path) -> str:
    return image.with_suffix(".gt.txt").read_text(encoding="utf-8")
