"""Attacks on secrecy and on the config: the API key must never show, a bad config must start nothing.

The key promise (README, 'Using ocr.space'): the key never appears in logs,
errors, sidecars or ``check`` output. The attack gives ocrwatch a distinctive
key, drives it through the scenarios where text about requests is written
(failing files, a crash, a rejected key, every key source, the operator
commands) and then greps every byte it wrote. The config promise: a config
that is malformed, mistyped, unknown, points at missing or unreadable things,
or would feed outputs back into inputs is refused with a message naming the
file and the key, exit status 2, and nothing started: no state folder, no
sidecars, no daemon left running.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.daemon import DaemonProcess
from tests.support.hostile import page_bytes, png_bomb
from tests.support.ocrspace_server import FakeOcrSpace
from tests.support.privileges import permission_respecting_prefix
from tests.support.rig import daemon_config
from tests.support.verdicts import files_containing, finished
from tests.support.waiting import wait_until

SECRET = "K8-SECRET-7c1f3e9a"
TAIL = SECRET[-8:]
"""The key's distinctive end: a partly masked key must not show either."""
COMMAND_TIMEOUT = 30


def ocrwatch(
    *args: str,
    env: dict[str, str] | None = None,
    prefix: list[str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the ``ocrwatch`` command in a fresh interpreter; stdout and stderr captured."""
    return subprocess.run(
        [*(prefix or []), sys.executable, "-m", "ocrwatch", *args],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )


def leaks(text: str) -> bool:
    return SECRET in text or TAIL in text


def leaking_files(*roots: Path) -> list[Path]:
    return files_containing(SECRET.encode(), roots) + files_containing(TAIL.encode(), roots)


def failures_in_status(path: Path) -> int:
    """How many failures the daemon's status.json counts (0 while it has none or no file)."""
    try:
        return int(json.loads(path.read_text(encoding="utf-8"))["outcomes"].get("failed", 0))
    except (OSError, ValueError, KeyError):
        return 0


@pytest.mark.slow
def test_the_key_never_shows_after_failures_a_crash_and_a_rejected_key(tmp_path: Path) -> None:
    """Failing files, a SIGKILL, a rejected key and every operator command: no byte written shows the key."""
    inbox, odd = tmp_path / "inbox", tmp_path / "odd"
    inbox.mkdir()
    odd.mkdir()
    names = [f"s{index:02d}.png" for index in range(24)]
    for name in names:
        (inbox / name).write_bytes(page_bytes(name))
    (inbox / "letter.jpg").write_bytes(b"not an image at all\n")
    (inbox / "bomb.png").write_bytes(png_bomb())
    # A name that currently crashes a worker with a traceback (FINDING 5): crash output too.
    (odd / os.fsdecode(b"caf\xe9.png")).write_bytes(page_bytes("cafe"))
    outputs: dict[str, str] = {}
    faults = {"http400_e501": 0.15, "http500": 0.15, "input_exit99": 0.1}
    with FakeOcrSpace(mode="text", api_key=SECRET, latency=0.1, faults=faults, seed=99) as server:
        config = daemon_config(
            server.url,
            [{"path": str(inbox)}, {"path": str(odd)}],
            state_dir=tmp_path / "state",
            transient_attempts=1,
            workers=2,
        )
        daemon = DaemonProcess(tmp_path, config, env={"OCRSPACE_API_KEY": SECRET})
        try:
            daemon.start()
            wait_until(lambda: len(server.requests) >= 6, 30, message="work to kill")
            daemon.kill()
            daemon.start()
            wait_until(
                lambda: all(finished(inbox / name) for name in names), 60, message="every file"
            )
            wait_until(
                lambda: failures_in_status(tmp_path / "state" / "status.json"),
                15,
                message="status.json to record failures",
            )
            assert server.fault_counts, "no request failed"
            server.api_key = "A-DIFFERENT-KEY"
            (inbox / "after-rejection.png").write_bytes(page_bytes("rejected"))
            wait_until(lambda: "CRITICAL" in daemon.log(), 20, message="the key to be rejected")
            for command in (["status", "--json"], ["status"], ["failed"], ["failed", "--json"]):
                done = ocrwatch(
                    *command, "-c", str(daemon.config_path), env={"OCRSPACE_API_KEY": SECRET}
                )
                outputs[" ".join(command)] = done.stdout + done.stderr
            assert 0 == daemon.stop()
        finally:
            daemon.close()
        server.api_key = SECRET
        once_inbox = tmp_path / "once"
        once_inbox.mkdir()
        (once_inbox / "good.png").write_bytes(page_bytes("once good"))
        (once_inbox / "broken.jpg").write_bytes(b"broken")
        once_config = tmp_path / "once.yaml"
        once_config.write_text(
            yaml.safe_dump(
                daemon_config(
                    server.url, [{"path": str(once_inbox)}], state_dir=tmp_path / "state-once"
                )
            )
        )
        done = ocrwatch("once", "-v", "-c", str(once_config), env={"OCRSPACE_API_KEY": SECRET})
        outputs["once"] = done.stdout + done.stderr
        assert 1 == done.returncode, outputs["once"]
    assert "CRITICAL" in daemon.log(), "the scenario lost its teeth"
    assert list(tmp_path.rglob("*.error.json")) and (tmp_path / "state" / "state.sqlite3").exists()
    assert {} == {name: text for name, text in outputs.items() if leaks(text)}
    assert [] == leaking_files(tmp_path)


def key_sources(tmp_path: Path) -> dict[str, tuple[dict[str, Any], dict[str, str]]]:
    """Each way to give the key: (extra ocrspace config, extra environment)."""
    secrets = tmp_path / "secrets"
    (secrets / "credentials").mkdir(parents=True)
    key_file = secrets / "ocrspace.key"
    key_file.write_text(SECRET + "\n")
    key_file.chmod(0o644)  # readable by others: the warning must name the file, not the key
    (secrets / "credentials" / "ocrspace-api-key").write_text(SECRET + "\n")
    return {
        "environment": ({}, {"OCRSPACE_API_KEY": SECRET}),
        "key file": ({"api_key_file": str(key_file)}, {}),
        "inline": ({"api_key": SECRET}, {}),
        "credential": ({}, {"CREDENTIALS_DIRECTORY": str(secrets / "credentials")}),
    }


def test_check_names_where_the_key_is_but_never_shows_it(tmp_path: Path) -> None:
    """`check` with the key in the environment, a file, inline and a credential: found, not shown."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for source, (ocrspace, env) in key_sources(tmp_path).items():
        config = tmp_path / "secrets" / f"{source.replace(' ', '-')}.yaml"
        config.write_text(yaml.safe_dump({"ocrspace": ocrspace, "inboxes": [{"path": str(inbox)}]}))
        config.chmod(0o644)
        done = ocrwatch("check", "-v", "-c", str(config), env=env)
        assert 0 == done.returncode, done.stderr
        assert "not shown" in done.stdout, source
        assert not leaks(done.stdout + done.stderr), f"{source}: {done.stdout}{done.stderr}"
    assert not (tmp_path / "xdg-state" / "ocrwatch").exists(), "check created a state folder"


@pytest.mark.parametrize(
    "ocrspace",
    [SECRET, {"api_key": [SECRET]}, {"api_key": {"value": SECRET}}],
    ids=["key-as-section", "key-in-a-list", "key-in-a-mapping"],
)
def test_a_key_in_the_wrong_place_is_refused_without_showing_it(
    ocrspace: Any, tmp_path: Path
) -> None:
    """A key pasted where a section or a string belongs: exit 2, the key's place named, the key not shown."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    config = tmp_path / "ocrwatch.yaml"
    config.write_text(
        yaml.safe_dump(
            {"engine": "ocrspace", "ocrspace": ocrspace, "inboxes": [{"path": str(inbox)}]}
        )
    )
    for command in ("check", "run"):
        done = ocrwatch(command, "-c", str(config))
        assert 2 == done.returncode
        assert "at 'ocrspace" in done.stderr, done.stderr
        assert not leaks(done.stdout + done.stderr), f"{command}: {done.stderr}"


def test_a_key_echoed_by_the_server_is_not_stored(tmp_path: Path) -> None:
    """An error page that quotes the request's key (proxies and WAFs do): logs, sidecars and state stay clean."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    echo = {
        "error": "E501: Not an image or PDF",
        "details": f"rejected request with apikey={SECRET} from 127.0.0.1",
    }
    with FakeOcrSpace(mode="fixed", body=echo, status=400, api_key=SECRET) as server:
        daemon = DaemonProcess(
            tmp_path,
            daemon_config(server.url, [{"path": str(inbox)}], state_dir=tmp_path / "state"),
            env={"OCRSPACE_API_KEY": SECRET},
        )
        try:
            daemon.start()
            (inbox / "echoed.png").write_bytes(page_bytes("echoed"))
            wait_until(lambda: finished(inbox / "echoed.png"), 20)
            status = tmp_path / "state" / "status.json"
            wait_until(
                lambda: status.exists() and "echoed.png" in status.read_text(),
                15,
                message="status.json to name the failure",
            )
            failed = ocrwatch(
                "failed", "-c", str(daemon.config_path), env={"OCRSPACE_API_KEY": SECRET}
            )
            assert 0 == daemon.stop()
        finally:
            daemon.close()
    assert "E501" in json.loads((inbox / "echoed.png.error.json").read_text())["error"]["message"]
    assert not leaks(failed.stdout + failed.stderr)
    assert [] == leaking_files(tmp_path)


# ----------------------------------------------------------------------------
# Config errors: refused whole, nothing started.


def layout(tmp_path: Path) -> dict[str, Path]:
    """Two inboxes (b recursive with a sub-folder), each holding an image, and a key file."""
    places = {name: tmp_path / name for name in ("a", "b")}
    (places["b"] / "sub").mkdir(parents=True)
    places["a"].mkdir()
    for place in places.values():
        (place / "waiting.png").write_bytes(page_bytes("must not be read"))
    key = tmp_path / "ocrspace.key"
    key.write_text("K8-CONFIG-TEST\n")
    key.chmod(0o600)
    places["key"] = key
    return places


Case = Callable[[dict[str, Path]], tuple[str, str]]
"""Given the layout, (config text, the place the message must name)."""

CASES: dict[str, Case] = {
    "malformed YAML": lambda p: (
        f"inboxes:\n  - path: {p['a']}\n    recursive: [true\n",
        ":4: invalid YAML",
    ),
    "duplicate key": lambda p: (f"inboxes:\n  - path: {p['a']}\n    path: {p['b']}\n", ":3:"),
    "wrong type": lambda p: (f"workers: many\ninboxes: [{{path: {p['a']}}}]\n", "at 'workers'"),
    "wrong nested type": lambda p: (
        f"inboxes: [{{path: {p['a']}, recursive: maybe}}]\n",
        "at 'inboxes[0].recursive'",
    ),
    "unknown key": lambda p: (f"colour: red\ninboxes: [{{path: {p['a']}}}]\n", "at 'colour'"),
    "unknown nested key": lambda p: (
        f"inboxes: [{{path: {p['a']}, bogus: 1}}]\n",
        "at 'inboxes[0].bogus'",
    ),
    "missing inbox": lambda p: (f"inboxes: [{{path: {p['a']}/missing}}]\n", "at 'inboxes[0].path'"),
    "missing key file": lambda p: (
        f"ocrspace: {{api_key_file: {p['key']}.gone}}\ninboxes: [{{path: {p['a']}}}]\n",
        "at 'ocrspace.api_key_file'",
    ),
    "key file is a folder": lambda p: (
        f"ocrspace: {{api_key_file: {p['b']}}}\ninboxes: [{{path: {p['a']}}}]\n",
        "at 'ocrspace.api_key_file'",
    ),
    "done_dir is another inbox": lambda p: (
        f"inboxes:\n  - {{path: {p['a']}, after: move, done_dir: {p['b']}}}\n  - {{path: {p['b']}}}\n",
        "at 'inboxes[0].done_dir'",
    ),
    "failed_dir inside a recursive inbox": lambda p: (
        f"inboxes:\n  - {{path: {p['a']}, failed_dir: {p['b']}/sub}}\n  - {{path: {p['b']}, recursive: true}}\n",
        "at 'inboxes[0].failed_dir'",
    ),
    "inbox nested in a recursive inbox": lambda p: (
        f"inboxes:\n  - {{path: {p['b']}, recursive: true}}\n  - {{path: {p['b']}/sub}}\n",
        "at 'inboxes[1].path'",
    ),
}


def refused_whole(
    tmp_path: Path, text: str, where: str, *, prefix: list[str] | None = None
) -> None:
    """``check`` and ``run`` both exit 2 at once naming file and key; no state, no sidecars, no daemon."""
    config = tmp_path / "ocrwatch.yaml"
    config.write_text(text)
    state = tmp_path / "xdg-state"
    env = {"OCRSPACE_API_KEY": "K8-CONFIG-TEST", "XDG_STATE_HOME": str(state)}
    for command in ("check", "run"):
        done = ocrwatch(command, "-c", str(config), env=env, prefix=prefix, cwd=tmp_path)
        assert 2 == done.returncode, f"{command}: {done.stdout}{done.stderr}"
        assert f"{config}" in done.stderr and where in done.stderr, f"{command}: {done.stderr}"
        assert "Traceback" not in done.stderr
    assert not state.exists(), "a state folder was created"
    assert [] == sorted(
        str(p) for p in tmp_path.rglob("*") if p.name.endswith((".json", ".txt", "lock"))
    )


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_config_is_refused_whole_and_starts_nothing(case: str, tmp_path: Path) -> None:
    """Each kind of bad config: exit 2, the file and key named, nothing started."""
    places = layout(tmp_path)
    text, where = CASES[case](places)
    refused_whole(tmp_path, text, where)


def test_an_unreadable_key_file_is_refused_whole(tmp_path: Path) -> None:
    """A key file the daemon's user cannot read (mode 000, root made to obey it): exit 2, named, nothing started."""
    places = layout(tmp_path)
    places["key"].chmod(0o000)
    text = f"ocrspace: {{api_key_file: {places['key']}}}\ninboxes: [{{path: {places['a']}}}]\n"
    refused_whole(
        tmp_path, text, "at 'ocrspace.api_key_file'", prefix=permission_respecting_prefix()
    )


@pytest.mark.parametrize("kind", ["inbox", "done_dir"])
def test_overlap_through_a_symlink_is_refused(kind: str, tmp_path: Path) -> None:
    """Feeding outputs back into inputs is refused even when a symlink hides the overlap."""
    places = layout(tmp_path)
    alias = tmp_path / "alias"
    alias.symlink_to(places["b"] / "sub")
    if kind == "inbox":
        text = f"inboxes:\n  - {{path: {places['b']}, recursive: true}}\n  - {{path: {alias}}}\n"
        where = "at 'inboxes[1].path'"
    else:
        text = (
            f"inboxes:\n  - {{path: {places['a']}, after: move, done_dir: {alias}}}\n"
            f"  - {{path: {places['b']}, recursive: true}}\n"
        )
        where = "at 'inboxes[0].done_dir'"
    refused_whole(tmp_path, text, where)
