"""The lake's table layout, defined once: the extractor writes it, the query service reads it.

One Delta table per registered event type, named after it: the envelope's fields (its
objects flattened, ``properties`` left out), that type's properties, the Kafka position
and the partition date. A new event type in the registry is a new table with no change
here. Plus the quarantine table, of everything that could not be stored.

Usage::

    from questlog_schemas import lake

    lake.tables()                                  # {name: Table}: event types, quarantine last
    lake.event_table("purchase_sword").names       # column names, in stored order
    lake.table_uri("hdfs://nn:8020/lake", "purchase_sword")  # .../lake/tables/purchase_sword
    lake.checkpoint_uri("file:///var/lake", "extractor")     # .../lake/_checkpoints/extractor
    lake.arrow_schema(lake.QUARANTINE_TABLE)       # needs pyarrow
    questlog_schemas.spark.table_schema(table)     # needs pyspark

    python -m questlog_schemas.lake --markdown                 # tables of docs/lake-contract.md
    python -m questlog_schemas.lake --write docs/lake-contract.md

Column types are the lake's own (``LAKE_TYPES``); a field's follows from its JSON type
(``FROM_JSON``). Only scalar fields make columns: an object or array property is refused
here rather than stored in a shape no reader expects.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from questlog_schemas.columns import column_type
from questlog_schemas.registry import Registry, load_registry

if TYPE_CHECKING:
    import pyarrow as pa

# The lake's column types; each maps to one Arrow type (here) and one Spark type (spark.py).
LAKE_TYPES = ("string", "long", "int", "double", "boolean", "timestamp", "date")
# JSON type of a field (``columns.column_type``) -> its lake type.
FROM_JSON = {
    "string": "string",
    "date-time": "timestamp",
    "integer": "long",
    "number": "double",
    "boolean": "boolean",
}

# Where a column's value comes from (``Column.source``), besides an envelope object's name
# (``"context"``, ``"properties"``: that object's field, flattened).
ENVELOPE, KAFKA, DERIVED = "envelope", "kafka", "derived"
PROPERTIES = "properties"

QUARANTINE = "quarantine"
# Where things live under the lake root (a URI: file://, hdfs://, ...); docs/lake-contract.md
TABLES_DIR, CHECKPOINTS_DIR = "tables", "_checkpoints"
# The walkthrough's table names (its Presto SQL runs unchanged against these) -> table.
ALIASES = {"purchases": "purchase_sword", "guild_joins": "join_guild"}


@dataclass(frozen=True)
class Column:
    """One column. ``source``: ``"envelope"`` (the top-level field of that name), an
    envelope object's name (its field of that name), ``"kafka"`` (the record's own) or
    ``"derived"`` (computed by the writer). ``nullable`` is the contract's promise about
    values; the derived schemas declare every column nullable (``arrow_schema``)."""

    name: str
    type: str
    nullable: bool = False
    source: str = DERIVED
    note: str = ""  # for the doc


@dataclass(frozen=True)
class Table:
    """One lake table: its columns in stored order, its time and partition columns."""

    name: str
    columns: tuple[Column, ...]
    time_column: str  # the row's time (server clock): what since/until filter on
    partition_column: str  # the UTC date of time_column
    event_type: str | None = None  # None for the quarantine

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)

    @property
    def property_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.source == PROPERTIES)


KAFKA_COLUMNS = (
    Column("kafka_partition", "int", source=KAFKA),
    Column("kafka_offset", "long", source=KAFKA),
)
EVENT_TIME = "received_at"  # the server's clock: a client's event_time can be forged
EVENT_DATE = Column("event_date", "date")

QUARANTINE_TABLE = Table(
    QUARANTINE,
    (
        Column(
            "raw_value",
            "string",
            True,
            KAFKA,
            "the Kafka value, cut at 64 Ki characters; null for a tombstone",
        ),
        Column("raw_truncated", "boolean", note="whether `raw_value` was cut"),
        Column(
            "reason",
            "string",
            note="why it was not stored, e.g. `malformed_json`, "
            "`unknown_event_type`, `missing_field: player_id`, `wrong_type: properties.price`",
        ),
        Column("topic", "string", source=KAFKA),
        *KAFKA_COLUMNS,
        Column("kafka_timestamp", "timestamp", source=KAFKA),
        Column("seen_at", "timestamp", note="extractor clock"),
        Column("seen_date", "date"),
    ),
    time_column="seen_at",
    partition_column="seen_date",
)


def tables_root(root: str) -> str:
    """The folder of every table under the lake root ``root``."""
    return f"{root.rstrip('/')}/{TABLES_DIR}"


def table_uri(root: str, name: str) -> str:
    """Where table ``name`` lives under the lake root ``root`` (what writers and readers open)."""
    return f"{tables_root(root)}/{name}"


def checkpoint_uri(root: str, query_name: str) -> str:
    """The streaming checkpoint of the query ``query_name``, on the same storage as the tables."""
    return f"{root.rstrip('/')}/{CHECKPOINTS_DIR}/{query_name}"


def lake_type(name: str, field: dict[str, Any]) -> str:
    """The lake type of a JSON Schema field; ``ValueError`` for one with no column type."""
    kind = column_type(field)
    if kind not in FROM_JSON:
        raise ValueError(f"field {name!r}: a lake column needs a scalar JSON type, got {kind!r}")
    return FROM_JSON[kind]


def envelope_columns(registry: Registry | None = None) -> tuple[Column, ...]:
    """The envelope's fields in schema order, its objects flattened, ``properties`` out."""
    schema = (registry or load_registry()).envelope_schema
    required = set(schema.get("required", ()))
    columns: list[Column] = []
    for name, field in schema["properties"].items():
        if name == PROPERTIES:
            continue
        if column_type(field) == "object":
            inner = set(field.get("required", ()))
            columns += [
                Column(sub, lake_type(sub, spec), name not in required or sub not in inner, name)
                for sub, spec in field.get("properties", {}).items()
            ]
        else:
            columns.append(Column(name, lake_type(name, field), name not in required, ENVELOPE))
    return tuple(columns)


