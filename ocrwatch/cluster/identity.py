"""One host name, one running ocrwatch: telling a second process under the same name.

A host's name is its consumer name in every stream, so two daemons under
one name (``queue.host_name`` copied into two configs, or two machines
cloned with the same host name and state folder) would take each other's
pending files for their own and hand back or finish files the other is
reading. Each process therefore carries an instance id in its host record:
a random token kept in its state folder (so a restart of the same
installation is the same instance) mixed with the kernel's boot id (so a
cloned disk is not). A record under this host's name with another instance
id is either a live daemon, which renews it every third of a lease, or a
dead one's, which expires three leases after its last renewal.
:func:`claim_name` waits long enough to tell the two apart: a live one
stops the start with an error that says what to change; a dead one's name
is taken over.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import threading
import time
from pathlib import Path
from typing import Any

from ocrwatch.cluster.connection import describe_error, is_redis_error
from ocrwatch.cluster.lease import Leases
from ocrwatch.errors import ConfigError

logger = logging.getLogger(__name__)

TOKEN_FILE = "cluster-instance"
"""The installation's random token, in the state folder (a cache: lost, a new one is made)."""
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
RENEWALS_WATCHED = 2
"""A record renewed within this many renewal periods (a third of a lease each) is alive."""
WATCH_MARGIN = 2.0
WATCH_STEP = 0.5


def instance_id(state_dir: Path) -> str:
    """This installation in this boot: the state folder's token and the kernel's boot id."""
    path = state_dir / TOKEN_FILE
    try:
        token = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        token = ""
    if len(token) < 16:
        token = secrets.token_hex(16)
        try:
            state_dir.mkdir(parents=True, exist_ok=True)  # the daemon locks it only later
            temp = path.with_name(f".{TOKEN_FILE}.{os.getpid()}")
            temp.write_text(token + "\n", encoding="ascii")
            temp.replace(path)
        except OSError as error:
            # Without it every restart looks like a new instance: it waits once at start.
            logger.debug("could not keep the cluster instance token in %s: %s", path, error)
    try:
        boot = BOOT_ID.read_text(encoding="ascii").strip()
    except OSError:
        boot = ""
    return hashlib.sha256(f"{token}\0{boot}".encode()).hexdigest()[:16]


def claim_name(leases: Leases, lease_seconds: float, stop: threading.Event) -> None:
    """Return once this host's name is free or its own; raise ConfigError if a live daemon has it.

    Redis unreachable: nothing can be told now; the host record's own check
    (:meth:`Leases.announce`) still refuses to overwrite another's record.
    """
    try:
        first = leases.record()
    except Exception as error:
        if not is_redis_error(error):
            raise
        logger.debug("cluster: host name not checked: %s", describe_error(error))
        return
    if first is None or leases.is_mine(first):
        return
    patience = RENEWALS_WATCHED * lease_seconds / 3 + WATCH_MARGIN
    logger.info(
        "cluster: host name %s has a record of another ocrwatch (%s); waiting up to %.0f s to "
        "see whether it is alive",
        leases.host,
        _whose(first),
        patience,
    )
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline and not stop.wait(WATCH_STEP):
        try:
            current = leases.record()
        except Exception as error:
            if not is_redis_error(error):
                raise
            return
        if current is None or leases.is_mine(current):
            return
        if current.get("seen") != first.get("seen") or current.get("instance") != first.get(
            "instance"
        ):
            raise ConfigError(
                f"queue.host_name {leases.host!r} is in use by another running ocrwatch "
                f"({_whose(current)}): two hosts under one name would take each other's files. "
                "Give each host its own host_name, or leave it unset (the default names the "
                "machine and its state folder)."
            )
    leases.forget(first)
    logger.info(
        "cluster: the other record of host name %s was not renewed; taking the name over",
        leases.host,
    )


def _whose(record: dict[str, Any]) -> str:
    machine = record.get("machine") or "an unknown machine"
    pid = record.get("pid")
    return f"on {machine}, pid {pid}" if pid else f"on {machine}"
