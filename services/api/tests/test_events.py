import hashlib
import hmac
import json
import re
import uuid

import pytest

from questlog_api import MemorySink, Settings, create_app

IP_KEY = b"test-ip-hash-key-0123456789"  # the conftest's key


def make_settings(**overrides):
    return Settings(**{"sink": "memory", "ip_hash_key": IP_KEY, **overrides})


def sword(**overrides):
    event = {
        "event_type": "purchase_sword",
        "player_id": "player-1",
        "properties": {"sword_type": "longsword", "price": 9.5, "currency": "EUR"},
    }
    event.update(overrides)
    return event


RFC3339_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def error_of(response, status, code):
    assert response.status_code == status, response.data
    body = response.get_json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    return body["error"]


def test_single_event_gets_a_full_envelope(client, sink):
    r = client.post(
        "/v1/events",
        json=sword(),
        headers={"Host": "game.example", "User-Agent": "ua/1", "Accept": "*/*"},
        environ_base={"REMOTE_ADDR": "203.0.113.9"},
    )
    assert r.status_code == 202
    body = r.get_json()
    assert body["accepted"] == 1
    [event] = sink.events
    assert body["event_ids"] == [event["event_id"]]
    assert uuid.UUID(event["event_id"]).version == 4
    assert RFC3339_Z.match(event["received_at"])
    assert event["player_id"] == "player-1"
    assert event["schema_version"] == 1
    assert event["properties"] == {"sword_type": "longsword", "price": 9.5, "currency": "EUR"}
    expected_hash = hmac.new(IP_KEY, b"203.0.113.9", hashlib.sha256).hexdigest()[:32]
    assert event["context"] == {
        "host": "game.example",
        "user_agent": "ua/1",
        "accept": "*/*",
        "client_ip_hash": expected_hash,
    }
    key, _ = sink.records[0]
    assert key == b"player-1"


def test_client_event_id_is_kept_as_idempotency_key(client, sink):
    event_id = str(uuid.uuid4())
    r = client.post("/v1/events", json=sword(event_id=event_id.upper()))
    assert r.get_json()["event_ids"] == [event_id]
    assert sink.events[0]["event_id"] == event_id


def test_invalid_client_event_id_is_422(client, sink):
    r = client.post("/v1/events", json=sword(event_id="not-a-uuid"))
    err = error_of(r, 422, "invalid_event")
    assert err["details"]["events"][0]["violations"][0]["path"] == "event_id"
    assert sink.records == []


def test_player_from_host_when_not_given(client, sink):
    event = sword()
    del event["player_id"]
    r = client.post("/v1/events", json=event, headers={"Host": "User1.Comcast.com:5000"})
    assert r.status_code == 202
    assert sink.events[0]["player_id"] == "user1.comcast.com"
    assert sink.events[0]["context"]["host"] == "User1.Comcast.com:5000"


def test_server_owned_fields_are_replaced(client, sink):
    r = client.post(
        "/v1/events",
        json=sword(received_at="1999-01-01T00:00:00Z", context={"host": "forged", "cookie": "x"}),
    )
    assert r.status_code == 202
    event = sink.events[0]
    assert event["received_at"] != "1999-01-01T00:00:00Z"
    assert "cookie" not in event["context"]
    assert event["context"].get("host") != "forged"


def test_only_allow_listed_headers_reach_the_event(client, sink):
    r = client.post(
        "/v1/events",
        json=sword(),
        headers={
            "Cookie": "session=CANARY-COOKIE",
            "Authorization": "Bearer CANARY-AUTH",
            "X-Api-Secret": "CANARY-X",
            "Host": "h",
            "Accept": "a",
        },
    )
    assert r.status_code == 202
    key, value = sink.records[0]
    assert set(sink.events[0]["context"]) <= {"host", "user_agent", "accept", "client_ip_hash"}
    for canary in (b"CANARY-COOKIE", b"CANARY-AUTH", b"CANARY-X"):
        assert canary not in value
        assert canary not in key


def test_whole_number_floats_in_integer_fields_become_ints(client, sink):
    event = sword(schema_version=1.0)
    event["properties"]["quantity"] = 3.0
    r = client.post("/v1/events", json=event)
    assert r.status_code == 202
    stored = sink.events[0]
    assert stored["properties"]["quantity"] == 3
    assert isinstance(stored["properties"]["quantity"], int)
    _, raw = sink.records[0]
    assert b'"quantity":3,' in raw or b'"quantity":3}' in raw
    assert stored["schema_version"] == 1


