"""``ocrwatch once`` as a whole process, from its start to its exit, beside the seed's script.

Every figure times whole processes: the interpreter's start, the imports,
the work and the exit, as a user who types the command waits for them. The
two sides take turns round by round (which goes first alternates) against
the same fake ocr.space server, and each round gets fresh copies of the
files (hard links), so no sidecar is current. ocrwatch runs with a config
naming the rounds' parent folder as its inbox and is given the round's file
or folder (``ocrwatch once -c CONFIG PATH``); its state folder persists
across rounds, as it would between a user's runs.

1. One small image: a ~1 MP JPEG (about 260 kB) against a server answering
   at once. ocrwatch has no crop rule, so the file goes as it is (the
   sidecar's ``encodes`` says whether it did); the seed's script
   (``python -m benchmarks.baselines seed-once``: imports OpenCV and
   requests, reads the image, crops 400 columns, encodes at quality 90,
   posts, writes ``X.txt``) does the same single request its way. Target:
   ocrwatch's wall time at most 1.5x the seed's.
2. A4 scans: 300-dpi colour scans (~2.7 MB JPEG each, so ocrwatch must fit
   them under its 1 MiB budget) against a server answering after 0.5 s;
   both sides crop 400 columns off the left (ocrwatch's ``crop: {left:
   400}``). ocrwatch's files per second over the seed's loop's (the same
   script, one image after another). Target: at least 5x. With 2 cores its
   ceiling is about 7x: decoding and fitting the scans, and start-up, are
   the rest of ocrwatch's time.

Bytecode: both sides keep Python's compiled modules in a scratch folder
(``PYTHONPYCACHEPREFIX``) and run once untimed before the rounds, as an
installed package has its ``.pyc`` files. Without that, an environment with
``PYTHONDONTWRITEBYTECODE`` would make ocrwatch compile its own modules at
every start while the seed's libraries come compiled from their wheels.
The notes also give the time of ``ocrwatch once`` with nothing to do (its
start-up and exit alone).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.harness import (
    API_KEY,
    REPO,
    Context,
    Row,
    Server,
    Target,
    child_env,
    daemon_config,
    link_or_copy,
    listed,
    median,
    sidecar,
    write_config,
)
from benchmarks.images import a4_scans, megapixel_jpeg

NAME = "once"
CROP_LEFT = 400
"""The seed's ``img[0:height, 400:width]``; ocrwatch's A4 inbox uses the same crop."""
SCAN_LATENCY = 0.5
FIRST_SCAN_SEED = 1
IMAGE_SEED = 7
RUN_TIMEOUT = 120.0
"""Seconds one process may take, plus :data:`SCAN_TIMEOUT_PER_FILE` per A4 scan."""
SCAN_TIMEOUT_PER_FILE = 5.0
SINGLE_TARGET = 1.5
SCANS_TARGET = 5.0


@dataclass(frozen=True)
class Scale:
    """How much one size does: rounds of the single image, and A4 scans per round and rounds."""

    single_rounds: int
    scans: int
    scan_rounds: int


SCALES = {
    "tiny": Scale(single_rounds=1, scans=2, scan_rounds=1),
    "small": Scale(single_rounds=5, scans=8, scan_rounds=2),
    "full": Scale(single_rounds=15, scans=24, scan_rounds=3),
}


@dataclass
class _Sides:
    """Seconds per round of each side, and what the runs left behind."""

    ours: list[float]
    theirs: list[float]
    encodes: list[int]
    """ocrwatch's encodes per uploaded file (0: the file went as it is)."""
    seed_largest: int = 0
    """The seed's largest upload in bytes (it does not fit a budget)."""


