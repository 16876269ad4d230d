"""Running code without root's power to ignore file permissions.

Tests of unreadable files and read-only folders mean nothing when run as
root, which CI does. Dropping CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH with
util-linux's ``setpriv`` makes even root obey the permission bits, so these
tests run for real everywhere instead of skipping.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

DROP = "-dac_override,-dac_read_search"


def permission_respecting_prefix() -> list[str]:
    """The argv prefix that makes a command obey file permissions (empty when not root)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.fail("running as root without util-linux setpriv: cannot test permissions")
    return [setpriv, f"--bounding-set={DROP}", f"--inh-caps={DROP}", "--"]


def run_python(code: str, *, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter that obeys file permissions."""
    return subprocess.run(
        [*permission_respecting_prefix(), sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
