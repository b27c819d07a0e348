"""Schema-valid test events and poison records for the extractor's tests."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

SWORDS = ("longsword", "katana", "rapier", "claymore")
GUILDS = ("g-dragons", "g-wolves", "g-ravens")
ROLES = ("member", "officer", "leader")
BASE_TIME = datetime(2026, 11, 1, 23, 59, 0, tzinfo=UTC)


def iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def make_events(n: int, seed: str = "extractor", start: int = 0) -> list[dict]:
    """Events ``start..start+n-1`` alternating purchase_sword / join_guild, 10 ms apart
    across midnight UTC (two event_date partitions); ids are stable per seed and index."""
    out = []
    for i in range(start, start + n):
        at = BASE_TIME + timedelta(milliseconds=10 * i)
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
            props = {"guild_id": GUILDS[i % len(GUILDS)], "role": ROLES[i % len(ROLES)]}
        out.append(
            {
                "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{seed}/{i}")),
                "event_type": event_type,
                "event_time": iso(at - timedelta(seconds=1)),
                "received_at": iso(at),
                "player_id": player,
                "session_id": f"s-{i % 5}",
                "properties": props,
                "context": {"host": f"{player}.example.net", "user_agent": "test/1.0"},
                "schema_version": 1,
            }
        )
    return out


def level_ups(n: int, seed: str = "levels", start: int = 0) -> list[dict]:
    """``n`` level_up events, each of players 0-2 climbing one or two levels at a time."""
    out = []
    level = {p: 1 for p in range(3)}
    for i in range(start, start + n):
        at = BASE_TIME + timedelta(milliseconds=10 * i + 5)
        player = i % 3
        gained = 1 + i % 2
        props = {
            "from_level": level[player],
            "to_level": level[player] + gained,
            "seconds_played": 60.0 * (i + 1) + 0.5,
        }
        level[player] += gained
        out.append(
            {
                "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{seed}/level/{i}")),
                "event_type": "level_up",
                "received_at": iso(at),
                "player_id": f"player-{player}",
                "properties": props,
                "schema_version": 1,
            }
        )
    return out


def _with(event: dict, **changes) -> str:
    return json.dumps({**event, **changes})


def poison(seed: str = "poison") -> list[tuple[bytes | None, str]]:
    """(Kafka value, expected quarantine reason) for every kind of bad record."""
    base = make_events(2, seed)
    buy, join = base
    props = buy["properties"]
    level = level_ups(1, seed)[0]
    rise = {"from_level": 3, "to_level": 4, "seconds_played": 30.0}
    no_player = {k: v for k, v in buy.items() if k != "player_id"}
    cases: list[tuple[str | bytes | None, str]] = [
        ("not json at all", "malformed_json"),
        ('{"event_id": "x", "event_type": ', "malformed_json"),
        ("[1, 2, 3]", "malformed_json"),
        (b"\xff\xfe\x00garbage", "malformed_json"),
        (_with(buy, event_type="open_chest"), "unknown_event_type"),
        (json.dumps(no_player), "missing_field: player_id"),
        (_with(buy, properties={"price": 1.0}), "missing_field: properties.sword_type"),
        (_with(join, properties={}), "missing_field: properties.guild_id"),
        (_with(buy, properties={**props, "price": "cheap"}), "wrong_type: properties.price"),
        (_with(buy, properties={**props, "quantity": 1.5}), "wrong_type: properties.quantity"),
        (_with(buy, received_at=1700000000), "wrong_type: received_at"),
        (_with(buy, received_at="yesterday"), "wrong_type: received_at"),
        (_with(buy, schema_version="1"), "wrong_type: schema_version"),
        (_with(buy, properties="sword"), "wrong_type: properties"),
        (_with(buy, player_id="p" * 10_000), "too_large: player_id"),
        (
            _with(buy, properties={**props, "sword_type": "s" * 65}),
            "too_large: properties.sword_type",
        ),
        (_with(buy, filler="x" * 70_000), "too_large: raw_value"),
        (_with(buy, properties={**props, "currency": "eur"}), "invalid_value: properties.currency"),
        (_with(buy, event_id="not-a-uuid"), "invalid_value: event_id"),
        (_with(level, properties={**rise, "to_level": 3}), "invalid_value: properties.to_level"),
        (_with(level, properties={**rise, "to_level": 1}), "invalid_value: properties.to_level"),
        (
            _with(level, properties={**rise, "seconds_played": -1}),
            "invalid_value: properties.seconds_played",
        ),
        (
            _with(level, properties={"from_level": 3, "to_level": 4}),
            "missing_field: properties.seconds_played",
        ),
        (_with(level, properties={**rise, "from_level": 2.5}), "wrong_type: properties.from_level"),
    ]
    return [(v.encode() if isinstance(v, str) else v, reason) for v, reason in cases]
