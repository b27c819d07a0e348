"""T13: the lake's file system fills up while the extractor runs, then space returns.

The tables live on a small tmpfs of their own (mounted at ``<lake>/tables``); the
checkpoint stays on the ordinary disk beside it, as when tables and checkpoint sit on
separate volumes. That is the harder case: with the checkpoint on the full file system
too, Spark fails at its own offset log before a batch runs, and the writer's handling of
a failed table write never matters.

Under a steady producer the scenario fills the tmpfs with a ballast file, then checks:
no table commits while it is full (versions frozen), the driver fails the batch (ENOSPC
in its log) and is restarted like a supervisor would, Kafka lag grows; after the ballast
is deleted the extractor catches up, and stored equals accepted exactly once (SQL through
the query service and deltalake), and every version of every table still loads.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from questlog_chaos.extractor_rig import (
    TABLES,
    Producer,
    Supervisor,
    check_exactly_once,
    delta_counts,
    end_offsets,
    event_ids,
    every_version_reads,
    extractor_env,
    kafka_lag,
    naive_count,
    new_topic,
    sql_counts,
    versions,
)
from questlog_chaos.report import Result, spread

ENOSPC = "No space left on device"
SIZE_MB = 32


def mount_tmpfs(where: Path, size_mb: int) -> None:
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")


def unmount(where: Path) -> None:
    if subprocess.run(["umount", str(where)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def fill(ballast: Path) -> int:
    """Write ``ballast`` until the file system refuses a byte; returns bytes written."""
    written = 0
    with ballast.open("wb", buffering=0) as out:
        for size in (1 << 20, 4096, 1):
            try:
                while True:
                    written += out.write(b"\0" * size)
            except OSError as exc:
                if exc.errno != 28:  # ENOSPC
                    raise
    return written


def wait_until(
    what: str, ok, timeout_s: float, every_s: float = 0.5, required: bool = True
) -> float | None:
    """Poll ``ok()`` until true; seconds it took. On timeout: fails naming ``what``, or
    returns None when not ``required``."""
    started = time.monotonic()
    while not ok():
        if time.monotonic() - started > timeout_s:
            if not required:
                return None
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(every_s)
    return time.monotonic() - started


def spark_read_to(supervisor: Supervisor, ends: dict[int, int]) -> bool:
    """The driver's own progress log says a finished batch read every partition up to
    ``ends`` (what ends the wait when events were lost and the counts never meet)."""
    reached: dict[int, int] = {}
    for driver in supervisor.lives:
        for r in driver.records():
            offsets = r.get("end_offset") if r.get("msg") == "batch progress" else None
            if isinstance(offsets, str):  # logged as str() of the progress's dict
                offsets = ast.literal_eval(offsets)
            for parts in (offsets or {}).values():
                for part, n in parts.items():
                    reached[int(part)] = max(reached.get(int(part), 0), int(n))
    return all(reached.get(part, 0) >= n for part, n in ends.items())


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.sabotage("extractor_skip_failed")
def test_t13_lake_disk_full_stops_commits_then_catches_up_exactly_once(
    kafka, tmp_path, scale, record, sabotage_env
):
    topic = new_topic(kafka)
    lake = tmp_path / "lake"
    small = lake / "tables"
    logs = tmp_path / "logs"
    logs.mkdir()
    mount_tmpfs(small, size_mb=SIZE_MB)
    result = Result("T13", "lake file system full, then freed")
    full_s = scale.pick(15, 30)
    producer = Producer(
        kafka.bootstrap, topic, seed=scale.seed, tag="t13", chunk=scale.pick(10, 200), every_s=0.5
    ).start()
    supervisor = Supervisor(
        extractor_env(kafka.bootstrap, topic, lake, extra=sabotage_env), logs
    ).start()
    to_fail: list[float] = []  # fill -> first driver failure, per cycle
    to_resume: list[float] = []  # ballast deleted -> first new commit, per cycle
    cycles: list[str] = []
    try:
        frozen = {t: 0 for t in TABLES}
        for cycle in range(scale.runs):
            wait_until(
                "a commit to each table",
                lambda f=frozen: all(v >= f[t] + 1 for t, v in versions(lake).items()),
                timeout_s=900,
            )
            lag_at_fill = kafka_lag(kafka.bootstrap, topic, lake)
            ballast = small / "ballast"
            filled_at = time.monotonic()
            ballast_mb = fill(ballast) / 2**20
            # The next batch fails; its driver exits and is restarted (or never fails: the
            # check below says so, the counts say what that cost).
            failed = wait_until(
                "a driver to fail on the full file system",
                lambda t0=filled_at: any(t > t0 for t, _ in supervisor.exits),
                timeout_s=max(full_s, 300),
                required=False,
            )
            if failed is not None:
                to_fail.append(failed)
            frozen = versions(lake)
            time.sleep(max(0.0, full_s - (time.monotonic() - filled_at)))
            at_free = versions(lake)
            lag_at_free = kafka_lag(kafka.bootstrap, topic, lake)
            failures = sum(1 for t, _ in supervisor.exits if t > filled_at)
            ballast.unlink()
            freed_at = time.monotonic()
            result.check(failures >= 1, f"cycle {cycle}: no driver failed while full")
            cycles.append(
                f"{ballast_mb:.0f} MB ballast {freed_at - filled_at:.0f} s,"
                f" {failures} driver failures, lag {lag_at_fill}->{lag_at_free}"
            )
            result.check(
                frozen == at_free,
                f"cycle {cycle}: a table committed while full: {frozen} -> {at_free}",
            )
            result.check(
                lag_at_free > lag_at_fill,
                f"cycle {cycle}: lag did not grow: {lag_at_fill} -> {lag_at_free}",
            )
            to_resume.append(
                wait_until(
                    "a commit after space returned",
                    lambda f=frozen: any(v > f[t] for t, v in versions(lake).items()),
                    timeout_s=900,
                )
            )
        enospc_lines = supervisor.text().count(ENOSPC)
        producer.stop()
        accepted = producer.accepted
        ends = end_offsets(kafka.bootstrap, topic)
        catch_up_s = wait_until(
            "the extractor to catch up",
            lambda: len(set(event_ids(lake))) >= len(accepted) or spark_read_to(supervisor, ends),
            timeout_s=900,
            every_s=1.0,
        )
    finally:
        producer.stop()
        supervisor.stop()

    try:
        sql = sql_counts(lake)
        delta = delta_counts(lake)
        stored = set(event_ids(lake))
        checked = {t: every_version_reads(lake, t) for t in TABLES}
        naive = naive_count(lake)
    finally:
        unmount(small)
        shutil.rmtree(small, ignore_errors=True)

    result.load = f"{len(accepted):,} events acked by Kafka, {len(supervisor.lives)} driver lives"
    result.faults = f"tables' {SIZE_MB} MB tmpfs filled {scale.runs}x: " + "; ".join(cycles)
    result.lost = len(accepted - stored)
    result.duplicates = max(sql.duplicates, delta.duplicates)
    result.figures = {
        "stored (SQL count/distinct)": f"{sql.rows}/{sql.distinct}",
        "stored (deltalake count/distinct)": f"{delta.rows}/{delta.distinct}",
        "fill -> driver failure": spread(to_fail, " s", 1),
        "free -> next commit": spread(to_resume, " s", 1),
        "producer stop -> caught up": f"{catch_up_s:.1f} s",
        "ENOSPC log lines": str(enospc_lines),
        "table versions loaded": str(sum(checked.values())),
        "naive reader": f"{naive.rows} rows in {naive.files} files ({naive.orphans}"
        f" orphans, {naive.unreadable} unreadable)",
    }
    result.check(not producer.errors, f"producer errors: {producer.errors[:3]}")
    result.check(enospc_lines >= 1, "no driver logged ENOSPC while the file system was full")
    check_exactly_once(result, sql, delta, stored, accepted)
    record(result)
