"""Prometheus metrics: what an operator graphs and alerts on.

Recorded always (it costs a few dictionary updates per file), served only when
the config has a ``metrics:`` section, on loopback unless it names another
address. Each daemon has its own registry, so nothing leaks between daemons in
one process (tests) and the default process metrics stay out.

Metric names and their labels:

``ocrwatch_files_total{inbox,outcome}``
    files finished: done, failed, skipped.
``ocrwatch_file_seconds{inbox}``
    time from a worker taking a file to its sidecars being written.
``ocrwatch_ocr_request_seconds{engine,outcome}``
    one OCR request (an HTTP attempt, or one local recognition); outcome is
    ``ok`` or the failure's classification.
``ocrwatch_upload_bytes{engine}``
    bytes sent per request.
``ocrwatch_queue_files{state}``
    files settling, ready, running, or waiting for a retry.
``ocrwatch_ratelimit_pauses_total``, ``ocrwatch_ocrspace_paused``
    pauses ordered by ocr.space, and 1 while one lasts.
``ocrwatch_info{version}``

In distributed mode (``queue:``), fed by the daemon through :meth:`Metrics.set_cluster`:

``ocrwatch_cluster_queue_entries{inbox}``
    entries in the inbox's queue (by inbox id), waiting or held by any host;
    an inbox whose depth is unknown (Redis unreachable) has no series.
``ocrwatch_cluster_held_entries``
    entries this host holds (reading them, or about to).
``ocrwatch_cluster_deliveries_total``
    entries this host took from the queue: new, resumed after a crash, taken over.
``ocrwatch_cluster_redis_reachable``
    1 while Redis answers, 0 while it does not (nothing new is taken or sent).
"""

from __future__ import annotations

import logging
import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from ocrwatch import __version__
from ocrwatch.engines.base import RequestRecord

logger = logging.getLogger(__name__)

SECONDS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
BYTES_BUCKETS = (
    16_384,
    65_536,
    131_072,
    262_144,
    524_288,
    786_432,
    1_048_576,
    2_097_152,
    5_242_880,
)


class Metrics:
    """The daemon's metrics registry and the few calls that feed it."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.files = Counter(
            "ocrwatch_files",
            "Files finished, by inbox and outcome.",
            ["inbox", "outcome"],
            registry=self.registry,
        )
        self.file_seconds = Histogram(
            "ocrwatch_file_seconds",
            "Seconds from a worker taking a file to its sidecars being written.",
            ["inbox"],
            buckets=SECONDS_BUCKETS,
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "ocrwatch_ocr_request_seconds",
            "Duration of one OCR request, by engine and outcome.",
            ["engine", "outcome"],
            buckets=SECONDS_BUCKETS,
            registry=self.registry,
        )
        self.upload_bytes = Histogram(
            "ocrwatch_upload_bytes",
            "Bytes uploaded per OCR request.",
            ["engine"],
            buckets=BYTES_BUCKETS,
            registry=self.registry,
        )
        self.queue = Gauge(
            "ocrwatch_queue_files",
            "Files known and not finished, by state.",
            ["state"],
            registry=self.registry,
        )
        self.pauses = Counter(
            "ocrwatch_ratelimit_pauses",
            "Pauses ordered by ocr.space's rate limit.",
            registry=self.registry,
        )
        self.paused = Gauge(
            "ocrwatch_ocrspace_paused",
            "1 while ocr.space requests are paused or blocked.",
            registry=self.registry,
        )
        info = Gauge(
            "ocrwatch_info", "The running ocrwatch version.", ["version"], registry=self.registry
        )
        info.labels(version=__version__).set(1)
        self.cluster_entries = Gauge(
            "ocrwatch_cluster_queue_entries",
            "Entries in an inbox's shared queue, waiting or held, by inbox id.",
            ["inbox"],
            registry=self.registry,
        )
        self.cluster_held = Gauge(
            "ocrwatch_cluster_held_entries",
            "Queue entries this host holds.",
            registry=self.registry,
        )
        self.cluster_deliveries = Counter(
            "ocrwatch_cluster_deliveries",
            "Queue entries this host took: new, resumed, taken over.",
            registry=self.registry,
        )
        self.cluster_reachable = Gauge(
            "ocrwatch_cluster_redis_reachable",
            "1 while the cluster's Redis answers, else 0.",
            registry=self.registry,
        )
        self._cluster_inboxes: set[str] = set()
        self._deliveries_seen = 0
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def observe_request(self, record: RequestRecord) -> None:
        """An engine finished one request (called from worker threads)."""
        self.request_seconds.labels(engine=record.engine, outcome=record.outcome).observe(
            record.seconds
        )
        if record.upload_bytes:
            self.upload_bytes.labels(engine=record.engine).observe(record.upload_bytes)

    def file_finished(self, inbox: str, outcome: str, seconds: float | None = None) -> None:
        self.files.labels(inbox=inbox, outcome=outcome).inc()
        if seconds is not None and outcome == "done":
            self.file_seconds.labels(inbox=inbox).observe(seconds)

    def set_queue(self, counts: dict[str, int]) -> None:
        for state, count in counts.items():
            self.queue.labels(state=state).set(count)

    def set_cluster(
        self, depths: dict[str, int], held: int, deliveries: int, reachable: bool
    ) -> None:
        """Distributed mode's state (from the main loop): queue depth per inbox id, entries held
        here, deliveries taken since start (a running total), whether Redis answers."""
        for inbox in self._cluster_inboxes - depths.keys():
            self.cluster_entries.remove(inbox)
        for inbox, count in depths.items():
            self.cluster_entries.labels(inbox=inbox).set(count)
        self._cluster_inboxes = set(depths)
        self.cluster_held.set(held)
        # The node counts from its start; the counter takes what is new since the last call.
        if deliveries > self._deliveries_seen:
            self.cluster_deliveries.inc(deliveries - self._deliveries_seen)
        self._deliveries_seen = max(self._deliveries_seen, deliveries)
        self.cluster_reachable.set(1 if reachable else 0)

    def serve(self, host: str, port: int) -> None:
        """Serve ``/metrics`` on ``host:port`` from a background thread. Raises OSError if it cannot bind."""
        self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        if host not in ("127.0.0.1", "::1", "localhost"):
            logger.warning("metrics are served on %s:%d, reachable beyond this machine", host, port)
        else:
            logger.info("metrics on http://%s:%d/metrics", host, port)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
