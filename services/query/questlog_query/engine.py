"""DuckDB over the cached snapshots, for the service's own (fixed, parameterised) queries.

One in-process database per worker; each thread gets its own cursor, on which a table is
(re)registered only when its snapshot changed. User input never reaches SQL text: values
are bound parameters and column names come from the catalog. Every query runs under a
watchdog that interrupts it after ``timeout_s`` (``errors.QueryTimeout``, which the app
maps to HTTP).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote, urlparse

import duckdb
import pyarrow as pa

from questlog_query import metrics
from questlog_query.errors import QueryTimeout
from questlog_query.lake import LakeUnavailable, Snapshot

if TYPE_CHECKING:
    from questlog_query.settings import Settings

Refresh = Callable[[str], Snapshot]  # table name -> its latest snapshot, checked now
R = TypeVar("R")


class SnapshotFilesGone(LakeUnavailable):
    """Files of the snapshot a query read were deleted (a VACUUM with a retention shorter
    than the snapshot's age) and a fresh snapshot did not help either."""


def files_gone(exc: BaseException) -> bool:
    """Whether DuckDB failed because a data file of the snapshot no longer exists (read
    natively: an IO error; through Arrow: the dataset's FileNotFoundError)."""
    return isinstance(exc, duckdb.IOException) or "FileNotFoundError" in str(exc)


def with_fresh_snapshots(
    run: Callable[[Mapping[str, Snapshot]], R],
    snapshots: Mapping[str, Snapshot],
    refresh: Refresh | None,
) -> R:
    """``run(snapshots)``; if their files were vacuumed away meanwhile, once more on each
    table's latest version (a maintenance run with retention 0 deletes the files of the
    version before its compaction at once, while a worker may still hold that version for
    up to its snapshot TTL)."""
    try:
        return run(snapshots)
    except duckdb.Error as exc:
        if not files_gone(exc):
            raise
        if refresh is None:
            raise SnapshotFilesGone(str(exc)[:500]) from exc
        fresh = {key: refresh(snap.name) for key, snap in snapshots.items()}
    try:
        return run(fresh)
    except duckdb.Error as exc:
        if files_gone(exc):
            raise SnapshotFilesGone(str(exc)[:500]) from exc
        raise


# python_enable_replacements=false: an unknown table name must never resolve to a Python
# variable of the calling frame (DuckDB's replacement scans do that by default).
BASE_CONFIG: dict[str, Any] = {
    "python_enable_replacements": False,
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
}


def connect(
    memory_limit: str, threads: int, allowed_directories: tuple[str, ...] = ()
) -> duckdb.DuckDBPyConnection:
    """A DuckDB with no file access, except reading under ``allowed_directories`` (the
    lake's own folder, so committed Parquet files can be read natively)."""
    config = {k: v for k, v in BASE_CONFIG.items() if k != "enable_external_access"}
    conn = duckdb.connect(
        ":memory:", config=dict(config, memory_limit=memory_limit, threads=threads)
    )
    if allowed_directories:
        conn.execute("SET allowed_directories = $dirs", {"dirs": list(allowed_directories)})
        # Parquet footers kept between queries: a Delta data file is never rewritten under
        # its name, and a streamed table is many small files whose footers would otherwise
        # be read again by every query (300 files, counts by host: 53 -> 37 ms).
        conn.execute("SET GLOBAL parquet_metadata_cache = true")
    conn.execute("SET enable_external_access = false")
    conn.execute("SET TimeZone = 'UTC'")
    return conn


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def parquet_view(name: str, snap: Snapshot) -> str:
    """A view over exactly the snapshot's committed files (never a glob), columns in the
    snapshot's order with partition values taken from the hive-style paths. TEMP: each
    thread's cursor is its own connection, so threads never share (or fight over) it."""
    files = ", ".join(_sql_string(f) for f in snap.files)
    columns = ", ".join(_ident(c) for c in snap.columns)
    return (
        f"CREATE OR REPLACE TEMP VIEW {_ident(name)} AS SELECT {columns} FROM "  # noqa: S608
        f"read_parquet([{files}], hive_partitioning = true, union_by_name = true)"
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
    def __init__(
        self,
        memory_limit: str = "1GB",
        threads: int = 2,
        timeout_s: float = 30.0,
        lake_dir: str | None = None,
        refresh: Refresh | None = None,
    ):
        self.refresh = refresh
        self.memory_limit = memory_limit
        self.threads = threads
        self.timeout_s = timeout_s
        self.lake_dir = lake_dir  # local lake folder: committed files are read natively
        self._db: duckdb.DuckDBPyConnection | None = None
        self._db_lock = threading.Lock()
        self._local = threading.local()

    @classmethod
    def from_settings(cls, settings: Settings, refresh: Refresh | None = None) -> Engine:
        root = settings.lake_root
        lake_dir = unquote(urlparse(root).path) if root.startswith("file://") else None
        return cls(
            settings.duckdb_memory_limit,
            settings.duckdb_threads,
            settings.query_timeout_s,
            lake_dir,
            refresh,
        )

    def _cursor(self) -> tuple[duckdb.DuckDBPyConnection, dict[str, Snapshot]]:
        cursor = getattr(self._local, "cursor", None)
        if cursor is None:
            with self._db_lock:  # created lazily: after gunicorn forked, never at import
                if self._db is None:
                    dirs = (self.lake_dir.rstrip("/") + "/",) if self.lake_dir else ()
                    self._db = connect(self.memory_limit, self.threads, dirs)
                cursor = self._db.cursor()
            cursor.execute("SET TimeZone = 'UTC'")
            self._local.cursor = cursor
            self._local.registered = {}
        return cursor, self._local.registered

    def _native(self, snap: Snapshot) -> bool:
        """Whether DuckDB may read the snapshot's files itself (all inside the lake)."""
        return bool(
            snap.files and self.lake_dir and all(f.startswith(self.lake_dir) for f in snap.files)
        )

    def query(
        self, sql: str, params: Mapping[str, Any], snapshots: Mapping[str, Snapshot]
    ) -> pa.Table:
        return with_fresh_snapshots(
            lambda snaps: self._query(sql, params, snaps), snapshots, self.refresh
        )

    def _query(
        self, sql: str, params: Mapping[str, Any], snapshots: Mapping[str, Snapshot]
    ) -> pa.Table:
        cursor, registered = self._cursor()
        for name, snap in snapshots.items():
            if registered.get(name) is not snap:
                previous = registered.pop(name, None)
                if previous is not None and self._native(previous):
                    cursor.execute(f"DROP VIEW IF EXISTS {_ident(name)}")
                elif previous is not None:
                    cursor.unregister(name)
                if self._native(snap):
                    cursor.execute(parquet_view(name, snap))
                else:
                    cursor.register(name, snap.dataset)
                registered[name] = snap
        with Watchdog(cursor, self.timeout_s) as dog:
            try:
                table: pa.Table = cursor.sql(sql, params=dict(params)).to_arrow_table()
                return table
            except duckdb.InterruptException:
                if dog.fired:
                    metrics.QUERY_TIMEOUTS.labels("rest").inc()
                    raise QueryTimeout(self.timeout_s) from None
                raise
