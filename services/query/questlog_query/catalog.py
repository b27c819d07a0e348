"""The tables the service can read and their columns, derived from ``questlog_schemas``.

Layout and envelope columns follow ``docs/lake-contract.md``; a type's property columns
come only from ``property_columns(event_type)``. These names are the allow-list every
user-supplied column name (``group_by``) is checked against before it reaches SQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import pyarrow as pa

from questlog_schemas import load_registry, property_columns

QUARANTINE = "quarantine"
TIMESTAMP = pa.timestamp("us", tz="UTC")

ENVELOPE_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("event_id", pa.string()),
    ("event_type", pa.string()),
    ("event_time", TIMESTAMP),
    ("received_at", TIMESTAMP),
    ("player_id", pa.string()),
    ("session_id", pa.string()),
    ("host", pa.string()),
    ("user_agent", pa.string()),
    ("accept", pa.string()),
    ("client_ip_hash", pa.string()),
    ("schema_version", pa.int64()),
)
KAFKA_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("kafka_partition", pa.int32()),
    ("kafka_offset", pa.int64()),
)
QUARANTINE_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("raw_value", pa.string()),
    ("raw_truncated", pa.bool_()),
    ("reason", pa.string()),
    ("topic", pa.string()),
    ("kafka_partition", pa.int32()),
    ("kafka_offset", pa.int64()),
    ("kafka_timestamp", TIMESTAMP),
    ("seen_at", TIMESTAMP),
    ("seen_date", pa.date32()),
)
_JSON_TO_ARROW: dict[str, pa.DataType] = {
    "string": pa.string(),
    "date-time": TIMESTAMP,
    "integer": pa.int64(),
    "number": pa.float64(),
    "boolean": pa.bool_(),
}


@dataclass(frozen=True)
class TableSpec:
    """One lake table: its name, expected Arrow schema and time columns."""

    name: str
    schema: pa.Schema
    time_column: str  # what since/until filter on
    date_column: str  # the partition column derived from time_column (UTC date)
    is_event_table: bool

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self.schema.names)

    @property
    def property_names(self) -> tuple[str, ...]:
        if not self.is_event_table:
            return ()
        return tuple(name for name, _ in property_columns(self.name))


def event_table_schema(event_type: str) -> pa.Schema:
    props = [
        (name, _JSON_TO_ARROW.get(kind, pa.string())) for name, kind in property_columns(event_type)
    ]
    return pa.schema([*ENVELOPE_COLUMNS, *props, *KAFKA_COLUMNS, ("event_date", pa.date32())])


@cache
def catalog() -> dict[str, TableSpec]:
    """Every table, event types first (sorted), quarantine last."""
    specs = {
        name: TableSpec(name, event_table_schema(name), "received_at", "event_date", True)
        for name in load_registry().event_types
    }
    specs[QUARANTINE] = TableSpec(
        QUARANTINE, pa.schema(list(QUARANTINE_COLUMNS)), "seen_at", "seen_date", False
    )
    return specs


def event_types() -> tuple[str, ...]:
    return tuple(name for name, spec in catalog().items() if spec.is_event_table)


def quote(identifier: str) -> str:
    """Quote a name that was already checked against the catalog (never raw user input)."""
    return '"' + identifier.replace('"', '""') + '"'
