"""Trino (the walkthrough's Presto step) on a local test lake, as `make run TRINO=1` runs it:
the real coordinator from questlog_embedded.trino, tables registered by trino_sync, and the
walkthrough's SQL giving the numbers the query service and deltalake give."""

from __future__ import annotations

import shutil
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import trino
from deltalake import DeltaTable, write_deltalake

from questlog_query import create_app
from questlog_query.catalog import catalog
from questlog_query.trino_sync import SyncSettings, sync_once

from .conftest import make_events, make_settings, write_events

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("trino-lake") / "lake"
    root.mkdir()
    purchases = make_events("purchase_sword", 400, seed=1)
    write_events(root, "purchase_sword", purchases[:250])  # two committed versions
    write_events(root, "purchase_sword", purchases[250:])
    write_events(root, "join_guild", make_events("join_guild", 150, seed=2))
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from questlog_embedded.trino import TrinoServer

    s = TrinoServer(tmp_path_factory.mktemp("trino"))
    try:
        s.start()
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def registered(server, lake):
    settings = SyncSettings(url=server.url, lake_root=lake.as_uri())
    registered, missing = sync_once(settings)
    return settings, registered, missing


def query(server, sql: str, user: str = "analyst") -> list[tuple]:
    port = int(server.url.rsplit(":", 1)[1])
    with trino.dbapi.connect(
        host="127.0.0.1", port=port, user=user, catalog="questlog", schema="default"
    ) as conn:
        cur = conn.cursor()
        cur.execute(sql)
        return [tuple(row) for row in cur.fetchall()]


def rest_counts(lake: Path, event_type: str, group_by: str) -> dict:
    client = create_app(make_settings(lake)).test_client()
    answer = client.get(f"/v1/stats/counts?event_type={event_type}&group_by={group_by}")
    assert answer.status_code == 200, answer.json
    return {row[group_by]: row["count"] for row in answer.json["rows"]}


def delta_counts(lake: Path, table: str, column: str) -> dict:
    counts: dict = {}
    for value in (
        DeltaTable((lake / "tables" / table).as_uri())
        .to_pyarrow_table(columns=[column])
        .column(column)
        .to_pylist()
    ):
        counts[value] = counts.get(value, 0) + 1
    return counts


def test_a_table_answers_as_soon_as_the_server_says_ready(server, registered):
    """The first test of the module: right after start() (which waits for ready()) and the
    registrar's first pass, a scan answers. With /v1/info or ``SELECT 1`` as the readiness
    test, this scan answered "No nodes available to run query" for 2-5 s (CI, 2026-12-01)."""
    assert query(server, "select count(*) from purchase_sword") == [(400,)]


def test_sync_registers_what_exists_and_the_walkthrough_names(registered):
    _, done, missing = registered
    assert set(done) == {"purchase_sword", "join_guild", "purchases", "guild_joins"}
    assert missing == ["level_up", "quarantine"]  # not created yet: no Delta log


def test_the_walkthrough_sql_gives_the_query_services_and_deltalakes_numbers(
    server, lake, registered
):
    tables = {row[0] for row in query(server, "show tables")}
    assert {"purchase_sword", "join_guild", "purchases", "guild_joins"} <= tables
    columns = {row[0] for row in query(server, "describe purchases")}
    assert {"host", "user_agent", "price", "currency", "received_at"} <= columns
    assert len(query(server, "select * from purchases")) == 400

    by_host = dict(query(server, "select host, count(*) from purchases group by host"))
    assert by_host == rest_counts(lake, "purchase_sword", "host")
    assert by_host == delta_counts(lake, "purchase_sword", "host")
    joins = dict(query(server, "select guild_id, count(*) from guild_joins group by guild_id"))
    assert joins == rest_counts(lake, "join_guild", "guild_id")
    assert joins == delta_counts(lake, "join_guild", "guild_id")
    assert sum(joins.values()) == 150


