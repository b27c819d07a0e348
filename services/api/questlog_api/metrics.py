"""Prometheus metrics, correct across gunicorn workers.

With ``PROMETHEUS_MULTIPROC_DIR`` set (gunicorn.conf.py sets it before the app is
imported) every worker writes its samples to files there and ``/metrics`` aggregates
them; without it (tests, a single process) the default registry is served.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

REQUESTS = Counter(
    "questlog_api_requests", "HTTP requests answered", ["route", "method", "status"]
)
EVENTS_ACCEPTED = Counter(
    "questlog_api_events_accepted", "Events acknowledged by Kafka", ["event_type"]
)
EVENTS_REJECTED = Counter(
    "questlog_api_events_rejected",
    "Events not accepted, by reason (invalid, unauthorized, rate_limited, unavailable, ...)",
    ["event_type", "reason"],
)
PRODUCE_SECONDS = Histogram(
    "questlog_api_produce_seconds",
    "Time from handing a request's events to Kafka until all were acknowledged",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
REQUEST_SECONDS = Histogram(
    "questlog_api_request_seconds", "Request handling time", ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
# Summed over the live workers: a worker that died takes its count along (child_exit).
IN_FLIGHT = Gauge(
    "questlog_api_events_in_flight",
    "Events handed to Kafka and not yet acknowledged or failed (sink.InFlight)",
    multiprocess_mode="livesum",
)
IN_FLIGHT_LIMIT = Gauge(
    "questlog_api_events_in_flight_limit",
    "Events a worker may have in flight before it refuses with 503 (MAX_IN_FLIGHT)",
    multiprocess_mode="livesum",
)


_REQUEST_CHILDREN: dict[tuple[str, str, int], tuple[object, object]] = {}


def count_request(route: str, method: str, status: int, seconds: float) -> None:
    """REQUESTS and REQUEST_SECONDS for one answer; the labelled children are looked up
    once per (route, method, status), not on every request."""
    key = (route, method, status)
    children = _REQUEST_CHILDREN.get(key)
    if children is None:
        children = _REQUEST_CHILDREN.setdefault(key, (
            REQUESTS.labels(route, method, str(status)), REQUEST_SECONDS.labels(route)))
    children[0].inc()  # type: ignore[attr-defined]
    children[1].observe(seconds)  # type: ignore[attr-defined]


def render() -> tuple[bytes, str]:
    """The exposition text of every worker (multiprocess) or of this process."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    from prometheus_client import REGISTRY

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def mark_process_dead(pid: int) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)
