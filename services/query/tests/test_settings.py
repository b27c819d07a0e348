import pytest

from questlog_query.settings import Settings, SettingsError
from questlog_schemas import lake


def test_defaults_and_types():
    s = Settings.from_env(
        {"QUESTLOG_QUERY_LAKE_ROOT": "file:///var/lake", "QUESTLOG_QUERY_SQL_MAX_ROWS": "50"}
    )
    assert s.sql_max_rows == 50
    assert s.lake_root == "file:///var/lake"
    assert not s.sql_enabled
    assert s.snapshot_ttl_s == 1.0


def test_hdfs_root_accepted():
    s = Settings.from_env(
        {"QUESTLOG_QUERY_LAKE_ROOT": "hdfs://nn:8020/lake/", "QUESTLOG_QUERY_READ_TOKEN": "t"}
    )
    assert lake.table_uri(s.lake_root, "join_guild") == "hdfs://nn:8020/lake/tables/join_guild"
    assert s.sql_enabled


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({}, "LAKE_ROOT is not set"),
        ({"QUESTLOG_QUERY_LAKE_ROOT": "/var/lake"}, "file:// or hdfs://"),
        ({"QUESTLOG_QUERY_LAKE_ROOT": "s3://bucket"}, "file:// or hdfs://"),
        ({"QUESTLOG_QUERY_LAKE_ROOT": "file://relative"}, "absolute"),
        (
            {"QUESTLOG_QUERY_LAKE_ROOT": "file:///l", "QUESTLOG_QUERY_SQL_MAX_ROWS": "ten"},
            "SQL_MAX_ROWS must be an integer",
        ),
        (
            {"QUESTLOG_QUERY_LAKE_ROOT": "file:///l", "QUESTLOG_QUERY_DUCKDB_THREADS": "0"},
            "DUCKDB_THREADS",
        ),
        (
            {"QUESTLOG_QUERY_LAKE_ROOT": "file:///l", "QUESTLOG_QUERY_DUCKDB_MEMORY_LIMIT": "1;x"},
            "MEMORY_LIMIT",
        ),
        (
            {"QUESTLOG_QUERY_LAKE_ROOT": "file:///l", "QUESTLOG_QUERY_SQL_TIMEOUT_S": "-1"},
            "SQL_TIMEOUT_S",
        ),
    ],
)
def test_fails_fast(env, needle):
    with pytest.raises(SettingsError, match=needle):
        Settings.from_env(env)


def test_every_problem_is_reported_at_once():
    with pytest.raises(SettingsError) as info:
        Settings.from_env(
            {
                "QUESTLOG_QUERY_LAKE_ROOT": "s3://bucket",
                "QUESTLOG_QUERY_SQL_MAX_ROWS": "ten",
                "QUESTLOG_QUERY_DUCKDB_THREADS": "0",
            }
        )
    message = str(info.value)
    assert "LAKE_ROOT" in message
    assert "SQL_MAX_ROWS" in message
    assert "DUCKDB_THREADS" in message
