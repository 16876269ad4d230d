"""What waiting files will cost in ocr.space requests: per file, per inbox in ``ocrwatch check``."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from ocrwatch import cli, once, quota
from ocrwatch.config import load_config
from ocrwatch.engines.base import OcrEngine
from ocrwatch.plan import make_plan
from tests.support.commands import KEY
from tests.support.fake_engine import FakeEngine
from tests.support.plans import plan_for, write_config_with_folders
from tests.support.render import page

REGIONS = {
    "date": {"x": "60%", "y": 0, "width": "40%", "height": "30%"},
    "total": {"x": 0, "y": "-30%", "width": "50%"},
}


def scans(folder: Path, *names: str) -> list[Path]:
    image, _ = page(["a page"], size=(300, 100))
    for name in names:
        image.save(folder / name)
    return [folder / name for name in names]


def test_an_image_costs_one_request(tmp_path: Path) -> None:
    """A whole image is one ocr.space request."""
    inbox = plan_for(tmp_path).inboxes[0]
    assert 1 == quota.file_requests(inbox.path / "a.png", inbox)


def test_a_crop_alone_still_costs_one_request(tmp_path: Path) -> None:
    """A crop without regions is read in one request."""
    inbox = plan_for(tmp_path, crop={"left": "40%"}).inboxes[0]
    assert 1 == quota.file_requests(inbox.path / "a.png", inbox)


def test_regions_cost_one_request_each(tmp_path: Path) -> None:
    """With regions, each region is a request and the whole image none."""
    inbox = plan_for(tmp_path, crop={"left": "10%"}, regions=REGIONS).inboxes[0]
    assert 2 == quota.file_requests(inbox.path / "a.png", inbox)


def test_the_local_engine_costs_no_request(tmp_path: Path) -> None:
    """Files of an inbox on the local engine cost no ocr.space request, regions or not."""
    inbox = plan_for(tmp_path, engine="tesseract", regions=REGIONS).inboxes[0]
    assert 0 == quota.file_requests(inbox.path / "a.png", inbox)


def test_a_count_cut_short_says_at_least() -> None:
    """A backlog counted only in part says so."""
    backlog = quota.Backlog(files=3, requests=3, partial=True)
    assert "at least 3 files waiting, about 3 ocr.space requests" == backlog.describe(waiting=True)


def test_check_counts_what_waits_and_its_requests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Done, touched-but-identical and failed-before files are not counted; new ones cost a request per region."""
    config = write_config_with_folders(
        tmp_path,
        {
            "engine": "ocrspace",
            "state_dir": str(tmp_path / "state"),
            "inboxes": [
                {"path": "scans", "regions": REGIONS},
                {"path": "local", "engine": "tesseract"},
            ],
        },
    )
    scans_folder, local_folder = tmp_path / "scans", tmp_path / "local"
    done, touched = scans(scans_folder, "done.png", "touched.png")
    (scans_folder / "broken.png").write_bytes(b"not an image")
    plan = make_plan(load_config(config), env={"OCRSPACE_API_KEY": KEY})

    def factory(name: str, workers: int, stop: threading.Event) -> OcrEngine:
        return FakeEngine()

    report = once.run_once(plan, once.collect(plan), engine_factory=factory)
    assert {"done.png": "done", "touched.png": "done", "broken.png": "failed"} == {
        outcome.path.name: outcome.status.value for outcome in report.outcomes
    }
    stat = touched.stat()
    os.utime(touched, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    scans(scans_folder, "new1.png", "new2.png", "new3.png")
    scans(local_folder, "new.png")
    monkeypatch.setenv("OCRSPACE_API_KEY", KEY)

    assert 0 == cli.main(["check", "-c", str(config)])

    lines = capsys.readouterr().out.splitlines()
    assert [
        "  waiting:   3 files, about 6 ocr.space requests",
        "  waiting:   1 file (local engine, no quota)",
        "waiting in all: 4 files, about 6 ocr.space requests (1 on the local engine, no quota)",
    ] == [line for line in lines if "waiting" in line]
    assert done.with_name("done.png.json").exists()
