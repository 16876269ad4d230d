"""The operator's side of distributed mode: status, check, retry and once against a real Redis.

Hosts are real ``ocrwatch run`` processes (tests/support/cluster.py); the
commands run as a user would run them, in their own process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.cluster import INBOX_ID, Cluster
from tests.support.commands import ocrwatch, write_config
from tests.support.daemon import DaemonProcess
from tests.support.hostile import page_bytes
from tests.support.ocrspace_server import FakeOcrSpace
from tests.support.redis_server import RedisServer
from tests.support.rig import KEY
from tests.support.verdicts import done_record, sidecar
from tests.support.waiting import wait_until

ENV = {"OCRSPACE_API_KEY": KEY}
STREAM = f"test:{{{INBOX_ID}}}:jobs"
WAIT = 30.0
RIGHT_PASSWORD = "Redis-Right-Pass-7731"
WRONG_PASSWORD = "Redis-Wrong-Pass-5519"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return ocrwatch(*args, env=ENV)


def host_record(cluster: Cluster, name: str) -> dict[str, Any]:
    value = cluster.redis.client().get(f"test:host:{name}")
    return json.loads(value) if value else {}


def drifted_host(cluster: Cluster, name: str, **queue: Any) -> DaemonProcess:
    """A host whose inbox ``scans`` crops where the others do not: its settings differ."""
    config = cluster.config(name, **queue)
    config["inboxes"][0]["crop"] = {"left": 10}
    work = cluster.root / name
    work.mkdir(parents=True, exist_ok=True)
    daemon = DaemonProcess(work, config, env=ENV)
    cluster.hosts.append(daemon)
    return daemon.start()


def test_status_shows_the_hosts_the_scanner_the_queue_and_a_drift(cluster: Cluster) -> None:
    """Status names the lease holder, each host, the queue with its holders, and who drifted."""
    redis = cluster.redis.client()
    scanner = cluster.host("a", roles=["scan"])
    wait_until(
        lambda: redis.get(f"test:{{{INBOX_ID}}}:settings") is not None,
        WAIT,
        message="the scanner publishes its settings",
    )
    drifted = drifted_host(cluster, "b", roles=["work"])
    wait_until(
        lambda: [INBOX_ID] == host_record(cluster, "b").get("drift"),
        WAIT,
        message="host b reports its drift",
    )
    cluster.drop(["one.png", "two.png", "three.png"])
    wait_until(lambda: 3 == redis.xlen(STREAM), WAIT, message="three jobs queued")
    # A host that took an entry and vanished: the entry stays held by it (nobody else works).
    redis.xreadgroup("workers", "ghost", {STREAM: ">"}, count=1)

    shown = run("status", "-c", str(scanner.config_path))

    assert 0 == shown.returncode, shown.stderr
    text = shown.stdout
    assert "ocrwatch is running" in text
    assert f"inbox {INBOX_ID} ({cluster.inbox})" in text
    assert "scanner: a" in text
    assert "queue: 3 entries, 2 waiting, 1 held (ghost 1)" in text
    assert "held by ghost, idle" in text
    assert "hosts (2):" in text
    assert "a: roles scan;" in text
    assert "b: roles work;" in text and f"CONFIG DRIFT in {INBOX_ID}" in text
    assert "this config agrees with the scanner's" in text

    as_json = run("status", "--json", "-c", str(scanner.config_path))
    view = json.loads(as_json.stdout)["cluster"]
    inbox = view["inboxes"][0]
    assert {"id": INBOX_ID, "scanner": "a", "entries": 3, "waiting": 2, "held": 1} == {
        key: inbox[key] for key in ("id", "scanner", "entries", "waiting", "held")
    }
    assert {"ghost": 1} == inbox["holders"]
    assert ["ghost"] == [entry["host"] for entry in inbox["held_entries"]]
    assert inbox["held_entries"][0]["path"] in {"one.png", "two.png", "three.png"}
    assert {"a": [], "b": [INBOX_ID]} == {h["host"]: h["drift"] for h in view["hosts"]}
    assert {"a": ["scan"], "b": ["work"]} == {h["host"]: h["roles"] for h in view["hosts"]}
    assert [INBOX_ID] == next(h for h in view["hosts"] if h["host"] == "a")["scanning"]
    assert False is inbox["settings"]["drift"]

    # Seen from the drifted host's config, the drift is this config's own.
    from_b = json.loads(run("status", "--json", "-c", str(drifted.config_path)).stdout)
    settings = from_b["cluster"]["inboxes"][0]["settings"]
    assert True is settings["drift"]
    assert settings["published"] != settings["own"]
    assert (
        "CONFIG DRIFT: this config's settings"
        in run("status", "-c", str(drifted.config_path)).stdout
    )


def test_status_without_a_daemon_here_still_shows_the_cluster(cluster: Cluster) -> None:
    """No daemon on this host: status exits 3, and the cluster section is there all the same."""
    cluster.host("a")
    idle = cluster.host("idle", start=False)

    shown = run("status", "-c", str(idle.config_path))

    assert 3 == shown.returncode
    assert "ocrwatch is not running" in shown.stdout
    assert "scanner: a" in shown.stdout
    assert "hosts (1):" in shown.stdout


def test_status_says_why_redis_cannot_be_reached(cluster: Cluster) -> None:
    """Redis down: status still prints the local part, and the cluster section says why."""
    idle = cluster.host("idle", start=False)
    cluster.redis.stop()

    shown = run("status", "-c", str(idle.config_path))
    as_json = json.loads(run("status", "--json", "-c", str(idle.config_path)).stdout)

    assert 3 == shown.returncode
    assert "unreachable: cannot reach Redis" in shown.stdout
    assert as_json["cluster"]["unreachable"].startswith("cannot reach Redis")


def test_check_reports_the_redis_version_its_eviction_policy_and_the_hosts(
    cluster: Cluster,
) -> None:
    """check connects: Redis's version, noeviction accepted, another policy warned about."""
    cluster.host("a")
    config = cluster.host("idle", start=False).config_path

    checked = run("check", "-c", str(config))
    cluster.redis.client().config_set("maxmemory-policy", "allkeys-lru")
    evicting = run("check", "-c", str(config))

    assert 0 == checked.returncode, checked.stderr
    assert "Redis:     reachable, version 7." in checked.stdout
    assert "eviction:  maxmemory-policy noeviction" in checked.stdout
    assert "hosts:     1 alive" in checked.stdout
    assert "a: roles scan, work;" in checked.stdout
    assert 0 == evicting.returncode, evicting.stderr
    assert "warning: maxmemory-policy is allkeys-lru" in evicting.stdout
    assert "evicted queue entry is lost work" in evicting.stdout


