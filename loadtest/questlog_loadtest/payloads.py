"""Event payloads built from the registered schemas, never from a hand-written field list.

Each property gets a value from its schema: an `enum` or `examples` entry when the schema
has one, else a value that fits its type and bounds.
"""

from __future__ import annotations

import random
import uuid
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


def properties(event_type: str, rng: random.Random, registry: Registry | None = None,
               optional_share: float = 0.8) -> dict[str, Any]:
    """Required fields always; each optional one with probability optional_share."""
    et = (registry or load_registry()).get(event_type)
    fields = et.properties_schema.get("properties", {})
    return {
        name: value_for(name, spec, rng)
        for name, spec in fields.items()
        if name in et.required or rng.random() < optional_share
    }


def event(event_type: str, player_id: str, session_id: str, rng: random.Random,
          registry: Registry | None = None) -> dict[str, Any]:
    """A client event as a game would send it: the server fills received_at and context."""
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "player_id": player_id,
        "session_id": session_id,
        "properties": properties(event_type, rng, registry),
    }
