"""Game KPIs under /v1/kpis/. Every one takes since/until (ISO, on received_at).

Revenue is ``price * coalesce(quantity, 1)`` (``price`` is the unit price; a purchase
without quantity is one sword), summed per currency, never across currencies, and exactly:
each unit price is rounded to the currency's minor unit (ISO 4217: cents for most, none
for JPY, mils for KWD), summed as integers, and answered as ``revenue`` (an exact decimal
string, "3458.28"), ``revenue_minor`` (the integer) and ``minor_unit`` (the exponent).
Prices are stored as the schema's JSON numbers (doubles); summing doubles printed
3458.2799999999997. A unit price of 10^16 or more is not counted as revenue.
"""

# ruff: noqa: S608 - SQL text holds only catalog-checked, quoted names; values are bound.

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Blueprint, Response

from questlog_query import params as p
from questlog_query.api import bad_request, table_spec
from questlog_query.catalog import catalog, event_types, quote
from questlog_query.lake import Snapshot
from questlog_query.responses import table_response
from questlog_query.state import state

bp = Blueprint("kpis", __name__, url_prefix="/v1/kpis")

PURCHASES = "purchase_sword"
GUILDS = "join_guild"
# ISO 4217 currencies whose minor unit is not the cent
_NO_MINOR = (
    "BIF",
    "CLP",
    "DJF",
    "GNF",
    "ISK",
    "JPY",
    "KMF",
    "KRW",
    "PYG",
    "RWF",
    "UGX",
    "UYI",
    "VND",
    "VUV",
    "XAF",
    "XOF",
    "XPF",
)
_MILS = ("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND")
MINOR_UNIT = (
    f"CASE WHEN currency IN ({', '.join(repr(c) for c in _NO_MINOR)}) THEN 0 "
    f"WHEN currency IN ({', '.join(repr(c) for c in _MILS)}) THEN 3 ELSE 2 END"
)
# one purchase in minor units, an exact integer (NULL without a price)
AMOUNT_MINOR = (
    f"CASE WHEN price < 1e16 THEN CAST(round(price * power(10, {MINOR_UNIT})) "
    "AS BIGINT) * coalesce(quantity, 1) END"
)


def _decimal_text(minor: str, unit: str) -> str:
    """SQL for the exact decimal string of ``minor`` scaled by 10^-``unit`` (minor >= 0)."""
    scale = f"CAST(power(10, {unit}) AS HUGEINT)"
    return (
        f"CASE WHEN {minor} IS NULL THEN NULL WHEN {unit} = 0 THEN CAST({minor} AS VARCHAR) "
        f"ELSE CAST({minor} // {scale} AS VARCHAR) || '.' || "
        f"lpad(CAST({minor} % {scale} AS VARCHAR), {unit}, '0') END"
    )


def _money(inner: str, keys: str, counts: str, order: str) -> str:
    """Per ``keys`` and currency, ``counts`` plus the exact revenue columns, over the rows
    of ``inner`` (which must select ``keys``, currency, quantity and amount_minor): the
    first ``$limit`` groups by ``order``. The top groups are chosen on the integers and
    only they get their decimal text (formatting every group first cost as much again as
    the aggregation, on tens of thousands of players)."""
    agg = (
        f"SELECT {keys}, currency, {counts}, sum(amount_minor) AS revenue_minor, "
        f"{MINOR_UNIT} AS minor_unit FROM ({inner}) GROUP BY {keys}, currency "
        f"ORDER BY {order} LIMIT $limit"
    )
    return (
        f"SELECT * EXCLUDE (revenue_minor, minor_unit), "
        f"{_decimal_text('revenue_minor', 'minor_unit')} AS revenue, revenue_minor, "
        f"minor_unit FROM ({agg}) ORDER BY {order}"
    )


def _where(clauses: list[str]) -> str:
    return " WHERE " + " AND ".join(clauses) if clauses else ""


def _union(
    columns: str, bound: dict[str, Any], names: tuple[str, ...]
) -> tuple[str, dict[str, Snapshot]]:
    """UNION ALL of ``columns`` over the given event tables, each with the time window."""
    specs = catalog()
    parts = []
    for name in names:
        clauses = p.time_window(specs[name], bound)
        parts.append(f"SELECT {columns} FROM {quote(name)}{_where(clauses)}")
    return " UNION ALL ".join(parts), state().lake.snapshots(names)