def test_check_fails_when_redis_cannot_be_reached(cluster: Cluster) -> None:
    """A stopped Redis: check exits 2 and says so, naming the config's queue.url."""
    config = cluster.host("idle", start=False).config_path
    cluster.redis.stop()

    checked = run("check", "-c", str(config))

    assert 2 == checked.returncode
    assert "OK:" not in checked.stdout
    assert "at 'queue.url': cannot reach Redis" in checked.stderr


def test_a_wrong_password_is_named_and_never_shown(tmp_path: Path, server: FakeOcrSpace) -> None:
    """A wrong password: check exits 2 saying Redis refused it; no output or log shows either one."""
    with RedisServer(tmp_path / "secured", password=RIGHT_PASSWORD) as secured:
        password_file = tmp_path / "redis-password"
        password_file.write_text(WRONG_PASSWORD + "\n")
        password_file.chmod(0o600)
        hosts = Cluster(
            tmp_path / "c", secured, server, queue={"password_file": str(password_file)}
        )
        try:
            refused = hosts.host("refused", start=False)
            refused.start(wait_ready=False)
            checked = run("check", "-vv", "-c", str(refused.config_path))
            status = run("status", "-c", str(refused.config_path))
            wait_until(
                lambda: "refused the password" in refused.log(),
                WAIT,
                message="the host's complaint",
            )
            password_file.write_text(RIGHT_PASSWORD + "\n")
            accepted = run("check", "-vv", "-c", str(refused.config_path))
        finally:
            hosts.close()

    assert 2 == checked.returncode
    assert "Redis refused the password" in checked.stderr
    assert "check queue.password_file" in checked.stderr
    assert "unreachable: Redis refused the password" in status.stdout
    assert 0 == accepted.returncode, accepted.stderr
    assert "reachable, version" in accepted.stdout
    everything = "\n".join(
        [
            checked.stdout,
            checked.stderr,
            status.stdout,
            status.stderr,
            accepted.stdout,
            accepted.stderr,
            refused.log(),
        ]
    )
    assert WRONG_PASSWORD not in everything
    assert RIGHT_PASSWORD not in everything


