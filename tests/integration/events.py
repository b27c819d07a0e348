"""Deterministic, schema-valid events for the cross-service tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

SWORDS = ("longsword", "katana", "rapier", "claymore")
GUILDS = ("g-dragons", "g-wolves", "g-ravens")
BASE_TIME = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def make_events(n: int, seed: str = "smoke") -> list[dict]:
    """n events alternating purchase_sword / join_guild, stable ids for a given seed."""
    out = []
    for i in range(n):
        at = (BASE_TIME + timedelta(seconds=i)).isoformat().replace("+00:00", "Z")
        player = f"player-{i % 17}"
        if i % 2 == 0:
            event_type = "purchase_sword"
            props = {
                "sword_type": SWORDS[i % len(SWORDS)],
                "price": float(i % 50) + 0.99,
                "currency": "EUR",
                "quantity": 1 + i % 3,
            }
        else:
            event_type = "join_guild"
            props = {
                "guild_id": GUILDS[i % len(GUILDS)],
                "guild_name": "The Guild",
                "role": "member",
            }
        out.append(
            {
                "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{seed}/{i}")),
                "event_type": event_type,
                "event_time": at,
                "received_at": at,
                "player_id": player,
                "properties": props,
                "context": {"host": f"{player}.example.net", "user_agent": "smoke/1.0"},
                "schema_version": 1,
            }
        )
    return out
