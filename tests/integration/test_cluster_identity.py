"""One host name, one running daemon: real ``ocrwatch run`` processes on a real Redis.

Two installations configured with the same ``queue.host_name`` would share
one consumer identity; the second is refused while the first is alive, a
restart of the same installation keeps its name at once, and a new one
takes over the name of a host that died.
"""

from __future__ import annotations

from typing import Any

from tests.integration.test_cluster_operator import ENV, WAIT, host_record
from tests.support.cluster import Cluster, names
from tests.support.daemon import DaemonProcess

WAITING = "has a record of another ocrwatch"


def installation(cluster: Cluster, host_name: str, folder: str, **queue: Any) -> DaemonProcess:
    """A daemon with its own work and state folders, configured as ``host_name``."""
    config = cluster.config(host_name, **queue)
    config["state_dir"] = str(cluster.root / folder / "state")
    work = cluster.root / folder
    work.mkdir(parents=True, exist_ok=True)
    daemon = DaemonProcess(work, config, env=ENV)
    cluster.hosts.append(daemon)
    return daemon


def test_a_second_daemon_under_a_name_in_use_is_refused(cluster: Cluster) -> None:
    first = cluster.host("alpha")
    assert first.process is not None

    copy = installation(cluster, "alpha", "alpha-copy").start(wait_ready=False)
    assert copy.process is not None
    code = copy.process.wait(WAIT)

    assert code == 2, copy.log()
    assert "queue.host_name 'alpha' is in use by another running ocrwatch" in copy.log()
    assert f"pid {first.process.pid}" in copy.log()
    # The first keeps its name and its work.
    assert host_record(cluster, "alpha")["pid"] == first.process.pid
    paths = cluster.drop(names(3))
    cluster.wait_done(paths, WAIT)


def test_a_restart_of_the_same_installation_keeps_its_name_at_once(cluster: Cluster) -> None:
    host = cluster.host("alpha")
    host.kill()  # its record stays in Redis until it expires

    host.start()

    assert WAITING not in host.log()
    paths = cluster.drop(names(2))
    cluster.wait_done(paths, WAIT)


def test_a_new_installation_takes_over_the_name_of_a_dead_host(cluster: Cluster) -> None:
    dead = cluster.host("alpha")
    dead.kill()

    heir = installation(cluster, "alpha", "alpha-new").start()

    log = heir.log()
    assert WAITING in log
    assert "was not renewed; taking the name over" in log
    assert heir.process is not None
    assert host_record(cluster, "alpha")["pid"] == heir.process.pid
    paths = cluster.drop(names(2))
    cluster.wait_done(paths, WAIT)
