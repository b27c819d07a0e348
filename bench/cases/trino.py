"""Trino, the query service and Spark SQL side by side on the same purchase_sword Delta
table (10M rows; 1M with --quick), asked the walkthrough notebook's two questions:

- counts by host: every host with its purchases;
- one host's purchases: the first page of `PAGE_ROWS` rows for `ep.FILTER_HOST` in the
  order the query service pages them (received_at, event_id). The service answers a page
  at a time (`/v1/events` returns at most its `MAX_LIMIT`, one page), so every engine is
  asked for that page, not for all of the host's rows.

The table is the query case's (`endpoints.lake_for`, written once per bench session and
reused); all three read its committed Delta snapshot: Trino through its Delta Lake
connector (the table registered by `questlog_query.trino_sync`), the service over REST as
`make run` serves it (`endpoints.QueryService`), Spark through delta-spark in a local
session of its own process. Each engine runs alone, the others stopped, and warm: per
question one untimed cold request, then `WARM` timed ones (median, min-max); a failed
request is counted, never dropped. Spark's start is not timed; Trino's start (process to
first answer of /v1/info) and its RSS after the queries are. The engines must give the
same answer (the same count per host, summing to the table's rows; the same event_ids in
the same order); any difference fails the run.

Usage::

    bench/run.py --quick --only trino   # 1M rows
    bench/run.py --only trino           # 10M rows
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from harness import BENCH

from cases import endpoints as ep
from questlog_embedded.process import spawn, stop
from questlog_embedded.trino import TrinoServer
from questlog_query.api.events import MAX_LIMIT
from questlog_query.trino_sync import SyncSettings, sync_once

FULL_ROWS = 10_000_000
QUICK_ROWS = 1_000_000
# timed requests per engine and question, after one cold one; fewer than the query case's
# 15: a Spark SQL answer over 10M rows takes seconds, and the harness repeats the case 3x
WARM = 5
PAGE_ROWS = MAX_LIMIT  # the service's largest page
HOST = ep.FILTER_HOST
ENGINES = ("trino", "query", "spark")
NAMES = {"trino": "Trino", "query": "query service", "spark": "Spark SQL"}
TRINO_USER = "bench"  # a reader: Trino's rules let only the registrar register tables
SPARK_TIMEOUT_S = 1800

TRINO_COUNTS = "SELECT host, count(*) FROM questlog.default.purchase_sword GROUP BY host"
TRINO_PAGE = (
    "SELECT * FROM questlog.default.purchases WHERE host = ? "
    f"ORDER BY received_at, event_id LIMIT {PAGE_ROWS}"
)
REST_COUNTS = "/v1/stats/counts?event_type=purchase_sword&group_by=host"
REST_PAGE = f"/v1/events/purchase_sword?host={HOST}&limit={PAGE_ROWS}"
SPARK_COUNTS = 'df.groupBy("host").count().collect()'
SPARK_PAGE = (
    f'df.where(df.host == {HOST!r}).orderBy("received_at", "event_id").limit({PAGE_ROWS}).collect()'
)

# Spark in a process of its own, so stopping it stops its JVM; it times with the same
# `endpoints.timed_series` as the other two and writes timings and answers to a file.
SPARK_SCRIPT = """
import json, sys
from pathlib import Path
sys.path.insert(0, {bench!r})
from cases import endpoints as ep
from questlog_embedded.spark import local_session
spark = local_session(Path({work!r}), app_name="bench-trino-spark")
df = spark.read.format("delta").load({table!r})
last = {{"counts": [], "page": []}}
counts = ep.timed_series(lambda: last["counts"].append({counts}), {warm})
page = ep.timed_series(lambda: last["page"].append({page}), {warm})
out = {{"counts": counts, "page": page,
        "counts_answer": {{r["host"]: r["count"] for r in last["counts"][-1]}}
                         if last["counts"] else None,
        "page_answer": [r["event_id"] for r in last["page"][-1]] if last["page"] else None}}
