"""Column expressions that check parsed JSON against the registered JSON Schemas.

Everything here is a plain Spark expression (no Python UDF): ``from_json`` does the
parsing, these rules say why a row cannot be stored. They are derived from the schema
files (required, type, maxLength/minLength, enum, const, pattern, minimum/maximum,
format uuid/date-time, and the registry's ``x-questlog-greaterThan``), so a new field or
type needs no code here.

Reasons (the quarantine table's ``reason`` column):

- ``too_large: raw_value``   the Kafka value is over MAX_RAW_CHARS (not parsed at all)
- ``malformed_json``         not a JSON object
- ``unknown_event_type``     ``event_type`` names no registered type
- ``missing_field: <path>``  a required field is absent or null
- ``wrong_type: <path>``     present, but not of the declared JSON type
- ``too_large: <path>``      a string over its ``maxLength``
- ``invalid_value: <path>``  enum/const/pattern/minimum/maximum/minLength/format, or not
  greater than the field ``x-questlog-greaterThan`` names

Strings are parsed leniently: Spark turns a JSON number in a string field into its
text, so ``{"player_id": 5}`` is stored as ``"5"`` (the API rejects it upstream); an
object or array there is refused (``wrong_type``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql.types import DataType, StringType, StructField, StructType, TimestampType

from questlog_schemas.columns import json_type
from questlog_schemas.registry import GREATER_THAN

CORRUPT = "_corrupt_record"
MAX_RAW_CHARS = 64 * 1024
UUID_RE = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
# RFC 3339 date-time (JSON Schema's format); Spark's own cast would also take "12345".
DATE_TIME_RE = r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"


def at_most_chars(text: Column, limit: int) -> Column:
    """``length(text) <= limit`` without counting characters for most rows: counting is
    a scan of the string (a fifth of the job's CPU on the raw value), the byte length is
    known, and a text of at most ``limit`` bytes has at most ``limit`` characters."""
    return (F.octet_length(text) <= limit) | (F.length(text) <= limit)


def parse_type(data_type: DataType) -> DataType:
    """The type to hand ``from_json``: timestamps stay strings, checked and cast by us."""
    if isinstance(data_type, TimestampType):
        return StringType()
    if isinstance(data_type, StructType):
        return StructType(
            [StructField(f.name, parse_type(f.dataType), True) for f in data_type.fields]
        )
    return data_type


def parse_schema(schema: StructType) -> StructType:
    """``schema`` ready for ``from_json`` with a corrupt-record column."""
    parsed = parse_type(schema)
    assert isinstance(parsed, StructType)
    return StructType([*parsed.fields, StructField(CORRUPT, StringType(), True)])


def from_json(text: Column, schema: StructType) -> Column:
    # NaN/Infinity are not JSON; Spark reads them (and the strings "NaN", "Infinity" in a
    # number field) as floats unless told not to, and a NaN price passes every rule.
    return F.from_json(
        text,
        parse_schema(schema),
        {"columnNameOfCorruptRecord": CORRUPT, "allowNonNumericNumbers": "false"},
    )


def is_date_time(spec: dict[str, Any]) -> bool:
    return json_type(spec) == "string" and spec.get("format") == "date-time"


def typed(value: Column, spec: dict[str, Any]) -> Column:
    """The stored value of a parsed field: date-times become timestamps, null if invalid."""
    if is_date_time(spec):
        return F.when(value.rlike(DATE_TIME_RE), F.try_to_timestamp(value))
    return value


def _reason(condition: Column, text: str) -> Column:
    return F.when(condition, F.lit(text))


def field_rules(
    spec: dict[str, Any],
    value: Column,
    raw: Column,
    json_path: str,
    path: str,
    required: bool,
    corrupt: Column,
    times: Mapping[str, Column] | None = None,
) -> list[Column]:
    """Reasons (null when fine) for one field; ``value`` is what from_json made of it.

    A field that from_json nulled although its raw JSON has a value had the wrong type.
    Spark sets the corrupt-record column whenever a conversion failed, so the costly
    raw look-up (``get_json_object``) only runs for those rare rows. ``times`` maps a
    date-time field's path to its ``typed`` value computed once beforehand (parsing a
    timestamp costs more than the rest of a field's rules).
    """
    kind = json_type(spec)
    present_in_raw = F.get_json_object(raw, json_path).isNotNull()
    rules: list[Column] = []
    if kind != "string":
        rules.append(
            _reason(value.isNull() & corrupt.isNotNull() & present_in_raw, f"wrong_type: {path}")
        )
    if required:
        rules.append(_reason(value.isNull(), f"missing_field: {path}"))
    if kind == "string":
        # from_json hands an object or array in a string field over as its JSON text:
        # confirmed in the raw text only for the rare values that look like one.
        name = path.rsplit(".", 1)[-1]
        rules.append(
            _reason(
                (value.startswith("{") | value.startswith("["))
                & raw.rlike(f'"{name}"\\s*:\\s*[\\[{{]'),
                f"wrong_type: {path}",
            )
        )
        if "maxLength" in spec:
            rules.append(_reason(~at_most_chars(value, spec["maxLength"]), f"too_large: {path}"))
        if "minLength" in spec:
            rules.append(_reason(F.length(value) < spec["minLength"], f"invalid_value: {path}"))
        if "pattern" in spec:
            rules.append(_reason(~value.rlike(spec["pattern"]), f"invalid_value: {path}"))
        if is_date_time(spec):
            parsed = (times or {}).get(path)
            parsed = typed(value, spec) if parsed is None else parsed
            rules.append(_reason(value.isNotNull() & parsed.isNull(), f"wrong_type: {path}"))
        if spec.get("format") == "uuid":
            rules.append(_reason(~value.rlike(UUID_RE), f"invalid_value: {path}"))
    if kind in ("integer", "number"):
        if "minimum" in spec:
            rules.append(_reason(value < spec["minimum"], f"invalid_value: {path}"))
        if "maximum" in spec:
            rules.append(_reason(value > spec["maximum"], f"invalid_value: {path}"))
    if "enum" in spec:
        rules.append(_reason(~value.isin(list(spec["enum"])), f"invalid_value: {path}"))
    if "const" in spec:
        rules.append(_reason(value != F.lit(spec["const"]), f"invalid_value: {path}"))
    if kind == "object":
        rules.extend(object_rules(spec, value, raw, json_path, path + ".", corrupt, times))
    return rules


def object_rules(
    schema: dict[str, Any],
    parsed: Column,
    raw: Column,
    json_path: str = "$",
    prefix: str = "",
    corrupt: Column | None = None,
    times: Mapping[str, Column] | None = None,
) -> list[Column]:
    """Reasons for every field of an object schema, in schema order, then its comparisons
    (a field's own rule is the reason first named)."""
    corrupt = parsed[CORRUPT] if corrupt is None else corrupt
    required = set(schema.get("required", ()))
    rules = [
        rule
        for name, spec in schema.get("properties", {}).items()
        for rule in field_rules(
            spec,
            parsed[name],
            raw,
            f"{json_path}.{name}",
            prefix + name,
            name in required,
            corrupt,
            times,
        )
    ]
    for greater, lesser in schema.get(GREATER_THAN, {}).items():  # as Registry.validate
        high, low = parsed[greater], parsed[lesser]
        rules.append(
            _reason(
                high.isNotNull() & low.isNotNull() & (high <= low),
                f"invalid_value: {prefix}{greater}",
            )
        )
    return rules
