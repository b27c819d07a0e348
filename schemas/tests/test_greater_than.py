"""``x-questlog-greaterThan``: the one comparison JSON Schema cannot express, checked by
the registry (the extractor's rules have their own test in services/extractor)."""

import jsonschema_rs
import pytest

from questlog_schemas import Registry, Violation
from questlog_schemas.registry import ENVELOPE, GREATER_THAN, read_schema_files

STAGES = {
    "type": "object",
    "properties": {
        "low": {"type": "integer", "minimum": 1},
        "high": {"type": "number"},
        "label": {"type": "string", "maxLength": 8},
    },
    "required": ["low"],
    "additionalProperties": False,
    GREATER_THAN: {"high": "low"},
}


def registry_with(schema: dict) -> Registry:
    files = read_schema_files()
    envelope = files.pop(ENVELOPE)["1-0-0"]
    return Registry(envelope, {**files, "stage": {"1-0-0": schema}})


def event(**properties) -> dict:
    return {
        "event_id": "0b6e5a52-4c7e-4f5e-9a35-1f2b3c4d5e6f",
        "event_type": "stage",
        "received_at": "2024-05-01T10:00:00Z",
        "player_id": "p1",
        "schema_version": 1,
        "properties": properties,
    }


def test_it_is_an_annotation_to_json_schema_itself():
    jsonschema_rs.meta.validate(
        {"$schema": "https://json-schema.org/draft/2020-12/schema", **STAGES}
    )
    assert jsonschema_rs.Draft202012Validator(STAGES).is_valid({"low": 5, "high": 1})


@pytest.mark.parametrize("high", [2, 2.5, 100])
def test_greater_is_valid(high):
    assert registry_with(STAGES).validate(event(low=1, high=high)) == []


@pytest.mark.parametrize("high", [1, 0.5, -3])
def test_not_greater_names_the_field_and_the_other_one(high):
    assert registry_with(STAGES).validate(event(low=1, high=high)) == [
        Violation("properties.high", "must be greater than low (1)")
    ]


def test_properties_alone_are_checked_too():
    registry = registry_with(STAGES)
    assert registry.validate_properties("stage", {"low": 4, "high": 4}) == [
        Violation("properties.high", "must be greater than low (4)")
    ]
    assert registry.validate_properties("stage", {"low": 4, "high": 5}) == []


@pytest.mark.parametrize(
    "properties",
    [{"low": 3}, {"high": 1, "low": None}, {"low": 3, "high": "2"}, {"low": 3, "high": True}],
)
def test_a_missing_or_mistyped_value_is_left_to_the_schema(properties):
    """No comparison then: the schema's own violation (if any) is the only one."""
    violations = registry_with(STAGES).validate(event(**properties))
    assert all(v.message != "must be greater than low (3)" for v in violations)
    assert len({v.path for v in violations}) == len(violations)


def test_other_violations_are_reported_alongside():
    violations = registry_with(STAGES).validate(event(low=5, high=2, label="x" * 9))
    assert sorted(v.path for v in violations) == ["properties.high", "properties.label"]


@pytest.mark.parametrize(
    ("declared", "match"),
    [
        ({"high": "nope"}, "names 'nope'"),
        ({"label": "low"}, "names 'label'"),
        (["high", "low"], "must be an object"),
    ],
)
def test_a_rule_no_consumer_could_check_is_refused_at_load(declared, match):
    with pytest.raises(ValueError, match=match):
        registry_with({**STAGES, GREATER_THAN: declared})


def test_types_without_the_keyword_are_unaffected(registry):
    assert all(
        registry.get(name).greater_than == ()
        or GREATER_THAN in registry.get(name).properties_schema
        for name in registry.event_types
    )
    assert registry.get("purchase_sword").greater_than == ()
