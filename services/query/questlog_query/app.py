"""The Flask app factory: settings, lake, engine and SQL sandbox live in ``app.extensions``."""

from __future__ import annotations

import logging
import re
import time
import uuid

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

from questlog_query import metrics
from questlog_query.engine import Engine
from questlog_query.errors import ApiError
from questlog_query.lake import Lake, LakeUnavailable
from questlog_query.logs import configure_logging
from questlog_query.sandbox import SqlSandbox
from questlog_query.settings import Settings

log = logging.getLogger("questlog_query")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


def create_app(settings: Settings | None = None, lake: Lake | None = None) -> Flask:
    settings = settings or Settings.from_env()
    configure_logging(settings.log_level)
    app = Flask(__name__)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["questlog_settings"] = settings
    lake = app.extensions["questlog_lake"] = lake or Lake.from_settings(settings)

    def refresh(name: str):  # for a query whose snapshot's files a VACUUM deleted
        return lake.snapshot(name, force=True)

    app.extensions["questlog_engine"] = Engine.from_settings(settings, refresh)
    app.extensions["questlog_sandbox"] = SqlSandbox.from_settings(settings, refresh)

    from questlog_query.api import dashboard, events, health, kpis, pipeline, sql, stats, tables
    from questlog_query.catalog import catalog

    metrics.initialize(catalog())

    for module in (tables, events, stats, kpis, sql, pipeline, health, dashboard):
        app.register_blueprint(module.bp)

    @app.before_request
    def start() -> None:
        given = request.headers.get("X-Request-ID", "")
        g.request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        g.started = time.perf_counter()

    @app.after_request
    def finish(response: Response) -> Response:
        elapsed = time.perf_counter() - g.get("started", time.perf_counter())
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        response.headers["X-Request-ID"] = g.get("request_id", "")
        metrics.REQUESTS.labels(endpoint, request.method, str(response.status_code)).inc()
        metrics.LATENCY.labels(endpoint).observe(elapsed)
        if endpoint not in ("/healthz", "/metrics"):
            log.info(
                "request",
                extra={
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "ms": round(elapsed * 1000, 2),
                },
            )
        return response

    @app.errorhandler(ApiError)
    def api_error(exc: ApiError):
        response = app.json.response(exc.body())
        response.status_code = exc.status
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="questlog-query"'
        return response

    @app.errorhandler(LakeUnavailable)
    def lake_unavailable(exc: LakeUnavailable):
        log.warning("lake unavailable", extra={"error": str(exc)})
        response = app.json.response(
            ApiError(
                503, "lake_unavailable", "the lake cannot be read", {"reason": str(exc)}
            ).body()
        )
        response.status_code = 503
        response.headers["Retry-After"] = "5"
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        code = (exc.name or "error").lower().replace(" ", "_")
        response = app.json.response(
            ApiError(exc.code or 500, code, exc.description or exc.name).body()
        )
        response.status_code = exc.code or 500
        if exc.code == 405 and hasattr(exc, "valid_methods") and exc.valid_methods:
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        log.exception("unhandled error")
        response = app.json.response(
            ApiError(500, "internal", "internal error", {"request_id": g.get("request_id")}).body()
        )
        response.status_code = 500
        return response

    return app
