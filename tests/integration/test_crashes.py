"""Attacks on the daemon by killing it: SIGKILL at seeded random moments, then restart, again and again.

The promise under attack: sidecars are written atomically and are the truth,
so whenever the daemon dies, the next start finishes the job: every image ends
with a whole, valid, self-consistent pair of sidecars, no temporary file is
left behind, and a file is sent again only when a crash interrupted it.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from tests.support.daemon import DaemonProcess
from tests.support.hostile import page_bytes
from tests.support.ocrspace_server import FakeOcrSpace
from tests.support.rig import KEY, JitterServer, daemon_config
from tests.support.verdicts import done_record, finished, temporaries
from tests.support.waiting import wait_until

SEED = 7_1_2024
WORKERS = 4
KILLS = 6
BACKLOG_FILES = 160
LIVE_FILES = 80


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_nothing_and_repeats_only_interrupted_work(
    tmp_path: Path,
) -> None:
    """Six SIGKILLs over 240 files (one during start-up): all end whole, each sent at most once per kill."""
    rng = random.Random(SEED)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    backlog = [f"backlog-{index:03d}.png" for index in range(BACKLOG_FILES)]
    live = [f"live-{index:03d}.png" for index in range(LIVE_FILES)]
    contents = {name: page_bytes(name) for name in backlog + live}
    for name in backlog:
        (inbox / name).write_bytes(contents[name])
    with JitterServer(
        low=0.05, high=0.2, seed=SEED, mode="text", text="crash survivor", api_key=KEY
    ) as server:
        config = daemon_config(
            server.url, [{"path": str(inbox)}], state_dir=tmp_path / "state", workers=WORKERS
        )
        daemon = DaemonProcess(tmp_path, config, env={"OCRSPACE_API_KEY": KEY})
        try:
            kills = 0
            # Killed while starting: between watching the inbox and the end of the first scan.
            daemon.start(wait_ready=False)
            wait_until(
                lambda: "watching " in daemon.log(), 30, message="the daemon to start watching"
            )
            daemon.kill()
            kills += 1
            while kills < KILLS:
                daemon.start()
                if kills == 2:
                    for name in live:
                        (inbox / name).write_bytes(contents[name])
                target = len(server.requests) + rng.randint(5, 30)

                def reached(target: int = target) -> bool:
                    return len(server.requests) >= target

                wait_until(
                    reached,
                    60,
                    message="work before a kill",
                )
                daemon.kill()
                kills += 1
            everything = backlog + live
            assert not all(finished(inbox / name) for name in everything), (
                "the kills came too late to hurt"
            )
            daemon.start()
            wait_until(
                lambda: all(finished(inbox / name) for name in everything),
                120,
                message="every file",
            )
            assert 0 == daemon.stop()
        finally:
            daemon.close()
        counts = server.count_by_filename()
    for name in everything:
        record = done_record(inbox / name, image_bytes=contents[name])
        assert "crash survivor\n" == record["text"]
    # The state folder is left out here: see test_a_temporary_left_in_the_state_folder_is_removed_at_start.
    assert [] == temporaries(inbox)
    assert [] == [name for name in everything if not 1 <= counts[name] <= 1 + kills], counts
    assert sum(counts.values()) <= len(everything) + kills * WORKERS, (
        "more repeats than kills could interrupt"
    )
    assert [] == [p.name for p in inbox.iterdir() if p.name.endswith(".error.json")]


def test_temporaries_left_by_a_crash_are_removed_at_start(tmp_path: Path) -> None:
    """Temporaries a killed daemon left in the inbox, its sub-folders and the output folder go at the next start."""
    inbox, output = tmp_path / "inbox", tmp_path / "output"
    (inbox / "sub").mkdir(parents=True)
    (output / "sub").mkdir(parents=True)
    planted = [
        inbox / ".a.png.txt.k3j4h5.ocrwatch-tmp",
        inbox / "sub" / ".b.png.json.x8y9z0.ocrwatch-tmp",
        output / ".c.png.json.q1w2e3.ocrwatch-tmp",
        output / "sub" / ".d.png.txt.r4t5y6.ocrwatch-tmp",
    ]
    for path in planted:
        path.write_bytes(b"half a sidecar")
    with FakeOcrSpace(mode="text", api_key=KEY) as server:
        config = daemon_config(
            server.url,
            [{"path": str(inbox), "recursive": True, "output": str(output)}],
            state_dir=tmp_path / "state",
        )
        daemon = DaemonProcess(tmp_path, config, env={"OCRSPACE_API_KEY": KEY})
        try:
            daemon.start()
            assert [] == temporaries(inbox, output)
            assert 0 == daemon.stop()
        finally:
            daemon.close()


def test_a_temporary_left_in_the_state_folder_is_removed_at_start(tmp_path: Path) -> None:
    """A status.json temporary left by a kill during its write is removed at the next start."""
    inbox, state = tmp_path / "inbox", tmp_path / "state"
    inbox.mkdir()
    state.mkdir()
    leftover = state / ".status.json.a1b2c3d4.ocrwatch-tmp"
    leftover.write_bytes(b'{"version": "0.1.0", "pid": 1')
    with FakeOcrSpace(mode="text", api_key=KEY) as server:
        daemon = DaemonProcess(
            tmp_path,
            daemon_config(server.url, [{"path": str(inbox)}], state_dir=state),
            env={"OCRSPACE_API_KEY": KEY},
        )
        try:
            daemon.start()
            wait_until(
                lambda: (state / "status.json").exists(), 15, message="the first status.json"
            )
            assert 0 == daemon.stop()
        finally:
            daemon.close()
    assert [] == temporaries(state)


def test_after_move_finishes_a_move_a_crash_interrupted(tmp_path: Path) -> None:
    """A crash between 'sidecars written' and 'image moved' leaves both in the inbox; the next start moves them."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    image = inbox / "interrupted.png"
    image.write_bytes(page_bytes("interrupted move"))
    with FakeOcrSpace(mode="text", api_key=KEY) as server:
        # The on-disk state a kill between sidecar commit and rename leaves: the
        # image and its current sidecars in the inbox, and no cache entry.
        keep = daemon_config(server.url, [{"path": str(inbox)}], state_dir=tmp_path / "state-keep")
        daemon = DaemonProcess(tmp_path, keep, env={"OCRSPACE_API_KEY": KEY})
        try:
            daemon.start()
            wait_until(lambda: finished(image), 20, message="the first run's sidecars")
            assert 0 == daemon.stop()
        finally:
            daemon.close()
        record = json.loads((inbox / "interrupted.png.json").read_text())
        move = daemon_config(
            server.url, [{"path": str(inbox), "after": "move"}], state_dir=tmp_path / "state"
        )
        daemon = DaemonProcess(tmp_path, move, env={"OCRSPACE_API_KEY": KEY})
        try:
            daemon.start()
            wait_until(
                lambda: (inbox / "done" / "interrupted.png").exists(),
                5,
                message="the image to be moved",
            )
            assert 0 == daemon.stop()
        finally:
            daemon.close()
        assert 1 == len(server.requests), "the image was read again instead of just moved"
    assert (
        record["source"]["sha256"]
        == done_record(inbox / "done" / "interrupted.png")["source"]["sha256"]
    )
    assert [] == sorted(p.name for p in inbox.iterdir() if p.is_file())
