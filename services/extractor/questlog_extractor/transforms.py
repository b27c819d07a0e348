"""Pure DataFrame transforms from Kafka records to lake rows; they work the same on a
streaming and on a static DataFrame, so unit tests need no Kafka.

Usage::

    parsed = parse(from_kafka(kafka_df))          # typed envelope + reason (null = good)
    good, bad = split(parsed)
    for event_type in registry.event_types:
        to_event_table(good, event_type)          # columns of questlog_schemas.lake
    to_quarantine(bad, seen_at)
    to_tables_frame(parsed)                       # all of the above side by side, one job

    dedup(parsed, "1 hour")                       # streaming only: once per event_id
"""

from __future__ import annotations

import copy
from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from questlog_extractor import validation as V
from questlog_extractor.settings import interval_ms
from questlog_schemas import lake, load_registry
from questlog_schemas.registry import Registry
from questlog_schemas.spark import all_properties_schema, envelope_schema

RAW_COLUMNS = ("raw_value", "topic", "kafka_partition", "kafka_offset", "kafka_timestamp")
PROPERTIES = lake.PROPERTIES
DEDUP_KEY = "_dedup_key"
DEDUP_TIME = "_dedup_time"


def from_kafka(kafka_df: DataFrame) -> DataFrame:
    """Kafka source rows -> the raw columns the rest of the job (and quarantine) uses."""
    return kafka_df.select(
        F.col("value").cast("string").alias("raw_value"),
        F.col("topic"),
        F.col("partition").alias("kafka_partition"),
        F.col("offset").alias("kafka_offset"),
        F.col("timestamp").alias("kafka_timestamp"),
    )


def _envelope_rules_schema(registry: Registry) -> dict[str, Any]:
    """The envelope's JSON Schema minus what ``parse`` checks by hand (properties, type)."""
    schema = copy.deepcopy(registry.envelope_schema)
    schema["properties"].pop(PROPERTIES)
    schema["properties"]["event_type"].pop("enum", None)
    schema["required"] = [r for r in schema.get("required", ()) if r != PROPERTIES]
    return schema


def _first(reasons: list[Column]) -> Column:
    return F.coalesce(*reasons) if reasons else F.lit(None).cast("string")


def _time_column(name: str) -> str:
    return f"_time_{name}"


def parse(raw: DataFrame, registry: Registry | None = None) -> DataFrame:
    """Raw columns -> raw columns + typed envelope fields + ``properties`` + ``reason``:
    null for a storable row, else why not.

    One ``from_json`` per value: ``properties`` is parsed as a struct of every type's
    fields (``all_properties_schema``), then each type's rules look at its own fields;
    a row's table takes its own type's fields from that struct.
    """
    registry = registry or load_registry()
    value = F.col("raw_value")
    sized = V.at_most_chars(value, V.MAX_RAW_CHARS)
    env = F.col("_env")
    event_type = env["event_type"]
    corrupt = env[V.CORRUPT]
    props = env[PROPERTIES]
    schema = envelope_schema(registry, properties=all_properties_schema(registry))
    envelope_specs = {
        name: spec
        for name, spec in registry.envelope_schema["properties"].items()
        if name != PROPERTIES
    }
    # Date-times are parsed in a step of their own: referenced by a rule and by the output,
    # computed once (Spark does not merge a costly expression into two places).
    times = {
        name: V.typed(env[name], spec)
        for name, spec in envelope_specs.items()
        if V.is_date_time(spec)
    }
    staged = raw.withColumn("_env", F.when(sized, V.from_json(value, schema))).select(
        "*", *[col.alias(_time_column(name)) for name, col in times.items()]
    )
    time_of = {name: F.col(_time_column(name)) for name in times}

    # Only rows Spark flagged as corrupt pay for a second look at the text.
    not_object = corrupt.isNotNull() & (
        F.try_parse_json(value).isNull() | ~F.ltrim(value).startswith("{")
    )
    props_present = F.get_json_object(value, f"$.{PROPERTIES}").isNotNull()
    reasons = [
        F.when(value.isNull(), F.lit("malformed_json")),
        F.when(~sized, F.lit("too_large: raw_value")),
        F.when(~F.is_valid_utf8(value), F.lit("malformed_json")),
        F.when(not_object, F.lit("malformed_json")),
        # from_json stops after the first value: "{...} }{" would pass as that object.
        F.when(~F.btrim(value, F.lit(" \t\r\n")).endswith("}"), F.lit("malformed_json")),
        F.when(
            event_type.isNotNull() & ~event_type.isin(list(registry.event_types)),
            F.lit("unknown_event_type"),
        ),
        *V.object_rules(_envelope_rules_schema(registry), env, value, times=time_of),
        F.when(
            props.isNull() & corrupt.isNotNull() & props_present, F.lit(f"wrong_type: {PROPERTIES}")
        ),
        F.when(props.isNull(), F.lit(f"missing_field: {PROPERTIES}")),
    ]
    for t in registry.event_types:
        checks = V.object_rules(
            registry.get(t).properties_schema,
            props,
            value,
            json_path=f"$.{PROPERTIES}",
            prefix=f"{PROPERTIES}.",
            corrupt=corrupt,
        )
        reasons.append(F.when(event_type == t, _first(checks)))

    return staged.select(
        *RAW_COLUMNS,
        *[time_of.get(name, env[name]).alias(name) for name in envelope_specs],
        _typed_properties(props, registry).alias(PROPERTIES),
        _first(reasons).alias("reason"),
    )


