"""One ocr.space budget for a cluster: three hosts, one rate window, one pause, one key stop.

Real ``ocrwatch run`` processes share one real Redis and one fake ocr.space
server; what is judged is what the server saw (its request log, with
arrival times), as the API itself would count it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.cluster import Cluster, names
from tests.support.ocrspace_server import FakeOcrSpace
from tests.support.redis_server import RedisServer
from tests.support.rig import KEY
from tests.support.waiting import wait_until

DONE_TIMEOUT = 90.0
NETWORK_MARGIN = 0.1
"""Two requests admitted S seconds apart may arrive a little closer than S."""


def most_in_any_window(arrivals: list[float], seconds: float) -> int:
    """The largest number of arrivals within any window of ``seconds``."""
    arrivals = sorted(arrivals)
    most, start = 0, 0
    for end, arrived in enumerate(arrivals):
        while arrived - arrivals[start] >= seconds:
            start += 1
        most = max(most, end - start + 1)
    return most


MakeCluster = Callable[..., Cluster]


@pytest.fixture
def make_cluster(tmp_path: Path, redis_server: RedisServer) -> Iterator[MakeCluster]:
    made: list[Cluster] = []

    def make(server: FakeOcrSpace, **top: Any) -> Cluster:
        cluster = Cluster(tmp_path, redis_server, server, workers=2, **top)
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        cluster.close()


def test_the_rate_limit_holds_for_all_hosts_together(make_cluster: MakeCluster) -> None:
    """rate_limit 3 per 2 s over three hosts: no 2-second window at the server holds more than 3."""
    with FakeOcrSpace(mode="text", api_key=KEY) as server:
        cluster = make_cluster(server, ocrspace={"rate_limit": {"requests": 3, "per_seconds": 2}})
        for name in ("a", "b", "c"):
            cluster.host(name)
        paths = cluster.drop(names(12))
        cluster.wait_done(paths, DONE_TIMEOUT)
        arrivals = [r.received_at for r in server.requests]
    assert 12 == len(arrivals)
    assert most_in_any_window(arrivals, 2 - NETWORK_MARGIN) <= 3, sorted(arrivals)
    # Busy, not merely slow: 12 requests at 3 per 2 s take about 6 s, not 24.
    assert max(arrivals) - min(arrivals) < 12, sorted(arrivals)


def test_a_rate_limit_answer_stops_every_host_for_its_window(make_cluster: MakeCluster) -> None:
    """The API's own rate-limit answer to one host holds every host until the window it names ends."""
    # Answers take 0.3 s: between the refusal and its pause reaching Redis (a few ms) each of
    # the six slots can have at most one request on its way. With instant answers a slot could
    # be admitted several times in that gap, and the bound below would depend on the load.
    with FakeOcrSpace(mode="text", api_key=KEY, rate_limit=(4, 3), latency=0.3) as server:
        cluster = make_cluster(server)
        for name in ("a", "b", "c"):
            cluster.host(name)
        paths = cluster.drop(names(10))
        cluster.wait_done(paths, DONE_TIMEOUT)
        log = sorted(server.requests, key=lambda r: r.received_at)
    refused = [r for r in log if r.status == 403]
    assert refused, "the server never answered with its rate limit"
    first = refused[0].received_at
    # After the first refusal, every host waits out the window the answer names (3 s):
    # nothing but requests already on their way may arrive before it ends.
    early = [r for r in log if first < r.received_at < first + 3 - 0.5]
    assert len(early) <= 3 * 2, [(r.received_at - first, r.status) for r in log]
    paused = [d for d in cluster.hosts if "paused" in d.log()]
    assert len(paused) == 3, cluster.logs()


def test_a_rejected_key_stops_every_host_loudly(
    make_cluster: MakeCluster, redis_server: RedisServer
) -> None:
    """One host's key rejection stops all three: no request leaves afterwards, each says why."""
    with FakeOcrSpace(mode="text", api_key="ANOTHER-KEY") as server:
        cluster = make_cluster(server)
        hosts = [cluster.host(name) for name in ("a", "b", "c")]
        cluster.drop(names(9))
        wait_until(lambda: server.requests, 30, message="a first request")
        time.sleep(3.0)
        settled = len(server.requests)
        time.sleep(3.0)
        assert settled == len(server.requests), "requests went on after the key was rejected"
        assert settled <= 3 * 2, f"{settled} requests: hosts did not stop together"
        for daemon in hosts:
            log = daemon.log
            wait_until(
                lambda log=log: "API key" in log() and "CRITICAL" in log(),  # type: ignore[misc]
                10,
                message=f"{daemon.workdir.name} says the key was rejected",
            )
        keys = redis_server.client().keys("*")
        assert not any(KEY in key or "ANOTHER-KEY" in key for key in keys)
