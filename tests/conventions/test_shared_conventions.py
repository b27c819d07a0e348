"""The three services log, count and label the same way (libs/questlog_service): one grep
or one dashboard query works across them. Each check goes through the service's own
entry point (its app factory from the environment, the extractor's command line), so a
service that stops using the shared plumbing, or configures it differently, fails here.

- log keys: ``ts``, ``level`` (lower case), ``service``, ``logger``, ``msg`` first, in
  that order; never ``message``;
- the access log of the two web services: ``method``, ``route``, ``status``,
  ``duration_ms``, ``request_id``;
- the request metrics of the two web services: ``<svc>_requests_total{route, method,
  status}`` and ``<svc>_request_seconds{route}``, which is what the Grafana dashboards
  group by.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys

import pytest
from prometheus_client.parser import text_string_to_metric_families

from questlog_k8s import dashboards
from questlog_service import logs, metrics

ACCESS_FIELDS = {"method", "route", "status", "duration_ms", "request_id"}


@pytest.fixture
def root_logging():
    """The root logger as it was, after a service configured it for itself."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def _log_stream() -> io.StringIO:
    """Where the JSON handler the service configured on the root logger now writes."""
    [handler] = [
        h for h in logging.getLogger().handlers if isinstance(h.formatter, logs.JsonFormatter)
    ]
    stream = io.StringIO()
    handler.setStream(stream)
    return stream


@pytest.fixture
def api_app(monkeypatch, root_logging):
    for name in list(os.environ):
        if name.startswith("QUESTLOG_API_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("QUESTLOG_API_SINK", "memory")
    monkeypatch.setenv("QUESTLOG_API_ALLOW_DEV_IP_HASH_KEY", "1")
    from questlog_api import create_app

    return create_app()  # from the environment: configures logging as gunicorn's would


@pytest.fixture
def query_app(monkeypatch, root_logging, tmp_path):
    for name in list(os.environ):
        if name.startswith("QUESTLOG_QUERY_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("QUESTLOG_QUERY_LAKE_ROOT", (tmp_path / "lake").as_uri())
    from questlog_query import create_app

    return create_app()


def _access_line(app, method: str, path: str, **kwargs) -> dict:
    stream = _log_stream()
    app.test_client().open(path, method=method, **kwargs)
    [line] = [r for r in _json_lines(stream.getvalue()) if r["msg"] == "request"]
    return line


def _check_keys(line: dict, service: str) -> None:
    assert list(line)[: len(logs.KEYS)] == list(logs.KEYS), line
    assert line["service"] == service
    assert line["level"] == line["level"].lower()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["ts"]), line["ts"]
    assert "message" not in line


def test_the_api_logs_the_shared_keys_and_access_fields(api_app):
    line = _access_line(
        api_app,
        "POST",
        "/v1/events",
        json={"event_type": "join_guild", "player_id": "p", "properties": {"guild_id": "g"}},
        headers={"X-Request-ID": "conv-api"},
    )
    _check_keys(line, "questlog-api")
    assert ACCESS_FIELDS <= set(line)
    assert (line["route"], line["status"], line["request_id"]) == ("/v1/events", 202, "conv-api")


def test_the_query_service_logs_the_shared_keys_and_access_fields(query_app):
    line = _access_line(
        query_app, "GET", "/v1/events/no_such_type", headers={"X-Request-ID": "conv-query"}
    )
    _check_keys(line, "questlog-query")
    assert ACCESS_FIELDS <= set(line)
    assert (line["route"], line["status"], line["request_id"]) == (
        "/v1/events/<event_type>",
        404,
        "conv-query",
    )


def test_the_extractor_logs_the_shared_keys(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUESTLOG_EXTRACTOR_")}
    proc = subprocess.run(
        [sys.executable, "-m", "questlog_extractor", "compact"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    [line] = _json_lines(proc.stdout)  # no LAKE_ROOT: one error line naming it
    _check_keys(line, "questlog-extractor")
    assert (line["level"], line["msg"]) == ("error", "bad settings")
    assert "QUESTLOG_EXTRACTOR_LAKE_ROOT is not set" in line["error"]


@pytest.mark.parametrize(
    ("fixture", "prefix"), [("api_app", "questlog_api"), ("query_app", "questlog_query")]
)
def test_the_request_metrics_have_the_shared_labels(request, fixture, prefix):
    client = request.getfixturevalue(fixture).test_client()
    client.get("/healthz")
    families = {
        f.name: f
        for f in text_string_to_metric_families(client.get("/metrics").get_data(as_text=True))
    }
    counted = {
        frozenset(s.labels)
        for s in families[f"{prefix}_requests"].samples
        if s.name == f"{prefix}_requests_total"
    }
    assert counted == {frozenset(metrics.LABELS)}
    timed = {
        frozenset(s.labels)
        for s in families[f"{prefix}_request_seconds"].samples
        if s.name == f"{prefix}_request_seconds_bucket"
    }
    assert timed == {frozenset({"route", "le"})}


def test_the_dashboards_group_request_metrics_by_the_shared_labels():
    grouped = set()
    for _, dashboard in dashboards.load():
        for expr in dashboards.queries(dashboard):
            if re.search(r"questlog_(api|query)_request", expr):
                for labels in re.findall(r"by \(([^)]*)\)", expr):
                    grouped |= {label.strip() for label in labels.split(",")}
    assert "route" in grouped
    assert grouped <= set(metrics.LABELS) | {"le"}, grouped
