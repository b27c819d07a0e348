"""Column names and types of an event type, without pyspark (for the query service)."""

from __future__ import annotations

from typing import Any

from questlog_schemas.registry import Registry, load_registry


def json_type(schema: dict[str, Any]) -> str:
    """The single non-null JSON type of a field.

    Spark and the query service need exactly one type per column, so a schema with none
    or several (other than ``"null"``) is rejected here rather than guessed at.
    """
    declared = schema.get("type")
    types = [declared] if isinstance(declared, str) else list(declared or [])
    non_null = [t for t in types if t != "null"]
    if len(non_null) != 1:
        raise ValueError(f"field needs exactly one non-null JSON type, got {declared!r}")
    return non_null[0]


def column_type(schema: dict[str, Any]) -> str:
    """JSON type of a column; ``"date-time"`` for date-time strings, stored as timestamps."""
    kind = json_type(schema)
    if kind == "string" and schema.get("format") == "date-time":
        return "date-time"
    return kind


def property_columns(event_type: str, registry: Registry | None = None) -> list[tuple[str, str]]:
    """``(name, json type)`` of an event type's properties, in schema order."""
    event = (registry or load_registry()).get(event_type)
    fields = event.properties_schema["properties"]
    return [(name, column_type(fields[name])) for name in event.property_names]
