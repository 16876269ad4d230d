"""Joining the cluster at daemon start: the client, this host's name and capacity, the shared gate.

The daemon imports this module only when the config has a ``queue:``
section, and gets back the node it runs and the gate its ocr.space clients
pass (:class:`~ocrwatch.cluster.budget.SharedGate`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

from ocrwatch.apikey import KeyHolder
from ocrwatch.cluster.budget import SharedGate, api_key_hash
from ocrwatch.cluster.connection import connect, describe_error, is_redis_error, shown_url
from ocrwatch.cluster.identity import claim_name, instance_id
from ocrwatch.cluster.jobs import Keys, consumer_name
from ocrwatch.cluster.node import ClusterNode
from ocrwatch.once import default_workers, worker_threads
from ocrwatch.plan import Plan
from ocrwatch.tracker import Entry, Tracker

logger = logging.getLogger(__name__)

NO_KEY = "no-api-key"


def route(entry: Entry) -> str:
    """The tracker's queue for an entry in distributed mode (see :meth:`ClusterNode.route`)."""
    return ClusterNode.route(entry)


def capacity(plan: Plan) -> int:
    """How many jobs this host may hold: its worker threads (slots and preparing threads)."""
    workers = plan.config.workers
    return sum(worker_threads(name, default_workers(name, workers)) for name in plan.engines)


def join(
    plan: Plan,
    current_plan: Callable[[], Plan],
    *,
    tracker: Tracker,
    stop: threading.Event,
    wakeup: threading.Event,
    state_dir: Path,
    config_path: Path | None,
    env: Mapping[str, str],
    keys: Callable[[], KeyHolder | None],
) -> tuple[ClusterNode, SharedGate]:
    """This host's node and the shared gate. Raises ConfigError (missing extra, password file)."""
    config = plan.config.queue
    assert config is not None
    client = connect(config, config_path, env)
    host = consumer_name(config.host_name, state_dir)
    node = ClusterNode(
        config,
        client,
        host=host,
        instance=instance_id(state_dir),
        plan=current_plan,
        tracker=tracker,
        stop=stop,
        capacity=capacity(plan),
        wakeup=wakeup,
    )
    ocrspace = plan.config.ocrspace

    def key_hash() -> str:
        holder = keys()  # read each time: a reload may bring the first key, or another
        return api_key_hash(holder.key.value) if holder is not None else NO_KEY

    gate = SharedGate(
        client,
        Keys(config.namespace),
        key_hash=key_hash,
        host=host,
        scope=config.rate_scope,
        limit=ocrspace.rate_limit,
        max_requests_per_day=ocrspace.max_requests_per_day,
    )
    try:
        client.ping()
        logger.info(
            "cluster: joined %s as %s (roles %s, namespace %s, up to %d file(s) at once)",
            shown_url(config.url),
            host,
            ", ".join(config.roles),
            config.namespace,
            node.capacity,
        )
        claim_name(node.leases, config.lease_seconds, stop)
    except Exception as error:
        if not is_redis_error(error):
            raise
        logger.error(
            "cluster: %s at %s; waiting for it (nothing is taken or sent meanwhile)",
            describe_error(error),
            shown_url(config.url),
        )
    return node, gate
