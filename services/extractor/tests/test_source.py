"""The Kafka source's options, as the streaming plan carries them to Spark's consumers."""

from __future__ import annotations

from questlog_extractor.settings import Settings
from questlog_extractor.source import FETCH_MAX_WAIT_MS, read_kafka


def test_an_empty_fetch_is_not_held_by_the_broker_for_half_a_second(spark):
    settings = Settings(kafka_bootstrap="127.0.0.1:9", lake_root="file:///unused")
    relation = read_kafka(spark, settings)._jdf.queryExecution().analyzed()
    assert relation.getClass().getSimpleName() == "StreamingRelationV2"
    options = relation.extraOptions()  # what the source hands its Kafka consumers
    # Kafka's default (500 ms) held every small batch's task on a partition that had
    # received nothing since the previous batch (docs/benchmarks.md, "Freshness budget")
    assert options.get("kafka.fetch.max.wait.ms") == str(FETCH_MAX_WAIT_MS) == "10"
    assert options.get("kafka.bootstrap.servers") == "127.0.0.1:9"
    assert options.get("failOnDataLoss") == "true"
