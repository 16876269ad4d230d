"""Where the shared reference material lives, for tests and benchmarks."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("OCRWATCH_SHARED") or REPO.parent / "shared").resolve()
CORPUS = SHARED / "corpus"
SAMPLES = SHARED / "ocrspace" / "samples"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp"}


def corpus_images() -> list[Path]:
    """Every corpus image that has ground truth, sorted by name."""
    images = [
        path
        for path in CORPUS.glob("*/*")
        if path.suffix.lower() in IMAGE_SUFFIXES and path.with_suffix(".gt.txt").exists()
    ]
    return sorted(images, key=lambda path: path.name)


def ground_truth(image: Path) -> str:
    return image.with_suffix(".gt.txt").read_text(encoding="utf-8")
