"""REST answers on real Delta tables, checked against plain Python over the generated rows."""

from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest

from questlog_query import create_app

from .conftest import make_events, make_settings, write_events


def iso(value: datetime) -> str:
    return value.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"


def test_tables_lists_every_table_with_version_and_freshness(client, events):
    body = client.get("/v1/tables").get_json()
    tables = {t["name"]: t for t in body["tables"]}
    assert set(tables) == {"purchase_sword", "join_guild", "level_up", "quarantine"}
    assert tables["purchase_sword"]["rows"] == 400
    assert tables["purchase_sword"]["version"] == 1
    assert tables["join_guild"]["rows"] == 150
    assert tables["quarantine"]["version"] is None
    assert tables["quarantine"]["rows"] == 0
    assert "sword_type" in tables["purchase_sword"]["columns"]
    assert tables["purchase_sword"]["freshness_seconds"] > 0
    assert tables["join_guild"]["latest_event_time"].startswith(
        iso(max(r["received_at"] for r in events["join_guild"]))[:19]
    )
    assert body["as_of"] == {
        "purchase_sword": 1,
        "join_guild": 0,
        "level_up": 0,
        "quarantine": None,
    }
    assert tables["level_up"]["rows"] == 90
    assert {"from_level", "to_level", "seconds_played"} <= set(tables["level_up"]["columns"])


def test_level_up_is_listed_counted_and_read_like_any_type(client, events):
    rows = events["level_up"]
    counts = client.get("/v1/stats/counts?event_type=level_up&group_by=to_level").get_json()
    assert {r["to_level"]: r["count"] for r in counts["rows"]} == Counter(
        r["to_level"] for r in rows
    )
    assert counts["as_of"] == {"level_up": 0}
    gained = client.get(
        "/v1/stats/counts",
        query_string={"event_type": "level_up", "group_by": "player_id,event_date"},
    ).get_json()
    assert sum(r["count"] for r in gained["rows"]) == 90
    player = rows[0]["player_id"]
    read = client.get(f"/v1/events/level_up?player_id={player}&limit=1000").get_json()
    assert sorted(
        (r["event_id"], r["from_level"], r["to_level"], r["seconds_played"]) for r in read["rows"]
    ) == sorted(
        (r["event_id"], r["from_level"], r["to_level"], r["seconds_played"])
        for r in rows
        if r["player_id"] == player
    )
    assert all(r["to_level"] > r["from_level"] for r in read["rows"])
    minutes = client.get(
        "/v1/kpis/events-per-minute",
        query_string={
            "event_type": "level_up",
            "since": iso(rows[0]["received_at"]),
            "until": iso(rows[-1]["received_at"] + timedelta(minutes=1)),
        },
    ).get_json()
    assert sum(r["events"] for r in minutes["rows"]) == 90
    assert {r["event_type"] for r in minutes["rows"]} == {"level_up"}


def test_events_filters_match_reference(client, events):
    rows = events["purchase_sword"]
    since, until = rows[50]["received_at"], rows[300]["received_at"]
    expected = [
        r for r in rows if r["host"] == "user2.att.com" and since <= r["received_at"] < until
    ]
    got = client.get(
        "/v1/events/purchase_sword",
        query_string={
            "host": "user2.att.com",
            "since": iso(since),
            "until": iso(until),
            "limit": 1000,
        },
    ).get_json()
    assert {r["event_id"] for r in got["rows"]} == {r["event_id"] for r in expected}
    assert got["next_cursor"] is None
    assert got["as_of"] == {"purchase_sword": 1}
    player = client.get("/v1/events/join_guild?player_id=player3&limit=1000").get_json()
    assert sorted(r["event_id"] for r in player["rows"]) == sorted(
        r["event_id"] for r in events["join_guild"] if r["player_id"] == "player3"
    )


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_cursor_paging_returns_every_row_once_in_order(client, events, order):
    seen, cursor, pages = [], None, 0
    while True:
        query = {"limit": 37, "order": order, **({"cursor": cursor} if cursor else {})}
        body = client.get("/v1/events/purchase_sword", query_string=query).get_json()
        seen += body["rows"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    expected = sorted(
        events["purchase_sword"],
        key=lambda r: (r["received_at"], r["event_id"]),
        reverse=order == "desc",
    )
    assert [r["event_id"] for r in seen] == [r["event_id"] for r in expected]
    assert pages == 11


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=1001",
        "limit=x",
        "since=yesterday",
        "cursor=bm9wZQ",
        "order=up",
        "since=2024-05-02T00:00:00Z&until=2024-05-01T00:00:00Z",
        "format=xml",
    ],
)
def test_events_bad_parameters_are_400(client, events, query):
    response = client.get(f"/v1/events/purchase_sword?{query}")
    assert response.status_code == 400
    assert set(response.get_json()["error"]) == {"code", "message", "details"}