def _typed_properties(props: Column, registry: Registry) -> Column:
    """The parsed properties struct with its date-times as timestamps (a name has one
    type across event types: ``all_properties_schema`` checks)."""
    specs: dict[str, dict[str, Any]] = {}
    for t in registry.event_types:
        for name, spec in registry.get(t).properties_schema["properties"].items():
            specs.setdefault(name, spec)
    return F.struct(*[V.typed(props[name], spec).alias(name) for name, spec in specs.items()])


def split(parsed: DataFrame) -> tuple[DataFrame, DataFrame]:
    """(storable rows, rows for the quarantine)."""
    return parsed.where(F.col("reason").isNull()), parsed.where(F.col("reason").isNotNull())


def utc_date(ts: Column) -> Column:
    """The UTC calendar date of a timestamp, whatever the session time zone."""
    return F.date_from_unix_date(F.floor(F.unix_seconds(ts) / 86400).cast("int"))


def _event_table_columns(event_type: str, registry: Registry) -> dict[str, Column]:
    """Name -> value of each column of ``tables/<event_type>`` (``lake.event_table``)."""
    table = lake.event_table(event_type, registry)
    columns: dict[str, Column] = {}
    for column in table.columns:
        if column.name == table.partition_column:
            columns[column.name] = utc_date(F.col(table.time_column))
        elif column.source in (lake.ENVELOPE, lake.KAFKA):  # a column of ``parse``'s rows
            columns[column.name] = F.col(column.name)
        else:  # flattened from the struct it is named after (context, properties)
            columns[column.name] = F.col(column.source)[column.name]
    return columns


def _select(df: DataFrame, columns: dict[str, Column]) -> DataFrame:
    return df.select(*[value.alias(name) for name, value in columns.items()])


def to_event_table(good: DataFrame, event_type: str, registry: Registry | None = None) -> DataFrame:
    """Storable rows of one type -> that type's table rows: context and properties
    flattened, typed per the schema, partitioned by ``event_date`` (UTC)."""
    registry = registry or load_registry()
    return _select(
        good.where(F.col("event_type") == event_type), _event_table_columns(event_type, registry)
    )


def seen_later() -> Column:
    """A null ``seen_at``, for a writer that sets it itself (the same code every batch)."""
    return F.lit(None).cast("timestamp")


def _quarantine_columns(seen_at: Column | None) -> dict[str, Column]:
    """Name -> value of each column of ``tables/quarantine`` (``lake.QUARANTINE_TABLE``)."""
    table = lake.QUARANTINE_TABLE
    seen = F.current_timestamp() if seen_at is None else seen_at
    raw = F.col("raw_value")
    computed = {
        "raw_value": F.make_valid_utf8(F.substring(raw, 1, V.MAX_RAW_CHARS)),
        "raw_truncated": F.coalesce(~V.at_most_chars(raw, V.MAX_RAW_CHARS), F.lit(False)),
        table.time_column: seen,
        table.partition_column: utc_date(seen),
    }
    # The others are ``parse``'s columns of the same name (reason, topic, Kafka position).
    return {name: computed.get(name, F.col(name)) for name in table.names}


def to_quarantine(bad: DataFrame, seen_at: Column | None = None) -> DataFrame:
    """Rows that cannot be stored -> quarantine rows (raw value cut at 64 Ki characters;
    bytes that are not UTF-8 replaced by U+FFFD so every reader can decode it)."""
    return _select(bad, _quarantine_columns(seen_at))


def to_tables_frame(
    batch: DataFrame, registry: Registry | None = None, seen_at: Column | None = None
) -> DataFrame:
    """Every table's columns side by side, one row per parsed row, so that one collect
    serves every table: a row belongs to table ``event_type`` when ``reason`` is null,
    else to the quarantine. The values are those of ``to_event_table``/``to_quarantine``;
    a property several types share is one column (of one type: the registry checks)."""
    registry = registry or load_registry()
    columns: dict[str, Column] = {}
    for event_type in registry.event_types:
        for name, value in _event_table_columns(event_type, registry).items():
            columns.setdefault(name, value)
    for name, value in _quarantine_columns(seen_at).items():
        columns.setdefault(name, value)
    return _select(batch, columns)


def dedup(parsed: DataFrame, watermark: str, how: str = "ttl") -> DataFrame:
    """Each event_id once within the dedup window (``watermark``, e.g. '1 hour').

    ``how``: "ttl", an id is remembered for ``watermark`` of processing time from the batch
    that first saw it (the JVM class ``questlog.extractor.TtlDedup``; nothing is dropped as
    late); "watermark", Spark's ``dropDuplicatesWithinWatermark`` on the server clock
    (``received_at``), which also drops rows older than the watermark as late.

    Quarantine rows are keyed by their Kafka position and carry no event time, so they
    are never merged with each other and never count as late.
    """
    good = F.col("reason").isNull()
    keyed = (
        parsed
        # Only the quarantine needs the raw text: the shuffle and the cached batch skip it.
        .withColumn("raw_value", F.when(~good, F.col("raw_value"))).withColumn(
            DEDUP_KEY,
            F.when(good, F.col("event_id")).otherwise(
                F.concat_ws("/", F.lit("q"), "topic", "kafka_partition", "kafka_offset")
            ),
        )
    )
    if how == "ttl":
        spark = parsed.sparkSession
        jvm = spark._jvm
        assert jvm is not None  # a classic (not Connect) session: the job's
        ttl = jvm.questlog.extractor.TtlDedup.apply(keyed._jdf, DEDUP_KEY, interval_ms(watermark))
        return DataFrame(ttl, spark)
    if how != "watermark":
        raise ValueError(f"unknown dedup {how!r}: ttl or watermark")
    return (
        keyed.withColumn(DEDUP_TIME, F.when(good, F.col(lake.EVENT_TIME)))
        .withWatermark(DEDUP_TIME, watermark)
        .dropDuplicatesWithinWatermark([DEDUP_KEY])
    )
