"""The reference suite: ocrwatch against material other people made.

Real scans with ground truth (``corpus/``), real PDFs (``documents/``) and
recorded ocr.space answers (``ocrspace/samples/``) live outside the repository,
in ``../shared`` or wherever ``$OCRWATCH_SHARED`` points. Every test in this
folder is marked ``reference``: the default run deselects them, and
``pytest -m reference`` runs them. Without the material they fail, saying
where they looked: a reference run that reads nothing must not pass.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.paths import SHARED


@pytest.fixture(scope="session", autouse=True)
def shared_dir() -> Path:
    """The read-only folder of third-party reference material."""
    if not SHARED.is_dir():
        pytest.fail(f"reference material not found at {SHARED}; set OCRWATCH_SHARED to its folder")
    return SHARED
