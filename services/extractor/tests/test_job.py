"""The job on real Kafka + real Delta (in-process, on the shared SparkSession)."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from datetime import datetime
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from deltalake import DeltaTable

from questlog_extractor import job, metrics, writers
from questlog_extractor.maintain import maintain
from questlog_extractor.settings import Settings

from .events import make_events, poison
from .support import count_rows, new_topic, produce, produce_events, read_table

pytestmark = pytest.mark.integration


def settings_for(kafka, topic: str, lake_root: str, **overrides) -> Settings:
    return Settings(
        kafka_bootstrap=kafka.bootstrap,
        lake_root=lake_root,
        topic=topic,
        max_offsets_per_trigger=overrides.pop("max_offsets_per_trigger", 1000),
        trigger_seconds=1,
        metrics_port=0,
        **overrides,
    )


def wait_for(predicate, timeout: float = 90.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def assert_tables_hold_exactly(settings: Settings, events: list[dict]) -> None:
    expected = Counter(e["event_type"] for e in events)
    for event_type, count in expected.items():
        table = read_table(settings.table_uri(event_type))
        ids = table.column("event_id").to_pylist()
        assert (len(ids), len(set(ids))) == (count, count), event_type
        assert set(ids) == {e["event_id"] for e in events if e["event_type"] == event_type}


def parquet_files(uri: str) -> int:
    """Data files on disk under a local table (committed or not)."""
    return sum(1 for _ in Path(unquote(urlparse(uri).path)).rglob("*.parquet"))


def stored(settings: Settings) -> int:
    return sum(count_rows(settings.table_uri(t)) for t in ("purchase_sword", "join_guild"))


def run_once(spark, settings: Settings) -> None:
    query = job.start(spark, settings, once=True)
    job.monitor(query, poll_seconds=0.5)


@pytest.mark.parametrize("writer", ["delta-rs", "spark"])
def test_once_stores_every_event_once_typed_and_maintain_keeps_them(spark, kafka, tmp_path, writer):
    topic = new_topic(kafka)
    events = make_events(3000, "once")
    produce_events(kafka.bootstrap, topic, events)
    produce_events(kafka.bootstrap, topic, events[:200])  # an API retry storm
    settings = settings_for(kafka, topic, (tmp_path / "lake").as_uri(), writer=writer)

    run_once(spark, settings)

    assert_tables_hold_exactly(settings, events)
    purchases = read_table(settings.table_uri("purchase_sword"))
    types = {f.name: str(f.type) for f in purchases.schema}
    assert types["price"] == "double"
    assert types["quantity"] == "int64"
    assert types["received_at"].startswith("timestamp")
    assert types["event_date"] == "date32[day]"
    assert types["kafka_partition"] == "int32"
    assert DeltaTable(settings.table_uri("purchase_sword")).metadata().partition_columns == [
        "event_date"
    ]
    assert read_table(settings.table_uri("quarantine")) is None

    # a second run over the same topic finds nothing new
    run_once(spark, settings)
    assert_tables_hold_exactly(settings, events)

    files_before = len(DeltaTable(settings.table_uri("join_guild")).file_uris())
    on_disk = parquet_files(settings.table_uri("join_guild"))
    done = maintain(spark, settings)
    assert set(done) == {"purchase_sword", "join_guild"}
    assert len(DeltaTable(settings.table_uri("join_guild")).file_uris()) < files_before
    # the default retention (7 days) keeps the compacted-away files for older snapshots
    assert done["join_guild"]["files_deleted"] == 0
    assert parquet_files(settings.table_uri("join_guild")) >= on_disk
    assert_tables_hold_exactly(settings, events)


@pytest.mark.parametrize(
    ("first", "second"), [("delta-rs", "delta-rs"), ("spark", "delta-rs"), ("delta-rs", "spark")]
)
def test_a_replayed_batch_is_skipped_by_either_writer(spark, tmp_path, first, second):
    """A driver killed after some tables committed replays the batch: each table that
    already holds (app id, batch id) skips it, whichever writer committed it."""
    uri = (tmp_path / "lake").as_uri()
    rows = spark.createDataFrame(
        [(i, "2026-11-26") for i in range(5)], "n INT, d STRING"
    ).selectExpr("n", "to_date(d) AS event_date")
    one, two = [
        writers.writer_for(Settings(kafka_bootstrap="unused:9092", lake_root=uri, writer=w))
        for w in (first, second)
    ]

    one.write(rows, "t", 7, "app", "event_date")
    two.write(rows, "t", 7, "app", "event_date")  # the replay
    two.write(rows, "t", 6, "app", "event_date")  # an older batch
    assert count_rows(f"{uri}/tables/t") == 5
    two.write(rows, "t", 8, "app", "event_date")  # the next batch
    two.write(rows, "t", 8, "other-app", "event_date")  # another checkpoint's
    assert count_rows(f"{uri}/tables/t") == 15
    assert DeltaTable(f"{uri}/tables/t").transaction_version("app") == 8


def test_stream_quarantines_poison_and_keeps_running(spark, kafka, tmp_path):
    topic = new_topic(kafka)
    settings = settings_for(kafka, topic, (tmp_path / "lake").as_uri())
    first, later = make_events(500, "stream"), make_events(100, "stream", start=500)
    cases = poison()
    query = job.start(spark, settings, once=False)
    try:
        produce_events(kafka.bootstrap, topic, first)
        wait_for(lambda: stored(settings) == 500, what="first rows")

        produce(kafka.bootstrap, topic, [(b"k", value) for value, _ in cases])
        produce_events(kafka.bootstrap, topic, first[:50])  # duplicates
        wait_for(
            lambda: count_rows(settings.table_uri("quarantine")) >= len(cases), what="quarantine"
        )
        assert query.isActive
        assert_tables_hold_exactly(settings, first)

        produce_events(kafka.bootstrap, topic, later)
        wait_for(lambda: stored(settings) == 600, what="later rows")
        assert query.isActive
        assert query.exception() is None
    finally:
        query.stop()

    assert_tables_hold_exactly(settings, first + later)
    quarantine = read_table(settings.table_uri("quarantine")).to_pylist()
    assert Counter(r["reason"] for r in quarantine) == Counter(reason for _, reason in cases)
    assert {r["topic"] for r in quarantine} == {topic}
    by_reason = {r["reason"]: r for r in quarantine}
    assert by_reason["too_large: raw_value"]["raw_truncated"] is True
    assert by_reason["unknown_event_type"]["raw_value"] == cases[4][0].decode()
    assert all(r["seen_at"] is not None and r["kafka_offset"] >= 0 for r in quarantine)


def test_once_to_hdfs(spark, kafka, hdfs):
    topic = new_topic(kafka)
    events = make_events(400, "hdfs")
    produce_events(kafka.bootstrap, topic, events)
    produce(kafka.bootstrap, topic, [(b"k", b"{broken")])
    settings = settings_for(kafka, topic, f"{hdfs.uri}/lake-{uuid.uuid4().hex[:6]}")

    run_once(spark, settings)

    assert_tables_hold_exactly(settings, events)
    quarantine = read_table(settings.table_uri("quarantine")).to_pylist()
    assert [(r["raw_value"], r["reason"]) for r in quarantine] == [("{broken", "malformed_json")]


def batch_starts(query, rows: int, after: int = -1) -> dict[int, float]:
    """Epoch seconds at which each batch with input rows after batch `after` started (the
    processing time a TTL set in that batch counts from), once those batches hold `rows`
    rows: a batch's rows are in the tables before Spark reports its progress."""
    found: dict[int, float] = {}

    def reported() -> bool:
        batches = [p for p in query.recentProgress if p["numInputRows"] and p["batchId"] > after]
        found.clear()
        found.update(
            (
                p["batchId"],
                datetime.fromisoformat(p["timestamp"].replace("Z", "+00:00")).timestamp(),
            )
            for p in batches
        )
        return sum(p["numInputRows"] for p in batches) >= rows

    wait_for(reported, timeout=30, what=f"progress of {rows} rows after batch {after}")
    return found


