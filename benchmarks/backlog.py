"""Backlog and restart: many small files, first new, then already done.

Ten inboxes share ``backlog_files`` distinct 64x64 PNGs. Three daemon runs,
each against a fresh fake server (answering at once) so its request count
is that run's alone:

1. new files: the daemon starts over the whole backlog; time from process
   start to the last ``.json``, requests sent, and the peak resident set
   (VmHWM) while the queue holds up to ``max_pending`` paths;
2. restart over files whose sidecars are current, state cache kept: time
   from process start to READY=1, and requests sent (should be none);
3. the same with the state cache (``state.sqlite3``) deleted, for
   information: the daemon must read the sidecars instead.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from benchmarks.harness import Context, Daemon, Row, Server, Target, daemon_config
from benchmarks.images import small_png
from tests.support.waiting import wait_until

NAME = "backlog"
INBOXES = 10
STORE_FILES = ("state.sqlite3", "state.sqlite3-wal", "state.sqlite3-shm")


def _count_results(inboxes: list[Path]) -> int:
    return sum(1 for inbox in inboxes for name in os.listdir(inbox) if name.endswith(".png.json"))


def _run(
    ctx: Context, root: Path, inboxes: list[Path], *, name: str, wait_done: int | None
) -> dict[str, float]:
    """One daemon run against its own server; what it cost."""
    facts: dict[str, float] = {}
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(Server(root, latency=0.0, name=f"server-{name}"))
        config = daemon_config(inboxes, state_dir=root / "state", endpoint=server.url)
        daemon = stack.enter_context(Daemon(root, config, name=f"daemon-{name}"))
        daemon.start()
        facts["ready_seconds"] = daemon.wait_ready(timeout=600)
        peak = 0
        if wait_done is not None:

            def done() -> bool:
                nonlocal peak
                peak = max(peak, daemon.memory_kib()["VmRSS"])
                return _count_results(inboxes) >= wait_done

            wait_until(done, 60 + wait_done * 0.1, message=f"{wait_done} sidecars", interval=0.2)
            facts["done_seconds"] = time.perf_counter() - daemon.started_at
        else:
            # Long enough for a wrongly queued file to reach the server.
            time.sleep(ctx.size.settle_seconds)
        memory = daemon.memory_kib()
        facts["hwm_mib"] = memory["VmHWM"] / 1024
        facts["rss_mib"] = memory["VmRSS"] / 1024
        facts["sampled_peak_mib"] = max(peak, memory["VmRSS"]) / 1024
        daemon.stop()
        requests = server.stop()
        facts["requests"] = float(requests) if requests is not None else float("nan")
    return facts


def run(ctx: Context) -> list[Row]:
    count = ctx.size.backlog_files
    root = ctx.folder(NAME)
    inboxes = [ctx.folder(NAME, f"inbox-{index}") for index in range(INBOXES)]
    ctx.log(f"backlog: writing {count} small PNGs into {INBOXES} inboxes")
    for index in range(count):
        (inboxes[index % INBOXES] / f"small-{index:05d}.png").write_bytes(small_png(index))
    # Files written just now would count as still settling; make them look a minute old.
    past = time.time() - 60
    for inbox in inboxes:
        for entry in os.scandir(inbox):
            os.utime(entry.path, (past, past))
    new = _run(ctx, root, inboxes, name="new", wait_done=count)
    ctx.log(
        f"backlog new: {count} files in {new['done_seconds']:.1f} s, {new['requests']:.0f} requests"
    )
    restart = _run(ctx, root, inboxes, name="restart", wait_done=None)
    ctx.log(
        f"backlog restart: READY in {restart['ready_seconds']:.2f} s, {restart['requests']:.0f} requests"
    )
    for name in STORE_FILES:
        with contextlib.suppress(FileNotFoundError):
            (root / "state" / name).unlink()
    cold = _run(ctx, root, inboxes, name="no-cache", wait_done=None)
    ctx.log(
        f"backlog no cache: READY in {cold['ready_seconds']:.2f} s, {cold['requests']:.0f} requests"
    )
    return _rows(count, new, restart, cold, ctx.size.settle_seconds)


def _rows(
    count: int,
    new: dict[str, float],
    restart: dict[str, float],
    cold: dict[str, float],
    settle: float,
) -> list[Row]:
    return [
        Row(
            NAME,
            f"restart over {count:,} current files: start to READY=1",
            restart["ready_seconds"],
            "s",
            baseline=cold["ready_seconds"],
            baseline_label="same, state cache deleted",
            target=Target("<=", 5.0, text="≤ 5 s"),
            notes=f"{INBOXES} inboxes of 64x64 PNGs; requests after READY watched for {settle:g} s",
            details={"restart": restart, "no_cache": cold},
        ),
        Row(
            NAME,
            "restart: OCR requests at the server",
            restart["requests"],
            "count",
            baseline=cold["requests"],
            baseline_label="same, state cache deleted",
            target=Target("<=", 0.0, text="0"),
        ),
        Row(
            NAME,
            f"{count:,} new files: start to all sidecars",
            new["done_seconds"],
            "s",
            notes=f"{count / new['done_seconds']:.0f} files/s, {new['requests']:.0f} requests, server 0 s",
            details={"new": new},
        ),
        Row(
            NAME,
            f"{count:,} new files: peak resident memory (VmHWM)",
            new["hwm_mib"],
            "MiB",
            baseline=restart["hwm_mib"],
            baseline_label="restart with nothing to do",
            notes="queue memory bounded by max_pending (10,000 paths)",
        ),
    ]
