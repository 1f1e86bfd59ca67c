"""telemetry.metrics.child: the child prometheus-client keeps for the labels, looked up once."""

from __future__ import annotations

from prometheus_client import REGISTRY

from telemetry import metrics


def test_a_child_is_the_metrics_own_and_counts_in_the_exposition() -> None:
    labels = ("/child-test/{id}", "POST", "201")
    first = metrics.child(metrics.HTTP_REQUESTS, *labels)
    assert first is metrics.child(metrics.HTTP_REQUESTS, *labels)
    assert first is metrics.HTTP_REQUESTS.labels(*labels)  # what the metric itself hands out
    named = {"route": labels[0], "method": labels[1], "status": labels[2]}
    before = REGISTRY.get_sample_value("flp_http_requests_total", named)
    metrics.child(metrics.HTTP_REQUESTS, *labels).inc()
    after = REGISTRY.get_sample_value("flp_http_requests_total", named)
    assert after == (before or 0) + 1
    other = metrics.child(metrics.HTTP_SECONDS, "/child-test/{id}", "POST")
    assert other is metrics.HTTP_SECONDS.labels("/child-test/{id}", "POST")
