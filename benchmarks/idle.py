"""Idle cost: ten inboxes, nothing arriving; the daemon's CPU share and resident memory.

Two daemons run side by side, one per engine (ocr.space, the target; the
local Tesseract engine, for information), each watching ten empty inboxes of
its own. After READY=1 and a short settle, each one's CPU time is read from
``/proc/PID/stat`` at the start and end of the window, and VmRSS at the end.
"""

from __future__ import annotations

import contextlib
import os
import time

from benchmarks.harness import Context, Daemon, Row, Server, Target, daemon_config

NAME = "idle"
INBOXES = 10
ENGINES = ("ocrspace", "tesseract")


def run(ctx: Context) -> list[Row]:
    seconds = ctx.size.idle_seconds
    root = ctx.folder(NAME)
    ctx.log(f"idle: {INBOXES} inboxes, {seconds:g} s, engines {', '.join(ENGINES)} side by side")
    measured: dict[str, dict[str, float]] = {}
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(Server(root, latency=0.0))
        daemons = {}
        for engine in ENGINES:
            inboxes = [ctx.folder(NAME, engine, f"inbox-{index}") for index in range(INBOXES)]
            config = daemon_config(
                inboxes, state_dir=root / engine / "state", endpoint=server.url, engine=engine
            )
            daemons[engine] = stack.enter_context(
                Daemon(ctx.folder(NAME, engine), config, name=f"daemon-{engine}")
            )
            daemons[engine].start()
        for daemon in daemons.values():
            daemon.wait_ready()
        time.sleep(ctx.size.settle_seconds)
        before = {
            engine: (daemon.cpu_seconds(), time.monotonic()) for engine, daemon in daemons.items()
        }
        time.sleep(seconds)
        for engine, daemon in daemons.items():
            cpu, started = before[engine]
            elapsed = time.monotonic() - started
            memory = daemon.memory_kib()
            measured[engine] = {
                "cpu_percent": (daemon.cpu_seconds() - cpu) / elapsed * 100,
                "rss_mib": memory["VmRSS"] / 1024,
                "hwm_mib": memory["VmHWM"] / 1024,
                "seconds": elapsed,
                "threads": float(len(list(_tasks(daemon.pid)))),
            }
    return _rows(measured, seconds, ctx.size.settle_seconds)


def _tasks(pid: int) -> list[str]:
    return os.listdir(f"/proc/{pid}/task")


def _rows(measured: dict[str, dict[str, float]], seconds: float, settle: float) -> list[Row]:
    rows = []
    for engine in ENGINES:
        facts = measured[engine]
        target = engine == "ocrspace"
        rows.append(
            Row(
                NAME,
                f"idle CPU, {INBOXES} inboxes, {engine} engine",
                facts["cpu_percent"],
                "% of a core",
                target=Target("<=", 1.0, text="≤ 1 %") if target else None,
                notes=f"{seconds:g} s window after READY=1 + {settle:g} s; {facts['threads']:.0f} threads; "
                "CPU from /proc in 10 ms ticks"
                if target
                else "",
                details=facts,
            )
        )
        rows.append(
            Row(
                NAME,
                f"idle resident memory (VmRSS), {engine} engine",
                facts["rss_mib"],
                "MiB",
                target=Target("<=", 150.0, text="≤ 150 MiB") if target else None,
                notes=""
                if target
                else "Tesseract's model is loaded on the first file, so not counted here",
            )
        )
    return rows
