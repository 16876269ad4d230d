"""What every measurement shares: sizes, result rows, the processes under test, and clocks.

Owns: the size presets; :class:`Row` and :class:`Target` (one line of the
report); starting and stopping the fake ocr.space server, the real
``ocrwatch run`` daemon and the baseline programs as subprocesses; an
inotify listener that timestamps files as they are closed or renamed into a
folder; and reading a process's CPU time and memory from ``/proc``.

Deliberately not here: what is measured (one module per measurement) and
how the report looks (:mod:`benchmarks.report`).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml

REPO = Path(__file__).resolve().parents[1]
API_KEY = "BENCH-KEY"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
SERVER_START_TIMEOUT = 30.0
POLL_SECONDS = 0.005


# --------------------------------------------------------------------------
# Sizes


@dataclass(frozen=True)
class Size:
    """How much of everything one run does."""

    latency_images: int
    latency_baseline_images: int
    throughput_images: int
    throughput_rounds: int
    throughput_latency: float
    cpu_images: int
    cpu_a4: int
    cpu_rounds: int
    fit_corpus: int | None
    """Corpus images for the upload-fit check; None: all of them."""
    fit_a4: int
    fit_a4_lines: int | None
    """Read only the top lines of each A4 scan (toy scale); None: the whole page."""
    idle_seconds: float
    settle_seconds: float
    """Quiet time after READY=1 before idle measurements, and after restarts for stray requests."""
    backlog_files: int
    accuracy_pages: int | None
    accuracy_repeats: int
    cluster_images: int
    """Files in each cluster throughput batch; a multiple of 48 fills every wave of 8, 16 and 24."""
    cluster_rounds: int
    cluster_latency: float
    cluster_drops: int
    """Files dropped one at a time on each side of the queue-overhead comparison."""


SIZES: dict[str, Size] = {
    "tiny": Size(
        latency_images=4,
        latency_baseline_images=1,
        throughput_images=4,
        throughput_rounds=1,
        throughput_latency=0.2,
        cpu_images=4,
        cpu_a4=1,
        cpu_rounds=1,
        fit_corpus=3,
        fit_a4=1,
        fit_a4_lines=6,
        idle_seconds=2.0,
        settle_seconds=0.5,
        backlog_files=200,
        accuracy_pages=2,
        accuracy_repeats=1,
        cluster_images=24,
        cluster_rounds=1,
        cluster_latency=0.2,
        cluster_drops=4,
    ),
    "small": Size(
        latency_images=40,
        latency_baseline_images=4,
        throughput_images=40,
        throughput_rounds=2,
        throughput_latency=1.0,
        cpu_images=60,
        cpu_a4=6,
        cpu_rounds=3,
        fit_corpus=None,
        fit_a4=3,
        fit_a4_lines=None,
        idle_seconds=20.0,
        settle_seconds=2.0,
        backlog_files=2000,
        accuracy_pages=None,
        accuracy_repeats=1,
        cluster_images=240,
        cluster_rounds=2,
        cluster_latency=1.0,
        cluster_drops=30,
    ),
    "full": Size(
        latency_images=200,
        latency_baseline_images=20,
        throughput_images=400,
        throughput_rounds=2,
        throughput_latency=1.0,
        cpu_images=200,
        cpu_a4=20,
        cpu_rounds=4,
        fit_corpus=None,
        fit_a4=10,
        fit_a4_lines=None,
        idle_seconds=60.0,
        settle_seconds=2.0,
        backlog_files=10_000,
        accuracy_pages=None,
        accuracy_repeats=3,
        cluster_images=480,
        cluster_rounds=3,
        cluster_latency=1.0,
        cluster_drops=100,
    ),
}


@dataclass
class Context:
    """One run's settings and scratch space."""

    size_name: str
    size: Size
    workdir: Path
    cache_dir: Path
    install_missing: bool = True
    quiet: bool = False

    def log(self, message: str) -> None:
        """A progress line on stderr (the table goes to stdout)."""
        if not self.quiet:
            print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    def folder(self, *parts: str) -> Path:
        """A fresh folder under the run's scratch space."""
        path = self.workdir.joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True)
        return path


# --------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class Target:
    """A bound on one number of a row: the value, the ratio, or value minus baseline."""

    op: str
    """``<=`` or ``>=``."""
    bound: float
    on: str = "value"
    """``value``, ``ratio`` or ``delta`` (value - baseline)."""
    text: str = ""

    def met(self, row: Row) -> bool | None:
        subject = {
            "value": row.value,
            "ratio": row.ratio,
            "delta": None
            if row.value is None or row.baseline is None
            else row.value - row.baseline,
        }[self.on]
        if subject is None:
            return None
        return subject <= self.bound if self.op == "<=" else subject >= self.bound


