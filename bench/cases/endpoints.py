"""The query service's endpoints as benchmark cases, the lake they read, and how both
sides are timed; shared by the `query` and `day` cases.

Each `Endpoint` is one question asked two ways: the REST request a client sends, and the
SQL DuckDB runs directly, in-process, over `read_parquet([...])` of exactly the files the
Delta snapshot commits (`DeltaTable.file_uris()`, never a glob), with the same filters,
order and limit, so both give the same rows. Direct DuckDB is the ceiling: no HTTP, no
JSON, no snapshot checks, and the service's own DuckDB settings (threads, memory). The
direct SQL is written the way an analyst would ask the question, not copied from the
service, and each answer's key column is compared with the service's, in order.

The lake: `purchase_sword` and `join_guild` in the lake contract's layout (the columns of
`questlog_schemas`, partitioned by `event_date`), a purchase every `PURCHASE_STEP` from
`BASE` and a guild join per ten purchases over the same span; 200 hosts, 20,000 players,
five currencies with their own minor units (so revenue has rounding to do), 40 guilds
of skewed popularity. Big appends use the compaction's `writer_properties()`, so the files
look like the ones `make run`'s compaction leaves.

The service runs as `make run` serves it: `services/query/gunicorn.conf.py`, the
`QUESTLOG_QUERY_*` values `questlog_embedded.stack.environment()` sets (`SERVICE_ENV`;
the rest at their defaults, as there) and a Prometheus multiprocess folder as the
Procfile gives it; of its own only the port, lake and read token. The extractor's and
API's metrics URLs stay unset: they feed only /v1/pipeline, which no case here asks.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import secrets
import shutil
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from harness import BENCH, VENV_BIN, Server, free_port

from questlog_schemas import lake as layout

TS = pa.timestamp("us", tz="UTC")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
BASE = datetime(2026, 11, 1, tzinfo=UTC)
PURCHASE_STEP = timedelta(milliseconds=50)
JOINS_PER_PURCHASE = 0.1
CHUNK_ROWS = 1_000_000
TABLES = ("purchase_sword", "join_guild")

HOSTS = pa.array([f"user{k}.example.net" for k in range(200)])
FILTER_HOST = "user1.example.net"  # the walkthrough's "purchases where Host = ..."
PLAYERS = pa.array([f"player-{k}" for k in range(20_000)])
SWORDS = pa.array(["longsword", "katana", "rapier", "claymore", "scimitar"])
# currency, share of purchases, unit prices by tier; None: a purchase without a currency
CURRENCIES = (
    ("USD", 0.50, (0.99, 4.99, 9.99, 19.99, 49.99)),
    ("EUR", 0.30, (0.99, 4.99, 9.99, 19.99, 49.99)),
    ("GBP", 0.09, (0.79, 3.99, 7.99, 15.99, 39.99)),
    ("JPY", 0.08, (160.0, 800.0, 1600.0, 3200.0, 8000.0)),
    ("KWD", 0.02, (0.3, 1.5, 3.05, 6.1, 15.25)),
    (None, 0.01, (0.99, 4.99, 9.99, 19.99, 49.99)),
)
GUILD_COUNT = 40
GUILD_IDS = pa.array([f"g-{k:02d}" for k in range(GUILD_COUNT)])
GUILD_NAMES = pa.array([f"Guild {k:02d}" for k in range(GUILD_COUNT)])
ROLES = pa.array(["member", "officer", "leader", None])

# `make run`'s query settings beyond host, port, lake and token (questlog_embedded.stack);
# workers and threads come from gunicorn.conf.py, as under `make run`.
SERVICE_ENV = {"QUESTLOG_QUERY_SNAPSHOT_TTL_S": "0.25"}
GUNICORN_CONF = BENCH.parent / "services" / "query" / "gunicorn.conf.py"
WARM_REQUESTS = 15


# ---------------------------------------------------------------- the lake


@cache
def schema_for(event_type: str) -> pa.Schema:
    """The lake contract's columns of an event table (questlog_schemas.lake)."""
    return layout.arrow_schema(layout.event_table(event_type))


