"""The embedded Kafka broker: a real KRaft node, restartable on its data dir."""

import os

import pytest
from kafka import KafkaConsumer, KafkaProducer

from questlog_embedded.kafka import KafkaBroker

pytestmark = pytest.mark.integration


def produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    try:
        for v in values:
            producer.send(topic, value=v)
        producer.flush(timeout=30)
    finally:
        producer.close()


def consume_all(bootstrap: str, topic: str, expected: int) -> list[bytes]:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=10000,
        enable_auto_commit=False,
    )
    try:
        out = []
        for msg in consumer:
            out.append(msg.value)
            if len(out) >= expected:
                break
        return out
    finally:
        consumer.close()


def test_restart_keeps_topics_and_data(tmp_path):
    values = [f"v{i}".encode() for i in range(50)]
    broker = KafkaBroker(tmp_path / "kafka")
    with broker:
        broker.create_topic("t", partitions=2)
        broker.create_topic("t", partitions=2)  # idempotent
        produce(broker.bootstrap, "t", values)
        pid = broker.pid
    assert not broker.running()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    # same data dir, same ports: not reformatted, the records survive
    with KafkaBroker(
        tmp_path / "kafka", port=broker.port, controller_port=broker.controller_port
    ) as again:
        assert sorted(consume_all(again.bootstrap, "t", len(values))) == sorted(values)


def test_port_in_use_is_a_clear_error(tmp_path, kafka):
    with pytest.raises(RuntimeError, match="already in use"):
        KafkaBroker(tmp_path / "k2", port=kafka.port).start()


def test_a_cluster_id_starting_with_a_dash_formats(tmp_path, monkeypatch):
    # 0xF8 makes the URL-safe base64 id start with "-", which argparse took for an option.
    import uuid as uuid_module

    import questlog_embedded.kafka as kafka_module

    dash = uuid_module.UUID(bytes=b"\xf8" + bytes(range(15)))
    monkeypatch.setattr(kafka_module.uuid, "uuid4", lambda: dash)
    with KafkaBroker(tmp_path / "kafka") as broker:
        broker.create_topic("t")
        produce(broker.bootstrap, "t", [b"x"])
        assert consume_all(broker.bootstrap, "t", 1) == [b"x"]
    meta = (tmp_path / "kafka" / "logs" / "meta.properties").read_text()
    assert "cluster.id=-" in meta
