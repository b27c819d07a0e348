"""Cost over time: the query endpoints after a simulated stretch of a day of streaming
micro-batches, with and without maintenance, against the same rows freshly compacted.

Streaming commits one small file per table, partition and micro-batch; nothing merges
them unless compaction runs. This case appends `batches` micro-batches (one per
`BATCH_EVERY` of simulated time) with the extractor's own delta-rs writer
(`DeltaRsWriter.write_arrow`: one append per table per micro-batch, partitioned by
event_date, with its transaction id), `PURCHASES_PER_BATCH` purchases and
`JOINS_PER_BATCH` guild joins each, into two lakes:

- `nomaint`: nothing compacts; every micro-batch's file stays.
- `maint`: `compact_table` over both tables every `COMPACT_EVERY_BATCHES` batches (the
  300 s of `make run`'s compaction loop, in simulated time), left just before the pass
  that would come next: the most small files maintenance lets pile up. Its vacuum keeps
  no removed file (retention 0): simulated time runs far ahead of the wall clock, so a
  wall-clock hour would keep every file the day ever removed, and no reader runs
  meanwhile.
- `compacted`: a copy of `nomaint` after one full compaction, the reference.

How much of a day: `FULL_BATCHES` (a twelfth: two hours) in the full bench, a 48th in a
quick run, or `QUESTLOG_BENCH_DAY_BATCHES` (17280 is a whole day). Not a whole day by
default because without maintenance the writer itself slows down: each delta-rs append
costs more the more files the table holds, so the `nomaint` lake of a whole day takes
hours to write on a small machine; the result names the fraction simulated and how the
appends' cost grew (`written.append_*`).

The three are served side by side (`cases.endpoints.QueryService`, `make run`'s config)
and every endpoint of `cases.endpoints` is timed on each in turn, endpoint by endpoint,
so a busy moment of the machine falls on all three alike; the answers must be the same
on all three (the same rows). Failed requests are counted, never dropped.

Last, "KPI endpoints while micro-batches keep committing": on a fresh copy of `maint`,
a thread in this process commits one micro-batch a second of `LOAD_ROWS_PER_TABLE` rows
into each table (what the extractor commits while `make load` drives the API), with a
compaction pass every `COMPACT_EVERY_S` if the phase lasts that long, while one client
asks the KPI endpoints in turn every `LOAD_ROUND_EVERY_S`, `LOAD_REQUESTS` times each
after a cold round; median and p95 per endpoint.

The lakes are written once per bench session and reused by the later runs.

Usage::

    bench/run.py --quick --only day
    QUESTLOG_BENCH_DAY_BATCHES=17280 bench/run.py --only day   # a whole day
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import threading
import time
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path

from cases import endpoints as ep

BATCH_EVERY = timedelta(seconds=5)
BATCHES_PER_DAY = int(timedelta(days=1) / BATCH_EVERY)
FULL_BATCHES = BATCHES_PER_DAY // 12
QUICK_BATCHES = BATCHES_PER_DAY // 48
BATCHES_VARIABLE = "QUESTLOG_BENCH_DAY_BATCHES"
PURCHASES_PER_BATCH = 100
JOINS_PER_BATCH = 20
COMPACT_EVERY_S = 300
COMPACT_EVERY_BATCHES = int(timedelta(seconds=COMPACT_EVERY_S) / BATCH_EVERY)
STATES = ("nomaint", "maint", "compacted")
APP_ID = "questlog-bench/day"
LOAD_ROWS_PER_TABLE = 20
LOAD_REQUESTS = 30
LOAD_ROUND_EVERY_S = 2  # the dashboard's refresh: requests fall at every moment between commits
# the load phase's per-minute window ends this far past the day, so it takes in the
# micro-batches arriving during the phase, as a live dashboard's last hour does
LOAD_WINDOW_AHEAD = timedelta(minutes=5)


def writer(lake: Path):
    """The extractor's delta-rs writer on ``lake`` (Kafka is never touched)."""
    from questlog_extractor.settings import Settings
    from questlog_extractor.writers import DeltaRsWriter

    return DeltaRsWriter(Settings(kafka_bootstrap="unused", lake_root=lake.as_uri()))


