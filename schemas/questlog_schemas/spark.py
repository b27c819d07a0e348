"""Spark StructTypes derived from the packaged JSON Schemas (never written by hand).

The extractor parses Kafka values in two steps: ``from_json(value, envelope_schema())``
keeps ``properties`` as its raw JSON text, then ``from_json(properties,
properties_schema(event_type))`` per type, so one generic job serves every type.

Usage::

    from questlog_schemas.spark import envelope_schema, properties_schema

Mapping: string -> String (date-time -> Timestamp), integer -> Long, number -> Double,
boolean -> Boolean, object -> Struct, array -> Array; nullable = not required.
"""

from __future__ import annotations

from typing import Any

try:
    from pyspark.sql.types import (
        ArrayType,
        BooleanType,
        DataType,
        DoubleType,
        LongType,
        StringType,
        StructField,
        StructType,
        TimestampType,
    )
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("questlog_schemas.spark needs pyspark installed") from exc

from questlog_schemas.columns import json_type
from questlog_schemas.registry import Registry, load_registry

_SCALARS: dict[str, type[DataType]] = {
    "integer": LongType,
    "number": DoubleType,
    "boolean": BooleanType,
}


def data_type(schema: dict[str, Any]) -> DataType:
    """Spark type of one JSON Schema field."""
    kind = json_type(schema)
    if kind == "string":
        return TimestampType() if schema.get("format") == "date-time" else StringType()
    if kind in _SCALARS:
        return _SCALARS[kind]()
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


def envelope_schema(registry: Registry | None = None) -> StructType:
    """The envelope, with ``properties`` kept as raw JSON text for a second parse."""
    schema = (registry or load_registry()).envelope_schema
    fields = dict(schema["properties"], properties={"type": "string"})
    return struct_type({**schema, "properties": fields})


def properties_schema(event_type: str, registry: Registry | None = None) -> StructType:
    """StructType of the newest version of ``event_type``'s properties."""
    return struct_type((registry or load_registry()).get(event_type).properties_schema)
