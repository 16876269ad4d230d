"""Poppler's ``pdftotext``: a reader of the PDFs ocrwatch writes that shares no code with it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def pdftotext(path: Path, *options: str) -> str:
    """``pdftotext OPTIONS PATH -``'s output; skips (a failure under CI=true) without poppler-utils."""
    if shutil.which("pdftotext") is None:
        pytest.skip("needs pdftotext from Debian's poppler-utils package")
    return subprocess.run(
        ["pdftotext", *options, str(path), "-"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
