"""Run a command and write its peak resident set, measured apart from whoever started us.

``ru_maxrss`` of a child that the benchmark process starts is at least the
benchmark's own resident set when it forked: Linux copies the parent's
high-water mark into the child's mm and keeps it across ``exec``. A benchmark
that has just written a 460 MB document would charge it to the reader. This
small launcher is started instead; it forks the reader from its own few
megabytes and reports the reader's ``ru_maxrss`` from ``wait4``, which then
counts the reader's own pages only (the launcher's, at most, on top).

Usage: ``python -m benchmarks.peak OUT.json COMMAND [ARG...]``; exits with
the command's status and writes ``{"max_rss_kib": N}`` to OUT.json.
"""

from __future__ import annotations

import json
import os
import sys


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: python -m benchmarks.peak OUT.json COMMAND [ARG...]", file=sys.stderr)
        return 2
    out, command = argv[0], argv[1:]
    pid = os.fork()
    if pid == 0:
        try:
            os.execvp(command[0], command)
        finally:
            os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    with open(out, "w", encoding="utf-8") as stream:
        json.dump({"max_rss_kib": usage.ru_maxrss}, stream)
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