def run(ctx: Context) -> list[Row]:
    scale = SCALES[ctx.size_name]
    root = ctx.folder(NAME)
    pycache = ctx.folder(NAME, "pycache")
    with contextlib.ExitStack() as stack:
        quick = stack.enter_context(Server(root, latency=0.0, name="server-once-0"))
        slow = stack.enter_context(Server(root, latency=SCAN_LATENCY, name="server-once-slow"))
        idle = _idle_seconds(ctx, quick, pycache, rounds=max(1, scale.single_rounds // 2))
        image = megapixel_jpeg(IMAGE_SEED)
        single = _single_image(ctx, quick, pycache, image, rounds=scale.single_rounds)
        scans = _a4_scans(ctx, slow, pycache, scale)
        served = quick.stop(), slow.stop()
    return [
        _single_row(single, idle, served[0], image_bytes=len(image)),
        _scans_row(scans, scale, served[1]),
    ]


# --------------------------------------------------------------------------
# Processes


def _env(pycache: Path, **extra: str) -> dict[str, str]:
    env = child_env(PYTHONPYCACHEPREFIX=str(pycache), **extra)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _timed(command: Sequence[str], *, env: dict[str, str], log: Path, timeout: float) -> float:
    """Wall seconds of ``command`` from its start to its exit; RuntimeError if it fails.

    A blocking ``waitpid`` sees the exit at once (``subprocess.run`` with a timeout polls,
    up to 50 ms apart: a tenth of the one-image figure); a timer kills a run past ``timeout``.
    """
    with log.open("ab") as output:
        started = time.perf_counter()
        process = subprocess.Popen(
            command,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO,
            start_new_session=True,
        )
        killer = threading.Timer(timeout, os.killpg, (process.pid, signal.SIGKILL))
        killer.start()
        try:
            _, status = os.waitpid(process.pid, 0)
        finally:
            seconds = time.perf_counter() - started
            killer.cancel()
    process.returncode = code = os.waitstatus_to_exitcode(status)
    if code != 0:
        tail = log.read_text(errors="replace")[-2000:]
        raise RuntimeError(
            f"{command[2:4]} exited {code} after {seconds:.1f} s; log {log}:\n{tail}"
        )
    return seconds


class _Ocrwatch:
    """``ocrwatch once -c CONFIG PATH`` with an inbox holding every round's files.

    The inbox is recursive, so that its rules (``inbox``) apply to the rounds' sub-folders.
    """

    def __init__(self, ctx: Context, name: str, server: Server, pycache: Path, **inbox: object):
        self.work = ctx.folder(NAME, name)
        self.inbox = ctx.folder(NAME, name, "inbox")
        config = daemon_config(
            [self.inbox],
            state_dir=self.work / "state",
            endpoint=server.url,
            inbox_options={"recursive": True, **inbox},
        )
        self.config = write_config(self.work / "config.yaml", config)
        self.env = _env(pycache, OCRSPACE_API_KEY=API_KEY, XDG_STATE_HOME=str(self.work / "xdg"))
        self.log = self.work / "once.log"

    def run(self, path: Path, *, timeout: float) -> float:
        command = [sys.executable, "-m", "ocrwatch", "once", "-c", str(self.config), str(path)]
        return _timed(command, env=self.env, log=self.log, timeout=timeout)


class _Seed:
    """``python -m benchmarks.baselines seed-once`` against ``server``."""

    def __init__(self, ctx: Context, name: str, server: Server, pycache: Path) -> None:
        self.work = ctx.folder(NAME, name)
        self.env = _env(pycache)
        self.log = self.work / "seed.log"
        self.arguments = [
            "seed-once",
            "--endpoint",
            server.url,
            "--api-key",
            API_KEY,
            "--left",
            str(CROP_LEFT),
        ]

    def run(self, path: Path, *, timeout: float) -> float:
        command = [sys.executable, "-m", "benchmarks.baselines", *self.arguments, str(path)]
        return _timed(command, env=self.env, log=self.log, timeout=timeout)

    def largest_upload(self) -> int:
        """The largest upload of the last run, from its ``done N TOTAL MAX`` line."""
        lines = self.log.read_text(errors="replace").splitlines()
        return int([line for line in lines if line.startswith("done ")][-1].split()[3])


def _place(files: Sequence[Path], folder: Path) -> list[Path]:
    """Fresh links to ``files`` in a new ``folder``: no sidecar of a previous round is there."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    placed = []
    for file in files:
        link_or_copy(file, folder / file.name)
        placed.append(folder / file.name)
    return placed


def _check(paths: Sequence[Path], suffix: str, who: str) -> None:
    missing = [path.name for path in paths if not sidecar(path, suffix).exists()]
    if missing:
        raise RuntimeError(f"{who} left no {suffix} for {', '.join(missing)}")


def _encodes(path: Path, *, crop_left: int | None) -> int:
    """The encodes ocrwatch's upload of ``path`` took; RuntimeError unless it was cropped as asked."""
    page = json.loads(sidecar(path).read_text(encoding="utf-8"))["pages"][0]
    cropped = None if page["crop"] is None else page["crop"]["x"]
    if cropped != crop_left:
        raise RuntimeError(f"{path.name}: cropped at {cropped}, not {crop_left}")
    return int(page["results"][0]["upload"]["encodes"])


def _alternating(number: int) -> tuple[str, str]:
    return ("ours", "theirs") if number % 2 == 0 else ("theirs", "ours")


# --------------------------------------------------------------------------
# Measurements


def _idle_seconds(ctx: Context, server: Server, pycache: Path, *, rounds: int) -> list[float]:
    """``ocrwatch once`` on an empty folder: start-up and exit alone (after a warm-up run)."""
    ours = _Ocrwatch(ctx, "idle", server, pycache)
    empty = ctx.folder(NAME, "idle", "inbox", "empty")
    ours.run(empty, timeout=RUN_TIMEOUT)
    return [ours.run(empty, timeout=RUN_TIMEOUT) for _ in range(rounds)]


def _single_image(
    ctx: Context, server: Server, pycache: Path, data: bytes, *, rounds: int
) -> _Sides:
    source = ctx.folder(NAME, "single-source") / "page.jpg"
    source.write_bytes(data)
    ours = _Ocrwatch(ctx, "single", server, pycache)
    theirs = _Seed(ctx, "single-seed", server, pycache)
    sides = _Sides([], [], [])
    # Untimed: both sides' bytecode lands in the cache.
    ours.run(_place([source], ours.inbox / "warm-up")[0], timeout=RUN_TIMEOUT)
    theirs.run(_place([source], theirs.work / "warm-up")[0], timeout=RUN_TIMEOUT)
    for number in range(rounds):
        for side in _alternating(number):
            if side == "ours":
                image = _place([source], ours.inbox / f"r{number}")[0]
                sides.ours.append(ours.run(image, timeout=RUN_TIMEOUT))
                _check([image], ".json", "ocrwatch")
                sides.encodes.append(_encodes(image, crop_left=None))
            else:
                image = _place([source], theirs.work / f"r{number}")[0]
                sides.theirs.append(theirs.run(image, timeout=RUN_TIMEOUT))
                _check([image], ".txt", "the seed's script")
        ctx.log(
            f"once, one image, round {number + 1}: ocrwatch {sides.ours[-1]:.3f} s, "
            f"seed's script {sides.theirs[-1]:.3f} s"
        )
    return sides


def _a4_scans(ctx: Context, server: Server, pycache: Path, scale: Scale) -> _Sides:
    scans = [
        scan.path
        for scan in a4_scans(
            range(FIRST_SCAN_SEED, FIRST_SCAN_SEED + scale.scans), ctx.cache_dir, log=ctx.log
        )
    ]
    ours = _Ocrwatch(ctx, "scans", server, pycache, crop={"left": CROP_LEFT})
    theirs = _Seed(ctx, "scans-seed", server, pycache)
    timeout = RUN_TIMEOUT + SCAN_TIMEOUT_PER_FILE * len(scans)
    sides = _Sides([], [], [])
    ours.run(_place(scans[:1], ours.inbox / "warm-up")[0], timeout=RUN_TIMEOUT)
    theirs.run(_place(scans[:1], theirs.work / "warm-up")[0], timeout=RUN_TIMEOUT)
    for number in range(scale.scan_rounds):
        for side in _alternating(number):
            if side == "ours":
                folder = ours.inbox / f"r{number}"
                placed = _place(scans, folder)
                sides.ours.append(ours.run(folder, timeout=timeout))
                _check(placed, ".json", "ocrwatch")
                sides.encodes.extend(_encodes(path, crop_left=CROP_LEFT) for path in placed)
            else:
                folder = theirs.work / f"r{number}"
                placed = _place(scans, folder)
                sides.theirs.append(theirs.run(folder, timeout=timeout))
                _check(placed, ".txt", "the seed's loop")
                sides.seed_largest = max(sides.seed_largest, theirs.largest_upload())
        ctx.log(
            f"once, {len(scans)} A4 scans, round {number + 1}: ocrwatch {sides.ours[-1]:.2f} s, "
            f"seed's loop {sides.theirs[-1]:.2f} s ({sides.theirs[-1] / sides.ours[-1]:.2f}x)"
        )
    return sides


# --------------------------------------------------------------------------
# Rows


def _single_row(sides: _Sides, idle: list[float], served: int | None, *, image_bytes: int) -> Row:
    went_as_is = sum(1 for encodes in sides.encodes if encodes == 0)
    notes = (
        f"~1 MP JPEG ({image_bytes / 1000:.0f} kB), server answering at once; whole "
        f"processes, start to exit, median of {len(sides.ours)} round(s). Seconds per round: "
        f"ocrwatch {listed(sides.ours)}; seed's script {listed(sides.theirs)}. ocrwatch sent "
        f"the file as it is in {went_as_is} of {len(sides.encodes)} rounds. `ocrwatch once` "
        f"with nothing to do: {listed(idle)} s. Requests served: {served}"
    )
    return Row(
        NAME,
        "once: one ~1 MP JPEG, whole process (vs the seed's script, one request)",
        median(sides.ours),
        "s",
        baseline=median(sides.theirs),
        baseline_label="seed's script: import cv2+requests, crop, q90, post, write .txt",
        target=Target("<=", SINGLE_TARGET, on="ratio", text=f"≤ {SINGLE_TARGET:g}×"),
        notes=notes,
        details={
            "ocrwatch_seconds": sides.ours,
            "seed_seconds": sides.theirs,
            "idle_seconds": idle,
            "encodes": sides.encodes,
            "requests_served": served,
        },
        rounds=list(sides.ours),
        baseline_rounds=list(sides.theirs),
    )


def _scans_row(sides: _Sides, scale: Scale, served: int | None) -> Row:
    ours = [scale.scans / seconds for seconds in sides.ours]
    theirs = [scale.scans / seconds for seconds in sides.theirs]
    notes = (
        f"{scale.scans} A4 300-dpi colour scans (~2.7 MB JPEG q92), crop left {CROP_LEFT} on both "
        f"sides, server {SCAN_LATENCY:g} s; whole processes, start to exit, median of "
        f"{len(ours)} round(s). Seconds per round: ocrwatch {listed(sides.ours, 2)}; seed's "
        f"loop {listed(sides.theirs, 2)}. ocrwatch's encodes per upload: mean "
        f"{sum(sides.encodes) / max(1, len(sides.encodes)):.2f}; the seed's largest upload "
        f"{sides.seed_largest / 1e6:.2f} MB (it fits no budget; the fake server takes it). "
        f"Requests served: {served}"
    )
    return Row(
        NAME,
        f"once: {scale.scans} A4 scans, server {SCAN_LATENCY:g} s, whole process (vs the seed's loop)",
        median(ours),
        "files/s",
        baseline=median(theirs),
        baseline_label="seed's loop: crop, q90, post, 1 at a time, whole process",
        target=Target(">=", SCANS_TARGET, on="ratio", text=f"≥ {SCANS_TARGET:g}×"),
        notes=notes,
        details={
            "ocrwatch_seconds": sides.ours,
            "seed_seconds": sides.theirs,
            "files": scale.scans,
            "latency": SCAN_LATENCY,
            "encodes": sides.encodes,
            "requests_served": served,
        },
        rounds=ours,
        baseline_rounds=theirs,
    )
