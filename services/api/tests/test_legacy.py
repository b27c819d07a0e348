import pytest


@pytest.mark.parametrize(
    ("path", "event_type", "reply"),
    [
        ("/purchase_sword", "purchase_sword", b"\nSword Purchased!\n"),
        ("/purchase_a_sword", "purchase_sword", b"\nSword Purchased!\n"),
        ("/buy_a_sword", "purchase_sword", b"\nSword Purchased!\n"),
        ("/join_guild", "join_guild", b"\nGuild joined!\n"),
        ("/join_a_guild", "join_guild", b"\nGuild joined!\n"),
    ],
)
def test_bare_original_routes(client, sink, path, event_type, reply):
    # what `ab -n 10 -H "Host: user1.comcast.com" http://localhost:5000/buy_a_sword` sends
    r = client.get(
        path,
        headers={"Host": "user1.comcast.com", "User-Agent": "ApacheBench/2.3", "Accept": "*/*"},
    )
    assert r.status_code == 200
    assert r.data == reply
    [event] = sink.events
    assert event["event_type"] == event_type
    assert event["player_id"] == "user1.comcast.com"
    assert event["context"]["user_agent"] == "ApacheBench/2.3"
    assert event["properties"] == (
        {"sword_type": "default"} if event_type == "purchase_sword" else {"guild_id": "default"}
    )
    assert sink.records[0][0] == b"user1.comcast.com"
    assert r.headers["X-Event-Id"] == event["event_id"]  # for the load test's ledger


def test_query_params_become_typed_properties(client, sink):
    r = client.get("/purchase_sword?sword_type=katana&price=12&quantity=3&currency=JPY")
    assert r.status_code == 200
    props = sink.events[0]["properties"]
    assert props == {"sword_type": "katana", "price": 12, "quantity": 3, "currency": "JPY"}
    assert isinstance(props["quantity"], int)
    client.get("/purchase_sword?price=9.99")
    assert sink.events[1]["properties"]["price"] == 9.99


@pytest.mark.parametrize(
    "query", ["quantity=two", "quantity=1.5", "price=nan", "color=red", "currency=euro"]
)
def test_bad_query_params_are_422_and_not_produced(client, sink, query):
    r = client.get(f"/buy_a_sword?{query}")
    assert r.status_code == 422
    assert r.get_json()["error"]["code"] == "invalid_event"
    assert sink.records == []


def test_join_guild_params(client, sink):
    assert client.get("/join_a_guild?guild_id=g7&role=leader").status_code == 200
    assert sink.events[0]["properties"] == {"guild_id": "g7", "role": "leader"}


def test_head_creates_no_event(client, sink):
    assert client.head("/buy_a_sword").status_code == 405
    assert sink.records == []


def test_legacy_route_without_ack_is_never_2xx(client, sink):
    sink.fail = True
    r = client.get("/join_guild")
    assert r.status_code == 503
    assert r.data != b"\nGuild joined!\n"
