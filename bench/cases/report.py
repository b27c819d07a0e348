"""`make report` over 1M events: the wall time of `bin/report` (the command `make report`
runs) against the real query service under gunicorn, configured as `make run` serves it,
over a lake of sword purchases, guild joins and a few quarantined events.

Three runs one after the other on the same service: the first is the cold one (fresh
workers: no snapshot loaded, DuckDB's caches empty; the files are in the OS page cache,
just written), the other two warm. Median and spread (min-max) are over the runs that
succeeded; a run that fails is counted (`report_runs_failed`) and kept in the JSON with its
exit code and the end of its stderr, never dropped. Per-section seconds come from the
report's own progress lines on stderr.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow as pa
from harness import BENCH, VENV_BIN, Server, free_port

from cases.query import write_table
from questlog_schemas import lake as layout

RUNS = 3
# bench/run.py runs this case once: its three runs (cold, then warm) are inside
REPEATS_INSIDE = True
RUN_TIMEOUT_S = 900
BASE = datetime(2026, 11, 1, tzinfo=UTC)  # where query.write_table starts its purchases
PURCHASE_STEP_MS = 50  # query.write_table's spacing of received_at
GUILDS = [(f"g-{k:02d}", f"Guild {k:02d}") for k in range(40)]
REASONS = ["malformed_json", "unknown_event_type", "schema_violation: price"]
TS = pa.timestamp("us", tz="UTC")
# The query service's settings `make run` sets beyond the port and lake (embedded/
# questlog_embedded/stack.py); workers and threads it leaves to gunicorn.conf.py (2 x 4).
MAKE_RUN_QUERY_ENV = {"QUESTLOG_QUERY_SNAPSHOT_TTL_S": "0.25"}

PROGRESS = re.compile(
    r"^\[report\] (\d+)/(\d+) (.*): (\d+) call\(s\), ([0-9.]+) s "
    r"\(total ([0-9.]+) s\)$"
)
WROTE = re.compile(r"^\[report\] wrote .* in ([0-9.]+) s$")


def split(events: int) -> dict[str, int]:
    """Rows per table for `events` events in all: 10% joins, 0.05% quarantined (>= 50)."""
    joins, quarantined = events // 10, max(50, events // 2000)
    return {
        "purchase_sword": events - joins - quarantined,
        "join_guild": joins,
        "quarantine": quarantined,
    }


def write_joins(table_uri: str, rows: int, span: timedelta) -> None:
    """join_guild rows in the lake contract's layout, spread over the purchases' span."""
    from deltalake import write_deltalake

    step = span / max(rows, 1)
    received = [BASE + step * j for j in range(rows)]
    guilds = [GUILDS[j % len(GUILDS)] for j in range(rows)]
    roles = ["member", "officer", None]
    batch = pa.table(
        {
            "event_id": pa.array([f"j{j:031x}" for j in range(rows)]),
            "event_type": pa.array(["join_guild"] * rows),
            "event_time": pa.array(received, TS),
            "received_at": pa.array(received, TS),
            "player_id": pa.array([f"player-{(j * 7) % 20000}" for j in range(rows)]),
            "session_id": pa.array([None] * rows, pa.string()),
            "host": pa.array([f"user{j % 200}.example.net" for j in range(rows)]),
            "user_agent": pa.array(["bench/1.0"] * rows),
            "accept": pa.array(["*/*"] * rows),
            "client_ip_hash": pa.array([None] * rows, pa.string()),
            "schema_version": pa.array([1] * rows, pa.int64()),
            "guild_id": pa.array([g[0] for g in guilds]),
            "guild_name": pa.array([g[1] for g in guilds]),
            "role": pa.array([roles[j % 3] for j in range(rows)], pa.string()),
            "kafka_partition": pa.array([j % 3 for j in range(rows)], pa.int32()),
            "kafka_offset": pa.array(range(rows), pa.int64()),
            "event_date": pa.array([r.date() for r in received], pa.date32()),
        }
    )
    write_deltalake(table_uri, batch, mode="append", partition_by=["event_date"])


def write_quarantine(table_uri: str, rows: int, span: timedelta) -> None:
    """quarantine rows in the lake contract's layout (partitioned by seen_date)."""
    from deltalake import write_deltalake

    step = span / max(rows, 1)
    seen = [BASE + step * k for k in range(rows)]
    reasons = [REASONS[k % len(REASONS)] for k in range(rows)]
    batch = pa.table(
        {
            "raw_value": pa.array(
                ["{not json" if r == "malformed_json" else '{"event_type":"x"}' for r in reasons]
            ),
            "raw_truncated": pa.array([False] * rows),
            "reason": pa.array(reasons),
            "topic": pa.array(["events"] * rows),
            "kafka_partition": pa.array([k % 3 for k in range(rows)], pa.int32()),
            "kafka_offset": pa.array(range(rows), pa.int64()),
            "kafka_timestamp": pa.array(seen, TS),
            "seen_at": pa.array(seen, TS),
            "seen_date": pa.array([s.date() for s in seen], pa.date32()),
        }
    )
    write_deltalake(table_uri, batch, mode="append", partition_by=["seen_date"])


