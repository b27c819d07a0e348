"""POST /v1/sql: one read-only SELECT over the registered snapshots, behind the read token.

Body: ``{"sql": "SELECT ...", "params": [...] | {...}}`` (params optional, bound by DuckDB).
"""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, request

from questlog_query.api import bad_request
from questlog_query.catalog import catalog
from questlog_query.responses import rows_of, tabular
from questlog_query.state import state
from questlog_service.errors import ApiError

bp = Blueprint("sql", __name__)


def _authorize() -> None:
    token = state().settings.read_token
    if not token:
        raise ApiError(
            403,
            "POST /v1/sql is disabled: set QUESTLOG_QUERY_READ_TOKEN to enable it",
            code="sql_disabled",
        )
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given:
        raise ApiError(401, "send Authorization: Bearer <read token>")
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise ApiError(401, "invalid read token")


@bp.post("/v1/sql")
def run_sql() -> Response:
    _authorize()
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("sql"), str):
        raise bad_request('send JSON {"sql": "SELECT ..."}')
    params = body.get("params")
    if params is not None and not isinstance(params, (list, dict)):
        raise bad_request("params must be a list or an object")
    if isinstance(params, list):
        bad = [v for v in params if not (v is None or isinstance(v, (str, int, float, bool)))]
        if bad:
            raise bad_request("params must be scalars")
    if isinstance(params, dict):
        if not all(isinstance(v, (str, int, float, bool)) or v is None for v in params.values()):
            raise bad_request("params must be scalars")
    snapshots = state().lake.snapshots(catalog())
    table, truncated = state().sandbox.run(body["sql"], snapshots, params or None)
    names, rows = rows_of(table)
    columns = [
        {"name": name, "type": str(field.type)}
        for name, field in zip(names, table.schema, strict=True)
    ]
    return tabular(
        names,
        rows,
        snapshots,
        columns=columns,
        row_count=len(rows),
        truncated=truncated,
        max_rows=state().sandbox.max_rows,
    )
