import pytest

pytest.importorskip("pyspark", reason="the Spark mapping needs pyspark")

from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    DoubleType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from questlog_schemas import Registry, load_registry
from questlog_schemas.spark import (
    all_properties_schema,
    data_type,
    envelope_schema,
    properties_schema,
    struct_type,
)


def test_envelope_schema():
    assert envelope_schema() == StructType(
        [
            StructField("event_id", StringType(), nullable=False),
            StructField("event_type", StringType(), nullable=False),
            StructField("event_time", TimestampType(), nullable=True),
            StructField("received_at", TimestampType(), nullable=False),
            StructField("player_id", StringType(), nullable=False),
            StructField("session_id", StringType(), nullable=True),
            StructField("properties", StringType(), nullable=False),
            StructField(
                "context",
                StructType(
                    [
                        StructField("host", StringType(), nullable=True),
                        StructField("user_agent", StringType(), nullable=True),
                        StructField("accept", StringType(), nullable=True),
                        StructField("client_ip_hash", StringType(), nullable=True),
                    ]
                ),
                nullable=True,
            ),
            StructField("schema_version", LongType(), nullable=False),
        ]
    )


def test_purchase_sword_schema():
    assert properties_schema("purchase_sword") == StructType(
        [
            StructField("sword_type", StringType(), nullable=False),
            StructField("price", DoubleType(), nullable=True),
            StructField("currency", StringType(), nullable=True),
            StructField("quantity", LongType(), nullable=True),
        ]
    )


def test_join_guild_schema(registry):
    assert properties_schema("join_guild", registry) == StructType(
        [
            StructField("guild_id", StringType(), nullable=False),
            StructField("guild_name", StringType(), nullable=True),
            StructField("role", StringType(), nullable=True),
        ]
    )


def test_mapping_of_every_json_type():
    schema = {
        "type": "object",
        "properties": {
            "at": {"type": "string", "format": "date-time"},
            "ok": {"type": "boolean"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "pos": {
                "type": "object",
                "properties": {"x": {"type": "number"}, "level": {"type": "integer"}},
                "required": ["x"],
            },
        },
        "required": ["ok"],
    }
    assert struct_type(schema) == StructType(
        [
            StructField("at", TimestampType(), nullable=True),
            StructField("ok", BooleanType(), nullable=False),
            StructField("tags", ArrayType(StringType()), nullable=True),
            StructField(
                "pos",
                StructType(
                    [
                        StructField("x", DoubleType(), nullable=False),
                        StructField("level", LongType(), nullable=True),
                    ]
                ),
                nullable=True,
            ),
        ]
    )


@pytest.mark.parametrize("schema", [{"type": "array"}, {"type": "null"}, {"type": "xml"}])
def test_unmappable_field_rejected(schema):
    with pytest.raises(ValueError, match=r"items|JSON type"):
        data_type(schema)


def test_all_properties_of_the_packaged_types_in_one_struct(registry):
    # Every packaged schema must pass: the extractor parses with this struct.
    union = all_properties_schema(registry)
    for event_type in registry.event_types:
        for field in properties_schema(event_type, registry).fields:
            assert union[field.name] == StructField(field.name, field.dataType, nullable=True)
    assert len(union.fields) == len(
        {f.name for t in registry.event_types for f in properties_schema(t, registry).fields}
    )
    envelope = envelope_schema(registry, properties=union)
    assert envelope["properties"] == StructField("properties", union, nullable=False)
    assert [f.name for f in envelope.fields] == [f.name for f in envelope_schema().fields]


def _props(**fields: dict) -> dict:
    return {"type": "object", "properties": fields, "additionalProperties": False}


def test_a_shared_property_name_with_one_type_is_one_field():
    envelope = load_registry().envelope_schema
    registry = Registry(
        envelope,
        {
            "emote": {"1-0-0": _props(name={"type": "string", "maxLength": 8})},
            "wave": {
                "1-0-0": _props(name={"type": "string", "maxLength": 16}, loud={"type": "boolean"})
            },
        },
    )
    assert all_properties_schema(registry) == StructType(
        [StructField("name", StringType(), True), StructField("loud", BooleanType(), True)]
    )


def test_a_property_name_with_two_types_is_rejected():
    envelope = load_registry().envelope_schema
    registry = Registry(
        envelope,
        {
            "emote": {"1-0-0": _props(level={"type": "integer"})},
            "wave": {"1-0-0": _props(level={"type": "string", "maxLength": 8})},
        },
    )
    with pytest.raises(ValueError, match=r"'level' is bigint in 'emote' but string in 'wave'"):
        all_properties_schema(registry)
