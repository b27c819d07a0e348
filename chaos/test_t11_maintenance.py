"""T11: OPTIMIZE and VACUUM while the stream writes, with retention 0 so files really are
deleted: no row is lost or doubled, and the query service (polled without pause over the
same lake) never errors.

The extractor's stream runs in this process; maintenance (`maintain`, what
``python -m questlog_extractor maintain`` runs) runs several times on the same Spark
session while events keep arriving; the real query service answers /v1/tables,
/v1/stats/counts and POST /v1/sql throughout. Sabotage ``maint_unsafe`` makes VACUUM delete
every file a stale (pre-compaction) snapshot does not list, the current snapshot's too.
"""

from __future__ import annotations

import random
import threading
import time

import pytest

from questlog_chaos.lake_rig import (
    TABLES,
    LakeRig,
    Poller,
    QueryService,
    exactly_once,
    local_path,
    make_events,
    parquet_files,
    wait_for,
)
from questlog_chaos.report import Result, spread

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def live_files_missing(rig: LakeRig) -> int:
    """Files the tables' current versions list that are not on disk."""
    from deltalake import DeltaTable

    missing = 0
    for table in TABLES:
        for uri in DeltaTable(rig.uri(table)).file_uris():
            if not local_path(uri).is_file():
                missing += 1
    return missing


@pytest.mark.sabotage("maint_unsafe")
def test_t11_optimize_and_vacuum_at_retention_zero_while_the_stream_writes(
    sabotaged, scale, record, kafka, spark, tmp_path
):
    from questlog_extractor.maintain import maintain

    rng = random.Random(scale.seed)
    total = scale.pick(800, 6000)
    rounds = scale.pick(2, 4)
    chunk = 40
    tag = f"t11-{scale.seed}-{rng.randrange(10**6)}"
    events = make_events(total, tag)
    result = Result(
        "T11",
        "OPTIMIZE + VACUUM (retention 0) while the stream writes",
        load=f"{total:,} events in chunks of {chunk} straight to Kafka",
        faults=f"{rounds} maintenance runs (OPTIMIZE + VACUUM retain 0 h)",
    )
    rig = LakeRig(kafka, spark, tmp_path, max_offsets_per_trigger=150, vacuum_retain_hours=0)
    query = QueryService(rig.settings.lake_root, tmp_path / "query.log")
    poller = Poller(query)
    acked: list[str] = []
    feed_errors: list[str] = []
    stop_feeding = threading.Event()

    def feed() -> None:
        for i in range(chunk * 3, total, chunk):
            if stop_feeding.is_set():
                return
            part = events[i : i + chunk]
            try:
                rig.produce_events(part)
            except Exception as exc:  # counted: the scenario is not about Kafka
                feed_errors.append(f"{type(exc).__name__}: {exc}")
                continue
            acked.extend(e["event_id"] for e in part)
            time.sleep(rng.uniform(0.1, 0.4))

    feeder = threading.Thread(target=feed, name="t11-feeder", daemon=True)
    durations: list[float] = []
    deleted: list[int] = []
    compacted: list[int] = []
    disk: list[tuple[int, int]] = []
    try:
        rig.start()
        rig.produce_events(events[: chunk * 3])
        acked.extend(e["event_id"] for e in events[: chunk * 3])
        wait_for(lambda: all(rig.count(t) for t in TABLES), 240, "the first rows in both tables")
        query.start()
        poller.start()
        feeder.start()
        for _ in range(rounds):
            time.sleep(rng.uniform(1.0, 3.0))
            before = sum(len(parquet_files(rig.uri(t))) for t in TABLES)
            started = time.monotonic()
            try:
                done = maintain(spark, rig.settings)
            except Exception as exc:
                result.check(False, f"maintain failed: {type(exc).__name__}: {str(exc)[:300]}")
                break
            durations.append(time.monotonic() - started)
            after = sum(len(parquet_files(rig.uri(t))) for t in TABLES)
            disk.append((before, after))
            deleted.append(sum(d.get("files_deleted", 0) for d in done.values()))
            compacted.append(sum(d.get("files_removed", 0) for d in done.values()))
        feeder.join(timeout=300)
        stop_feeding.set()
        result.check(not feeder.is_alive(), "the feeder did not finish within 300 s")
        result.check(not feed_errors, f"{len(feed_errors)} produce failures: {feed_errors[:2]}")
        try:
            wait_for(lambda: rig.stored() >= len(acked), 240, "every acknowledged event")
        except AssertionError as exc:
            result.check(False, str(exc))
        time.sleep(2 * 1.0)  # the poller sees the drained tables too (snapshot TTL 1 s)
        poller.stop()
        alive, failure = rig.alive()
        result.check(alive, f"the stream stopped: {failure}")

        try:
            ids = rig.event_ids()
            result.lost, result.duplicates = exactly_once(ids, set(acked))
            extra = len(set(ids) - set(acked))
            result.check(extra == 0, f"{extra} rows that were never sent")
            missing = live_files_missing(rig)
            result.check(missing == 0, f"{missing} files of the current snapshots are gone")
        except Exception as exc:
            result.lost = len(acked)
            result.check(
                False, f"the tables cannot be read: {type(exc).__name__}: {str(exc)[:300]}"
            )
        try:
            answer = query.sql(
                " UNION ALL ".join(
                    f"SELECT '{t}' AS t, count(*) AS n, count(DISTINCT event_id) AS d FROM {t}"
                    for t in TABLES
                )
            )
            if answer.status_code == 200:
                rows = answer.json()["rows"]
                n = sum(r["n"] if isinstance(r, dict) else r[1] for r in rows)
                d = sum(r["d"] if isinstance(r, dict) else r[2] for r in rows)
                result.check(
                    n == d == len(acked),
                    f"query service counts {n} rows, {d} distinct, {len(acked)} accepted",
                )
            else:
                result.check(False, f"final SQL count: {answer.status_code} {answer.text[:300]}")
        except Exception as exc:
            result.check(False, f"final SQL count failed: {type(exc).__name__}: {exc}")
    finally:
        stop_feeding.set()
        poller.stop()
        query.stop()
        rig.stop()

    result.errors_5xx = poller.errors_5xx
    result.inputs = f"{poller.total:,} query-service requests during maintenance"
    result.check(
        not poller.errors, f"{len(poller.errors)} query-service errors, e.g. {poller.errors[:3]}"
    )
    result.check(len(durations) == rounds, f"{len(durations)} of {rounds} maintenance runs done")
    result.check(sum(compacted) > 0, "OPTIMIZE compacted nothing")
    result.check(sum(deleted) > 0, "VACUUM deleted nothing")
    result.check(any(a < b for b, a in disk), f"no run lowered the files on disk: {disk}")
    result.figures = {
        "maintain run": spread(durations, " s", 1),
        "files compacted": str(sum(compacted)),
        "files deleted by VACUUM": str(sum(deleted)),
        "parquet on disk before/after each run": ", ".join(f"{b}->{a}" for b, a in disk),
        "answers": ", ".join(f"{k}: {v}" for k, v in sorted(poller.answers.items())),
    }
    record(result)
