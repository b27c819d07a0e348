"""T3: the extractor's driver SIGKILLed at chosen points of a batch, under load.

Each life of the driver runs with the writer's test-only pause set to one of two points,
chosen from the seed: ``between-tables`` (one table holds the batch, the other not yet)
and ``after-commits`` (every table holds it, Spark's checkpoint has not recorded it). The
driver logs the pause, the scenario SIGKILLs its process group there (Python driver and
JVM), and starts the next life, which must replay that batch and have the Delta
transaction ids absorb it ("batch already committed, skipped" in its log, and the
skip counter on its /metrics). After the last kill a ``--once`` driver drains the topic.

Stored must equal accepted exactly once: ``count(*)`` and ``count(distinct event_id)``
through the query service's POST /v1/sql and again with deltalake, against the event ids
Kafka acknowledged. The line also says what a naive reader (a glob over the tables'
Parquet files) would have counted.
"""

from __future__ import annotations

import random
import time

import pytest

from questlog_chaos.extractor_rig import (
    PAUSE_VARIABLE,
    QUARANTINE,
    SKIP_METRIC,
    Driver,
    Producer,
    check_exactly_once,
    delta_counts,
    event_ids,
    extractor_env,
    free_port,
    naive_count,
    new_topic,
    sql_counts,
)
from questlog_chaos.report import Result, spread

POINTS = ("between-tables", "after-commits")


def kill_points(rng: random.Random, kills: int) -> list[str]:
    """``kills`` pause points, each point at least once, in a seeded order."""
    points = [POINTS[i % len(POINTS)] for i in range(kills)]
    rng.shuffle(points)
    return points


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.sabotage("extractor_no_txn")
def test_t03_driver_sigkilled_at_chosen_points_stores_each_event_once(
    kafka, tmp_path, scale, record, sabotage_env
):
    rng = random.Random(scale.seed)
    kills = scale.pick(5, 8)
    points = kill_points(rng, kills)
    topic = new_topic(kafka)
    lake = tmp_path / "lake"
    base_env = extractor_env(
        kafka.bootstrap, topic, lake, max_offsets=scale.pick(1000, 4000), extra=sabotage_env
    )
    producer = Producer(
        kafka.bootstrap, topic, seed=scale.seed, tag="t03", chunk=scale.pick(10, 200), every_s=0.5
    ).start()
    result = Result("T3", "extractor driver SIGKILLed at chosen points")
    lives: list[Driver] = []
    killed: list[tuple[str, int]] = []  # (point, batch id) of each kill
    skip_metric: list[float] = []  # skip counter of each restarted life, read at its pause
    restart_s: list[float] = []  # start of a life -> its pause (JVM start, replay, a batch)
    next_batch = 0
    try:
        for i, point in enumerate(points):
            env = {
                **base_env,
                PAUSE_VARIABLE: f"{point}@{next_batch}",
                "QUESTLOG_EXTRACTOR_METRICS_PORT": str(free_port()),
            }
            started = time.monotonic()
            driver = Driver(env, tmp_path / f"extractor-{i}.log").start()
            lives.append(driver)
            try:
                paused_at, batch = driver.wait_for_pause(timeout_s=900)
                restart_s.append(time.monotonic() - started)
                if i:
                    skip_metric.append(driver.metric(SKIP_METRIC))
            finally:
                driver.kill()
            assert paused_at == point, (paused_at, point)
            killed.append((point, batch))
            next_batch = batch + 1
        producer.stop()
        drain = Driver(base_env, tmp_path / "drain.log", "--once").start()
        lives.append(drain)
        assert drain.wait(timeout_s=900) == 0, "the draining driver failed" + drain.tail()
    finally:
        producer.stop()
        for driver in lives:
            driver.kill()

    # Each kill's batch must come back in the next life and be skipped where committed.
    absorbed = [
        any(b == batch for _, b in lives[i + 1].skipped()) for i, (_, batch) in enumerate(killed)
    ]
    accepted = producer.accepted
    sql = sql_counts(lake)
    delta = delta_counts(lake)
    stored = set(event_ids(lake))
    naive = naive_count(lake)
    quarantined = delta_counts(lake, (QUARANTINE,)).rows

    result.load = (
        f"{len(accepted):,} events acked by Kafka ({producer.sent - len(accepted)}"
        f" resent), {len(lives)} driver lives"
    )
    result.faults = f"{kills} SIGKILLs of the driver's group at " + ", ".join(
        f"{p} b{b}" for p, b in killed
    )
    result.lost = len(accepted - stored)
    result.duplicates = max(sql.duplicates, delta.duplicates)
    result.figures = {
        "stored (SQL count/distinct)": f"{sql.rows}/{sql.distinct}",
        "stored (deltalake count/distinct)": f"{delta.rows}/{delta.distinct}",
        "replays absorbed (log)": f"{sum(absorbed)}/{kills}",
        "skip metric at next pause": str([int(v) for v in skip_metric]),
        "restart to pause": spread(restart_s, " s", 1),
        "naive reader": f"{naive.rows} rows in {naive.files} files ({naive.orphans}"
        f" orphans, {naive.unreadable} unreadable)",
    }
    result.check(not producer.errors, f"producer errors: {producer.errors[:3]}")
    check_exactly_once(result, sql, delta, stored, accepted)
    result.check(quarantined == 0, f"{quarantined} rows quarantined")
    result.check(
        all(absorbed),
        f"kills whose replay no skip absorbed: "
        f"{[k for k, ok in zip(killed, absorbed, strict=True) if not ok]}",
    )
    result.check(
        all(v >= 1 for v in skip_metric), f"skip metric of a restarted life stayed 0: {skip_metric}"
    )
    record(result)
