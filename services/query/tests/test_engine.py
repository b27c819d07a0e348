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
    table = engine.query('SELECT count(*) AS n FROM "purchase_sword"', {}, {"purchase_sword": snap})
    assert table.column("n").to_pylist() == [len(events["purchase_sword"])]
    cursor, _ = engine._cursor()
    plan = cursor.sql('EXPLAIN SELECT * FROM "purchase_sword"').fetchall()
    assert "READ_PARQUET" in str(plan).upper()


def test_parquet_footers_are_cached_between_queries(engine_and_lake):
    engine, lake = engine_and_lake
    engine.query("SELECT 1", {}, {"purchase_sword": lake.snapshot("purchase_sword")})
    cursor, _ = engine._cursor()
    setting = cursor.execute("SELECT current_setting('parquet_metadata_cache')").fetchall()
    assert setting == [(True,)]


def test_engine_cannot_read_outside_the_lake(engine_and_lake, tmp_path):
    engine, lake = engine_and_lake
    engine.query("SELECT 1", {}, {"purchase_sword": lake.snapshot("purchase_sword")})
    secret = tmp_path / "outside.csv"
    secret.write_text("canary\n1\n")
    cursor, _ = engine._cursor()
    for sql in (
        f"SELECT * FROM read_csv('{secret}')",
        "SELECT * FROM read_csv('/etc/passwd')",
        f"COPY (SELECT 1) TO '{tmp_path / 'out.csv'}'",
    ):
        with pytest.raises(duckdb.PermissionException):
            cursor.execute(sql)
    assert not (tmp_path / "out.csv").exists()


def test_same_numbers_native_or_through_arrow(engine_and_lake):
    engine, lake = engine_and_lake
    snap = lake.snapshot("purchase_sword")
    sql = (
        "SELECT host, sword_type, count(*) AS n, round(sum(price), 6) AS p, "
        'max(event_date) AS d FROM "purchase_sword" GROUP BY ALL ORDER BY ALL'
    )
    native = engine.query(sql, {}, {"purchase_sword": snap})
    arrow = duckdb.connect()
    arrow.register("purchase_sword", snap.dataset)
    assert native.to_pylist() == arrow.sql(sql).to_arrow_table().to_pylist()


def test_threads_see_their_own_snapshot_while_versions_change(lake_dir, events):
    """Each thread's cursor gets its own view: no catalog conflicts, right counts."""
    import threading

    from .conftest import make_events, write_events

    settings = make_settings(lake_dir)
    engine, lake = Engine.from_settings(settings), Lake.from_settings(settings)
    expected = {lake.snapshot("purchase_sword").version: len(events["purchase_sword"])}
    errors, seen = [], []

    def reader():
        for _ in range(40):
            snap = lake.snapshot("purchase_sword")
            try:
                n = (
                    engine.query(
                        'SELECT count(*) AS n FROM "purchase_sword"', {}, {"purchase_sword": snap}
                    )
                    .column("n")[0]
                    .as_py()
                )
                seen.append((snap.version, n))
            except Exception as exc:  # any error fails the test below
                errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(6)]
    for t in threads:
        t.start()
    more = make_events("purchase_sword", 50, seed=9)
    write_events(lake_dir, "purchase_sword", more)
    expected[lake.snapshot("purchase_sword", force=True).version] = (
        len(events["purchase_sword"]) + 50
    )
    for t in threads:
        t.join()
    assert errors == []
    assert seen
    assert all(n == expected[v] for v, n in seen)
