"""Fixtures the end-to-end tests share."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    """An empty folder for a daemon to watch, ``tmp_path/inbox``."""
    folder = tmp_path / "inbox"
    folder.mkdir()
    return folder