def test_fractional_integer_is_422(client):
    event = sword()
    event["properties"]["quantity"] = 2.5
    err = error_of(client.post("/v1/events", json=event), 422, "invalid_event")
    assert err["details"]["events"][0]["violations"][0]["path"] == "properties.quantity"


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_nan_and_infinity_are_malformed(client, sink, constant):
    body = (
        '{"event_type":"purchase_sword","player_id":"p",'
        f'"properties":{{"sword_type":"s","price":{constant}}}}}'
    )
    error_of(
        client.post("/v1/events", data=body, content_type="application/json"), 400, "malformed"
    )
    assert sink.records == []


def test_json_array_batch(client, sink):
    r = client.post("/v1/events", json=[sword(), sword(player_id="p2")])
    assert r.status_code == 202
    assert r.get_json()["accepted"] == 2
    assert [k for k, _ in sink.records] == [b"player-1", b"p2"]
    assert r.get_json()["event_ids"] == [e["event_id"] for e in sink.events]


def test_ndjson_batch_skips_blank_lines(client, sink):
    body = "\n".join([json.dumps(sword()), "", json.dumps(sword(player_id="p2")), ""])
    r = client.post("/v1/events", data=body, content_type="application/x-ndjson")
    assert r.status_code == 202
    assert r.get_json()["accepted"] == 2


def test_batch_is_all_or_nothing_with_per_index_details(client, sink):
    bad_props = sword()
    bad_props["properties"] = {"price": -1, "extra": "CANARY-BODY"}
    r = client.post("/v1/events", json=[sword(), {"event_type": "unknown"}, bad_props, 7])
    err = error_of(r, 422, "invalid_event")
    by_index = {e["index"]: e["violations"] for e in err["details"]["events"]}
    assert set(by_index) == {1, 2, 3}
    paths = {v["path"] for v in by_index[2]}
    assert {"properties.sword_type", "properties.price", "properties.extra"} <= paths
    assert sink.records == []


def test_unknown_top_level_field_is_rejected_not_dropped(client, sink):
    error_of(client.post("/v1/events", json=sword(secret="CANARY")), 422, "invalid_event")
    assert sink.records == []


@pytest.mark.parametrize("body", [b"", b"{", b"[]", b'"text"', b"42", b"\xff\xfe"])
def test_malformed_bodies_are_400(client, body):
    error_of(
        client.post("/v1/events", data=body, content_type="application/json"), 400, "malformed"
    )