def test_ttl_dedup_forgets_an_id_after_its_window_and_not_before(spark, kafka, tmp_path):
    topic = new_topic(kafka)
    window = 20  # seconds, from the start of the batch that first saw an id
    settings = settings_for(
        kafka, topic, lake_root=(tmp_path / "lake").as_uri(), watermark=f"{window} seconds"
    )
    assert settings.dedup == "ttl"
    warm, first = make_events(5, "warm"), make_events(20, "ttl")
    later = make_events(5, "ttl", start=20)
    query = job.start(spark, settings, once=False)
    try:
        # A cold first batch can take longer than the window (28 s seen on a loaded
        # machine), and the TTL counts from its start: warm the query up first.
        produce_events(kafka.bootstrap, topic, warm)
        wait_for(lambda: stored(settings) >= 5, what="warm-up rows")
        warmed = max(batch_starts(query, 5))
        produce_events(kafka.bootstrap, topic, first)
        wait_for(lambda: stored(settings) >= 25, what="first rows")
        firsts = batch_starts(query, 20, after=warmed)
        seen = min(firsts.values())
        produce_events(kafka.bootstrap, topic, first[:10] + later)  # within the window
        wait_for(lambda: stored(settings) >= 30, what="later rows")
        time.sleep(1.5)
        repeats = batch_starts(query, 15, after=max(firsts))
        assert max(repeats.values()) - seen < window, "too slow to test the window"
        assert stored(settings) == 30  # the repeats were dropped
        progress = [p for p in query.recentProgress if p["numInputRows"]]
        time.sleep(max(0.0, seen + window + 2 - time.time()))  # the window ends
        produce_events(kafka.bootstrap, topic, first[:3])
        wait_for(lambda: stored(settings) >= 33, what="repeats after the window")
        time.sleep(1.5)
        assert min(batch_starts(query, 3, after=max(repeats)).values()) - seen > window
        assert stored(settings) == 33
        assert query.exception() is None
    finally:
        query.stop()
    assert job.checkpoint_dedup(spark, settings.checkpoint_uri) == "ttl"
    operators = {op["operatorName"] for p in progress for op in p["stateOperators"]}
    assert operators == {"transformWithStateExec"}, operators
    assert sum(metrics.summarize(p)["duplicates_dropped"] for p in progress) == 10


