"""Attacks on the daemon through ocr.space's failures: every fault alone, mixed, rate limits, a bad key.

The promise under attack: every image that lands in an inbox ends with
sidecars or with an error sidecar that says why, requests stay within their
bounds (transient failures retried at most ``ocrspace.attempts`` x
``transient_attempts`` times, bad input never retried), and the daemon keeps
running. The fake server injects each fault at a share of requests drawn from
a seed; whatever it drew, :func:`tests.support.verdicts.expected_outcome`
says from the faults a file actually got what must have become of it, so the
random draws are judged exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon import DaemonProcess
from tests.support.hostile import page_bytes
from tests.support.ocrspace_server import FakeOcrSpace
from tests.support.rig import KEY, assert_alive, daemon_config
from tests.support.verdicts import (
    PERMANENT_FAULTS,
    TRANSIENT_FAULTS,
    done_record,
    error_record,
    expected_outcome,
    finished,
    requests_by_name,
    verdict,
)
from tests.support.waiting import wait_until

ATTEMPTS = 2
TRANSIENT_ATTEMPTS = 2
"""Two daemon-level tries, so the daemon's own retry of a transient failure is attacked too."""
TRANSIENT_RETRY_SECONDS = 0.2
WORKERS = 4
FILES_PER_FAULT = 12
SHARE = 0.5
SLOW_SECONDS = 2.5
"""Longer than the client's read timeout (1.5 s), so a 'slow' answer is a timeout."""
SINGLE_FAULTS = sorted(TRANSIENT_FAULTS | PERMANENT_FAULTS | {"partial_exit2"})


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOcrSpace]:
    with FakeOcrSpace(
        mode="text",
        text="survived the storm",
        api_key=KEY,
        seed=20240601,
        slow_seconds=SLOW_SECONDS,
    ) as fake:
        yield fake


@pytest.fixture(scope="module")
def running(
    tmp_path_factory: pytest.TempPathFactory, server: FakeOcrSpace
) -> Iterator[tuple[DaemonProcess, Path]]:
    """One daemon for every fault: it must survive them all in a row."""
    work = tmp_path_factory.mktemp("faults")
    inbox = work / "inbox"
    inbox.mkdir()
    config = daemon_config(
        server.url,
        [{"path": str(inbox)}],
        state_dir=work / "state",
        attempts=ATTEMPTS,
        transient_attempts=TRANSIENT_ATTEMPTS,
        transient_retry_seconds=TRANSIENT_RETRY_SECONDS,
        workers=WORKERS,
    )
    daemon = DaemonProcess(work, config, env={"OCRSPACE_API_KEY": KEY})
    daemon.start()
    yield daemon, inbox
    daemon.close()


def drop(inbox: Path, names: list[str]) -> None:
    for name in names:
        (inbox / name).write_bytes(page_bytes(name))


def judge(server: FakeOcrSpace, inbox: Path, names: list[str]) -> dict[str, int]:
    """Check each file's outcome against the faults it got; return how many ended each way."""
    sent = requests_by_name(server)
    tally: dict[str, int] = {}
    for name in names:
        requests = sent.get(name, [])
        faults = [request.fault for request in requests]
        expected = expected_outcome(
            faults, attempts=ATTEMPTS, transient_attempts=TRANSIENT_ATTEMPTS
        )
        assert (expected.status, expected.classification) == verdict(inbox / name), (
            f"{name}: got {faults}"
        )
        if expected.status == "done":
            assert len(faults) == done_record(inbox / name)["requests"], name
        else:
            failure = error_record(inbox / name)
            assert len(faults) == failure["requests"], (
                f"{name}: error sidecar counts requests wrongly"
            )
            assert failure["error"]["message"], name
        key = expected.classification or expected.status
        tally[key] = tally.get(key, 0) + 1
    return tally


def still_works(daemon: DaemonProcess, server: FakeOcrSpace, inbox: Path, name: str) -> None:
    """The daemon is up, and a good file dropped now is read with one request."""
    assert_alive(daemon)
    (inbox / name).write_bytes(page_bytes(name))
    wait_until(lambda: finished(inbox / name), 20, message=f"{name} after the faults")
    done_record(inbox / name)
    assert 1 == server.count_by_filename()[name]


