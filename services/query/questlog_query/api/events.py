"""GET /v1/events/<event_type>: raw rows with filters and keyset (cursor) paging.

Order is (received_at, event_id), ascending by default; the cursor is an opaque base64
of the last row's (received_at, event_id), so pages are stable while new data arrives.
A page reads only the files whose time range can hold it (questlog_query.firstrows).
"""

# ruff: noqa: S608 - SQL text holds only catalog-checked, quoted names; values are bound.

from __future__ import annotations

from datetime import datetime
from typing import Any

import pyarrow as pa
from flask import Blueprint, Response

from questlog_query import params as p
from questlog_query.api import table_spec
from questlog_query.catalog import quote
from questlog_query.firstrows import first_rows
from questlog_query.lake import Snapshot
from questlog_query.responses import table_response
from questlog_query.state import state

bp = Blueprint("events", __name__)

MAX_LIMIT = 1000


@bp.get("/v1/events/<event_type>")
def list_events(event_type: str) -> Response:
    spec = table_spec(event_type, allow_quarantine=False)
    limit = p.integer("limit", 100, 1, MAX_LIMIT)
    order = p.choice("order", ("asc", "desc"), "asc")
    bound: dict[str, Any] = {"limit": limit + 1}
    where = p.time_window(spec, bound)
    for column in ("player_id", "host"):
        value = p.text(column)
        if value is not None:
            bound[column] = value
            where.append(f"{quote(column)} = ${column}")
    cursor = p.text("cursor")
    if cursor is not None:
        bound["c_time"], bound["c_id"] = p.decode_cursor(cursor, order)
        op = ">" if order == "asc" else "<"
        where.append(
            f"(received_at {op} $c_time OR (received_at = $c_time AND event_id {op} $c_id))"
        )
    snap = state().lake.snapshot(spec.name)
    direction = "ASC" if order == "asc" else "DESC"
    # a view of its own over the files a batch reads (the table's view stays cached)
    view = f"{spec.name}__first_rows"
    tail = f" ORDER BY received_at {direction}, event_id {direction} LIMIT $limit"
    sql = f"SELECT * FROM {quote(view)}" + (" WHERE " + " AND ".join(where) if where else "")
    # a page that lies before the edge (questlog_query.firstrows)
    with_edge = (
        sql
        + (" AND " if where else " WHERE ")
        + ("received_at >= $edge" if order == "desc" else "received_at <= $edge")
        + tail
    )
    sql += tail
    low, high = bound.get("since"), bound.get("until")
    if cursor is not None and order == "asc":
        low = max(low, bound["c_time"]) if low else bound["c_time"]
    elif cursor is not None:
        high = min(high, bound["c_time"]) if high else bound["c_time"]

    def run(part: Snapshot, edge: datetime | None) -> pa.Table:
        if edge is None:
            return state().engine.query(sql, bound, {view: part})
        return state().engine.query(with_edge, {**bound, "edge": edge}, {view: part})

    table = first_rows(snap, run, limit=limit + 1, descending=order == "desc", low=low, high=high)
    next_cursor = None
    if table.num_rows > limit:
        table = table.slice(0, limit)
        last = table.slice(limit - 1, 1).to_pylist()[0]
        next_cursor = p.encode_cursor(last["received_at"], last["event_id"], order)
    return table_response(table, {spec.name: snap}, next_cursor=next_cursor)
