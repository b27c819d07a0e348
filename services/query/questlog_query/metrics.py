"""The query service's Prometheus metrics, correct across gunicorn workers
(``questlog_service``'s multiprocess helpers; ``/metrics`` sums every worker's files)."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Counter, Gauge

from questlog_service.metrics import RequestMetrics

# questlog_query_requests_total{route,method,status}, questlog_query_request_seconds{route}
REQUESTS = RequestMetrics(
    "questlog_query", buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
)
SNAPSHOT_LOADS = Counter(
    "questlog_query_snapshot_loads_total", "Table versions loaded into the cache", ["table"]
)
SNAPSHOT_ERRORS = Counter(
    "questlog_query_snapshot_errors_total", "Failed checks for a new table version", ["table"]
)
TABLE_VERSION = Gauge(
    "questlog_query_table_version",
    "Delta version of the cached snapshot",
    ["table"],
    multiprocess_mode="max",
)
# The row count of the snapshot a worker loaded last: tables are append-only, but a
# rewritten table may shrink, so the most recent load wins, not the largest.
TABLE_ROWS = Gauge(
    "questlog_query_table_rows",
    "Rows in the cached snapshot (from the Delta log's statistics)",
    ["table"],
    multiprocess_mode="mostrecent",
)
SQL_REJECTED = Counter(
    "questlog_query_sql_rejected_total", "POST /v1/sql statements refused", ["reason"]
)
QUERY_TIMEOUTS = Counter(
    "questlog_query_timeouts_total", "Queries interrupted by the watchdog", ["kind"]
)


def initialize(tables: Iterable[str]) -> None:
    """Zero the error counters of every known label value, so that they are exported (a
    labelled counter nobody incremented has no series, least of all across gunicorn's
    workers) and rate() over them starts at 0 rather than at the first error."""
    for table in tables:
        SNAPSHOT_ERRORS.labels(table)
    for kind in ("rest", "sql"):
        QUERY_TIMEOUTS.labels(kind)
