"""Every query endpoint (counts, events with a host filter, the newest events, each KPI,
POST /v1/sql) over 1M, 10M and 100M purchases plus a tenth as many guild joins: the
query service's answer over REST, served as `make run` serves it, side by side with
DuckDB directly on the same committed Parquet files (the ceiling; `cases.endpoints` says
how each side is asked and timed), and the walkthrough's counts by host in Spark SQL on
the same Delta table (its notebook), at every size up to `SPARK_MAX_ROWS` (past it, six
Spark queries per run cost minutes and tell nothing the smaller sizes have not).

Per size, endpoint by endpoint: a cold request then `WARM_REQUESTS` warm ones through
REST, then the same through DuckDB; a failed request (non-2xx or an exception) is
counted, never dropped. The walkthrough's unordered `select * ... where host = ... limit
100` is timed directly beside the events page it stands for (which must order by
received_at, event_id). The cost curve is each endpoint's warm median per size.

100M rows run in the full bench only (written in 1M-row appends, so memory stays flat;
the result keeps how long writing took). The lake of each size is written once per bench
session and reused by the later runs.

Usage::

    bench/run.py --quick --only query   # 1M rows
    bench/run.py --only query           # 1M, 10M and 100M rows
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from cases import endpoints as ep

FULL_SIZES = [1_000_000, 10_000_000, 100_000_000]
QUICK_SIZES = [1_000_000]
SPARK_MAX_ROWS = 10_000_000
# Warm requests per endpoint and side: the cases' default up to 10M rows; at 100M, where
# one KPI request takes seconds, 3 (the median of 3 is still a median, and the full run's
# three runs give 9 per figure).
WARM_AT_100M = 3


def warm_requests(rows: int) -> int:
    return ep.WARM_REQUESTS if rows <= 10_000_000 else WARM_AT_100M


SPARK_QUESTION = "select host, count(*) from purchases group by host"

SPARK_SCRIPT = """
import json, statistics, sys, time
from pathlib import Path
from questlog_embedded.spark import local_session
spark = local_session(Path({work!r}), app_name="baseline-query")
spark.read.format("delta").load({table!r}).createOrReplaceTempView("purchases")
times = []
for _ in range(6):
    t = time.perf_counter(); spark.sql({sql!r}).collect(); times.append(time.perf_counter() - t)
print("RESULT " + json.dumps({{"cold_ms": round(times[0] * 1000, 1),
                              "warm_median_ms": round(statistics.median(times[1:]) * 1000, 1)}}))
spark.stop()
"""


def write_table(table_uri: str, rows: int) -> int:
    """purchase_sword rows as this case writes them; the report case builds its lake on
    them. Returns the table's committed files."""
    return ep.write_purchases(table_uri, rows)


def spark_counts_by_host(work: Path, table_uri: str) -> dict:
    """The walkthrough notebook's question in Spark SQL on the Delta table (own process)."""
    script = SPARK_SCRIPT.format(work=str(work), table=table_uri, sql=SPARK_QUESTION)
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=1800, check=False
    )
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not line:
        raise RuntimeError(f"spark sql baseline failed: {proc.stderr[-2000:]}")
    return dict(json.loads(line[0][len("RESULT ") :]), sql=SPARK_QUESTION)


def measure_size(ctx, rows: int) -> dict:
    lake = ep.lake_for(ctx.work, rows)
    root = Path(lake["root"])
    case = {"lake": lake, "endpoints": {}}
    with ep.QueryService(root, ctx.work, f"q{rows}") as service:
        case["service"] = service.describe()
        con = ep.direct_connection(root, *service.duckdb_limits())
        try:
            for endpoint in ep.endpoints(ep.BASE + ep.PURCHASE_STEP * rows):
                warm = warm_requests(rows)
                rest, rest_keys = ep.rest_series(service.base, service.token, endpoint, warm=warm)
                direct, direct_keys = ep.direct_series(
                    con, endpoint.direct_sql, endpoint.key, warm=warm
                )
                expected = direct_keys[: endpoint.shown] if direct_keys is not None else None
                figures = {
                    "request": endpoint.request,
                    "direct_sql": endpoint.direct_sql,
                    "rest": rest,
                    "duckdb": direct,
                    "vs_duckdb": ep.ratio(rest["warm_median_ms"], direct["warm_median_ms"]),
                    "rows": None if rest_keys is None else len(rest_keys),
                    "same_answer": rest_keys is not None and rest_keys == expected,
                }
                if endpoint.walkthrough_sql:
                    figures["walkthrough_sql"] = endpoint.walkthrough_sql
                    figures["duckdb_unordered_walkthrough"], _ = ep.direct_series(
                        con, endpoint.walkthrough_sql, warm=warm
                    )
                case["endpoints"][endpoint.name] = figures
                print(
                    f"[bench] query {rows:,} rows {endpoint.name}: REST "
                    f"{rest['warm_median_ms']} ms, DuckDB {direct['warm_median_ms']} ms, "
                    f"same answer: {figures['same_answer']}",
                    flush=True,
                )
        finally:
            con.close()
    if rows <= SPARK_MAX_ROWS:
        case["spark_sql_counts_by_host"] = spark_counts_by_host(
            ctx.work / f"spark-q-{rows}", ep.table_uri(root, "purchase_sword")
        )
    return case