def test_new_versions_are_read_and_a_table_created_later_is_registered(server, lake, registered):
    settings, _, _ = registered
    write_events(lake, "join_guild", make_events("join_guild", 10, seed=3))  # a new version
    assert query(server, "select count(*) from join_guild") == [(160,)]  # read at query time
    assert sync_once(settings) == (
        [],
        ["level_up", "quarantine"],
    )  # nothing new, nothing re-registered

    # the extractor creates the quarantine table when the first bad record arrives
    spec = catalog()["quarantine"]
    row = {name: None for name in spec.schema.names}
    row.update(
        raw_value="{broken",
        raw_truncated=False,
        reason="malformed_json",
        topic="events",
        kafka_partition=0,
        kafka_offset=7,
        seen_at=datetime(2026, 12, 1, tzinfo=UTC),
        seen_date=date(2026, 12, 1),
    )
    write_deltalake(
        (lake / "tables" / "quarantine").as_uri(),
        pa.Table.from_pylist([row], schema=spec.schema),
        partition_by=["seen_date"],
    )
    assert sync_once(settings) == (["quarantine"], ["level_up"])
    assert query(server, "select reason, count(*) from quarantine group by reason") == [
        ("malformed_json", 1)
    ]


def test_an_uncommitted_parquet_file_is_not_counted(server, lake, registered):
    """A valid Parquet file in the table's folder that no Delta commit lists (what a killed
    Spark driver leaves): Trino reads the log, not the folder."""
    table = lake / "tables" / "purchase_sword"
    before = query(server, "select count(*) from purchase_sword")[0][0]
    committed = Path(DeltaTable(table.as_uri()).file_uris()[0].removeprefix("file://"))
    stray = committed.with_name(f"part-00000-{uuid.uuid4()}.c000.snappy.parquet")
    shutil.copy(committed, stray)
    try:
        assert pq.read_table(stray).num_rows > 0  # a folder glob would count these
        assert query(server, "select count(*) from purchase_sword")[0][0] == before == 400
        assert sum(rest_counts(lake, "purchase_sword", "host").values()) == before
    finally:
        stray.unlink()


def test_analysts_read_only(server, registered):
    with pytest.raises(trino.exceptions.TrinoUserError, match="Access Denied"):
        query(server, "delete from purchase_sword")
    with pytest.raises(trino.exceptions.TrinoUserError, match="Access Denied"):
        query(
            server,
            "CALL system.register_table(schema_name => 'default', "
            "table_name => 'x', table_location => 'file:///tmp')",
        )


def test_analysts_do_not_see_the_readiness_catalog(server):
    assert {row[0] for row in query(server, "show catalogs")} == {"questlog", "system"}
    with pytest.raises(trino.exceptions.TrinoUserError, match="Access Denied"):
        query(server, "select count(*) from questlog_ready.tiny.region")


def test_trino_is_bound_to_loopback_and_sized_for_the_machine(server):
    import re

    from questlog_embedded import trino as embedded_trino

    cmdline = Path(f"/proc/{server.proc.pid}/cmdline").read_bytes().split(b"\0")
    assert b"-Dnode.bind-ip=127.0.0.1" in cmdline
    assert f"-Xmx{embedded_trino.HEAP}".encode() in cmdline
    listening = Path("/proc/net/tcp6").read_text() + Path("/proc/net/tcp").read_text()
    port = f"{int(server.url.rsplit(':', 1)[1]):04X}"
    # state 0A = LISTEN; only on 127.0.0.1 (0100007F, or ::ffff:127.0.0.1), never 0.0.0.0/::
    binds = [
        line.split()[1]
        for line in listening.splitlines()[1:]
        if line.split()[1].endswith(":" + port) and line.split()[3] == "0A"
    ]
    assert binds
    assert all(re.search(r"(0100007F|0000000000000000FFFF00000100007F):", b) for b in binds), binds


def test_the_readiness_probe_exits_0_on_a_ready_trino_and_1_on_none(server, monkeypatch):
    """`python -m questlog_query.trino_sync --ready`: the chart's registrar probe."""
    from questlog_embedded.process import free_port
    from questlog_query import trino_sync

    monkeypatch.setenv("QUESTLOG_TRINO_URL", server.url)
    assert trino_sync.main(["--ready"]) == 0
    monkeypatch.setenv("QUESTLOG_TRINO_URL", f"http://127.0.0.1:{free_port()}")
    assert trino_sync.main(["--ready"]) == 1