def property_columns(event_type: str, registry: Registry | None = None) -> tuple[Column, ...]:
    """The newest version of ``event_type``'s properties, in schema order."""
    event = (registry or load_registry()).get(event_type)
    fields = event.properties_schema["properties"]
    return tuple(
        Column(name, lake_type(name, fields[name]), name not in event.required, PROPERTIES)
        for name in event.property_names
    )


def event_table(event_type: str, registry: Registry | None = None) -> Table:
    """The table of ``event_type``; ``ValueError`` if a property would repeat a column name."""
    registry = registry or load_registry()
    columns = (
        *envelope_columns(registry),
        *property_columns(event_type, registry),
        *KAFKA_COLUMNS,
        EVENT_DATE,
    )
    names = [c.name for c in columns]
    clashes = sorted({name for name in names if names.count(name) > 1})
    if clashes:
        raise ValueError(f"{event_type!r}: properties {clashes} repeat a lake column name")
    return Table(event_type, columns, EVENT_TIME, EVENT_DATE.name, event_type)


def tables(registry: Registry | None = None) -> dict[str, Table]:
    """Every table of the lake: event types (sorted), then the quarantine."""
    registry = registry or load_registry()
    taken = sorted({QUARANTINE, *ALIASES} & set(registry.event_types))
    if taken:
        raise ValueError(f"event types {taken} take a name the lake already uses")
    found = {name: event_table(name, registry) for name in registry.event_types}
    return {**found, QUARANTINE: QUARANTINE_TABLE}


def arrow_schema(table: Table) -> pa.Schema:
    """The Arrow schema readers expect (``pyarrow.Schema``): every field nullable, so that
    a table passes whichever writer (Spark, delta-rs) created it."""
    import pyarrow as pa  # the API installs no pyarrow: import only when asked

    types: dict[str, pa.DataType] = {
        "string": pa.string(),
        "long": pa.int64(),
        "int": pa.int32(),
        "double": pa.float64(),
        "boolean": pa.bool_(),
        "timestamp": pa.timestamp("us", tz="UTC"),
        "date": pa.date32(),
    }
    return pa.schema([(c.name, types[c.type]) for c in table.columns])


# --- docs/lake-contract.md -------------------------------------------------------------

BEGIN = (
    "<!-- generated by `python -m questlog_schemas.lake --write docs/lake-contract.md`"
    " from schemas/questlog_schemas/lake.py: edit that, not this -->"
)
END = "<!-- end of generated tables -->"


def _origin(column: Column, table: Table) -> str:
    if column.note:
        return column.note
    if column.name == table.partition_column:
        return f"UTC date of `{table.time_column}`; partition column"
    if column.source in (ENVELOPE, KAFKA):
        return {ENVELOPE: "envelope", KAFKA: "Kafka record"}[column.source]
    return f"envelope `{column.source}`, flattened"


def _rows(columns: tuple[Column, ...], table: Table, origin: bool = True) -> list[str]:
    return [
        f"| `{c.name}` | {c.type} | {'yes' if c.nullable else 'no'} |"
        + (f" {_origin(c, table)} |" if origin else "")
        for c in columns
    ]


def markdown(registry: Registry | None = None) -> str:
    """The generated part of ``docs/lake-contract.md``, markers included."""
    registry = registry or load_registry()
    every = tables(registry)
    some = every[registry.event_types[0]]
    head = ["| column | type | nullable | from |", "|---|---|---|---|"]
    lines = [
        BEGIN,
        "",
        f"## Event tables (`{TABLES_DIR}/<event_type>`), partitioned by `{some.partition_column}`",
        "",
        "One per registered event type: " + ", ".join(f"`{t}`" for t in registry.event_types) + ".",
        "",
        *head,
        *_rows(envelope_columns(registry), some),
        "| *the type's properties* | (below) | | `properties`, flattened |",
        *_rows((*KAFKA_COLUMNS, EVENT_DATE), some),
        "",
    ]
    for name in registry.event_types:
        lines += [
            f"### `{name}` properties",
            "",
            "| column | type | nullable |",
            "|---|---|---|",
            *_rows(property_columns(name, registry), every[name], origin=False),
            "",
        ]
    q = QUARANTINE_TABLE
    lines += [
        f"## Quarantine table (`{TABLES_DIR}/{q.name}`), partitioned by `{q.partition_column}`",
        "",
        *head,
        *_rows(q.columns, q),
        "",
        "Also registered in Trino under the walkthrough's names: "
        + ", ".join(f"`{alias}` = `{t}`" for alias, t in ALIASES.items())
        + ".",
        "",
        END,
    ]
    return "\n".join(lines) + "\n"


def replace_generated(text: str, block: str) -> str:
    """``text`` with its generated block (``BEGIN`` ... ``END``) replaced by ``block``."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError("no generated block (BEGIN ... END markers) found")
    return text[:start] + block + text[end + len(END) :].removeprefix("\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m questlog_schemas.lake")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--markdown", action="store_true", help="print the generated tables")
    mode.add_argument(
        "--write",
        metavar="DOC",
        type=Path,
        help="replace the generated tables in DOC (docs/lake-contract.md)",
    )
    args = parser.parse_args(argv)
    if args.markdown:
        sys.stdout.write(markdown())
    else:
        args.write.write_text(replace_generated(args.write.read_text("utf-8"), markdown()), "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