def run(ctx) -> dict:
    out: dict[str, Any] = {
        "sizes": {},
        "warm_requests": {"up_to_10m": ep.WARM_REQUESTS, "100m": WARM_AT_100M},
        "rows_meaning": "purchase_sword rows; join_guild holds a tenth as many",
    }
    for rows in ctx.sizes(FULL_SIZES, QUICK_SIZES):
        out["sizes"][str(rows)] = measure_size(ctx, rows)
    out["curve_rest_ms"] = {
        name: {
            rows: case["endpoints"][name]["rest"]["warm_median_ms"]
            for rows, case in out["sizes"].items()
        }
        for name in next(iter(out["sizes"].values()))["endpoints"]
    }
    out["curve_duckdb_ms"] = {
        name: {
            rows: case["endpoints"][name]["duckdb"]["warm_median_ms"]
            for rows, case in out["sizes"].items()
        }
        for name in out["curve_rest_ms"]
    }
    return out


def label(rows: int) -> str:
    return f"{rows // 1_000_000}m"


def ratios(r: dict) -> dict:
    cases = {int(rows): case for rows, case in r["sizes"].items()}
    out: dict[str, float | int | None] = {
        "query_failures": sum(
            e["rest"]["failures"]
            + e["duckdb"]["failures"]
            + e.get("duckdb_unordered_walkthrough", {}).get("failures", 0)
            for c in cases.values()
            for e in c["endpoints"].values()
        ),
        "query_answers_differ": sum(
            not e["same_answer"] for c in cases.values() for e in c["endpoints"].values()
        ),
    }
    for rows in sorted({max(cases)} | ({10_000_000} & set(cases))):
        size = label(rows)
        figures = cases[rows]["endpoints"]
        for name, e in figures.items():
            out[f"q_{name}_ms_{size}"] = e["rest"]["warm_median_ms"]
            out[f"q_{name}_duckdb_ms_{size}"] = e["duckdb"]["warm_median_ms"]
            out[f"q_{name}_vs_duckdb_{size}"] = e["vs_duckdb"]
            if "duckdb_unordered_walkthrough" in e:
                out[f"q_{name}_unordered_duckdb_ms_{size}"] = e["duckdb_unordered_walkthrough"][
                    "warm_median_ms"
                ]
        ms = [e["rest"]["warm_median_ms"] for e in figures.values()]
        vs = [e["vs_duckdb"] for e in figures.values()]
        # an endpoint without a figure (every request failed) leaves the worst unknown
        out[f"query_worst_ms_{size}"] = None if None in ms else max(ms)
        out[f"query_worst_vs_duckdb_{size}"] = None if None in vs else max(vs)
        out[f"query_files_{size}"] = cases[rows]["lake"]["files"]["purchase_sword"]
    spark_sizes = [rows for rows, c in cases.items() if "spark_sql_counts_by_host" in c]
    if spark_sizes:
        case = cases[max(spark_sizes)]
        spark_ms = case["spark_sql_counts_by_host"]["warm_median_ms"]
        out["counts_by_host_spark_sql_rows"] = max(spark_sizes)
        out["counts_by_host_spark_sql_ms"] = spark_ms
        out["counts_by_host_vs_spark_sql"] = ep.ratio(
            spark_ms, case["endpoints"]["counts_by_host"]["rest"]["warm_median_ms"]
        )
    return out
