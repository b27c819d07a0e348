"""The fixed-query engine reads committed files natively, and nothing else."""

from __future__ import annotations

import duckdb
import pytest

from questlog_query.engine import Engine
from questlog_query.lake import Lake

from .conftest import make_settings


@pytest.fixture
def engine_and_lake(lake_dir, events):
    settings = make_settings(lake_dir)
    return Engine.from_settings(settings), Lake.from_settings(settings)


def test_file_lake_is_read_natively_from_the_log_file_list(engine_and_lake, events):
    engine, lake = engine_and_lake
    snap = lake.snapshot("purchase_sword")
    assert snap.files, "a file:// snapshot lists its committed files"
    assert engine._native(snap)
    table = engine.query('SELECT count(*) AS n FROM "purchase_sword"', {},
                         {"purchase_sword": snap})
    assert table.column("n").to_pylist() == [len(events["purchase_sword"])]
    cursor, _ = engine._cursor()
    plan = cursor.sql('EXPLAIN SELECT * FROM "purchase_sword"').fetchall()
    assert "READ_PARQUET" in str(plan).upper()


def test_engine_cannot_read_outside_the_lake(engine_and_lake, tmp_path):
    engine, lake = engine_and_lake
    engine.query("SELECT 1", {}, {"purchase_sword": lake.snapshot("purchase_sword")})
    secret = tmp_path / "outside.csv"
    secret.write_text("canary\n1\n")
    cursor, _ = engine._cursor()
    for sql in (f"SELECT * FROM read_csv('{secret}')", "SELECT * FROM read_csv('/etc/passwd')",
                f"COPY (SELECT 1) TO '{tmp_path / 'out.csv'}'"):
        with pytest.raises(duckdb.PermissionException):
            cursor.execute(sql)
    assert not (tmp_path / "out.csv").exists()


def test_same_numbers_native_or_through_arrow(engine_and_lake):
    engine, lake = engine_and_lake
    snap = lake.snapshot("purchase_sword")
    sql = ('SELECT host, sword_type, count(*) AS n, round(sum(price), 6) AS p, '
           'max(event_date) AS d FROM "purchase_sword" GROUP BY ALL ORDER BY ALL')
    native = engine.query(sql, {}, {"purchase_sword": snap})
    arrow = duckdb.connect()
    arrow.register("purchase_sword", snap.dataset)
    assert native.to_pylist() == arrow.sql(sql).to_arrow_table().to_pylist()
