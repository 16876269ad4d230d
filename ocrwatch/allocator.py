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

The threshold is 2 MB, not 4: between the two lie an A4 scan's bytes (about
2.7 MB) and the fitting's trial buffers, short-lived blocks that left holes
in the arenas between the uploads (about 1 MB each) waiting for their
answers. A burst of 200 A4 scans through the daemon (8 requests in flight)
peaked at a median 257 MB with 4 MB, 243 MB with 2 MB, for the same CPU time
per scan; the 500-page PDF's peak did not change. One arena instead of two
did not lower it. Mapping blocks from 512 KB, or trimming the arenas after
each page, took it to about 230 MB but cost 7% more CPU per scan: the same
pages are faulted in again and again.

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
MMAP_THRESHOLD_BYTES = 2 * 1024 * 1024


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
