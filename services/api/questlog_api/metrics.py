"""The API's Prometheus metrics, correct across gunicorn workers (``questlog_service``'s
multiprocess helpers: the gunicorn config sets PROMETHEUS_MULTIPROC_DIR before the app is
imported, and ``/metrics`` sums every worker's files)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from questlog_service.metrics import RequestMetrics

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# questlog_api_requests_total{route,method,status}, questlog_api_request_seconds{route}
REQUESTS = RequestMetrics("questlog_api", BUCKETS)
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
    buckets=BUCKETS,
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