def append_batch(
    target,
    batch: int,
    purchases: tuple[int, int],
    joins: tuple[int, int],
    start,
    step_purchases: timedelta,
    step_joins: timedelta,
) -> None:
    """One micro-batch: ``(first row, rows)`` of each table, received from ``start``."""
    target.write_arrow(
        ep.purchase_rows(purchases[0], purchases[1], start, step_purchases),
        "purchase_sword",
        batch,
        APP_ID,
        "event_date",
    )
    target.write_arrow(
        ep.join_rows(joins[0], joins[1], start, step_joins),
        "join_guild",
        batch,
        APP_ID,
        "event_date",
    )


def compact_pass(lake: Path, retain_hours: int) -> float:
    """One compaction pass over both tables, as `make run`'s loop runs it; its seconds."""
    from questlog_extractor.compact import compact_table

    started = time.perf_counter()
    for table in ep.TABLES:
        compact_table(ep.table_uri(lake, table), retain_hours)
    return time.perf_counter() - started


def spread(seconds: list[float]) -> dict:
    """Total, and the median append of the first and the last tenth (does it grow?)."""
    tenth = max(1, len(seconds) // 10)
    return {
        "total_s": round(sum(seconds), 1),
        "median_ms_first_tenth": round(statistics.median(seconds[:tenth]) * 1000, 1),
        "median_ms_last_tenth": round(statistics.median(seconds[-tenth:]) * 1000, 1),
    }


def files_per_table(lake: Path) -> dict[str, int]:
    return {table: len(ep.committed_files(ep.table_uri(lake, table))) for table in ep.TABLES}


def write_day(root: Path, batches: int) -> dict:
    """The three lakes after ``batches`` micro-batches, and what writing them took."""
    lakes = {state: root / state for state in STATES}
    writers = {state: writer(lakes[state]) for state in ("nomaint", "maint")}
    appends: dict[str, list[float]] = {"nomaint": [], "maint": []}
    passes: list[float] = []
    step_purchases = BATCH_EVERY / PURCHASES_PER_BATCH
    step_joins = BATCH_EVERY / JOINS_PER_BATCH
    started = time.monotonic()
    for batch in range(batches):
        at = ep.BASE + BATCH_EVERY * batch
        rows = (
            (batch * PURCHASES_PER_BATCH, PURCHASES_PER_BATCH),
            (batch * JOINS_PER_BATCH, JOINS_PER_BATCH),
        )
        for state, target in writers.items():
            t = time.perf_counter()
            append_batch(target, batch, *rows, at, step_purchases, step_joins)
            appends[state].append(time.perf_counter() - t)
        done = batch + 1
        if done % COMPACT_EVERY_BATCHES == 0 and done < batches:
            passes.append(compact_pass(lakes["maint"], 0))
        if done % max(1, batches // 12) == 0:
            print(
                f"[bench] day: {done:,}/{batches:,} micro-batches written "
                f"({time.monotonic() - started:.0f} s)",
                flush=True,
            )
    shutil.copytree(lakes["nomaint"], lakes["compacted"])
    compacted_s = compact_pass(lakes["compacted"], 0)
    return {
        "append_nomaint": spread(appends["nomaint"]),
        "append_maint": spread(appends["maint"]),
        "compaction_passes_maint": len(passes),
        "compaction_s_maint": round(sum(passes), 1),
        "compaction_s_maint_last_pass": round(passes[-1], 2) if passes else None,
        "compaction_s_fresh": round(compacted_s, 2),
        "write_wall_s": round(time.monotonic() - started, 1),
    }


def day_lakes(work: Path, batches: int) -> tuple[Path, dict]:
    """The day's lakes under ``work``, written once per bench session."""
    root = work / f"day-{batches}"
    done = root / "written.json"
    if done.exists():
        return root, dict(json.loads(done.read_text()), written_now=False)
    shutil.rmtree(root, ignore_errors=True)  # an earlier attempt that did not finish
    info = write_day(root, batches)
    info["files"] = {state: files_per_table(root / state) for state in STATES}
    done.write_text(json.dumps(info))
    return root, dict(info, written_now=True)


def measure_states(ctx, root: Path, end) -> dict:
    """Every endpoint on the three lakes, served side by side, endpoint by endpoint."""
    out: dict[str, dict] = {}
    with ExitStack() as stack:
        services = {
            state: stack.enter_context(ep.QueryService(root / state, ctx.work, f"day-{state}"))
            for state in STATES
        }
        for endpoint in ep.endpoints(end):
            figures: dict = {"request": endpoint.request}
            answers = {}
            for state, service in services.items():
                figures[state], answers[state] = ep.rest_series(
                    service.base, service.token, endpoint
                )
            figures["same_answer"] = answers["compacted"] is not None and all(
                a == answers["compacted"] for a in answers.values()
            )
            for state in ("nomaint", "maint"):
                figures[f"{state}_vs_compacted"] = ep.ratio(
                    figures[state]["warm_median_ms"], figures["compacted"]["warm_median_ms"]
                )
            out[endpoint.name] = figures
            print(
                f"[bench] day {endpoint.name}: "
                + ", ".join(f"{s} {figures[s]['warm_median_ms']} ms" for s in STATES),
                flush=True,
            )
    return out


class MicroBatches(threading.Thread):
    """One micro-batch a second into each table, a compaction pass every
    `COMPACT_EVERY_S`; commit times and failures kept."""

    def __init__(self, lake: Path, first_batch: int, first_rows: tuple[int, int], start) -> None:
        super().__init__(daemon=True)
        self.lake, self.first_batch, self.first_rows, self.start_at = (
            lake,
            first_batch,
            first_rows,
            start,
        )
        self.stopping = threading.Event()
        self.commit_s: list[float] = []
        self.passes: list[float] = []
        self.failures: list[str] = []

    def run(self) -> None:
        from questlog_extractor.compact import DEFAULT_RETAIN_HOURS

        target = writer(self.lake)
        step = timedelta(seconds=1) / LOAD_ROWS_PER_TABLE
        began = last_pass = time.monotonic()
        k = 0
        while not self.stopping.wait(max(0.0, began + k - time.monotonic())):
            rows = (self.first_rows[0] + k * LOAD_ROWS_PER_TABLE, LOAD_ROWS_PER_TABLE)
            joins = (self.first_rows[1] + k * LOAD_ROWS_PER_TABLE, LOAD_ROWS_PER_TABLE)
            t = time.perf_counter()
            try:
                append_batch(
                    target,
                    self.first_batch + k,
                    rows,
                    joins,
                    self.start_at + timedelta(seconds=k),
                    step,
                    step,
                )
                self.commit_s.append(time.perf_counter() - t)
            except Exception as exc:  # counted in the result; the stream goes on
                self.failures.append(f"{type(exc).__name__}: {str(exc)[:300]}")
            k += 1
            if time.monotonic() - last_pass >= COMPACT_EVERY_S:
                self.passes.append(compact_pass(self.lake, DEFAULT_RETAIN_HOURS))
                last_pass = time.monotonic()


def kpis_while_committing(ctx, root: Path, batches: int, end) -> dict:
    """The KPI endpoints on a copy of the maintained lake while micro-batches arrive."""
    lake = root / f"load-{time.time_ns()}"
    shutil.copytree(root / "maint", lake)
    kpis = [e for e in ep.endpoints(end + LOAD_WINDOW_AHEAD) if e.kpi]
    stream = MicroBatches(
        lake, batches, (batches * PURCHASES_PER_BATCH, batches * JOINS_PER_BATCH), end
    )
    samples: dict[str, list[float]] = {e.name: [] for e in kpis}
    failures: dict[str, list[str]] = {e.name: [] for e in kpis}
    cold: dict[str, float | None] = {}
    try:
        with ep.QueryService(lake, ctx.work, "day-load") as service:
            clients = {e.name: ep.Client(service.base) for e in kpis}
            stream.start()
            phase_started = time.monotonic()
            for round_ in range(LOAD_REQUESTS + 1):  # the first round is each one's cold
                time.sleep(max(0.0, phase_started + round_ * LOAD_ROUND_EVERY_S - time.monotonic()))
                for e in kpis:
                    t = time.perf_counter()
                    try:
                        clients[e.name].call(e, service.token)
                    except Exception as exc:  # counted in the result
                        failures[e.name].append(f"{type(exc).__name__}: {str(exc)[:300]}")
                        continue
                    elapsed = time.perf_counter() - t
                    if round_ == 0:
                        cold[e.name] = elapsed
                    else:
                        samples[e.name].append(elapsed)
            phase_s = time.monotonic() - phase_started
            stream.stopping.set()
            stream.join(timeout=120)
            for client in clients.values():
                client.close()
    finally:
        stream.stopping.set()
        shutil.rmtree(lake, ignore_errors=True)
    return {
        "what": "KPI endpoints while micro-batches keep committing: one micro-batch a "
        f"second of {LOAD_ROWS_PER_TABLE} rows into each table, from a thread of "
        "the bench, on a copy of the maintained lake; one client asks the KPI "
        f"endpoints in turn every {LOAD_ROUND_EVERY_S} s",
        "phase_s": round(phase_s, 1),
        "micro_batches_committed": len(stream.commit_s),
        "commit_failures": len(stream.failures),
        "first_commit_failure": stream.failures[0] if stream.failures else None,
        "commit_median_ms": (
            round(statistics.median(stream.commit_s) * 1000, 1) if stream.commit_s else None
        ),
        "compaction_passes": len(stream.passes),
        "endpoints": {
            e.name: dict(
                ep.summary(samples[e.name], cold.get(e.name), failures[e.name], LOAD_REQUESTS + 1),
                request=e.request,
            )
            for e in kpis
        },
    }


def run(ctx) -> dict:
    (batches,) = ctx.sizes([FULL_BATCHES], [QUICK_BATCHES])
    batches = int(os.environ.get(BATCHES_VARIABLE) or batches)
    root, written = day_lakes(ctx.work, batches)
    end = ep.BASE + BATCH_EVERY * batches
    return {
        "batches": batches,
        "fraction_of_day": round(batches / BATCHES_PER_DAY, 4),
        "batch_every_s": BATCH_EVERY.total_seconds(),
        "purchases_per_batch": PURCHASES_PER_BATCH,
        "joins_per_batch": JOINS_PER_BATCH,
        "compact_every_batches": COMPACT_EVERY_BATCHES,
        "maint_batches_since_last_pass": (
            batches - COMPACT_EVERY_BATCHES * ((batches - 1) // COMPACT_EVERY_BATCHES)
        ),
        "warm_requests": ep.WARM_REQUESTS,
        "written": written,
        "endpoints": measure_states(ctx, root, end),
        "under_load": kpis_while_committing(ctx, root, batches, end),
    }


def ratios(r: dict) -> dict:
    figures = r["endpoints"]
    load = r["under_load"]
    written = r["written"]
    out: dict[str, float | int | None] = {
        "day_batches": r["batches"],
        "day_fraction_of_day": r["fraction_of_day"],
        "day_purchases_per_batch": r["purchases_per_batch"],
        "day_joins_per_batch": r["joins_per_batch"],
        "day_maint_batches_since_last_pass": r["maint_batches_since_last_pass"],
        "day_write_s_nomaint": written["append_nomaint"]["total_s"],
        "day_write_s_maint": written["append_maint"]["total_s"],
        "day_compaction_s_maint": written["compaction_s_maint"],
        "day_compaction_passes_maint": written["compaction_passes_maint"],
        "day_failures": sum(f[s]["failures"] for f in figures.values() for s in STATES),
        "day_answers_differ": sum(not f["same_answer"] for f in figures.values()),
        "day_load_failures": sum(e["failures"] for e in load["endpoints"].values()),
        "day_load_commit_failures": load["commit_failures"],
        "day_load_micro_batches": load["micro_batches_committed"],
    }
    for state in STATES:
        for table, files in written["files"][state].items():
            out[f"day_files_{table}_{state}"] = files
    for name, f in figures.items():
        for state in STATES:
            out[f"day_{name}_ms_{state}"] = f[state]["warm_median_ms"]
        out[f"day_{name}_maint_vs_compacted"] = f["maint_vs_compacted"]
        out[f"day_{name}_nomaint_vs_compacted"] = f["nomaint_vs_compacted"]
    for state in ("maint", "nomaint"):
        values = [f[f"{state}_vs_compacted"] for f in figures.values()]
        # an endpoint without a figure (every request failed) leaves the worst unknown
        out[f"day_worst_{state}_vs_compacted"] = None if None in values else max(values)
    for name, e in load["endpoints"].items():
        out[f"day_load_{name}_median_ms"] = e["warm_median_ms"]
        out[f"day_load_{name}_p95_ms"] = e["warm_p95_ms"]
    return out
