"""Compaction without a JVM: delta-rs's OPTIMIZE (bin-packing) on every lake table, then
``maintain``'s VACUUM of removed files and orphan sweep; once, or in a loop beside the
stream (``make run`` runs it every ``QUESTLOG_EXTRACTOR_COMPACT_EVERY_S`` seconds).

Why a second path next to ``maintain``: Spark's OPTIMIZE needs a JVM (seconds to start,
hundreds of MB) for a job delta-rs does in-process; a loop that runs every few minutes
should not start one each time. ``maintain`` keeps Spark's for whoever runs it by hand.

Safe while the stream appends (with delta-rs, ``writers.DeltaRsWriter``): delta-rs's
compaction commits with conflict checks, and an append (blind: it reads no files) never
conflicts with it either way round. Appended while the compaction reads, a file is neither
in its removes nor lost; the compaction then commits after the append, on top of it.
Neither rewrites the other's rows, so nothing is lost or doubled, and the writer's
transaction ids (the batch each table already holds) stay in the log
(tests/test_compact.py).

VACUUM retention: ``QUESTLOG_EXTRACTOR_VACUUM_RETAIN_HOURS``, or ``DEFAULT_RETAIN_HOURS``
when unset. A removed file must outlive every reader still on a version that lists it: the
query service's snapshots live ``QUESTLOG_QUERY_SNAPSHOT_TTL_S`` plus one query's watchdog
(seconds), and a query whose files are gone is rerun on the latest version anyway
(questlog_query's lake); an hour also covers a notebook or Spark job reading one version
for a while. The cost is disk: the small files of the last hour, and the copies of a
partition each pass rewrote.

Usage::

    python -m questlog_extractor compact              # one pass
    python -m questlog_extractor compact --every 300  # a pass every 300 s until SIGTERM
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from questlog_extractor import maintain
from questlog_extractor.settings import Settings

log = logging.getLogger("questlog_extractor.compact")

DEFAULT_RETAIN_HOURS = 1
# Row groups of the compacted files. delta-rs's default puts up to ~1M rows in one row
# group; readers skip data by row group (DuckDB by each one's min/max, in parallel one per
# thread), so a page of the newest events out of a day compacted into one file would decode
# the whole file. 128Ki rows keeps the groups large for scans and small enough to skip.
ROW_GROUP_ROWS = 131_072


def writer_properties():
    from deltalake import WriterProperties

    # given any properties, delta-rs writes uncompressed unless told: Snappy, as its default
    return WriterProperties(max_row_group_size=ROW_GROUP_ROWS, compression="SNAPPY")


def retain_hours(settings: Settings) -> int:
    explicit = settings.vacuum_retain_hours
    return DEFAULT_RETAIN_HOURS if explicit is None else explicit


def _files_and_rows(table) -> tuple[int, int]:
    """Files and rows of the table's current version, from the log alone (no Parquet
    read): delta-rs writes each file's row count in its add action."""
    import pyarrow as pa
    import pyarrow.compute as pc

    actions = pa.table(table.get_add_actions())
    return actions.num_rows, int(pc.sum(actions["num_records"]).as_py() or 0)


def compact_table(uri: str, retain: int) -> dict[str, Any] | None:
    """Compact one table, then VACUUM what it (or anything) removed over ``retain`` hours
    ago and sweep week-old orphans; None if the table has no commit yet."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        table = DeltaTable(uri)
    except TableNotFoundError:
        return None
    files_before, _ = _files_and_rows(table)
    optimized = table.optimize.compact(writer_properties=writer_properties())
    deleted = maintain.vacuum_removed(uri, retain)
    swept = maintain.sweep_orphans(uri)
    table.update_incremental()
    files_after, rows = _files_and_rows(table)
    return {
        "files_before": files_before,
        "files_after": files_after,
        "rows": rows,
        "files_compacted": optimized["numFilesRemoved"],
        "files_deleted": len(deleted),
        "orphans_deleted": len(swept),
    }


def compact_all(settings: Settings, stop: threading.Event | None = None) -> dict[str, Any]:
    """One pass over every lake table that exists (stopping between tables once ``stop``
    is set); logs one JSON line and returns it as a dict."""
    started = time.perf_counter()
    retain = retain_hours(settings)
    tables: dict[str, Any] = {}
    failed: dict[str, str] = {}
    for name in maintain.table_names():
        if stop is not None and stop.is_set():
            break
        try:
            done = compact_table(settings.table_uri(name), retain)
        except Exception as exc:  # one table's failure (a store error) must not stop the rest
            failed[name] = f"{type(exc).__name__}: {str(exc)[:300]}"
            continue
        if done is not None:
            tables[name] = done
    summary = {
        "files_before": sum(t["files_before"] for t in tables.values()),
        "files_after": sum(t["files_after"] for t in tables.values()),
        "rows": sum(t["rows"] for t in tables.values()),
        "files_deleted": sum(t["files_deleted"] for t in tables.values()),
        "seconds": round(time.perf_counter() - started, 3),
        "retain_hours": retain,
        "tables": tables,
    }
    if failed:
        summary["failed"] = failed
    log.log(
        logging.WARNING if failed else logging.INFO, "compaction pass", extra={"fields": summary}
    )
    return summary


def every(settings: Settings, seconds: float, stop: threading.Event) -> None:
    """A pass now, then one every ``seconds`` (from the start of the last) until ``stop``."""
    while not stop.is_set():
        started = time.monotonic()
        compact_all(settings, stop)
        stop.wait(max(0.0, seconds - (time.monotonic() - started)))