@pytest.mark.parametrize(
    "query",
    [
        "until=0001-01-01T19:50:25.939012%2B19:50",  # found by schemathesis: was a 500
        "since=0001-01-01T00:00:00%2B05:00",
        "until=9999-12-31T23:00:00-05:00",
        "since=1969-12-31T23:59:59Z",
        "until=9999-06-01T00:00:00Z",
    ],
)
def test_timestamps_out_of_range_are_400_everywhere(client, events, query):
    for path in ("/v1/events/purchase_sword", "/v1/kpis/events-per-minute", "/v1/kpis/dau"):
        response = client.get(f"{path}?{query}")
        assert response.status_code == 400, (path, response.get_data(as_text=True))
        assert response.get_json()["error"]["details"]["parameter"] in ("since", "until")


def test_unknown_event_type_is_404(client):
    assert client.get("/v1/events/nope").status_code == 404
    assert client.get("/v1/events/quarantine").status_code == 404
    assert client.get("/v1/stats/counts?event_type=nope").status_code == 404


def test_counts_by_host_match_reference(client, events):
    body = client.get("/v1/stats/counts?event_type=purchase_sword&group_by=host").get_json()
    expected = Counter(r["host"] for r in events["purchase_sword"])
    assert {r["host"]: r["count"] for r in body["rows"]} == expected
    assert body["truncated"] is False
    assert body["as_of"] == {"purchase_sword": 1}


def test_counts_two_columns_and_window_match_reference(client, events):
    rows = events["purchase_sword"]
    since = rows[100]["received_at"]
    body = client.get(
        "/v1/stats/counts",
        query_string={
            "event_type": "purchase_sword",
            "group_by": "sword_type,event_date",
            "since": iso(since),
        },
    ).get_json()
    expected = Counter(
        (r["sword_type"], r["event_date"].isoformat()) for r in rows if r["received_at"] >= since
    )
    assert {(r["sword_type"], r["event_date"]): r["count"] for r in body["rows"]} == expected
    total = client.get("/v1/stats/counts?event_type=join_guild").get_json()
    assert total["rows"] == [{"count": 150}]


@pytest.mark.parametrize(
    "group_by",
    [
        'host"',
        "host;drop table purchase_sword",
        "host) --",
        "count(*)",
        "1",
        "nope",
        "host,host",
        "a,b,c,d,e",
        '"host"',
        "host FROM purchase_sword UNION SELECT 1 --",
        "read_csv('/etc/passwd')",
        "raw_value",
    ],
)
def test_group_by_injection_is_rejected(client, events, group_by):
    response = client.get(
        "/v1/stats/counts", query_string={"event_type": "purchase_sword", "group_by": group_by}
    )
    assert response.status_code == 400, group_by
    assert client.get("/v1/stats/counts?event_type=purchase_sword").get_json()["rows"] == [
        {"count": 400}
    ]


@pytest.mark.parametrize(
    "value",
    [
        "' OR '1'='1",
        "user1.comcast.com' --",
        "x'; DROP TABLE purchase_sword; --",
        "' UNION SELECT * FROM join_guild --",
        "\\' OR 1=1",
        "$limit",
        "?",
    ],
)
def test_filter_values_are_bound_not_pasted(client, events, value):
    for name in ("host", "player_id"):
        body = client.get("/v1/events/purchase_sword", query_string={name: value}).get_json()
        assert body["rows"] == []
    assert client.get("/v1/stats/counts?event_type=purchase_sword").get_json()["rows"] == [
        {"count": 400}
    ]


