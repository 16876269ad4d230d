"""ocrwatch's systemd units, checked offline by systemd-analyze and run under a real systemd.

The offline tests need only ``systemd-analyze``: ``verify`` must print nothing
(it exits 0 on unknown keys and unparsable values, so its output is what
counts) and ``security --offline`` must score each system unit at most
``MAX_EXPOSURE``.

The real tests install the project with ``pip install`` (not editable) into a
virtualenv made by ``/usr/bin/python3`` (a pyenv interpreter under ``/root`` is
hidden by ``ProtectHome=``), boot a throw-away systemd with
``tests/systemd/lab/run-in-systemd.sh`` and run a scenario from
``tests/systemd/`` inside it, on a page rendered with known text. The scenario
waits and prints ``=== NAME`` sections; the assertions are here. They skip,
naming the missing piece, where the lab cannot run: not root, no systemd, no
util-linux, no ``python3-venv``, no namespaces.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from ocrwatch.config import Config
from tests.support.paths import REPO
from tests.support.render import page
from tests.support.scoring import cer

UNITS = REPO / "systemd"
SCENARIOS = REPO / "tests" / "systemd"
LAB = REPO / "tests" / "systemd" / "lab" / "run-in-systemd.sh"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
MAX_EXPOSURE = 1.5
INSTALL_PATH = "/opt/ocrwatch/venv"  # the units' documented ExecStart venv
PAGE_LINES = [
    "ocrwatch read this page under a real systemd,",
    "as the service user, inside the sandbox of its unit.",
    "Pack my box with five dozen liquor jugs: 0123456789.",
]
PAGE_TEXT = "\n".join(PAGE_LINES)
PAGE_SIZE = (1300, 360)
PAGE_FONT_SIZE = 40
# The rendered page reads without a slip: one in its 151 characters passes, two fail.
MAX_CHARACTER_ERROR_RATE = 0.01
FAKE_OCRSPACE_TEXT = "Text from the fake ocr.space inside the lab"
FAKE_OCRSPACE_FILES = [  # the test server and what it imports, as the package it lives in
    "tests/__init__.py",
    "tests/support/__init__.py",
    "tests/support/ocrspace_server.py",
    "tests/support/ocrspace_fixtures.py",
]
EXIT_SKIP = 77
LAB_TIMEOUT_SECONDS = 150  # boot and scenario, enforced by the harness itself
LAB_SHUTDOWN_MARGIN_SECONDS = 60  # power-off and clean-up come on top
PIP_TIMEOUT_SECONDS = 600
SHUTDOWN_MARGIN_SECONDS = 10  # TimeoutStopSec beyond the default shutdown_timeout

needs_analyze = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None, reason="needs the Debian package systemd (systemd-analyze)"
)


# Offline: systemd-analyze verify and security.


def exec_paths(unit_text: str) -> set[str]:
    """The absolute programs named by Exec*= lines (verify insists that they exist)."""
    return set(re.findall(r"^Exec\w+=[-@:+!]*(/\S+)", unit_text, flags=re.MULTILINE))


def make_stub(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)


@pytest.fixture
def unit_root(tmp_path: Path) -> Path:
    """A root for ``--root=``: the stock units, ours, and a stub for every program they run."""
    root = tmp_path / "root"
    system = root / "etc" / "systemd" / "system"
    system.mkdir(parents=True)
    shutil.copytree(
        "/usr/lib/systemd/system", root / "usr" / "lib" / "systemd" / "system", symlinks=True
    )
    for unit in UNITS.glob("*.service"):
        shutil.copy(unit, system / unit.name)
        for program in exec_paths(unit.read_text()):
            make_stub(root / program.lstrip("/"))
    return root


def verify(root: Path, unit: str) -> str:
    """Everything ``systemd-analyze verify`` says about ``unit`` in ``root``."""
    assert SYSTEMD_ANALYZE is not None
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", "--man=no", f"--root={root}", unit],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    exit_note = "" if result.returncode == 0 else f"\n(exit {result.returncode})"
    return (result.stdout + result.stderr).strip() + exit_note


def systemd_version() -> int:
    assert SYSTEMD_ANALYZE is not None
    output = subprocess.run(
        [SYSTEMD_ANALYZE, "--version"], capture_output=True, text=True, check=True
    ).stdout
    return int(re.match(r"systemd (\d+)", output).group(1))  # type: ignore[union-attr]


@needs_analyze
@pytest.mark.parametrize("unit", ["ocrwatch.service", "ocrwatch@scans.service"])
def test_system_units_verify_without_a_word(unit_root: Path, unit: str) -> None:
    """systemd-analyze verify has nothing to say about the system unit and a template instance."""
    assert "" == verify(unit_root, unit)


@needs_analyze
def test_user_unit_verifies_without_a_word(tmp_path: Path) -> None:
    """The user unit verifies in a user manager's view, with ocrwatch where pipx puts it."""
    assert SYSTEMD_ANALYZE is not None
    home = tmp_path / "home"
    make_stub(home / ".local" / "bin" / "ocrwatch")  # %h/.local/bin/ocrwatch
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    env = {**os.environ, "HOME": str(home), "XDG_RUNTIME_DIR": str(runtime)}
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", "--user", "--man=no", str(UNITS / "user" / "ocrwatch.service")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert ("", 0) == ((result.stdout + result.stderr).strip(), result.returncode)


