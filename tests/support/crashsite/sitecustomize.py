"""A native crash on demand, for the distributed-mode tests: put this folder on PYTHONPATH.

Any ``ocrwatch`` process started with it dies of SIGSEGV (as a decoder bug
would kill it) when it starts reading a file whose name contains
``crash``. Nothing in ocrwatch knows about it: the fault is injected here,
in the test's own start-up hook, into the function that reads a file.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path
from typing import Any

MARK = "crash"


def _install() -> None:
    from ocrwatch import pipeline

    original = pipeline.read_source  # type: ignore[attr-defined]

    def read_source(path: Path, **options: Any) -> Any:
        if MARK in Path(path).name:
            os.kill(os.getpid(), signal.SIGSEGV)
        return original(path, **options)

    pipeline.read_source = read_source  # type: ignore[attr-defined]


with contextlib.suppress(ImportError):  # a process that is not ocrwatch's: nothing to break
    _install()
