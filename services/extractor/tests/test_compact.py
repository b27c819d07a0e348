"""Compaction (delta-rs, no JVM) while the extractor's own writer appends: nothing lost or
doubled, every version readable, the batches a table holds still known (replays skipped);
and the ``compact`` command's loop, which must stop at once and exit 0 on SIGTERM."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable, write_deltalake

from questlog_extractor.compact import compact_all
from questlog_extractor.settings import PREFIX, Settings, SettingsError
from questlog_extractor.writers import DeltaRsWriter

pytestmark = pytest.mark.integration

TABLE = "purchase_sword"
APP_ID = "questlog-extractor/extractor/test-query"
BATCHES = 200
ROWS_PER_BATCH = 20  # over two event_date partitions: two files per append
DAYS = (dt.date(2026, 11, 30), dt.date(2026, 12, 1))


def env_of(tmp_path, **extra: str) -> dict[str, str]:
    return {
        PREFIX + "KAFKA_BOOTSTRAP": "127.0.0.1:9",
        PREFIX + "LAKE_ROOT": (tmp_path / "lake").as_uri(),
        **{PREFIX + k: v for k, v in extra.items()},
    }


def batch(batch_id: int) -> pa.Table:
    ids = [f"{batch_id:05d}-{i:03d}" for i in range(ROWS_PER_BATCH)]
    return pa.table(
        {
            "event_id": ids,
            "event_date": pa.array([DAYS[i % 2] for i in range(ROWS_PER_BATCH)], pa.date32()),
            "batch_id": pa.array([batch_id] * ROWS_PER_BATCH, pa.int64()),
        }
    )


def rows_and_distinct(table: DeltaTable) -> tuple[int, int]:
    ids = table.to_pyarrow_table(columns=["event_id"])["event_id"]
    return len(ids), pc.count_distinct(ids).as_py()


def test_compaction_beside_the_writer_loses_and_doubles_nothing(tmp_path):
    settings = Settings.from_env(env_of(tmp_path))
    uri = settings.table_uri(TABLE)
    writer = DeltaRsWriter(settings)
    writer.write_arrow(batch(0), TABLE, 0, APP_ID, "event_date")
    written = threading.Event()
    errors: list[BaseException] = []

    def append() -> None:  # the extractor's delta-rs writer, one commit per micro-batch
        try:
            for batch_id in range(1, BATCHES):
                writer.write_arrow(batch(batch_id), TABLE, batch_id, APP_ID, "event_date")
        except BaseException as exc:
            errors.append(exc)
        finally:
            written.set()

    thread = threading.Thread(target=append)
    thread.start()
    passes = []
    try:
        while not written.is_set():
            passes.append(compact_all(settings))
    finally:
        thread.join()
    assert not errors, errors
    assert not any("failed" in p for p in passes), passes
    last = compact_all(settings)["tables"][TABLE]

    table = DeltaTable(uri)
    assert rows_and_distinct(table) == (BATCHES * ROWS_PER_BATCH,) * 2
    assert last["rows"] == BATCHES * ROWS_PER_BATCH
    assert last["files_after"] == len(DAYS) < 2 * BATCHES  # one file per partition
    # the race really happened: compactions committed on top of appends made after they
    # read the table (delta-rs's conflict check let them through, correctly)
    optimizes = [h for h in table.history() if h["operation"] == "OPTIMIZE"]
    assert sum(1 for h in optimizes if h["readVersion"] < h["version"] - 1) >= 1, optimizes
    # every version readable (retention 1 h: nothing a version lists is gone), none with a
    # row twice, rows only ever growing
    seen = 0
    for version in range(table.version() + 1):
        rows, distinct = rows_and_distinct(DeltaTable(uri, version=version))
        assert rows == distinct >= seen, version
        seen = rows
    # the writer's transaction ids survived the compactions: a replayed batch is skipped
    assert table.transaction_version(APP_ID) == BATCHES - 1
    writer.write_arrow(batch(BATCHES - 1), TABLE, BATCHES - 1, APP_ID, "event_date")
    writer.write_arrow(batch(7), TABLE, 7, APP_ID, "event_date")
    table.update_incremental()
    assert rows_and_distinct(table) == (BATCHES * ROWS_PER_BATCH,) * 2


def test_vacuum_deletes_removed_files_only_past_the_retention(tmp_path):
    settings = Settings.from_env(env_of(tmp_path))
    uri = settings.table_uri(TABLE)
    for batch_id in range(10):
        write_deltalake(uri, batch(batch_id), mode="append", partition_by=["event_date"])

    def parquet_on_disk() -> int:
        return sum(1 for _ in (tmp_path / "lake" / "tables" / TABLE).rglob("*.parquet"))

    kept = compact_all(settings)["tables"][TABLE]  # default retention, 1 h: kept for now
    assert (kept["files_before"], kept["files_after"], kept["files_deleted"]) == (20, 2, 0)
    assert parquet_on_disk() == 22
    now = compact_all(Settings.from_env(env_of(tmp_path, VACUUM_RETAIN_HOURS="0")))
    assert now["tables"][TABLE]["files_deleted"] == 20
    assert parquet_on_disk() == 2
    assert rows_and_distinct(DeltaTable(uri)) == (10 * ROWS_PER_BATCH,) * 2


def test_the_compact_loop_logs_each_pass_and_exits_0_at_once_on_sigterm(tmp_path):
    uri = Settings.from_env(env_of(tmp_path)).table_uri(TABLE)
    for batch_id in range(5):
        write_deltalake(uri, batch(batch_id), mode="append", partition_by=["event_date"])
    proc = subprocess.Popen(
        [sys.executable, "-m", "questlog_extractor", "compact", "--every", "1"],
        # no Java to be found: a pass that started Spark would fail
        env={**os.environ, **env_of(tmp_path), "JAVA_HOME": str(tmp_path / "no-java")},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        lines = []
        deadline = time.monotonic() + 60
        while len(lines) < 2 and time.monotonic() < deadline:  # two passes, one second apart
            line = json.loads(proc.stdout.readline())
            if line["msg"] == "compaction pass":
                lines.append(line)
        first, second = lines
        assert (first["files_before"], first["files_after"], first["rows"]) == (10, 2, 100)
        assert (second["files_before"], second["files_after"]) == (2, 2)
        assert (first["level"], first["logger"]) == ("info", "questlog_extractor.compact")
        stopped = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert time.monotonic() - stopped < 5  # make run's supervisor kills after 10 s
        assert "compaction stopped" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_stop_in_the_middle_of_a_long_pass_exits_0_within_seconds(tmp_path):
    slow_pass = (
        "import sys, time\n"
        "from questlog_extractor import compact\n"
        "compact.compact_all = lambda settings, stop=None: time.sleep(60)\n"
        "from questlog_extractor.__main__ import main\n"
        "sys.exit(main(['compact', '--every', '5']))\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", slow_pass],
        env={**os.environ, **env_of(tmp_path)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert json.loads(proc.stdout.readline())["msg"] == "compacting"
        time.sleep(0.5)  # inside the pass now
        stopped = time.monotonic()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
        assert time.monotonic() - stopped < 5
        assert "stopping in the middle of a compaction pass" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_one_pass_needs_only_the_lake_and_fails_the_run_when_a_table_failed(tmp_path):
    """The chart's CronJob runs one pass with the lake root alone (no Kafka address), and
    its exit code is what marks the Job failed: 0 after a clean pass, 1 when a table's
    compaction failed (the other tables still compacted)."""
    uri = Settings.from_env(env_of(tmp_path)).table_uri(TABLE)
    for batch_id in range(3):
        write_deltalake(uri, batch(batch_id), mode="append", partition_by=["event_date"])
    env = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}
    env[PREFIX + "LAKE_ROOT"] = (tmp_path / "lake").as_uri()
    clean = subprocess.run(
        [sys.executable, "-m", "questlog_extractor", "compact"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert clean.returncode == 0, clean.stdout + clean.stderr
    summary = next(
        json.loads(line)
        for line in clean.stdout.splitlines()
        if json.loads(line)["msg"] == "compaction pass"
    )
    assert (summary["files_before"], summary["files_after"], summary["rows"]) == (6, 2, 60)

    one_fails = (
        "import sys\n"
        "from questlog_extractor import compact\n"
        "real = compact.compact_table\n"
        "def flaky(uri, retain):\n"
        "    if uri.endswith('/quarantine'):\n"
        "        raise OSError('disk on fire')\n"
        "    return real(uri, retain)\n"
        "compact.compact_table = flaky\n"
        "from questlog_extractor.__main__ import main\n"
        "sys.exit(main(['compact']))\n"
    )
    failed = subprocess.run(
        [sys.executable, "-c", one_fails], env=env, capture_output=True, text=True, timeout=120
    )
    assert failed.returncode == 1, failed.stdout + failed.stderr
    summary = next(
        json.loads(line)
        for line in failed.stdout.splitlines()
        if json.loads(line)["msg"] == "compaction pass"
    )
    assert summary["failed"] == {"quarantine": "OSError: disk on fire"}
    assert summary["level"] == "warning"
    assert summary["tables"][TABLE]["rows"] == 60


def test_the_stream_still_needs_the_kafka_address():
    with pytest.raises(SettingsError, match="KAFKA_BOOTSTRAP is not set"):
        Settings.from_env({PREFIX + "LAKE_ROOT": "file:///tmp/lake"})
    assert (
        Settings.from_env({PREFIX + "LAKE_ROOT": "file:///tmp/lake"}, kafka=False).kafka_bootstrap
        == ""
    )


def test_compacted_files_keep_row_groups_small_enough_to_skip(tmp_path):
    import pyarrow.parquet as pq

    from questlog_extractor.compact import ROW_GROUP_ROWS, compact_table

    uri = Settings.from_env(env_of(tmp_path)).table_uri(TABLE)
    n = 100_000
    for part in range(3):
        ids = pa.array([f"{part}-{i:06d}" for i in range(n)])
        write_deltalake(
            uri,
            pa.table(
                {
                    "event_id": ids,
                    "event_date": pa.array([DAYS[0]] * n, pa.date32()),
                    "batch_id": pa.array([part] * n, pa.int64()),
                }
            ),
            mode="append",
            partition_by=["event_date"],
        )
    done = compact_table(uri, 1)
    assert (done["files_before"], done["files_after"], done["rows"]) == (3, 1, 3 * n)
    (path,) = [u.removeprefix("file://") for u in DeltaTable(uri).file_uris()]
    meta = pq.ParquetFile(path).metadata
    sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    assert sum(sizes) == 3 * n, sizes
    assert max(sizes) <= ROW_GROUP_ROWS, sizes
    assert meta.row_group(0).column(0).compression == "SNAPPY"
