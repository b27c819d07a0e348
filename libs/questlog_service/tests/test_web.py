"""hooks, errors, ops and the request metrics together, on a small app built the way
the services build theirs."""

import io
import json
import logging
import re

import pytest
from flask import Flask, request

from questlog_service import logs
from questlog_service.errors import ApiError, register_errors
from questlog_service.hooks import install_request_hooks
from questlog_service.metrics import RequestMetrics
from questlog_service.ops import ops_blueprint

METRICS = RequestMetrics("questlog_libtest", buckets=(0.01, 0.1, 1))


class Unreachable(Exception):
    """A data layer's domain error: no status code in sight."""


@pytest.fixture
def ready():
    return {"ok": True}


@pytest.fixture
def app(ready):
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 1024
    register_errors(
        app,
        realm="questlog-test",
        domain={Unreachable: lambda exc: ApiError(503, str(exc), code="store_down", retry_after=7)},
    )
    app.register_blueprint(
        ops_blueprint(
            ready=lambda: (ready["ok"], None if ready["ok"] else "store down"),
            openapi=lambda: {"openapi": "3.1.0"},
            retry_after=lambda: 3,
        )
    )

    @app.post("/v1/things/<name>")
    def things(name):
        if name == "secret":
            raise ApiError(401, "send a token")
        if name == "down":
            raise Unreachable("the store cannot be read")
        if name == "bug":
            raise RuntimeError("a bug")
        return {"name": name, "bytes": len(request.get_data())}

    install_request_hooks(
        app,
        METRICS,
        "questlog_test.access",
        access_fields=lambda ctx: {"things": ctx.get("things", 0)},
    )
    return app


@pytest.fixture
def access(app):
    """The access log lines written while the test runs, parsed."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter("questlog-test"))
    log = logging.getLogger("questlog_test")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    log.removeHandler(handler)


def test_request_id_kept_when_sane_else_made_and_logged(app, access):
    client = app.test_client()
    assert (
        client.post("/v1/things/a", headers={"X-Request-ID": "r" * 64}).headers["X-Request-ID"]
        == "r" * 64
    )
    made = client.post("/v1/things/a", headers={"X-Request-ID": "r" * 65}).headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    assert [line["request_id"] for line in access()] == ["r" * 64, made]
    assert logs.REQUEST_ID.get() is None  # cleared when the request ended


def test_access_line_fields_and_quiet_probes(app, access):
    client = app.test_client()
    client.post("/v1/things/a?token=QUERY-CANARY", headers={"Cookie": "COOKIE-CANARY"})
    client.get("/healthz")
    client.get("/metrics")
    [line] = access()
    assert {k: line[k] for k in ("msg", "method", "route", "status", "things")} == {
        "msg": "request",
        "method": "POST",
        "route": "/v1/things/<name>",
        "status": 200,
        "things": 0,
    }
    assert isinstance(line["duration_ms"], float)
    assert "CANARY" not in json.dumps(line)


def test_request_metrics_labels(app):
    client = app.test_client()
    client.post("/v1/things/a")
    client.get("/nowhere")
    text = client.get("/metrics").get_data(as_text=True)
    assert re.search(
        r'questlog_libtest_requests_total\{method="POST",route="/v1/things/<name>",'
        r'status="200"\} [1-9]',
        text,
    )
    assert 'route="unmatched",status="404"' in text
    assert 'questlog_libtest_request_seconds_bucket{le="0.01",route="/v1/things/<name>"}' in text


def test_error_shapes(app, access):
    client = app.test_client()
    r = client.post("/v1/things/secret")
    assert (r.status_code, r.get_json()["error"]["code"]) == (401, "unauthorized")
    assert r.headers["WWW-Authenticate"] == 'Bearer realm="questlog-test"'
    r = client.post("/v1/things/down")
    assert r.status_code == 503
    assert r.headers["Retry-After"] == "7"
    assert r.get_json() == {
        "error": {"code": "store_down", "message": "the store cannot be read", "details": {}}
    }
    r = client.get("/v1/things/a")
    assert (r.status_code, r.get_json()["error"]["code"]) == (405, "method_not_allowed")
    assert set(r.headers["Allow"].split(", ")) == {"POST", "OPTIONS"}
    r = client.post("/v1/things/a", data=b"x" * 2048)
    assert (r.status_code, r.get_json()["error"]["code"]) == (413, "too_large")
    r = client.post("/v1/things/bug", headers={"X-Request-ID": "bug-1"})
    assert r.status_code == 500
    assert r.get_json()["error"] == {
        "code": "internal",
        "message": "internal server error",
        "details": {"request_id": "bug-1"},
    }


def test_ops_routes(app, ready):
    client = app.test_client()
    assert client.get("/healthz").get_json() == {"status": "ok"}
    assert client.get("/readyz").get_json() == {"status": "ready"}
    assert client.get("/openapi.json").get_json() == {"openapi": "3.1.0"}
    ready["ok"] = False
    r = client.get("/readyz")
    assert (r.status_code, r.get_json(), r.headers["Retry-After"]) == (
        503,
        {"status": "unavailable", "reason": "store down"},
        "3",
    )
    assert client.get("/healthz").status_code == 200


def test_new_app_reads_the_environment_only_when_no_settings_are_given(monkeypatch):
    from dataclasses import dataclass

    from questlog_service.factory import new_app

    @dataclass
    class Settings:
        log_level: str = "WARNING"

    configured = []
    monkeypatch.setattr(
        "questlog_service.factory.configure_logging", lambda *a: configured.append(a)
    )
    given = Settings("DEBUG")
    app, settings = new_app(__name__, "questlog-x", given, lambda: pytest.fail("env read"))
    assert settings is given
    assert configured == []  # settings given in code leave logging alone
    app, settings = new_app(__name__, "questlog-x", None, Settings)
    assert settings == Settings()
    assert configured == [("questlog-x", "WARNING")]
    assert app.json.sort_keys is False  # handlers' key order is kept
