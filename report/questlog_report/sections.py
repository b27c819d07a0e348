"""One function per report section: ask the query service, return tables and figures.

Each section lists the exact calls (method, path, query string) that answered it, and each
figure carries the ``as_of`` of the answer it was drawn from. ``since``/``until`` (ISO
8601, on ``received_at``) narrow every endpoint that takes them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from questlog_report import diagram, plots
from questlog_report.client import Answer, EndpointError
from questlog_report.model import NONE, Figure, Section, Table, as_of_text, cell, money

PURCHASES = "purchase_sword"
GUILDS = "join_guild"
QUARANTINE = "quarantine"
TOP_PLAYERS = 20
TOP_HOSTS = 20
MAX_MINUTE_WINDOW = timedelta(days=7)  # what /v1/kpis/events-per-minute accepts
MAX_DAYS = 31  # revenue over time asks one window per day; the newest days at most


class Getter(Protocol):
    base_url: str

    def get(self, path: str, **params: Any) -> Answer: ...


@dataclass
class Context:
    """The client, the window, and answers more than one section uses (asked once)."""

    client: Getter
    since: str | None = None
    until: str | None = None
    _cache: dict[tuple, Answer] = field(default_factory=dict)

    def get(self, path: str, **params: Any) -> Answer:
        key = (path, tuple(sorted((k, v) for k, v in params.items() if v is not None)))
        if key not in self._cache:
            self._cache[key] = self.client.get(path, **params)
        return self._cache[key]

    def window(self) -> dict[str, str | None]:
        return {"since": self.since, "until": self.until}


def _f(value: Any) -> float:
    """For plotting only: tables never see this float."""
    return float(value) if value is not None else 0.0


def _rows(answer: Answer, key: str = "rows") -> list[dict[str, Any]]:
    rows = answer.body.get(key)
    if not isinstance(rows, list):
        raise EndpointError(f"{answer.call} answered without a {key!r} list")
    return rows


def _table(title: str, answer: Answer, columns: list[str], rows: list[dict]) -> Table:
    return Table(title, columns, [[cell(r.get(c)) for c in columns] for r in rows], answer.call)


def _count(value: Any) -> str:
    """A count the API sends as a number with a fraction (``"swords": 4.0``) as ``4``."""
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return str(int(value))
    return cell(value)


def _money_table(title: str, answer: Answer, columns: list[str], rows: list[dict]) -> Table:
    def one(row: dict, column: str) -> str:
        if column == "revenue":
            return cell(money(row.get(column)))
        if column in ("purchases", "swords"):
            return _count(row.get(column))
        return cell(row.get(column))

    return Table(title, columns, [[one(r, c) for c in columns] for r in rows], answer.call)


def _figure(name: str, title: str, answer: Answer, draw: Callable[[str, str], bytes]) -> Figure:
    as_of = as_of_text(answer.body.get("as_of"))
    return Figure(name, title, draw(as_of, answer.call), as_of, answer.call)


# --- 1. the pipeline ---------------------------------------------------------------------


def pipeline(ctx: Context) -> Section:
    answer = ctx.get("/v1/pipeline")
    body = answer.body
    f = diagram.flow(body, ctx.client.base_url)
    section = Section("pipeline", "The pipeline and how data flows", calls=[answer.call])
    section.paragraphs.append(
        "Drawn from what the running services report about themselves (the extractor's "
        "settings and counters, the lake's tables), not from a pasted picture. Counters "
        "on the arrows count since each process started."
    )
    section.figures.append(
        _figure("pipeline", "Pipeline", answer, lambda as_of, call: diagram.png(f, as_of, call))
    )
    section.preformatted = diagram.text(f)
    extractor = body.get("extractor") or {}
    settings = extractor.get("settings") or {}
    lake = body.get("lake") or {}
    rows = [{"setting": f"extractor {k}", "value": settings[k]} for k in sorted(settings)]
    rows += [
        {"setting": "lake root", "value": lake.get("root")},
        {"setting": "lake tables", "value": lake.get("tables")},
        {"setting": "query service", "value": ctx.client.base_url},
    ]
    section.tables.append(_table("Settings", answer, ["setting", "value"], rows))
    for name in ("extractor", "api"):
        part = body.get(name) or {}
        if not part.get("available"):
            section.paragraphs.append(
                f"The {name}'s metrics were not available: {part.get('error') or 'not configured'}."
            )
    return section


# --- 2. purchases by host and by player --------------------------------------------------


def purchases(ctx: Context) -> Section:
    section = Section("purchases", "Purchases by host and by player")
    by_host = ctx.get("/v1/stats/counts", event_type=PURCHASES, group_by="host", **ctx.window())
    host_rows = _rows(by_host)
    section.tables.append(_table("Purchases by host", by_host, ["host", "count"], host_rows))
    # every host in the table; the chart shows the busiest (the API answers most first),
    # as 200 labelled bars are unreadable and take seconds to draw
    shown = host_rows[:TOP_HOSTS]
    chart_title = (
        "Purchases by host"
        if len(shown) == len(host_rows)
        else f"Purchases by host (top {TOP_HOSTS} of {len(host_rows)})"
    )
    section.figures.append(
        _figure(
            "purchases_by_host",
            chart_title,
            by_host,
            lambda as_of, call: plots.bars(
                [cell(r.get("host")) for r in shown],
                [r["count"] for r in shown],
                chart_title,
                "purchases",
                as_of,
                call,
            ),
        )
    )
    by_player = ctx.get(
        "/v1/stats/counts",
        event_type=PURCHASES,
        group_by="player_id",
        limit=TOP_PLAYERS,
        **ctx.window(),
    )
    player_rows = _rows(by_player)
    title = f"Purchases by player (top {TOP_PLAYERS})"
    section.tables.append(_table(title, by_player, ["player_id", "count"], player_rows))
    section.figures.append(
        _figure(
            "purchases_by_player",
            title,
            by_player,
            lambda as_of, call: plots.bars(
                [cell(r.get("player_id")) for r in player_rows],
                [r["count"] for r in player_rows],
                title,
                "purchases",
                as_of,
                call,
            ),
        )
    )
    if by_player.body.get("truncated"):
        section.paragraphs.append(f"More players bought swords than the {TOP_PLAYERS} shown.")
    spend = ctx.get("/v1/kpis/revenue", by="host", **ctx.window())
    columns = ["host", "currency", "purchases", "swords", "revenue"]
    section.tables.append(_money_table("Revenue by host", spend, columns, _rows(spend)))
    section.calls = [by_host.call, by_player.call, spend.call]
    return section


# --- 3. sword types and prices -----------------------------------------------------------


def swords(ctx: Context) -> Section:
    section = Section("swords", "Sword types and prices")
    revenue = ctx.get("/v1/kpis/revenue", by="sword_type", **ctx.window())
    rows = _rows(revenue)
    columns = ["sword_type", "currency", "purchases", "swords", "revenue"]
    section.tables.append(_money_table("Revenue by sword type", revenue, columns, rows))
    section.paragraphs.append(
        "Revenue is price * quantity (a purchase without a quantity is one sword), summed "
        "per currency, never across currencies; a purchase without a price adds no revenue."
    )
    labels = [f"{cell(r.get('sword_type'))} ({cell(r.get('currency'))})" for r in rows]
    section.figures.append(
        _figure(
            "revenue_by_sword_type",
            "Revenue by sword type",
            revenue,
            lambda as_of, call: plots.bars(
                labels,
                [_f(money(r.get("revenue"))) for r in rows],
                "Revenue by sword type (per currency)",
                "revenue",
                as_of,
                call,
            ),
        )
    )
    prices = ctx.get(
        "/v1/stats/counts",
        event_type=PURCHASES,
        group_by="sword_type,price,currency",
        **ctx.window(),
    )
    price_rows = sorted(
        _rows(prices),
        key=lambda r: (
            cell(r.get("sword_type")),
            cell(r.get("currency")),
            money(r.get("price")) or Decimal(-1),
        ),
    )
    section.tables.append(
        Table(
            "Prices paid per sword type",
            ["sword_type", "price", "currency", "purchases"],
            [
                [
                    cell(r.get("sword_type")),
                    cell(money(r.get("price"))),
                    cell(r.get("currency")),
                    cell(r.get("count")),
                ]
                for r in price_rows
            ],
            prices.call,
        )
    )
    section.calls = [revenue.call, prices.call]
    return section


# --- 4. revenue over time ----------------------------------------------------------------


def _day_bounds(day: date) -> tuple[str, str]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return _iso(start), _iso(start + timedelta(days=1))


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _clip(bounds: tuple[str, str], ctx: Context) -> tuple[str, str]:
    start, end = bounds
    if ctx.since and _parse(ctx.since) > _parse(start):
        start = _iso(_parse(ctx.since))
    if ctx.until and _parse(ctx.until) < _parse(end):
        end = _iso(_parse(ctx.until))
    return start, end


def _parse(value: str) -> datetime:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def revenue_over_time(ctx: Context) -> Section:
    section = Section("revenue_over_time", "Revenue over time (per UTC day)")
    days_answer = ctx.get(
        "/v1/stats/counts", event_type=PURCHASES, group_by="event_date", **ctx.window()
    )
    days = sorted(
        date.fromisoformat(r["event_date"]) for r in _rows(days_answer) if r.get("event_date")
    )
    if len(days) > MAX_DAYS:
        section.paragraphs.append(f"Only the newest {MAX_DAYS} of {len(days)} days are shown.")
        days = days[-MAX_DAYS:]
    section.calls.append(days_answer.call)
    totals: dict[str, dict[date, Decimal]] = defaultdict(dict)
    purchases: dict[date, int] = {}
    last: Answer = days_answer
    for day in days:
        since, until = _clip(_day_bounds(day), ctx)
        last = ctx.get("/v1/kpis/revenue", by="sword_type", since=since, until=until)
        section.calls.append(last.call)
        purchases[day] = 0
        for row in _rows(last):
            purchases[day] += int(row.get("purchases") or 0)
            amount = money(row.get("revenue"))
            if amount is not None:
                currency = cell(row.get("currency"))
                totals[currency][day] = totals[currency].get(day, Decimal(0)) + amount
    currencies = sorted(totals)
    section.paragraphs.append(
        "One revenue call per day that has purchases (the days come from the first call); "
        "each day's revenue is the exact sum of that call's amounts, per currency."
    )
    section.tables.append(
        Table(
            "Revenue per day",
            ["day", "purchases", *[f"revenue {c}" for c in currencies]],
            [
                [
                    day.isoformat(),
                    str(purchases[day]),
                    *[cell(totals[c].get(day, Decimal(0))) for c in currencies],
                ]
                for day in days
            ],
            f"{days_answer.call} then GET /v1/kpis/revenue?by=sword_type&since=<day>&until=<day+1>",
        )
    )
    as_of = as_of_text(last.body.get("as_of"))
    call = "GET /v1/kpis/revenue?by=sword_type&since=<day>&until=<day+1>"
    x = [d.isoformat() for d in days]
    series = {c: [_f(totals[c].get(d)) for d in days] for c in currencies}
    section.figures.append(
        Figure(
            "revenue_over_time",
            "Revenue per day",
            plots.lines(x, series, "Revenue per UTC day (per currency)", "revenue", as_of, call),
            as_of,
            call,
        )
    )
    return section


# --- 5. guilds ---------------------------------------------------------------------------


def guilds(ctx: Context) -> Section:
    section = Section("guilds", "Guild joins and net membership")
    answer = ctx.get("/v1/kpis/guilds", **ctx.window())
    tables = ctx.get("/v1/tables")
    names = [t.get("name") for t in _rows(tables, "tables")]
    leaves = [n for n in names if isinstance(n, str) and "leave" in n]
    rows = _rows(answer)
    section.calls = [answer.call, tables.call]
    if leaves:
        section.paragraphs.append(
            f"Leave events exist ({', '.join(leaves)}) but this report does not subtract "
            "them yet: members below count every player who ever joined."
        )
    else:
        section.paragraphs.append(
            "Net membership is joins minus leaves, but the event registry has no leave event "
            "type today (tables: " + ", ".join(str(n) for n in names) + "), so no leave "
            "can be counted: 'members' is the number of distinct players who joined each "
            "guild, and 'joins' counts every join event (a player may join more than once)."
        )
    columns = ["guild_id", "guild_name", "joins", "members"]
    section.tables.append(_table("Members per guild", answer, columns, rows))
    section.figures.append(
        _figure(
            "guild_members",
            "Members per guild",
            answer,
            lambda as_of, call: plots.bars(
                [cell(r.get("guild_id")) for r in rows],
                [r.get("members") or 0 for r in rows],
                "Members per guild (distinct players who joined)",
                "members",
                as_of,
                call,
            ),
        )
    )
    return section


# --- 6. activity -------------------------------------------------------------------------


def _latest_event_time(ctx: Context) -> datetime | None:
    times = [
        t["latest_event_time"]
        for t in _rows(ctx.get("/v1/tables"), "tables")
        if t.get("name") != QUARANTINE and t.get("latest_event_time")
    ]
    return max((_parse(t) for t in times), default=None)


def _minutes(start: datetime, end: datetime) -> list[datetime]:
    """Every minute from ``start`` (floored) up to, not including, ``end``."""
    first = start.replace(second=0, microsecond=0)
    count = max(0, int((end - first).total_seconds() // 60))
    return [first + timedelta(minutes=i) for i in range(count)]


def activity(ctx: Context) -> Section:
    section = Section("activity", "Daily active players and events per minute")
    dau = ctx.get("/v1/kpis/dau", **ctx.window())
    dau_rows = _rows(dau)
    section.tables.append(_table("Daily active players", dau, ["event_date", "dau"], dau_rows))
    section.figures.append(
        _figure(
            "dau",
            "Daily active players",
            dau,
            lambda as_of, call: plots.bars(
                [cell(r.get("event_date")) for r in dau_rows],
                [r.get("dau") or 0 for r in dau_rows],
                "Daily active players (distinct player_id per UTC day)",
                "players",
                as_of,
                call,
            ),
        )
    )
    # the hour that ends with the newest event (not with "now"): a report over old data
    # still shows its last busy hour; --since/--until choose another window, cut to its
    # last hour when longer than the endpoint's 7 days
    until, since = ctx.until, ctx.since
    if until is None:
        newest = _latest_event_time(ctx)
        moment = newest + timedelta(minutes=1) if newest else datetime.now(UTC)
        until = _iso(moment.replace(second=0, microsecond=0))
    if since is None or _parse(until) - _parse(since) > MAX_MINUTE_WINDOW:
        since = _iso(_parse(until) - timedelta(hours=1))
    epm = ctx.get("/v1/kpis/events-per-minute", since=since, until=until)
    epm_rows = _rows(epm)
    types = sorted({cell(r.get("event_type")) for r in epm_rows})
    counts = {
        (_parse(r["minute"]), cell(r.get("event_type"))): r.get("events") or 0
        for r in epm_rows
        if r.get("minute")
    }
    busy = sorted({minute for minute, _ in counts})
    start, end = epm.body.get("since") or since, epm.body.get("until") or until
    section.paragraphs.append(
        f"Events per minute from {start} to {end} (by default the hour ending with the "
        "newest event); the table lists the minutes that had events, the chart every "
        "minute of the window."
    )
    section.tables.append(
        Table(
            "Events per minute",
            ["minute", *types],
            [[_iso(m), *[str(counts.get((m, t), 0)) for t in types]] for m in busy],
            epm.call,
        )
    )
    axis = _minutes(_parse(start), _parse(end)) if start and end and busy else busy
    fmt = "%H:%M" if len({m.date() for m in axis}) <= 1 else "%m-%d %H:%M"
    section.figures.append(
        _figure(
            "events_per_minute",
            "Events per minute",
            epm,
            lambda as_of, call: plots.lines(
                [m.strftime(fmt) for m in axis],
                {t: [counts.get((m, t), 0) for m in axis] for t in types},
                "Events per minute (received_at, UTC)",
                "events",
                as_of,
                call,
            ),
        )
    )
    section.calls = [dau.call, epm.call]
    return section


# --- 7. data quality ---------------------------------------------------------------------


def quality(ctx: Context) -> Section:
    section = Section("quality", "Data quality")
    quarantine = ctx.get(
        "/v1/stats/counts", event_type=QUARANTINE, group_by="reason", **ctx.window()
    )
    rows = _rows(quarantine)
    section.tables.append(
        _table("Quarantined events by reason", quarantine, ["reason", "count"], rows)
    )
    section.figures.append(
        _figure(
            "quarantine_by_reason",
            "Quarantined events by reason",
            quarantine,
            lambda as_of, call: plots.bars(
                [cell(r.get("reason")) for r in rows],
                [r.get("count") or 0 for r in rows],
                "Quarantined events by reason",
                "events",
                as_of,
                call,
            ),
        )
    )
    pipe = ctx.get("/v1/pipeline")
    extractor = pipe.body.get("extractor") or {}
    api = pipe.body.get("api") or {}
    label = "since the extractor started"
    if extractor.get("available"):
        counters = [
            ("rows read from Kafka", extractor.get("input_rows")),
            ("duplicates removed (same event_id)", extractor.get("duplicates_dropped")),
            ("late events dropped (behind the watermark)", extractor.get("late_rows_dropped")),
            ("replayed writes skipped (idempotent sink)", extractor.get("replayed_writes_skipped")),
        ]
        section.tables.append(
            Table(
                f"Extractor counters ({label})",
                ["counter", label],
                [[name, cell(value)] for name, value in counters],
                pipe.call,
            )
        )
    else:
        section.paragraphs.append(
            f"Duplicates removed and late events ({label}) are unknown: the extractor's "
            f"metrics were not available ({extractor.get('error') or 'not configured'})."
        )
    rejected = api.get("events_rejected") or {}
    if api.get("available"):
        section.tables.append(
            Table(
                "Events the API refused (since the API started)",
                ["reason", "events"],
                [[reason, cell(rejected[reason])] for reason in sorted(rejected)] or [[NONE, "0"]],
                pipe.call,
            )
        )
    section.calls = [quarantine.call, pipe.call]
    return section


# --- 8. freshness and lag ----------------------------------------------------------------


def freshness(ctx: Context) -> Section:
    section = Section("freshness", "Freshness and lag")
    tables = ctx.get("/v1/tables")
    rows = _rows(tables, "tables")
    columns = ["name", "rows", "version", "latest_event_time", "freshness_seconds"]
    section.tables.append(_table("Tables", tables, columns, rows))
    section.paragraphs.append(
        "freshness_seconds: how long ago the newest committed row of each table was "
        "received (seconds, when the query service answered)."
    )
    section.figures.append(
        _figure(
            "freshness",
            "Freshness per table",
            tables,
            lambda as_of, call: plots.bars(
                [cell(r.get("name")) for r in rows],
                [_f(r.get("freshness_seconds")) for r in rows],
                "Freshness per table (seconds since the newest row)",
                "seconds",
                as_of,
                call,
            ),
        )
    )
    pipe = ctx.get("/v1/pipeline")
    extractor = pipe.body.get("extractor") or {}
    if extractor.get("available"):
        lag = [
            (
                "offsets behind latest (records not yet read)",
                extractor.get("offsets_behind_latest"),
            ),
            ("seconds since the last micro-batch", extractor.get("last_progress_age_seconds")),
            ("last micro-batch id", extractor.get("last_batch_id")),
            ("last micro-batch duration (s)", extractor.get("batch_duration_seconds")),
            ("rows per second (last micro-batch)", extractor.get("processed_rows_per_second")),
        ]
        section.tables.append(
            Table(
                f"Extractor lag (as of {cell(pipe.body.get('as_of'))})",
                ["measure", "value"],
                [[name, cell(value)] for name, value in lag],
                pipe.call,
            )
        )
    else:
        section.paragraphs.append(
            "The extractor's lag is unknown: its metrics were not available "
            f"({extractor.get('error') or 'not configured'})."
        )
    section.calls = [tables.call, pipe.call]
    return section


SECTIONS: list[Callable[[Context], Section]] = [
    pipeline,
    purchases,
    swords,
    revenue_over_time,
    guilds,
    activity,
    quality,
    freshness,
]
