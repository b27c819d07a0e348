"""Smoke tests of the foundation on the real stack: Kafka (KRaft), Spark's Kafka source,
Delta tables on the local disk and on HDFS, read back with deltalake + DuckDB.

The transform here is deliberately minimal (two from_json parses, one table per type):
the extractor service owns the real job; this proves the parts fit together.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter

import duckdb
import pytest
from deltalake import DeltaTable
from kafka import KafkaConsumer, KafkaProducer

from questlog_schemas import load_registry

from .events import make_events

pytestmark = [pytest.mark.integration, pytest.mark.slow]

N = 2000


@pytest.fixture(scope="module")
def events():
    events = make_events(N)
    registry = load_registry()
    assert [registry.validate(e) for e in events] == [[]] * N
    return events


def new_topic(kafka, partitions=3) -> str:
    name = f"events-{uuid.uuid4().hex[:8]}"
    kafka.create_topic(name, partitions=partitions)
    return name


def produce(bootstrap: str, topic: str, events: list[dict]) -> None:
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5
    )
    try:
        # kafka-python silently drops idempotence when options conflict: prove it is on
        assert producer.config["enable_idempotence"] is True
        assert producer.config["acks"] in ("all", -1)
        futures = [
            producer.send(topic, key=e["player_id"].encode(), value=json.dumps(e).encode())
            for e in events
        ]
        producer.flush(timeout=60)
        assert all(f.get(timeout=0).offset >= 0 for f in futures)
    finally:
        producer.close()


@pytest.fixture(scope="module")
def filled_topic(kafka, events):
    topic = new_topic(kafka)
    produce(kafka.bootstrap, topic, events)
    return topic


def test_kafka_roundtrip_keeps_every_event_and_key(kafka, events, filled_topic):
    consumer = KafkaConsumer(
        filled_topic,
        bootstrap_servers=kafka.bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=15000,
    )
    try:
        seen = {}
        for msg in consumer:
            value = json.loads(msg.value)
            seen[value["event_id"]] = (msg.key.decode(), value)
            if len(seen) == N:
                break
    finally:
        consumer.close()
    assert len(seen) == N
    by_id = {e["event_id"]: e for e in events}
    assert all(key == value["player_id"] for key, value in seen.values())
    assert {k: v for k, (_, v) in seen.items()} == by_id


def kafka_to_delta(spark, bootstrap: str, topic: str, root: str) -> None:
    """Batch-read the topic with Spark's Kafka source; one Delta table per event type."""
    from pyspark.sql import functions as F

    from questlog_schemas.spark import envelope_schema, properties_schema

    raw = (
        spark.read.format("kafka")
        .option("kafka.bootstrap.servers", bootstrap)
        .option("subscribe", topic)
        .option("startingOffsets", "earliest")
        .option("endingOffsets", "latest")
        .load()
    )
    parsed = raw.select(
        F.from_json(F.col("value").cast("string"), envelope_schema()).alias("e"),
        "partition",
        "offset",
    ).select("e.*", "partition", "offset")
    for event_type in load_registry().event_types:
        (
            parsed.where(F.col("event_type") == event_type)
            .withColumn("properties", F.from_json("properties", properties_schema(event_type)))
            .select("*", "properties.*")
            .drop("properties")
            .withColumn("event_date", F.to_date("received_at"))
            .write.format("delta")
            .mode("append")
            .partitionBy("event_date")
            .save(f"{root}/{event_type}")
        )


def read_back(uri: str, storage_options: dict | None = None) -> tuple[int, int, dict]:
    """(rows, distinct event ids, {column: arrow type}) of the committed snapshot."""
    table = DeltaTable(uri, storage_options=storage_options)
    dataset = table.to_pyarrow_dataset()
    rows, distinct = duckdb.sql(
        "select count(*), count(distinct event_id) from dataset"
    ).fetchall()[0]
    return rows, distinct, {f.name: str(f.type) for f in dataset.schema}


@pytest.mark.parametrize("storage", ["file", "hdfs"])
def test_spark_kafka_source_to_delta_reads_back_exactly(
    request, storage, kafka, spark, events, filled_topic, tmp_path
):
    if storage == "hdfs":
        hdfs = request.getfixturevalue("hdfs")
        root = f"{hdfs.uri}/lake-{uuid.uuid4().hex[:6]}"
    else:
        root = (tmp_path / "lake").as_uri()
    kafka_to_delta(spark, kafka.bootstrap, filled_topic, root)

    expected = Counter(e["event_type"] for e in events)
    for event_type, count in expected.items():
        rows, distinct, columns = read_back(f"{root}/{event_type}")
        assert (rows, distinct) == (count, count), event_type
        props = load_registry().get(event_type).property_names
        assert set(props) <= set(columns)
        assert columns["received_at"].startswith("timestamp")
    purchases = DeltaTable(f"{root}/purchase_sword").to_pyarrow_table()
    assert purchases.column("price").type == "double"
    assert purchases.column("quantity").type == "int64"