UNSTABLE_SPREAD = 0.10
"""Rounds further apart than this fraction of their median mark a figure unstable."""


@dataclass
class Row:
    """One line of the report."""

    measurement: str
    name: str
    value: float | None
    unit: str
    baseline: float | None = None
    baseline_label: str = ""
    target: Target | None = None
    notes: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    rounds: list[float] = field(default_factory=list)
    """The value in each round (same unit), when it was measured in rounds."""
    baseline_rounds: list[float] = field(default_factory=list)
    """The baseline in each round, when it was measured beside the value round by round."""

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.baseline:
            return None
        return self.value / self.baseline

    @property
    def rounds_are_ratios(self) -> bool:
        """True when the target judges the ratio and the baseline was measured each round."""
        return (
            self.target is not None
            and self.target.on == "ratio"
            and len(self.baseline_rounds) == len(self.rounds)
        )

    @property
    def judged_rounds(self) -> list[float]:
        """Per round, what the target judges: the ratio when the baseline was measured each round."""
        if self.rounds_are_ratios:
            return [
                value / baseline
                for value, baseline in zip(self.rounds, self.baseline_rounds, strict=True)
                if baseline
            ]
        return list(self.rounds)

    @property
    def spread(self) -> float | None:
        """(max - min) / median of :attr:`judged_rounds`; None with fewer than two rounds."""
        values = self.judged_rounds
        if len(values) < 2 or median(values) == 0:
            return None
        return (max(values) - min(values)) / abs(median(values))

    @property
    def unstable(self) -> bool:
        """True when rounds differ by more than :data:`UNSTABLE_SPREAD` of their median."""
        spread = self.spread
        return spread is not None and spread > UNSTABLE_SPREAD

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.target.met(self)


# --------------------------------------------------------------------------
# Small helpers