def test_ndjson_with_a_bad_line_is_400(client, sink):
    body = json.dumps(sword()) + "\n{nope\n"
    error_of(
        client.post("/v1/events", data=body, content_type="application/x-ndjson"), 400, "malformed"
    )
    assert sink.records == []


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/xml"])
def test_unsupported_media_type_is_415(client, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    error_of(
        client.post("/v1/events", data=json.dumps(sword()), headers=headers),
        415,
        "unsupported_media_type",
    )


def test_too_many_events_is_413_and_nothing_produced(sink):
    app = create_app(make_settings(max_batch_events=3), sink=sink)
    r = app.test_client().post("/v1/events", json=[sword()] * 4)
    err = error_of(r, 413, "too_large")
    assert err["details"] == {"max_events": 3, "events": 4}
    assert sink.records == []


def test_too_many_bytes_is_413(sink):
    app = create_app(make_settings(max_body_bytes=1024), sink=sink)
    client = app.test_client()
    big = sword()
    big["properties"]["sword_type"] = "x" * 2000
    error_of(client.post("/v1/events", json=big), 413, "too_large")

    assert sink.records == []


def test_write_keys(sink):
    app = create_app(make_settings(write_keys=("k1", "k2")), sink=sink)
    client = app.test_client()
    error_of(client.post("/v1/events", json=sword()), 401, "unauthorized")
    r = client.post("/v1/events", json=sword(), headers={"Authorization": "Bearer nope"})
    error_of(r, 401, "unauthorized")
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    error_of(client.get("/buy_a_sword"), 401, "unauthorized")
    assert sink.records == []
    assert (
        client.post("/v1/events", json=sword(), headers={"Authorization": "Bearer k2"}).status_code
        == 202
    )
    assert (
        client.post("/v1/events", json=sword(), headers={"X-Questlog-Key": "k1"}).status_code == 202
    )
    assert len(sink.records) == 2
    assert all(b"k1" not in v and b"k2" not in v for _, v in sink.records)


def test_rate_limit_is_429_with_retry_after(sink):
    app = create_app(make_settings(rate_limit=1.0, rate_limit_burst=2), sink=sink)
    client = app.test_client()
    statuses = [client.post("/v1/events", json=sword()).status_code for _ in range(3)]
    assert statuses == [202, 202, 429]
    r = client.post("/v1/events", json=sword())
    error_of(r, 429, "rate_limited")
    assert int(r.headers["Retry-After"]) >= 1
    other = client.post("/v1/events", json=sword(), environ_base={"REMOTE_ADDR": "10.0.0.2"})
    assert other.status_code == 202
    assert len(sink.records) == 3


def test_sink_failure_is_503_with_retry_after(client, sink):
    sink.fail = True
    r = client.post("/v1/events", json=sword())
    error_of(r, 503, "unavailable")
    assert r.headers["Retry-After"] == "1"
    r = client.get("/buy_a_sword")
    error_of(r, 503, "unavailable")
    assert sink.records == []
    assert client.get("/readyz").status_code == 503
    sink.fail = False
    assert client.post("/v1/events", json=sword()).status_code == 202


def test_in_flight_cap_is_503_immediately():
    sink = MemorySink(max_in_flight=2)
    app = create_app(make_settings(max_batch_events=2, max_in_flight=2), sink=sink)
    client = app.test_client()
    assert sink.in_flight.try_acquire(2)  # a stuck request holds every slot
    error_of(client.post("/v1/events", json=sword()), 503, "unavailable")
    sink.in_flight.release(2)
    assert client.post("/v1/events", json=sword()).status_code == 202


def test_unknown_route_and_method_are_json(client):
    error_of(client.get("/nope"), 404, "not_found")
    r = client.get("/v1/events")
    error_of(r, 405, "method_not_allowed")
    assert "POST" in r.headers["Allow"]


def test_request_id_is_echoed_or_made(client):
    r = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert r.headers["X-Request-ID"] == "abc-123"
    r = client.get("/healthz", headers={"X-Request-ID": "bad id; x" * 10})
    assert re.fullmatch(r"[0-9a-f]{32}", r.headers["X-Request-ID"])


def level_up(**properties):
    return {
        "event_type": "level_up",
        "player_id": "player-1",
        "properties": {"from_level": 4, "to_level": 5, "seconds_played": 612.5, **properties},
    }


def test_level_up_is_accepted_and_produced_as_sent(client, sink):
    r = client.post(
        "/v1/events", json=[level_up(), level_up(from_level=5, to_level=7, seconds_played=0)]
    )
    assert r.status_code == 202, r.data
    assert r.get_json()["accepted"] == 2
    assert [(e["event_type"], e["properties"]) for e in sink.events] == [
        ("level_up", {"from_level": 4, "to_level": 5, "seconds_played": 612.5}),
        ("level_up", {"from_level": 5, "to_level": 7, "seconds_played": 0}),
    ]


def test_level_up_whole_number_floats_become_ints(client, sink):
    r = client.post("/v1/events", json=level_up(from_level=4.0, to_level=5.0))
    assert r.status_code == 202, r.data
    assert sink.events[0]["properties"]["to_level"] == 5
    assert isinstance(sink.events[0]["properties"]["to_level"], int)


@pytest.mark.parametrize(
    ("properties", "path", "message"),
    [
        ({"to_level": 4}, "properties.to_level", "must be greater than from_level (4)"),
        ({"to_level": 2}, "properties.to_level", "must be greater than from_level (4)"),
        (
            {"seconds_played": -0.5},
            "properties.seconds_played",
            "-0.5 is less than the minimum of 0",
        ),
        (
            {"from_level": 0, "to_level": 1},
            "properties.from_level",
            "0 is less than the minimum of 1",
        ),
        ({"to_level": "5"}, "properties.to_level", '"5" is not of type "integer"'),
    ],
)
def test_invalid_level_up_is_422_naming_the_field(client, sink, properties, path, message):
    err = error_of(client.post("/v1/events", json=level_up(**properties)), 422, "invalid_event")
    assert err["details"]["events"] == [
        {"index": 0, "violations": [{"path": path, "message": message}]}
    ]
    assert sink.records == []


@pytest.mark.parametrize("missing", ["from_level", "to_level", "seconds_played"])
def test_level_up_without_a_field_is_422(client, sink, missing):
    event = level_up()
    del event["properties"][missing]
    err = error_of(client.post("/v1/events", json=event), 422, "invalid_event")
    assert err["details"]["events"][0]["violations"] == [
        {"path": f"properties.{missing}", "message": "is required"}
    ]
    assert sink.records == []


def test_one_bad_level_up_refuses_the_whole_batch(client, sink):
    r = client.post("/v1/events", json=[sword(), level_up(), level_up(to_level=1)])
    err = error_of(r, 422, "invalid_event")
    assert [e["index"] for e in err["details"]["events"]] == [2]
    assert sink.records == []