def test_csv_by_parameter_and_by_accept(client, events):
    response = client.get("/v1/stats/counts?event_type=purchase_sword&group_by=host&format=csv")
    assert response.mimetype == "text/csv"
    lines = response.get_data(as_text=True).splitlines()
    assert lines[0] == "host,count"
    expected = Counter(r["host"] or "" for r in events["purchase_sword"])
    assert {line.rsplit(",", 1)[0]: int(line.rsplit(",", 1)[1]) for line in lines[1:]} == expected
    assert response.headers["X-Questlog-As-Of"] == '{"purchase_sword":1}'
    assert "purchase_sword" in response.headers["X-Questlog-Freshness-Seconds"]
    by_accept = client.get("/v1/kpis/dau", headers={"Accept": "text/csv"})
    assert by_accept.mimetype == "text/csv"
    assert by_accept.get_data(as_text=True).startswith("event_date,dau\n")
    tables = client.get("/v1/tables?format=csv").get_data(as_text=True)
    assert tables.startswith("name,rows,columns,latest_event_time,freshness_seconds,version")


def test_new_version_changes_as_of_and_counts(client, events, gen, lake_dir):
    before = client.get("/v1/stats/counts?event_type=purchase_sword").get_json()
    assert before == {**before, "rows": [{"count": 400}], "as_of": {"purchase_sword": 1}}
    gen.write(lake_dir, "purchase_sword", gen.make("purchase_sword", 25, seed=7))
    after = client.get("/v1/stats/counts?event_type=purchase_sword").get_json()
    assert after["rows"] == [{"count": 425}]
    assert after["as_of"] == {"purchase_sword": 2}


def test_uncommitted_parquet_is_not_counted_over_rest(client, events, lake_dir):
    import shutil

    table_dir = lake_dir / "tables" / "purchase_sword"
    first = sorted(table_dir.rglob("*.parquet"))[0]
    shutil.copy(first, first.with_name("part-00042-left-by-a-killed-driver.c000.snappy.parquet"))
    body = client.get("/v1/stats/counts?event_type=purchase_sword").get_json()
    assert body["rows"] == [{"count": 400}]
    dau = client.get("/v1/events/purchase_sword?limit=1000").get_json()
    assert len(dau["rows"]) == 400


def test_empty_lake_answers_empty(client):
    assert (
        client.get("/v1/stats/counts?event_type=purchase_sword&group_by=host").get_json()["rows"]
        == []
    )
    assert client.get("/v1/kpis/revenue").get_json()["rows"] == []
    assert client.get("/v1/events/join_guild").get_json()["as_of"] == {"join_guild": None}


# --- KPIs -------------------------------------------------------------------------------


def test_dau_matches_reference(client, events):
    players = defaultdict(set)
    for rows in events.values():
        for r in rows:
            players[r["event_date"].isoformat()].add(r["player_id"])
    body = client.get("/v1/kpis/dau").get_json()
    assert {r["event_date"]: r["dau"] for r in body["rows"]} == {
        d: len(p) for d, p in players.items()
    }
    assert body["as_of"] == {"join_guild": 0, "level_up": 0, "purchase_sword": 1}


def cents(price: float) -> int:
    return int(Decimal(str(price)).scaleb(2).to_integral_value(ROUND_HALF_UP))


@pytest.mark.parametrize("by", ["sword_type", "player_id", "host"])
def test_revenue_matches_reference_exactly(client, events, by):
    expected: dict = defaultdict(lambda: [0, 0, 0, False])
    for r in events["purchase_sword"]:
        agg = expected[(r[by], r["currency"])]
        agg[0] += 1
        agg[1] += r["quantity"] or 1
        if r["price"] is not None:
            agg[2] += cents(r["price"]) * (r["quantity"] or 1)
            agg[3] = True
    body = client.get(f"/v1/kpis/revenue?by={by}").get_json()
    got = {(r[by], r["currency"]): r for r in body["rows"]}
    assert set(got) == set(expected)
    for key, (purchases, swords, minor, priced) in expected.items():
        assert got[key]["purchases"] == purchases
        assert got[key]["swords"] == swords
        if priced:
            assert got[key]["revenue"] == str(Decimal(minor).scaleb(-2))  # "123.40", exact
            assert got[key]["revenue_minor"] == minor
            assert isinstance(got[key]["revenue_minor"], int)
            assert isinstance(got[key]["swords"], int)
            assert got[key]["minor_unit"] == 2
        else:
            assert got[key]["revenue"] is None