def percentile(values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` quantile with linear interpolation between order statistics."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(values: Sequence[float]) -> float:
    return percentile(values, 0.5)


def listed(values: Sequence[float], digits: int = 3) -> str:
    """Per-round values for a row's notes: ``1.234, 1.250``."""
    return ", ".join(f"{value:.{digits}f}" for value in values)


def load_average() -> tuple[float, float, float]:
    one, five, fifteen = Path("/proc/loadavg").read_text().split()[:3]
    return float(one), float(five), float(fifteen)


def write_config(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def daemon_config(
    inboxes: Sequence[Path],
    *,
    state_dir: Path,
    endpoint: str | None,
    engine: str = "ocrspace",
    inbox_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A config with ocrwatch's defaults except for what the measurement needs."""
    config: dict[str, Any] = {"engine": engine, "state_dir": str(state_dir)}
    if endpoint is not None:
        config["ocrspace"] = {"endpoint": endpoint}
    config["inboxes"] = [{"path": str(inbox), **(inbox_options or {})} for inbox in inboxes]
    return config


def drop_file(path: Path, data: bytes) -> float:
    """Write ``data`` to its final name and close, as a scanner would; the close's timestamp."""
    with open(path, "wb") as handle:
        handle.write(data)
    return time.perf_counter()


def link_or_copy(source: Path, target: Path) -> None:
    """A hard link (no data written while measuring), or a copy across file systems."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


# --------------------------------------------------------------------------
# /proc

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of process ``pid`` (all its threads, dead ones included)."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2 :].split()
    # After "pid (comm) ": state is field 0, utime field 11, stime field 12.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak resident set) of ``pid`` in KiB."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values


# --------------------------------------------------------------------------
# inotify

_IN_CLOSE_WRITE = 0x00000008
_IN_MOVED_TO = 0x00000080
_IN_Q_OVERFLOW = 0x00004000
_IN_CLOEXEC = 0o2000000
_IN_NONBLOCK = 0o4000
_EVENT_HEADER = struct.Struct("iIII")


class Arrivals:
    """When each file was closed after writing, or renamed, into the watched folders.

    Timestamps are ``time.perf_counter()`` taken as the kernel's event is read,
    by a thread that does nothing else, so they are comparable with a writer's
    own ``perf_counter()`` after its ``close()``.
    """

    def __init__(self) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._fd = self._libc.inotify_init1(_IN_CLOEXEC | _IN_NONBLOCK)
        if self._fd < 0:
            number = ctypes.get_errno()
            raise OSError(number, f"inotify_init1: {os.strerror(number)}")
        self._folders: dict[int, Path] = {}
        self._times: dict[Path, float] = {}
        self._cond = threading.Condition()
        self.overflowed = False
        self._stop_read, self._stop_write = os.pipe()
        self._thread = threading.Thread(target=self._read_loop, name="arrivals", daemon=True)
        self._thread.start()

    def watch(self, folder: Path) -> None:
        descriptor = self._libc.inotify_add_watch(
            self._fd, os.fsencode(folder), _IN_CLOSE_WRITE | _IN_MOVED_TO
        )
        if descriptor < 0:
            number = ctypes.get_errno()
            raise OSError(number, f"inotify_add_watch {folder}: {os.strerror(number)}")
        with self._cond:
            self._folders[descriptor] = folder

    def _read_loop(self) -> None:
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        poller.register(self._stop_read, select.POLLIN)
        while True:
            ready = {fd for fd, _ in poller.poll()}
            if self._stop_read in ready:
                return
            try:
                buffer = os.read(self._fd, 1 << 16)
            except BlockingIOError:
                continue
            now = time.perf_counter()
            offset = 0
            with self._cond:
                while offset < len(buffer):
                    descriptor, mask, _cookie, length = _EVENT_HEADER.unpack_from(buffer, offset)
                    name = buffer[
                        offset + _EVENT_HEADER.size : offset + _EVENT_HEADER.size + length
                    ]
                    offset += _EVENT_HEADER.size + length
                    if mask & _IN_Q_OVERFLOW:
                        self.overflowed = True
                        continue
                    folder = self._folders.get(descriptor)
                    if folder is not None and name:
                        path = folder / os.fsdecode(name.rstrip(b"\0"))
                        self._times.setdefault(path, now)
                self._cond.notify_all()

    def time_of(self, path: Path) -> float | None:
        with self._cond:
            return self._times.get(path)

    def wait(self, path: Path, timeout: float) -> float:
        """The arrival time of ``path``, waiting up to ``timeout`` seconds for it."""
        with self._cond:
            if not self._cond.wait_for(lambda: path in self._times or self.overflowed, timeout):
                raise TimeoutError(f"{path} did not appear within {timeout:g} s")
            if path not in self._times:
                raise RuntimeError("the inotify queue overflowed; arrival times were lost")
            return self._times[path]

    def wait_all(self, paths: Sequence[Path], timeout: float) -> list[float]:
        """Arrival times of every path in ``paths``, waiting up to ``timeout`` in total."""
        deadline = time.monotonic() + timeout
        return [self.wait(path, max(0.0, deadline - time.monotonic())) for path in paths]

    def close(self) -> None:
        os.write(self._stop_write, b"x")
        self._thread.join(5)
        for fd in (self._fd, self._stop_read, self._stop_write):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> Arrivals:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def sidecar(image: Path, suffix: str = ".json") -> Path:
    return image.with_name(image.name + suffix)


# --------------------------------------------------------------------------
# Processes


def _stop_process(process: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> int:
    """SIGTERM, wait, then SIGKILL if it would not stop; the exit status."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait(10)


def _read_line(stream: IO[bytes], timeout: float, what: str) -> str:
    """One line from a child's stdout, or TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no line from {what} within {timeout:g} s")
        readable, _, _ = select.select([stream], [], [], remaining)
        if readable:
            line = stream.readline()
            if not line:
                raise RuntimeError(f"{what} closed its output")
            return line.decode(errors="replace").strip()


def child_env(**extra: str) -> dict[str, str]:
    """The environment for children: ours, minus anything that would steer ocrwatch elsewhere."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key
        not in (
            "OCRWATCH_CONFIG",
            "OCRSPACE_API_KEY",
            "NOTIFY_SOCKET",
            "JOURNAL_STREAM",
            "CREDENTIALS_DIRECTORY",
            "STATE_DIRECTORY",
            "WATCHDOG_USEC",
            "WATCHDOG_PID",
        )
    }
    python_path = [str(REPO), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(python_path)
    env.update(extra)
    return env


class Server:
    """``python -m tests.support.ocrspace_server`` in text mode, as a subprocess."""

    def __init__(self, workdir: Path, *, latency: float, name: str = "server") -> None:
        self.log_path = workdir / f"{name}.log"
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.support.ocrspace_server",
                "--port",
                "0",
                "--latency",
                repr(latency),
                "--mode",
                "text",
                "--api-key",
                API_KEY,
            ],
            stdout=subprocess.PIPE,
            stderr=self._log,
            cwd=REPO,
            env=child_env(),
        )
        assert self.process.stdout is not None
        self.url = _read_line(
            self.process.stdout, SERVER_START_TIMEOUT, "the fake ocr.space server"
        )
        if not self.url.startswith("http://"):
            raise RuntimeError(f"unexpected first line from the fake server: {self.url!r}")

    def stop(self) -> int | None:
        """Stop serving; the number of requests it served (None if it did not say)."""
        _stop_process(self.process)
        assert self.process.stdout is not None
        rest = self.process.stdout.read().decode(errors="replace")
        self._log.close()
        found = re.search(r"served (\d+) requests", rest)
        return int(found.group(1)) if found else None

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.process.poll() is None:
            self.stop()


class NotifySocket:
    """A ``$NOTIFY_SOCKET`` that timestamps each sd_notify datagram as it arrives."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.bind(str(path))
        self._socket.settimeout(0.1)
        self._messages: list[tuple[float, dict[str, str]]] = []
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._listen, name="notify", daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while not self._closed:
            try:
                data = self._socket.recv(65536)
            except (TimeoutError, OSError):
                continue
            now = time.perf_counter()
            fields = dict(
                line.split("=", 1)
                for line in data.decode(errors="replace").splitlines()
                if "=" in line
            )
            with self._cond:
                self._messages.append((now, fields))
                self._cond.notify_all()

    def count(self) -> int:
        with self._cond:
            return len(self._messages)

    def wait_for(self, key: str, *, after: int, timeout: float, alive: Callable[[], bool]) -> float:
        """When the first message with ``key`` after message number ``after`` came."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for when, fields in self._messages[after:]:
                    if key in fields:
                        return when
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no {key} within {timeout:g} s")
                if not alive():
                    raise RuntimeError("the daemon exited before it was ready")
                self._cond.wait(min(remaining, 0.1))

    def close(self) -> None:
        self._closed = True
        self._thread.join(2)
        self._socket.close()
        with contextlib.suppress(OSError):
            self.path.unlink()


class Daemon:
    """The real ``ocrwatch run -c CONFIG`` as a subprocess, told to report to our notify socket."""

    def __init__(
        self,
        workdir: Path,
        config: dict[str, Any],
        *,
        name: str = "daemon",
        program: Sequence[str] = ("-m", "ocrwatch"),
    ) -> None:
        """``program``: what follows the interpreter (a patched entry point, when profiling a change)."""
        self.workdir = workdir
        self.name = name
        self.program = tuple(program)
        self.config_path = write_config(workdir / f"{name}.yaml", config)
        self.log_path = workdir / f"{name}.log"
        self.notify = NotifySocket(workdir / f"{name}-{time.monotonic_ns()}.sock")
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> Daemon:
        """Start the process; :meth:`wait_ready` waits for READY=1."""
        self._log = self.log_path.open("ab")
        self._readies = self.notify.count()
        env = child_env(
            NOTIFY_SOCKET=str(self.notify.path),
            OCRSPACE_API_KEY=API_KEY,
            XDG_STATE_HOME=str(self.workdir / "xdg-state"),
        )
        self.started_at = time.perf_counter()
        self.process = subprocess.Popen(
            [sys.executable, *self.program, "run", "-c", str(self.config_path)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            env=env,
        )
        return self

    def wait_ready(self, timeout: float = START_TIMEOUT) -> float:
        """Seconds from the process start to its READY=1."""
        assert self.process is not None
        process = self.process
        try:
            when = self.notify.wait_for(
                "READY", after=self._readies, timeout=timeout, alive=lambda: process.poll() is None
            )
        except (TimeoutError, RuntimeError) as error:
            raise RuntimeError(
                f"{self.name}: {error}; log {self.log_path}:\n{self.log()[-3000:]}"
            ) from None
        return when - self.started_at

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def memory_kib(self) -> dict[str, int]:
        return memory_kib(self.pid)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> int:
        assert self.process is not None
        code = _stop_process(self.process)
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.stop()
        self.notify.close()

    def __enter__(self) -> Daemon:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class Baseline:
    """A program from :mod:`benchmarks.baselines` as a subprocess; it says ``ready`` when set up."""

    def __init__(self, workdir: Path, arguments: Sequence[str], *, name: str) -> None:
        self.name = name
        self.log_path = workdir / f"{name}.log"
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.baselines", *arguments],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            cwd=REPO,
            env=child_env(),
        )

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        assert self.process.stdout is not None
        line = _read_line(self.process.stdout, timeout, self.name)
        if line != "ready":
            raise RuntimeError(f"{self.name} said {line!r} instead of ready")

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line.encode() + b"\n")
        self.process.stdin.flush()

    def read(self, timeout: float) -> str:
        assert self.process.stdout is not None
        return _read_line(self.process.stdout, timeout, self.name)

    @property
    def pid(self) -> int:
        return self.process.pid

    def close(self) -> None:
        if self.process.poll() is None:
            if self.process.stdin is not None:
                with contextlib.suppress(OSError):
                    self.process.stdin.close()
            _stop_process(self.process)
        self._log.close()

    def __enter__(self) -> Baseline:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def wait_for_quiet(
    ctx: Context, *, threshold: float, patience: float, pause: float = 15.0
) -> float:
    """Wait up to ``patience`` seconds for the 1-minute load average to drop below ``threshold``; the last load."""
    deadline = time.monotonic() + patience
    load = load_average()[0]
    while load >= threshold and time.monotonic() < deadline:
        ctx.log(f"load {load:.2f} >= {threshold:g}; waiting for a quieter machine")
        time.sleep(pause)
        load = load_average()[0]
    return load
