"""Locust's payloads come from the schemas and are valid events."""

import random

import pytest

from questlog_loadtest import payloads
from questlog_schemas import Registry, load_registry
from questlog_schemas.registry import ENVELOPE, GREATER_THAN, read_schema_files

REGISTRY = load_registry()


@pytest.mark.parametrize("event_type", REGISTRY.event_types)
def test_generated_events_are_valid_once_the_server_fills_them(event_type):
    rng = random.Random(7)
    for _ in range(300):
        ev = payloads.event(event_type, "p1", "s1", rng, REGISTRY)
        ev |= {"received_at": "2026-11-26T12:00:00Z", "schema_version": 1}
        assert REGISTRY.validate(ev) == []


def test_required_fields_always_present_and_optional_ones_vary():
    rng = random.Random(1)
    seen = [set(payloads.properties("purchase_sword", rng, REGISTRY)) for _ in range(200)]
    assert all("sword_type" in s for s in seen)
    assert len({frozenset(s) for s in seen}) > 1


def test_values_come_from_the_schema_examples():
    rng = random.Random(3)
    spec = REGISTRY.get("purchase_sword").properties_schema["properties"]["sword_type"]
    swords = {
        payloads.properties("purchase_sword", rng, REGISTRY)["sword_type"] for _ in range(200)
    }
    assert swords == set(spec["examples"])


def test_a_guild_has_one_name_and_it_is_its_own():
    rng = random.Random(5)
    names: dict[str, set] = {}
    for _ in range(400):
        props = payloads.event("join_guild", "p1", "s1", rng, REGISTRY)["properties"]
        if "guild_name" in props:
            names.setdefault(props["guild_id"], set()).add(props["guild_name"])
    assert names == {
        "g-dragons": {"Dragons"},
        "g-wolves": {"Wolves"},
        "g-ravens": {"Ravens"},
        "g-krakens": {"Krakens"},
    }


def test_a_sword_type_has_its_price_list_and_a_player_one_currency():
    rng = random.Random(6)
    prices: dict[str, set] = {}
    for player in ("p1", "p2", "p3"):
        currencies = set()
        for _ in range(300):
            props = payloads.event("purchase_sword", player, "s", rng, REGISTRY)["properties"]
            if "price" in props:
                prices.setdefault(props["sword_type"], set()).add(props["price"])
            currencies.add(props.get("currency"))
        assert len(currencies - {None}) == 1
    assert prices == {sword: set(listed) for sword, listed in payloads.SWORD_PRICES.items()}


def test_a_pair_the_schema_orders_comes_in_order():
    files = read_schema_files()
    envelope = files.pop(ENVELOPE)["1-0-0"]
    stage = {
        "type": "object",
        "additionalProperties": False,
        "required": ["low", "high"],
        "properties": {
            "low": {"type": "integer", "minimum": 1, "maximum": 9},
            "high": {"type": "integer", "minimum": 1, "maximum": 20},
            "x": {"type": "number", "minimum": 0},
            "y": {"type": "number", "minimum": 0},
        },
        GREATER_THAN: {"high": "low", "y": "x"},
    }
    registry = Registry(envelope, {**files, "stage": {"1-0-0": stage}})
    rng = random.Random(11)
    seen = [payloads.properties("stage", rng, registry, optional_share=1.0) for _ in range(300)]
    assert all(p["high"] > p["low"] and p["y"] > p["x"] for p in seen)
    assert all(registry.validate_properties("stage", p) == [] for p in seen)
    assert len({p["high"] - p["low"] for p in seen}) > 1  # not a fixed offset
