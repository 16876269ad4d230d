"""The quick exit after a command: nothing a normal exit would deliver is lost.

Each case runs a real interpreter that ends through :func:`ocrwatch.exiting.leave`
and looks at what a normal exit guarantees: the exit status, the standard
streams' buffered output, ``atexit`` handlers, and threads still working.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ocrwatch.exiting import FLUSH_FAILED

TIMEOUT = 60


def _run(code: str) -> subprocess.CompletedProcess[bytes]:
    # Buffered streams, as a command's usually are: PYTHONUNBUFFERED would hide a lost flush.
    env = {name: value for name, value in os.environ.items() if name != "PYTHONUNBUFFERED"}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        env=env,
        timeout=TIMEOUT,
        check=False,
    )


def test_buffered_output_and_exit_handlers_survive(tmp_path: Path) -> None:
    marker = tmp_path / "handler-ran"
    done = _run(
        f"""
        import atexit, logging, sys
        from ocrwatch.exiting import leave
        atexit.register(lambda: open({str(marker)!r}, "w").write("yes"))
        logging.basicConfig(stream=sys.stderr, format="%(message)s")
        logging.getLogger().warning("last log line")
        # Piped stdout is block-buffered: these lines sit in the buffer until the exit.
        sys.stdout.write("line\\n" * 50_000)
        sys.stderr.write("to stderr")
        leave(4)
        """
    )
    assert done.returncode == 4
    assert done.stdout == b"line\n" * 50_000
    assert b"last log line" in done.stderr and done.stderr.endswith(b"to stderr")
    assert marker.read_text() == "yes"


def test_a_thread_still_running_gets_the_normal_exit(tmp_path: Path) -> None:
    written = tmp_path / "from-thread"
    done = _run(
        f"""
        import threading, time
        from ocrwatch.exiting import leave
        def late():
            time.sleep(0.3)
            open({str(written)!r}, "w").write("done")
        threading.Thread(target=late).start()
        leave(3)
        """
    )
    assert done.returncode == 3
    assert written.read_text() == "done"


def test_a_closed_stdout_ends_with_cpythons_status() -> None:
    # The reader has gone: the buffered line cannot be flushed, as `ocrwatch status | true`.
    done = _run(
        """
        import os, sys
        from ocrwatch.exiting import leave
        read_end, write_end = os.pipe()
        os.dup2(write_end, 1)
        os.close(read_end)
        os.close(write_end)
        print("nobody reads this")
        leave(0)
        """
    )
    assert done.returncode == FLUSH_FAILED


@pytest.mark.parametrize("code", [0, 1, 2])
def test_the_command_exits_with_its_own_status(code: int) -> None:
    done = _run(f"from ocrwatch.exiting import leave; leave({code})")
    assert done.returncode == code