def metrics_texts(tables: dict[str, int], lake_root: str) -> tuple[str, str]:
    """What the extractor's and the API's /metrics would say after writing `tables`, so
    /v1/pipeline scrapes two endpoints as it does under `make run`."""
    total = sum(tables.values())
    written = "".join(
        f'questlog_extractor_rows_written_total{{table="{t}"}} {n}\n' for t, n in tables.items()
    )
    extractor = (
        "# TYPE questlog_extractor_input_rows_total counter\n"
        f"questlog_extractor_input_rows_total {total}\n"
        "# TYPE questlog_extractor_rows_written_total counter\n"
        + written
        + "# TYPE questlog_extractor_duplicates_dropped_total counter\n"
        "questlog_extractor_duplicates_dropped_total 0\n"
        "# TYPE questlog_extractor_late_rows_dropped_total counter\n"
        "questlog_extractor_late_rows_dropped_total 0\n"
        "# TYPE questlog_extractor_offsets_behind_latest gauge\n"
        "questlog_extractor_offsets_behind_latest 0\n"
        "# TYPE questlog_extractor_last_batch_id gauge\n"
        "questlog_extractor_last_batch_id 5\n"
        "# TYPE questlog_extractor_info gauge\n"
        'questlog_extractor_info{topic="events",kafka_bootstrap="127.0.0.1:9092",'
        f'lake_root="{lake_root}",trigger_seconds="1",watermark="10 minutes"}} 1\n'
    )
    api = (
        "# TYPE questlog_api_events_accepted_total counter\n"
        f'questlog_api_events_accepted_total{{event_type="purchase_sword"}} '
        f"{tables['purchase_sword']}\n"
        f'questlog_api_events_accepted_total{{event_type="join_guild"}} {tables["join_guild"]}\n'
        "# TYPE questlog_api_events_rejected_total counter\n"
        'questlog_api_events_rejected_total{reason="invalid_event"} 0\n'
    )
    return extractor, api


class MetricsStub:
    """A fixed Prometheus text on 127.0.0.1, a free port, in a daemon thread."""

    def __init__(self, text: str) -> None:
        body = text.encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # http.server's name
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:  # one line per scrape is noise
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/metrics"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def parse_stderr(stderr: str) -> dict:
    """The report's progress lines: per-section seconds and calls, and its own total."""
    sections, expected, total = {}, None, None
    for line in stderr.splitlines():
        if m := PROGRESS.match(line.strip()):
            expected = int(m.group(2))
            sections[m.group(3)] = {"seconds": float(m.group(5)), "calls": int(m.group(4))}
        elif m := WROTE.match(line.strip()):
            total = float(m.group(1))
    return {"sections": sections, "sections_expected": expected, "report_total_s": total}


def run_report(base: str, out: Path) -> dict:
    """One `bin/report` run as a user types it; its wall time, what it wrote, its exit."""
    cmd = [str(BENCH.parent / "bin" / "report"), "--base-url", base, "--out", str(out)]
    started = time.perf_counter()
    code: int | str
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False
        )
        code, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        code, stdout = f"timeout after {RUN_TIMEOUT_S} s", ""
        stderr = exc.stderr.decode(errors="replace") if exc.stderr else ""
    wall = time.perf_counter() - started
    parsed = parse_stderr(stderr)
    lines = stdout.strip().splitlines()
    page = Path(lines[-1]) if lines else None
    written = page is not None and page.is_file()  # so page is set wherever written is
    md = page.parent / "report.md" if written else None  # type: ignore[union-attr]
    run = {
        "wall_s": round(wall, 2),
        "exit_code": code,
        "ok": code == 0 and written,
        "sections_built": len(parsed["sections"]),
        "sections_expected": parsed["sections_expected"],
        "sections_written": (
            sum(1 for ln in md.read_text().splitlines() if ln.startswith("## "))
            if md and md.exists()
            else 0
        ),
        "pngs": len(list(page.parent.glob("*.png"))) if written else 0,  # type: ignore[union-attr]
        "report_total_s": parsed["report_total_s"],
        "section_s": {t: s["seconds"] for t, s in parsed["sections"].items()},
        "section_calls": {t: s["calls"] for t, s in parsed["sections"].items()},
        "page": str(page) if written else None,
    }
    if parsed["report_total_s"] is not None:  # interpreter start, imports, healthz before it
        run["outside_report_total_s"] = round(wall - parsed["report_total_s"], 2)
    if not run["ok"]:
        run["stderr_tail"] = stderr[-2000:]
    return run


