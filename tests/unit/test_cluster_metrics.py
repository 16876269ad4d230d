"""The metrics of distributed mode, read back from the registry as a scrape would read them."""

from __future__ import annotations

from prometheus_client import generate_latest

from ocrwatch.metrics import Metrics


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_cluster_state_is_exposed_per_inbox_and_for_this_host() -> None:
    """Queue depth per inbox id, entries held here, deliveries taken and Redis reachable."""
    metrics = Metrics()

    metrics.set_cluster({"scans": 7, "invoices": 0}, held=2, deliveries=5, reachable=True)

    assert 7.0 == value(metrics, "ocrwatch_cluster_queue_entries", inbox="scans")
    assert 0.0 == value(metrics, "ocrwatch_cluster_queue_entries", inbox="invoices")
    assert 2.0 == value(metrics, "ocrwatch_cluster_held_entries")
    assert 5.0 == value(metrics, "ocrwatch_cluster_deliveries_total")
    assert 1.0 == value(metrics, "ocrwatch_cluster_redis_reachable")


def test_deliveries_count_up_from_the_nodes_running_total() -> None:
    """The node reports a running total; the counter follows it and never goes back."""
    metrics = Metrics()

    metrics.set_cluster({"scans": 1}, held=1, deliveries=3, reachable=True)
    metrics.set_cluster({"scans": 1}, held=1, deliveries=8, reachable=True)
    after_two = value(metrics, "ocrwatch_cluster_deliveries_total")
    metrics.set_cluster({"scans": 1}, held=1, deliveries=8, reachable=True)

    assert 8.0 == after_two
    assert 8.0 == value(metrics, "ocrwatch_cluster_deliveries_total")


def test_an_inbox_whose_depth_is_unknown_has_no_series() -> None:
    """Redis unreachable: reachable drops to 0 and the depths it cannot know disappear."""
    metrics = Metrics()
    metrics.set_cluster({"scans": 4}, held=1, deliveries=1, reachable=True)

    metrics.set_cluster({}, held=1, deliveries=1, reachable=False)

    assert 0.0 == value(metrics, "ocrwatch_cluster_redis_reachable")
    assert value(metrics, "ocrwatch_cluster_queue_entries", inbox="scans") is None
    assert b'ocrwatch_cluster_queue_entries{inbox="scans"}' not in generate_latest(metrics.registry)
