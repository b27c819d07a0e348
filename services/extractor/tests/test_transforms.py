"""Unit tests of the pure transforms on the shared local SparkSession (no Kafka)."""

from __future__ import annotations

import datetime as dt
import json
import re
import time

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from questlog_extractor import transforms
from questlog_extractor.validation import MAX_RAW_CHARS
from questlog_schemas import Registry, lake
from questlog_schemas.registry import ENVELOPE, read_schema_files
from questlog_schemas.spark import table_schema

from .events import level_ups, make_events, poison

KAFKA_TS = dt.datetime(2026, 11, 2, 0, 0, 5)


def raw_frame(spark, values: list[bytes | None]):
    """What ``from_kafka`` makes of Kafka records with these values (partition 0)."""
    rows = [(v, "events", 0, offset, KAFKA_TS) for offset, v in enumerate(values)]
    kafka = spark.createDataFrame(
        rows, "value binary, topic string, partition int, offset long, timestamp timestamp"
    )
    return transforms.from_kafka(kafka)


def utc(text: str) -> dt.datetime:
    """A naive datetime as Spark shows a UTC instant in the session's time zone."""
    instant = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return instant.astimezone().replace(tzinfo=None)


def test_good_rows_become_typed_rows_of_their_own_table(spark, registry):
    join, buy = make_events(2, start=5999)  # received 23:59:59.99 and 00:00:00.00 UTC
    parsed = transforms.parse(
        raw_frame(spark, [json.dumps(buy).encode(), json.dumps(join).encode()])
    )
    good, bad = transforms.split(parsed)
    assert bad.count() == 0

    purchases = transforms.to_event_table(good, "purchase_sword", registry)
    expected = spark.createDataFrame(
        [
            (
                buy["event_id"],
                "purchase_sword",
                utc(buy["event_time"]),
                utc(buy["received_at"]),
                "player-16",
                "s-0",
                "player-16.example.net",
                "test/1.0",
                None,
                None,
                1,
                "longsword",
                0.99,
                "EUR",
                1,
                0,
                0,
                dt.date(2026, 11, 2),
            )
        ],
        "event_id string, event_type string, event_time timestamp, received_at timestamp,"
        " player_id string, session_id string, host string, user_agent string, accept string,"
        " client_ip_hash string, schema_version long, sword_type string, price double,"
        " currency string, quantity long, kafka_partition int, kafka_offset long,"
        " event_date date",
    )
    assertDataFrameEqual(purchases, expected)
    assert tuple(purchases.columns) == lake.event_table("purchase_sword", registry).names

    joins = transforms.to_event_table(good, "join_guild", registry)
    assertDataFrameEqual(
        joins.select("event_id", "guild_id", "guild_name", "role", "kafka_offset", "event_date"),
        spark.createDataFrame(
            [(join["event_id"], "g-ravens", None, "leader", 1, dt.date(2026, 11, 1))],
            "event_id string, guild_id string, guild_name string, role string,"
            " kafka_offset long, event_date date",
        ),
    )


def test_event_date_is_the_utc_date_whatever_the_session_time_zone(spark):
    before = spark.conf.get("spark.sql.session.timeZone")
    spark.conf.set("spark.sql.session.timeZone", "America/Los_Angeles")
    try:
        df = spark.createDataFrame([("2026-11-02T00:30:00Z",)], "t string")
        got = df.select(transforms.utc_date(F.to_timestamp("t")).alias("d")).first()["d"]
    finally:
        spark.conf.set("spark.sql.session.timeZone", before)
    assert got == dt.date(2026, 11, 2)


def test_every_kind_of_poison_goes_to_quarantine_with_its_reason(spark):
    cases = poison()
    good_event = json.dumps(make_events(1, "fine")[0]).encode()
    parsed = transforms.parse(raw_frame(spark, [v for v, _ in cases] + [None, good_event]))
    good, bad = transforms.split(parsed)

    expected = [(i, reason) for i, (_, reason) in enumerate(cases)]
    expected.append((len(cases), "malformed_json"))  # a null value (tombstone)
    assertDataFrameEqual(
        bad.select("kafka_offset", "reason"),
        spark.createDataFrame(expected, "kafka_offset long, reason string"),
    )
    assert [r.kafka_offset for r in good.select("kafka_offset").collect()] == [len(cases) + 1]


