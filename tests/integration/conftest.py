"""Fixtures the end-to-end tests share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cluster import Cluster
from tests.support.ocrspace_server import FakeOcrSpace
from tests.support.redis_server import RedisServer
from tests.support.rig import KEY


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    """An empty folder for a daemon to watch, ``tmp_path/inbox``."""
    folder = tmp_path / "inbox"
    folder.mkdir()
    return folder


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[FakeOcrSpace]:
    """The fake ocr.space for a module's cluster tests (text mode, the rig's key), answering
    after the module's ``SERVER_LATENCY`` seconds (0 when it names none). Modules with a
    ``server`` of their own use theirs."""
    latency = float(getattr(request.module, "SERVER_LATENCY", 0.0))
    with FakeOcrSpace(mode="text", api_key=KEY, latency=latency) as fake:
        yield fake


@pytest.fixture
def cluster(tmp_path: Path, redis_server: RedisServer, server: FakeOcrSpace) -> Iterator[Cluster]:
    """Hosts over one inbox (tests/support/cluster.py), two workers each, closed at the end."""
    hosts = Cluster(tmp_path, redis_server, server, workers=2)
    yield hosts
    hosts.close()