def summary(runs: list[dict]) -> dict:
    ok = [r for r in runs if r["ok"]]
    walls = [r["wall_s"] for r in ok]
    out = {
        "runs": len(runs),
        "failed": len(runs) - len(ok),
        "failed_exit_codes": [r["exit_code"] for r in runs if not r["ok"]],
        "cold_s": runs[0]["wall_s"] if runs[0]["ok"] else None,
        "cold_ok": runs[0]["ok"],
    }
    if walls:
        out.update(median_s=round(statistics.median(walls), 2), min_s=min(walls), max_s=max(walls))
    sections = {}
    for title in ok[0]["section_s"] if ok else {}:  # the report's own order
        times = [r["section_s"][title] for r in ok if title in r["section_s"]]
        sections[title] = {
            "cold_s": runs[0]["section_s"].get(title),
            "median_s": round(statistics.median(times), 2),
            "min_s": min(times),
            "max_s": max(times),
            "calls": ok[0]["section_calls"][title],
        }
    out["sections"] = sections
    return out


def run(ctx) -> dict:
    (events,) = ctx.sizes([1_000_000], [100_000])
    tables = split(events)
    lake = ctx.work / f"report-lake-{events}"
    span = timedelta(milliseconds=PURCHASE_STEP_MS * tables["purchase_sword"])
    started = time.monotonic()
    root = lake.as_uri()
    files = write_table(layout.table_uri(root, "purchase_sword"), tables["purchase_sword"])
    write_joins(layout.table_uri(root, "join_guild"), tables["join_guild"], span)
    write_quarantine(layout.table_uri(root, "quarantine"), tables["quarantine"], span)
    case = {
        "events": events,
        "tables": tables,
        "purchase_files": files,
        "write_seconds": round(time.monotonic() - started, 1),
    }
    extractor_text, api_text = metrics_texts(tables, lake.as_uri())
    stubs = [MetricsStub(extractor_text), MetricsStub(api_text)]
    port = free_port()
    env = dict(
        os.environ,
        PATH=f"{VENV_BIN}:{os.environ['PATH']}",
        QUESTLOG_QUERY_LAKE_ROOT=lake.as_uri(),
        QUESTLOG_QUERY_PORT=str(port),
        QUESTLOG_QUERY_LOG_LEVEL="WARNING",
        QUESTLOG_QUERY_EXTRACTOR_METRICS_URL=stubs[0].url,
        QUESTLOG_QUERY_API_METRICS_URL=stubs[1].url,
        **MAKE_RUN_QUERY_ENV,
    )
    # With no .pyc to read or write, each run compiles matplotlib and numpy from source
    # (~2.3 s of an 8 s run on this machine): say so next to the figures.
    case["bytecode_writes_disabled"] = bool(os.environ.get("PYTHONDONTWRITEBYTECODE"))
    case["service"] = {
        "workers": env.get("QUESTLOG_QUERY_WORKERS", "2 (gunicorn.conf.py)"),
        "threads": env.get("QUESTLOG_QUERY_THREADS", "4 (gunicorn.conf.py)"),
        **MAKE_RUN_QUERY_ENV,
    }
    out = ctx.work / "report-out"
    try:
        with Server(
            "questlog query",
            [
                str(VENV_BIN / "gunicorn"),
                "-c",
                str(BENCH.parent / "services/query/gunicorn.conf.py"),
                "questlog_query:create_app()",
            ],
            env,
            f"http://127.0.0.1:{port}/healthz",
            ctx.work / f"report-query-{port}.log",
        ):
            base = f"http://127.0.0.1:{port}"
            case["command"] = f"bin/report --base-url {base} --out {out}/run-<n>"
            runs = []
            for n in range(1, RUNS + 1):
                runs.append(run_report(base, out / f"run-{n}"))
                print(
                    f"[bench] report run {n}: {runs[-1]['wall_s']} s, exit {runs[-1]['exit_code']}",
                    flush=True,
                )
    finally:
        for stub in stubs:
            stub.stop()
    case["runs"] = runs
    case["summary"] = summary(runs)
    if not any(r["ok"] for r in runs):
        raise RuntimeError(f"every bin/report run failed: {runs[-1].get('stderr_tail')}")
    if any(r["ok"] and r["sections_built"] != r["sections_expected"] for r in runs):
        raise RuntimeError(
            "bin/report's progress lines no longer match PROGRESS: "
            "per-section times would be missing"
        )
    return case


def ratios(r: dict) -> dict:
    s = r["summary"]
    ok = [x for x in r["runs"] if x["ok"]]
    out = {
        "report_events": r["events"],
        "report_median_s": s.get("median_s"),
        "report_min_s": s.get("min_s"),
        "report_max_s": s.get("max_s"),
        "report_cold_s": s["cold_s"],
        "report_runs_failed": s["failed"],
        "report_sections": ok[0]["sections_written"],
        "report_pngs": ok[0]["pngs"],
    }
    if s["sections"]:
        slowest = max(s["sections"], key=lambda t: s["sections"][t]["median_s"])
        out["report_slowest_section"] = slowest
        out["report_slowest_section_median_s"] = s["sections"][slowest]["median_s"]
    return out
