"""The request metrics every web service exports, and ``/metrics``' exposition.

The same names and labels everywhere, so one dashboard query serves each service:
``<prefix>_requests_total{route, method, status}`` and
``<prefix>_request_seconds{route}`` (a histogram). ``route`` is the URL rule
(``/v1/events/<event_type>``, never the raw path: bounded cardinality), ``unmatched``
for a 404 outside every rule.

With ``PROMETHEUS_MULTIPROC_DIR`` set (``multiproc.prepare`` in the gunicorn config)
every worker writes its samples to files there and ``render`` sums them; without it
(tests, one process) the default registry is served.

Usage::

    REQUESTS = RequestMetrics("questlog_api", buckets=(0.001, 0.01, 0.1, 1))
    REQUESTS.count("/v1/events", "POST", 202, 0.004)
    body, content_type = render()
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

LABELS = ("route", "method", "status")


class RequestMetrics:
    def __init__(self, prefix: str, buckets: Sequence[float]) -> None:
        self.requests = Counter(f"{prefix}_requests", "HTTP requests answered", LABELS)
        self.seconds = Histogram(
            f"{prefix}_request_seconds", "Request handling time", LABELS[:1], buckets=tuple(buckets)
        )
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def count(self, route: str, method: str, status: int, seconds: float) -> None:
        """One answer; the labelled children are looked up once per (route, method,
        status), not on every request (the API's hot path)."""
        key = (route, method, status)
        children = self._children.get(key)
        if children is None:
            children = self._children.setdefault(
                key, (self.requests.labels(route, method, str(status)), self.seconds.labels(route))
            )
        children[0].inc()
        children[1].observe(seconds)


def render() -> tuple[bytes, str]:
    """The exposition text of every worker (multiprocess) or of this process."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    from prometheus_client import REGISTRY

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