def test_quarantine_rows_keep_the_raw_value_cut_at_64_kib(spark):
    huge = b'{"x": "' + b"y" * (MAX_RAW_CHARS + 10) + b'"}'
    parsed = transforms.parse(raw_frame(spark, [b"nope", huge]))
    _, bad = transforms.split(parsed)
    seen = F.lit(dt.datetime(2026, 11, 3, 10, 0)).cast("timestamp")
    rows = transforms.to_quarantine(bad, seen)
    assert tuple(rows.columns) == lake.QUARANTINE_TABLE.names
    assertDataFrameEqual(
        rows.select(
            "kafka_offset",
            "reason",
            "raw_truncated",
            F.length("raw_value").alias("n"),
            "topic",
            "kafka_partition",
            "kafka_timestamp",
            "seen_date",
        ),
        spark.createDataFrame(
            [
                (0, "malformed_json", False, 4, "events", 0, KAFKA_TS, dt.date(2026, 11, 3)),
                (
                    1,
                    "too_large: raw_value",
                    True,
                    MAX_RAW_CHARS,
                    "events",
                    0,
                    KAFKA_TS,
                    dt.date(2026, 11, 3),
                ),
            ],
            "kafka_offset long, reason string, raw_truncated boolean, n int, topic string,"
            " kafka_partition int, kafka_timestamp timestamp, seen_date date",
        ),
    )


def test_optional_fields_may_be_absent_or_null(spark):
    event = make_events(1, start=1)[0]  # join_guild
    for key in ("event_time", "session_id", "context"):
        event.pop(key)
    event["properties"] = {"guild_id": "g-1", "role": None}
    parsed = transforms.parse(raw_frame(spark, [json.dumps(event).encode()]))
    assert [r.reason for r in parsed.select("reason").collect()] == [None]


@pytest.mark.parametrize(
    "stamp", ["2026-11-01T12:00:00Z", "2026-11-01T12:00:00.123456Z", "2026-11-01T13:00:00+01:00"]
)
def test_rfc3339_received_at_forms_are_accepted(spark, stamp):
    event = {**make_events(1)[0], "received_at": stamp}
    parsed = transforms.parse(raw_frame(spark, [json.dumps(event).encode()]))
    row = parsed.select("reason", "received_at").first()
    assert row.reason is None
    assert row.received_at == utc(stamp)


def test_the_size_limits_count_characters_not_bytes(spark):
    from questlog_extractor.validation import at_most_chars

    texts = ["abc", "abcd", "ééé", "éééé", "€€€", None]  # é: 2 bytes, €: 3 bytes
    frame = spark.createDataFrame([(t,) for t in texts], "t string")
    got = [r["ok"] for r in frame.select(at_most_chars(F.col("t"), 3).alias("ok")).collect()]
    assert got == [True, False, True, False, True, None]


def test_another_types_property_is_ignored_whatever_its_value(spark, registry):
    # Properties are parsed once into a struct of every type's fields: a join_guild event
    # carrying purchase_sword's "price" (even as a string) is judged on its own fields only.
    join = {**make_events(1, start=1)[0]}
    join["properties"] = {**join["properties"], "price": "cheap", "quantity": 1.5}
    buy_with_guild = {**make_events(1)[0]}
    buy_with_guild["properties"] = {**buy_with_guild["properties"], "guild_id": 7}
    parsed = transforms.parse(
        raw_frame(spark, [json.dumps(join).encode(), json.dumps(buy_with_guild).encode()])
    )
    assert [r.reason for r in parsed.orderBy("kafka_offset").collect()] == [None, None]
    good, _ = transforms.split(parsed)
    joins = transforms.to_event_table(good, "join_guild", registry)
    assert tuple(joins.columns) == lake.event_table("join_guild", registry).names
    assert [r.guild_id for r in joins.collect()] == [join["properties"]["guild_id"]]


def types_of(schema) -> list[tuple[str, str]]:
    return [(field.name, field.dataType.simpleString()) for field in schema]


