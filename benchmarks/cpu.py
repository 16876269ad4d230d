"""CPU per image: the daemon's CPU seconds per file, over one plain decode plus one encode.

With the fake server answering at once, a batch is renamed into the running
daemon's inbox; the daemon's user+system CPU time (``/proc/PID/stat``, all
threads) before the batch and after its last ``.json`` gives its CPU per
image. The baseline is measured here, in this process, on the same files
between the daemon's rounds: ``cv2.imdecode`` plus ``cv2.imencode`` at JPEG
quality 90 (``time.process_time``), the least any program that reads an
image and sends a JPEG of it must spend. Done for ~1 MP JPEGs (which fit and
go as they are) and for A4 300-dpi colour scans (which must be fitted under
1 MiB); the targets judge each round's ratio.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import cv2
import numpy as np

from benchmarks.harness import (
    Arrivals,
    Context,
    Daemon,
    Row,
    Server,
    Target,
    daemon_config,
    link_or_copy,
    median,
    sidecar,
)
from benchmarks.images import a4_scans, megapixel_jpeg

NAME = "cpu"
SETTLE_SECONDS = 0.3
"""After the last .json: the daemon's bookkeeping for that file (state cache) is counted too."""
BASELINE_REPEATS = 3
FIRST_MEGAPIXEL_SEED = 5000
FIRST_A4_SEED = 1


def _decode_encode_seconds(data: bytes) -> float:
    """CPU seconds of one cv2.imdecode plus one cv2.imencode (JPEG q90), median of a few."""
    seconds = []
    buffer = np.frombuffer(data, np.uint8)
    for _ in range(BASELINE_REPEATS):
        started = time.process_time()
        pixels = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
        if pixels is None:
            raise RuntimeError("OpenCV could not decode")
        ok, _encoded = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, 90])
        seconds.append(time.process_time() - started)
        if not ok:
            raise RuntimeError("OpenCV could not encode")
    return median(seconds)


def _rounds(files: list[Path], count: int) -> list[list[Path]]:
    per_round = max(1, len(files) // count)
    return [files[start : start + per_round] for start in range(0, len(files), per_round)]


def run(ctx: Context) -> list[Row]:
    size = ctx.size
    root = ctx.folder(NAME)
    sources = ctx.folder(NAME, "sources")
    megapixel = []
    for index in range(size.cpu_images):
        path = sources / f"mp-{index:05d}.jpg"
        path.write_bytes(megapixel_jpeg(FIRST_MEGAPIXEL_SEED + index))
        megapixel.append(path)
    a4 = [
        scan.path
        for scan in a4_scans(
            range(FIRST_A4_SEED, FIRST_A4_SEED + size.cpu_a4), ctx.cache_dir, log=ctx.log
        )
    ]
    inbox = ctx.folder(NAME, "inbox")
    staging = ctx.folder(NAME, "staging")
    results: dict[str, tuple[list[float], list[float]]] = {}
    ctx.log(
        f"cpu: {len(megapixel)} 1 MP JPEGs and {len(a4)} A4 scans in {size.cpu_rounds} round(s)"
    )
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(Server(root, latency=0.0))
        arrivals = stack.enter_context(Arrivals())
        arrivals.watch(inbox)
        daemon = stack.enter_context(
            Daemon(root, daemon_config([inbox], state_dir=root / "state", endpoint=server.url))
        )
        daemon.start()
        daemon.wait_ready()
        # One file first: lazy imports and the first connection are not per-image costs.
        warm_up = staging / "warm-up.jpg"
        warm_up.write_bytes(megapixel_jpeg(FIRST_MEGAPIXEL_SEED - 1))
        os.rename(warm_up, inbox / warm_up.name)
        arrivals.wait(sidecar(inbox / warm_up.name), 60)
        for label, files in (("1mp", megapixel), ("a4", a4)):
            ours: list[float] = []
            theirs: list[float] = []
            for number, batch in enumerate(_rounds(files, size.cpu_rounds)):
                staged = []
                for path in batch:
                    target = staging / f"{label}-{number}-{path.name}"
                    link_or_copy(path, target)
                    staged.append(target)
                time.sleep(SETTLE_SECONDS)
                before = daemon.cpu_seconds()
                for path in staged:
                    os.rename(path, inbox / path.name)
                arrivals.wait_all(
                    [sidecar(inbox / path.name) for path in staged], 60 + 5 * len(batch)
                )
                time.sleep(SETTLE_SECONDS)
                ours.append((daemon.cpu_seconds() - before) / len(batch))
                theirs.append(
                    sum(_decode_encode_seconds(path.read_bytes()) for path in batch) / len(batch)
                )
            results[label] = (ours, theirs)
            ctx.log(
                f"cpu {label}: daemon {median(ours) * 1000:.1f} ms/image, decode+encode "
                f"{median(theirs) * 1000:.1f} ms"
            )
    return _rows(results, len(megapixel), len(a4))


def _rows(
    results: dict[str, tuple[list[float], list[float]]], megapixels: int, scans: int
) -> list[Row]:
    rows = []
    for label, name, count, target in (
        (
            "1mp",
            "CPU per image, ~1 MP JPEG (sent as it is), server 0 s",
            megapixels,
            Target("<=", 1.2, on="ratio", text="≤ 1.2×"),
        ),
        (
            "a4",
            "CPU per image, A4 300-dpi colour scan (fitted under 1 MiB), server 0 s",
            scans,
            Target("<=", 1.3, on="ratio", text="≤ 1.3×"),
        ),
    ):
        ours, theirs = results[label]
        rows.append(
            Row(
                NAME,
                name,
                median(ours) * 1000,
                "ms",
                baseline=median(theirs) * 1000,
                baseline_label="cv2 decode + q90 encode, this process",
                target=target,
                notes=f"n={count}, median of {len(ours)} round(s); daemon CPU from /proc (utime+stime, "
                f"10 ms ticks), after one warm-up file",
                details={
                    "daemon_ms_rounds": [x * 1000 for x in ours],
                    "baseline_ms_rounds": [x * 1000 for x in theirs],
                },
                rounds=[x * 1000 for x in ours],
                baseline_rounds=[x * 1000 for x in theirs],
            )
        )
    return rows
