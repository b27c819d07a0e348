"""Refusals a client can act on: the 503 names its events and whether they may still land;
the legacy routes take the client's event id, so a retry after a 503 is stored once."""

from __future__ import annotations

import threading
import uuid

import pytest

from questlog_api.sink import (
    NOT_PERSISTED,
    POSSIBLY_PERSISTED,
    ConfluentSink,
    ReadinessProbe,
    SinkUnavailable,
)

EVENT = {"event_type": "join_guild", "player_id": "p", "properties": {"guild_id": "g"}}


def test_post_503_carries_persistence_and_every_event_id(client, sink):
    sink.fail = True
    mine = str(uuid.uuid4())
    r = client.post("/v1/events", json=[{**EVENT, "event_id": mine}, EVENT])
    assert r.status_code == 503
    assert r.headers["Retry-After"] == "1"
    assert r.headers["X-Event-Persistence"] == NOT_PERSISTED
    assert "X-Event-Id" not in r.headers  # two events: the ids are in the body
    error = r.get_json()["error"]
    assert error["code"] == "unavailable"
    assert "not_persisted" in error["message"]
    details = error["details"]
    assert details["persistence"] == NOT_PERSISTED
    assert details["event_ids"][0] == mine
    assert len(details["event_ids"]) == 2
    uuid.UUID(details["event_ids"][1])
    assert details["reason"]


def test_possibly_persisted_is_said_so(client, sink):
    sink.fail = True
    sink.fail_persistence = POSSIBLY_PERSISTED
    r = client.post("/v1/events", json=EVENT)
    assert r.status_code == 503
    assert r.get_json()["error"]["details"]["persistence"] == POSSIBLY_PERSISTED
    assert r.headers["X-Event-Persistence"] == POSSIBLY_PERSISTED
    assert "retry with the same event_id" in r.get_json()["error"]["message"]


def test_in_flight_cap_full_is_not_persisted(client, sink):
    assert sink.in_flight.try_acquire(sink.in_flight.limit)
    r = client.post("/v1/events", json=EVENT)
    assert r.status_code == 503
    assert r.get_json()["error"]["details"]["persistence"] == NOT_PERSISTED
    assert sink.records == []


def test_legacy_503_names_the_event_and_a_retry_with_it_stores_that_id(client, sink):
    sink.fail = True
    sink.fail_persistence = POSSIBLY_PERSISTED
    r = client.get("/buy_a_sword", headers={"Host": "user1.comcast.com"})
    assert r.status_code == 503
    refused = r.headers["X-Event-Id"]
    assert r.get_json()["error"]["details"]["event_ids"] == [refused]
    assert r.headers["X-Event-Persistence"] == POSSIBLY_PERSISTED
    assert r.data != b"\nSword Purchased!\n"

    sink.fail = False
    r = client.get("/buy_a_sword", headers={"Host": "user1.comcast.com", "X-Event-Id": refused})
    assert r.status_code == 200
    assert r.headers["X-Event-Id"] == refused
    assert [e["event_id"] for e in sink.events] == [refused]


@pytest.mark.parametrize("how", ["header", "param", "both"])
def test_legacy_client_event_id(client, sink, how):
    event_id = str(uuid.uuid4())
    sent = event_id.upper()  # ids compare lower-cased, as on POST /v1/events
    headers = {"X-Event-Id": sent} if how in ("header", "both") else {}
    query = f"&event_id={sent}" if how in ("param", "both") else ""
    r = client.get(f"/join_guild?guild_id=g7{query}", headers=headers)
    assert r.status_code == 200, r.data
    assert r.headers["X-Event-Id"] == event_id
    [event] = sink.events
    assert event["event_id"] == event_id
    assert event["properties"] == {"guild_id": "g7"}  # the id is never a property


@pytest.mark.parametrize(
    ("query", "headers"),
    [
        ("event_id=not-a-uuid", {}),
        ("event_id=", {}),
        ("", {"X-Event-Id": "12345"}),
        ("", {"X-Event-Id": str(uuid.uuid4()).replace("-", "")}),
        (f"event_id={uuid.uuid4()}", {"X-Event-Id": str(uuid.uuid4())}),  # they disagree
        (f"event_id={uuid.uuid4()}&event_id={uuid.uuid4()}", {}),
    ],
)
def test_bad_legacy_event_id_is_400_and_not_produced(client, sink, query, headers):
    r = client.get(f"/buy_a_sword?{query}", headers=headers)
    assert r.status_code == 400, r.data
    assert r.get_json()["error"]["code"] == "malformed"
    assert sink.records == []


class _Err:
    def __init__(self, name: str) -> None:
        self._name = name

    def name(self) -> str:
        return self._name

    def fatal(self) -> bool:
        return False


class _Producer:
    """Stands in for librdkafka: answers each produce() as told, or never."""

    def __init__(self, answers: list[str | BufferError | None]) -> None:
        self.answers = list(answers)

    def produce(self, topic, value, key, on_delivery):
        answer = self.answers.pop(0)
        if isinstance(answer, BufferError):
            raise answer
        if answer == "silent":
            return
        threading.Thread(
            target=on_delivery, args=(None if answer is None else _Err(answer), None)
        ).start()


@pytest.mark.parametrize(
    ("answers", "persistence"),
    [
        (["MSG_SIZE_TOO_LARGE", "_UNKNOWN_TOPIC"], NOT_PERSISTED),
        ([None, "MSG_SIZE_TOO_LARGE"], POSSIBLY_PERSISTED),  # the first one was written
        (["_MSG_TIMED_OUT", "_MSG_TIMED_OUT"], POSSIBLY_PERSISTED),
        (["REQUEST_TIMED_OUT", None], POSSIBLY_PERSISTED),
        (["silent", None], POSSIBLY_PERSISTED),  # no answer within the wait
        ([BufferError("full")], NOT_PERSISTED),  # nothing handed over
        ([None, BufferError("full")], POSSIBLY_PERSISTED),  # one handed over
    ],
)
def test_confluent_sink_derives_persistence(settings_for, answers, persistence):
    sink = ConfluentSink(settings_for(sink="confluent", produce_timeout_s=0.3))
    sink._get_producer = lambda: _Producer(answers)
    with pytest.raises(SinkUnavailable) as caught:
        sink.send_many([EVENT, EVENT][: len(answers)])
    assert caught.value.persistence == persistence


def test_readiness_probe_caches_and_never_queues():
    calls = []
    release = threading.Event()

    def slow():
        calls.append(1)
        release.wait(5)
        return True, "ok"

    probe = ReadinessProbe(cache_s=60)
    runner = threading.Thread(target=probe.check, args=(slow,))
    runner.start()
    while not calls:
        pass
    # a second probe while the first waits for Kafka: answered at once, no second call
    assert probe.check(slow) == (False, "being checked")
    release.set()
    runner.join(5)
    assert probe.check(slow) == (True, "ok")  # cached
    assert len(calls) == 1
