"""What an operator sees and wires up: status, failed, retry, metrics, hooks, progress."""

from __future__ import annotations

import io
import json
import os
import pty
import re
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.support.daemon import DaemonProcess, Daemons
from tests.support.ocrspace_server import FakeOcrSpace
from tests.support.render import page
from tests.support.waiting import wait_until

KEY = "K8-OPERATOR-TEST-KEY-31"


def image_bytes(words: str) -> bytes:
    image, _ = page([words], size=(600, 140), font_size=40)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def ocrwatch(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ocrwatch", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
        check=False,
    )


@pytest.fixture
def fake() -> Iterator[FakeOcrSpace]:
    with FakeOcrSpace(mode="text", text="operator text", api_key=KEY) as server:
        yield server


@pytest.fixture
def setup(tmp_path: Path, fake: FakeOcrSpace) -> Iterator[Callable[..., DaemonProcess]]:
    daemons = Daemons(tmp_path, env={"OCRSPACE_API_KEY": KEY})
    (tmp_path / "inbox").mkdir()

    def make(inbox_options: dict[str, Any] | None = None, **top: Any) -> DaemonProcess:
        config = {
            "ocrspace": {"endpoint": fake.url, "attempts": 1, "timeout": 10},
            "rescan_interval": 0,
            "transient_attempts": 1,
            **top,
            "inboxes": [{"path": str(tmp_path / "inbox"), **(inbox_options or {})}],
        }
        return daemons.make(config)

    yield make
    daemons.close()


def test_status_failed_and_retry_against_a_running_daemon(
    setup: Callable[..., DaemonProcess], tmp_path: Path, fake: FakeOcrSpace
) -> None:
    """status shows per-inbox counts and the last error; failed lists the failure; retry gets it done."""
    inbox = tmp_path / "inbox"
    daemon = setup({"failed_dir": str(tmp_path / "failed")}).start()
    assert daemon.process is not None
    env = daemon.env
    (inbox / "good.png").write_bytes(image_bytes("good"))
    wait_until(lambda: (inbox / "good.png.json").exists())
    fake.faults = {"http503": 1.0}
    (inbox / "unlucky.png").write_bytes(image_bytes("unlucky"))
    wait_until(lambda: (tmp_path / "failed" / "unlucky.png.error.json").exists())

    def status() -> dict[str, Any]:
        result = ocrwatch("status", "--json", "-c", str(daemon.config_path), env=env, cwd=tmp_path)
        assert 0 == result.returncode, result.stderr
        return json.loads(result.stdout)

    reported = wait_until(lambda: (s := status())["status"]["inboxes"][0]["failed"] == 1 and s, 15)
    assert reported["running"] and reported["pid"] == daemon.process.pid
    (entry,) = reported["status"]["inboxes"]
    assert (1, 1, "native") == (entry["done"], entry["failed"], entry["watch"])
    assert "unlucky.png" in entry["last_error"] and "HTTP 503" in entry["last_error"]
    text = ocrwatch("status", "-c", str(daemon.config_path), env=env, cwd=tmp_path).stdout
    assert f"ocrwatch is running (pid {daemon.process.pid}" in text and "done 1, failed 1" in text

    listed = json.loads(
        ocrwatch("failed", "--json", "-c", str(daemon.config_path), env=env, cwd=tmp_path).stdout
    )
    assert [(str(tmp_path / "failed" / "unlucky.png"), "transient")] == [
        (item["image"], item["classification"]) for item in listed
    ]

    refused = ocrwatch("once", "-c", str(daemon.config_path), env=env, cwd=tmp_path)
    assert 2 == refused.returncode and "is already processing these inboxes" in refused.stderr

    fake.faults = {}
    retried = ocrwatch("retry", "-c", str(daemon.config_path), env=env, cwd=tmp_path)
    assert 0 == retried.returncode, retried.stderr
    assert "moved back to" in retried.stdout and "asked to pick them up now" in retried.stdout
    wait_until(lambda: (inbox / "unlucky.png.json").exists())
    assert (
        "nothing to retry"
        in ocrwatch("retry", "-c", str(daemon.config_path), env=env, cwd=tmp_path).stdout
    )
    assert 0 == daemon.stop()
    stopped = ocrwatch("status", "-c", str(daemon.config_path), env=env, cwd=tmp_path)
    assert 3 == stopped.returncode
    assert "ocrwatch is not running" in stopped.stdout


def test_status_shows_the_ocrspace_pause(
    setup: Callable[..., DaemonProcess], tmp_path: Path, fake: FakeOcrSpace
) -> None:
    """After the API's rate-limit answer, status says until when ocr.space is paused."""
    daemon = setup().start()
    fake.script = ["rate_limit_json"]
    (tmp_path / "inbox" / "paused.png").write_bytes(image_bytes("paused"))

    def paused() -> str | None:
        result = ocrwatch("status", "-c", str(daemon.config_path), env=daemon.env, cwd=tmp_path)
        return result.stdout if "ocr.space: paused until" in result.stdout else None

    text = wait_until(paused, 20)
    assert "10 requests per 600 s" in text
    assert 0 == daemon.stop()


