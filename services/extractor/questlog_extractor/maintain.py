"""Table maintenance: compact streaming's small files (OPTIMIZE), then delete the files
that compaction (or any commit) removed once they are older than the retention
(VACUUM), and sweep files no commit ever listed once they are a week old.

Safe while the stream runs, at any retention, for the writers:

- OPTIMIZE (Spark's Delta) only rewrites files and commits with conflict checks; the
  stream's blind appends never conflict with it.
- VACUUM of removed files (delta-rs, "lite" mode) deletes only files a *committed* remove
  action names (tombstones), read from the table's latest version after the compaction.
  A file a writer has written but not committed yet is never a tombstone, so even
  retention 0 cannot delete it. (A "full" vacuum also deletes every file no version
  lists: with a short retention that includes the files of an append about to commit.)
- The orphan sweep (delta-rs's full vacuum at the table's own retention, 7 days) deletes
  files no version lists — Parquet a killed writer left behind — once a week old.

For readers, retention is how long a snapshot stays readable after a newer version
removed its files: at 0, a reader still on the version before a compaction finds its
files gone (the query service answers from a fresh snapshot then: see questlog_query's
lake). ``QUESTLOG_EXTRACTOR_VACUUM_RETAIN_HOURS`` sets it; unset, each table's own
(``delta.deletedFileRetentionDuration``, Delta's default 7 days) applies and a shorter
one is refused, as Delta's retention check does.

Usage::

    python -m questlog_extractor maintain
    QUESTLOG_EXTRACTOR_VACUUM_RETAIN_HOURS=0 python -m questlog_extractor maintain
"""

from __future__ import annotations

import logging
from typing import Any

from delta.tables import DeltaTable
from pyspark.sql import SparkSession

from questlog_extractor.job import QUARANTINE
from questlog_extractor.settings import Settings
from questlog_schemas import load_registry

log = logging.getLogger("questlog_extractor.maintain")


def table_names() -> list[str]:
    return [*load_registry().event_types, QUARANTINE]


def vacuum_removed(uri: str, retain_hours: int | None) -> list[str]:
    """Delete the files committed versions removed more than ``retain_hours`` ago (None:
    the table's configured retention, shorter ones refused); returns their paths."""
    import deltalake

    table = deltalake.DeltaTable(uri)  # opened now: the latest version, after OPTIMIZE
    return table.vacuum(
        retention_hours=retain_hours,
        dry_run=False,
        full=False,
        enforce_retention_duration=retain_hours is None,
    )


def sweep_orphans(uri: str) -> list[str]:
    """Files no version lists (a killed writer's Parquet), once older than the table's own
    retention (Delta's default, 7 days): no writer takes that long between writing its files
    and committing them. delta-rs's "full" vacuum, which only lists the table's folder
    (Spark's VACUUM runs jobs over it: minutes on a small machine)."""
    import deltalake

    return deltalake.DeltaTable(uri).vacuum(dry_run=False, full=True)


def maintain(spark: SparkSession, settings: Settings) -> dict[str, dict[str, Any]]:
    """OPTIMIZE then VACUUM every lake table that exists; returns what was done."""
    done: dict[str, dict[str, Any]] = {}
    for name in table_names():
        uri = settings.table_uri(name)
        if not DeltaTable.isDeltaTable(spark, uri):
            continue
        table = DeltaTable.forPath(spark, uri)
        optimized = table.optimize().executeCompaction().collect()[0]["metrics"]
        deleted = vacuum_removed(uri, settings.vacuum_retain_hours)
        swept = sweep_orphans(uri)
        done[name] = {
            "files_added": optimized["numFilesAdded"],
            "files_removed": optimized["numFilesRemoved"],
            "files_deleted": len(deleted),
            "orphans_deleted": len(swept),
        }
        log.info(
            "table maintained",
            extra={
                "fields": {
                    "table": name,
                    "retain_hours": settings.vacuum_retain_hours,
                    **done[name],
                }
            },
        )
    return done