@pytest.mark.parametrize("fault", SINGLE_FAULTS)
def test_each_fault_alone_ends_every_file_correctly(
    fault: str, server: FakeOcrSpace, running: tuple[DaemonProcess, Path]
) -> None:
    """With one fault at half the requests, each file ends as its answers dictate, within the request bound."""
    daemon, inbox = running
    before = server.fault_counts[fault]
    server.faults = {fault: SHARE}
    names = [f"{fault}-{index:02d}.png" for index in range(FILES_PER_FAULT)]
    try:
        drop(inbox, names)
        wait_until(
            lambda: all(finished(inbox / name) for name in names),
            60,
            message=f"every {fault} file to end",
        )
        wait_until(lambda: server.in_flight == 0, 10, message="slow answers to be recorded")
    finally:
        server.faults = {}
    assert server.fault_counts[fault] > before, "the fault was never injected"
    tally = judge(server, inbox, names)
    if fault in PERMANENT_FAULTS:
        assert tally.get("bad_input", 0) >= 1
    still_works(daemon, server, inbox, f"after-{fault}.png")


@pytest.mark.slow
def test_mixed_faults_over_many_files_and_nothing_is_resent_after_restart(
    server: FakeOcrSpace, running: tuple[DaemonProcess, Path]
) -> None:
    """Every fault at once (85% of requests) over 80 files: each ends correctly; a restart resends nothing."""
    daemon, inbox = running
    mix = sorted(TRANSIENT_FAULTS | PERMANENT_FAULTS | {"partial_exit2"})
    names = [f"mixed-{index:03d}.png" for index in range(80)]
    server.faults = {fault: 0.85 / len(mix) for fault in mix}
    try:
        drop(inbox, names)
        wait_until(
            lambda: all(finished(inbox / name) for name in names),
            120,
            message="every mixed file to end",
        )
        wait_until(lambda: server.in_flight == 0, 10, message="slow answers to be recorded")
    finally:
        server.faults = {}
    tally = judge(server, inbox, names)
    assert {"done", "bad_input", "transient"} <= set(tally), tally
    still_works(daemon, server, inbox, "after-mixed.png")
    sent = len(server.requests)
    assert 0 == daemon.stop()
    daemon.start()
    probe = inbox / "after-restart.png"
    probe.write_bytes(page_bytes("after restart"))
    wait_until(lambda: finished(probe), 20, message="a file after the restart")
    assert sent + 1 == len(server.requests), "a restart sent finished or failed files again"


def test_rate_limit_pauses_every_request_for_the_named_window(tmp_path: Path) -> None:
    """A 3-per-2-s limit (plain-text 403): nobody sends during the 2 s pause it names; every file is done."""
    names = [f"limited-{index:02d}.png" for index in range(12)]
    with FakeOcrSpace(mode="text", api_key=KEY, rate_limit=(3, 2), rate_limit_text=True) as server:
        inbox = tmp_path / "inbox"
        inbox.mkdir()
        config = daemon_config(
            server.url,
            [{"path": str(inbox)}],
            state_dir=tmp_path / "state",
            workers=WORKERS,
            transient_attempts=TRANSIENT_ATTEMPTS,
            transient_retry_seconds=TRANSIENT_RETRY_SECONDS,
        )
        daemon = DaemonProcess(tmp_path, config, env={"OCRSPACE_API_KEY": KEY})
        try:
            daemon.start()
            drop(inbox, names)
            wait_until(
                lambda: all(finished(inbox / name) for name in names),
                60,
                message="every limited file",
            )
            assert_alive(daemon)
            assert 0 == daemon.stop()
        finally:
            daemon.close()
        requests = sorted(server.requests, key=lambda request: request.received_at)
    refused = [request for request in requests if request.status == 403]
    assert refused, "the server's limit never bit"
    for name in names:
        assert ("done", None) == verdict(inbox / name)
    accepted: list[str] = []
    for request in requests:
        if request.status == 200:
            assert request.filename is not None, "an accepted upload without a file"
            accepted.append(request.filename)
    assert sorted(names) == sorted(accepted), "each file must succeed exactly once"
    # Requests already past the gate when the 403 arrived may land just after it.
    slack = 0.6
    for limit in refused:
        during = [
            r.filename
            for r in requests
            if limit.received_at + slack < r.received_at < limit.received_at + 1.8
        ]
        assert [] == during, f"sent during the 2 s pause after {limit.filename}'s 403"
    assert len(refused) <= len(names), f"{len(refused)} refusals: requests hammered the limit"
    assert "ocr.space paused until" in daemon.log()


