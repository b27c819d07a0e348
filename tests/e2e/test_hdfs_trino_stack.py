"""`make run LAKE=hdfs TRINO=1` end to end: the walkthrough's layout for real.

The same Procfile under its supervisor, with the optional processes on: the embedded HDFS
(MiniDFSCluster) holds the tables and the extractor's checkpoints, Trino reads them through
its Delta Lake connector, and the registrar keeps them registered. The walkthrough's Presto
SQL, with only the catalog adapted (`--catalog questlog --schema default`), must give the
same numbers from the trino CLI, from Python's `trino` client, from the query service and
from deltalake directly; a valid Parquet file that no Delta commit lists must be counted by
none of them; and the Locust ledger must hold exactly once on HDFS.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import time
import uuid

import pyarrow.parquet as pq
import pytest
import trino
from deltalake import DeltaTable
from hdfs_native import Client

from questlog_embedded.stack import Stack
from questlog_loadtest import verify
from questlog_schemas import load_registry

from .pipeline import (
    HOSTS,
    VENV_BIN,
    WANT_GUILDS,
    WANT_PURCHASES,
    counts_by_host,
    get,
    run_ledger,
    send_walkthrough_traffic,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CLI_ARGS = ("--catalog", "questlog", "--schema", "default", "--output-format", "CSV_HEADER")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    s = Stack(
        tmp_path_factory.mktemp("stack-hdfs"),
        extra_env={
            "QUESTLOG_LAKE": "hdfs",
            "QUESTLOG_TRINO": "1",
            "QUESTLOG_TRINO_SYNC_EVERY_S": "2",
            "QUESTLOG_EXTRACTOR_COMPACT_EVERY_S": "10",
        },
    )
    try:
        s.start(timeout=420)  # Trino's first start on 2 cores: about a minute
        yield s
    finally:
        s.stop()


def run_env(stack: Stack) -> dict[str, str]:
    lines = (stack.var / "run.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def lake_root(stack: Stack) -> str:
    return run_env(stack)["QUESTLOG_LAKE_ROOT"]


def cli(stack: Stack, sql: str) -> list[dict[str, str]]:
    """The pinned trino CLI, as bin/trino runs it; rows of the last statement as dicts."""
    proc = subprocess.run(
        [
            str(VENV_BIN / "questlog-trino"),
            "cli",
            "--server",
            stack.trino,
            *CLI_ARGS,
            "--execute",
            sql,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return list(csv.DictReader(io.StringIO(proc.stdout)))


def py_query(stack: Stack, sql: str) -> list[tuple]:
    """Python's DB-API client, the way an analyst's notebook connects."""
    port = int(stack.trino.rsplit(":", 1)[1])
    with trino.dbapi.connect(
        host="127.0.0.1", port=port, user="analyst", catalog="questlog", schema="default"
    ) as conn:
        cur = conn.cursor()
        cur.execute(sql)
        return [tuple(row) for row in cur.fetchall()]


def wait_registered(stack: Stack, tables: set[str], timeout: float = 90) -> set[str]:
    deadline = time.monotonic() + timeout
    shown: set[str] = set()
    while time.monotonic() < deadline:
        shown = {row[0] for row in py_query(stack, "SHOW TABLES")}
        if tables <= shown:
            break
        time.sleep(1)
    return shown


def delta_counts_by_host(uri: str) -> dict[str, int]:
    table = DeltaTable(uri).to_pyarrow_table(columns=["host"])
    counts: dict[str, int] = {}
    for host in table.column("host").to_pylist():
        counts[host] = counts.get(host, 0) + 1
    return counts


def test_the_lake_and_checkpoints_are_on_hdfs(stack):
    env = run_env(stack)
    root = env["QUESTLOG_LAKE_ROOT"]
    assert root.startswith("hdfs://127.0.0.1:")
    assert root.endswith("/questlog/lake")
    for key in (
        "QUESTLOG_EXTRACTOR_LAKE_ROOT",
        "QUESTLOG_QUERY_LAKE_ROOT",
        "QUESTLOG_TRINO_LAKE_ROOT",
    ):
        assert env[key] == root, key
    status = subprocess.run(
        [str(VENV_BIN / "python"), "-m", "questlog_embedded.stack", "status"],
        env={**stack.env, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert f"lake       {root}  (HDFS, make run LAKE=hdfs)" in status.stdout, status.stdout
    for name in ("kafka", "api", "extractor", "query", "hdfs", "trino"):
        assert f"{name:10s} up" in status.stdout, status.stdout
    assert not (stack.var / "lake").exists()  # nothing on the local disk


def test_walkthrough_traffic_lands_on_hdfs(stack):
    send_walkthrough_traffic(stack)
    client = Client(lake_root(stack).split("/questlog/")[0])
    path = "/questlog/lake"
    names = {s.path.rsplit("/", 1)[-1] for s in client.list_status(f"{path}/tables")}
    assert {"purchase_sword", "join_guild"} <= names
    checkpoints = list(client.list_status(f"{path}/_checkpoints"))
    assert checkpoints, "the extractor's checkpoints are not on HDFS"


def test_walkthrough_sql_from_the_cli_and_python_matches_rest_and_deltalake(stack):
    wanted = {"purchase_sword", "join_guild", "purchases", "guild_joins"}
    assert wanted <= wait_registered(stack, wanted)
    root = lake_root(stack)

    # presto:default> show tables;  describe purchases;  select * from purchases;
    assert wanted <= {row["Table"] for row in cli(stack, "show tables")}
    columns = {row["Column"]: row["Type"] for row in cli(stack, "describe purchases")}
    assert {"host", "user_agent", "accept", "event_type", "received_at"} <= set(columns)
    rows = cli(stack, "select * from purchases")
    assert len(rows) == sum(WANT_PURCHASES.values())
    assert {r["event_type"] for r in rows} == {"purchase_sword"}

    # purchases by host, guild joins by host: CLI = Python client = REST = deltalake
    by_host = "select host, count(*) as n from {} group by host"
    for table, rest_type, want in (
        ("purchases", "purchase_sword", WANT_PURCHASES),
        ("guild_joins", "join_guild", WANT_GUILDS),
    ):
        from_cli = {r["host"]: int(r["n"]) for r in cli(stack, by_host.format(table))}
        from_py = dict(py_query(stack, by_host.format(table)))
        assert from_cli == from_py == counts_by_host(stack, rest_type) == want, table
        assert delta_counts_by_host(f"{root}/tables/{rest_type}") == want, table

    # the notebook's question: purchases where host = 'user1.comcast.com'
    host = HOSTS[0]
    ids_trino = {
        r[0] for r in py_query(stack, f"select event_id from purchases where host = '{host}'")
    }
    _, body, _ = get(f"{stack.query}/v1/events/purchase_sword?host={host}&limit=100")
    assert ids_trino == {r["event_id"] for r in json.loads(body)["rows"]}
    assert len(ids_trino) == WANT_PURCHASES[host]


def test_analysts_cannot_write_through_trino(stack):
    with pytest.raises(trino.exceptions.TrinoUserError, match="Access Denied"):
        py_query(stack, "insert into join_guild (event_id) values ('forged')")
    with pytest.raises(trino.exceptions.TrinoUserError, match="Access Denied"):
        py_query(
            stack,
            "CALL system.register_table(schema_name => 'default', "
            "table_name => 'x', table_location => '/tmp')",
        )


def test_an_uncommitted_parquet_file_is_counted_by_no_reader(stack, tmp_path):
    """What a killed Spark driver leaves behind: a valid Parquet file in a table's folder
    that no Delta commit lists. Trino, the query service and deltalake read the Delta log
    and must not count it; a naive reader of the folder would."""
    root = lake_root(stack)
    uri = f"{root}/tables/purchase_sword"
    before = {
        "trino": py_query(stack, "select count(*) from purchase_sword")[0][0],
        "rest": sum(counts_by_host(stack, "purchase_sword").values()),
        "deltalake": DeltaTable(uri).to_pyarrow_table(columns=["event_id"]).num_rows,
    }
    assert len(set(before.values())) == 1, before

    client = Client(root.split("/questlog/")[0])
    table_path = uri.split("://", 1)[1].split("/", 1)[1]
    committed = DeltaTable(uri).file_uris()[0].split("://", 1)[1].split("/", 1)[1]
    stray = f"{committed.rsplit('/', 1)[0]}/part-00000-{uuid.uuid4()}.c000.snappy.parquet"
    with client.read("/" + committed.lstrip("/")) as reader:
        data = reader.read()
    with client.create("/" + stray.lstrip("/")) as writer:
        writer.write(data)
    try:
        local = tmp_path / "stray.parquet"
        local.write_bytes(data)
        stray_rows = pq.read_table(local).num_rows
        assert stray_rows > 0  # a naive reader of the folder would count these
        listed = [
            s.path
            for s in client.list_status("/" + table_path.lstrip("/"), recursive=True)
            if s.path.endswith(".parquet")
        ]
        assert any(path.endswith(stray.rsplit("/", 1)[1]) for path in listed)

        time.sleep(1)  # the query service re-checks the log every 0.25 s
        after = {
            "trino": py_query(stack, "select count(*) from purchase_sword")[0][0],
            "rest": sum(counts_by_host(stack, "purchase_sword").values()),
            "deltalake": DeltaTable(uri).to_pyarrow_table(columns=["event_id"]).num_rows,
        }
        assert after == before, (after, before, stray_rows)
    finally:
        client.delete("/" + stray.lstrip("/"))


def test_locust_ledger_holds_on_hdfs_and_trino_counts_the_same(stack, tmp_path):
    time.sleep(verify.SLOWEST_ANSWER_S)  # the ledger counts from its own window on
    report = run_ledger(stack, tmp_path)
    # every type the load sent (a table the run created is registered within a pass)
    types = set(load_registry().event_types)
    assert set(report.by_type) == types
    assert wait_registered(stack, types) >= types
    # after the load (and compaction passes on HDFS meanwhile), Trino still reads the
    # same committed snapshot size as the query service
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        rest = {t: sum(counts_by_host(stack, t).values()) for t in sorted(types)}
        via_trino = {t: py_query(stack, f"select count(*) from {t}")[0][0] for t in rest}
        if via_trino == rest:
            break
        time.sleep(1)
    assert via_trino == rest
    assert sum(rest.values()) >= report.accepted


def test_ctrl_c_stops_every_process_with_hdfs_and_trino(stack):
    stack.stop()
    log = stack.log.read_text(errors="replace")
    for name in ("hdfs", "kafka", "api", "extractor", "compact", "query", "trino", "trino-sync"):
        assert f"supervisor | {name} stopped" in log, (name, log[-4000:])
    assert "supervisor | every process stopped" in log, log[-4000:]
    assert "crashed" not in log, log[-4000:]
    assert "Traceback" not in log, log[log.index("Traceback") - 2000 :][:6000]
    from questlog_embedded.process import port_open

    assert not any(port_open(port) for port in stack.ports.values())
