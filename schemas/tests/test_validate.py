import pytest

from questlog_schemas import Violation
from questlog_schemas.violation import MAX_MESSAGE_CHARS, MAX_VIOLATIONS


def paths(violations: list[Violation]) -> list[str]:
    return sorted(v.path for v in violations)


def test_valid_purchase_sword(registry, purchase_sword):
    assert registry.validate(purchase_sword) == []


def test_valid_join_guild(registry, join_guild):
    assert registry.validate(join_guild) == []


def test_minimal_purchase_sword_is_valid(registry, purchase_sword):
    for optional in ("event_time", "session_id", "context"):
        del purchase_sword[optional]
    purchase_sword["properties"] = {"sword_type": "longsword"}
    assert registry.validate(purchase_sword) == []


@pytest.mark.parametrize(
    ("field", "value", "path"),
    [
        ("properties", {"price": 1}, "properties.sword_type"),  # missing required
        ("properties", {"sword_type": "x", "price": "10"}, "properties.price"),  # wrong type
        ("properties", {"sword_type": "x", "price": -1}, "properties.price"),
        ("properties", {"sword_type": "x", "quantity": 0}, "properties.quantity"),
        ("properties", {"sword_type": "x", "quantity": True}, "properties.quantity"),
        ("properties", {"sword_type": "x", "damage": 3}, "properties.damage"),  # extra field
        ("properties", {"sword_type": "x", "currency": "eur"}, "properties.currency"),
        ("properties", {"sword_type": "x", "currency": "E1R"}, "properties.currency"),
        ("properties", {"sword_type": "x" * 65}, "properties.sword_type"),
        ("event_type", "buy_shield", "event_type"),  # unknown type
        ("event_id", "not-a-uuid", "event_id"),
        ("event_id", "0b6e5a52-4c7e-4f5e-9a35-1f2b3c4d5e6", "event_id"),
        ("received_at", "yesterday", "received_at"),
        ("received_at", "2024-13-01T00:00:00Z", "received_at"),
        ("event_time", "2024-05-01T12:00:00", "event_time"),  # RFC 3339 needs an offset
        ("context", {"host": "h", "cookie": "session=abc"}, "context.cookie"),
        ("context", {"host": 1}, "context.host"),
        ("player_id", "", "player_id"),
        ("player_id", "p" * 129, "player_id"),
        ("schema_version", 2, "schema_version"),
    ],
)
def test_violation_path(registry, purchase_sword, field, value, path):
    purchase_sword[field] = value
    assert paths(registry.validate(purchase_sword)) == [path]


@pytest.mark.parametrize(
    "field", ["event_id", "event_type", "received_at", "player_id", "properties", "schema_version"]
)
def test_missing_envelope_field(registry, purchase_sword, field):
    del purchase_sword[field]
    assert paths(registry.validate(purchase_sword)) == [field]


def test_extra_envelope_field(registry, purchase_sword):
    purchase_sword["sword_type"] = "longsword"
    assert paths(registry.validate(purchase_sword)) == ["sword_type"]


def test_unknown_event_type_is_one_violation(registry, purchase_sword):
    purchase_sword["event_type"] = "buy_shield"
    [violation] = registry.validate(purchase_sword)
    assert violation.path == "event_type"
    assert "buy_shield" in violation.message


def test_properties_checked_against_their_own_type(registry, join_guild):
    join_guild["properties"] = {"sword_type": "longsword"}
    assert paths(registry.validate(join_guild)) == ["properties.guild_id", "properties.sword_type"]


def test_bad_role(registry, join_guild):
    join_guild["properties"]["role"] = "emperor"
    assert paths(registry.validate(join_guild)) == ["properties.role"]


def test_several_violations_reported_together(registry, purchase_sword):
    purchase_sword["event_id"] = "nope"
    purchase_sword["properties"]["price"] = "free"
    assert paths(registry.validate(purchase_sword)) == ["event_id", "properties.price"]


@pytest.mark.parametrize("event", [[], "purchase_sword", None, 1])
def test_non_object_event(registry, event):
    assert paths(registry.validate(event)) == [""]


def test_violations_are_bounded(registry, purchase_sword):
    purchase_sword["properties"] = {f"k{i}": i for i in range(1000)} | {"sword_type": "s" * 10**6}
    violations = registry.validate(purchase_sword)
    assert len(violations) == MAX_VIOLATIONS
    assert max(len(v.message) for v in violations) <= MAX_MESSAGE_CHARS


def test_validate_properties(registry):
    assert registry.validate_properties("purchase_sword", {"sword_type": "katana"}) == []
    assert paths(registry.validate_properties("purchase_sword", {"price": "1"})) == [
        "properties.price",
        "properties.sword_type",
    ]
    assert paths(registry.validate_properties("buy_shield", {})) == ["event_type"]


def test_violation_is_frozen():
    violation = Violation("properties.price", "bad")
    with pytest.raises(AttributeError):
        violation.path = "x"  # type: ignore[misc]


def test_valid_level_up(registry, level_up):
    assert registry.validate(level_up) == []


@pytest.mark.parametrize(
    "properties",
    [
        {"from_level": 1, "to_level": 2, "seconds_played": 0},  # the first level, at once
        {"from_level": 9, "to_level": 12, "seconds_played": 3600},  # several levels at a time
        {"from_level": 999_999, "to_level": 1_000_000, "seconds_played": 0.25},
    ],
)
def test_level_up_edges_are_valid(registry, level_up, properties):
    level_up["properties"] = properties
    assert registry.validate(level_up) == []


@pytest.mark.parametrize(
    ("properties", "violations"),
    [
        (
            {"from_level": 5, "to_level": 5, "seconds_played": 10},
            [("properties.to_level", "must be greater than from_level (5)")],
        ),
        (
            {"from_level": 7, "to_level": 3, "seconds_played": 10},
            [("properties.to_level", "must be greater than from_level (7)")],
        ),
        (
            {"from_level": 1, "to_level": 2, "seconds_played": -1},
            [("properties.seconds_played", "-1 is less than the minimum of 0")],
        ),
        ({"from_level": 1, "seconds_played": 10}, [("properties.to_level", "is required")]),
        ({"to_level": 2, "seconds_played": 10}, [("properties.from_level", "is required")]),
        ({"from_level": 1, "to_level": 2}, [("properties.seconds_played", "is required")]),
        (
            {"from_level": 0, "to_level": 1, "seconds_played": 10},
            [("properties.from_level", "0 is less than the minimum of 1")],
        ),
        (
            {"from_level": 1.5, "to_level": 2, "seconds_played": 10},
            [("properties.from_level", '1.5 is not of type "integer"')],
        ),
        (
            {"from_level": "4", "to_level": 5, "seconds_played": 10},
            [("properties.from_level", '"4" is not of type "integer"')],
        ),
        (
            {"from_level": 4, "to_level": 5, "seconds_played": 10, "xp": 100},
            [("properties.xp", "is not an allowed property")],
        ),
    ],
)
def test_invalid_level_up_is_explained(registry, level_up, properties, violations):
    level_up["properties"] = properties
    assert sorted((v.path, v.message) for v in registry.validate(level_up)) == violations
