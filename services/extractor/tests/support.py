"""Helpers for the integration tests: produce to Kafka, read committed Delta snapshots."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable


def new_topic(kafka, partitions: int = 3) -> str:
    name = f"events-{uuid.uuid4().hex[:8]}"
    kafka.create_topic(name, partitions=partitions)
    return name


def produce(bootstrap: str, topic: str, values: Iterable[tuple[bytes | None, bytes | None]]) -> int:
    """Send (key, value) pairs with acks=all + idempotence; returns how many were acked."""
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_request_size=2 * 1024 * 1024,
    )
    try:
        assert producer.config["enable_idempotence"] is True
        futures = [producer.send(topic, key=k, value=v) for k, v in values]
        producer.flush(timeout=60)
        return sum(1 for f in futures if f.get(timeout=0).offset >= 0)
    finally:
        producer.close()


def produce_events(bootstrap: str, topic: str, events: Iterable[dict]) -> int:
    return produce(
        bootstrap, topic, ((e["player_id"].encode(), json.dumps(e).encode()) for e in events)
    )


def read_table(uri: str):
    """The committed snapshot of a Delta table as an Arrow table (None if absent)."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        return DeltaTable(uri).to_pyarrow_table()
    except TableNotFoundError:
        return None


def count_rows(uri: str) -> int:
    table = read_table(uri)
    return 0 if table is None else table.num_rows
