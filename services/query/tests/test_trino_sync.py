"""The registrar's logic without a Trino (the real one: test_trino.py and the HDFS e2e)."""

from __future__ import annotations

import pytest

from questlog_query import trino_sync
from questlog_query.trino_sync import SyncSettings, TrinoError, sync_once, wanted


def test_settings_report_every_problem_at_once():
    with pytest.raises(ValueError, match="LAKE_ROOT") as err:
        SyncSettings.from_env(
            {
                "QUESTLOG_TRINO_LAKE_ROOT": "s3://bucket/lake",
                "QUESTLOG_TRINO_URL": "ftp://x",
                "QUESTLOG_TRINO_SCHEMA": "bad-name;",
                "QUESTLOG_TRINO_SYNC_EVERY_S": "0",
            }
        )
    message = str(err.value)
    for part in (
        "LAKE_ROOT must be a file:/// or hdfs:// URI",
        "URL must be an http(s)://",
        "SCHEMA must match",
        "SYNC_EVERY_S must be a positive number",
    ):
        assert part in message


def test_settings_defaults():
    s = SyncSettings.from_env({"QUESTLOG_TRINO_LAKE_ROOT": "hdfs://nn:8020/questlog/lake/"})
    assert s == SyncSettings(
        url="http://127.0.0.1:8080",
        lake_root="hdfs://nn:8020/questlog/lake",
        catalog="questlog",
        schema="default",
        user="questlog-registrar",
        every_s=10.0,
    )


def test_every_contract_table_and_the_walkthrough_names_are_wanted():
    tables = wanted("file:///lake")
    assert tables["purchase_sword"] == tables["purchases"] == "file:///lake/tables/purchase_sword"
    assert tables["join_guild"] == tables["guild_joins"] == "file:///lake/tables/join_guild"
    assert tables["quarantine"] == "file:///lake/tables/quarantine"


def test_a_pass_registers_the_missing_skips_the_uncreated_and_raises_the_rest(monkeypatch):
    calls: list[str] = []
    created = {"purchase_sword"}

    def fake_execute(url, user, sql, timeout=60.0):
        calls.append(sql)
        if sql.startswith("SHOW TABLES"):
            if not any(c.startswith("CREATE SCHEMA") for c in calls):
                raise TrinoError("line 1:1: Schema 'default' does not exist")
            return [["join_guild"]]
        if "register_table" in sql:
            location = sql.split("table_location => '")[1].rstrip("')")
            if location.rsplit("/", 1)[1] not in created | {"join_guild"}:
                raise TrinoError(f"No transaction log found in location {location}/_delta_log")
        return []

    monkeypatch.setattr(trino_sync, "execute", fake_execute)
    settings = SyncSettings(url="http://t:8080", lake_root="file:///lake")
    done, missing = sync_once(settings)
    assert done == ["purchase_sword", "purchases", "guild_joins"]
    assert missing == ["level_up", "quarantine"]
    assert calls[:3] == [
        'SHOW TABLES FROM "questlog"."default"',
        'CREATE SCHEMA IF NOT EXISTS "questlog"."default"',
        'SHOW TABLES FROM "questlog"."default"',
    ]

    def denied(url, user, sql, timeout=60.0):
        if "register_table" in sql:
            raise TrinoError("Access Denied: Cannot execute procedure", "PERMISSION_DENIED")
        return []

    monkeypatch.setattr(trino_sync, "execute", denied)
    with pytest.raises(TrinoError, match="Access Denied"):
        sync_once(settings)