def test_a_watermark_checkpoint_keeps_its_dedup_under_the_ttl_default(spark, kafka, tmp_path):
    """A checkpoint written with DEDUP=watermark (before TTL was the default) restarts on
    the watermark dedup, its state and its exactly-once intact."""
    topic = new_topic(kafka)
    lake_root = (tmp_path / "lake").as_uri()
    old = settings_for(kafka, topic, lake_root, dedup="watermark")
    first, later = make_events(100, "old"), make_events(50, "old", start=100)
    produce_events(kafka.bootstrap, topic, first)
    run_once(spark, old)
    assert job.checkpoint_dedup(spark, old.checkpoint_uri) == "watermark"

    new = settings_for(kafka, topic, lake_root)
    assert new.dedup == "ttl"
    assert job.dedup_to_use(spark, new) == "watermark"
    produce_events(kafka.bootstrap, topic, first[:40] + later)  # 40 repeats, 50 new
    run_once(spark, new)
    assert_tables_hold_exactly(new, first + later)
    assert job.checkpoint_dedup(spark, new.checkpoint_uri) == "watermark"


def test_migrate_dedup_moves_a_watermark_checkpoint_to_ttl_reading_nothing_twice(
    spark, kafka, tmp_path
):
    """After the migration the TTL dedup runs from the old query's committed offsets:
    what was stored is not read again, what came after is stored once, and repeats
    within the new window are dropped. The old checkpoint is kept aside."""
    from questlog_extractor import migrate

    topic = new_topic(kafka)
    lake_root = (tmp_path / "lake").as_uri()
    old = settings_for(kafka, topic, lake_root, dedup="watermark")
    first = make_events(100, "mig")
    produce_events(kafka.bootstrap, topic, first)
    run_once(spark, old)

    new = settings_for(kafka, topic, lake_root)
    with pytest.raises(migrate.MigrationError, match="DEDUP=ttl"):
        migrate.migrate_dedup(spark, old)
    moved = migrate.migrate_dedup(spark, new)
    assert moved is not None
    assert moved.startswith(new.checkpoint_uri.rstrip("/") + ".watermark-")
    assert job.checkpoint_dedup(spark, moved) == "watermark"
    assert job.checkpoint_dedup(spark, new.checkpoint_uri) is None
    partitions = json.loads(migrate.starting_offsets(spark, new))[topic]
    assert sum(partitions.values()) == len(first)  # the end of what the old query read

    later = make_events(50, "mig", start=100)
    produce_events(kafka.bootstrap, topic, later + later[:20])  # 20 repeats after the move
    run_once(spark, new)
    assert job.checkpoint_dedup(spark, new.checkpoint_uri) == "ttl"
    assert_tables_hold_exactly(new, first + later)  # the first 100 were not read again
    assert migrate.migrate_dedup(spark, new) is None  # already on ttl: nothing to do


def test_the_migrate_dedup_command_moves_the_checkpoint_and_exits_0(
    spark, kafka, tmp_path, monkeypatch, capsys
):
    """``python -m questlog_extractor migrate-dedup`` wired to the migration (on this
    test's Spark session rather than a JVM of its own)."""
    from questlog_extractor.__main__ import main

    topic = new_topic(kafka)
    lake_root = (tmp_path / "lake").as_uri()
    old = settings_for(kafka, topic, lake_root, dedup="watermark")
    produce_events(kafka.bootstrap, topic, make_events(10, "cli"))
    run_once(spark, old)
    for name, value in {
        "KAFKA_BOOTSTRAP": kafka.bootstrap,
        "TOPIC": topic,
        "LAKE_ROOT": lake_root,
        "DEDUP": "watermark",
    }.items():
        monkeypatch.setenv(f"QUESTLOG_EXTRACTOR_{name}", value)
    monkeypatch.setattr(job, "build_session", lambda settings, **_: spark)
    monkeypatch.setattr(spark, "stop", lambda: None)  # the shared session lives on
    assert main(["migrate-dedup"]) == 1  # DEDUP=watermark: refused, nothing moved
    assert "migration refused" in capsys.readouterr().out
    assert job.checkpoint_dedup(spark, old.checkpoint_uri) == "watermark"
    monkeypatch.setenv("QUESTLOG_EXTRACTOR_DEDUP", "ttl")
    assert main(["migrate-dedup"]) == 0
    assert "checkpoint migrated to the ttl dedup" in capsys.readouterr().out
    assert job.checkpoint_dedup(spark, old.checkpoint_uri) is None