def test_rate_limit_pause_holds_every_file_and_survives_a_restart(tmp_path: Path) -> None:
    """ocr.space's '10 per 600 s' answer: no other request goes, no file fails, and a restart keeps the pause."""
    names = [f"paused-{index}.png" for index in range(4)]
    with FakeOcrSpace(mode="text", api_key=KEY, script=["rate_limit_json"]) as server:
        inbox = tmp_path / "inbox"
        inbox.mkdir()
        # One worker, so that no other request is already on its way when the 403 comes.
        config = daemon_config(
            server.url, [{"path": str(inbox)}], state_dir=tmp_path / "state", workers=1
        )
        daemon = DaemonProcess(tmp_path, config, env={"OCRSPACE_API_KEY": KEY})
        try:
            daemon.start()
            drop(inbox, names)
            wait_until(lambda: "ocr.space paused until" in daemon.log(), 20, message="the pause")
            assert 0 == daemon.stop()
            daemon.start()
            wait_until(
                lambda: "as it asked before the restart" in daemon.log(),
                10,
                message="the pause restored",
            )
            status = tmp_path / "state" / "status.json"
            started = status.stat().st_mtime_ns if status.exists() else 0
            wait_until(
                lambda: status.exists() and status.stat().st_mtime_ns > started,
                15,
                message="a status.json from the restarted daemon",
            )
            assert_alive(daemon)
            assert 0 == daemon.stop()
        finally:
            daemon.close()
        assert [403] == [request.status for request in server.requests], (
            "a request went out during the pause"
        )
    assert [] == sorted(p.name for p in inbox.iterdir() if p.name.endswith((".json", ".txt")))


def test_a_pause_is_logged_once(tmp_path: Path) -> None:
    """One rate-limit answer gives one 'paused until' line, however long the pause lasts."""
    with FakeOcrSpace(mode="text", api_key=KEY, script=["rate_limit_json"]) as server:
        inbox = tmp_path / "inbox"
        inbox.mkdir()
        config = daemon_config(
            server.url, [{"path": str(inbox)}], state_dir=tmp_path / "state", workers=1
        )
        daemon = DaemonProcess(tmp_path, config, env={"OCRSPACE_API_KEY": KEY})
        try:
            daemon.start()
            drop(inbox, ["paused.png"])
            wait_until(lambda: "ocr.space paused until" in daemon.log(), 20, message="the pause")
            status = tmp_path / "state" / "status.json"
            wait_until(status.exists, 15, message="the first status.json")
            first = status.stat().st_mtime_ns
            # status.json is rewritten every 5 s: by then the main loop has gone round several times.
            wait_until(
                lambda: status.stat().st_mtime_ns > first, 15, message="the next status.json"
            )
            assert 0 == daemon.stop()
        finally:
            daemon.close()
    assert 1 == daemon.log().count("WARNING ocr.space paused until")