def test_every_table_has_the_lake_columns_and_types(spark, registry):
    # The stored layout is questlog_schemas.lake's: names, order and types (nullability
    # is the writer's: every column nullable but two the quarantine never leaves null).
    parsed = transforms.parse(raw_frame(spark, []), registry)
    good, bad = transforms.split(parsed)
    for event_type in registry.event_types:
        rows = transforms.to_event_table(good, event_type, registry)
        assert types_of(rows.schema) == types_of(table_schema(lake.event_table(event_type)))
        assert all(field.nullable for field in rows.schema)
    rows = transforms.to_quarantine(bad)
    assert types_of(rows.schema) == types_of(table_schema(lake.QUARANTINE_TABLE))
    assert [f.name for f in rows.schema if not f.nullable] == ["raw_truncated", "seen_at"]


def test_a_new_event_type_needs_no_change_here(spark):
    # What adding schemas/questlog_schemas/json/open_chest/1-0-0.json would give: its own
    # table (level_up was added that way: test_level_up_rows_are_typed_rows_of_their_table).
    files = read_schema_files()
    envelope = files.pop(ENVELOPE)["1-0-0"]
    open_chest = {
        "type": "object",
        "additionalProperties": False,
        "required": ["chest_level"],
        "properties": {
            "chest_level": {"type": "integer", "minimum": 1},
            "opened_at": {"type": "string", "format": "date-time"},
        },
    }
    registry = Registry(envelope, {**files, "open_chest": {"1-0-0": open_chest}})
    event = {
        **make_events(1)[0],
        "event_type": "open_chest",
        "properties": {"chest_level": 7, "opened_at": "2026-11-01T23:58:00Z"},
    }
    parsed = transforms.parse(
        raw_frame(
            spark, [json.dumps(event).encode(), json.dumps({**event, "properties": {}}).encode()]
        ),
        registry,
    )
    good, bad = transforms.split(parsed)
    assert [r.reason for r in bad.collect()] == ["missing_field: properties.chest_level"]
    rows = transforms.to_event_table(good, "open_chest", registry)
    assert types_of(rows.schema) == types_of(table_schema(lake.event_table("open_chest", registry)))
    assertDataFrameEqual(
        rows.select("event_type", "chest_level", "opened_at", "event_date"),
        spark.createDataFrame(
            [("open_chest", 7, utc("2026-11-01T23:58:00Z"), dt.date(2026, 11, 1))],
            "event_type string, chest_level long, opened_at timestamp, event_date date",
        ),
    )


def test_level_up_rows_are_typed_rows_of_their_table(spark, registry):
    first, second = level_ups(2, start=5999)  # received either side of midnight UTC
    values = [json.dumps(e).encode() for e in (first, second, *make_events(2))]
    good, bad = transforms.split(transforms.parse(raw_frame(spark, values), registry))
    assert bad.count() == 0
    rows = transforms.to_event_table(good, "level_up", registry)
    assert tuple(rows.columns) == lake.event_table("level_up", registry).names
    assertDataFrameEqual(
        rows.select(
            "event_id",
            "event_type",
            "received_at",
            "player_id",
            "session_id",
            "host",
            "schema_version",
            "from_level",
            "to_level",
            "seconds_played",
            "kafka_offset",
            "event_date",
        ),
        spark.createDataFrame(
            [
                (
                    e["event_id"],
                    "level_up",
                    utc(e["received_at"]),
                    e["player_id"],
                    None,
                    None,
                    1,
                    e["properties"]["from_level"],
                    e["properties"]["to_level"],
                    e["properties"]["seconds_played"],
                    offset,
                    date,
                )
                for offset, (e, date) in enumerate(
                    [(first, dt.date(2026, 11, 1)), (second, dt.date(2026, 11, 2))]
                )
            ],
            "event_id string, event_type string, received_at timestamp, player_id string,"
            " session_id string, host string, schema_version long, from_level long,"
            " to_level long, seconds_played double, kafka_offset long, event_date date",
        ),
    )
    # the other types' tables hold none of them
    assert transforms.to_event_table(good, "purchase_sword", registry).count() == 1


