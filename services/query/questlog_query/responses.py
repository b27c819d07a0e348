"""Tabular answers as JSON or CSV, always with ``as_of`` and freshness.

JSON: ``{"rows": [...], "as_of": {table: version}, "freshness_seconds": {table: s}, ...}``.
CSV (``?format=csv`` or ``Accept: text/csv``): the rows only; as_of and freshness travel in
the ``X-Questlog-As-Of`` and ``X-Questlog-Freshness-Seconds`` headers (compact JSON).
"""

from __future__ import annotations

import base64
import csv
import io
import json
import math
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pyarrow as pa
from flask import Response, request

from questlog_query.api import bad_request
from questlog_query.lake import Snapshot


def jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime):
        if value.tzinfo is not None and value.utcoffset() == timedelta(0):
            return value.replace(tzinfo=None).isoformat() + "Z"
        return value.isoformat()
    if isinstance(value, (date, time)):
        return value.isoformat()
    if isinstance(value, Decimal):  # DuckDB's sum of integers is a HUGEINT, a Decimal here
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return str(value)


def unique_names(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for name in names:
        if name in seen:
            seen[name] += 1
            candidate = f"{name}_{seen[name]}"
            while candidate in seen:
                seen[name] += 1
                candidate = f"{name}_{seen[name]}"
            name = candidate
        seen.setdefault(name, 0)
        out.append(name)
    return out


def rows_of(table: pa.Table) -> tuple[list[str], list[dict[str, Any]]]:
    names = unique_names(table.column_names)
    columns = [table.column(i).to_pylist() for i in range(table.num_columns)]
    rows = [
        {name: jsonable(col[i]) for name, col in zip(names, columns, strict=True)}
        for i in range(table.num_rows)
    ]
    return names, rows


def meta(snapshots: Mapping[str, Snapshot]) -> dict[str, Any]:
    return {
        "as_of": {name: snap.version for name, snap in snapshots.items()},
        "freshness_seconds": {name: snap.freshness_seconds() for name, snap in snapshots.items()},
    }


def wants_csv() -> bool:
    fmt = request.args.get("format")
    if fmt is not None:
        if fmt not in ("json", "csv"):
            raise bad_request("format must be json or csv", format=fmt)
        return fmt == "csv"
    best = request.accept_mimetypes.best_match(["application/json", "text/csv"])
    return best == "text/csv"


def _csv_cell(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return "" if value is None else value


def tabular(
    names: list[str],
    rows: list[dict[str, Any]],
    snapshots: Mapping[str, Snapshot],
    status: int = 200,
    rows_key: str = "rows",
    **extra: Any,
) -> Response:
    info = meta(snapshots)
    if wants_csv():
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(names)
        for row in rows:
            writer.writerow([_csv_cell(row.get(name)) for name in names])
        response = Response(out.getvalue(), status=status, mimetype="text/csv")
        response.headers["X-Questlog-As-Of"] = json.dumps(info["as_of"], separators=(",", ":"))
        response.headers["X-Questlog-Freshness-Seconds"] = json.dumps(
            info["freshness_seconds"], separators=(",", ":")
        )
        for key, value in extra.items():
            if isinstance(value, (str, int, bool)) or value is None:
                response.headers[f"X-Questlog-{key.replace('_', '-').title()}"] = json.dumps(value)
        return response
    body = {rows_key: rows, **extra, **info}
    return Response(json.dumps(body, allow_nan=False), status=status, mimetype="application/json")


def table_response(table: pa.Table, snapshots: Mapping[str, Snapshot], **extra: Any) -> Response:
    names, rows = rows_of(table)
    return tabular(names, rows, snapshots, **extra)