@pytest.mark.parametrize("style", ["legacy", "e555"])
def test_invalid_key_stops_ocr_loudly_without_failing_files(style: str, tmp_path: Path) -> None:
    """A rejected key: a CRITICAL line, about one request per worker, no file failed one by one."""
    names = [f"locked-{index:02d}.png" for index in range(12)]
    with FakeOcrSpace(mode="text", api_key=KEY, key_error=style) as server:  # type: ignore[arg-type]
        inbox = tmp_path / "inbox"
        inbox.mkdir()
        config = daemon_config(
            server.url, [{"path": str(inbox)}], state_dir=tmp_path / "state", workers=WORKERS
        )
        daemon = DaemonProcess(tmp_path, config, env={"OCRSPACE_API_KEY": "K8-WRONG-0000"})
        try:
            daemon.start()
            drop(inbox, names)
            wait_until(
                lambda: "CRITICAL" in daemon.log(), 20, message="a CRITICAL line about the key"
            )
            wait_until(
                lambda: any("API key rejected" in m.get("STATUS", "") for m in daemon.notify.all()),
                15,
                message="the status line to say OCR is stopped",
            )
            assert_alive(daemon)
            critical = [line for line in daemon.log().splitlines() if "CRITICAL" in line]
            assert any("rejected the API key" in line for line in critical), critical
            assert 1 <= len(server.requests) <= WORKERS, (
                f"{len(server.requests)} requests with a rejected key"
            )
            assert [] == sorted(
                p.name for p in inbox.iterdir() if p.name.endswith((".json", ".txt"))
            )
            assert 0 == daemon.stop()
        finally:
            daemon.close()
        assert [] == sorted(p.name for p in inbox.iterdir() if p.name.endswith((".json", ".txt")))


def test_fixed_key_and_reload_resume_every_file(tmp_path: Path) -> None:
    """After a rejected key, writing the right key and SIGHUP lets every waiting file through once."""
    names = [f"resume-{index:02d}.png" for index in range(8)]
    key_file = tmp_path / "ocrspace.key"
    key_file.write_text("K8-WRONG-0000\n")
    key_file.chmod(0o600)
    with FakeOcrSpace(mode="text", api_key=KEY) as server:
        inbox = tmp_path / "inbox"
        inbox.mkdir()
        config = daemon_config(
            server.url,
            [{"path": str(inbox)}],
            state_dir=tmp_path / "state",
            workers=WORKERS,
            ocrspace={"api_key_file": str(key_file)},
        )
        daemon = DaemonProcess(tmp_path, config)
        try:
            daemon.start()
            drop(inbox, names)
            wait_until(lambda: "CRITICAL" in daemon.log(), 20, message="the key to be rejected")
            key_file.write_text(KEY + "\n")
            daemon.reload()
            wait_until(
                lambda: all(finished(inbox / name) for name in names),
                8,
                message="every file after the fix",
            )
            assert_alive(daemon)
            assert 0 == daemon.stop()
        finally:
            daemon.close()
        good: list[str] = []
        for r in server.requests:
            if r.headers.get("apikey") == KEY:
                assert r.filename is not None, "an upload without a file"
                good.append(r.filename)
    assert sorted(names) == sorted(good)
    for name in names:
        assert ("done", None) == verdict(inbox / name)


def test_transient_failure_is_retried_by_the_daemon_promptly(tmp_path: Path) -> None:
    """A file whose first daemon attempt hits a 503 is tried again after transient_retry_seconds and is done."""
    with FakeOcrSpace(mode="text", api_key=KEY, script=["http503"]) as server:
        inbox = tmp_path / "inbox"
        inbox.mkdir()
        config = daemon_config(
            server.url,
            [{"path": str(inbox)}],
            state_dir=tmp_path / "state",
            attempts=1,
            transient_attempts=2,
            transient_retry_seconds=1,
        )
        daemon = DaemonProcess(tmp_path, config, env={"OCRSPACE_API_KEY": KEY})
        try:
            daemon.start()
            (inbox / "flaky.png").write_bytes(page_bytes("flaky"))
            wait_until(
                lambda: "attempt 1 of 2" in daemon.log(),
                20,
                message="the first daemon attempt to fail",
            )
            wait_until(lambda: finished(inbox / "flaky.png"), 10, message="the retry")
            assert ("done", None) == verdict(inbox / "flaky.png")
            assert [503, 200] == [request.status for request in server.requests]
        finally:
            daemon.close()