def test_top_spenders_match_reference_exactly(client, events):
    spent: dict = defaultdict(int)
    for r in events["purchase_sword"]:
        if r["price"] is not None:
            spent[(r["player_id"], r["currency"])] += cents(r["price"]) * (r["quantity"] or 1)
    top = sorted(spent.items(), key=lambda kv: (-kv[1], kv[0][0]))[:5]
    body = client.get("/v1/kpis/top-spenders?limit=5").get_json()
    assert [(r["player_id"], r["currency"]) for r in body["rows"]] == [k for k, _ in top]
    assert [r["revenue"] for r in body["rows"]] == [str(Decimal(v).scaleb(-2)) for _, v in top]


def money_client(tmp_path, rows):
    lake = tmp_path / "money-lake"
    events = make_events("purchase_sword", len(rows), seed=5)
    for event, (currency, price, quantity) in zip(events, rows, strict=True):
        event.update(currency=currency, price=price, quantity=quantity, host="h")
    write_events(lake, "purchase_sword", events)
    return create_app(make_settings(lake)).test_client()


def test_money_is_summed_exactly_in_each_currency_minor_unit(tmp_path):
    """0.1 + 0.2 is 0.30000000000000004 in doubles; 3 x 19.99 + 0.01 is 59.98 exactly;
    yen have no minor unit and dinars three."""
    rows = [
        ("USD", 0.1, None),
        ("USD", 0.2, None),
        ("EUR", 19.99, 3),
        ("EUR", 0.01, 1),
        ("JPY", 1200.0, 2),
        ("KWD", 1.234, 1),
    ]
    client = money_client(tmp_path, rows)
    got = {r["currency"]: r for r in client.get("/v1/kpis/revenue?by=host").get_json()["rows"]}
    assert {c: (r["revenue"], r["revenue_minor"], r["minor_unit"]) for c, r in got.items()} == {
        "USD": ("0.30", 30, 2),
        "EUR": ("59.98", 5998, 2),
        "JPY": ("2400", 2400, 0),
        "KWD": ("1.234", 1234, 3),
    }


def test_guilds_match_reference(client, events):
    joins, members = Counter(), defaultdict(set)
    for r in events["join_guild"]:
        joins[r["guild_id"]] += 1
        members[r["guild_id"]].add(r["player_id"])
    body = client.get("/v1/kpis/guilds").get_json()
    assert {r["guild_id"]: (r["joins"], r["members"]) for r in body["rows"]} == {
        g: (joins[g], len(members[g])) for g in joins
    }
    assert {r["guild_id"]: r["guild_name"] for r in body["rows"]} == {
        "g1": "Knights",
        "g2": "Rogues",
        "g3": "Mages",
    }


def test_events_per_minute_matches_reference(client, events):
    since, until = datetime(2024, 5, 1, 22, 0, tzinfo=UTC), datetime(2024, 5, 2, 4, 0, tzinfo=UTC)
    expected = Counter(
        (iso(r["received_at"].replace(second=0, microsecond=0)), r["event_type"])
        for rows in events.values()
        for r in rows
        if since <= r["received_at"] < until
    )
    body = client.get(
        "/v1/kpis/events-per-minute", query_string={"since": iso(since), "until": iso(until)}
    ).get_json()
    assert {(r["minute"], r["event_type"]): r["events"] for r in body["rows"]} == expected
    assert sum(expected.values()) > 20


# --- operations -------------------------------------------------------------------------


def test_health_ready_metrics(client, events, app, gen, tmp_path):
    from questlog_query import create_app

    assert client.get("/healthz").get_json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200
    client.get("/v1/tables")
    metrics = client.get("/metrics").get_data(as_text=True)
    assert "questlog_query_requests_total" in metrics
    assert "questlog_query_table_version" in metrics
    missing = create_app(gen.settings(tmp_path / "no-such-lake")).test_client()
    response = missing.get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["status"] == "unavailable"
    assert response.get_json()["reason"]
    assert response.headers["Retry-After"] == "5"


def test_request_id_is_echoed_and_errors_are_json(client):
    response = client.get("/v1/nope", headers={"X-Request-ID": "abc-123"})
    assert response.status_code == 404
    assert response.headers["X-Request-ID"] == "abc-123"
    assert response.get_json()["error"]["code"] == "not_found"
    assert client.post("/v1/tables").status_code == 405


def test_openapi_describes_every_route(client, app):
    doc = client.get("/openapi.json").get_json()
    assert doc["openapi"].startswith("3.1")
    documented = set(doc["paths"])
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = rule.rule.replace("<", "{").replace(">", "}")
        assert path in documented, path
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert method.lower() in doc["paths"][path], (path, method)
