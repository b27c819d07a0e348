"""GET /v1/tables: every table with its size, version and freshness (Delta log stats only)."""

from __future__ import annotations

from flask import Blueprint, Response

from questlog_query.catalog import catalog
from questlog_query.responses import jsonable, tabular
from questlog_query.state import state

bp = Blueprint("tables", __name__)


@bp.get("/v1/tables")
def list_tables() -> Response:
    snapshots = state().lake.snapshots(catalog())
    rows = [
        {
            "name": name,
            "rows": snap.rows,
            "columns": list(snap.columns),
            "latest_event_time": jsonable(snap.latest_time),
            "freshness_seconds": snap.freshness_seconds(),
            "version": snap.version,
        }
        for name, snap in snapshots.items()
    ]
    names = ["name", "rows", "columns", "latest_event_time", "freshness_seconds", "version"]
    return tabular(names, rows, snapshots, rows_key="tables")
