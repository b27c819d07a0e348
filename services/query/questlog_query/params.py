"""Query-string parsing: every value is validated here and later bound, never pasted."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Any

from flask import request

from questlog_query.api import bad_request
from questlog_query.catalog import TableSpec, quote

MAX_VALUE_CHARS = 1024
# since/until outside this range are refused: no event is older than the Unix epoch, and
# windows are computed around the bounds (e.g. "the hour before until"), which must not
# leave datetime's years 1..9999.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)


def text(name: str) -> str | None:
    value = request.args.get(name)
    if value is None or value == "":
        return None
    if len(value) > MAX_VALUE_CHARS or "\x00" in value:
        raise bad_request(f"{name} is too long or contains NUL", parameter=name)
    return value


def timestamp(name: str) -> datetime | None:
    """ISO 8601; a value without offset is UTC."""
    value = text(name)
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace(" ", "+") if "T" in value else value)
        parsed = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError):  # overflow: an offset past year 1 or 9999
        raise bad_request(f"{name} must be an ISO 8601 timestamp", parameter=name) from None
    if not EARLIEST <= parsed < LATEST:
        raise bad_request(
            f"{name} must be from {EARLIEST:%Y-%m-%d} to before {LATEST:%Y-%m-%d}", parameter=name
        )
    return parsed


def integer(name: str, default: int, minimum: int, maximum: int) -> int:
    value = text(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise bad_request(f"{name} must be an integer", parameter=name) from None
    if not minimum <= number <= maximum:
        raise bad_request(f"{name} must be between {minimum} and {maximum}", parameter=name)
    return number


def choice(name: str, options: tuple[str, ...], default: str) -> str:
    value = text(name) or default
    if value not in options:
        raise bad_request(f"{name} must be one of {', '.join(options)}", parameter=name)
    return value


def time_window(spec: TableSpec, params: dict[str, Any]) -> list[str]:
    """WHERE clauses for ``since`` (inclusive) and ``until`` (exclusive) on the table's
    time column, plus the matching partition-date bounds so whole partitions are skipped."""
    since, until = timestamp("since"), timestamp("until")
    if since and until and since >= until:
        raise bad_request("since must be before until")
    return window_clauses(spec, since, until, params)


def window_clauses(
    spec: TableSpec, since: datetime | None, until: datetime | None, params: dict[str, Any]
) -> list[str]:
    clauses = []
    column, date_column = quote(spec.time_column), quote(spec.date_column)
    if since is not None:
        params["since"], params["since_date"] = since, since.date()
        clauses += [f"{column} >= $since", f"{date_column} >= $since_date"]
    if until is not None:
        params["until"], params["until_date"] = until, until.date()
        clauses += [f"{column} < $until", f"{date_column} <= $until_date"]
    return clauses


def encode_cursor(received_at: datetime, event_id: str, order: str) -> str:
    raw = json.dumps([received_at.astimezone(UTC).isoformat(), event_id, order])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(value: str, order: str) -> tuple[datetime, str]:
    try:
        padded = value + "=" * (-len(value) % 4)
        received_at, event_id, cursor_order = json.loads(base64.urlsafe_b64decode(padded))
        parsed = datetime.fromisoformat(received_at)
        if not isinstance(event_id, str) or parsed.tzinfo is None:
            raise ValueError
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise bad_request("cursor is not one this service issued", parameter="cursor") from None
    if cursor_order != order:
        raise bad_request("cursor was issued for the other order", parameter="cursor")
    return parsed, event_id
