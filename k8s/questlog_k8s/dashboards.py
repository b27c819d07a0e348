"""The Grafana dashboards the chart ships (charts/questlog/files/grafana/*.json), read the
way their tests need them: every PromQL query, the questlog metrics each one names, and
which series a service's /metrics exposition makes available to Prometheus.

Usage::

    for path, dashboard in load():
        for expr in queries(dashboard):
            metric_names(expr)              # {"questlog_api_requests_total", ...}
    series_names(text_of_a_metrics_page)    # every series name Prometheus would store
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART = Path(os.environ.get("QUESTLOG_CHART", REPO_ROOT / "charts" / "questlog"))
METRIC = re.compile(r"questlog_[a-z0-9_]+")
# a query variable's Grafana function: label_values(<series selector>, <label>)
LABEL_VALUES = re.compile(r"^\s*label_values\((.+),\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*$")
# Grafana's variables, replaced by values Prometheus would accept, to parse a query offline
GRAFANA_VARIABLES = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1h",
    "$namespace": ".*",
}
# the series Prometheus stores for one exposition family of each type
SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("", "_sum", "_count"),
    "gauge": ("",),
    "unknown": ("",),
    "info": ("_info",),
    "stateset": ("",),
    "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
}


def files(chart: Path = CHART) -> list[Path]:
    return sorted((chart / "files" / "grafana").glob("*.json"))


def load(chart: Path = CHART) -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in files(chart):
        yield path, json.loads(path.read_text(encoding="utf-8"))


def queries(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL query: the panels' targets and the query variables' (the series
    selector inside a ``label_values(...)``)."""
    found = [
        target["expr"]
        for panel in dashboard.get("panels", [])
        for target in panel.get("targets", [])
        if target.get("expr")
    ]
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            query = variable.get("query")
            text = query.get("query", "") if isinstance(query, dict) else query or ""
            match = LABEL_VALUES.match(text)
            found.append(match.group(1) if match else text)
    return found


def offline(expr: str) -> str:
    """The query with Grafana's variables replaced, as Prometheus would receive it."""
    for name, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(name, value)
    return expr


def metric_names(expr: str) -> set[str]:
    return set(METRIC.findall(expr))


def series_names(exposition: str) -> dict[str, str]:
    """Series name -> the exposition family it comes from, for every family on the page
    (a family with no sample yet counts: its HELP/TYPE lines say what it will be)."""
    from prometheus_client.parser import text_string_to_metric_families

    names: dict[str, str] = {}
    for family in text_string_to_metric_families(exposition):
        for suffix in SUFFIXES.get(family.type, ("",)):
            names[family.name + suffix] = family.name
        for sample in family.samples:
            names.setdefault(sample.name, family.name)
    return names