@needs_analyze
def test_notify_reload_drop_in_is_clean_where_systemd_knows_the_type(unit_root: Path) -> None:
    """The optional drop-in verifies cleanly on systemd >= 253; 252 rejects the type, hence a drop-in."""
    dropins = unit_root / "etc" / "systemd" / "system" / "ocrwatch@.service.d"
    dropins.mkdir()
    shutil.copy(UNITS / "notify-reload.conf", dropins / "notify-reload.conf")
    output = verify(unit_root, "ocrwatch@scans.service")
    if systemd_version() >= 253:
        assert "" == output
    else:
        assert "Failed to parse service type, ignoring: notify-reload" in output


@needs_analyze
@pytest.mark.parametrize("unit", ["ocrwatch.service", "ocrwatch@scans.service"])
def test_system_units_are_exposed_at_most_max_exposure(unit_root: Path, unit: str) -> None:
    """systemd-analyze security --offline scores each system unit at most MAX_EXPOSURE."""
    assert SYSTEMD_ANALYZE is not None
    threshold = round(MAX_EXPOSURE * 10)  # --threshold is on a 0-100 scale
    result = subprocess.run(
        [
            SYSTEMD_ANALYZE,
            "security",
            "--offline=true",
            f"--root={unit_root}",
            "--no-pager",
            f"--threshold={threshold}",
            unit,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match is not None, result.stdout + result.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE, result.stdout
    assert 0 == result.returncode, result.stdout + result.stderr


def test_stop_timeout_leaves_room_for_the_default_drain() -> None:
    """TimeoutStopSec exceeds the default shutdown_timeout by a margin, so a drain is never SIGKILLed."""
    drain = Config.model_fields["shutdown_timeout"].default
    for unit in [*UNITS.glob("*.service"), UNITS / "user" / "ocrwatch.service"]:
        match = re.search(r"^TimeoutStopSec=(\d+)s$", unit.read_text(), flags=re.MULTILINE)
        assert match is not None, f"{unit.name}: no TimeoutStopSec=Ns"
        assert int(match.group(1)) >= drain + SHUTDOWN_MARGIN_SECONDS, unit.name


def test_units_never_carry_the_key_in_their_environment() -> None:
    """The key arrives as a credential or through the config, never through Environment=."""
    for unit in [*UNITS.glob("*.service"), UNITS / "user" / "ocrwatch.service"]:
        environment = re.findall(r"^Environment(?:File)?=.*$", unit.read_text(), flags=re.MULTILINE)
        assert [] == [line for line in environment if "KEY" in line.upper()], unit.name


@pytest.mark.skipif(
    shutil.which("systemd-sysusers") is None,
    reason="needs the Debian package systemd (systemd-sysusers)",
)
def test_sysusers_file_creates_the_service_user(tmp_path: Path) -> None:
    """systemd-sysusers turns the shipped file into a locked system user homed in /var/lib/ocrwatch."""
    (tmp_path / "etc").mkdir()
    subprocess.run(
        ["systemd-sysusers", f"--root={tmp_path}", str(UNITS / "sysusers.d" / "ocrwatch.conf")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    entry = next(
        line
        for line in (tmp_path / "etc" / "passwd").read_text().splitlines()
        if line.startswith("ocrwatch:")
    )
    name, _, uid, _, _, home, shell = entry.split(":")
    assert ("ocrwatch", "/var/lib/ocrwatch", "/usr/sbin/nologin") == (name, home, shell)
    assert int(uid) < 1000


# Real: a throw-away systemd as PID 1.


def system_python_has_venv() -> bool:
    """Whether Debian's own interpreter can make a virtualenv with pip (package python3-venv)."""
    if not Path("/usr/bin/python3").is_file():
        return False
    check = subprocess.run(
        ["/usr/bin/python3", "-c", "import ensurepip, venv"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    return check.returncode == 0


def lab_unavailable() -> str | None:
    """Why the lab cannot run here, or None; the harness itself checks the kernel."""
    if os.geteuid() != 0:
        return "needs root (the systemd lab mounts file systems and creates namespaces)"
    if not Path("/lib/systemd/systemd").is_file():
        return "needs the Debian package systemd (the lab boots /lib/systemd/systemd)"
    if shutil.which("unshare") is None:
        return "needs util-linux unshare"
    if not system_python_has_venv():
        # a pyenv interpreter under /root is hidden from the service by ProtectHome=
        return "needs /usr/bin/python3 with venv (Debian package python3-venv)"
    return None


@pytest.fixture(scope="module")
def service_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ocrwatch installed by pip into a fresh venv, its command made to run from /opt/ocrwatch/venv."""
    reason = lab_unavailable()
    if reason:
        pytest.skip(reason)
    base = tmp_path_factory.mktemp("service-venv")
    source = base / "source"
    # pip builds in the source tree (build/, *.egg-info): build from a copy.
    shutil.copytree(
        REPO,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache"
        ),
    )
    venv = base / "venv"
    subprocess.run(["/usr/bin/python3", "-m", "venv", str(venv)], check=True, timeout=120)
    # The cache survives runs; pip keys it by content.
    cache = Path(tempfile.gettempdir()) / "ocrwatch-test-pip-cache"
    result = subprocess.run(
        [
            str(venv / "bin" / "pip"),
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--cache-dir",
            str(cache),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=PIP_TIMEOUT_SECONDS,
        check=False,
    )
    assert 0 == result.returncode, f"pip install failed:\n{result.stdout}\n{result.stderr}"
    # The lab mounts the venv at /opt/ocrwatch/venv: point the console script's
    # #! line there, as if pip had installed it in place, so that the units'
    # own ExecStart= runs unchanged.
    script = venv / "bin" / "ocrwatch"
    _, rest = script.read_text().split("\n", 1)
    script.write_text(f"#!{INSTALL_PATH}/bin/python\n{rest}")
    return venv


def run_lab(options: list[tuple[str, str]], log_dir: Path) -> subprocess.CompletedProcess[str]:
    """Boot the lab with ``options`` (name, value), run a scenario; skip if a prerequisite is missing."""
    arguments = [part for option in options for part in option]
    result = subprocess.run(
        [str(LAB), "--timeout", str(LAB_TIMEOUT_SECONDS), "--log-dir", str(log_dir), *arguments],
        capture_output=True,
        text=True,
        timeout=LAB_TIMEOUT_SECONDS + LAB_SHUTDOWN_MARGIN_SECONDS,
        check=False,
    )
    if result.returncode == EXIT_SKIP:
        pytest.skip((result.stderr.strip().splitlines() or ["the systemd lab cannot run here"])[-1])
    journal = log_dir / "journal.txt"
    assert 0 == result.returncode, (
        f"scenario failed (exit {result.returncode})\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
        + (f"\n--- journal\n{journal.read_text()}" if journal.exists() else "")
    )
    return result


def sections(stdout: str) -> dict[str, list[str]]:
    """The scenario's output split at its ``=== NAME`` lines."""
    found: dict[str, list[str]] = {}
    current: list[str] = []
    for line in stdout.splitlines():
        if line.startswith("=== "):
            current = found.setdefault(line[4:], [])
        else:
            current.append(line)
    return found


def properties(lines: list[str]) -> dict[str, str]:
    return dict(line.split("=", 1) for line in lines if "=" in line)


def sysusers_lines() -> list[str]:
    """The shipped sysusers.d lines, with the optional shared-group lines switched on."""
    lines = []
    for line in (UNITS / "sysusers.d" / "ocrwatch.conf").read_text().splitlines():
        if line.startswith(("#g ", "#m ")):
            lines.append(line[1:])
        elif line.strip() and not line.startswith("#"):
            lines.append(line)
    return lines


@pytest.fixture
def page_tiff(tmp_path: Path) -> Path:
    """A TIFF of PAGE_LINES, the page both scenarios drop into an inbox, in grey like a scan."""
    image, _ = page(PAGE_LINES, size=PAGE_SIZE, font_size=PAGE_FONT_SIZE)
    path = tmp_path / "page.tif"
    image.convert("L").save(path, format="TIFF")
    return path


@pytest.fixture
def api_key(tmp_path: Path) -> tuple[str, Path]:
    """A distinctive fake key in a root-only file, to be found nowhere but in the credential store."""
    key = f"K-LAB-{secrets.token_hex(12)}"
    path = tmp_path / "api-key"
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key, path


@pytest.mark.slow
def test_template_instance_lives_through_start_ocr_reload_and_stop(
    service_venv: Path, api_key: tuple[str, Path], page_tiff: Path, tmp_path: Path
) -> None:
    """ocrwatch@lab.service under real systemd: ready, local OCR, reload, ocr.space via the credential, clean stop."""
    key, key_file = api_key
    options = [
        ("--payload", str(service_venv)),
        ("--payload-at", INSTALL_PATH),
        ("--unit", str(UNITS / "ocrwatch@.service")),
        # an admin's drop-in for a group-owned inbox (docs/service.md), and test timings
        ("--dropin", f"ocrwatch@lab.service:{SCENARIOS / 'inbox-access.conf'}"),
        ("--dropin", f"ocrwatch@lab.service:{SCENARIOS / 'observe.conf'}"),
        *(("--sysusers", line) for line in sysusers_lines()),
        ("--file", f"{SCENARIOS / 'lab.yaml'}:/etc/ocrwatch/lab.yaml"),
        ("--file", f"{SCENARIOS / 'lab-reloaded.yaml'}:/lab/lab-reloaded.yaml"),
        ("--file", f"{SCENARIOS / 'broken.yaml'}:/etc/ocrwatch/broken.yaml"),
        ("--dir", "/etc/credstore:0700"),
        ("--file", f"{key_file}:/etc/credstore/ocrwatch-lab.ocrspace-api-key:0600"),
        ("--dir", "/srv/ocrwatch:0755"),
        ("--dir", "/srv/ocrwatch/lab:0750:ocrwatch"),
        ("--dir", "/srv/scans:0755"),
        ("--dir", "/srv/scans/lab:2770:root:scans"),
        ("--file", f"{page_tiff}:/lab/page.tif"),
        *(("--file", f"{REPO / name}:/lab/{name}") for name in FAKE_OCRSPACE_FILES),
        ("--scenario", str(SCENARIOS / "lifecycle.sh")),
    ]
    result = run_lab(options, log_dir=tmp_path / "lab-logs")
    out = sections(result.stdout)

    started = properties(out["started"])
    expected_started = {
        "ActiveState": "active",
        "SubState": "running",
        "StatusText": "1 inbox(es), 0 waiting, 0 in progress, 0 done, 0 failed",
        "User": "ocrwatch",
        "SupplementaryGroups": "scans",
        "MemoryDenyWriteExecute": "yes",
        "PrivateUsers": "yes",
        "ProtectSystem": "strict",
    }
    assert expected_started == {name: started[name] for name in expected_started}
    assert ["400 ocrwatch"] == out["credential"]
    sandbox = {line.split(":")[0]: line.split(":", 1)[1].split() for line in out["sandbox"]}
    assert (["1"], ["2"], ["0000000000000000"]) == (
        sandbox["NoNewPrivs"],
        sandbox["Seccomp"],
        sandbox["CapEff"],
    )

    local_text = "\n".join(out["local-text"])
    assert cer(local_text, PAGE_TEXT) <= MAX_CHARACTER_ERROR_RATE, local_text
    assert ["1 inbox(es), 0 waiting, 0 in progress, 1 done, 1 failed"] == out["local-status"]
    # READY=1 of the reload says "reloaded; ...", the next STATUS= line drops the prefix.
    assert ["2 inbox(es), 0 waiting, 0 in progress, 1 done, 1 failed"] == [
        line.removeprefix("reloaded; ") for line in out["reloaded-status"]
    ]
    assert [FAKE_OCRSPACE_TEXT] == out["ocrspace-text"]
    # a setgid folder, and UMask=0027
    assert ["ocrwatch:scans 640", "ocrwatch:scans 640"] == out["shared-sidecar"]
    running = properties(out["running"])
    assert ("active", "6s", "0") == (
        running["ActiveState"],
        running["WatchdogUSec"],
        running["NRestarts"],
    )

    assert ["inactive", "stop-post: result=success code=exited status=0"] == out["stopped"]
    broken = properties(out["broken"])
    assert {
        "ActiveState": "failed",
        "Result": "exit-code",
        "ExecMainStatus": "2",
        "NRestarts": "0",
    } == broken
    broken_entries = [json.loads(line) for line in out["broken-journal"]]
    config_errors = [
        entry
        for entry in broken_entries
        if "broken.yaml" in entry["MESSAGE"] and "inboxes[0].crop.left" in entry["MESSAGE"]
    ]
    assert config_errors, broken_entries
    assert all("3" == entry["PRIORITY"] for entry in config_errors), (
        "a fatal config error must log at err"
    )
    assert 1 == len(out["mdwe-control"]) and out["mdwe-control"][0].startswith("refused:")

    entries = [json.loads(line) for line in out["journal-json"]]
    ocrwatch_lines = [
        (entry["PRIORITY"], entry["MESSAGE"])
        for entry in entries
        if entry["SYSLOG_IDENTIFIER"] == "ocrwatch-lab"
    ]
    expected = {
        "ready: 1 inbox(es), 0 waiting, 0 in progress, 0 done, 0 failed": "6",
        "failed /srv/ocrwatch/lab/broken.png: [bad_input]": "3",
        "shared: attempt 1 at http://127.0.0.1:9/parse/image failed": "4",
        "reloaded; 2 inbox(es), 0 waiting, 0 in progress, 1 done, 1 failed": "6",
        "done /srv/scans/lab/shared.tif": "6",
        "stopping; 2 inbox(es), 0 waiting, 0 in progress, 2 done, 1 failed": "6",
    }
    assert expected == {
        start: next(
            (priority for priority, message in ocrwatch_lines if message.startswith(start)),
            "missing",
        )
        for start in expected
    }
    systemd_lines = [
        entry["MESSAGE"] for entry in entries if entry["SYSLOG_IDENTIFIER"] == "systemd"
    ]
    assert "ocrwatch@lab.service: Deactivated successfully." in systemd_lines
    assert [] == [
        line for line in systemd_lines if "restart" in line.lower() or "watchdog" in line.lower()
    ]
    assert 2 == len(out["journal-warning"])  # `journalctl -p warning`: the failure and the failover

    assert ["journal: 0", "files: 0", "credential store: 1"] == out["key-occurrences"]
    assert key not in result.stdout + result.stderr


@pytest.mark.slow
def test_user_unit_runs_in_a_user_manager(
    service_venv: Path, page_tiff: Path, tmp_path: Path
) -> None:
    """systemd/user/ocrwatch.service in tester's user manager: sandboxed start, OCR in ~/Scans, reload, stop."""
    home = "/home/tester"
    options = [
        ("--payload", str(service_venv)),
        ("--payload-at", INSTALL_PATH),
        ("--user-unit", str(UNITS / "user" / "ocrwatch.service")),
        ("--sysusers", f'u tester - "ocrwatch test user" {home} /bin/sh'),
        ("--dir", f"{home}:0700:tester"),
        ("--dir", f"{home}/Scans:0755:tester"),
        ("--dir", f"{home}/.config:0755:tester"),
        ("--dir", f"{home}/.config/ocrwatch:0755:tester"),
        (
            "--file",
            f"{SCENARIOS / 'user-config.yaml'}:{home}/.config/ocrwatch/config.yaml:0644:tester",
        ),
        ("--dir", f"{home}/.local:0755:tester"),
        ("--dir", f"{home}/.local/bin:0755:tester"),
        # where pipx links the command; it runs the venv's python like the system units
        ("--file", f"{service_venv / 'bin' / 'ocrwatch'}:{home}/.local/bin/ocrwatch:0755:tester"),
        ("--file", f"{page_tiff}:/lab/page.tif"),
        ("--scenario", str(SCENARIOS / "user-unit.sh")),
    ]
    result = run_lab(options, log_dir=tmp_path / "lab-logs")
    out = sections(result.stdout)

    started = properties(out["started"])
    assert ("active", "running", "1 inbox(es), 0 waiting, 0 in progress, 0 done, 0 failed") == (
        started["ActiveState"],
        started["SubState"],
        started["StatusText"],
    )
    text = "\n".join(out["text"])
    assert cer(text, PAGE_TEXT) <= MAX_CHARACTER_ERROR_RATE, text
    assert ["reloaded; 1 inbox(es), 0 waiting, 0 in progress, 1 done, 0 failed"] == out["reloaded"]
    assert 1 == len(out["state"]) and out["state"][0].endswith("/state/state.sqlite3"), out["state"]
    assert ["inactive"] == out["stopped"]
    assert any("stopping; 1 inbox(es)" in line for line in out["journal"]), out["journal"]
