"""The real path: a real KRaft broker, the confluent-kafka sink, events read back from the
topic."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from questlog_api import ConfluentSink, Settings, create_app

pytestmark = pytest.mark.integration

CANARIES = ("COOKIE-CANARY-7f3a", "AUTH-CANARY-91bc", "BODY-CANARY-c0de")


def settings_for(bootstrap: str, topic: str, **overrides) -> Settings:
    values = {
        "kafka_bootstrap": bootstrap,
        "topic": topic,
        "ip_hash_key": b"integration-ip-key-0123",
        "produce_timeout_s": 3.0,
    }
    values.update(overrides)
    return Settings(**values)


def read_topic(bootstrap: str, topic: str, expected: int, timeout_s: float = 30.0):
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    records = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(records) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        # and nothing more arrives
        for batch in consumer.poll(timeout_ms=1000).values():
            records.extend(batch)
    finally:
        consumer.close()
    return records


@pytest.fixture
def topic(kafka):
    name = f"api-{uuid.uuid4().hex[:10]}"
    kafka.create_topic(name, partitions=3)
    return name


def test_confluent_producer_is_idempotent_with_acks_all(kafka, topic):
    """librdkafka reports the idempotent producer's state: a producer id was assigned."""
    stats: list[dict] = []
    sink = ConfluentSink(settings_for(kafka.bootstrap, topic))
    config = sink.producer_config()
    assert config["enable.idempotence"] is True
    assert config["acks"] == "all"
    sink.producer_config = lambda: {
        **config,
        "statistics.interval.ms": 100,
        "stats_cb": lambda raw: stats.append(json.loads(raw)),
    }
    try:
        sink.send_many(
            [
                {
                    "event_type": "join_guild",
                    "player_id": "p",
                    "event_id": "e",
                    "properties": {"guild_id": "g"},
                }
            ]
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(
            s.get("eos", {}).get("idemp_state") == "Assigned" for s in stats
        ):
            time.sleep(0.1)
        eos = next(
            s["eos"] for s in reversed(stats) if s.get("eos", {}).get("idemp_state") == "Assigned"
        )
        assert eos["producer_id"] >= 0
    finally:
        sink.close(5)


def test_librdkafka_refuses_idempotence_without_acks_all(kafka):
    from confluent_kafka import KafkaException, Producer

    with pytest.raises(KafkaException, match="acks"):
        Producer({"bootstrap.servers": kafka.bootstrap, "enable.idempotence": True, "acks": 1})
    sink = ConfluentSink(settings_for(kafka.bootstrap, "t"))
    with pytest.raises(RuntimeError, match="not idempotent"):
        sink._check_idempotent({**sink.producer_config(), "acks": 1})


def test_events_are_read_back_with_exact_envelope_and_key(kafka, topic):
    app = create_app(settings_for(kafka.bootstrap, topic))
    client = app.test_client()
    secret_headers = {
        "Cookie": f"session={CANARIES[0]}",
        "Authorization": f"Bearer {CANARIES[1]}",
        "Host": "user1.comcast.com",
        "User-Agent": "ApacheBench/2.3",
        "Accept": "*/*",
    }
    client_id = str(uuid.uuid4())
    batch = [
        {
            "event_type": "purchase_sword",
            "player_id": "alice",
            "event_id": client_id,
            "event_time": "2026-01-02T03:04:05Z",
            "properties": {
                "sword_type": "katana",
                "price": 12.5,
                "currency": "JPY",
                "quantity": 2.0,
            },
        },
        {"event_type": "join_guild", "session_id": "s-1", "properties": {"guild_id": "g1"}},
    ]
    r = client.post("/v1/events", json=batch, headers=secret_headers)
    assert r.status_code == 202, r.data
    ids = r.get_json()["event_ids"]
    assert ids[0] == client_id
    r = client.get("/buy_a_sword", headers=secret_headers)
    assert r.status_code == 200
    assert r.data == b"\nSword Purchased!\n"
    # an unknown body field: rejected, so it never reaches Kafka
    r = client.post(
        "/v1/events",
        headers=secret_headers,
        json={
            "event_type": "join_guild",
            "player_id": "bob",
            "note": CANARIES[2],
            "properties": {"guild_id": "g1", "x": CANARIES[2]},
        },
    )
    assert r.status_code == 422

    records = read_topic(kafka.bootstrap, topic, expected=3)
    assert len(records) == 3
    by_id = {json.loads(rec.value)["event_id"]: rec for rec in records}
    assert set(ids) <= set(by_id)
    alice = json.loads(by_id[client_id].value)
    assert by_id[client_id].key == b"alice"
    context = alice.pop("context")
    received_at = alice.pop("received_at")
    assert alice == {
        "event_type": "purchase_sword",
        "player_id": "alice",
        "event_id": client_id,
        "event_time": "2026-01-02T03:04:05Z",
        "properties": {"sword_type": "katana", "price": 12.5, "currency": "JPY", "quantity": 2},
        "schema_version": 1,
    }
    assert received_at.endswith("Z")
    assert set(context) == {"host", "user_agent", "accept", "client_ip_hash"}
    assert context["host"] == "user1.comcast.com"
    guild = json.loads(by_id[ids[1]].value)
    assert by_id[ids[1]].key == b"user1.comcast.com"
    assert guild["player_id"] == "user1.comcast.com"
    assert guild["session_id"] == "s-1"
    legacy = [
        json.loads(rec.value) for rec in records if json.loads(rec.value)["event_id"] not in ids
    ]
    assert [e["properties"] for e in legacy] == [{"sword_type": "default"}]

    raw = b"".join((rec.key or b"") + rec.value + repr(rec.headers).encode() for rec in records)
    for canary in CANARIES:
        assert canary.encode() not in raw
    app.extensions["questlog_api"].sink.close(5)


@pytest.mark.slow
def test_outage_gives_only_bounded_503s_then_recovers(tmp_path):
    from questlog_embedded.kafka import KafkaBroker

    broker = KafkaBroker(tmp_path / "kafka", default_partitions=1)
    broker.start()
    try:
        broker.create_topic("events", partitions=1)
        settings = settings_for(broker.bootstrap, "events", produce_timeout_s=2.0)
        app = create_app(settings)
        client = app.test_client()
        event = {"event_type": "join_guild", "player_id": "p", "properties": {"guild_id": "g"}}
        assert client.post("/v1/events", json=event).status_code == 202
        assert client.get("/readyz").status_code == 200

        broker.stop()
        statuses, slowest = [], 0.0
        for _ in range(6):
            started = time.monotonic()
            r = client.post("/v1/events", json=event)
            slowest = max(slowest, time.monotonic() - started)
            statuses.append(r.status_code)
            if r.status_code == 503:
                assert r.headers["Retry-After"] == "1"
        legacy = client.get("/join_guild")
        assert legacy.status_code == 503
        assert set(statuses) == {503}, statuses
        assert slowest < settings.produce_timeout_s + 1.5
        assert client.get("/readyz").status_code == 503

        broker.start()
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline:
            status = client.post("/v1/events", json=event).status_code
            if status == 202:
                break
            assert status == 503
            time.sleep(0.5)
        assert status == 202, "no recovery without restart"
        assert client.get("/readyz").status_code == 200
        app.extensions["questlog_api"].sink.close(5)
    finally:
        broker.stop()
