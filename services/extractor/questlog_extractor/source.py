"""The job's source: the events topic as a stream of raw Kafka records.

Usage::

    records = read_kafka(spark, settings)   # key, value, topic, partition, offset, ...
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession

from questlog_extractor.migrate import starting_offsets
from questlog_extractor.settings import Settings

# How long the broker holds a fetch that finds nothing new (Kafka's default: 500 ms). Spark's
# consumer cached per partition made the next small batch's task wait for such a fetch on a
# partition with nothing new (docs/benchmarks.md, "Freshness budget").
FETCH_MAX_WAIT_MS = 10


def read_kafka(spark: SparkSession, settings: Settings) -> DataFrame:
    """The topic from the checkpoint's offsets, or for a new checkpoint from those a
    dedup migration left in it (``migrate.starting_offsets``) else ``STARTING_OFFSETS``; at most
    ``MAX_OFFSETS_PER_TRIGGER`` records per micro-batch. ``failOnDataLoss``: offsets the
    broker no longer has (retention passed the checkpoint) fail the query, never skipped.
    Empty fetches return after ``FETCH_MAX_WAIT_MS``."""
    return (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", settings.kafka_bootstrap)
        .option("subscribe", settings.topic)
        .option("startingOffsets", starting_offsets(spark, settings))
        .option("maxOffsetsPerTrigger", str(settings.max_offsets_per_trigger))
        .option("failOnDataLoss", "true")
        .option("kafka.fetch.max.wait.ms", str(FETCH_MAX_WAIT_MS))
        .load()
    )
