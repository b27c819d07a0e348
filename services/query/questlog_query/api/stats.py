"""GET /v1/stats/counts: event counts grouped by columns checked against the schema."""

# ruff: noqa: S608 - SQL text holds only catalog-checked, quoted names; values are bound.

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response

from questlog_query import params as p
from questlog_query.api import bad_request, table_spec
from questlog_query.catalog import quote
from questlog_query.responses import table_response
from questlog_query.state import state

bp = Blueprint("stats", __name__)

MAX_GROUP_BY = 4
MAX_GROUPS = 10_000


@bp.get("/v1/stats/counts")
def counts() -> Response:
    name = p.text("event_type")
    if name is None:
        raise bad_request("event_type is required", parameter="event_type")
    spec = table_spec(name)
    snap = state().lake.snapshot(spec.name)
    group_by: list[str] = []
    raw = p.text("group_by")
    if raw is not None:
        group_by = [part.strip() for part in raw.split(",") if part.strip()]
    allowed = set(spec.columns) & set(snap.columns)
    unknown = [column for column in group_by if column not in allowed]
    if unknown:
        raise bad_request(
            "group_by names unknown columns", unknown=unknown, allowed=sorted(allowed)
        )
    if len(set(group_by)) != len(group_by) or len(group_by) > MAX_GROUP_BY:
        raise bad_request(f"group_by takes up to {MAX_GROUP_BY} distinct columns")
    limit = p.integer("limit", 1000, 1, MAX_GROUPS)
    bound: dict[str, Any] = {"limit": limit + 1}
    where = p.time_window(spec, bound)
    columns = [quote(column) for column in group_by]
    sql = (
        "SELECT "
        + "".join(f"{c}, " for c in columns)
        + 'count(*) AS "count" FROM '
        + quote(spec.name)
        + (" WHERE " + " AND ".join(where) if where else "")
        + (" GROUP BY " + ", ".join(columns) if columns else "")
        + ' ORDER BY "count" DESC'
        + "".join(f", {c} ASC NULLS LAST" for c in columns)
        + " LIMIT $limit"
    )
    table = state().engine.query(sql, bound, {spec.name: snap})
    truncated = table.num_rows > limit
    return table_response(table.slice(0, limit), {spec.name: snap}, truncated=truncated)
