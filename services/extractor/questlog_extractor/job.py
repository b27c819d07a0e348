"""The streaming job: Kafka -> parse/validate -> dedup on event_id -> Delta, exactly once.

One query reads the topic; ``foreachBatch`` writes every event type's table and the
quarantine table from the same micro-batch, each write tagged with a Delta transaction
id (app id, batch id) so a batch replayed after a crash is skipped table by table.

The story, one step per module:

1. the Spark session (``session.build_session``),
2. the Kafka source (``source.read_kafka``),
3. parse, validate and dedup (``transforms``),
4. the writer (``writers.BatchWriter``, with the strategy ``writers.writer_for`` picks),
5. ``start`` (below), then ``shutdown.monitor`` until the query ends or is stopped
   between two batches (``shutdown.BatchGate``).

Usage::

    settings = Settings.from_env()
    spark = build_session(settings)
    query = start(spark, settings, once=False)     # once=True: availableNow (backfill)
    monitor(query)                                 # logs progress until it stops
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming import StreamingQuery

from questlog_extractor import transforms
from questlog_extractor.hadoopfs import HadoopFs
from questlog_extractor.session import build_session, query_conf
from questlog_extractor.settings import Settings
from questlog_extractor.shutdown import BatchGate, StopIncomplete, monitor, within
from questlog_extractor.source import read_kafka
from questlog_extractor.writers import QUARANTINE, TEST_PAUSE_VARIABLE, BatchWriter
from questlog_schemas import load_registry

# What callers use as ``job.<name>`` (__main__, maintain, chaos rigs, bench).
__all__ = [
    "QUARANTINE",
    "TEST_PAUSE_VARIABLE",
    "BatchGate",
    "BatchWriter",
    "StopIncomplete",
    "build_session",
    "monitor",
    "start",
    "within",
]

log = logging.getLogger("questlog_extractor.job")


def start(
    spark: SparkSession, settings: Settings, once: bool = False, gate: BatchGate | None = None
) -> StreamingQuery:
    """Start the one extractor query (``once``: availableNow, stops when drained).
    With a ``gate``, ``monitor`` can stop it between two batches."""
    registry = load_registry()
    for key, value in query_conf(settings).items():
        spark.conf.set(key, value)
    records = read_kafka(spark, settings)  # 2. source
    parsed = transforms.parse(transforms.from_kafka(records), registry)  # 3. transforms
    sink = BatchWriter(settings, registry)  # 4. writer (and the columns it takes)
    how = dedup_to_use(spark, settings)
    deduped = sink.stream(transforms.dedup(parsed, settings.watermark, how))
    write: Callable[[DataFrame, int], None] = sink
    if gate is not None:  # 5. lets monitor() stop the query between two batches
        write = functools.partial(gate.run, write)
    writer = (
        deduped.writeStream.queryName(settings.query_name)
        .foreachBatch(write)
        .option("checkpointLocation", settings.checkpoint_uri)
    )
    if once:
        writer = writer.trigger(availableNow=True)
    else:
        writer = writer.trigger(processingTime=f"{settings.trigger_seconds} seconds")
    query = writer.start()
    log.info(
        "query started",
        extra={
            "fields": {
                "query_id": query.id,
                "run_id": query.runId,
                "once": once,
                "topic": settings.topic,
                "lake_root": settings.lake_root,
                "checkpoint": settings.checkpoint_uri,
                "dedup": how,
            }
        },
    )
    return query


# The dedup operator a checkpoint's state was written by (its state/0 metadata), by name.
_OPERATORS = {"dedupeWithinWatermark": "watermark", "transformWithStateExec": "ttl"}


def checkpoint_dedup(spark: SparkSession, checkpoint_uri: str) -> str | None:
    """ "ttl" or "watermark": the dedup whose state the checkpoint holds; None for a
    checkpoint without state yet (or none at all)."""
    fs = HadoopFs(spark, checkpoint_uri)
    root = f"{checkpoint_uri}/state/0/_metadata"
    for name, is_file in fs.list(root):
        # v1: one file "metadata"; v2 (transformWithState): a folder "v2" of one per batch
        folder = root if is_file else f"{root}/{name}"
        for file in [name] if is_file else [n for n, _ in fs.list(folder)]:
            if file.startswith("."):
                continue
            text = fs.read(f"{folder}/{file}")
            for operator, how in _OPERATORS.items():
                if f'"operatorName":"{operator}"' in text:
                    return how
    return None


def dedup_to_use(spark: SparkSession, settings: Settings) -> str:
    """``settings.dedup``, unless the checkpoint's state was written by the other one: a
    dedup's state cannot be handed to the other, so the checkpoint's stays (logged)."""
    held = checkpoint_dedup(spark, settings.checkpoint_uri)
    if held is None or held == settings.dedup:
        return settings.dedup
    log.warning(
        "checkpoint keeps its dedup",
        extra={
            "fields": {
                "checkpoint": settings.checkpoint_uri,
                "dedup": held,
                "setting": settings.dedup,
                "why": "a dedup's state cannot move to the other operator"
                " (services/extractor/README.md, step 3 'dedup')",
                "to_move": "stop the extractor, then python -m questlog_extractor migrate-dedup",
            }
        },
    )
    return held
