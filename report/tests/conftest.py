"""A known data set in a real Delta lake, served by the real query service on a free port.

The lake is written the way docs/lake-contract.md says the extractor writes it (schema
spelled out here, property columns from ``questlog_schemas``), so no Spark or Kafka runs.
The extractor's and the event API's ``/metrics`` are small Prometheus-text servers with
known counters, so ``GET /v1/pipeline`` is the query service's real one, scraping them.
The expected figures (``Known``) are computed from the rows by plain Python.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import write_deltalake
from werkzeug.serving import make_server
from werkzeug.wrappers import Response

from questlog_query import create_app
from questlog_query.settings import Settings
from questlog_schemas import property_columns

TS = pa.timestamp("us", tz="UTC")
ARROW = {
    "string": pa.string(),
    "number": pa.float64(),
    "integer": pa.int64(),
    "boolean": pa.bool_(),
    "date-time": TS,
}
DAY1 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
DAY2 = datetime(2026, 11, 2, 15, 30, tzinfo=UTC)

# (host, player, sword_type, price, quantity, currency, received_at)
PURCHASES = [
    ("user1.comcast.com", "p1", "katana", 9.99, 2, "USD", DAY1),
    ("user1.comcast.com", "p1", "katana", 9.99, None, "USD", DAY1 + timedelta(minutes=1)),
    ("user1.comcast.com", "p2", "longsword", 19.99, 1, "USD", DAY1 + timedelta(minutes=2)),
    ("user1.comcast.com", "p2", "dagger", 0.99, 3, "USD", DAY2),
    ("user1.comcast.com", "p3", "katana", 4.99, 1, "USD", DAY2 + timedelta(minutes=1)),
    ("user2.att.com", "p3", "longsword", 19.99, 3, "USD", DAY2 + timedelta(minutes=2)),
    ("user2.att.com", "p4", "dagger", 0.99, 1, "USD", DAY2 + timedelta(minutes=2, seconds=5)),
    ("user2.att.com", "p4", "katana", 9.99, 1, "USD", DAY1 + timedelta(minutes=3)),
    ("user2.att.com", "p4", "katana", None, 1, None, DAY1 + timedelta(minutes=4)),
    ("user3.example.org", "p1", "dagger", 0.99, 2, "USD", DAY1 + timedelta(minutes=5)),
    ("user3.example.org", "p5", "katana", 1500.0, 1, "JPY", DAY2 + timedelta(minutes=3)),
]
# (player, guild_id, guild_name, received_at)
JOINS = [
    ("p1", "g-dragons", "Dragons", DAY1 + timedelta(minutes=10)),
    ("p2", "g-dragons", "Dragons", DAY1 + timedelta(minutes=11)),
    ("p3", "g-dragons", "Dragons", DAY2 + timedelta(minutes=10)),
    ("p1", "g-dragons", "Dragons", DAY2 + timedelta(minutes=11)),
    ("p4", "g-wolves", "Wolves", DAY2 + timedelta(minutes=12)),
]
QUARANTINED = ["malformed_json", "malformed_json", "unknown_event_type", "schema_violation: price"]
EXTRACTOR_METRICS = """\
# TYPE questlog_extractor_input_rows_total counter
questlog_extractor_input_rows_total 27
# TYPE questlog_extractor_rows_written_total counter
questlog_extractor_rows_written_total{table="purchase_sword"} 11
questlog_extractor_rows_written_total{table="join_guild"} 5
questlog_extractor_rows_written_total{table="quarantine"} 4
# TYPE questlog_extractor_duplicates_dropped_total counter
questlog_extractor_duplicates_dropped_total 6
# TYPE questlog_extractor_late_rows_dropped_total counter
questlog_extractor_late_rows_dropped_total 1
# TYPE questlog_extractor_replayed_writes_skipped_total counter
questlog_extractor_replayed_writes_skipped_total{table="purchase_sword"} 0
# TYPE questlog_extractor_offsets_behind_latest gauge
questlog_extractor_offsets_behind_latest 42
# TYPE questlog_extractor_last_batch_id gauge
questlog_extractor_last_batch_id 17
# TYPE questlog_extractor_info gauge
questlog_extractor_info{topic="events",kafka_bootstrap="127.0.0.1:9092",\
lake_root="file:///lake",trigger_seconds="1",watermark="10 minutes",writer="delta-rs"} 1
"""
API_METRICS = """\
# TYPE questlog_api_events_accepted_total counter
questlog_api_events_accepted_total{event_type="purchase_sword"} 13
questlog_api_events_accepted_total{event_type="join_guild"} 9
# TYPE questlog_api_events_rejected_total counter
questlog_api_events_rejected_total{reason="invalid_event"} 3
"""


@dataclass(frozen=True)
class Known:
    """The figures the report must show, from the rows above."""

    purchases_by_host: dict[str, int]
    purchases_by_player: dict[str, int]
    revenue_by_sword: dict[tuple[str, str], Decimal]  # (sword_type, currency)
    revenue_by_day: dict[tuple[str, str], Decimal]  # (day, currency)
    members: dict[str, int]
    joins: dict[str, int]
    quarantine: dict[str, int]
    dau: dict[str, int]


def known() -> Known:
    revenue_sword: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    revenue_day: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for _, _, sword, price, qty, currency, at in PURCHASES:
        if price is None:
            continue
        amount = Decimal(str(price)) * (qty or 1)
        revenue_sword[(sword, currency)] += amount
        revenue_day[(at.date().isoformat(), currency)] += amount
    members: dict[str, set] = defaultdict(set)
    for player, guild, _, _ in JOINS:
        members[guild].add(player)
    active: dict[str, set] = defaultdict(set)
    for row in PURCHASES:
        active[row[6].date().isoformat()].add(row[1])
    for player, _, _, at in JOINS:
        active[at.date().isoformat()].add(player)
    return Known(
        purchases_by_host=dict(Counter(r[0] for r in PURCHASES)),
        purchases_by_player=dict(Counter(r[1] for r in PURCHASES)),
        revenue_by_sword=dict(revenue_sword),
        revenue_by_day=dict(revenue_day),
        members={g: len(p) for g, p in members.items()},
        joins=dict(Counter(r[1] for r in JOINS)),
        quarantine=dict(Counter(QUARANTINED)),
        dau={day: len(players) for day, players in active.items()},
    )


def _schema(event_type: str) -> pa.Schema:
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
        *[(name, ARROW[kind]) for name, kind in property_columns(event_type)],
        ("kafka_partition", pa.int32()),
        ("kafka_offset", pa.int64()),
        ("event_date", pa.date32()),
    ]
    return pa.schema(fields)


QUARANTINE_SCHEMA = pa.schema(
    [
        ("raw_value", pa.string()),
        ("raw_truncated", pa.bool_()),
        ("reason", pa.string()),
        ("topic", pa.string()),
        ("kafka_partition", pa.int32()),
        ("kafka_offset", pa.int64()),
        ("kafka_timestamp", TS),
        ("seen_at", TS),
        ("seen_date", pa.date32()),
    ]
)


def _envelope(i: int, event_type: str, player: str, host: str | None, at: datetime) -> dict:
    return {
        "event_id": str(uuid.UUID(int=i + (1 << 64))),
        "event_type": event_type,
        "event_time": None,
        "received_at": at,
        "player_id": player,
        "session_id": None,
        "host": host,
        "user_agent": "ApacheBench/2.3",
        "accept": "*/*",
        "client_ip_hash": None,
        "schema_version": 1,
        "kafka_partition": i % 3,
        "kafka_offset": i,
        "event_date": at.date(),
    }


def _write(lake: Path, name: str, rows: list[dict], schema: pa.Schema, partition: str) -> None:
    write_deltalake(
        (lake / "tables" / name).as_uri(),
        pa.Table.from_pylist(rows, schema=schema),
        partition_by=[partition],
        mode="append",
    )


def write_lake(lake: Path) -> None:
    purchases = [
        {
            **_envelope(i, "purchase_sword", player, host, at),
            "sword_type": sword,
            "price": price,
            "quantity": qty,
            "currency": currency,
        }
        for i, (host, player, sword, price, qty, currency, at) in enumerate(PURCHASES)
    ]
    # two commits, like two micro-batches
    _write(lake, "purchase_sword", purchases[:6], _schema("purchase_sword"), "event_date")
    _write(lake, "purchase_sword", purchases[6:], _schema("purchase_sword"), "event_date")
    joins = [
        {
            **_envelope(100 + i, "join_guild", player, "user1.comcast.com", at),
            "guild_id": guild,
            "guild_name": name,
            "role": "member",
        }
        for i, (player, guild, name, at) in enumerate(JOINS)
    ]
    _write(lake, "join_guild", joins, _schema("join_guild"), "event_date")
    seen = DAY2 + timedelta(minutes=20)
    quarantine = [
        {
            "raw_value": "{not json" if "json" in reason else '{"event_type":"x"}',
            "raw_truncated": False,
            "reason": reason,
            "topic": "events",
            "kafka_partition": 0,
            "kafka_offset": 500 + i,
            "kafka_timestamp": seen,
            "seen_at": seen,
            "seen_date": seen.date(),
        }
        for i, reason in enumerate(QUARANTINED)
    ]
    _write(lake, "quarantine", quarantine, QUARANTINE_SCHEMA, "seen_date")


class Served:
    """A WSGI app on 127.0.0.1, a free port, in a daemon thread."""

    def __init__(self, app) -> None:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def _metrics_app(text: str):
    def app(environ, start_response):
        return Response(text, mimetype="text/plain; version=0.0.4")(environ, start_response)

    return app


@dataclass(frozen=True)
class Service:
    url: str
    lake: Path
    known: Known
    authorization: list[str | None]  # the Authorization header of every request, in order


def _recording(app, seen: list):
    def wrapper(environ, start_response):
        seen.append(environ.get("HTTP_AUTHORIZATION"))
        return app(environ, start_response)

    return wrapper


@pytest.fixture(scope="session")
def service(tmp_path_factory) -> Iterator[Service]:
    """The real query service over the known lake, with metrics servers behind /v1/pipeline."""
    lake = tmp_path_factory.mktemp("known") / "lake"
    lake.mkdir()
    write_lake(lake)
    extractor, api = Served(_metrics_app(EXTRACTOR_METRICS)), Served(_metrics_app(API_METRICS))
    settings = Settings(
        lake_root=lake.as_uri(),
        snapshot_ttl_s=0.0,
        duckdb_threads=1,
        duckdb_memory_limit="512MB",
        log_level="WARNING",
        extractor_metrics_url=extractor.url + "/metrics",
        api_metrics_url=api.url + "/metrics",
    )
    seen: list[str | None] = []
    query = Served(_recording(create_app(settings), seen))
    try:
        yield Service(query.url, lake, known(), seen)
    finally:
        for served in (query, extractor, api):
            served.stop()


@pytest.fixture
def free_port_url() -> str:
    """A URL nothing listens on (a port bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
