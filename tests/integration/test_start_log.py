"""The daemon's start log says what waits in each inbox and what it will cost, before it is sent."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ocrwatch import once
from ocrwatch.config import load_config
from ocrwatch.engines.base import OcrEngine
from ocrwatch.plan import make_plan
from tests.support.daemon import DaemonProcess
from tests.support.fake_engine import FakeEngine
from tests.support.ocrspace_server import FakeOcrSpace
from tests.support.render import page
from tests.support.verdicts import finished
from tests.support.waiting import wait_until

KEY = "TEST-KEY"
REGIONS = {
    "date": {"x": "60%", "y": 0, "width": "40%", "height": "30%"},
    "total": {"x": 0, "y": "-30%", "width": "50%"},
}


@pytest.fixture
def fake() -> Iterator[FakeOcrSpace]:
    with FakeOcrSpace(mode="text", text="hello", api_key=KEY) as server:
        yield server


def test_the_start_log_counts_waiting_files_and_their_requests(
    tmp_path: Path, fake: FakeOcrSpace
) -> None:
    """Done and failed-before files are not counted; each new file costs one request per region, as sent."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    image, _ = page(["a page"], size=(400, 160))
    for name in ("done.png", "new1.png", "new2.png", "new3.png"):
        image.save(inbox / name)
    (inbox / "broken.png").write_bytes(b"not an image")
    config = {
        "engine": "ocrspace",
        "ocrspace": {"endpoint": fake.url, "attempts": 1, "timeout": 10},
        "rescan_interval": 0,
        "inboxes": [{"path": str(inbox), "regions": REGIONS}],
    }
    daemon = DaemonProcess(tmp_path, config, env={"OCRSPACE_API_KEY": KEY})
    try:
        plan = make_plan(load_config(daemon.config_path), env={"OCRSPACE_API_KEY": KEY})
        earlier = [job for job in once.collect(plan) if job.path.name in {"done.png", "broken.png"}]

        def factory(name: str, workers: int, stop: threading.Event) -> OcrEngine:
            return FakeEngine()

        once.run_once(plan, earlier, engine_factory=factory)
        daemon.start()
        log = daemon.log()
        assert [f"inbox {inbox}: 3 files waiting, about 6 ocr.space requests"] == [
            line.partition(" INFO ")[2] for line in log.splitlines() if " INFO inbox " in line
        ]
        new = [inbox / f"new{index}.png" for index in (1, 2, 3)]
        wait_until(lambda: all(finished(path) for path in new), message="sidecars of new files")
        assert 0 == daemon.stop()
        assert 6 == len(fake.requests)
    finally:
        daemon.close()
