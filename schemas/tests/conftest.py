import copy

import pytest

from questlog_schemas import Registry, load_registry

PURCHASE_SWORD = {
    "event_id": "0b6e5a52-4c7e-4f5e-9a35-1f2b3c4d5e6f",
    "event_type": "purchase_sword",
    "event_time": "2024-05-01T12:00:00+02:00",
    "received_at": "2024-05-01T10:00:00.123Z",
    "player_id": "player-42",
    "session_id": "s-1",
    "properties": {"sword_type": "longsword", "price": 9.99, "currency": "EUR", "quantity": 2},
    "context": {
        "host": "user1.comcast.com",
        "user_agent": "ApacheBench/2.3",
        "accept": "*/*",
        "client_ip_hash": "3f2a9c",
    },
    "schema_version": 1,
}

JOIN_GUILD = {
    "event_id": "6f1c2d3e-0000-4abc-8def-0123456789ab",
    "event_type": "join_guild",
    "received_at": "2024-05-01T10:00:00Z",
    "player_id": "player-7",
    "properties": {"guild_id": "g-1", "guild_name": "Knights", "role": "officer"},
    "schema_version": 1,
}


LEVEL_UP = {
    "event_id": "9d2c4b1a-7e3f-4a5b-8c6d-0e1f2a3b4c5d",
    "event_type": "level_up",
    "event_time": "2024-05-01T12:30:00Z",
    "received_at": "2024-05-01T12:30:00.250Z",
    "player_id": "player-42",
    "session_id": "s-1",
    "properties": {"from_level": 4, "to_level": 5, "seconds_played": 612.5},
    "schema_version": 1,
}


@pytest.fixture
def registry() -> Registry:
    return load_registry()


@pytest.fixture
def purchase_sword() -> dict:
    return copy.deepcopy(PURCHASE_SWORD)


@pytest.fixture
def join_guild() -> dict:
    return copy.deepcopy(JOIN_GUILD)


@pytest.fixture
def level_up() -> dict:
    return copy.deepcopy(LEVEL_UP)
