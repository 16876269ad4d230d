"""One file through the pipeline, in process, with a fake engine: every outcome and what it leaves."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ocrwatch import current
from ocrwatch.current import FileFacts
from ocrwatch.engines.base import OcrRequest, OcrResult, Prepared
from ocrwatch.errors import ImageError, RateLimitError, TransientError
from ocrwatch.imaging import ImageInfo
from ocrwatch.outcome import Status
from ocrwatch.pipeline import process_file
from ocrwatch.plan import InboxPlan
from ocrwatch.sidecar import SidecarPaths
from tests.support.fake_engine import FakeEngine
from tests.support.plans import plan_for
from tests.support.render import page


@pytest.fixture
def inbox(tmp_path: Path) -> InboxPlan:
    return plan_for(tmp_path).inboxes[0]


def scan(inbox: InboxPlan, name: str = "scan.png") -> Path:
    image, _ = page(["ocrwatch reads this"], size=(400, 120))
    path = inbox.path / name
    image.save(path)
    return path


def sidecars(path: Path) -> SidecarPaths:
    return SidecarPaths.of(path)


def test_a_file_becomes_its_text_and_record(inbox: InboxPlan) -> None:
    """The engine's text lands in the .txt with one final newline; the .json records it."""
    path = scan(inbox)
    outcome = process_file(path, inbox, FakeEngine({"scan": "Hello  \r\nworld"}))
    assert (Status.DONE, "Hello\nworld\n") == (outcome.status, sidecars(path).text.read_text())
    record = json.loads(sidecars(path).result.read_text())
    assert ("done", "fake", inbox.rules.fingerprint) == (
        record["status"],
        record["engine"]["name"],
        record["settings_fingerprint"],
    )


def test_a_current_file_is_skipped_without_calling_the_engine(inbox: InboxPlan) -> None:
    """The second pass finds the sidecar current and asks the engine nothing."""
    path = scan(inbox)
    engine = FakeEngine()
    process_file(path, inbox, engine)
    again = process_file(path, inbox, engine)
    assert (Status.SKIPPED, ["scan"]) == (again.status, engine.calls)


def test_force_reads_a_current_file_again(inbox: InboxPlan) -> None:
    """``force`` ignores a current sidecar."""
    path = scan(inbox)
    engine = FakeEngine()
    process_file(path, inbox, engine)
    assert Status.DONE == process_file(path, inbox, engine, force=True).status
    assert ["scan", "scan"] == engine.calls


def test_an_unexpected_error_fails_that_file_as_internal(inbox: InboxPlan) -> None:
    """A bug in an engine becomes a failed outcome with an .error.json, never an exception."""
    path = scan(inbox)
    outcome = process_file(path, inbox, FakeEngine(failures={"scan": ZeroDivisionError("boom")}))
    error = json.loads(sidecars(path).error.read_text())
    assert (Status.FAILED, "internal") == (outcome.status, outcome.classification)
    assert ("internal", "internal error: ZeroDivisionError: boom") == (
        error["error"]["classification"],
        error["error"]["message"],
    )
    assert not sidecars(path).result.exists()


def test_a_failed_file_is_not_tried_again_unless_asked(inbox: InboxPlan) -> None:
    """An unchanged failed file is a known failure; ``retry_failed`` reads it again."""
    path = scan(inbox)
    engine = FakeEngine(failures={"scan": ZeroDivisionError("boom")})
    process_file(path, inbox, engine)
    known = process_file(path, inbox, engine)
    engine.failures.clear()
    retried = process_file(path, inbox, engine, retry_failed=True)
    assert (Status.KNOWN_FAILURE, Status.DONE) == (known.status, retried.status)
    assert "failed before: internal error: ZeroDivisionError: boom" == known.message


def test_a_transient_failure_is_retried_until_the_caller_gives_up(inbox: InboxPlan) -> None:
    """Retryable and not given up: no error sidecar; given up: failed, with one."""
    path = scan(inbox)
    engine = FakeEngine(failures={"scan": TransientError("server busy")})
    first = process_file(path, inbox, engine, give_up=frozenset())
    assert (Status.RETRY, False) == (first.status, sidecars(path).error.exists())
    last = process_file(path, inbox, engine, give_up=frozenset({"transient"}), attempt=3)
    record = json.loads(sidecars(path).error.read_text())
    assert (Status.FAILED, "transient", 3) == (
        last.status,
        record["error"]["classification"],
        record["attempts"],
    )


def test_a_rate_limit_defers_the_file_without_sidecars(inbox: InboxPlan) -> None:
    """An API pause is not the file's fault: nothing is written."""
    path = scan(inbox)
    outcome = process_file(
        path, inbox, FakeEngine(failures={"scan": RateLimitError("slow down", retry_after=60)})
    )
    assert Status.DEFERRED == outcome.status
    assert [] == sorted(p.name for p in inbox.path.iterdir() if p != path)


def test_a_vanished_file_is_gone(inbox: InboxPlan) -> None:
    """A file deleted before it was read is reported gone, with no error sidecar."""
    path = scan(inbox)
    path.unlink()
    assert Status.GONE == process_file(path, inbox, FakeEngine()).status
    assert [] == list(inbox.path.iterdir())


def test_a_touched_but_identical_file_is_still_current(inbox: InboxPlan) -> None:
    """A new mtime alone makes the verdict hash the file; the same bytes stay current."""
    path = scan(inbox)
    process_file(path, inbox, FakeEngine())
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    hashed: list[bool] = []

    def content_hash() -> str:
        hashed.append(True)
        return current_sha(path)

    found = current.verdict(path, inbox, FileFacts.of_stat(os.stat(path), content_hash))
    assert ("done", [True]) == (found.status if found else None, hashed)


