"""GET /v1/pipeline: the other services' counters, scraped from real HTTP endpoints."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from questlog_query import create_app
from questlog_query.pipeline import PipelineStatus
from questlog_query.settings import Settings, SettingsError

from .conftest import make_settings


def extractor_text() -> bytes:
    reg = CollectorRegistry()
    Counter("questlog_extractor_input_rows", "", registry=reg).inc(120)
    written = Counter("questlog_extractor_rows_written", "", ["table"], registry=reg)
    written.labels("purchase_sword").inc(70)
    written.labels("quarantine").inc(5)
    Counter("questlog_extractor_duplicates_dropped", "", registry=reg).inc(44)
    Counter("questlog_extractor_late_rows_dropped", "", registry=reg).inc(1)
    Gauge("questlog_extractor_offsets_behind_latest", "", registry=reg).set(321)
    Gauge("questlog_extractor_batch_duration_seconds", "", registry=reg).set(0.75)
    Gauge("questlog_extractor_last_batch_id", "", registry=reg).set(9)
    Gauge("questlog_extractor_last_progress_timestamp_seconds", "", registry=reg).set(
        time.time() - 3
    )
    Gauge("questlog_extractor_info", "", ["topic", "lake_root"], registry=reg).labels(
        "events", "file:///lake"
    ).set(1)
    return generate_latest(reg)


def api_text() -> bytes:
    reg = CollectorRegistry()
    acc = Counter("questlog_api_events_accepted", "", ["event_type"], registry=reg)
    acc.labels("purchase_sword").inc(75)
    rej = Counter("questlog_api_events_rejected", "", ["event_type", "reason"], registry=reg)
    rej.labels("purchase_sword", "invalid").inc(2)
    rej.labels("join_guild", "invalid").inc(1)
    rej.labels("purchase_sword", "unavailable").inc(4)
    return generate_latest(reg)


@pytest.fixture
def metrics_server():
    """A real HTTP server: /extractor and /api answer Prometheus text, /junk does not."""
    hits: dict[str, int] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            hits[self.path] = hits.get(self.path, 0) + 1
            body = {"/extractor": extractor_text, "/api": api_text}.get(
                self.path, lambda: b"{not prometheus"
            )()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.hits = hits
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield server
    server.shutdown()
    server.server_close()


def test_pipeline_relays_the_extractor_and_api_counters(lake_dir, metrics_server):
    app = create_app(
        make_settings(
            lake_dir,
            extractor_metrics_url=metrics_server.url + "/extractor",
            api_metrics_url=metrics_server.url + "/api",
        )
    )
    body = app.test_client().get("/v1/pipeline").get_json()
    ext, api = body["extractor"], body["api"]
    assert ext["available"] is True
    assert ext["error"] is None
    assert ext["input_rows"] == 120
    assert ext["rows_written"] == {"purchase_sword": 70, "quarantine": 5}
    assert (ext["duplicates_dropped"], ext["late_rows_dropped"]) == (44, 1)
    assert ext["offsets_behind_latest"] == 321
    assert ext["last_batch_id"] == 9
    assert 2 < ext["last_progress_age_seconds"] < 60
    assert ext["settings"] == {"topic": "events", "lake_root": "file:///lake"}
    assert api["events_accepted"] == {"purchase_sword": 75}
    assert api["events_rejected"] == {"invalid": 3, "unavailable": 4}
    assert body["lake"] == {
        "root": lake_dir.as_uri(),
        "tables": ["join_guild", "level_up", "purchase_sword", "quarantine"],
    }
    assert body["as_of"].endswith("Z")


def test_unconfigured_or_unreachable_services_are_unavailable_not_zero(lake_dir, metrics_server):
    refused = "http://127.0.0.1:9/metrics"  # discard port: nothing listens
    app = create_app(make_settings(lake_dir, extractor_metrics_url=refused))
    body = app.test_client().get("/v1/pipeline").get_json()
    assert body["extractor"]["available"] is False
    assert refused in body["extractor"]["error"]
    assert "input_rows" not in body["extractor"]
    assert body["api"] == {
        "metrics_url": None,
        "available": False,
        "error": "not configured (QUESTLOG_QUERY_API_METRICS_URL)",
    }
    junk = create_app(make_settings(lake_dir, api_metrics_url=metrics_server.url + "/junk"))
    answer = junk.test_client().get("/v1/pipeline").get_json()["api"]
    assert answer["available"] is False
    assert "not Prometheus text" in answer["error"]


def test_scrapes_are_cached_so_a_refreshing_page_costs_one(metrics_server):
    status = PipelineStatus(metrics_server.url + "/extractor", "", ttl_s=60)
    for _ in range(5):
        status.snapshot()
    assert metrics_server.hits == {"/extractor": 1}


def test_metrics_urls_must_be_http(lake_dir):
    with pytest.raises(SettingsError, match="EXTRACTOR_METRICS_URL must be an http"):
        Settings(lake_root=lake_dir.as_uri(), extractor_metrics_url="file:///etc/passwd")
    env = {
        "QUESTLOG_QUERY_LAKE_ROOT": lake_dir.as_uri(),
        "QUESTLOG_QUERY_API_METRICS_URL": "http://127.0.0.1:5000/metrics",
    }
    assert Settings.from_env(env).api_metrics_url == "http://127.0.0.1:5000/metrics"