Path({out!r}).write_text(json.dumps(out))
spark.stop()
"""


# ---------------------------------------------------------------- pure logic


def timing_text(timing: dict) -> str:
    """'12.3 ms (10.1-15.2, n=15)', with the failures if any; 'no answer' if none came."""
    if timing["warm_median_ms"] is None:
        text = "no answer"
    else:
        cold_failed = timing["cold_ms"] is None
        warm = timing["requests"] - 1 - (timing["failures"] - cold_failed)
        text = (
            f"{timing['warm_median_ms']:,} ms ({timing['warm_min_ms']:,}-"
            f"{timing['warm_max_ms']:,}, n={warm})"
        )
    if timing["failures"]:
        text += f", {timing['failures']} failed: {timing['first_failure']}"
    return text


def differences(
    counts: dict[str, dict | None], pages: dict[str, list | None], rows: int
) -> list[str]:
    """What keeps the engines' answers from being one answer: an engine without one, a
    count per host or a page's event_ids unlike the first engine's, counts that do not
    sum to the table's rows."""
    problems = []
    for question, answers in (("counts by host", counts), ("host page", pages)):
        given = {engine: answer for engine, answer in answers.items() if answer is not None}
        problems += [
            f"{question}: no answer from {NAMES.get(e, e)}" for e in answers if e not in given
        ]
        if not given:
            continue
        first, reference = next(iter(given.items()))
        for engine, answer in given.items():
            if answer != reference:
                problems.append(
                    f"{question}: {NAMES.get(engine, engine)} differs from "
                    f"{NAMES.get(first, first)} ({_diff(reference, answer)})"
                )
        if (
            question == "counts by host"
            and isinstance(reference, dict)
            and sum(reference.values()) != rows
        ):
            problems.append(f"counts by host: sum {sum(reference.values()):,} != {rows:,} rows")
    return problems


def _diff(reference: dict | list, other: dict | list) -> str:
    if isinstance(reference, dict) and isinstance(other, dict):
        keys = sorted(k for k in set(reference) | set(other) if reference.get(k) != other.get(k))
        return f"{len(keys)} host(s), e.g. {keys[:3]}"
    if len(reference) != len(other):
        return f"{len(other)} rows vs {len(reference)}"
    first = next(i for i, (a, b) in enumerate(zip(reference, other, strict=True)) if a != b)
    return f"first difference at row {first}: {other[first]} vs {reference[first]}"


# ---------------------------------------------------------------- the engines


def _first_answer(conn, timeout: float = 60.0) -> float:
    """Seconds until Trino first answers a query over the table (not timed as a figure:
    it is start-up, reported as `trino_first_query_wait_s`); raises after ``timeout``."""
    started = time.monotonic()
    while True:
        try:
            cur = conn.cursor()
            cur.execute("SELECT count(*) FROM purchase_sword")
            cur.fetchall()
            return round(time.monotonic() - started, 2)
        except Exception:  # retried until the timeout, then raised
            if time.monotonic() - started > timeout:
                raise
            time.sleep(0.5)


def trino_side(lake: Path, work: Path) -> dict:
    """Trino: start, register the lake's tables, both questions, RSS; always stopped."""
    import trino

    server = TrinoServer(Path(tempfile.mkdtemp(prefix="trino-", dir=work)))
    out: dict = {}
    try:
        server.start()
        out["start_s"] = round(server.start_seconds, 2)  # type: ignore[arg-type]  # set by start()
        registered, missing = sync_once(SyncSettings(url=server.url, lake_root=lake.as_uri()))
        out["registered"], out["not_in_lake"] = registered, missing
        conn = trino.dbapi.connect(
            host="127.0.0.1",
            port=server.port,
            user=TRINO_USER,
            catalog="questlog",
            schema="default",
            request_timeout=300,
            # one EXECUTE IMMEDIATE per question, not PREPARE,
            # EXECUTE and DEALLOCATE, nor a probe for it
            legacy_prepared_statements=False,
        )
        try:
            out["first_query_wait_s"] = _first_answer(conn)
            out["counts"], counts = _trino_series(conn, TRINO_COUNTS, ())
            out["page"], page = _trino_series(conn, TRINO_PAGE, (HOST,))
        finally:
            conn.close()
        rss = server.rss_bytes()
        out["rss_mib"] = None if rss is None else round(rss / 2**20, 1)
    finally:
        server.stop()
    out["counts_answer"] = None if counts is None else {h: n for h, n in counts[1]}
    out["page_answer"] = (
        None if page is None else [row[page[0].index("event_id")] for row in page[1]]
    )
    return out


def _trino_series(conn, sql: str, params: tuple) -> tuple[dict, tuple | None]:
    """Timing of ``sql`` (executed and every row fetched) and the last answer as (column
    names, rows)."""
    last: list[tuple] = []

    def ask() -> None:
        cursor = conn.cursor()
        try:
            cursor.execute(sql, params or None)
            rows = cursor.fetchall()
            last.append(([d[0] for d in cursor.description], rows))
        finally:
            cursor.close()

    return ep.timed_series(ask, WARM), (last[-1] if last else None)


def query_side(lake: Path, work: Path, rows: int) -> dict:
    """The query service over REST, as `make run` serves it."""
    out: dict = {}
    with ep.QueryService(lake, work, f"t{rows}") as service:
        out["service"] = service.describe()
        out["counts"], counts = _rest_series(service, REST_COUNTS)
        out["page"], page = _rest_series(service, REST_PAGE)
    out["counts_truncated"] = None if counts is None else counts.get("truncated")
    out["counts_answer"] = (
        None if counts is None else {r["host"]: r["count"] for r in counts["rows"]}
    )
    out["page_answer"] = None if page is None else [r["event_id"] for r in page["rows"]]
    return out


