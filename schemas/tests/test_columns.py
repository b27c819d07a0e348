import pytest

from questlog_schemas import Registry, UnknownEventType, lake, property_columns
from questlog_schemas.columns import column_type, json_type


def test_purchase_sword_columns():
    assert property_columns("purchase_sword") == [
        ("sword_type", "string"),
        ("price", "number"),
        ("currency", "string"),
        ("quantity", "integer"),
    ]


def test_join_guild_columns(registry):
    assert property_columns("join_guild", registry) == [
        ("guild_id", "string"),
        ("guild_name", "string"),
        ("role", "string"),
    ]


def test_level_up_columns(registry):
    assert property_columns("level_up", registry) == [
        ("from_level", "integer"),
        ("to_level", "integer"),
        ("seconds_played", "number"),
    ]
    table = lake.event_table("level_up", registry)
    assert [(c.name, c.type, c.nullable) for c in table.columns if c.source == lake.PROPERTIES] == [
        ("from_level", "long", False),
        ("to_level", "long", False),
        ("seconds_played", "double", False),
    ]


def test_unknown_type():
    with pytest.raises(UnknownEventType):
        property_columns("buy_shield")


def test_date_time_and_nullable_types(registry: Registry):
    assert column_type({"type": "string", "format": "date-time"}) == "date-time"
    assert column_type({"type": ["null", "integer"]}) == "integer"


@pytest.mark.parametrize("schema", [{}, {"type": ["string", "integer"]}, {"type": "null"}])
def test_ambiguous_type_rejected(schema):
    with pytest.raises(ValueError, match="exactly one"):
        json_type(schema)
