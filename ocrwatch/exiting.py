"""Ending the process once a command is done, without the interpreter's teardown.

When :func:`ocrwatch.cli.main` returns, the command's work is finished:
sidecars are written and synced, the state store is closed, worker threads
are joined. What a normal exit still does is CPython's finalisation, which
frees every module and object one by one; with pydantic's validators,
requests and the config models loaded that is 60-90 ms on a small machine,
a fifth of ``ocrwatch once`` on one image, spent on memory the kernel
reclaims anyway.

:func:`leave` therefore runs what a normal exit runs that has an effect
outside the process (the ``atexit`` handlers: logging's final flush, any
library's clean-up of temporary files; then the standard streams' flush)
and ends with :func:`os._exit`. It takes that short path only when the main
thread is the last one: any other thread alive means something expects the
normal path (its join, its finalisers), and then the normal path is taken.
A standard stream that cannot be flushed (a closed pipe) ends the process
with 120, as CPython's own exit does.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from typing import NoReturn

FLUSH_FAILED = 120
"""CPython's exit status when flushing the standard streams at exit fails."""


def leave(code: int) -> NoReturn:
    """End the process with ``code``, skipping finalisation when nothing else runs."""
    if threading.active_count() > 1:
        sys.exit(code)
    # The only documented way to run the handlers is the interpreter's own exit; the
    # function it calls has been there, under this name, since Python 3.0.
    run_handlers = getattr(atexit, "_run_exitfuncs", None)
    if run_handlers is None:
        sys.exit(code)
    run_handlers()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            code = code or FLUSH_FAILED
    os._exit(code)
