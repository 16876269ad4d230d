"""Distributed mode: several hosts share one set of inboxes through Redis Streams.

Imported only when the config has a ``queue:`` section; a host without one
never loads this package or redis-py. Redis holds no truth: the sidecars
are the record of what was done, and everything here can be lost and
rebuilt by the next scan.

- :mod:`~ocrwatch.cluster.connection`: the client, password, TLS, readable failures.
- :mod:`~ocrwatch.cluster.jobs`: jobs, settings fingerprints, host names, key names.
- :mod:`~ocrwatch.cluster.streams`: the queue (enqueue once, keepalive, take-over, ack).
- :mod:`~ocrwatch.cluster.lease`: scanner leases and host records.
- :mod:`~ocrwatch.cluster.pages`: documents' per-page progress, shared.
- :mod:`~ocrwatch.cluster.budget`: one ocr.space budget for all hosts.
- :mod:`~ocrwatch.cluster.node`: this host's part, run by the daemon.
"""
