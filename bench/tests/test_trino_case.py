"""The trino case's own logic: when three engines' answers count as one answer, how a
timing is shown, and which figures a run gives."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BENCH))

from cases import trino as case  # noqa: E402  (as bench/run.py imports its cases)

COUNTS = {"a.example.net": 3, "b.example.net": 2}
PAGE = ["p01", "p02", "p03"]


def timing(median, low=None, high=None, requests=16, failures=0, first=None, cold=5.0) -> dict:
    return {
        "warm_median_ms": median,
        "warm_min_ms": low,
        "warm_max_ms": high,
        "cold_ms": cold,
        "requests": requests,
        "failures": failures,
        "first_failure": first,
    }


def test_one_answer_from_three_engines_has_no_differences():
    same = dict.fromkeys(case.ENGINES, COUNTS)
    assert case.differences(same, dict.fromkeys(case.ENGINES, PAGE), rows=5) == []


def test_a_count_that_differs_names_the_engine_and_the_host():
    counts = {"trino": COUNTS, "query": COUNTS, "spark": dict(COUNTS, **{"b.example.net": 1})}
    problems = case.differences(counts, dict.fromkeys(case.ENGINES, PAGE), rows=5)
    assert problems == [
        "counts by host: Spark SQL differs from Trino (1 host(s), e.g. ['b.example.net'])"
    ]


def test_a_page_in_another_order_or_shorter_is_a_difference():
    pages = {"trino": PAGE, "query": ["p01", "p03", "p02"], "spark": PAGE[:2]}
    problems = case.differences(dict.fromkeys(case.ENGINES, COUNTS), pages, rows=5)
    assert problems == [
        "host page: query service differs from Trino (first difference at row 1: p03 vs p02)",
        "host page: Spark SQL differs from Trino (2 rows vs 3)",
    ]


def test_a_missing_answer_and_counts_short_of_the_rows_are_differences():
    counts = {"trino": None, "query": COUNTS, "spark": COUNTS}
    problems = case.differences(counts, dict.fromkeys(case.ENGINES, PAGE), rows=6)
    assert problems == ["counts by host: no answer from Trino", "counts by host: sum 5 != 6 rows"]


def test_timing_text_shows_the_spread_over_the_requests_that_answered():
    assert case.timing_text(timing(12.5, 10.0, 1500.25)) == "12.5 ms (10.0-1,500.25, n=15)"
    assert (
        case.timing_text(timing(12.5, 10.0, 20.0, failures=2, first="warm: HTTP 503"))
        == "12.5 ms (10.0-20.0, n=13), 2 failed: warm: HTTP 503"
    )
    assert (
        case.timing_text(timing(12.5, 10.0, 20.0, failures=2, first="cold: boom", cold=None))
        == "12.5 ms (10.0-20.0, n=14), 2 failed: cold: boom"
    )
    assert (
        case.timing_text(timing(None, failures=16, first="cold: boom", cold=None))
        == "no answer, 16 failed: cold: boom"
    )


def test_figures_name_every_engine_and_sum_the_failures():
    result = {
        "rows": 1_000_000,
        "page_rows": 1000,
        "trino": {"start_s": 20.0, "rss_mib": 900.0, "first_query_wait_s": 0.5},
    }
    for n, engine in enumerate(case.ENGINES):
        result[engine] = dict(
            result.get(engine, {}),
            counts=timing(10.0 + n, failures=n),
            page=timing(20.0 + n, failures=1),
        )
    figures = case.ratios(result)
    assert figures == {
        "trino_rows": 1_000_000,
        "host_page_rows": 1000,
        "trino_start_s": 20.0,
        "trino_rss_mib": 900.0,
        "trino_first_query_wait_s": 0.5,
        "counts_by_host_ms_trino": 10.0,
        "counts_by_host_ms_query": 11.0,
        "counts_by_host_ms_spark": 12.0,
        "host_page_ms_trino": 20.0,
        "host_page_ms_query": 21.0,
        "host_page_ms_spark": 22.0,
        "trino_case_failures": 6,
    }
