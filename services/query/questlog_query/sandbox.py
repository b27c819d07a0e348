"""Analysts' read-only SQL: one SELECT, on a throw-away, locked-down DuckDB database.

Per request: a fresh in-memory database gets only the current snapshots registered, then
``enable_external_access=false`` (set at connect), memory/thread limits and
``lock_configuration=true``; the statement must parse as exactly one SELECT; the result
is cut at ``max_rows`` (the LIMIT is applied to the relation, never pasted into the SQL
text) and a watchdog interrupts it after ``timeout_s``. Refusals, failures and timeouts
are domain errors (``questlog_query.errors``) that the app maps to HTTP.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from questlog_query import metrics
from questlog_query.engine import Refresh, Watchdog, connect, files_gone, with_fresh_snapshots
from questlog_query.errors import QueryTimeout, SqlFailed, SqlOutOfMemory, SqlRejected
from questlog_query.lake import Snapshot

if TYPE_CHECKING:
    from questlog_query.settings import Settings

MAX_SQL_CHARS = 100_000


def rejected(kind: str, message: str, **details: Any) -> SqlRejected:
    metrics.SQL_REJECTED.labels(kind).inc()
    return SqlRejected(kind, message, **details)


def check_select(sql: str) -> None:
    """Raise unless ``sql`` is exactly one SELECT statement."""
    if len(sql) > MAX_SQL_CHARS:
        raise rejected("too_long", f"SQL longer than {MAX_SQL_CHARS} characters")
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise rejected("parse_error", "SQL does not parse", reason=str(exc)[:500]) from None
    if len(statements) != 1:
        raise rejected(
            "not_single_statement", "send exactly one statement", statements=len(statements)
        )
    kind = statements[0].type
    if kind != duckdb.StatementType.SELECT:
        raise rejected("not_select", "only SELECT statements are allowed", statement_type=kind.name)


class SqlSandbox:
    def __init__(
        self,
        memory_limit: str,
        threads: int,
        max_rows: int,
        timeout_s: float,
        refresh: Refresh | None = None,
    ):
        self.refresh = refresh
        self.memory_limit = memory_limit
        self.threads = threads
        self.max_rows = max_rows
        self.timeout_s = timeout_s

    @classmethod
    def from_settings(cls, settings: Settings, refresh: Refresh | None = None) -> SqlSandbox:
        return cls(
            settings.duckdb_memory_limit,
            settings.duckdb_threads,
            settings.sql_max_rows,
            settings.sql_timeout_s,
            refresh,
        )

    def run(
        self,
        sql: str,
        snapshots: Mapping[str, Snapshot],
        params: list[Any] | Mapping[str, Any] | None = None,
    ) -> tuple[pa.Table, bool]:
        """Rows (at most ``max_rows``) and whether the result was truncated."""
        check_select(sql)
        return with_fresh_snapshots(
            lambda snaps: self._run(sql, snaps, params), snapshots, self.refresh
        )

    def _run(
        self,
        sql: str,
        snapshots: Mapping[str, Snapshot],
        params: list[Any] | Mapping[str, Any] | None,
    ) -> tuple[pa.Table, bool]:
        conn = connect(self.memory_limit, self.threads)
        try:
            for name, snap in snapshots.items():
                conn.register(name, snap.dataset)
            conn.execute("SET lock_configuration = true")
            with Watchdog(conn, self.timeout_s) as dog:
                try:
                    relation = conn.sql(sql, params=params)
                    if relation is None:  # not a query after all: refuse, ran nothing useful
                        raise rejected("not_select", "only SELECT statements are allowed")
                    table = relation.limit(self.max_rows + 1).to_arrow_table()
                except duckdb.InterruptException:
                    if dog.fired:
                        metrics.QUERY_TIMEOUTS.labels("sql").inc()
                        raise QueryTimeout(self.timeout_s) from None
                    raise
                except duckdb.OutOfMemoryException as exc:
                    raise SqlOutOfMemory(
                        "query exceeded the memory limit",
                        memory_limit=self.memory_limit,
                        reason=str(exc)[:500],
                    ) from None
                except duckdb.Error as exc:  # the analyst's mistake, not ours
                    if files_gone(exc):  # ours: the snapshot's files were vacuumed
                        raise
                    raise SqlFailed(
                        "query failed", type=type(exc).__name__, reason=str(exc)[:1000]
                    ) from None
        finally:
            conn.close()
        truncated = table.num_rows > self.max_rows
        if truncated:
            table = table.slice(0, self.max_rows)
        return table, truncated