def _rest_series(service: ep.QueryService, path: str) -> tuple[dict, dict | None]:
    endpoint = ep.Endpoint(path.split("?")[0], "GET", path, direct_sql="", key="")
    client = ep.Client(service.base)
    last: list[bytes] = []
    try:
        timing = ep.timed_series(lambda: last.append(client.call(endpoint, service.token)), WARM)
    finally:
        client.close()
    return timing, (json.loads(last[-1]) if last else None)


def spark_side(table: str, work: Path) -> dict:
    """Spark on the Delta table through delta-spark, in its own process (always stopped)."""
    work.mkdir(parents=True, exist_ok=True)
    result = work / "result.json"
    script = SPARK_SCRIPT.format(
        bench=str(BENCH),
        work=str(work),
        table=table,
        counts=SPARK_COUNTS,
        page=SPARK_PAGE,
        warm=WARM,
        out=str(result),
    )
    log = work / "spark.log"
    proc = spawn([sys.executable, "-c", script], log)
    try:
        code = proc.wait(timeout=SPARK_TIMEOUT_S)
    finally:
        stop(proc)
    if code != 0 or not result.exists():
        raise RuntimeError(
            f"Spark side failed (exit {code}; log {log}): {log.read_text(errors='replace')[-2000:]}"
        )
    return json.loads(result.read_text())


# ---------------------------------------------------------------- the case


def run(ctx) -> dict:
    rows = int(ctx.size(FULL_ROWS, QUICK_ROWS))
    lake = ep.lake_for(ctx.work, rows)
    root = Path(lake["root"])
    say = _printer(rows)
    started = time.monotonic()
    sides = {
        "trino": trino_side(root, ctx.work),
        "query": query_side(root, ctx.work, rows),
        "spark": spark_side(
            ep.table_uri(root, "purchase_sword"),
            ctx.work / f"spark-trino-{rows}-{time.monotonic_ns()}",
        ),
    }
    trino = sides["trino"]
    say(
        f"Trino start {trino['start_s']} s, first answer over the table "
        f"{trino.get('first_query_wait_s')} s later, RSS after the queries {trino['rss_mib']} MiB"
    )
    questions = (
        ("counts_by_host", "counts", "counts by host"),
        ("host_page", "page", f"first {PAGE_ROWS} rows of host={HOST} by received_at, event_id"),
    )
    for figure, key, question in questions:
        for engine in ENGINES:
            say(f"{figure} ({question}): {NAMES[engine]} {timing_text(sides[engine][key])}")
    problems = differences(
        {e: sides[e]["counts_answer"] for e in ENGINES},
        {e: sides[e]["page_answer"] for e in ENGINES},
        rows,
    )
    say(f"same answer on all three: {'yes' if not problems else 'NO: ' + '; '.join(problems)}")
    if problems:  # a failed run: counted by the harness, its reasons in the traceback
        raise RuntimeError("engines disagree: " + "; ".join(problems))
    return {
        "rows": rows,
        "lake": lake,
        "page_rows": PAGE_ROWS,
        "host": HOST,
        "warm": WARM,
        "asked": {
            "trino": {"counts": TRINO_COUNTS, "page": TRINO_PAGE + f" [{HOST}]"},
            "query": {"counts": f"GET {REST_COUNTS}", "page": f"GET {REST_PAGE}"},
            "spark": {"counts": SPARK_COUNTS, "page": SPARK_PAGE},
        },
        "seconds": round(time.monotonic() - started, 1),
        **{
            engine: {k: v for k, v in side.items() if not k.endswith("_answer")}
            for engine, side in sides.items()
        },
        "same_answer": True,
    }


def _printer(rows: int) -> Callable[[str], None]:
    def say(text: str) -> None:
        print(f"[bench] trino {rows:,} rows {text}", flush=True)

    return say


def ratios(r: dict) -> dict:
    out: dict[str, float | int | None] = {
        "trino_rows": r["rows"],
        "host_page_rows": r["page_rows"],
        "trino_start_s": r["trino"]["start_s"],
        "trino_rss_mib": r["trino"]["rss_mib"],
        "trino_first_query_wait_s": r["trino"].get("first_query_wait_s"),
    }
    for figure, key in (("counts_by_host", "counts"), ("host_page", "page")):
        for engine in ENGINES:
            out[f"{figure}_ms_{engine}"] = r[engine][key]["warm_median_ms"]
    out["trino_case_failures"] = sum(
        r[engine][key]["failures"] for engine in ENGINES for key in ("counts", "page")
    )
    return out
