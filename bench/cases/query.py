"""The walkthrough's questions over 1M and 10M events: questlog's REST answer (DuckDB over
the committed Delta snapshot) against DuckDB scanning the same Parquet files directly (the
ceiling) and Spark SQL on the same table (the walkthrough's notebook).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.parse
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
from harness import BENCH, VENV_BIN, Server, free_port, http_json, median_ms

CHUNK = 1_000_000
WARM_RUNS = 20


def write_table(table_uri: str, rows: int) -> int:
    """purchase_sword rows in the lake contract's layout, appended 1M rows a commit."""
    from deltalake import DeltaTable, write_deltalake

    base = datetime(2026, 11, 1, tzinfo=UTC)
    swords = ["longsword", "katana", "rapier", "claymore", "scimitar"]
    for start in range(0, rows, CHUNK):
        n = min(CHUNK, rows - start)
        ids = range(start, start + n)
        received = [base + timedelta(milliseconds=i * 50) for i in ids]
        players = [f"player-{i % 20000}" for i in ids]
        batch = pa.table({
            "event_id": pa.array([f"{i:032x}" for i in ids]),
            "event_type": pa.array(["purchase_sword"] * n),
            "event_time": pa.array(received, pa.timestamp("us", tz="UTC")),
            "received_at": pa.array(received, pa.timestamp("us", tz="UTC")),
            "player_id": pa.array(players),
            "session_id": pa.array([None] * n, pa.string()),
            "host": pa.array([f"user{i % 200}.example.net" for i in ids]),
            "user_agent": pa.array(["bench/1.0"] * n),
            "accept": pa.array(["*/*"] * n),
            "client_ip_hash": pa.array([None] * n, pa.string()),
            "schema_version": pa.array([1] * n, pa.int64()),
            "sword_type": pa.array([swords[i % 5] for i in ids]),
            "price": pa.array([float(i % 50) + 0.99 for i in ids]),
            "currency": pa.array(["EUR"] * n),
            "quantity": pa.array([1 + i % 3 for i in ids], pa.int64()),
            "kafka_partition": pa.array([i % 3 for i in ids], pa.int32()),
            "kafka_offset": pa.array(list(ids), pa.int64()),
            "event_date": pa.array([r.date() for r in received], pa.date32()),
        })
        write_deltalake(table_uri, batch, mode="append", partition_by=["event_date"])
    return len(DeltaTable(table_uri).file_uris())


SPARK_SCRIPT = """
import json, statistics, sys, time
from pathlib import Path
from questlog_embedded.spark import local_session
spark = local_session(Path({work!r}), app_name="baseline-query")
spark.read.format("delta").load({table!r}).createOrReplaceTempView("purchases")
out = {{}}
for name, sql in {queries!r}.items():
    times = []
    for _ in range(6):
        t = time.perf_counter(); spark.sql(sql).collect(); times.append(time.perf_counter() - t)
    out[name] = {{"cold_ms": round(times[0] * 1000, 1),
                  "warm_median_ms": round(statistics.median(times[1:]) * 1000, 1)}}
print("RESULT " + json.dumps(out))
spark.stop()
"""

QUESTIONS = {
    "counts_by_host": (
        "/v1/stats/counts?event_type=purchase_sword&group_by=host",
        "select host, count(*) from purchases group by host"),
    "purchases_where_host": (
        "/v1/events/purchase_sword?host=user1.example.net&limit=100",
        "select * from purchases where host = 'user1.example.net' limit 100"),
}


def measure_rest(base: str, path: str) -> dict:
    t = time.perf_counter()
    http_json(base + path)
    cold = time.perf_counter() - t
    warm = []
    for _ in range(WARM_RUNS):
        t = time.perf_counter()
        http_json(base + path)
        warm.append(time.perf_counter() - t)
    return {"cold_ms": round(cold * 1000, 1), "warm_median_ms": median_ms(warm),
            "warm_p90_ms": round(sorted(warm)[int(0.9 * len(warm))] * 1000, 1)}


def measure_duckdb(table_dir: Path, sql: str) -> dict:
    import duckdb

    con = duckdb.connect()
    con.execute(f"create view purchases as select * from "
                f"read_parquet('{table_dir}/**/*.parquet', hive_partitioning=true)")
    times = []
    for _ in range(WARM_RUNS + 1):
        t = time.perf_counter()
        con.execute(sql).fetchall()
        times.append(time.perf_counter() - t)
    con.close()
    return {"cold_ms": round(times[0] * 1000, 1), "warm_median_ms": median_ms(times[1:])}


def run(ctx) -> dict:
    out = {}
    for rows in ctx.sizes([1_000_000, 10_000_000], [1_000_000]):
        lake = ctx.work / f"query-lake-{rows}"
        table_dir = lake / "tables" / "purchase_sword"
        started = time.monotonic()
        files = write_table(table_dir.as_uri(), rows)
        port = free_port()
        env = dict(os.environ, PATH=f"{VENV_BIN}:{os.environ['PATH']}",
                   QUESTLOG_QUERY_LAKE_ROOT=lake.as_uri(), QUESTLOG_QUERY_PORT=str(port),
                   QUESTLOG_QUERY_LOG_LEVEL="WARNING")
        case = {"rows": rows, "files": files,
                "write_seconds": round(time.monotonic() - started, 1)}
        with Server("questlog query", [str(VENV_BIN / "gunicorn"), "-c",
                                       str(BENCH.parent / "services/query/gunicorn.conf.py"),
                                       "questlog_query:create_app()"],
                    env, f"http://127.0.0.1:{port}/healthz", ctx.work / f"query-{port}.log"):
            base = f"http://127.0.0.1:{port}"
            for name, (path, sql) in QUESTIONS.items():
                q = urllib.parse.urlsplit(path)
                case[name] = {"rest": measure_rest(base, f"{q.path}?{q.query}"),
                              "duckdb_direct": measure_duckdb(table_dir, sql)}
        script = SPARK_SCRIPT.format(work=str(ctx.work / f"spark-q-{rows}"),
                                     table=table_dir.as_uri(),
                                     queries={k: v[1] for k, v in QUESTIONS.items()})
        proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                              timeout=1800, check=False)
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode != 0 or not line:
            raise RuntimeError(f"spark sql baseline failed: {proc.stderr[-2000:]}")
        for name, figures in json.loads(line[0][7:]).items():
            case[name]["spark_sql"] = figures
        out[f"rows_{rows}"] = case
    return out


def ratios(r: dict) -> dict:
    biggest = r[max(r, key=lambda k: r[k]["rows"])]
    q = biggest["counts_by_host"]
    return {"query_rows": biggest["rows"], "query_files": biggest["files"],
            "counts_by_host_rest_warm_median_ms": q["rest"]["warm_median_ms"],
            "counts_by_host_vs_spark_sql": round(q["spark_sql"]["warm_median_ms"]
                                                 / q["rest"]["warm_median_ms"], 1),
            "counts_by_host_duckdb_direct_ms": q["duckdb_direct"]["warm_median_ms"]}
