"""The job's source: the events topic as a stream of raw Kafka records.

Usage::

    records = read_kafka(spark, settings)   # key, value, topic, partition, offset, ...
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession

from questlog_extractor.settings import Settings


def read_kafka(spark: SparkSession, settings: Settings) -> DataFrame:
    """The topic from ``STARTING_OFFSETS`` (or the checkpoint's), at most
    ``MAX_OFFSETS_PER_TRIGGER`` records per micro-batch. ``failOnDataLoss``: offsets the
    broker no longer has (retention passed the checkpoint) fail the query, never skipped."""
    return (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", settings.kafka_bootstrap)
        .option("subscribe", settings.topic)
        .option("startingOffsets", settings.starting_offsets)
        .option("maxOffsetsPerTrigger", str(settings.max_offsets_per_trigger))
        .option("failOnDataLoss", "true")
        .load()
    )