def test_a_chmod_gives_a_failed_file_another_chance(inbox: InboxPlan) -> None:
    """An error sidecar stops counting once the file's ctime changes."""
    path = scan(inbox)
    process_file(path, inbox, FakeEngine(failures={"scan": ZeroDivisionError("boom")}))
    before = current.verdict(path, inbox, FileFacts.of_stat(os.stat(path)))
    os.chmod(path, 0o600)
    after = current.verdict(path, inbox, FileFacts.of_stat(os.stat(path)))
    assert ("failed", None) == (before.status if before else None, after)


def test_other_settings_make_the_sidecar_stale(tmp_path: Path) -> None:
    """A sidecar written under other rules is not current."""
    plain = plan_for(tmp_path).inboxes[0]
    path = scan(plain)
    process_file(path, plain, FakeEngine())
    cropped = plan_for(tmp_path, crop={"right": "50%"}).inboxes[0]
    assert None is current.verdict(path, cropped, FileFacts.of_stat(os.stat(path)))


def current_sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


# the page, the unit of work


class TracingEngine(FakeEngine):
    """A fake engine that also records its preparing scope, each prepare and each finish, in order."""

    def __init__(self, *, takes_original: bool = False, unfit: str | None = None) -> None:
        super().__init__()
        self.events: list[str] = []
        self.requests: list[OcrRequest] = []
        self.takes = takes_original
        self.unfit = unfit

    @contextlib.contextmanager
    def _scope(self) -> Iterator[None]:
        self.events.append("preparing")
        try:
            yield
        finally:
            self.events.append("prepared")

    def preparing(self) -> contextlib.AbstractContextManager[object]:
        return self._scope()

    def takes_original(self, original: bytes, info: ImageInfo) -> bool:
        return self.takes

    def prepare(self, request: OcrRequest) -> Prepared:
        self.events.append(f"prepare {request.name}")
        self.requests.append(request)
        if request.name == self.unfit:
            raise ImageError(f"cannot fit {request.name}")
        return super().prepare(request)

    def finish(self, prepared: Prepared) -> OcrResult:
        self.events.append(f"finish {prepared.request.name}")
        return super().finish(prepared)


TWO_REGIONS = {
    "top": {"x": 0, "y": 0, "height": "50%"},
    "bottom": {"x": 0, "y": "50%"},
}


def test_every_region_of_a_page_is_prepared_before_any_is_read(tmp_path: Path) -> None:
    """A page's parts are all prepared inside the preparing scope, then read in order, each under its name."""
    inbox = plan_for(tmp_path, regions=TWO_REGIONS).inboxes[0]
    path = scan(inbox)
    engine = TracingEngine()
    outcome = process_file(path, inbox, engine)
    expected_events = [
        "preparing",
        "prepare scan-top",
        "prepare scan-bottom",
        "prepared",
        "finish scan-top",
        "finish scan-bottom",
    ]
    assert (Status.DONE, expected_events) == (outcome.status, engine.events)
    assert "[top]\ntext of scan-top\n\n[bottom]\ntext of scan-bottom\n" == (
        sidecars(path).text.read_text()
    )
    record = json.loads(sidecars(path).result.read_text())
    assert [
        ("top", {"x": 0, "y": 0, "width": 400, "height": 60}),
        ("bottom", {"x": 0, "y": 60, "width": 400, "height": 60}),
    ] == [(entry["name"], entry["box"]) for entry in record["pages"][0]["results"]]


def test_a_region_that_cannot_be_prepared_fails_the_page_before_any_is_read(
    tmp_path: Path,
) -> None:
    """When the second region cannot be fitted, the first is never read either: bad input, no request."""
    inbox = plan_for(tmp_path, regions=TWO_REGIONS).inboxes[0]
    path = scan(inbox)
    engine = TracingEngine(unfit="scan-bottom")
    outcome = process_file(path, inbox, engine)
    assert (Status.FAILED, "bad_input") == (outcome.status, outcome.classification)
    assert ["preparing", "prepare scan-top", "prepare scan-bottom", "prepared"] == engine.events
    assert ([], False) == (engine.calls, sidecars(path).result.exists())


def test_a_whole_page_an_engine_takes_as_it_is_reaches_it_undecoded(inbox: InboxPlan) -> None:
    """Without crop or regions, an engine that sends files as they are gets the file's bytes and pixels on demand."""
    path = scan(inbox)
    engine = TracingEngine(takes_original=True)
    process_file(path, inbox, engine)
    (request,) = engine.requests
    assert (True, path.read_bytes(), "PNG") == (
        callable(request.image),
        request.original,
        request.original_info.format if request.original_info else None,
    )


def test_a_cropped_page_reaches_the_engine_as_pixels_without_the_file(tmp_path: Path) -> None:
    """A crop cuts the decoded page: the engine gets the cut pixels and no file bytes to send."""
    inbox = plan_for(tmp_path, crop={"left": 100}).inboxes[0]
    path = scan(inbox)
    engine = TracingEngine(takes_original=True)
    process_file(path, inbox, engine)
    (request,) = engine.requests
    assert (False, (120, 300), None, None) == (
        callable(request.image),
        request.pixels().shape[:2],
        request.original,
        request.original_info,
    )
