"""A real query service for the verifier's tests: small Delta tables written with
deltalake, served over HTTP by the service's own app (in-process, on a free port)."""

from __future__ import annotations

import threading
import types
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import write_deltalake
from werkzeug.serving import make_server

from questlog_query import create_app
from questlog_query.catalog import event_table_schema
from questlog_query.settings import Settings

TOKEN = "verifier-test-read-token"


def write_rows(lake: Path, event_type: str, rows: list[dict]) -> None:
    """Append ``rows`` (envelope columns; the rest null) as one Delta commit."""
    schema = event_table_schema(event_type)
    full = []
    for row in rows:
        at = row.get("received_at") or datetime.now(UTC)
        full.append(
            {
                "event_type": event_type,
                "received_at": at,
                "schema_version": 1,
                "event_date": at.date(),
                **row,
            }
        )
    write_deltalake(
        (lake / "tables" / event_type).as_uri(),
        pa.Table.from_pylist(full, schema=schema),
        partition_by=["event_date"],
        mode="append",
    )


@pytest.fixture
def served_lake(tmp_path):
    """``served_lake.write(type, rows)`` then ``served_lake.url`` answers over those rows;
    ``/v1/sql`` returns at most ``max_rows`` rows (small, so the id paging is exercised)."""
    lake = tmp_path / "lake"
    lake.mkdir()
    app = create_app(
        Settings(
            lake_root=lake.as_uri(),
            read_token=TOKEN,
            snapshot_ttl_s=0.0,
            sql_max_rows=300,
            duckdb_threads=1,
            duckdb_memory_limit="256MB",
        )
    )
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield types.SimpleNamespace(
            url=f"http://127.0.0.1:{server.server_port}",
            token=TOKEN,
            lake=lake,
            write=lambda t, rows: write_rows(lake, t, rows),
        )
    finally:
        server.shutdown()
        thread.join(timeout=10)
