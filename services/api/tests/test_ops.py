import json
import logging
import re

from questlog_api import create_app
from questlog_api.openapi import document
from questlog_schemas import load_registry


def test_healthz(client):
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.get_json() == {"status": "ok"}


def test_readyz_follows_the_sink(client, sink):
    assert client.get("/readyz").status_code == 200
    sink.fail = True
    r = client.get("/readyz")
    assert r.status_code == 503
    assert r.headers["Retry-After"]
    assert client.get("/healthz").status_code == 200


def test_metrics_count_requests_and_events(client, sink):
    client.post(
        "/v1/events",
        json={"event_type": "join_guild", "player_id": "p", "properties": {"guild_id": "g"}},
    )
    client.post("/v1/events", json={"event_type": "join_guild", "player_id": "p", "properties": {}})
    text = client.get("/metrics").get_data(as_text=True)
    assert re.search(r'questlog_api_events_accepted_total\{event_type="join_guild"\} [1-9]', text)
    assert re.search(
        r'questlog_api_events_rejected_total\{event_type="join_guild",'
        r'reason="invalid"\} [1-9]',
        text,
    )
    assert re.search(
        r'questlog_api_requests_total\{method="POST",route="/v1/events",'
        r'status="202"\}',
        text,
    )
    assert "questlog_api_produce_seconds_bucket" in text


def test_openapi_describes_every_route(app, client):
    doc = client.get("/openapi.json").get_json()
    assert doc["openapi"].startswith("3.1")
    rules = {
        re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static"
    }
    assert rules == set(doc["paths"])
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        documented = set(doc["paths"][rule.rule])
        assert {m.lower() for m in rule.methods - {"HEAD", "OPTIONS"}} == documented
    post = doc["paths"]["/v1/events"]["post"]
    assert set(post["responses"]) >= {"202", "400", "401", "413", "415", "422", "429", "503"}
    event_in = doc["components"]["schemas"]["EventIn"]
    titles = {branch["title"] for branch in event_in["oneOf"]}
    assert titles == set(load_registry().event_types)


def test_openapi_is_json_serialisable_and_valid_shape(settings_for):
    doc = document(load_registry(), settings_for(write_keys=("k",)))
    json.dumps(doc)
    assert doc["paths"]["/v1/events"]["post"]["security"]


def test_logs_are_json_with_request_id_and_no_secrets(settings_for, sink, capsys):
    from questlog_service import logs

    logs.configure_logging("questlog-api", "INFO")
    try:
        app = create_app(settings_for(write_keys=("KEY-CANARY",)), sink=sink)
        client = app.test_client()
        secrets = {
            "Cookie": "sid=COOKIE-CANARY",
            "Authorization": "Bearer KEY-CANARY",
            "X-Request-ID": "req-1",
        }
        client.post(
            "/v1/events?q=QUERY-CANARY",
            headers=secrets,
            json={
                "event_type": "join_guild",
                "player_id": "p",
                "properties": {"guild_id": "g", "BODY-CANARY": "BODY-CANARY"},
            },
        )
        client.post(
            "/v1/events",
            headers=secrets,
            json={"event_type": "join_guild", "player_id": "p", "properties": {"guild_id": "g"}},
        )
        client.get("/join_guild?guild_id=QUERY-CANARY2", headers=secrets)
    finally:
        root = logging.getLogger()
        for handler in list(root.handlers):
            if isinstance(handler.formatter, logs.JsonFormatter):
                root.removeHandler(handler)
    out = capsys.readouterr().out
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    requests = [line for line in lines if line.get("msg") == "request"]
    assert [line["status"] for line in requests] == [422, 202, 200]
    assert all(line["request_id"] == "req-1" for line in requests)
    for canary in ("COOKIE-CANARY", "KEY-CANARY", "BODY-CANARY", "QUERY-CANARY"):
        assert canary not in out
    assert len(sink.records) == 2