def test_retry_queues_a_failed_file_and_a_host_reads_it(cluster: Cluster) -> None:
    """retry drops the error sidecar and queues the file; a work-only host (no scanner) reads it."""
    scanner = cluster.host("a")
    late = cluster.inbox / "late.png"
    late.write_bytes(b"this is not an image at all")
    wait_until(lambda: sidecar(late, ".error.json").exists(), WAIT, message="the failure recorded")
    assert 0 == scanner.stop()
    late.write_bytes(page_bytes("late.png"))
    redis = cluster.redis.client()
    assert 0 == redis.xlen(STREAM)

    retried = run("retry", "-c", str(scanner.config_path))

    assert 0 == retried.returncode, retried.stderr
    assert f"{late}: error sidecar removed" in retried.stdout
    assert f"{late}: queued in inbox {INBOX_ID}" in retried.stdout
    assert 1 == redis.xlen(STREAM)
    cluster.host("w", roles=["work"])
    cluster.wait_done([late], WAIT)
    assert not sidecar(late, ".error.json").exists()
    done_record(late)


def test_retry_says_when_redis_cannot_queue_the_files(cluster: Cluster) -> None:
    """Redis down: retry still drops the error sidecar, then exits 1 saying nothing was queued."""
    scanner = cluster.host("a")
    late = cluster.inbox / "late.png"
    late.write_bytes(b"this is not an image at all")
    wait_until(lambda: sidecar(late, ".error.json").exists(), WAIT, message="the failure recorded")
    scanner.stop()
    cluster.redis.stop()

    retried = run("retry", "-c", str(scanner.config_path))

    assert 1 == retried.returncode
    assert not sidecar(late, ".error.json").exists()
    assert "cannot reach Redis" in retried.stderr
    assert "were not queued" in retried.stderr


def test_once_leaves_shared_inboxes_to_the_cluster(cluster: Cluster, tmp_path: Path) -> None:
    """once refuses the inboxes and files in them; files outside every inbox are read."""
    config = cluster.host("idle", start=False).config_path
    inside = cluster.drop(["inside.png"])[0]
    outside = tmp_path / "elsewhere" / "outside.png"
    outside.parent.mkdir()
    outside.write_bytes(page_bytes("outside.png"))

    everything = run("once", "-c", str(config))
    one_inside = run("once", "-c", str(config), str(inside))
    one_outside = run("once", "-c", str(config), str(outside))

    assert 2 == everything.returncode
    assert "the inboxes are shared through Redis" in everything.stderr
    assert 2 == one_inside.returncode
    assert f"{inside} is in an inbox shared through Redis" in one_inside.stderr
    assert not sidecar(inside, ".json").exists()
    assert 0 == one_outside.returncode, one_outside.stderr
    done_record(outside)


def test_commands_without_queue_never_load_redis(tmp_path: Path) -> None:
    """A config without queue: status, check, failed and retry import neither redis-py nor the cluster."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    config = write_config(
        tmp_path,
        {
            "engine": "tesseract",
            "state_dir": str(tmp_path / "state"),
            "inboxes": [{"path": str(inbox)}],
        },
    )
    probe = (
        "import sys\n"
        "from ocrwatch import cli\n"
        f"for command in ('status', 'check', 'failed', 'retry'):\n"
        f"    cli.main([command, '-q', '-c', {str(config)!r}])\n"
        "loaded = sorted(m for m in sys.modules if m == 'redis' or m.startswith('ocrwatch.cluster'))\n"
        "print('LOADED', loaded)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False, timeout=120
    )
    assert "LOADED []" in result.stdout, result.stdout + result.stderr
