"""DuckDB over the cached snapshots, for the service's own (fixed, parameterised) queries.

One in-process database per worker; each thread gets its own cursor, on which a table is
(re)registered only when its snapshot changed. User input never reaches SQL text: values
are bound parameters and column names come from the catalog. Every query runs under a
watchdog that interrupts it after ``timeout_s``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import duckdb
import pyarrow as pa

from questlog_query import metrics
from questlog_query.errors import ApiError
from questlog_query.lake import Snapshot

# python_enable_replacements=false: an unknown table name must never resolve to a Python
# variable of the calling frame (DuckDB's replacement scans do that by default).
BASE_CONFIG: dict[str, Any] = {
    "python_enable_replacements": False,
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
}


def connect(memory_limit: str, threads: int) -> duckdb.DuckDBPyConnection:
    config = dict(BASE_CONFIG, memory_limit=memory_limit, threads=threads)
    conn = duckdb.connect(":memory:", config=config)
    conn.execute("SET TimeZone = 'UTC'")
    return conn


class QueryTimeout(ApiError):
    def __init__(self, seconds: float) -> None:
        super().__init__(
            408,
            "query_timeout",
            f"query stopped after the {seconds:g} s limit",
            {"timeout_s": seconds},
        )


class Watchdog:
    """Interrupts ``conn`` unless cancelled within ``seconds``."""

    def __init__(self, conn: duckdb.DuckDBPyConnection, seconds: float) -> None:
        self.fired = False
        self._conn = conn
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    def _fire(self) -> None:
        self.fired = True
        self._conn.interrupt()

    def __enter__(self) -> Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()


class Engine:
    def __init__(self, memory_limit: str = "1GB", threads: int = 2, timeout_s: float = 30.0):
        self.memory_limit = memory_limit
        self.threads = threads
        self.timeout_s = timeout_s
        self._db: duckdb.DuckDBPyConnection | None = None
        self._db_lock = threading.Lock()
        self._local = threading.local()

    @classmethod
    def from_settings(cls, settings) -> Engine:
        return cls(settings.duckdb_memory_limit, settings.duckdb_threads, settings.query_timeout_s)

    def _cursor(self) -> tuple[duckdb.DuckDBPyConnection, dict[str, Snapshot]]:
        cursor = getattr(self._local, "cursor", None)
        if cursor is None:
            with self._db_lock:  # created lazily: after gunicorn forked, never at import
                if self._db is None:
                    self._db = connect(self.memory_limit, self.threads)
                cursor = self._db.cursor()
            cursor.execute("SET TimeZone = 'UTC'")
            self._local.cursor = cursor
            self._local.registered = {}
        return cursor, self._local.registered

    def query(
        self, sql: str, params: Mapping[str, Any], snapshots: Mapping[str, Snapshot]
    ) -> pa.Table:
        cursor, registered = self._cursor()
        for name, snap in snapshots.items():
            if registered.get(name) is not snap:
                cursor.register(name, snap.dataset)
                registered[name] = snap
        with Watchdog(cursor, self.timeout_s) as dog:
            try:
                return cursor.sql(sql, params=dict(params)).to_arrow_table()
            except duckdb.InterruptException:
                if dog.fired:
                    metrics.QUERY_TIMEOUTS.labels("rest").inc()
                    raise QueryTimeout(self.timeout_s) from None
                raise
