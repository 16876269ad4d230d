"""Latency: from a scanner's close() to both sidecars durable, one file at a time.

ocrwatch (the real daemon) and two simulated watchers (paperless-ngx 3's
stability delay, OCRmyPDF's watcher; see :mod:`benchmarks.baselines`) each
watch their own inbox; all three use the same fake server, answering at once.
Files are dropped one at a time (written to the final name and closed), each
after the previous one's sidecars exist, baseline files spread evenly among
ocrwatch's so that both sides see the same machine. The end time is when the
``.json`` (written last, by rename) appears, as inotify reports it.
"""

from __future__ import annotations

import contextlib
import time

from benchmarks.harness import (
    API_KEY,
    Arrivals,
    Baseline,
    Context,
    Daemon,
    Row,
    Server,
    Target,
    daemon_config,
    drop_file,
    percentile,
    sidecar,
)
from benchmarks.images import megapixel_jpeg

NAME = "latency"
PACE_SECONDS = 0.05
"""Pause between drops, so each file meets an idle daemon."""
WAIT_SECONDS = 60.0
WARM_UP_FILES = 2
"""ocrwatch's first files (connection set-up, lazy imports) are not counted."""
FIRST_SEED = 1000
SIDES = {
    "paperless": ("stability", "paperless-ngx 3", "5 s stability delay"),
    "ocrmypdf": ("ocrmypdf", "OCRmyPDF watcher, inotify", "created event, 1 s retries"),
    "ocrmypdf-poll": ("ocrmypdf-poll", "OCRmyPDF watcher, polling", "1 s polls, 1 s retries"),
}


def _schedule(ours: int, theirs: int) -> list[str]:
    """ocrwatch's drops with each baseline's spread evenly among them."""
    order: list[tuple[float, str]] = [((index + 0.5) / ours, "ocrwatch") for index in range(ours)]
    for offset, side in enumerate(SIDES):
        order += [
            ((index + (offset + 1) / (len(SIDES) + 1)) / theirs, side) for index in range(theirs)
        ]
    return [side for _, side in sorted(order)]


def run(ctx: Context) -> list[Row]:
    size = ctx.size
    root = ctx.folder(NAME)
    inboxes = {side: ctx.folder(NAME, side) for side in ("ocrwatch", *SIDES)}
    schedule = _schedule(size.latency_images, size.latency_baseline_images)
    ctx.log(
        f"latency: {size.latency_images} ocrwatch drops, {size.latency_baseline_images} per baseline"
    )
    samples: dict[str, list[float]] = {side: [] for side in inboxes}
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(Server(root, latency=0.0))
        arrivals = stack.enter_context(Arrivals())
        for inbox in inboxes.values():
            arrivals.watch(inbox)
        config = daemon_config([inboxes["ocrwatch"]], state_dir=root / "state", endpoint=server.url)
        daemon = stack.enter_context(Daemon(root, config))
        daemon.start()
        watchers = {
            side: stack.enter_context(
                Baseline(
                    root,
                    [
                        "watch",
                        "--policy",
                        policy,
                        "--folder",
                        str(inboxes[side]),
                        "--endpoint",
                        server.url,
                        "--api-key",
                        API_KEY,
                    ],
                    name=side,
                )
            )
            for side, (policy, _name, _policy_text) in SIDES.items()
        }
        daemon.wait_ready()
        for watcher in watchers.values():
            watcher.wait_ready()
        for index, side in enumerate(["ocrwatch"] * WARM_UP_FILES + schedule):
            seed = FIRST_SEED + index
            image = inboxes[side] / f"{side}-{seed:05d}.jpg"
            data = megapixel_jpeg(seed)
            closed = drop_file(image, data)
            arrived = arrivals.wait(sidecar(image), WAIT_SECONDS)
            if not sidecar(image, ".txt").exists():
                raise RuntimeError(f"{image}: .json without .txt")
            if index >= WARM_UP_FILES:
                samples[side].append(arrived - closed)
            time.sleep(PACE_SECONDS)
    return _rows(samples, size.latency_images, size.latency_baseline_images)


def _rows(samples: dict[str, list[float]], ours: int, theirs: int) -> list[Row]:
    rows = []
    for side, (_policy, name, policy_text) in SIDES.items():
        for fraction, bound in ((0.5, 0.100), (0.95, 0.250)):
            label = f"p{round(fraction * 100)}"
            rows.append(
                Row(
                    NAME,
                    f"latency {label} vs {name} (1 MP JPEG, server 0 s)",
                    percentile(samples["ocrwatch"], fraction) * 1000,
                    "ms",
                    baseline=percentile(samples[side], fraction) * 1000,
                    baseline_label=f"sim: {policy_text}, n={theirs}",
                    target=Target("<=", bound * 1000, text=f"≤ {bound * 1000:.0f} ms"),
                    details={f"{side}_ms": [round(s * 1000, 2) for s in samples[side]]},
                )
            )
    rows[0].notes = (
        f"close() to the .json renamed into place (inotify); ocrwatch n={ours} after {WARM_UP_FILES} "
        "warm-up files, drops interleaved with the baselines'"
    )
    rows[0].details["ocrwatch_ms"] = [round(s * 1000, 2) for s in samples["ocrwatch"]]
    return rows
