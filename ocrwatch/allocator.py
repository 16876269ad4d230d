"""The C allocator's settings for a long-running process that reads large pages on many threads.

glibc's malloc gives each thread that allocates an arena of its own (up to
eight per core) and, once a large block has been freed, raises the size
above which blocks are mapped on their own, so that later large blocks (a
rendered page is 8 to 26 MB) come from the arenas and stay there after they
are freed. With a page pool of several threads the process then keeps the
peak of every thread at once: reading a 500-page PDF through ocr.space
measured 709 MB peak RSS; with at most two arenas and blocks of 4 MB and
more always mapped on their own (and so returned when freed), 414 MB, of
which the file itself is 235 MB. The cost is a page fault per page of each
large block: that run took 37 s instead of 30 s of CPU-bound rendering and
encoding, a small share of a page's time beside the API's answer or the
local engine's OCR.

Only glibc has ``mallopt``; elsewhere this does nothing. The environment's
own ``MALLOC_ARENA_MAX`` and ``MALLOC_MMAP_THRESHOLD_`` win, so an operator
can still choose.
"""

from __future__ import annotations

import ctypes
import logging
import os

logger = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
"""glibc's ``mallopt`` parameter numbers (malloc.h)."""
ARENAS = 2
MMAP_THRESHOLD_BYTES = 4 * 1024 * 1024


def tune() -> None:
    """Set the arena count and the mapping threshold, unless the environment sets them."""
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    for name, parameter, value in (
        ("MALLOC_ARENA_MAX", M_ARENA_MAX, ARENAS),
        ("MALLOC_MMAP_THRESHOLD_", M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES),
    ):
        if name not in os.environ and mallopt(parameter, value) != 1:
            logger.debug("mallopt(%d, %d) was refused", parameter, value)
