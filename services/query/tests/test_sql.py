"""POST /v1/sql: auth, limits, and an injection/escape corpus that must read or write no file."""

import time
from pathlib import Path

import pytest

from questlog_query import create_app

CANARY = "canary-7f3a9e-should-never-leak"


@pytest.fixture
def canary(tmp_path: Path) -> Path:
    path = tmp_path / "outside" / "secret.csv"
    path.parent.mkdir()
    path.write_text(f"secret\n{CANARY}\n")
    return path


def snapshot_files(*roots: Path) -> set[str]:
    return {str(p) for root in roots for p in root.rglob("*")}


def test_missing_or_wrong_token_is_401(client, events):
    assert client.post("/v1/sql", json={"sql": "SELECT 1"}).status_code == 401
    wrong = client.post(
        "/v1/sql", json={"sql": "SELECT 1"}, headers={"Authorization": "Bearer nope"}
    )
    assert wrong.status_code == 401
    assert wrong.headers["WWW-Authenticate"].startswith("Bearer")
    basic = client.post("/v1/sql", json={"sql": "SELECT 1"}, headers={"Authorization": "Basic x"})
    assert basic.status_code == 401


def test_disabled_without_token(lake_dir, gen):
    client = create_app(gen.settings(lake_dir, read_token="")).test_client()
    response = client.post("/v1/sql", json={"sql": "SELECT 1"}, headers=gen.auth)
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "sql_disabled"


def test_select_answers_like_reference(client, events, gen):
    body = client.post(
        "/v1/sql",
        headers=gen.auth,
        json={
            "sql": "SELECT host, count(*) AS n FROM purchase_sword WHERE sword_type = $1 "
            "GROUP BY host ORDER BY host NULLS LAST",
            "params": ["katana"],
        },
    ).get_json()
    expected: dict = {}
    for r in events["purchase_sword"]:
        if r["sword_type"] == "katana":
            expected[r["host"]] = expected.get(r["host"], 0) + 1
    assert {r["host"]: r["n"] for r in body["rows"]} == expected
    assert body["truncated"] is False
    assert body["as_of"] == {
        "join_guild": 0,
        "level_up": 0,
        "purchase_sword": 1,
        "quarantine": None,
    }
    joined = client.post(
        "/v1/sql",
        headers=gen.auth,
        json={
            "sql": "SELECT count(*) AS n FROM purchase_sword p JOIN join_guild g USING (player_id)"
        },
    ).get_json()
    pairs = sum(
        1
        for p in events["purchase_sword"]
        for g in events["join_guild"]
        if p["player_id"] == g["player_id"]
    )
    assert joined["rows"] == [{"n": pairs}]


def test_row_limit_truncates_with_flag(lake_dir, events, gen):
    client = create_app(gen.settings(lake_dir, sql_max_rows=7)).test_client()
    body = client.post(
        "/v1/sql", headers=gen.auth, json={"sql": "SELECT event_id FROM purchase_sword"}
    ).get_json()
    assert body["row_count"] == 7
    assert len(body["rows"]) == 7
    assert body["truncated"] is True
    small = client.post("/v1/sql", headers=gen.auth, json={"sql": "SELECT 1 AS x"}).get_json()
    assert small["truncated"] is False