@bp.get("/dau")
def dau() -> Response:
    bound: dict[str, Any] = {}
    union, snaps = _union("event_date, player_id", bound, event_types())
    sql = (
        f"SELECT event_date, count(DISTINCT player_id) AS dau FROM ({union}) "
        "GROUP BY event_date ORDER BY event_date"
    )
    return table_response(state().engine.query(sql, bound, snaps), snaps)


@bp.get("/revenue")
def revenue() -> Response:
    spec = table_spec(PURCHASES, allow_quarantine=False)
    by = p.choice("by", ("sword_type", "player_id", "host"), "sword_type")
    limit = p.integer("limit", 1000, 1, 10_000)
    bound: dict[str, Any] = {"limit": limit}
    where = p.time_window(spec, bound)
    key = quote(by)
    inner = (
        f"SELECT {key}, currency, quantity, {AMOUNT_MINOR} AS amount_minor "
        f"FROM {quote(spec.name)}{_where(where)}"
    )
    sql = _money(
        inner,
        key,
        "count(*) AS purchases, sum(coalesce(quantity, 1)) AS swords",
        "revenue_minor / power(10, minor_unit) DESC NULLS LAST, purchases DESC, "
        f"{key} ASC NULLS LAST, currency ASC NULLS LAST",
    )
    snaps = {spec.name: state().lake.snapshot(spec.name)}
    return table_response(state().engine.query(sql, bound, snaps), snaps, by=by)


@bp.get("/top-spenders")
def top_spenders() -> Response:
    spec = table_spec(PURCHASES, allow_quarantine=False)
    limit = p.integer("limit", 10, 1, 1000)
    bound: dict[str, Any] = {"limit": limit}
    where = [*p.time_window(spec, bound), "price IS NOT NULL"]
    inner = (
        f"SELECT player_id, currency, quantity, {AMOUNT_MINOR} AS amount_minor "
        f"FROM {quote(spec.name)}{_where(where)}"
    )
    sql = _money(
        inner,
        "player_id",
        "count(*) AS purchases",
        "revenue_minor / power(10, minor_unit) DESC NULLS LAST, player_id ASC, "
        "currency ASC NULLS LAST",
    )
    snaps = {spec.name: state().lake.snapshot(spec.name)}
    return table_response(state().engine.query(sql, bound, snaps), snaps)


@bp.get("/guilds")
def guilds() -> Response:
    spec = table_spec(GUILDS, allow_quarantine=False)
    limit = p.integer("limit", 1000, 1, 10_000)
    bound: dict[str, Any] = {"limit": limit}
    where = p.time_window(spec, bound)
    sql = (
        "SELECT guild_id, arg_max(guild_name, received_at) AS guild_name, "
        "count(*) AS joins, count(DISTINCT player_id) AS members "
        f"FROM {quote(spec.name)}{_where(where)} GROUP BY guild_id "
        "ORDER BY members DESC, joins DESC, guild_id ASC LIMIT $limit"
    )
    snaps = {spec.name: state().lake.snapshot(spec.name)}
    return table_response(state().engine.query(sql, bound, snaps), snaps)


@bp.get("/events-per-minute")
def events_per_minute() -> Response:
    """Per minute and type; the window defaults to the hour before ``until`` (or now)."""
    name = p.text("event_type")
    names = (table_spec(name, allow_quarantine=False).name,) if name else event_types()
    until = p.timestamp("until") or datetime.now(UTC)
    since = p.timestamp("since") or until - timedelta(hours=1)
    if since >= until:
        raise bad_request("since must be before until")
    if until - since > timedelta(days=7):
        raise bad_request("the window is at most 7 days (10080 minutes)")
    bound: dict[str, Any] = {}
    parts = []
    for table in names:
        clauses = p.window_clauses(catalog()[table], since, until, bound)
        parts.append(f"SELECT received_at, event_type FROM {quote(table)}{_where(clauses)}")
    sql = (
        "SELECT date_trunc('minute', received_at) AS minute, event_type, count(*) AS events "
        f"FROM ({' UNION ALL '.join(parts)}) GROUP BY ALL ORDER BY minute, event_type"
    )
    snaps = state().lake.snapshots(names)
    return table_response(
        state().engine.query(sql, bound, snaps),
        snaps,
        since=since.isoformat().replace("+00:00", "Z"),
        until=until.isoformat().replace("+00:00", "Z"),
    )