def test_the_tables_frame_holds_every_tables_rows(spark, registry):
    # The delta-rs writer collects this one frame and splits it by table: each part must
    # equal what to_event_table / to_quarantine give.
    values = [json.dumps(e).encode() for e in make_events(6) + level_ups(3)] + [
        v for v, _ in poison()[:4]
    ]
    parsed = transforms.parse(raw_frame(spark, values))
    seen = F.lit(KAFKA_TS).cast("timestamp")
    frame = transforms.to_tables_frame(parsed, registry, seen_at=seen)
    good, bad = transforms.split(parsed)
    for event_type in registry.event_types:
        expected = transforms.to_event_table(good, event_type, registry)
        part = frame.where(F.col("reason").isNull() & (F.col("event_type") == event_type))
        assertDataFrameEqual(part.select(expected.columns), expected)
        assert expected.count() > 0
    expected = transforms.to_quarantine(bad, seen)
    part = frame.where(F.col("reason").isNotNull()).select(expected.columns)
    assertDataFrameEqual(part, expected)
    assert expected.count() == 4


def test_the_tables_frame_plan_is_the_same_for_every_batch(spark, registry):
    # Spark inlines current_timestamp() as a literal: every micro-batch's code would
    # differ, miss the codegen cache and be compiled again (Janino, then the JIT). The
    # delta-rs writer asks for a null seen_at and stamps it on the driver (stamp_seen).
    parsed = transforms.parse(raw_frame(spark, [json.dumps(make_events(1)[0]).encode()]))

    def plan(seen_at):
        frame = transforms.to_tables_frame(parsed, registry, seen_at=seen_at)
        text = frame._jdf.queryExecution().optimizedPlan().toString()
        return re.sub(r"#\d+", "", text)  # expression ids differ between frames

    spark.conf.set("spark.sql.debug.maxToStringFields", "1000")  # no "..." in the plan
    try:
        assert plan(transforms.seen_later()) == plan(transforms.seen_later())
        default = plan(None)  # current_timestamp(): a new literal each time
        time.sleep(0.01)
        assert plan(None) != default
    finally:
        spark.conf.unset("spark.sql.debug.maxToStringFields")


def test_stamp_seen_sets_the_quarantine_time_and_its_utc_date():
    import pyarrow as pa

    from questlog_extractor.writers import stamp_seen

    schema = pa.schema(
        [
            ("reason", pa.string()),
            ("seen_at", pa.timestamp("us", tz="UTC")),
            ("seen_date", pa.date32()),
        ]
    )
    rows = pa.table(
        {"reason": ["a", "b"], "seen_at": [None, None], "seen_date": [None, None]}, schema=schema
    )
    at = dt.datetime(2026, 11, 27, 23, 59, 59, 500000, tzinfo=dt.UTC)
    stamped = stamp_seen(rows, at.timestamp())
    assert stamped.schema == schema
    assert stamped.column("seen_at").to_pylist() == [at, at]
    assert stamped.column("seen_date").to_pylist() == [dt.date(2026, 11, 27)] * 2
    assert stamped.column("reason").to_pylist() == ["a", "b"]


def test_the_delta_rs_writer_only_collects_the_micro_batch_it_is_handed(spark, registry, tmp_path):
    # The tables projection is part of the streaming query (BatchWriter.stream): per batch
    # the writer must only collect, never build, analyse and plan a DataFrame again (a
    # batch object that can do nothing but toArrow would fail on any other call).
    from questlog_extractor.settings import Settings
    from questlog_extractor.writers import BatchWriter

    values = [json.dumps(e).encode() for e in make_events(4)] + [poison()[0][0]]
    parsed = transforms.parse(raw_frame(spark, values), registry)
    settings = Settings(kafka_bootstrap="unused:9092", lake_root=tmp_path.as_uri())
    sink = BatchWriter(settings, registry)
    rows = sink.stream(parsed).toArrow()

    class MicroBatch:
        def toArrow(self):
            return rows

    counts, timings = sink.strategy.write_batch(MicroBatch(), 0, "test-app")
    assert sum(counts.values()) == 5
    assert counts["quarantine"] == 1
    assert set(timings) == {"collect_ms", "split_ms", "commit_ms"}
