import json
import subprocess
import sys
from pathlib import Path

import jsonschema_rs
import pytest

import questlog_schemas
from questlog_schemas import EventType, Registry, UnknownEventType, load_registry
from questlog_schemas.registry import version_key

DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
JSON_DIR = Path(questlog_schemas.__file__).parent / "json"
SCHEMA_FILES = sorted(JSON_DIR.glob("*/*.json"))
ENVELOPE = JSON_DIR / "envelope" / "1-0-0.json"


def load(path: Path) -> dict:
    return json.loads(path.read_text("utf-8"))


def test_meta_validation_rejects_a_broken_schema():
    # Guards the next test: meta.is_valid must be able to say no.
    assert not jsonschema_rs.meta.is_valid({"$schema": DRAFT_2020_12, "type": "text"})


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_file_is_a_draft_2020_12_schema(path):
    schema = load(path)
    assert schema["$schema"] == DRAFT_2020_12
    jsonschema_rs.meta.validate(schema)
    assert schema["$id"] == f"urn:questlog:{path.parent.name}:{path.stem}"
    version_key(path.stem)


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_field_is_typed_and_bounded(path):
    """The house rules for a contract file: closed objects, explicit types, bounded strings."""

    def check(schema: dict, where: str) -> None:
        assert "type" in schema, where
        if schema["type"] == "object":
            assert schema.get("additionalProperties") is False, where
            for name, field in schema.get("properties", {}).items():
                check(field, f"{where}.{name}")
        if schema["type"] == "string":
            assert "maxLength" in schema, where

    schema = load(path)
    if path == ENVELOPE:  # properties is checked by the type's own schema
        schema["properties"].pop("properties")
    check(schema, path.parent.name)


def test_registry_loads_exactly_the_files_present(registry):
    on_disk = {(p.parent.name, p.stem) for p in SCHEMA_FILES if p.parent != ENVELOPE.parent}
    loaded = {(name, v) for name in registry.event_types for v in registry.versions(name)}
    assert loaded == on_disk
    assert {("purchase_sword", "1-0-0"), ("join_guild", "1-0-0"), ("level_up", "1-0-0")} <= loaded
    for name, version in loaded:
        expected = load(JSON_DIR / name / f"{version}.json")
        assert registry.get(name, version).properties_schema == expected


def test_envelope_is_the_file_narrowed_to_registered_types(registry):
    expected = load(ENVELOPE)
    expected["properties"]["event_type"]["enum"] = ["join_guild", "level_up", "purchase_sword"]
    assert registry.envelope_schema == expected


def test_load_registry_is_cached():
    assert load_registry() is load_registry()


def test_event_types_sorted(registry):
    assert registry.event_types == ("join_guild", "level_up", "purchase_sword")


def test_get_event_type(registry):
    assert registry.get("purchase_sword") == EventType(
        name="purchase_sword",
        version="1-0-0",
        properties_schema=load(JSON_DIR / "purchase_sword" / "1-0-0.json"),
        property_names=("sword_type", "price", "currency", "quantity"),
        required=("sword_type",),
    )
    guild = registry.get("join_guild")
    assert (guild.property_names, guild.required) == (
        ("guild_id", "guild_name", "role"),
        ("guild_id",),
    )
    level = registry.get("level_up")
    assert (level.property_names, level.required, level.greater_than) == (
        ("from_level", "to_level", "seconds_played"),
        ("from_level", "to_level", "seconds_played"),
        (("to_level", "from_level"),),
    )


def test_unknown_event_type(registry):
    with pytest.raises(UnknownEventType):
        registry.get("buy_shield")
    with pytest.raises(UnknownEventType):
        registry.get("purchase_sword", "9-9-9")
    with pytest.raises(UnknownEventType):
        registry.versions("buy_shield")


def props(**fields: dict) -> dict:
    return {"type": "object", "properties": fields, "additionalProperties": False}


def test_newest_version_wins_in_schemaver_order():
    envelope = load(ENVELOPE)
    registry = Registry(
        envelope,
        {
            "emote": {
                "1-9-0": props(name={"type": "string", "maxLength": 8}),
                "1-10-0": props(name={"type": "string", "maxLength": 8}, loud={"type": "boolean"}),
            }
        },
    )
    assert registry.versions("emote") == ("1-9-0", "1-10-0")
    assert registry.get("emote").version == "1-10-0"
    assert registry.validate_properties("emote", {"name": "wave", "loud": True}) == []


@pytest.mark.parametrize(
    ("name", "version"),
    [("Emote", "1-0-0"), ("envelope", "1-0-0"), ("emote", "1.0.0"), ("emote", "01-0-0")],
)
def test_bad_names_and_versions_rejected(name, version):
    with pytest.raises(ValueError, match=r"event type|SchemaVer"):
        Registry(load(ENVELOPE), {name: {version: props()}})


def test_package_import_does_not_import_pyspark():
    code = (
        "import sys, questlog_schemas; questlog_schemas.load_registry(); "
        "print('pyspark' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
