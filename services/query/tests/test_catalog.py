"""The catalog derives from ``questlog_schemas.lake``; the schemas it derives are pinned here
to the lists the service carried before (existing lakes must keep reading the same)."""

from __future__ import annotations

import pyarrow as pa

from questlog_query.catalog import catalog, event_table_schema, event_types, quote

TS = pa.timestamp("us", tz="UTC")
# As written out in catalog.py before the layout moved to questlog_schemas.lake.
ENVELOPE = [
    ("event_id", pa.string()),
    ("event_type", pa.string()),
    ("event_time", TS),
    ("received_at", TS),
    ("player_id", pa.string()),
    ("session_id", pa.string()),
    ("host", pa.string()),
    ("user_agent", pa.string()),
    ("accept", pa.string()),
    ("client_ip_hash", pa.string()),
    ("schema_version", pa.int64()),
]
TAIL = [("kafka_partition", pa.int32()), ("kafka_offset", pa.int64()), ("event_date", pa.date32())]
PROPERTIES = {
    "join_guild": [("guild_id", pa.string()), ("guild_name", pa.string()), ("role", pa.string())],
    "purchase_sword": [
        ("sword_type", pa.string()),
        ("price", pa.float64()),
        ("currency", pa.string()),
        ("quantity", pa.int64()),
    ],
    # added with the level_up type (1-0-0)
    "level_up": [
        ("from_level", pa.int64()),
        ("to_level", pa.int64()),
        ("seconds_played", pa.float64()),
    ],
}
QUARANTINE = [
    ("raw_value", pa.string()),
    ("raw_truncated", pa.bool_()),
    ("reason", pa.string()),
    ("topic", pa.string()),
    ("kafka_partition", pa.int32()),
    ("kafka_offset", pa.int64()),
    ("kafka_timestamp", TS),
    ("seen_at", TS),
    ("seen_date", pa.date32()),
]


def test_tables_and_their_order():
    assert list(catalog()) == ["join_guild", "level_up", "purchase_sword", "quarantine"]
    assert event_types() == ("join_guild", "level_up", "purchase_sword")


def test_event_table_schemas_are_the_previous_ones():
    for name, props in PROPERTIES.items():
        expected = pa.schema([*ENVELOPE, *props, *TAIL])
        spec = catalog()[name]
        assert spec.schema.equals(expected, check_metadata=True)
        assert event_table_schema(name).equals(expected, check_metadata=True)
        assert (spec.time_column, spec.date_column, spec.is_event_table) == (
            "received_at",
            "event_date",
            True,
        )
        assert spec.property_names == tuple(n for n, _ in props)
        assert all(field.nullable for field in spec.schema)


def test_quarantine_schema_is_the_previous_one():
    spec = catalog()["quarantine"]
    assert spec.schema.equals(pa.schema(QUARANTINE), check_metadata=True)
    assert (spec.time_column, spec.date_column, spec.is_event_table) == (
        "seen_at",
        "seen_date",
        False,
    )
    assert spec.property_names == ()
    assert spec.columns == tuple(n for n, _ in QUARANTINE)


def test_quote():
    assert quote('a"b') == '"a""b"'