def corpus(canary: Path, out: Path) -> list[str]:
    c, o = str(canary), str(out)
    return [
        # not a SELECT
        "DROP TABLE purchase_sword",
        "SELECT 1; DROP TABLE purchase_sword",
        "SELECT * FROM purchase_sword; DELETE FROM purchase_sword",
        "CREATE TABLE x AS SELECT 1",
        "INSERT INTO purchase_sword SELECT * FROM purchase_sword",
        f"COPY purchase_sword TO '{o}'",
        f"COPY (SELECT 1) TO '{o}' (FORMAT csv)",
        f"EXPORT DATABASE '{out.parent / 'export'}'",
        f"ATTACH '{out.parent / 'db.duckdb'}' AS x",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SET enable_external_access = true",
        "RESET enable_external_access",
        "SET threads = 64",
        "PRAGMA version",
        "PRAGMA enable_profiling",
        "CALL pragma_version()",
        "EXPLAIN ANALYZE SELECT 1",
        "CHECKPOINT",
        "VACUUM",
        "BEGIN TRANSACTION",
        "CREATE SECRET s (TYPE s3, KEY_ID 'x', SECRET 'y')",
        "CREATE MACRO m() AS 1",
        "ALTER TABLE purchase_sword RENAME TO x",
        # SELECTs that try to reach outside
        f"SELECT * FROM read_csv('{c}')",
        f"SELECT * FROM read_csv_auto('{c}')",
        f"SELECT * FROM '{c}'",
        "SELECT * FROM read_csv('/etc/passwd')",
        f"SELECT * FROM read_text('{c}')",
        f"SELECT * FROM read_blob('{c}')",
        f"SELECT * FROM read_parquet('{c}')",
        f"SELECT * FROM read_json('{c}')",
        f"SELECT * FROM glob('{canary.parent}/*')",
        "SELECT getenv('HOME')",
        "SELECT * FROM duckdb_secrets()",
        f"SELECT * FROM sniff_csv('{c}')",
        "SELECT * FROM read_csv('http://127.0.0.1:1/x.csv')",
        f"SELECT * FROM query('COPY (SELECT 1) TO ''{o}''')",
        f"SELECT * FROM query_table('{c}')",
        "SELECT * FROM pandas_df",
        "SELECT * FROM settings",
        "SELECT * FROM lake",
        "SELECT 'a' '; DROP TABLE purchase_sword; --",
        "SELECT * FROM purchase_sword WHERE host = '' OR 1=1; DROP TABLE join_guild",
        "SELECT 1 UNION SELECT * FROM read_csv('/etc/passwd')",
        "SELEC 1",
        "",
        ";",
    ]


def test_injection_and_escape_corpus(client, events, gen, canary, tmp_path, lake_dir):
    out = tmp_path / "outside" / "written.csv"
    before = snapshot_files(tmp_path)
    for sql in corpus(canary, out):
        response = client.post("/v1/sql", headers=gen.auth, json={"sql": sql})
        text = response.get_data(as_text=True)
        assert 400 <= response.status_code < 500, (sql, response.status_code, text)
        assert set(response.get_json()["error"]) == {"code", "message", "details"}
        assert CANARY not in text, sql
        assert "root:" not in text, sql
    assert snapshot_files(tmp_path) == before  # nothing was written anywhere under tmp
    assert not out.exists()
    check = client.post(
        "/v1/sql",
        headers=gen.auth,
        json={
            "sql": "SELECT (SELECT count(*) FROM purchase_sword) AS p, "
            "(SELECT count(*) FROM join_guild) AS g, current_setting('threads') AS t, "
            "current_setting('enable_external_access') AS ext"
        },
    ).get_json()
    assert check["rows"] == [{"p": 400, "g": 150, "t": 1, "ext": False}]


def test_python_variables_are_not_reachable(client, events, gen):
    # DuckDB's replacement scans would otherwise resolve unknown names to Python objects
    for name in ("snapshots", "snap", "table", "conn", "body", "os"):
        response = client.post("/v1/sql", headers=gen.auth, json={"sql": f"SELECT * FROM {name}"})
        assert response.status_code == 400, name


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT count(*) FROM range(1000000000) a, range(1000000000) b",
        "SELECT count(*) FROM purchase_sword a, purchase_sword b, purchase_sword c, "
        "purchase_sword d",
        "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) SELECT count(*) FROM r",
    ],
)
def test_runaway_query_is_stopped_within_limit(lake_dir, events, gen, sql):
    client = create_app(gen.settings(lake_dir, sql_timeout_s=1.0)).test_client()
    started = time.perf_counter()
    response = client.post("/v1/sql", headers=gen.auth, json={"sql": sql})
    elapsed = time.perf_counter() - started
    assert response.status_code in (408, 422), response.get_data(as_text=True)
    assert elapsed < 3.0
    # the next query runs normally
    ok = client.post("/v1/sql", headers=gen.auth, json={"sql": "SELECT 1 AS x"})
    assert ok.get_json()["rows"] == [{"x": 1}]


@pytest.mark.parametrize(
    "payload",
    [
        None,
        "SELECT 1",
        {"sql": 1},
        {"query": "SELECT 1"},
        {"sql": "SELECT 1", "params": 3},
        {"sql": "SELECT $1", "params": [{"a": 1}]},
        {"sql": "SELECT $1"},
    ],
)
def test_malformed_bodies_are_400(client, gen, payload):
    response = client.post("/v1/sql", headers=gen.auth, json=payload)
    assert response.status_code == 400


def test_csv_answer(client, events, gen):
    response = client.post(
        "/v1/sql?format=csv", headers=gen.auth, json={"sql": "SELECT 1 AS a, 'x,y' AS b"}
    )
    assert response.mimetype == "text/csv"
    assert response.get_data(as_text=True) == 'a,b\n1,"x,y"\n'
