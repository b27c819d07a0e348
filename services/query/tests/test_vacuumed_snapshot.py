"""A snapshot whose files a VACUUM deleted (retention 0, right after a compaction) is
answered from the table's latest version, never with an error (chaos scenario T11)."""

from __future__ import annotations

import pytest
from deltalake import DeltaTable

from questlog_query.app import create_app


@pytest.fixture
def held(lake_dir, gen):
    """An app holding purchase_sword's snapshot (long TTL), then the table compacted and
    vacuumed at retention 0 under it: the files that snapshot lists are gone."""
    rows = gen.make("purchase_sword", 400, seed=1)
    for i in range(0, 400, 100):
        gen.write(lake_dir, "purchase_sword", rows[i : i + 100])
    client = create_app(gen.settings(lake_dir, snapshot_ttl_s=3600.0)).test_client()
    assert client.get("/v1/stats/counts?event_type=purchase_sword").status_code == 200
    assert (
        client.post(
            "/v1/sql", json={"sql": "SELECT 1 FROM purchase_sword LIMIT 1"}, headers=gen.auth
        ).status_code
        == 200
    )
    table = DeltaTable((lake_dir / "tables" / "purchase_sword").as_uri())
    table.optimize.compact()
    assert table.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
    return client


def test_rest_query_on_vacuumed_snapshot_answers_from_the_latest(held):
    answer = held.get("/v1/stats/counts?event_type=purchase_sword")
    assert answer.status_code == 200, answer.json
    assert answer.json["rows"] == [{"count": 400}]


def test_sql_on_vacuumed_snapshot_answers_from_the_latest(held, gen):
    answer = held.post(
        "/v1/sql", json={"sql": "SELECT count(*) AS n FROM purchase_sword"}, headers=gen.auth
    )
    assert answer.status_code == 200, answer.json
    assert answer.json["rows"] == [{"n": 400}]
