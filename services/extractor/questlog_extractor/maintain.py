"""Table maintenance: compact streaming's small files (OPTIMIZE) and delete files no
snapshot inside the retention period needs (VACUUM, Delta's default 7 days).

Both are Delta transactions: OPTIMIZE only rewrites files and commits with conflict
checks (blind appends from the running stream never conflict with it), and VACUUM with
the default retention keeps every file a current reader or writer may still use, so
this is safe while the stream runs.

Usage::

    python -m questlog_extractor maintain
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


def maintain(spark: SparkSession, settings: Settings) -> dict[str, dict[str, Any]]:
    """OPTIMIZE then VACUUM every lake table that exists; returns what was done."""
    done: dict[str, dict[str, Any]] = {}
    for name in table_names():
        uri = settings.table_uri(name)
        if not DeltaTable.isDeltaTable(spark, uri):
            continue
        table = DeltaTable.forPath(spark, uri)
        optimized = table.optimize().executeCompaction().collect()[0]["metrics"]
        table.vacuum()
        done[name] = {"files_added": optimized["numFilesAdded"],
                      "files_removed": optimized["numFilesRemoved"]}
        log.info("table maintained", extra={"fields": {"table": name, **done[name]}})
    return done