def test_a_daily_budget_holds_the_files_beyond_it_even_across_a_restart(
    setup: Callable[..., DaemonProcess], tmp_path: Path, fake: FakeOcrSpace
) -> None:
    """Budget 3, five files: 3 requests, 2 files wait without error sidecars, status says why, a restart sends none."""
    inbox = tmp_path / "inbox"
    status_file = tmp_path / "state" / "ocrwatch" / "status.json"
    ocrspace = {"endpoint": fake.url, "attempts": 1, "timeout": 10, "max_requests_per_day": 3}
    daemon = setup(ocrspace=ocrspace).start()
    for index in range(5):
        (inbox / f"budget-{index}.png").write_bytes(image_bytes(f"budget {index}"))

    def holding() -> dict[str, Any] | None:
        """status.json from the daemon running now, once it shows the budget's pause and both files held."""
        assert daemon.process is not None
        try:
            snapshot = json.loads(status_file.read_text())
        except (OSError, ValueError):
            return None
        (entry,) = snapshot["inboxes"]
        held = entry["waiting"] + entry["in_progress"] == 2
        paused = snapshot["ocrspace"]["paused_until"] is not None
        return snapshot if snapshot["pid"] == daemon.process.pid and held and paused else None

    wait_until(holding, 20, message="the budget's pause in status")
    result = ocrwatch(
        "status", "--json", "-c", str(daemon.config_path), env=daemon.env, cwd=tmp_path
    )
    shown = json.loads(result.stdout)["status"]["ocrspace"]
    assert {
        "pause_reason": "the daily budget of 3 requests is used up",
        "requests_today": 3,
        "max_requests_per_day": 3,
    } == {key: shown[key] for key in ("pause_reason", "requests_today", "max_requests_per_day")}
    assert shown["paused_until"].endswith("T00:00:00.000Z")
    text = ocrwatch("status", "-c", str(daemon.config_path), env=daemon.env, cwd=tmp_path).stdout
    assert "ocr.space requests today (UTC): 3 of the daily budget of 3" in text
    assert 1 == daemon.log().count("WARNING ocr.space: the daily budget of 3 requests is used up")
    assert 0 == daemon.stop()

    daemon.start()
    wait_until(holding, 20, message="the restarted daemon holding")
    assert 0 == daemon.stop()
    final = json.loads(status_file.read_text())["ocrspace"]
    assert (3, 3) == (len(fake.requests), final["requests_today"])
    assert 3 == len([path for path in inbox.glob("*.png.json")])
    assert [] == sorted(inbox.glob("*.error.json"))


def test_metrics_endpoint_is_scraped(
    setup: Callable[..., DaemonProcess], tmp_path: Path, fake: FakeOcrSpace
) -> None:
    """The Prometheus endpoint counts files, requests, bytes, queue and pauses."""
    port = free_port()
    daemon = setup(metrics={"listen": f"127.0.0.1:{port}"}).start()
    for name in ("m1", "m2"):
        (tmp_path / "inbox" / f"{name}.png").write_bytes(image_bytes(name))
    wait_until(
        lambda: (
            (tmp_path / "inbox" / "m2.png.json").exists()
            and (tmp_path / "inbox" / "m1.png.json").exists()
        )
    )
    fake.script = ["rate_limit_json"]
    (tmp_path / "inbox" / "m3.png").write_bytes(image_bytes("m3"))

    def scrape() -> str:
        return requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text

    body = wait_until(
        lambda: (text := scrape()) and "ocrwatch_ratelimit_pauses_total 1.0" in text and text, 20
    )
    inbox = str(tmp_path / "inbox")
    assert f'ocrwatch_files_total{{inbox="{inbox}",outcome="done"}} 2.0' in body
    assert 'ocrwatch_ocr_request_seconds_count{engine="ocrspace",outcome="ok"} 2.0' in body
    assert 'ocrwatch_ocr_request_seconds_count{engine="ocrspace",outcome="rate_limit"} 1.0' in body
    assert re.search(r'ocrwatch_upload_bytes_count\{engine="ocrspace"\} 3\.0', body)
    assert "ocrwatch_ocrspace_paused 1.0" in body
    assert 'ocrwatch_queue_files{state="running"}' in body
    assert 'ocrwatch_info{version="' in body
    assert 0 == daemon.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/metrics", timeout=2)


