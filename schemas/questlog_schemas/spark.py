"""Spark StructTypes derived from the packaged JSON Schemas (never written by hand).

The extractor parses each Kafka value once, with ``envelope_schema(properties=
all_properties_schema())``: ``properties`` becomes one struct holding the fields of every
event type (each row fills its own type's), so one generic job serves every type without a
second parse. That needs a property name to have one type across event types, which
``all_properties_schema`` checks.

The lake tables' Spark schemas (``table_schema``) come from ``questlog_schemas.lake``.

Usage::

    from questlog_schemas.spark import all_properties_schema, envelope_schema, properties_schema
    from questlog_schemas.spark import table_schema   # table_schema(lake.event_table(t))

Mapping: a scalar through its lake type (``lake.FROM_JSON``): string -> String (date-time
-> Timestamp), integer -> Long, number -> Double, boolean -> Boolean; object -> Struct,
array -> Array; nullable = not required.
"""

from __future__ import annotations

from typing import Any

try:
    from pyspark.sql.types import (
        ArrayType,
        BooleanType,
        DataType,
        DateType,
        DoubleType,
        IntegerType,
        LongType,
        StringType,
        StructField,
        StructType,
        TimestampType,
    )
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("questlog_schemas.spark needs pyspark installed") from exc

from questlog_schemas import lake
from questlog_schemas.columns import column_type
from questlog_schemas.registry import Registry, load_registry

_LAKE_TYPES: dict[str, type[DataType]] = {
    "string": StringType,
    "long": LongType,
    "int": IntegerType,
    "double": DoubleType,
    "boolean": BooleanType,
    "timestamp": TimestampType,
    "date": DateType,
}


def data_type(schema: dict[str, Any]) -> DataType:
    """Spark type of one JSON Schema field."""
    kind = column_type(schema)
    if kind in lake.FROM_JSON:
        return _LAKE_TYPES[lake.FROM_JSON[kind]]()
    if kind == "object":
        return struct_type(schema)
    if kind == "array":
        if "items" not in schema:
            raise ValueError("array fields need an 'items' schema to map to Spark")
        return ArrayType(data_type(schema["items"]))
    raise ValueError(f"no Spark mapping for JSON type {kind!r}")


def struct_type(schema: dict[str, Any]) -> StructType:
    """StructType of an object schema, fields in schema order."""
    required = set(schema.get("required", ()))
    return StructType(
        [
            StructField(name, data_type(field), nullable=name not in required)
            for name, field in schema.get("properties", {}).items()
        ]
    )


def envelope_schema(
    registry: Registry | None = None, properties: DataType | None = None
) -> StructType:
    """The envelope; ``properties`` is of type ``properties`` if given, else its raw JSON
    text (a string, for a second parse)."""
    schema = (registry or load_registry()).envelope_schema
    fields = dict(schema["properties"], properties={"type": "string"})
    envelope = struct_type({**schema, "properties": fields})
    if properties is None:
        return envelope
    return StructType(
        [
            StructField(f.name, properties, f.nullable) if f.name == "properties" else f
            for f in envelope.fields
        ]
    )


def all_properties_schema(registry: Registry | None = None) -> StructType:
    """One struct with the properties of every event type, all nullable, in type order.

    A name used by several types must map to the same Spark type in each (a lake column
    name then means one thing in every table); otherwise this raises ``ValueError``.
    """
    registry = registry or load_registry()
    fields: dict[str, tuple[str, StructField]] = {}
    for event_type in registry.event_types:
        for field in properties_schema(event_type, registry).fields:
            seen = fields.get(field.name)
            if seen is None:
                fields[field.name] = (event_type, StructField(field.name, field.dataType, True))
            elif seen[1].dataType != field.dataType:
                raise ValueError(
                    f"property {field.name!r} is {seen[1].dataType.simpleString()} in "
                    f"{seen[0]!r} but {field.dataType.simpleString()} in {event_type!r}: a "
                    "property name must have one type across event types"
                )
    return StructType([field for _, field in fields.values()])


def properties_schema(event_type: str, registry: Registry | None = None) -> StructType:
    """StructType of the newest version of ``event_type``'s properties."""
    return struct_type((registry or load_registry()).get(event_type).properties_schema)


def table_schema(table: lake.Table) -> StructType:
    """Spark schema of a lake table; every field nullable (``lake.arrow_schema`` says why)."""
    return StructType([StructField(c.name, _LAKE_TYPES[c.type](), True) for c in table.columns])
