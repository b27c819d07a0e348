"""Event payloads built from the registered schemas, never from a hand-written field list.

Each property gets a value from its schema: an `enum` or `examples` entry when the schema
has one, else a value that fits its type and bounds; a pair the schema orders
(``x-questlog-greaterThan``) is put in order. Then the game world makes the values
agree with each other (``coherent``), so a report over load-test data tells a believable
story: a guild has one name (the schema's examples pair ``guild_id`` and ``guild_name`` by
position), a sword type has one price list, and a player pays in one currency.
"""

from __future__ import annotations

import random
import uuid
import zlib
from typing import Any

from questlog_schemas import Registry, load_registry


def value_for(name: str, schema: dict[str, Any], rng: random.Random) -> Any:
    if "enum" in schema:
        return rng.choice(schema["enum"])
    if "examples" in schema:
        return rng.choice(schema["examples"])
    kind = schema.get("type")
    if kind == "integer":
        low = int(schema.get("minimum", 0))
        return rng.randint(low, max(low, min(int(schema.get("maximum", low + 10)), low + 10)))
    if kind == "number":
        return round(rng.uniform(float(schema.get("minimum", 0)), 100.0), 2)
    if kind == "boolean":
        return rng.random() < 0.5
    return f"{name}-{rng.randint(1, 9)}"[: int(schema.get("maxLength", 64))]


def properties(
    event_type: str,
    rng: random.Random,
    registry: Registry | None = None,
    optional_share: float = 0.8,
) -> dict[str, Any]:
    """Required fields always; each optional one with probability optional_share."""
    et = (registry or load_registry()).get(event_type)
    fields = et.properties_schema.get("properties", {})
    props = {
        name: value_for(name, spec, rng)
        for name, spec in fields.items()
        if name in et.required or rng.random() < optional_share
    }
    for greater, lesser in et.greater_than:  # the schema's x-questlog-greaterThan
        if greater in props and lesser in props and not props[greater] > props[lesser]:
            step = (
                rng.randint(1, 3)
                if fields[greater].get("type") == "integer"
                else round(rng.uniform(0.5, 10.0), 2)
            )
            props[greater] = props[lesser] + step
    return props


# Unit prices per sword type (a shop's price list: the usual price and a sale price).
SWORD_PRICES: dict[str, tuple[float, ...]] = {
    "scimitar": (4.99, 3.99),
    "rapier": (9.99, 7.99),
    "longsword": (14.99, 11.99),
    "katana": (24.99, 19.99),
    "claymore": (49.99, 39.99),
}


def _examples(registry: Registry, event_type: str, name: str) -> list[Any]:
    spec = registry.get(event_type).properties_schema.get("properties", {}).get(name, {})
    return list(spec.get("examples", []))


def guild_name(guild_id: str, registry: Registry) -> str:
    """The one name of a guild: its schema example's partner, else derived from the id."""
    ids = _examples(registry, "join_guild", "guild_id")
    names = _examples(registry, "join_guild", "guild_name")
    if guild_id in ids and len(ids) == len(names):
        return names[ids.index(guild_id)]
    return guild_id.removeprefix("g-").replace("-", " ").title()


def coherent(
    event_type: str, props: dict[str, Any], player_id: str, rng: random.Random, registry: Registry
) -> dict[str, Any]:
    """``props`` with values that agree with each other and with the player."""
    if event_type == "join_guild" and "guild_id" in props and "guild_name" in props:
        props["guild_name"] = guild_name(props["guild_id"], registry)
    if event_type == "purchase_sword":
        if "price" in props and props.get("sword_type") in SWORD_PRICES:
            usual, sale = SWORD_PRICES[props["sword_type"]]
            props["price"] = sale if rng.random() < 0.2 else usual
        currencies = _examples(registry, "purchase_sword", "currency")
        if "currency" in props and currencies:  # a player pays in one currency
            props["currency"] = currencies[zlib.crc32(player_id.encode()) % len(currencies)]
    return props


def event(
    event_type: str,
    player_id: str,
    session_id: str,
    rng: random.Random,
    registry: Registry | None = None,
) -> dict[str, Any]:
    """A client event as a game would send it: the server fills received_at and context."""
    registry = registry or load_registry()
    props = coherent(event_type, properties(event_type, rng, registry), player_id, rng, registry)
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "player_id": player_id,
        "session_id": session_id,
        "properties": props,
    }
