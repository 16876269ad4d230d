"""``ocrwatch once`` in process, with a fake engine: one bad file never stops the others."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from ocrwatch import cli, engines, once
from ocrwatch.engines.base import OcrEngine
from ocrwatch.outcome import Status
from ocrwatch.plan import Plan
from tests.support.commands import KEY
from tests.support.fake_engine import FakeEngine
from tests.support.plans import plan_for, write_config_with_folders
from tests.support.render import page


def scans(folder: Path, *names: str) -> list[Path]:
    image, _ = page(["a page"], size=(300, 100))
    paths = []
    for name in names:
        image.save(folder / name)
        paths.append(folder / name)
    return paths


def run(plan: Plan, engine: FakeEngine, **options: object) -> once.Report:
    def factory(name: str, workers: int, stop: threading.Event) -> OcrEngine:
        return engine

    return once.run_once(plan, once.collect(plan), engine_factory=factory, **options)  # type: ignore[arg-type]


def test_an_unexpected_error_in_one_file_fails_it_and_the_run_goes_on(tmp_path: Path) -> None:
    """The file whose engine call raises is failed as internal, with an .error.json; the other is done."""
    plan = plan_for(tmp_path)
    good, bad = scans(plan.inboxes[0].path, "good.png", "bad.png")
    report = run(plan, FakeEngine(failures={"bad": KeyError("surprise")}))
    statuses = {
        outcome.path.name: (outcome.status, outcome.classification) for outcome in report.outcomes
    }
    assert {"good.png": (Status.DONE, None), "bad.png": (Status.FAILED, "internal")} == statuses
    assert (
        "internal" == json.loads(Path(f"{bad}.error.json").read_text())["error"]["classification"]
    )
    assert Path(f"{good}.txt").read_text() == "text of good\n"
    assert [bad] == [outcome.path for outcome in report.problems]


def test_the_command_exits_1_after_an_unexpected_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ocrwatch once`` finishes every file and exits 1 when one failed on a bug."""
    config = write_config_with_folders(
        tmp_path,
        {
            "engine": "ocrspace",
            "state_dir": str(tmp_path / "state"),
            "inboxes": [{"path": str(tmp_path / "in")}],
        },
    )
    scans(tmp_path / "in", "a.png", "b.png", "c.png")
    engine = FakeEngine(failures={"b": RuntimeError("bug")})
    monkeypatch.setattr(engines, "create_engine", lambda *args, **kwargs: engine)
    monkeypatch.setenv("OCRSPACE_API_KEY", KEY)
    assert 1 == cli.main(["once", "-q", "-c", str(config)])
    assert ["a.png.txt", "b.png.error.json", "c.png.txt"] == sorted(
        p.name
        for p in (tmp_path / "in").iterdir()
        if p.suffix in {".txt"} or p.name.endswith(".error.json")
    )
    assert engine.closed


def test_a_done_file_is_moved_with_its_sidecars(tmp_path: Path) -> None:
    """``after: move`` applies in ``once`` through the shared finishing path."""
    plan = plan_for(tmp_path, after="move")
    scans(plan.inboxes[0].path, "letter.png")
    run(plan, FakeEngine())
    done = plan.inboxes[0].path / "done"
    assert ["letter.png", "letter.png.json", "letter.png.txt"] == sorted(
        p.name for p in done.iterdir()
    )


def test_a_failed_file_goes_to_the_failed_folder(tmp_path: Path) -> None:
    """A failed file moves to ``failed_dir`` with its error sidecar, in ``once`` as in the daemon."""
    plan = plan_for(tmp_path, failed_dir=str(tmp_path / "failed"))
    scans(plan.inboxes[0].path, "bad.png")
    run(plan, FakeEngine(failures={"bad": ValueError("nope")}))
    assert ["bad.png", "bad.png.error.json"] == sorted(
        p.name for p in (tmp_path / "failed").iterdir()
    )


def test_a_finished_file_left_by_an_interrupted_move_is_moved(tmp_path: Path) -> None:
    """Sidecars current but the image still in the inbox (a crash before the move): the move completes, no OCR."""
    keep = plan_for(tmp_path)
    scans(keep.inboxes[0].path, "letter.png")
    run(keep, FakeEngine())
    moving = plan_for(tmp_path, after="move")
    engine = FakeEngine()
    report = run(moving, engine)
    assert ([Status.SKIPPED], []) == ([outcome.status for outcome in report.outcomes], engine.calls)
    assert (moving.inboxes[0].path / "done" / "letter.png").exists()