class Receiver(BaseHTTPRequestHandler):
    """Collects JSON bodies POSTed by hooks."""

    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        length = int(self.headers.get("Content-Length", "0"))
        Receiver.received.append(json.loads(self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature from the base class
        return


def test_hooks_run_commands_and_post_without_blocking_ocr(
    setup: Callable[..., DaemonProcess], tmp_path: Path, fake: FakeOcrSpace
) -> None:
    """A command hook gets placeholders (and no API key); a URL hook gets the JSON; a slow hook blocks nothing."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    Receiver.received = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    record = tmp_path / "hook-calls.jsonl"
    gate = tmp_path / "release-slow-hook"
    writer = (
        "import json, os, sys; "
        f"open({str(record)!r}, 'a').write(json.dumps({{'argv': sys.argv[1:], "
        "'key': os.environ.get('OCRSPACE_API_KEY'), 'status': os.environ.get('OCRWATCH_STATUS')}) + '\\n')"
    )
    slow = f"import os, time\nwhile not os.path.exists({str(gate)!r}): time.sleep(0.05)"
    hooks = [
        {
            "events": ["done", "failed"],
            "command": [sys.executable, "-c", writer, "{status}", "{image}", "{text}", "{error}"],
        },
        {"events": "failed", "url": f"http://127.0.0.1:{server.server_port}/hook"},
        {"events": ["done"], "command": [sys.executable, "-c", slow], "timeout": 60},
    ]
    inbox = tmp_path / "inbox"
    daemon = setup({"hooks": hooks}, workers=1).start()
    try:
        (inbox / "h1.png").write_bytes(image_bytes("first"))
        (inbox / "bad.jpg").write_text("not an image")
        for index in range(4):
            (inbox / f"later{index}.png").write_bytes(image_bytes(f"later {index}"))
        # The slow hooks are all still waiting for the gate file, yet every file gets done.
        wait_until(lambda: all((inbox / f"later{i}.png.json").exists() for i in range(4)), 30)
        wait_until(lambda: record.exists() and len(record.read_text().splitlines()) == 6, 30)
        wait_until(lambda: len(Receiver.received) == 1, 30)
    finally:
        gate.write_text("go")
    calls = [json.loads(line) for line in record.read_text().splitlines()]
    by_image = {Path(call["argv"][1]).name: call for call in calls}
    assert ["done", str(inbox / "h1.png"), str(inbox / "h1.png.txt"), ""] == by_image["h1.png"][
        "argv"
    ]
    assert ["failed", str(inbox / "bad.jpg"), "", str(inbox / "bad.jpg.error.json")] == by_image[
        "bad.jpg"
    ]["argv"]
    assert all(call["key"] is None for call in calls)
    assert {"done", "failed"} == {call["status"] for call in calls}
    (posted,) = Receiver.received
    assert ("failed", str(inbox / "bad.jpg"), "bad_input") == (
        posted["status"],
        posted["image"],
        posted["classification"],
    )
    assert 0 == daemon.stop()
    server.shutdown()
    assert KEY not in daemon.log()


def run_in_pty(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str]:
    """Run ``argv`` with a pseudo-terminal as its stdout and stderr; return its status and output."""
    primary, secondary = pty.openpty()
    process = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=secondary,
        stderr=secondary,
        env=env,
        cwd=cwd,
        close_fds=True,
    )
    os.close(secondary)
    chunks = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([primary], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(primary, 65536)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        elif process.poll() is not None:
            break
    os.close(primary)
    return process.wait(30), b"".join(chunks).decode(errors="replace")


def test_once_shows_a_progress_bar_on_a_terminal_and_lines_on_a_pipe(tmp_path: Path) -> None:
    """Under a pty: a redrawn bar with rate and ETA, then the summary; on a pipe: one line per file, no bar."""
    inbox = tmp_path / "in"
    inbox.mkdir()
    for index in range(6):
        (inbox / f"p{index}.png").write_bytes(image_bytes(f"progress {index}"))
    (inbox / "broken.png").write_text("nope")
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"engine": "tesseract", "inboxes": [{"path": str(inbox)}]}))
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "120"}
    status, output = run_in_pty(
        [sys.executable, "-m", "ocrwatch", "once", "-c", str(config)], env, tmp_path
    )
    assert 1 == status
    assert re.search(r"\r\[#+\.*\] \d/7 +[\d.]+ files/s +ETA [\d:-]+", output), output
    assert "\r[########################] 7/7" in output
    assert f"failed {inbox / 'broken.png'}:" in output
    assert re.search(r"^done +6\r?$", output, re.M) and re.search(r"^failed +1\r?$", output, re.M)
    for name in ("p0", "p1", "p2", "p3", "p4", "p5"):
        (inbox / f"{name}.png.json").unlink()
    piped = subprocess.run(
        [sys.executable, "-m", "ocrwatch", "once", "-c", str(config)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert "\r" not in piped.stderr and "ETA" not in piped.stderr
    assert 6 == len(re.findall(r" INFO done .*p\d\.png: \d+ characters", piped.stderr))
    assert re.search(r"^done +6$", piped.stderr, re.M)
