"""Fixtures shared by every test: the shared corpus, waiting helpers."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.support.paths import SHARED, corpus_images


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The read-only folder of shared reference material (``../shared``)."""
    if not SHARED.is_dir():
        pytest.fail(f"shared reference folder {SHARED} is missing; set OCRWATCH_SHARED")
    return SHARED


@pytest.fixture
def corpus_copy(tmp_path: Path):
    """A function copying named corpus images (and their ground truth) into a temp inbox."""

    def copy(*names: str, folder: Path | None = None) -> list[Path]:
        target = folder or tmp_path / "inbox"
        target.mkdir(parents=True, exist_ok=True)
        index = {path.name: path for path in corpus_images()}
        copied = []
        for name in names:
            source = index[name]
            destination = target / name
            shutil.copyfile(source, destination)
            copied.append(destination)
        return copied

    return copy


@pytest.fixture(autouse=True)
def _no_ambient_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep the developer's own config, key and credentials out of every test."""
    for name in ("OCRWATCH_CONFIG", "OCRSPACE_API_KEY", "CREDENTIALS_DIRECTORY", "NOTIFY_SOCKET", "JOURNAL_STREAM"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
    os.environ.pop("STATE_DIRECTORY", None)
