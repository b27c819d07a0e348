"""Sections over canned answers: money stays exact text, floats never reach a table."""

from __future__ import annotations

from decimal import Decimal

import pytest

from questlog_report.client import Answer
from questlog_report.model import as_of_text, money
from questlog_report.sections import (
    Context,
    freshness,
    purchases,
    quality,
    revenue_over_time,
    swords,
)


class Canned:
    """A stand-in for Client: answers by path (+ the day for per-day revenue)."""

    base_url = "http://query.test"

    def __init__(self, answers: dict) -> None:
        self.answers = answers
        self.calls: list[str] = []

    def get(self, path: str, **params) -> Answer:
        call = path + "?" + "&".join(f"{k}={v}" for k, v in params.items() if v is not None)
        self.calls.append(call)
        by_day = (path, (params.get("since") or "")[:10])
        return Answer(f"GET {call}", self.answers.get(by_day) or self.answers[path])


def test_per_day_revenue_sums_decimals_exactly():
    # as doubles, 0.1 + 0.2 is 0.30000000000000004 and 3458.28 + 0.01 is 3458.2900000000004
    client = Canned(
        {
            "/v1/stats/counts": {
                "rows": [{"event_date": "2026-11-01", "count": 3}],
                "as_of": {"purchase_sword": 4},
            },
            ("/v1/kpis/revenue", "2026-11-01"): {
                "rows": [
                    {"sword_type": "a", "currency": "USD", "purchases": 1, "revenue": "0.1"},
                    {"sword_type": "b", "currency": "USD", "purchases": 1, "revenue": "0.2"},
                    {"sword_type": "c", "currency": "EUR", "purchases": 1, "revenue": "3458.28"},
                ],
                "as_of": {"purchase_sword": 4},
            },
        }
    )
    section = revenue_over_time(Context(client))
    (table,) = section.tables
    assert table.columns == ["day", "purchases", "revenue EUR", "revenue USD"]
    assert table.rows == [["2026-11-01", "3", "3458.28", "0.3"]]
    assert (
        "GET /v1/kpis/revenue?by=sword_type&since=2026-11-01T00:00:00Z&until=2026-11-02T00:00:00Z"
    ) in section.calls
    assert section.figures[0].as_of == "purchase_sword v4"


def test_revenue_text_is_printed_as_sent():
    client = Canned(
        {
            "/v1/kpis/revenue": {
                "rows": [
                    {
                        "sword_type": "katana",
                        "currency": "USD",
                        "purchases": 2,
                        "swords": Decimal("3.0"),
                        "revenue": "3458.28",
                    }
                ],
                "as_of": {"purchase_sword": 1},
            },
            "/v1/stats/counts": {
                "rows": [
                    {
                        "sword_type": "katana",
                        "price": Decimal("9.99"),
                        "currency": "USD",
                        "count": 2,
                    }
                ],
                "as_of": {"purchase_sword": 1},
            },
        }
    )
    section = swords(Context(client, since="2026-11-01T00:00:00Z"))
    revenue, prices = section.tables
    assert revenue.rows == [["katana", "USD", "2", "3", "3458.28"]]
    assert prices.rows == [["katana", "9.99", "USD", "2"]]
    assert all("since=2026-11-01T00:00:00Z" in call for call in section.calls)


def test_money_refuses_floats_and_garbage():
    assert money("0010.50") == Decimal("10.50")
    assert money(None) is None
    with pytest.raises(TypeError):
        money(0.1)
    with pytest.raises(ValueError, match="not an amount"):
        money("12,5")


def test_as_of_text_names_versions_and_empty_tables():
    assert as_of_text({"purchase_sword": 3, "quarantine": None}) == (
        "purchase_sword v3, quarantine (no version yet)"
    )
    assert as_of_text("2026-11-30T23:00:00.000Z") == "2026-11-30T23:00:00.000Z"


def test_unavailable_metrics_are_said_not_shown_as_zeros():
    down = {"available": False, "error": "http://127.0.0.1:9108/metrics: connection refused"}
    client = Canned(
        {
            "/v1/pipeline": {"lake": {}, "extractor": down, "api": down, "as_of": "2026-11-30T0Z"},
            "/v1/stats/counts": {"rows": [], "as_of": {"quarantine": None}},
            "/v1/tables": {"tables": [], "as_of": {}},
        }
    )
    ctx = Context(client)
    for section in (quality(ctx), freshness(ctx)):
        assert [t.title for t in section.tables if "xtractor" in t.title] == []
        assert any(
            "not available (http://127.0.0.1:9108/metrics: connection refused)" in p
            for p in section.paragraphs
        ), section.paragraphs


def test_many_hosts_all_in_the_table_the_busiest_in_the_chart():
    hosts = [{"host": f"user{i}.example.net", "count": 100 - i} for i in range(25)]
    client = Canned(
        {
            "/v1/stats/counts": {"rows": hosts, "as_of": {"purchase_sword": 2}},
            "/v1/kpis/revenue": {"rows": [], "as_of": {"purchase_sword": 2}},
        }
    )
    section = purchases(Context(client))
    assert len(section.tables[0].rows) == 25
    assert section.figures[0].title == "Purchases by host (top 20 of 25)"
