"""The sd_notify protocol as ocrwatch speaks it, checked on a datagram socket the test listens on."""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ocrwatch.notify import Notifier

RECEIVE_TIMEOUT_SECONDS = 2.0
MAX_DATAGRAM_BYTES = 65536


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A bound AF_UNIX datagram socket standing in for systemd, and its NOTIFY_SOCKET value."""
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(RECEIVE_TIMEOUT_SECONDS)
    yield sock, str(path)
    sock.close()


def receive(sock: socket.socket) -> str:
    return sock.recv(MAX_DATAGRAM_BYTES).decode("utf-8")


def nothing_waiting(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        sock.recv(MAX_DATAGRAM_BYTES)
    except BlockingIOError:
        return True
    finally:
        sock.settimeout(RECEIVE_TIMEOUT_SECONDS)
    return False


def monotonic_usec() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def test_ready_carries_its_status_in_the_same_datagram(listener: tuple[socket.socket, str]) -> None:
    """READY=1 and STATUS= travel together, so systemctl shows the status the moment the unit is up."""
    sock, address = listener
    assert Notifier({"NOTIFY_SOCKET": address}).ready("1 inbox(es), 0 waiting")
    assert "READY=1\nSTATUS=1 inbox(es), 0 waiting" == receive(sock)


def test_status_line_alone(listener: tuple[socket.socket, str]) -> None:
    """A status update is one STATUS= assignment."""
    sock, address = listener
    assert Notifier({"NOTIFY_SOCKET": address}).status("2 done, 1 failed")
    assert "STATUS=2 done, 1 failed" == receive(sock)


def test_watchdog_ping(listener: tuple[socket.socket, str]) -> None:
    """A keep-alive is WATCHDOG=1 and nothing else."""
    sock, address = listener
    assert Notifier({"NOTIFY_SOCKET": address}).watchdog()
    assert "WATCHDOG=1" == receive(sock)


def test_reloading_carries_monotonic_usec_in_the_same_datagram(
    listener: tuple[socket.socket, str],
) -> None:
    """RELOADING=1 comes with MONOTONIC_USEC= on CLOCK_MONOTONIC in one datagram, as Type=notify-reload needs."""
    sock, address = listener
    before = monotonic_usec()
    assert Notifier({"NOTIFY_SOCKET": address}).reloading()
    after = monotonic_usec()
    lines = receive(sock).split("\n")
    assert ["RELOADING=1", "MONOTONIC_USEC"] == [lines[0], lines[1].split("=")[0]]
    assert 2 == len(lines)
    assert before <= int(lines[1].split("=")[1]) <= after


def test_stopping_carries_its_status(listener: tuple[socket.socket, str]) -> None:
    """STOPPING=1 says why in the same datagram."""
    sock, address = listener
    assert Notifier({"NOTIFY_SOCKET": address}).stopping("stopping; 3 done")
    assert "STOPPING=1\nSTATUS=stopping; 3 done" == receive(sock)


def test_abstract_socket_named_with_an_at_sign() -> None:
    """NOTIFY_SOCKET=@name means the Linux abstract namespace (a leading NUL byte), not a file."""
    name = f"ocrwatch-test-{os.getpid()}-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(RECEIVE_TIMEOUT_SECONDS)
        notifier = Notifier({"NOTIFY_SOCKET": "@" + name})
        assert notifier.enabled and notifier.ready("up")
        assert "READY=1\nSTATUS=up" == receive(sock)


def test_without_notify_socket_every_call_is_a_quiet_no_op(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Outside systemd nothing is sent, nothing fails and nothing is logged."""
    notifier = Notifier({})
    sent = [
        notifier.ready("up"),
        notifier.status("busy"),
        notifier.watchdog(),
        notifier.reloading(),
        notifier.stopping("bye"),
    ]
    notifier.close()
    assert (False, [False] * 5, []) == (notifier.enabled, sent, caplog.records)


def test_process_environment_is_the_default(
    monkeypatch: pytest.MonkeyPatch, listener: tuple[socket.socket, str]
) -> None:
    """Without an explicit mapping the notifier reads os.environ, as the daemon does under systemd."""
    sock, address = listener
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    monkeypatch.setenv("WATCHDOG_USEC", "10000000")
    notifier = Notifier()
    assert (True, 5.0) == (notifier.watchdog(), notifier.watchdog_interval)
    assert "WATCHDOG=1" == receive(sock)


@pytest.mark.parametrize(
    ("environment", "interval"),
    [
        ({"WATCHDOG_USEC": "60000000"}, 30.0),
        ({"WATCHDOG_USEC": "6000000", "WATCHDOG_PID": str(os.getpid())}, 3.0),
        ({"WATCHDOG_USEC": "6000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_PID": str(os.getpid())}, None),
        ({}, None),
    ],
)
def test_watchdog_interval_is_half_the_timeout_and_only_for_this_process(
    environment: dict[str, str], interval: float | None
) -> None:
    """Pings every WATCHDOG_USEC/2 seconds; none when unset, zero, unreadable, or meant for another PID."""
    assert (
        interval
        == Notifier({"NOTIFY_SOCKET": "/run/systemd/notify", **environment}).watchdog_interval
    )


def test_newlines_in_a_status_are_flattened(listener: tuple[socket.socket, str]) -> None:
    """A newline in a status cannot start a new assignment (here a forged STOPPING=1)."""
    sock, address = listener
    notifier = Notifier({"NOTIFY_SOCKET": address})
    assert notifier.status("reload refused:\nSTOPPING=1")
    assert notifier.ready("line one\nline two")
    assert ["STATUS=reload refused: STOPPING=1", "READY=1\nSTATUS=line one line two"] == [
        receive(sock),
        receive(sock),
    ]


def test_datagrams_come_one_per_message_in_order(listener: tuple[socket.socket, str]) -> None:
    """Each call is its own datagram; systemd applies them in the order sent."""
    sock, address = listener
    notifier = Notifier({"NOTIFY_SOCKET": address})
    notifier.reloading()
    notifier.ready("reloaded")
    notifier.stopping("stopping")
    kinds = [receive(sock).split("\n")[0] for _ in range(3)]
    assert ["RELOADING=1", "READY=1", "STOPPING=1"] == kinds
    assert nothing_waiting(sock)


def test_a_missing_socket_is_reported_once_and_never_raises(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """When systemd is not listening the calls return False and one warning names the socket."""
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    with caplog.at_level(logging.WARNING, logger="ocrwatch.notify"):
        sent = [notifier.ready("up"), notifier.watchdog(), notifier.status("x")]
    assert [False, False, False] == sent
    assert 1 == len(caplog.records) and str(tmp_path / "gone") in caplog.records[0].getMessage()


@pytest.mark.parametrize("address", ["vsock:2:1234", "relative/notify"])
def test_addresses_other_than_paths_and_abstract_names_are_not_used(
    address: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Only /path and @name are sd_notify addresses here; anything else is named in one warning."""
    with caplog.at_level(logging.WARNING, logger="ocrwatch.notify"):
        notifier = Notifier({"NOTIFY_SOCKET": address})
        sent = [notifier.ready("up"), notifier.watchdog()]
    assert (False, [False, False]) == (notifier.enabled, sent)
    assert 1 == len(caplog.records) and address in caplog.records[0].getMessage()
