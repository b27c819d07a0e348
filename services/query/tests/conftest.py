"""Real Delta tables written the way docs/lake-contract.md says the extractor writes them.

The Arrow schema here is written out by hand from the lake contract (only the property
columns come from ``questlog_schemas.property_columns``), so a drift in the service's own
catalog shows up as a failing test instead of being mirrored.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from questlog_query import create_app
from questlog_query.settings import Settings
from questlog_schemas import property_columns

TS = pa.timestamp("us", tz="UTC")
JSON_TYPES = {
    "string": pa.string(),
    "number": pa.float64(),
    "integer": pa.int64(),
    "boolean": pa.bool_(),
    "date-time": TS,
}
BASE = datetime(2024, 5, 1, 22, 0, tzinfo=UTC)
TOKEN = "s3cret-read-token"
HOSTS = ["user1.comcast.com", "user2.att.com", "user3.example.org", None]
SWORDS = ["longsword", "katana", "dagger", "claymore"]
GUILDS = [("g1", "Knights"), ("g2", "Rogues"), ("g3", "Mages")]


def schema_for(event_type: str) -> pa.Schema:
    fields = [
        ("event_id", pa.string()),
        ("event_type", pa.string()),
        ("event_time", TS),
        ("received_at", TS),
        ("player_id", pa.string()),
        ("session_id", pa.string()),
        ("host", pa.string()),
        ("user_agent", pa.string()),
        ("accept", pa.string()),
        ("client_ip_hash", pa.string()),
        ("schema_version", pa.int64()),
    ]
    fields += [(name, JSON_TYPES[kind]) for name, kind in property_columns(event_type)]
    fields += [
        ("kafka_partition", pa.int32()),
        ("kafka_offset", pa.int64()),
        ("event_date", pa.date32()),
    ]
    return pa.schema(fields)


def make_events(event_type: str, n: int, seed: int, start: datetime = BASE) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    at = start
    for i in range(n):
        if rng.random() > 0.1:  # some events share a received_at: the cursor must tie-break
            at = at + timedelta(seconds=rng.randint(1, 900), microseconds=rng.randint(0, 999999))
        player = f"player{rng.randint(0, 14)}"
        row = {
            "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "event_type": event_type,
            "event_time": at - timedelta(seconds=1) if i % 3 else None,
            "received_at": at,
            "player_id": player,
            "session_id": None,
            "host": rng.choice(HOSTS),
            "user_agent": "ApacheBench/2.3",
            "accept": "*/*",
            "client_ip_hash": None,
            "schema_version": 1,
            "kafka_partition": i % 3,
            "kafka_offset": i,
            "event_date": at.date(),
        }
        if event_type == "purchase_sword":
            row.update(
                sword_type=rng.choice(SWORDS),
                price=None if i % 7 == 0 else round(rng.uniform(1, 100), 2),
                currency=rng.choice(["USD", "EUR", None]),
                quantity=None if i % 4 == 0 else rng.randint(1, 5),
            )
        elif event_type == "join_guild":
            guild_id, guild_name = rng.choice(GUILDS)
            row.update(
                guild_id=guild_id,
                guild_name=guild_name,
                role=rng.choice(["member", "officer", None]),
            )
        elif event_type == "level_up":
            from_level = rng.randint(1, 40)
            row.update(
                from_level=from_level,
                to_level=from_level + rng.choice([1, 1, 1, 2, 3]),
                seconds_played=0.0 if i % 9 == 0 else round(rng.uniform(30, 5000), 2),
            )
        rows.append(row)
    return rows


def write_events(lake: Path, event_type: str, rows: list[dict]) -> None:
    table = pa.Table.from_pylist(rows, schema=schema_for(event_type))
    write_deltalake(
        (lake / "tables" / event_type).as_uri(), table, partition_by=["event_date"], mode="append"
    )


@pytest.fixture
def lake_dir(tmp_path: Path) -> Path:
    root = tmp_path / "lake"
    root.mkdir()
    return root


@pytest.fixture
def events(lake_dir: Path) -> dict[str, list[dict]]:
    """Two committed versions of purchase_sword (0, 1), one of join_guild (0) and one of
    level_up (0)."""
    purchases = make_events("purchase_sword", 400, seed=1)
    write_events(lake_dir, "purchase_sword", purchases[:250])
    write_events(lake_dir, "purchase_sword", purchases[250:])
    guilds = make_events("join_guild", 150, seed=2)
    write_events(lake_dir, "join_guild", guilds)
    levels = make_events("level_up", 90, seed=3)
    write_events(lake_dir, "level_up", levels)
    return {"purchase_sword": purchases, "join_guild": guilds, "level_up": levels}


def make_settings(lake_dir: Path, **overrides) -> Settings:
    values = {
        "lake_root": lake_dir.as_uri(),
        "read_token": TOKEN,
        "snapshot_ttl_s": 0.0,
        "sql_timeout_s": 2.0,
        "duckdb_threads": 1,
        "duckdb_memory_limit": "512MB",
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def app(lake_dir: Path):
    return create_app(make_settings(lake_dir))


@pytest.fixture
def client(app):
    return app.test_client()


AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def gen():
    """Helpers for tests (importlib mode cannot import conftest as a module)."""
    import types

    return types.SimpleNamespace(
        make=make_events,
        write=write_events,
        schema=schema_for,
        auth=AUTH,
        token=TOKEN,
        settings=make_settings,
    )
