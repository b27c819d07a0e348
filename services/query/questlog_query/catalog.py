"""The tables the service can read, as Arrow schemas: the layout is ``questlog_schemas.lake``.

These names are the allow-list every user-supplied column name (``group_by``) is checked
against before it reaches SQL. Nothing here names an event type or a column: a new event
type in ``schemas/`` is a new table here.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import pyarrow as pa

from questlog_schemas import lake


@dataclass(frozen=True)
class TableSpec:
    """One lake table: its name, expected Arrow schema and time columns."""

    name: str
    schema: pa.Schema
    time_column: str  # what since/until filter on
    date_column: str  # the partition column derived from time_column (UTC date)
    is_event_table: bool
    property_names: tuple[str, ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self.schema.names)


def _spec(table: lake.Table) -> TableSpec:
    return TableSpec(
        table.name,
        lake.arrow_schema(table),
        table.time_column,
        table.partition_column,
        table.event_type is not None,
        table.property_names,
    )


def event_table_schema(event_type: str) -> pa.Schema:
    return lake.arrow_schema(lake.event_table(event_type))


@cache
def catalog() -> dict[str, TableSpec]:
    """Every table, event types first (sorted), quarantine last."""
    return {name: _spec(table) for name, table in lake.tables().items()}


def event_types() -> tuple[str, ...]:
    return tuple(name for name, spec in catalog().items() if spec.is_event_table)


def quote(identifier: str) -> str:
    """Quote a name that was already checked against the catalog (never raw user input)."""
    return '"' + identifier.replace('"', '""') + '"'