def _micros(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(microseconds=1)


def _envelope(
    event_type: str,
    prefix: str,
    first: int,
    n: int,
    start: datetime,
    step: timedelta,
    rng: np.random.Generator,
) -> dict[str, pa.Array]:
    """Envelope and Kafka columns of rows ``first``..``first + n``, the k-th received at
    ``start + k * step``."""
    ids = np.arange(first, first + n, dtype=np.int64)
    received = _micros(start) + np.arange(n, dtype=np.int64) * (step // timedelta(microseconds=1))
    digits = pc.utf8_lpad(pc.cast(pa.array(ids), pa.string()), 31, "0")
    return {
        # pyarrow-stubs want the separator as a Scalar; pyarrow takes a Python str
        "event_id": pc.binary_join_element_wise(pa.scalar(prefix), digits, ""),  # type: ignore[call-overload]
        "event_type": pa.repeat(pa.scalar(event_type), n),
        "event_time": pa.array(received - rng.integers(0, 2_000_000, n), TS),
        "received_at": pa.array(received, TS),
        "player_id": PLAYERS.take(rng.integers(0, len(PLAYERS), n)),
        "session_id": pa.nulls(n, pa.string()),
        "host": HOSTS.take(rng.integers(0, len(HOSTS), n)),
        "user_agent": pa.repeat(pa.scalar("questlog-bench/1.0"), n),
        "accept": pa.repeat(pa.scalar("*/*"), n),
        "client_ip_hash": pa.nulls(n, pa.string()),
        "schema_version": pa.repeat(pa.scalar(1, pa.int64()), n),
        "kafka_partition": pa.array((ids % 3).astype(np.int32)),
        "kafka_offset": pa.array(ids),
        "event_date": pa.array((received // 86_400_000_000).astype(np.int32), pa.date32()),
    }


def purchase_rows(first: int, n: int, start: datetime, step: timedelta = PURCHASE_STEP) -> pa.Table:
    """purchase_sword rows ``first``..``first + n`` (the same rows for the same ``first``)."""
    rng = np.random.default_rng([1, first])
    columns = _envelope("purchase_sword", "p", first, n, start, step, rng)
    currency = rng.choice(len(CURRENCIES), n, p=[c[1] for c in CURRENCIES])
    prices = np.array([c[2] for c in CURRENCIES])[currency, rng.integers(0, 5, n)]
    quantity = rng.choice(np.array([1, 1, 1, 2, 5], dtype=np.int64), n)
    columns.update(
        sword_type=SWORDS.take(rng.integers(0, len(SWORDS), n)),
        price=pa.array(prices, mask=rng.random(n) < 0.02),
        currency=pa.array([c[0] for c in CURRENCIES]).take(currency),
        quantity=pa.array(quantity, mask=rng.random(n) < 0.25),
    )
    return pa.Table.from_pydict(columns, schema=schema_for("purchase_sword"))


def join_rows(first: int, n: int, start: datetime, step: timedelta) -> pa.Table:
    """join_guild rows ``first``..``first + n``; guild k is joined about 1/(k+1) as often
    as the first."""
    rng = np.random.default_rng([2, first])
    columns = _envelope("join_guild", "j", first, n, start, step, rng)
    weights = 1 / np.arange(1, GUILD_COUNT + 1)
    guild = rng.choice(GUILD_COUNT, n, p=weights / weights.sum())
    columns.update(
        guild_id=GUILD_IDS.take(guild),
        guild_name=GUILD_NAMES.take(guild),
        role=ROLES.take(rng.choice(4, n, p=[0.85, 0.10, 0.02, 0.03])),
    )
    return pa.Table.from_pydict(columns, schema=schema_for("join_guild"))


def table_uri(lake: Path, table: str) -> str:
    return layout.table_uri(lake.as_uri(), table)


def committed_files(uri: str) -> list[str]:
    """Local paths of the files the table's latest version commits."""
    from deltalake import DeltaTable

    return [unquote(u.removeprefix("file://")) for u in DeltaTable(uri).file_uris()]


def _write(uri: str, rows: int, make: Callable[..., pa.Table], step: timedelta) -> int:
    """``rows`` rows of ``make`` from ``BASE``, one per ``step``, appended a chunk at a time
    (memory stays flat at any size) with the compaction's writer properties; returns the
    table's committed files."""
    from deltalake import write_deltalake

    from questlog_extractor.compact import writer_properties

    for first in range(0, rows, CHUNK_ROWS):
        write_deltalake(
            uri,
            make(first, min(CHUNK_ROWS, rows - first), BASE + step * first, step),
            mode="append",
            partition_by=["event_date"],
            writer_properties=writer_properties(),
        )
    return len(committed_files(uri))


def write_purchases(uri: str, rows: int) -> int:
    """``rows`` purchases, one per ``PURCHASE_STEP``; returns the committed files."""
    return _write(uri, rows, purchase_rows, PURCHASE_STEP)


def write_joins(uri: str, rows: int) -> int:
    """``rows`` guild joins over the span of ``rows / JOINS_PER_PURCHASE`` purchases."""
    return _write(uri, rows, join_rows, PURCHASE_STEP / JOINS_PER_PURCHASE)


def lake_for(work: Path, purchases: int) -> dict:
    """A lake of ``purchases`` purchases (and a tenth as many guild joins) under ``work``,
    written once per bench session: the harness runs a case several times, and writing
    100M rows takes minutes. What writing it took is kept beside it."""
    root = work / f"endpoints-lake-{purchases}"
    done = root / "written.json"
    if done.exists():
        return dict(json.loads(done.read_text()), root=str(root), written_now=False)
    shutil.rmtree(root, ignore_errors=True)  # an earlier attempt that did not finish
    joins = int(purchases * JOINS_PER_PURCHASE)
    started = time.monotonic()
    files = {
        "purchase_sword": write_purchases(table_uri(root, "purchase_sword"), purchases),
        "join_guild": write_joins(table_uri(root, "join_guild"), joins),
    }
    info = {
        "rows": {"purchase_sword": purchases, "join_guild": joins},
        "files": files,
        "write_s": round(time.monotonic() - started, 1),
        "bytes": sum(f.stat().st_size for f in root.rglob("*.parquet")),
        "end": (BASE + PURCHASE_STEP * purchases).isoformat(),
    }
    done.write_text(json.dumps(info))
    return dict(info, root=str(root), written_now=True)


# ---------------------------------------------------------------- the endpoints


@dataclass(frozen=True)
class Endpoint:
    """One question: the REST request and the direct SQL that answers it the same way."""

    name: str
    method: str
    path: str  # path and query string
    direct_sql: str
    key: str  # the column both answers must hold the same values of, in the same order
    shown: int | None = None  # rows of the direct answer the REST answer shows (None: all)
    body: dict | None = None  # JSON body of a POST
    kpi: bool = False
    # the walkthrough's unordered form of the question, timed directly beside it
    walkthrough_sql: str | None = None

    @property
    def request(self) -> str:
        return f"{self.method} {self.path}" + (f" {json.dumps(self.body)}" if self.body else "")


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _minor_unit() -> str:
    """The minor-unit exponent of the currencies the lake holds (ISO 4217)."""
    return "CASE currency WHEN 'JPY' THEN 0 WHEN 'KWD' THEN 3 ELSE 2 END"


def endpoints(end: datetime) -> list[Endpoint]:
    """Every query endpoint over a lake whose rows were received before ``end``; the
    per-minute KPI asks for the last hour of them (its default: the hour before now)."""
    since, until = end - timedelta(hours=1), end
    unit = _minor_unit()
    amount = (
        f"CASE WHEN price < 1e16 THEN CAST(round(price * power(10, {unit})) AS BIGINT) "
        "* coalesce(quantity, 1) END"
    )
    window = (
        f"received_at >= TIMESTAMPTZ '{since.isoformat()}' "
        f"AND received_at < TIMESTAMPTZ '{until.isoformat()}' "
        f"AND event_date >= DATE '{since.date()}' AND event_date <= DATE '{until.date()}'"
    )
    walkthrough_sql = (
        "SELECT host, count(*) AS purchases FROM purchase_sword "
        "GROUP BY host ORDER BY purchases DESC, host"
    )
    return [
        Endpoint(
            "counts_by_host",
            "GET",
            "/v1/stats/counts?event_type=purchase_sword&group_by=host",
            'SELECT host, count(*) AS "count" FROM purchase_sword GROUP BY host '
            'ORDER BY "count" DESC, host NULLS LAST LIMIT 1001',
            "host",
            shown=1000,
        ),
        Endpoint(
            "events_by_host",
            "GET",
            f"/v1/events/purchase_sword?host={FILTER_HOST}&limit=100",
            f"SELECT * FROM purchase_sword WHERE host = '{FILTER_HOST}' "
            "ORDER BY received_at, event_id LIMIT 101",
            "event_id",
            shown=100,
            walkthrough_sql=(
                f"SELECT * FROM purchase_sword WHERE host = '{FILTER_HOST}' LIMIT 100"
            ),
        ),
        Endpoint(
            "events_latest",
            "GET",
            "/v1/events/purchase_sword?order=desc&limit=15",
            "SELECT * FROM purchase_sword ORDER BY received_at DESC, event_id DESC LIMIT 16",
            "event_id",
            shown=15,
        ),
        Endpoint(
            "kpi_dau",
            "GET",
            "/v1/kpis/dau",
            "SELECT event_date, count(DISTINCT player_id) AS dau FROM ("
            "SELECT event_date, player_id FROM purchase_sword UNION ALL "
            "SELECT event_date, player_id FROM join_guild) "
            "GROUP BY event_date ORDER BY event_date",
            "dau",
            kpi=True,
        ),
        Endpoint(
            "kpi_revenue",
            "GET",
            "/v1/kpis/revenue?by=sword_type",
            f"SELECT sword_type, currency, count(*) AS purchases, "
            f"sum(coalesce(quantity, 1)) AS swords, sum({amount}) AS revenue_minor, "
            f"{unit} AS minor_unit FROM purchase_sword GROUP BY sword_type, currency "
            "ORDER BY revenue_minor / power(10, minor_unit) DESC NULLS LAST, "
            "purchases DESC, sword_type NULLS LAST, currency NULLS LAST LIMIT 1000",
            "revenue_minor",
            kpi=True,
        ),
        Endpoint(
            "kpi_top_spenders",
            "GET",
            "/v1/kpis/top-spenders?limit=10",
            f"SELECT player_id, currency, count(*) AS purchases, "
            f"sum({amount}) AS revenue_minor, {unit} AS minor_unit FROM purchase_sword "
            "WHERE price IS NOT NULL GROUP BY player_id, currency "
            "ORDER BY revenue_minor / power(10, minor_unit) DESC NULLS LAST, player_id, "
            "currency NULLS LAST LIMIT 10",
            "player_id",
            kpi=True,
        ),
        Endpoint(
            "kpi_guilds",
            "GET",
            "/v1/kpis/guilds",
            "SELECT guild_id, arg_max(guild_name, received_at) AS guild_name, "
            "count(*) AS joins, count(DISTINCT player_id) AS members FROM join_guild "
            "GROUP BY guild_id ORDER BY members DESC, joins DESC, guild_id LIMIT 1000",
            "guild_id",
            kpi=True,
        ),
        Endpoint(
            "kpi_events_per_minute",
            "GET",
            f"/v1/kpis/events-per-minute?since={_iso(since)}&until={_iso(until)}",
            "SELECT date_trunc('minute', received_at) AS minute, event_type, "
            "count(*) AS events FROM ("
            f"SELECT received_at, event_type FROM purchase_sword WHERE {window} UNION ALL "
            f"SELECT received_at, event_type FROM join_guild WHERE {window}) "
            "GROUP BY ALL ORDER BY minute, event_type",
            "events",
            kpi=True,
        ),
        Endpoint(
            "sql_counts_by_host",
            "POST",
            "/v1/sql",
            walkthrough_sql,
            "host",
            body={"sql": walkthrough_sql},
        ),
    ]


# ---------------------------------------------------------------- timing


def summary(samples: list[float], cold: float | None, failures: list[str], requests: int) -> dict:
    """Warm median, p95 (nearest rank) and range in ms; failures counted, the first named."""
    ms = sorted(s * 1000 for s in samples)
    out = {
        "requests": requests,
        "cold_ms": None if cold is None else round(cold * 1000, 2),
        "failures": len(failures),
        "first_failure": failures[0] if failures else None,
        "warm_median_ms": None,
        "warm_p95_ms": None,
        "warm_min_ms": None,
        "warm_max_ms": None,
    }
    if ms:
        out.update(
            warm_median_ms=round(statistics.median(ms), 2),
            warm_p95_ms=round(ms[math.ceil(0.95 * len(ms)) - 1], 2),
            warm_min_ms=round(ms[0], 2),
            warm_max_ms=round(ms[-1], 2),
        )
    return out


def timed_series(call: Callable[[], object], warm: int = WARM_REQUESTS) -> dict:
    """One cold call, then ``warm`` more; any exception is a failure, counted and kept out
    of the times, never dropped silently."""
    samples: list[float] = []
    failures: list[str] = []
    cold = None
    for i in range(warm + 1):
        started = time.perf_counter()
        try:
            call()
        except Exception as exc:  # a failed request is a result: count it and go on
            failures.append(
                f"{'cold' if i == 0 else 'warm'}: {type(exc).__name__}: {str(exc)[:300]}"
            )
            continue
        elapsed = time.perf_counter() - started
        if i == 0:
            cold = elapsed
        else:
            samples.append(elapsed)
    return summary(samples, cold, failures, warm + 1)


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 2)


class Client:
    """One keep-alive connection, as a dashboard holds one: each request pays the service,
    not a TCP handshake. A new one per series, so the server's idle timeout never closes it
    between two requests."""

    def __init__(self, base: str) -> None:
        host, port = base.removeprefix("http://").split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=120)

    def call(self, endpoint: Endpoint, token: str) -> bytes:
        headers = {}
        body = None
        if endpoint.body is not None:
            body = json.dumps(endpoint.body).encode()
            headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        try:
            self.conn.request(endpoint.method, endpoint.path, body=body, headers=headers)
            resp = self.conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()  # the next call reconnects
            raise
        if not 200 <= resp.status < 300:
            raise RuntimeError(f"HTTP {resp.status}: {data[:300]!r}")
        return data

    def close(self) -> None:
        self.conn.close()


def rest_series(
    base: str, token: str, endpoint: Endpoint, warm: int = WARM_REQUESTS
) -> tuple[dict, list[str] | None]:
    """Timing of the endpoint through the service and its last answer's key column."""
    client = Client(base)
    last: list[bytes] = []
    try:
        timing = timed_series(lambda: last.append(client.call(endpoint, token)), warm)
    finally:
        client.close()
    if not last:
        return timing, None
    rows = json.loads(last[-1])["rows"]
    return timing, [str(row.get(endpoint.key)) for row in rows]


def direct_connection(lake: Path, threads: int, memory_limit: str):
    """In-process DuckDB with the service's limits and a view per table over exactly the
    files of its latest committed version."""
    import duckdb

    con = duckdb.connect(":memory:", config={"threads": threads, "memory_limit": memory_limit})
    con.execute("SET TimeZone = 'UTC'")
    for table in TABLES:
        files = ", ".join(
            "'" + f.replace("'", "''") + "'" for f in committed_files(table_uri(lake, table))
        )
        con.execute(
            f"CREATE VIEW {table} AS SELECT * FROM "
            f"read_parquet([{files}], hive_partitioning = true)"
        )
    return con


def direct_series(
    con, sql: str, key: str | None = None, warm: int = WARM_REQUESTS
) -> tuple[dict, list[str] | None]:
    """Timing of ``sql`` on ``con`` (the answer as Arrow, as the service gets it) and the
    last answer's ``key`` column."""
    last: list[pa.Table] = []
    timing = timed_series(lambda: last.append(con.sql(sql).to_arrow_table()), warm)
    if not last or key is None:
        return timing, None
    return timing, [str(v) for v in last[-1].column(key).to_pylist()]


# ---------------------------------------------------------------- the service


class QueryService:
    """The query service under gunicorn as `make run` serves it, over one lake."""

    def __init__(self, lake: Path, work: Path, label: str) -> None:
        self.port = free_port()
        self.token = secrets.token_hex(16)  # this bench's own, for POST /v1/sql
        self.base = f"http://127.0.0.1:{self.port}"
        metrics = work / f"query-metrics-{label}-{self.port}"
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("QUESTLOG_QUERY_")}
        self.env = dict(
            inherited,
            PATH=f"{VENV_BIN}:{os.environ['PATH']}",
            QUESTLOG_QUERY_HOST="127.0.0.1",
            QUESTLOG_QUERY_PORT=str(self.port),
            QUESTLOG_QUERY_LAKE_ROOT=lake.as_uri(),
            QUESTLOG_QUERY_READ_TOKEN=self.token,
            PROMETHEUS_MULTIPROC_DIR=str(metrics),
            **SERVICE_ENV,
        )
        self.server = Server(
            f"questlog query ({label})",
            [str(VENV_BIN / "gunicorn"), "-c", str(GUNICORN_CONF), "questlog_query:create_app()"],
            self.env,
            f"{self.base}/healthz",
            work / f"query-{label}-{self.port}.log",
        )

    def __enter__(self) -> QueryService:
        self.server.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.server.__exit__(*exc)

    def duckdb_limits(self) -> tuple[int, str]:
        """The DuckDB threads and memory limit the service's settings give it."""
        from questlog_query.settings import Settings

        settings = Settings.from_env(self.env)
        return settings.duckdb_threads, settings.duckdb_memory_limit

    def describe(self) -> dict:
        threads, memory = self.duckdb_limits()
        return {
            "gunicorn_conf": str(GUNICORN_CONF.relative_to(BENCH.parent)),
            "workers_and_threads": "gunicorn.conf.py's defaults, as under make run",
            "duckdb_threads": threads,
            "duckdb_memory_limit": memory,
            "log_level": "INFO (default, as make run)",
            "prometheus_multiproc": True,
            **SERVICE_ENV,
            "client": "one keep-alive HTTP connection per series, sequential requests",
        }
