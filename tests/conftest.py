"""Fixtures and policies for every test.

- Tests under ``tests/reference`` are marked ``reference`` (deselected by
  default; ``pytest -m reference`` runs them).
- Outside CI a test whose prerequisite this machine lacks skips, naming it
  ("needs root", "needs the Debian package systemd"). In CI (``CI`` set to
  true or 1), where ``.ci/run`` installs every prerequisite, such a skip is a
  failure: a green CI run means every test really ran.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from pathlib import Path

import pytest

from tests.support import redis_server as redis_support
from tests.support.redis_server import RedisServer

REFERENCE = Path(__file__).resolve().parent / "reference"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(REFERENCE):
            item.add_marker(pytest.mark.reference)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.skipped and in_ci() and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where every prerequisite is installed: {reason}"
    return report


@pytest.fixture(autouse=True)
def _no_ambient_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep the developer's own config, key and credentials out of every test."""
    for name in (
        "OCRWATCH_CONFIG",
        "OCRSPACE_API_KEY",
        "CREDENTIALS_DIRECTORY",
        "NOTIFY_SOCKET",
        "JOURNAL_STREAM",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
    os.environ.pop("STATE_DIRECTORY", None)


@pytest.fixture
def redis_server(tmp_path: Path) -> Generator[RedisServer, None, None]:
    """A real, empty ``redis-server`` on its own port (skips without the Debian package)."""
    if not redis_support.available():
        pytest.skip(redis_support.MISSING)
    with redis_support.RedisServer(tmp_path / "redis") as server:
        yield server
